/**
 * The requester SDK: runs one job through the coordinator's HTTP API (docs/protocol.md,
 * "Requester ↔ coordinator"). The request is sealed here to the assigned contributor and the
 * result is opened here; only sealed envelopes go over the wire.
 */
import * as v from 'valibot';
import { compareResults, type CompareOptions } from '../protocol/compare.ts';
import { createResultOpener, exportPublicKey, generateHpkeKeyPair, sealJob, type ResultOpener } from '../protocol/envelope.ts';
import { AbortedError, EngineError, InvalidInputError, SpinneretError } from '../protocol/errors.ts';
import { parseJobRequest, type JobRequest, type JobResult, wireKindOf } from '../protocol/jobs.ts';
import { JobKind } from '../protocol/manifest.ts';
import {
  Account,
  type Assignment,
  type DepositInstructions,
  type JobReport,
  type JobReportAnswer,
  MAX_MESSAGE_BYTES,
  type SubmitPayload,
  type Verdict,
  VerdictAnswer,
} from '../protocol/wire.ts';
import type { ModelFacts } from '../protocol/wire.ts';
import { EnvelopeCounter } from './billing.ts';
import { ChannelLine } from './channel.ts';
import { CoordinatorError, failedJobError, networkError } from './errors.ts';
import { type Call, httpCall, HttpLine, type JobLine } from './http-line.ts';

export interface RequesterClientOptions {
  /** Base URL of the coordinator, e.g. `https://coordinator.example` (no trailing `/v1`). */
  coordinatorUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey: string;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /**
   * Run jobs over the requester channel (one WebSocket for every job, `/v1/requester`) when the
   * coordinator has one, else over HTTP. Default: true, unless `fetch` is given (then every
   * request goes through it).
   */
  channel?: boolean;
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

const ModelEntry = v.object({ id: v.string(), kinds: v.array(JobKind) });
const ModelList = v.union([v.object({ models: v.array(ModelEntry) }), v.object({ data: v.array(ModelEntry) })]);

/** One attempt: the contributor it was sealed for and the opener of its result stream. */
interface Attempt {
  attempt: number;
  opener: ResultOpener;
  /** Chunks opened so far; a chunk below it is a duplicate and skipped. */
  opened: number;
  text: string;
  tokens: number[];
}

export class RequesterClient {
  readonly #url: string;
  readonly #apiKey: string;
  readonly #options: RequesterClientOptions;
  readonly #checks = new Set<Promise<void>>();
  readonly #envelopes: EnvelopeCounter;
  readonly #call: Call;
  readonly #http: HttpLine;
  readonly #useChannel: boolean;
  #channel: ChannelLine | null = null;
  #opening: Promise<JobLine> | null = null;
  /** After the channel could not open, HTTP until then (ms). */
  #channelRetryAt = 0;

  constructor(options: RequesterClientOptions) {
    this.#url = options.coordinatorUrl.replace(/\/+$/, '');
    this.#apiKey = options.apiKey;
    const fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
    this.#options = options;
    this.#call = httpCall(this.#url, options.apiKey, fetchFn);
    this.#http = new HttpLine(this.#url, options.apiKey, fetchFn);
    this.#useChannel = options.channel ?? options.fetch === undefined;
    this.#envelopes = new EnvelopeCounter((path, what) => this.#call('GET', path, undefined, what), fetchFn);
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

  /** The channel when the coordinator has one and it opens, else HTTP; a failed channel is tried again after a minute. */
  #line(): Promise<JobLine> {
    if (!this.#useChannel) return Promise.resolve(this.#http);
    if (this.#channel?.usable === true) return Promise.resolve(this.#channel);
    if (Date.now() < this.#channelRetryAt) return Promise.resolve(this.#http);
    this.#opening ??= ChannelLine.open(this.#url, this.#apiKey)
      .then(
        (line): JobLine => (this.#channel = line),
        (): JobLine => {
          this.#channelRetryAt = Date.now() + 60_000;
          return this.#http;
        },
      )
      .finally(() => (this.#opening = null));
    return this.#opening;
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
   * result and the attempt that produced it.
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
    // wire.ts caps sizeBytes at 1,000,000 (its Count), below the message limit; it is optional, so larger jobs leave it out.
    const replicas = this.#options.checkReplicas !== false;
    const billing = await this.#envelopes.envelope(job, sizeBytes - 16);
    const create = {
      model: job.model,
      kind: wireKindOf(job),
      billing,
      ...(sizeBytes <= 1_000_000 && { sizeBytes }),
      ...(replicas && { replicas }),
    };
    const line = await this.#line();
    const { jobId, assignment } = await line.create(create, signal);
    const primary = deferred<JobResult | null>();
    const onReplica = (replicaJobId: string): void => {
      const check = this.#check(line, jobId, replicaJobId, job, primary.promise).finally(() => this.#checks.delete(check));
      this.#checks.add(check);
    };
    try {
      const result = await this.#follow(line, jobId, job, assignment, options, onReplica);
      primary.resolve(result);
      // The usage the sealed result holds: the coordinator records a claim above it against the contributor.
      this.#track(this.#report(line, jobId, { opened: true, usage: result.usage }).then(() => undefined));
      return result;
    } catch (err) {
      primary.resolve(null);
      if (err instanceof UnopenableResult) return await this.#rerun(line, jobId, job, err, options);
      if (err instanceof JobFailed) throw err.error;
      // Anything else leaves the job running at the coordinator: cancel it so nobody works or pays for it.
      await line.cancel(jobId);
      if (signal?.aborted) throw new AbortedError(`Job ${jobId}`);
      throw err instanceof SpinneretError ? err : networkError(err, this.#url, `following job ${jobId}`);
    }
  }

  async #follow(
    line: JobLine,
    jobId: string,
    job: JobRequest,
    inline: Assignment | null,
    { signal, onDelta }: RunOptions,
    onReplica?: (replicaJobId: string) => void,
  ): Promise<JobResult & { attempts: number }> {
    const events = await line.events(jobId, signal);
    const emitted = { text: '', tokens: [] as number[] };
    // An object, not a `let`: TypeScript does not see the closure below assigning it.
    const state: { current: Attempt | null } = { current: null };

    const submit = async (assignment: Assignment): Promise<void> => {
      if (state.current !== null && assignment.attempt <= state.current.attempt) return;
      // A fresh result key per attempt: a contributor that dropped cannot write into a later attempt's stream.
      const keys = await generateHpkeKeyPair();
      const resultKey = await exportPublicKey(keys.publicKey);
      const aad = { jobId, attempt: assignment.attempt, model: job.model, kind: wireKindOf(job) };
      const sealed = await sealJob(assignment.hpkeKey, { request: job, resultKey }, aad);
      state.current = { attempt: assignment.attempt, opener: createResultOpener(keys, jobId), opened: 0, text: '', tokens: [] };
      const body: SubmitPayload = { attempt: assignment.attempt, sealed };
      await line.submit(jobId, body, signal);
    };

    if (inline !== null) await submit(inline);
    for await (const event of events) {
      if (event.type === 'failed') throw new JobFailed(failedJobError(event.error, jobId));
      if (event.type === 'assigned') {
        await submit(event.assignment);
        continue;
      }
      if (event.type === 'replica-assigned') {
        onReplica?.(event.jobId);
        continue;
      }
      const attempt = state.current;
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
    throw new CoordinatorError(`The coordinator closed the event stream of job ${jobId} before the result arrived.`, 0);
  }

  /**
   * Runs the replica of `jobId` (the same request, sealed for its own contributor), compares
   * its result with the primary's and posts the verdict; then the tie-break, if one is asked.
   */
  async #check(line: JobLine, jobId: string, replicaJobId: string, job: JobRequest, primary: Promise<JobResult | null>): Promise<void> {
    const report = (check: ReplicaCheck): void => this.#options.onCheck?.(check);
    try {
      const replica = await this.#follow(line, replicaJobId, job, null, {});
      const first = await primary;
      if (first === null) {
        await line.cancel(replicaJobId);
        return report({ jobId, replicaJobId, agree: null, reason: 'The job failed, so there is nothing to compare.' });
      }
      const a = compareResults(first, replica, this.#options.compare);
      const verdict: Verdict = { stage: 'replica', replicaJobId, agree: a.agree, score: a.score, reason: a.reason.slice(0, 500) };
      const answer = await this.#verdict(jobId, verdict);
      if (answer.tieBreak === null) return report({ jobId, replicaJobId, agree: a.agree, reason: a.reason });
      const tieBreakJobId = answer.tieBreak.jobId;
      const third = await this.#follow(line, tieBreakJobId, job, null, {});
      const withPrimary = compareResults(third, first, this.#options.compare);
      const withReplica = compareResults(third, replica, this.#options.compare);
      const said = (x: typeof a) => ({ agree: x.agree, score: x.score, reason: x.reason.slice(0, 500) });
      await this.#verdict(jobId, { stage: 'tie-break', tieBreakJobId, withPrimary: said(withPrimary), withReplica: said(withReplica) });
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

  async #report(line: JobLine, jobId: string, report: JobReport): Promise<JobReportAnswer | null> {
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
      return await this.#follow(line, rerun.jobId, job, null, options);
    } catch (err) {
      if (err instanceof JobFailed) throw err.error;
      if (err instanceof UnopenableResult)
        throw new CoordinatorError(`The re-run ${rerun.jobId} of job ${jobId} did not open either: ${err.message}`, 0);
      await line.cancel(rerun.jobId);
      throw err instanceof SpinneretError ? err : networkError(err, this.#url, `following the re-run of job ${jobId}`);
    }
  }
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** The final chunk of a delivered result did not open or parse: the contributor sent garbage. */
class UnopenableResult extends Error {
  constructor(readonly error: unknown) {
    super(error instanceof Error ? error.message : String(error));
  }
}

/** A `failed` event: the coordinator already ended the job, so it is not cancelled again. */
class JobFailed extends Error {
  constructor(readonly error: SpinneretError) {
    super(error.message);
  }
}

/**
 * The part of an attempt's stream the caller has not seen. After a re-assignment the new
 * contributor regenerates text already streamed from the dropped one; that prefix is
 * skipped. If it differs (another numerics class), the streamed text cannot be taken back.
 */
function unseen(emitted: { text: string; tokens: number[] }, attempt: Attempt, jobId: string): { text: string; tokens: number[] } | null {
  const sameText = attempt.text.startsWith(emitted.text) || emitted.text.startsWith(attempt.text);
  const n = Math.min(attempt.tokens.length, emitted.tokens.length);
  const sameTokens = attempt.tokens.slice(0, n).every((t, i) => t === emitted.tokens[i]);
  if (!sameText || !sameTokens) {
    throw new EngineError(
      `The contributor that took over job ${jobId} produced different text than the one that dropped, after part of it was streamed. Run the job again; with temperature 0 and a seed, retries agree more often.`,
      { jobId, attempt: attempt.attempt },
    );
  }
  if (attempt.text.length <= emitted.text.length && attempt.tokens.length <= emitted.tokens.length) return null;
  const fresh = { text: attempt.text.slice(emitted.text.length), tokens: attempt.tokens.slice(emitted.tokens.length) };
  emitted.text += fresh.text;
  emitted.tokens.push(...fresh.tokens);
  return fresh;
}
