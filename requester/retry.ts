/**
 * Retries of the requester SDK while the coordinator is unreachable (docs/protocol.md,
 * "Surviving faults"): capped exponential backoff with full jitter, bounded by attempts and
 * by time, abortable, and never holding a timer once it is done.
 */
import { AbortedError } from '../protocol/errors.ts';
import { CoordinatorUnavailableError, RetriesExhaustedError } from './errors.ts';

export interface RetryPolicy {
  /** Tries in all, the first included (default 8). */
  attempts: number;
  /** Time from the first try after which no new one starts, ms (default 30,000). */
  forMs: number;
  /** The first backoff's ceiling, ms (default 200); it doubles per try. */
  baseMs: number;
  /** No backoff is longer than this, ms (default 5,000). */
  capMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, forMs: 30_000, baseMs: 200, capMs: 5_000 };

/** The wait before try `n + 1` after `n` failed tries (n ≥ 1): uniform in [0, min(cap, base·2^(n−1))]. */
export function backoffMs(n: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, n - 1));
  return Math.floor(random() * ceiling);
}

/** The code of a request on the requester channel that was never written (the channel had closed). */
export const NOT_SENT = 'SPINNERET_NOT_SENT';

/** Codes of a connection that was never made, or a request never written: it surely did not reach the coordinator. */
const NOT_CONNECTED = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  NOT_SENT,
]);

/** Whether `err` (from fetch, possibly wrapped) says no connection was made. */
export function neverConnected(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const { code, syscall } = e as { code?: unknown; syscall?: unknown };
    if (typeof code === 'string' && NOT_CONNECTED.has(code)) return true;
    // Any failure of the connect call itself (`connect ECONNRESET` from a server closing its listener): nothing was sent.
    if (syscall === 'connect') return true;
  }
  return false;
}

/**
 * Whether creating a job may be tried again: the coordinator was not reached, or it answered
 * 503 (draining, or its queue full), which creates and reserves nothing. A request cut off
 * after it was sent is retried only when it carries an idempotency key (`idempotent`): the job
 * may exist, and the coordinator answers the repeat with it instead of creating and charging a
 * second one.
 */
export function mayRetryCreate(err: unknown, idempotent = false): boolean {
  if (!(err instanceof CoordinatorUnavailableError)) return false;
  return err.status === 503 || (err.status === 0 && (idempotent || neverConnected(err)));
}

/**
 * Whether sending a job's sealed payload may be tried again: the coordinator answered 503 (the
 * replica that holds the job did not answer the one called, or the database is down). The
 * payload is the same bytes for the same attempt, and the coordinator takes one payload per
 * attempt (a repeat after one that arrived is refused 409, which the SDK takes as sent), so
 * trying again never runs the job twice.
 */
export function mayRetrySubmit(err: unknown): boolean {
  return err instanceof CoordinatorUnavailableError && err.status === 503;
}

/** Resolves after `ms`, or rejects with AbortedError when `signal` aborts; clears its timer either way. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(new AbortedError('Waiting to retry'));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortedError('Waiting to retry'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** What a {@link Backoff} retries under, and names in its error. */
export interface BackoffOptions {
  policy: RetryPolicy;
  what: string;
  coordinatorUrl: string;
  signal?: AbortSignal | undefined;
  random?: () => number;
}

/**
 * The tries of one thing (creating a job, sending its payload) under a {@link RetryPolicy}:
 * each failure waits its backoff, until the policy's tries or time run out: then
 * RetriesExhaustedError, with the last failure as its cause. Kept across calls when the
 * tries of one thing are spread over several (a job created again after its `submit` was refused).
 */
export class Backoff {
  readonly #options: BackoffOptions;
  readonly #started = Date.now();
  #failed = 0;

  constructor(options: BackoffOptions) {
    this.#options = options;
  }

  get options(): BackoffOptions {
    return this.#options;
  }

  /** After a failed try: waits before the next, or throws RetriesExhaustedError (AbortedError once aborted). */
  async failed(err: unknown): Promise<void> {
    const { policy, signal } = this.#options;
    if (signal?.aborted === true) throw new AbortedError(this.#options.what);
    this.#failed++;
    const wait = backoffMs(this.#failed, policy, this.#options.random);
    const elapsed = Date.now() - this.#started;
    if (this.#failed >= policy.attempts || elapsed + wait > policy.forMs) {
      throw new RetriesExhaustedError(this.#options.coordinatorUrl, this.#options.what, this.#failed, elapsed, err);
    }
    await sleep(wait, signal);
  }
}

/**
 * Runs `attempt` until it succeeds, fails with an error `retryable` refuses, or the policy's
 * tries or time run out: then RetriesExhaustedError, with the last failure as its cause.
 */
export async function withRetry<T>(
  options: Backoff | BackoffOptions,
  retryable: (err: unknown) => boolean,
  attempt: () => Promise<T>,
): Promise<T> {
  const backoff = options instanceof Backoff ? options : new Backoff(options);
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (backoff.options.signal?.aborted === true) throw new AbortedError(backoff.options.what);
      if (!retryable(err)) throw err;
      await backoff.failed(err);
    }
  }
}
