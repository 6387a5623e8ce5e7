/**
 * The requester SDK: runs one job through the coordinator's HTTP API (docs/protocol.md,
 * "Requester ↔ coordinator"). The request is sealed here to the assigned contributor and the
 * result is opened here; only sealed envelopes go over the wire. Following a job's event stream
 * is in ./follow.ts, the replica checks in ./replica-check.ts.
 */
import * as v from 'valibot';
import { toB64url } from '../protocol/envelope.ts';
import { AbortedError, InvalidInputError, SpinneretError } from '../protocol/errors.ts';
import { parseJobRequest, type JobRequest, type JobResult, wireKindOf } from '../protocol/jobs.ts';
import { JobKind } from '../protocol/manifest.ts';
import {
  Account,
  type Assignment,
  type JobReport,
  type JobReportAnswer,
  MAX_MESSAGE_BYTES,
  type ModelFacts,
  type Verdict,
  VerdictAnswer,
} from '../protocol/wire.ts';
import { EnvelopeCounter } from './billing.ts';
import { ChannelLine } from './channel.ts';
import type { AccountBalance, ModelListing, RequesterClientOptions, RunOptions } from './client-types.ts';
import { CoordinatorError, CoordinatorUnavailableError, JobInterruptedError, networkError, RetriesExhaustedError } from './errors.ts';
import { follow } from './follow.ts';
import { type Call, httpCall, HttpLine, type JobLine } from './http-line.ts';
import { checkReplica, type CheckParts } from './replica-check.ts';
import { Backoff, backoffMs, DEFAULT_RETRY, mayRetryCreate, neverConnected, type RetryPolicy, sleep, withRetry } from './retry.ts';
import { deferred, JobFailed, newProgress, NotCreated, type Progress, Restarted, StreamBroken, UnopenableResult } from './stream.ts';

export type { AccountBalance, ModelListing, ReplicaCheck, RequesterClientOptions, RunOptions } from './client-types.ts';

const ModelEntry = v.object({ id: v.string(), kinds: v.array(JobKind) });
const ModelList = v.union([v.object({ models: v.array(ModelEntry) }), v.object({ data: v.array(ModelEntry) })]);

export class RequesterClient {
  readonly #url: string;
  readonly #apiKey: string;
  readonly #options: RequesterClientOptions;
  readonly #checks = new Set<Promise<void>>();
  readonly #envelopes: EnvelopeCounter;
  readonly #retry: RetryPolicy;
  readonly #call: Call;
  readonly #http: HttpLine;
  readonly #useChannel: boolean;
  #channel: ChannelLine | null = null;
  #opening: Promise<JobLine> | null = null;
  /** After the channel could not open, HTTP until then (ms). */
  #channelRetryAt = 0;
  readonly #checkParts: CheckParts;

  constructor(options: RequesterClientOptions) {
    this.#url = options.coordinatorUrl.replace(/\/+$/, '');
    this.#apiKey = options.apiKey;
    const fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
    this.#options = options;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#call = httpCall(this.#url, options.apiKey, fetchFn);
    this.#http = new HttpLine(this.#url, options.apiKey, fetchFn);
    this.#useChannel = options.channel ?? false;
    this.#envelopes = new EnvelopeCounter((path, what) => this.#call('GET', path, undefined, what), fetchFn);
    this.#checkParts = {
      follow: (line, jobId, request) => this.#followResuming(line, jobId, request, newProgress(), {}),
      verdict: (jobId, verdict) => this.#verdict(jobId, verdict),
      compare: options.compare,
      onCheck: options.onCheck,
    };
  }

  /** Closes the requester channel, if one is open (jobs still running on it fail). */
  close(): void {
    this.#channel?.close();
    this.#channel = null;
  }

  /** Whether jobs go over the requester channel now (else HTTP). */
  async transport(): Promise<'channel' | 'http'> {
    return (await this.#line()) === this.#http ? 'http' : 'channel';
  }

  /**
   * The channel when asked for, the coordinator has one and it opens, else HTTP. A coordinator
   * that was unreachable or answered 5xx (a restart, a drain, a load balancer without a backend)
   * is asked again at the next call; one that refused the channel otherwise (it has none, not for
   * this key, or cut the upgrade off) after a minute.
   */
  #line(): Promise<JobLine> {
    if (!this.#useChannel) return Promise.resolve(this.#http);
    if (this.#channel?.usable === true) return Promise.resolve(this.#channel);
    if (Date.now() < this.#channelRetryAt) return Promise.resolve(this.#http);
    this.#opening ??= ChannelLine.open(this.#url, this.#apiKey, undefined, this.#options.assignAhead ?? 0)
      .then(
        (line): JobLine => (this.#channel = line),
        (err: unknown): JobLine => {
          const passing = err instanceof CoordinatorUnavailableError && (err.status >= 500 || neverConnected(err));
          if (!passing) this.#channelRetryAt = Date.now() + 60_000;
          return this.#http;
        },
      )
      .finally(() => (this.#opening = null));
    return this.#opening;
  }

  /** Where to go on with a job `line` carried: HTTP stays HTTP; a channel is the open one, a new one, or HTTP. */
  async #current(line: JobLine): Promise<JobLine> {
    return line === this.#http ? line : this.#line();
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
   * the coordinator ended by restarting or shutting down (`RESTARTED`, `DRAINING`: nothing
   * charged) is run again, up to `maxReruns` times.
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
      const creation = this.#creation(signal);
      try {
        for (;;) {
          const { line, jobId, assignment } = await this.#create(job, sizeBytes, creation);
          try {
            return await this.#runCreated(line, jobId, job, newProgress(emitted, assignment), options);
          } catch (err) {
            if (!(err instanceof NotCreated)) throw err;
            // Refused at its `submit` (nothing created, nothing reserved): created again under the same backoff and key.
            await creation.backoff.failed(err.error);
          }
        }
      } catch (err) {
        if (!(err instanceof Restarted)) throw err;
        if (signal?.aborted === true) throw new AbortedError(`Job ${err.jobId}`);
        if (reruns >= (this.#options.maxReruns ?? 3)) throw new JobInterruptedError(this.#url, err.jobId, err.code, reruns, err.error);
        // A coordinator that is going away is given a moment before the job is created again.
        await sleep(backoffMs(reruns + 1, this.#retry), signal);
      }
    }
  }

  /**
   * Creates the job (`POST /v1/jobs`, or `create` on the channel), retrying with backoff while
   * the coordinator is unreachable or draining; each try takes the line anew (a channel that
   * closed is replaced), and the job is followed on the line that created it.
   */
  async #create(
    job: JobRequest,
    sizeBytes: number,
    creation: { backoff: Backoff; idempotencyKey: string },
  ): Promise<{ line: JobLine; jobId: string; assignment: Assignment | null }> {
    const { signal } = creation.backoff.options;
    const retryable = (err: unknown): boolean => mayRetryCreate(err, true);
    return withRetry(creation.backoff, retryable, async () => {
      const line = await this.#line();
      const billing = await this.#envelopes.envelope(job, sizeBytes - 16);
      // wire.ts caps sizeBytes at 1,000,000 (its Count), below the message limit; it is optional, so larger jobs leave it out.
      const create = {
        model: job.model,
        kind: wireKindOf(job),
        billing,
        ...(sizeBytes <= 1_000_000 && { sizeBytes }),
        ...(this.#options.checkReplicas !== false && { replicas: true }),
      };
      return { line, ...(await line.create(create, signal, creation.idempotencyKey)) };
    });
  }

  /** One logical creation: its backoff over every try, and the idempotency key every try carries. */
  #creation(signal: AbortSignal | undefined): { backoff: Backoff; idempotencyKey: string } {
    return {
      backoff: new Backoff({ policy: this.#retry, what: 'creating the job', coordinatorUrl: this.#url, signal }),
      // One key for every try of this creation: a try cut off after it was sent is repeated, and the coordinator answers with the job it made.
      idempotencyKey: toB64url(crypto.getRandomValues(new Uint8Array(18))),
    };
  }

  async #runCreated(
    line: JobLine,
    jobId: string,
    job: JobRequest,
    progress: Progress,
    options: RunOptions,
  ): Promise<JobResult & { attempts: number }> {
    const { signal } = options;
    const primary = deferred<JobResult | null>();
    const onReplica = (replicaJobId: string): void => {
      const check = checkReplica(this.#checkParts, line, jobId, replicaJobId, job, primary.promise).finally(() =>
        this.#checks.delete(check),
      );
      this.#checks.add(check);
    };
    try {
      const result = await this.#followResuming(line, jobId, job, progress, options, onReplica);
      primary.resolve(result);
      // The usage the sealed result holds: the coordinator records a claim above it against the contributor.
      this.#track(this.#report(await this.#current(line), jobId, { opened: true, usage: result.usage }).then(() => undefined));
      return result;
    } catch (err) {
      primary.resolve(null);
      if (err instanceof Restarted || err instanceof NotCreated) throw err;
      if (err instanceof UnopenableResult) return await this.#rerun(line, jobId, job, err, options);
      if (err instanceof JobFailed) throw err.error;
      // Anything else leaves the job running at the coordinator: cancel it so nobody works or pays for it.
      await (await this.#current(line)).cancel(jobId);
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
    line: JobLine,
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
        // A broken channel is followed again on a new one, or over HTTP: a job's events are the same on both.
        const current = n === 1 ? line : await this.#current(line);
        return await follow(current, jobId, job, progress, options, { policy: this.#retry, coordinatorUrl: this.#url }, onReplica);
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

  #report(line: JobLine, jobId: string, report: JobReport): Promise<JobReportAnswer | null> {
    return line.report(jobId, report);
  }

  /**
   * The primary result of `jobId` did not open: the SDK says so (the contributor's credit is
   * voided, never refunded to anyone) and follows the free re-run the coordinator places.
   */
  async #rerun(
    line: JobLine,
    jobId: string,
    job: JobRequest,
    unopenable: UnopenableResult,
    options: RunOptions,
  ): Promise<JobResult & { attempts: number }> {
    const answer = await this.#report(line, jobId, { opened: false, reason: unopenable.message.slice(0, 500) }).catch(() => null);
    const rerun = answer?.rerun ?? null;
    if (rerun === null) {
      // No re-run (a coordinator without reports, or none could be placed): the open error stands.
      if (unopenable.error instanceof SpinneretError) throw unopenable.error;
      throw new CoordinatorError(`The result of job ${jobId} could not be opened (${unopenable.message}); submit the job again.`, 0);
    }
    try {
      return await this.#followResuming(line, rerun.jobId, job, newProgress(), options);
    } catch (err) {
      if (err instanceof JobFailed) throw err.error;
      if (err instanceof UnopenableResult)
        throw new CoordinatorError(`The re-run ${rerun.jobId} of job ${jobId} did not open either: ${err.message}`, 0);
      await line.cancel(rerun.jobId);
      throw err instanceof SpinneretError ? err : networkError(err, this.#url, `following the re-run of job ${jobId}`);
    }
  }
}
