/**
 * What a requester can do with its jobs, whatever carries the request: the HTTP routes
 * (routes.ts) and the requester channel (channel.ts) both call these, so authentication,
 * quotas, envelope checks, billing reservations, the relay's refusals and the event-stream
 * limits are one code path. Each returns what it did or throws a {@link Problem}: the route
 * answers it as the HTTP error, the channel sends it as an `error` message with the status.
 */
import * as v from 'valibot';
import { envelopeProblem, SEAL_TAG_BYTES } from '../../protocol/billing.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { Assignment, CreateJob, JobEvent, Sealed, SubmitPayload, WireError } from '../../protocol/wire.ts';
import { WireError as WireErrorSchema } from '../../protocol/wire.ts';
import type { Billing } from '../billing/service.ts';
import { base64urlBytes } from '../../protocol/envelope.ts';
import { randomId } from '../ids.ts';
import { Counter } from '../edges/limits.ts';
import { Job } from '../jobs/job.ts';
import { Problem } from '../http.ts';
import type { Hold, Refusal, Relay } from '../leases/relay.ts';
import type { ModelCatalog } from '../models/catalog.ts';
import type { ApiKeyRecord, JobRecord, JobState, Store } from '../store/types.ts';
import type { ApiKeys, Quotas } from './keys.ts';
import { type IdempotencyLimits, IdempotentCreations } from './idempotency.ts';

const FINAL: ReadonlySet<JobState> = new Set(['done', 'failed', 'cancelled']);

export interface RequesterDeps {
  relay: Relay;
  store: Store;
  keys: ApiKeys;
  quotas: Quotas;
  /** Prepaid jobs: reservations, 402s and `GET /v1/account`; without it jobs are free. */
  billing?: Billing;
  /** Model facts for envelope checks and `GET /v1/models/:id`; without it envelopes are only clamped. */
  catalog?: ModelCatalog;
  /** Event streams open at once per job (default 8) and per API key (default 1,000); more get 429. */
  subscribersPerJob?: number;
  subscribersPerKey?: number;
  /** Bytes queued to an event-stream reader that does not read before it is dropped (default 16 MiB). */
  eventStreamBufferBytes?: number;
  /** Job creations remembered by idempotency key (default 100,000 for one hour). */
  idempotency?: Partial<IdempotencyLimits>;
}

/** A created job; `repeated`: an earlier creation with the same idempotency key made it. */
export interface Created {
  job: Job;
  assignment: Assignment | null;
  repeated?: boolean;
}

/** The relay's refusal as the error to throw. */
function refusedBy(r: Refusal): Problem {
  return new Problem(r.status, r.error.code, r.error.message);
}

/** A followed job's events: stop it to release its stream slots. */
export interface Subscription {
  job: Job | JobRecord;
  readonly release: () => void;
}

export class RequesterActions {
  readonly deps: RequesterDeps;
  readonly #perJob = new Counter();
  readonly #perKey = new Counter();
  readonly #maxPerJob: number;
  readonly #maxPerKey: number;
  readonly #creations: IdempotentCreations<Created>;

  constructor(deps: RequesterDeps) {
    this.deps = deps;
    this.#creations = new IdempotentCreations(deps.idempotency);
    this.#maxPerJob = deps.subscribersPerJob ?? 8;
    this.#maxPerKey = deps.subscribersPerKey ?? 1_000;
  }

  /** The key of a bearer secret, or throws the 401. */
  async authenticate(secret: string | null): Promise<ApiKeyRecord> {
    const key = secret === null ? null : await this.deps.keys.find(secret);
    if (key !== null) return key;
    const message = secret === null ? 'Send `Authorization: Bearer <api key>`.' : 'The API key is unknown or revoked.';
    throw new Problem(401, 'UNAUTHORIZED', message, { headers: { 'WWW-Authenticate': 'Bearer' } });
  }

  /**
   * `POST /v1/jobs`: quota, envelope, reservation, then the relay (on `hold`'s contributor when
   * given, docs/protocol.md "Sealing ahead of need"). With an `idempotencyKey`, a repeat of the
   * same creation gets the same job (nothing reserved again); another body under the key, 409.
   */
  async createJob(key: ApiKeyRecord, body: CreateJob, hold?: Hold, idempotencyKey?: string): Promise<Created> {
    if (idempotencyKey === undefined) return this.#createJob(key, body, hold);
    // A refusal is thrown, so only creations that made a job are remembered.
    const remembered = await this.#creations.run(
      key.id,
      idempotencyKey,
      body,
      () => true,
      () => this.#createJob(key, body, hold),
    );
    if (remembered.kind === 'mismatch') {
      throw new Problem(409, 'CONFLICT', 'This idempotency key was used for another job creation; use a new key for a new job.');
    }
    if (remembered.kind === 'first') return remembered.value;
    const id = remembered.value.job.id;
    const job = this.deps.relay.job(id, key.id);
    if (job === undefined) {
      throw new Problem(
        409,
        'CONFLICT',
        `This idempotency key created job ${id}, which this coordinator no longer holds; follow it by its id.`,
      );
    }
    return { job, assignment: job.assignment, repeated: true };
  }

  async #createJob(key: ApiKeyRecord, body: CreateJob, hold?: Hold): Promise<Created> {
    const { relay, quotas, billing, catalog } = this.deps;
    const quota = quotas.check(key, relay.inFlightFor(key.id));
    if (quota !== null) throw new Problem(429, 'QUOTA', quota.message, { retryAfterS: quota.retryAfterS });
    const { model, kind, billing: envelope } = body;
    if (catalog !== undefined) {
      const wrong = envelopeProblem(envelope, await catalog.limits(model, kind));
      if (wrong !== null) throw new Problem(422, 'ENVELOPE', wrong);
    }
    // Refused before the reservation: a 503 moves no money and leaves no billing row behind.
    if (relay.draining) throw new Problem(503, 'DRAINING', 'The coordinator is shutting down; submit the job again in a minute.');
    const id = hold?.id ?? randomId();
    if (billing !== undefined) {
      const reserved = await billing.reserveJob(key, id, model, kind, envelope);
      if (!reserved.ok) throw new Problem(402, reserved.body.error.code, reserved.body.error.message, { payment: reserved.body });
    }
    const job = relay.createJob(key.id, model, kind, {
      envelope,
      replicas: body.replicas === true,
      id,
      ...(hold !== undefined && { hold }),
    });
    if (!(job instanceof Job)) {
      await billing?.release(id, `not created: ${job.error.message}`);
      throw refusedBy(job);
    }
    quotas.record(key.id);
    return { job, assignment: job.assignment };
  }

  /**
   * `assign` on the requester channel: up to `count` slots of idle contributors reserved for
   * the key's next jobs. `held` is how many the asking channel holds unused (at most `maxHeld`);
   * the key's unused assignments on all its channels and its jobs in flight together stay within
   * its in-flight limit, so assignments never promise more jobs than the key may run.
   */
  holdSlots(
    key: ApiKeyRecord,
    model: string,
    kind: JobKind,
    count: number,
    held: number,
    maxHeld: number,
  ): { holds: Hold[]; expiresInMs: number } {
    const { relay } = this.deps;
    const room = Math.min(maxHeld - held, key.maxInFlight - relay.inFlightFor(key.id) - relay.heldFor(key.id));
    if (room <= 0) {
      const message =
        held >= maxHeld
          ? `This channel holds ${held} unused assignments, the limit; use them or let them expire first.`
          : `This key's jobs in flight and its unused assignments reach its limit of ${key.maxInFlight} jobs in flight; use the assignments or wait for a job to finish.`;
      throw new Problem(429, 'QUOTA', message, { retryAfterS: 1 });
    }
    return relay.hold(key.id, model, kind, Math.min(count, room));
  }

  /**
   * `submit` on the requester channel: the job on the key's assignment `holdId` with its
   * payload sealed for attempt 1: every check of {@link createJob} and {@link submitTo}, in one
   * message. `pinned` false: the assignment lapsed (expired, or its contributor left), the
   * payload was dropped unopened and the job waits for attempt 2, to be sealed again.
   */
  async submitHeld(
    key: ApiKeyRecord,
    holdId: string,
    body: CreateJob,
    sealed: Sealed,
    idempotencyKey?: string,
  ): Promise<{ job: Job; pinned: boolean }> {
    const { relay } = this.deps;
    const claimed = relay.claimHold(holdId, key.id);
    if (!('hold' in claimed)) throw refusedBy(claimed);
    const { hold } = claimed;
    if (hold.model !== body.model || hold.kind !== body.kind) {
      relay.releaseHold(hold);
      throw new Problem(
        409,
        'CONFLICT',
        `Assignment ${holdId} is for ${hold.kind} jobs of model "${hold.model}"; it is given back, ask for one for this job.`,
      );
    }
    let created: Created;
    try {
      created = await this.createJob(key, body, hold, idempotencyKey);
    } catch (err) {
      relay.releaseHold(hold); // not left claimed (and its slot taken) for ever
      throw err;
    }
    if (created.repeated === true) {
      // The key's job was made on another assignment: this one goes back, and its payload (sealed for it) is not used.
      relay.releaseHold(hold);
      const id = created.job.id;
      throw new Problem(409, 'CONFLICT', `This idempotency key created job ${id}; follow that job instead of submitting it again.`);
    }
    const { job } = created;
    if (job.attempt !== 1) return { job, pinned: false };
    await this.submitTo(job, { attempt: 1, sealed });
    return { job, pinned: true };
  }

  /** The channel closed with these holds unused: their slots go back. */
  releaseHolds(holds: Iterable<Hold>): void {
    for (const hold of holds) this.deps.relay.releaseHold(hold);
  }

  /** `PUT /v1/jobs/:id/payload`: the envelope against the payload's size, then the relay. */
  async submitPayload(key: ApiKeyRecord, jobId: string, body: SubmitPayload): Promise<{ jobId: string; attempt: number }> {
    return this.submitTo(await this.liveJob(key, jobId), body);
  }

  /** The payload of a job already found live for its key. */
  async submitTo(job: Job, body: SubmitPayload): Promise<{ jobId: string; attempt: number }> {
    const { relay, catalog } = this.deps;
    if (catalog !== undefined && !job.finished) {
      const plaintext = base64urlBytes(body.sealed.ct) - SEAL_TAG_BYTES;
      const wrong = envelopeProblem(job.envelope, await catalog.limits(job.model, job.kind), plaintext);
      if (wrong !== null) {
        // The envelope cannot change after creation: the job ends, and its reservation goes back.
        relay.refuse(job, { code: 'ENVELOPE', message: wrong });
        throw new Problem(422, 'ENVELOPE', wrong);
      }
    }
    const refusal = relay.submitPayload(job, body.attempt, body.sealed);
    if (refusal !== null) throw refusedBy(refusal);
    return { jobId: job.id, attempt: job.attempt };
  }

  /** `DELETE /v1/jobs/:id`. */
  async cancel(key: ApiKeyRecord, jobId: string): Promise<{ jobId: string; state: JobState }> {
    const job = await this.liveJob(key, jobId);
    const refusal = this.deps.relay.cancel(job);
    if (refusal !== null) throw refusedBy(refusal);
    return { jobId, state: job.state };
  }

  /** A job of the key: live, or the record of one this coordinator no longer holds. */
  async findJob(key: ApiKeyRecord, id: string): Promise<Job | JobRecord> {
    const job = this.deps.relay.job(id, key.id);
    if (job !== undefined) return job;
    const record = await this.deps.store.getJob(id);
    if (record === null || record.apiKeyId !== key.id) throw new Problem(404, 'NOT_FOUND', `No job ${id} for this API key.`);
    return record;
  }

  /** A live job of the key, or throws why not. */
  async liveJob(key: ApiKeyRecord, id: string): Promise<Job> {
    const found = await this.findJob(key, id);
    if (found instanceof Job) return found;
    const { state } = found;
    throw new Problem(
      409,
      'CONFLICT',
      `The job is ${state}${FINAL.has(state) ? '' : ' on another coordinator, or from before a restart'}.`,
    );
  }

  /**
   * `GET /v1/jobs/:id/events`: takes a stream slot of the key and of the job (released by the
   * subscription), or refuses; a record of an ended job needs none.
   */
  async follow(key: ApiKeyRecord, id: string): Promise<Subscription> {
    const job = await this.findJob(key, id);
    if (job instanceof Job) {
      if (!this.#perKey.take(key.id, this.#maxPerKey)) {
        throw new Problem(429, 'QUOTA', `This API key has ${this.#maxPerKey} event streams open, the limit; close one first.`);
      }
      if (!this.#perJob.take(job.id, this.#maxPerJob)) {
        this.#perKey.release(key.id);
        throw new Problem(429, 'QUOTA', `Job ${job.id} has ${this.#maxPerJob} event streams open, the limit; close one first.`);
      }
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        this.#perKey.release(key.id);
        this.#perJob.release(job.id);
      };
      return { job, release };
    }
    if (job.state === 'failed' || job.state === 'cancelled') return { job, release: () => {} };
    // Its answer, kept for a requester whose stream was cut off (a crash) before it was read.
    if (job.state === 'done' && job.result !== undefined) return { job, release: () => {} };
    if (job.state === 'done') {
      throw new Problem(
        410,
        'NOT_FOUND',
        'The job is done and its result is no longer held: the coordinator keeps results only briefly after the last chunk.',
      );
    }
    throw new Problem(409, 'CONFLICT', `The job is ${job.state} on another coordinator, or from before a restart.`);
  }
}

/** What the event stream of a job this coordinator no longer holds says: its stored answer, or why it ended. */
export function recordedEvents(record: JobRecord): JobEvent[] {
  if (record.state === 'done' && record.result !== undefined) return record.result.chunks;
  return [{ type: 'failed', error: recordedError(record.error) }];
}

/** Splits the store's `code: message` error back into a wire error. */
export function recordedError(text: string | null): WireError {
  const at = text?.indexOf(': ') ?? -1;
  const parsed = v.safeParse(WireErrorSchema, { code: text?.slice(0, at), message: text?.slice(at + 2) });
  return at > 0 && parsed.success ? parsed.output : { code: 'INTERNAL', message: text ?? 'The job failed.' };
}
