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

/**
 * Runs `attempt` until it succeeds, fails with an error `retryable` refuses, or the policy's
 * tries or time run out: then RetriesExhaustedError, with the last failure as its cause.
 */
export async function withRetry<T>(
  options: { policy: RetryPolicy; what: string; coordinatorUrl: string; signal?: AbortSignal | undefined; random?: () => number },
  retryable: (err: unknown) => boolean,
  attempt: () => Promise<T>,
): Promise<T> {
  const { policy, signal } = options;
  const started = Date.now();
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (signal?.aborted === true) throw new AbortedError(options.what);
      if (!retryable(err)) throw err;
      const wait = backoffMs(n, policy, options.random);
      const elapsed = Date.now() - started;
      if (n >= policy.attempts || elapsed + wait > policy.forMs) {
        throw new RetriesExhaustedError(options.coordinatorUrl, options.what, n, elapsed, err);
      }
      await sleep(wait, signal);
    }
  }
}
