/**
 * The requester SDK: runs one job through the coordinator's HTTP API (docs/protocol.md,
 * "Requester ↔ coordinator"). The request is sealed here to the assigned contributor and the
 * result is opened here; only sealed envelopes go over the wire.
 */
import * as v from 'valibot';
import { compareResults, type CompareOptions } from '../protocol/compare.ts';
import { createResultOpener, exportPublicKey, generateHpkeKeyPair, sealJob, type ResultOpener } from '../protocol/envelope.ts';
import { AbortedError, InvalidInputError, SpinneretError } from '../protocol/errors.ts';
import { parseJobRequest, type JobRequest, type JobResult, wireKindOf } from '../protocol/jobs.ts';
import { scoredBy, scoreRequestFor } from '../protocol/teacher-forced.ts';
import { JobKind } from '../protocol/manifest.ts';
import {
  Account,
  Assignment,
  type DepositInstructions,
  JobEvent,
  type JobReport,
  JobReportAnswer,
  MAX_MESSAGE_BYTES,
  parseFrame,
  type Verdict,
  VerdictAnswer,
} from '../protocol/wire.ts';
import type { ModelFacts } from '../protocol/wire.ts';
import { EnvelopeCounter } from './billing.ts';
import { CoordinatorError, CoordinatorUnavailableError, failedJobError, httpError, networkError, RetriesExhaustedError } from './errors.ts';
import { backoffMs, DEFAULT_RETRY, mayRetryCreate, type RetryPolicy, sleep, withRetry } from './retry.ts';
import {
  deferred,
  JobFailed,
  ndjsonLines,
  newProgress,
  type Progress,
  Restarted,
  StreamBroken,
  UnopenableResult,
  unseen,
} from './stream.ts';

export interface RequesterClientOptions {
  /** Base URL of the coordinator, e.g. `https://coordinator.example` (no trailing `/v1`). */
  coordinatorUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey: string;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /**
   * Check replicas when the coordinator asks (default true): it may run a job again on
   * another contributor; this client seals the same request for it, compares both results
   * and posts the verdict. Your result never waits for the check.
   */
  checkReplicas?: boolean;
  /** Told of each finished replica check (or one that could not finish). */
  onCheck?: (check: ReplicaCheck) => void;
  /** Tolerances for comparing results; the defaults of protocol/compare.ts. */
  compare?: CompareOptions;
  /**
   * While the coordinator is unreachable: how often and how long creating a job is tried again
   * (capped exponential backoff with full jitter), and a broken event stream reopened
   * (default 8 tries within 30 s, backoff 200 ms doubling up to 5 s). Then RetriesExhaustedError.
   */
  retry?: Partial<RetryPolicy>;
  /** Times a job the coordinator ended by restarting (`RESTARTED`) is run again as a new job (default 3). */
  maxReruns?: number;
}

/** What came of a replica check of one job. */
export interface ReplicaCheck {
  jobId: string;
  replicaJobId: string;
  /** Null when the check could not finish (`error` says why). */
  agree: boolean | null;
  reason: string;
  /** The third run when the first two disagreed and the coordinator found a tie-breaker. */
  tieBreak?: { jobId: string; withPrimary: boolean; withReplica: boolean };
  error?: string;
}

export interface RunOptions {
  /** Aborting cancels the job at the coordinator (DELETE) and rejects with AbortedError. */
  signal?: AbortSignal;
  /** Streamed text and tokens of `chat`/`generate` jobs, in order, each piece once (also across re-assignments). */
  onDelta?: (piece: { text: string; tokens: number[] }) => void;
}

/** An API key's money (`GET /v1/account`): nanoTON, and where to deposit more. */
export interface AccountBalance {
  keyId: string;
  /** Deposited and not held for a job. */
  available: bigint;
  /** Held for jobs in flight (each job's maximum price until its result settles it). */
  reserved: bigint;
  /** Send TON to `address` with `memo` as the text comment to fund this key. */
  deposit: DepositInstructions;
}

/** A model that connected contributors can serve. */
export interface ModelListing {
  id: string;
  /** Job kinds it serves. */
  kinds: JobKind[];
}

const CreatedJob = v.object({ jobId: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/)), assignment: v.nullable(Assignment) });
const ModelEntry = v.object({ id: v.string(), kinds: v.array(JobKind) });
const ModelList = v.union([v.object({ models: v.array(ModelEntry) }), v.object({ data: v.array(ModelEntry) })]);

export class RequesterClient {
  readonly #url: string;
  readonly #apiKey: string;
  readonly #fetch: typeof fetch;
  readonly #options: RequesterClientOptions;
  readonly #checks = new Set<Promise<void>>();
  readonly #envelopes: EnvelopeCounter;
  readonly #retry: RetryPolicy;

  constructor(options: RequesterClientOptions) {
    this.#url = options.coordinatorUrl.replace(/\/+$/, '');
    this.#apiKey = options.apiKey;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#options = options;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#envelopes = new EnvelopeCounter((path, what) => this.#call('GET', path, undefined, what), this.#fetch);
  }

  /** The key's balances and deposit instructions (`GET /v1/account`). */
  async account(): Promise<AccountBalance> {
    const response = await this.#call('GET', '/v1/account', undefined, 'reading the account');
    const body = v.safeParse(Account, await response.json().catch(() => null));
    if (!body.success)
      throw new CoordinatorError(`The coordinator's account answer is malformed: ${v.summarize(body.issues)}`, response.status);
    const { keyId, available, reserved, deposit } = body.output;
    return { keyId, available: BigInt(available), reserved: BigInt(reserved), deposit };
  }

  /** Resolves when every replica check started so far has posted its verdict (or given up). */
  async idle(): Promise<void> {
    while (this.#checks.size > 0) await Promise.allSettled([...this.#checks]);
  }

  /** What the coordinator's catalog says of a model: its manifest entry and limits per kind (`GET /v1/models/:id`). */
  modelFacts(id: string): Promise<ModelFacts> {
    return this.#envelopes.facts(id);
  }

  /** Models the network can serve now (`GET /v1/models`). */
  async models(): Promise<ModelListing[]> {
    const response = await this.#call('GET', '/v1/models', undefined, 'listing models');
    const body = v.safeParse(ModelList, await response.json().catch(() => null));
    if (!body.success)
      throw new CoordinatorError(`The coordinator's model list is malformed: ${v.summarize(body.issues)}`, response.status);
    return 'models' in body.output ? body.output.models : body.output.data;
  }

  /**
   * Runs one job to its result. Seals the request for each contributor the coordinator
   * assigns (again after one drops), streams deltas to `onDelta`, and resolves with the
   * result and the attempt that produced it. While the coordinator is unreachable, creating
   * the job is retried with backoff and a broken event stream is reopened where it was; a job
   * the coordinator ended by restarting (`RESTARTED`, nothing charged) is run again.
   */
  async run(request: JobRequest, options: RunOptions = {}): Promise<JobResult & { attempts: number }> {
    const job = parseJobRequest(request);
    const { signal } = options;
    if (signal?.aborted) throw new AbortedError(`The ${job.kind} job`);
    // The ciphertext is the JSON plaintext (a 43-character result key) plus the 16-byte AES-GCM tag.
    const sizeBytes = new TextEncoder().encode(JSON.stringify({ request: job, resultKey: 'k'.repeat(43) })).length + 16;
    // Base64url grows the ciphertext by 4/3 on its way into a contributor's frame.
    if ((sizeBytes * 4) / 3 > MAX_MESSAGE_BYTES) {
      throw new InvalidInputError(
        `The job is too large to send: ${sizeBytes} bytes sealed, over the ${MAX_MESSAGE_BYTES}-byte message limit. Split it into smaller jobs.`,
      );
    }
    // Text already passed to onDelta, across reopened streams and re-runs: each piece once.
    const emitted = { text: '', tokens: [] as number[] };
    for (let reruns = 0; ; reruns++) {
      const { jobId, assignment } = await this.#create(job, sizeBytes, signal);
      try {
        return await this.#runCreated(jobId, job, newProgress(emitted, assignment), options);
      } catch (err) {
        if (!(err instanceof Restarted)) throw err;
        if (reruns >= (this.#options.maxReruns ?? 3) || signal?.aborted === true) throw err.error;
      }
    }
  }

  /** Creates the job (`POST /v1/jobs`), retrying with backoff while the coordinator is unreachable or draining. */
  async #create(job: JobRequest, sizeBytes: number, signal: AbortSignal | undefined): Promise<v.InferOutput<typeof CreatedJob>> {
    const retry = { policy: this.#retry, what: 'creating the job', coordinatorUrl: this.#url, signal };
    return withRetry(retry, mayRetryCreate, async () => {
      const billing = await this.#envelopes.envelope(job, sizeBytes - 16);
      // wire.ts caps sizeBytes at 1,000,000 (its Count), below the message limit; it is optional, so larger jobs leave it out.
      const create = {
        model: job.model,
        kind: wireKindOf(job),
        billing,
        ...(sizeBytes <= 1_000_000 && { sizeBytes }),
        ...(this.#options.checkReplicas !== false && { replicas: true }),
      };
      const response = await this.#call('POST', '/v1/jobs', create, 'creating the job', signal);
      const created = v.safeParse(CreatedJob, await response.json().catch(() => null));
      if (!created.success)
        throw new CoordinatorError(`The coordinator's answer to a new job is malformed: ${v.summarize(created.issues)}`, response.status);
      return created.output;
    });
  }

  async #runCreated(jobId: string, job: JobRequest, progress: Progress, options: RunOptions): Promise<JobResult & { attempts: number }> {
    const { signal } = options;
    const primary = deferred<JobResult | null>();
    const onReplica = (replicaJobId: string): void => {
      const check = this.#check(jobId, replicaJobId, job, primary.promise).finally(() => this.#checks.delete(check));
      this.#checks.add(check);
    };
    try {
      const result = await this.#followResuming(jobId, job, progress, options, onReplica);
      primary.resolve(result);
      // The usage the sealed result holds: the coordinator records a claim above it against the contributor.
      this.#track(this.#report(jobId, { opened: true, usage: result.usage }).then(() => undefined));
      return result;
    } catch (err) {
      primary.resolve(null);
      if (err instanceof Restarted) throw err;
      if (err instanceof UnopenableResult) return await this.#rerun(jobId, job, err, options);
      if (err instanceof JobFailed) throw err.error;
      // Anything else leaves the job running at the coordinator: cancel it so nobody works or pays for it.
      await this.#cancel(jobId);
      if (signal?.aborted) throw new AbortedError(`Job ${jobId}`);
      const cause = err instanceof StreamBroken ? err.error : err;
      throw cause instanceof SpinneretError ? cause : networkError(cause, this.#url, `following job ${jobId}`);
    }
  }

  /**
   * Follows the job to its result, reopening a broken stream with backoff. A reopened stream
   * replays the job's events; `progress` skips what was handled. The retry budget starts again
   * whenever a stream made progress, so only a coordinator that stays away ends the job.
   */
  async #followResuming(
    jobId: string,
    job: JobRequest,
    progress: Progress,
    options: RunOptions,
    onReplica?: (replicaJobId: string) => void,
  ): Promise<JobResult & { attempts: number }> {
    let started = Date.now();
    for (let n = 1; ; n++) {
      const before = progress.seen;
      try {
        return await this.#follow(jobId, job, progress, options, onReplica);
      } catch (err) {
        if (!(err instanceof StreamBroken) || options.signal?.aborted === true) throw err;
        if (progress.seen > before) {
          n = 1;
          started = Date.now();
        }
        const wait = backoffMs(n, this.#retry);
        const elapsed = Date.now() - started;
        if (n >= this.#retry.attempts || elapsed + wait > this.#retry.forMs)
          throw new RetriesExhaustedError(this.#url, `following job ${jobId}`, n, elapsed, err.error);
        await sleep(wait, options.signal);
      }
    }
  }

  async #follow(
    jobId: string,
    job: JobRequest,
    progress: Progress,
    { signal, onDelta }: RunOptions,
    onReplica?: (replicaJobId: string) => void,
  ): Promise<JobResult & { attempts: number }> {
    const events = await this.#call('GET', `/v1/jobs/${jobId}/events`, undefined, 'opening the event stream', signal).catch(
      (err: unknown) => {
        // Unreachable or 5xx: the stream can be opened again; a 404/409/410 cannot.
        throw err instanceof CoordinatorUnavailableError ? new StreamBroken(err) : err;
      },
    );
    if (events.body === null) throw new CoordinatorError(`The event stream of job ${jobId} has no body.`, events.status);
    const { emitted } = progress;

    const submit = async (assignment: Assignment): Promise<void> => {
      if (progress.current !== null && assignment.attempt <= progress.current.attempt) return;
      // A fresh result key per attempt: a contributor that dropped cannot write into a later attempt's stream.
      // Sealed once per attempt: a payload sent again after a broken connection carries the same key.
      let sealing = progress.sealing;
      if (sealing?.attempt !== assignment.attempt) {
        const keys = await generateHpkeKeyPair();
        const resultKey = await exportPublicKey(keys.publicKey);
        const aad = { jobId, attempt: assignment.attempt, model: job.model, kind: wireKindOf(job) };
        const sealed = await sealJob(assignment.hpkeKey, { request: job, resultKey }, aad);
        sealing = { attempt: assignment.attempt, keys, body: { attempt: assignment.attempt, sealed } };
        progress.sealing = sealing;
      }
      const put = await this.#call('PUT', `/v1/jobs/${jobId}/payload`, sealing.body, 'sending the payload', signal, [409]).catch(
        (err: unknown) => {
          // Not answered: the replayed `assigned` event of a reopened stream sends it again.
          throw err instanceof CoordinatorUnavailableError && err.status === 0 ? new StreamBroken(err) : err;
        },
      );
      // 409: this attempt is superseded (the next `assigned` event follows), or its payload already arrived.
      if (put.status === 409) await put.body?.cancel();
      progress.current = { attempt: assignment.attempt, opener: createResultOpener(sealing.keys, jobId), opened: 0, text: '', tokens: [] };
    };

    if (progress.inline !== null) {
      const inline = progress.inline;
      progress.inline = null;
      await submit(inline);
    }
    for await (const line of ndjsonLines(events.body)) {
      const parsed = parseFrame(JobEvent, line);
      if (!parsed.ok) throw new CoordinatorError(`The coordinator sent a malformed event for job ${jobId}: ${parsed.error.message}`, 0);
      const event = parsed.value;
      progress.seen++;
      if (event.type === 'failed' && event.error.code === 'RESTARTED') throw new Restarted(failedJobError(event.error, jobId));
      if (event.type === 'failed') throw new JobFailed(failedJobError(event.error, jobId));
      if (event.type === 'assigned') {
        await submit(event.assignment);
        continue;
      }
      if (event.type === 'replica-assigned') {
        if (!progress.replicas.has(event.jobId)) onReplica?.(event.jobId);
        progress.replicas.add(event.jobId);
        continue;
      }
      const attempt = progress.current;
      if (attempt === null || event.attempt !== attempt.attempt || event.seq < attempt.opened) continue;
      let piece: Awaited<ReturnType<ResultOpener['open']>>;
      try {
        piece = await attempt.opener.open({ seq: event.seq, final: event.final, sealed: event.sealed });
      } catch (err) {
        // A delivered result that does not open is garbage: it is reported, its credit voided, and the job run again.
        // A broken chunk mid-stream fails the job as before (it is cancelled, so nobody pays for it).
        if (event.final) throw new UnopenableResult(err);
        throw err;
      }
      attempt.opened++;
      if (piece.type === 'result') return { ...piece.result, attempts: attempt.attempt };
      attempt.text += piece.text;
      attempt.tokens.push(...piece.tokens);
      const fresh = unseen(emitted, attempt, jobId);
      if (fresh !== null && onDelta !== undefined) onDelta(fresh);
    }
    // The coordinator ends a job's stream only after its last event: an end before it is a broken connection.
    throw new StreamBroken(new CoordinatorError(`The coordinator closed the event stream of job ${jobId} before the result arrived.`, 0));
  }

  /**
   * Runs the replica of `jobId` (the same request, sealed for its own contributor), compares
   * its result with the primary's and posts the verdict; then the tie-break, if one is asked.
   */
  async #check(jobId: string, replicaJobId: string, job: JobRequest, primary: Promise<JobResult | null>): Promise<void> {
    const report = (check: ReplicaCheck): void => this.#options.onCheck?.(check);
    try {
      // A generation with token ids is checked by scoring it: the replica runs one teacher-forced
      // pass over the primary's output, so an honest device of another backend still agrees.
      const scoring = job.kind === 'generate' || job.kind === 'chat';
      const early = scoring ? null : this.#followResuming(replicaJobId, job, newProgress(), {});
      const first = await primary;
      if (first === null) {
        await this.#cancel(replicaJobId);
        return report({ jobId, replicaJobId, agree: null, reason: 'The job failed, so there is nothing to compare.' });
      }
      const score = scoring ? scoreRequestFor(job, first) : null;
      const replica = await (early ?? this.#followResuming(replicaJobId, score ?? job, newProgress(), {}));
      const a = score === null ? compareResults(first, replica, this.#options.compare) : scoredBy(replica, score);
      const verdict: Verdict = {
        stage: 'replica',
        replicaJobId,
        agree: a.agree,
        score: a.score,
        reason: a.reason.slice(0, 500),
        ...(replica.kind === 'score' && score !== null && { scored: { positions: replica.positions, inTopK: replica.inTopK } }),
      };
      const answer = await this.#verdict(jobId, verdict);
      if (answer.tieBreak === null) return report({ jobId, replicaJobId, agree: a.agree, reason: a.reason });
      const tieBreakJobId = answer.tieBreak.jobId;
      const third = await this.#followResuming(tieBreakJobId, score ?? job, newProgress(), {});
      const withPrimary = score === null ? compareResults(third, first, this.#options.compare) : scoredBy(third, score);
      // Scored, the replica gave a count, not an output: it is right when the third device also finds the output unlikely.
      const withReplica =
        score === null ? compareResults(third, replica, this.#options.compare) : { ...withPrimary, agree: !withPrimary.agree };
      const said = (x: typeof a) => ({ agree: x.agree, score: x.score, reason: x.reason.slice(0, 500) });
      await this.#verdict(jobId, {
        stage: 'tie-break',
        tieBreakJobId,
        withPrimary: said(withPrimary),
        withReplica: said(withReplica),
        ...(third.kind === 'score' && score !== null && { scored: { positions: third.positions, inTopK: third.inTopK } }),
      });
      report({
        jobId,
        replicaJobId,
        agree: false,
        reason: a.reason,
        tieBreak: { jobId: tieBreakJobId, withPrimary: withPrimary.agree, withReplica: withReplica.agree },
      });
    } catch (err) {
      const error = err instanceof JobFailed ? err.error.message : err instanceof Error ? err.message : String(err);
      report({ jobId, replicaJobId, agree: null, reason: 'The check could not finish.', error });
    }
  }

  async #verdict(jobId: string, verdict: Verdict): Promise<VerdictAnswer> {
    const response = await this.#call('POST', `/v1/jobs/${jobId}/verdict`, verdict, 'posting a replica verdict');
    const answer = v.safeParse(VerdictAnswer, await response.json().catch(() => null));
    if (!answer.success) throw new CoordinatorError(`The answer to a verdict is malformed: ${v.summarize(answer.issues)}`, response.status);
    return answer.output;
  }

  /** Keeps a background post (a report, a check) until it settles, so `idle()` waits for it. */
  #track(work: Promise<void>): void {
    const tracked = work.catch(() => undefined).finally(() => this.#checks.delete(tracked));
    this.#checks.add(tracked);
  }

  async #report(jobId: string, report: JobReport): Promise<JobReportAnswer | null> {
    const response = await this.#call('POST', `/v1/jobs/${jobId}/report`, report, 'reporting the result', undefined, [404, 409]);
    if (!response.ok) {
      await response.body?.cancel();
      return null;
    }
    const answer = v.safeParse(JobReportAnswer, await response.json().catch(() => null));
    return answer.success ? answer.output : null;
  }

  /**
   * The primary result of `jobId` did not open: the SDK says so (the contributor's credit is
   * voided, never refunded to anyone) and follows the free re-run the coordinator places.
   */
  async #rerun(
    jobId: string,
    job: JobRequest,
    unopenable: UnopenableResult,
    options: RunOptions,
  ): Promise<JobResult & { attempts: number }> {
    const answer = await this.#report(jobId, { opened: false, reason: unopenable.message.slice(0, 500) }).catch(() => null);
    const rerun = answer?.rerun ?? null;
    if (rerun === null) {
      // No re-run (a coordinator without reports, or none could be placed): the open error stands.
      if (unopenable.error instanceof SpinneretError) throw unopenable.error;
      throw new CoordinatorError(`The result of job ${jobId} could not be opened (${unopenable.message}); submit the job again.`, 0);
    }
    try {
      return await this.#followResuming(rerun.jobId, job, newProgress(), options);
    } catch (err) {
      if (err instanceof JobFailed) throw err.error;
      if (err instanceof UnopenableResult)
        throw new CoordinatorError(`The re-run ${rerun.jobId} of job ${jobId} did not open either: ${err.message}`, 0);
      await this.#cancel(rerun.jobId);
      throw err instanceof SpinneretError ? err : networkError(err, this.#url, `following the re-run of job ${jobId}`);
    }
  }

  async #cancel(jobId: string): Promise<void> {
    try {
      const response = await this.#fetch(`${this.#url}/v1/jobs/${jobId}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${this.#apiKey}` },
        signal: AbortSignal.timeout(5000),
      });
      await response.body?.cancel();
    } catch {
      // Best effort: the coordinator's lease expiry ends the job anyway.
    }
  }

  async #call(method: string, path: string, body: unknown, what: string, signal?: AbortSignal, allowed: number[] = []): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#apiKey}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      const init: RequestInit = { method, headers, body: body === undefined ? null : JSON.stringify(body) };
      if (signal !== undefined) init.signal = signal;
      response = await this.#fetch(`${this.#url}${path}`, init);
    } catch (err) {
      throw networkError(err, this.#url, what);
    }
    if (!response.ok && !allowed.includes(response.status)) throw await httpError(response, what, this.#url);
    return response;
  }
}
