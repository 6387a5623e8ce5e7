/**
 * What a requester can do with its jobs, whatever carries the request: the HTTP routes
 * (routes.ts) and the requester channel (channel.ts) both call these, so authentication,
 * quotas, envelope checks, billing reservations, the relay's refusals and the event-stream
 * limits are one code path. Each answer is an {@link Outcome}: the HTTP status and body the
 * route sends, which the channel forwards as a message.
 */
import * as v from 'valibot';
import { envelopeProblem, SEAL_TAG_BYTES } from '../../protocol/billing.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { Assignment, CreateJob, PaymentRequired, Sealed, SubmitPayload, WireError } from '../../protocol/wire.ts';
import { WireError as WireErrorSchema } from '../../protocol/wire.ts';
import type { Billing } from '../billing/service.ts';
import { base64urlBytes } from '../../protocol/envelope.ts';
import { randomId } from '../ids.ts';
import { Counter } from '../edges/limits.ts';
import { Job } from '../jobs/job.ts';
import type { Hold, Relay } from '../leases/relay.ts';
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

/** A refusal: the HTTP status, the error, and what goes with some of them. */
export interface Refused {
  ok: false;
  status: 400 | 401 | 402 | 404 | 409 | 410 | 413 | 422 | 429 | 503;
  error: WireError;
  /** With a 429: when to try again, seconds. */
  retryAfterS?: number;
  /** With a 402: the body the HTTP route sends (the price, the balance, where to deposit). */
  payment?: PaymentRequired;
}

export type Outcome<T> = { ok: true; value: T } | Refused;

export function refused(status: Refused['status'], code: WireError['code'], message: string): Refused {
  return { ok: false, status, error: { code, message } };
}

/** A followed job's events: stop it to release its stream slots. */
export interface Subscription {
  job: Job | JobRecord;
  release(): void;
}

export class RequesterActions {
  readonly deps: RequesterDeps;
  readonly #perJob = new Counter();
  readonly #perKey = new Counter();
  readonly #maxPerJob: number;
  readonly #maxPerKey: number;
  readonly #creations: IdempotentCreations<Outcome<Created>>;

  constructor(deps: RequesterDeps) {
    this.deps = deps;
    this.#creations = new IdempotentCreations(deps.idempotency);
    this.#maxPerJob = deps.subscribersPerJob ?? 8;
    this.#maxPerKey = deps.subscribersPerKey ?? 1_000;
  }

  /** The key of a bearer secret, or the 401. */
  async authenticate(secret: string | undefined): Promise<Outcome<ApiKeyRecord>> {
    const key = secret === undefined ? null : await this.deps.keys.find(secret);
    if (key !== null) return { ok: true, value: key };
    return refused(
      401,
      'UNAUTHORIZED',
      secret === undefined ? 'Send `Authorization: Bearer <api key>`.' : 'The API key is unknown or revoked.',
    );
  }

  /**
   * `POST /v1/jobs`: quota, envelope, reservation, then the relay (on `hold`'s contributor when
   * given, docs/protocol.md "Sealing ahead of need"). With an `idempotencyKey`, a repeat of the
   * same creation gets the same job (nothing reserved again); another body under the key, 409.
   */
  async createJob(key: ApiKeyRecord, body: CreateJob, hold?: Hold, idempotencyKey?: string): Promise<Outcome<Created>> {
    if (idempotencyKey === undefined) return this.#createJob(key, body, hold);
    const remembered = await this.#creations.run(
      key.id,
      idempotencyKey,
      body,
      (outcome) => outcome.ok,
      () => this.#createJob(key, body, hold),
    );
    if (remembered.kind === 'mismatch') {
      return refused(409, 'CONFLICT', 'This idempotency key was used for another job creation; use a new key for a new job.');
    }
    if (remembered.kind === 'first' || !remembered.value.ok) return remembered.value;
    const job = this.deps.relay.job(remembered.value.value.job.id, key.id);
    if (job === undefined) {
      const id = remembered.value.value.job.id;
      return refused(
        409,
        'CONFLICT',
        `This idempotency key created job ${id}, which this coordinator no longer holds; follow it by its id.`,
      );
    }
    return { ok: true, value: { job, assignment: job.assignment, repeated: true } };
  }

  async #createJob(key: ApiKeyRecord, body: CreateJob, hold?: Hold): Promise<Outcome<Created>> {
    const { relay, quotas, billing, catalog } = this.deps;
    const quota = quotas.check(key, relay.inFlightFor(key.id));
    if (quota !== null) return { ...refused(429, 'QUOTA', quota.message), retryAfterS: quota.retryAfterS };
    const { model, kind, billing: envelope } = body;
    if (catalog !== undefined) {
      const wrong = envelopeProblem(envelope, await catalog.limits(model, kind));
      if (wrong !== null) return refused(422, 'ENVELOPE', wrong);
    }
    // Refused before the reservation: a 503 moves no money and leaves no billing row behind.
    if (relay.draining) return refused(503, 'DRAINING', 'The coordinator is shutting down; submit the job again in a minute.');
    const id = hold?.id ?? randomId();
    if (billing !== undefined) {
      const reserved = await billing.reserveJob(key, id, model, kind, envelope);
      if (!reserved.ok) return { ok: false, status: 402, error: reserved.body.error, payment: reserved.body };
    }
    const job = relay.createJob(key.id, model, kind, {
      envelope,
      replicas: body.replicas === true,
      id,
      ...(hold !== undefined && { hold }),
    });
    if (!(job instanceof Job)) {
      await billing?.release(id, `not created: ${job.error.message}`);
      return { ok: false, status: job.status, error: job.error };
    }
    quotas.record(key.id);
    return { ok: true, value: { job, assignment: job.assignment } };
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
  ): Outcome<{ holds: Hold[]; expiresInMs: number }> {
    const { relay } = this.deps;
    const room = Math.min(maxHeld - held, key.maxInFlight - relay.inFlightFor(key.id) - relay.heldFor(key.id));
    if (room <= 0) {
      const message =
        held >= maxHeld
          ? `This channel holds ${held} unused assignments, the limit; use them or let them expire first.`
          : `This key's jobs in flight and its unused assignments reach its limit of ${key.maxInFlight} jobs in flight; use the assignments or wait for a job to finish.`;
      return { ...refused(429, 'QUOTA', message), retryAfterS: 1 };
    }
    return { ok: true, value: relay.hold(key.id, model, kind, Math.min(count, room)) };
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
  ): Promise<Outcome<{ job: Job; pinned: boolean }>> {
    const { relay } = this.deps;
    const claimed = relay.claimHold(holdId, key.id);
    if (!('hold' in claimed)) return { ok: false, status: claimed.status, error: claimed.error };
    const { hold } = claimed;
    if (hold.model !== body.model || hold.kind !== body.kind) {
      relay.releaseHold(hold);
      return refused(
        409,
        'CONFLICT',
        `Assignment ${holdId} is for ${hold.kind} jobs of model "${hold.model}"; it is given back, ask for one for this job.`,
      );
    }
    let created: Outcome<Created>;
    try {
      created = await this.createJob(key, body, hold, idempotencyKey);
    } catch (err) {
      relay.releaseHold(hold); // not left claimed (and its slot taken) for ever
      throw err;
    }
    if (!created.ok) {
      relay.releaseHold(hold);
      return created;
    }
    if (created.value.repeated === true) {
      // The key's job was made on another assignment: this one goes back, and its payload (sealed for it) is not used.
      relay.releaseHold(hold);
      const id = created.value.job.id;
      return refused(409, 'CONFLICT', `This idempotency key created job ${id}; follow that job instead of submitting it again.`);
    }
    const { job } = created.value;
    if (job.attempt !== 1) return { ok: true, value: { job, pinned: false } };
    const submitted = await this.submitTo(job, { attempt: 1, sealed });
    return submitted.ok ? { ok: true, value: { job, pinned: true } } : submitted;
  }

  /** The channel closed with these holds unused: their slots go back. */
  releaseHolds(holds: Iterable<Hold>): void {
    for (const hold of holds) this.deps.relay.releaseHold(hold);
  }

  /** `PUT /v1/jobs/:id/payload`: the envelope against the payload's size, then the relay. */
  async submitPayload(key: ApiKeyRecord, jobId: string, body: SubmitPayload): Promise<Outcome<{ jobId: string; attempt: number }>> {
    const job = await this.liveJob(key, jobId);
    if (!job.ok) return job;
    return this.submitTo(job.value, body);
  }

  /** The payload of a job already found live for its key. */
  async submitTo(job: Job, body: SubmitPayload): Promise<Outcome<{ jobId: string; attempt: number }>> {
    const { relay, catalog } = this.deps;
    if (catalog !== undefined && !job.finished) {
      const plaintext = base64urlBytes(body.sealed.ct) - SEAL_TAG_BYTES;
      const wrong = envelopeProblem(job.envelope, await catalog.limits(job.model, job.kind), plaintext);
      if (wrong !== null) {
        // The envelope cannot change after creation: the job ends, and its reservation goes back.
        relay.refuse(job, { code: 'ENVELOPE', message: wrong });
        return refused(422, 'ENVELOPE', wrong);
      }
    }
    const refusal = relay.submitPayload(job, body.attempt, body.sealed);
    if (refusal !== null) return { ok: false, status: refusal.status, error: refusal.error };
    return { ok: true, value: { jobId: job.id, attempt: job.attempt } };
  }

  /** `DELETE /v1/jobs/:id`. */
  async cancel(key: ApiKeyRecord, jobId: string): Promise<Outcome<{ jobId: string; state: JobState }>> {
    const job = await this.liveJob(key, jobId);
    if (!job.ok) return job;
    const refusal = this.deps.relay.cancel(job.value);
    if (refusal !== null) return { ok: false, status: refusal.status, error: refusal.error };
    return { ok: true, value: { jobId, state: job.value.state } };
  }

  /** A job of the key: live, or the record of one this coordinator no longer holds. */
  async findJob(key: ApiKeyRecord, id: string): Promise<Outcome<Job | JobRecord>> {
    const job = this.deps.relay.job(id, key.id);
    if (job !== undefined) return { ok: true, value: job };
    const record = await this.deps.store.getJob(id);
    if (record === null || record.apiKeyId !== key.id) return refused(404, 'NOT_FOUND', `No job ${id} for this API key.`);
    return { ok: true, value: record };
  }

  /** A live job of the key, or why not. */
  async liveJob(key: ApiKeyRecord, id: string): Promise<Outcome<Job>> {
    const found = await this.findJob(key, id);
    if (!found.ok || found.value instanceof Job) return found as Outcome<Job>;
    const { state } = found.value;
    return refused(409, 'CONFLICT', `The job is ${state}${FINAL.has(state) ? '' : ' on another coordinator, or from before a restart'}.`);
  }

  /**
   * `GET /v1/jobs/:id/events`: takes a stream slot of the key and of the job (released by the
   * subscription), or refuses; a record of an ended job needs none.
   */
  async follow(key: ApiKeyRecord, id: string): Promise<Outcome<Subscription>> {
    const found = await this.findJob(key, id);
    if (!found.ok) return found;
    const job = found.value;
    if (job instanceof Job) {
      if (!this.#perKey.take(key.id, this.#maxPerKey)) {
        return refused(429, 'QUOTA', `This API key has ${this.#maxPerKey} event streams open, the limit; close one first.`);
      }
      if (!this.#perJob.take(job.id, this.#maxPerJob)) {
        this.#perKey.release(key.id);
        return refused(429, 'QUOTA', `Job ${job.id} has ${this.#maxPerJob} event streams open, the limit; close one first.`);
      }
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        this.#perKey.release(key.id);
        this.#perJob.release(job.id);
      };
      return { ok: true, value: { job, release } };
    }
    if (job.state === 'failed' || job.state === 'cancelled') return { ok: true, value: { job, release: () => {} } };
    if (job.state === 'done') {
      return refused(
        410,
        'NOT_FOUND',
        'The job is done and its result is no longer held: the coordinator keeps results only briefly after the last chunk.',
      );
    }
    return refused(409, 'CONFLICT', `The job is ${job.state} on another coordinator, or from before a restart.`);
  }
}

/** Splits the store's `code: message` error back into a wire error. */
export function recordedError(text: string | null): WireError {
  const at = text?.indexOf(': ') ?? -1;
  const parsed = v.safeParse(WireErrorSchema, { code: text?.slice(0, at), message: text?.slice(at + 2) });
  return at > 0 && parsed.success ? parsed.output : { code: 'INTERNAL', message: text ?? 'The job failed.' };
}
