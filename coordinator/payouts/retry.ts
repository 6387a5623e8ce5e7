/** Timeouts and retries for chain calls. */
import { ChainTimeoutError } from './errors.ts';

/** How chain calls are bounded and retried. */
export interface RetryPolicy {
  /** Per-attempt limit, ms. */
  readonly timeoutMs: number;
  /** Attempts after the first. */
  readonly retries: number;
  /** First backoff, ms; doubles each retry. */
  readonly backoffMs: number;
  readonly sleep: (ms: number) => Promise<void>;
}

/** Rejects with `ChainTimeoutError` when `promise` does not settle within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ChainTimeoutError(`${label} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Told before each retry: the attempt that failed (0 = the first), why, and the wait before the next. */
export type OnRetry = (retry: { label: string; attempt: number; error: unknown; backoffMs: number }) => void;

/**
 * Runs `fn` with a timeout, retrying with exponential backoff. Only for calls that are
 * safe to repeat (reads, or resending the very same signed message). When the last attempt
 * times out it rejects with a {@link ChainTimeoutError} that counts the attempts.
 */
export async function retrying<T>(policy: RetryPolicy, label: string, fn: () => Promise<T>, onRetry?: OnRetry): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await withTimeout(fn(), policy.timeoutMs, label);
    } catch (err) {
      if (attempt >= policy.retries) {
        if (!(err instanceof ChainTimeoutError)) throw err;
        throw new ChainTimeoutError(
          `${label} did not answer within ${policy.timeoutMs} ms in ${attempt + 1} attempt(s); check the TON endpoint`,
        );
      }
      const backoffMs = policy.backoffMs * 2 ** attempt;
      onRetry?.({ label, attempt, error: err, backoffMs });
      await policy.sleep(backoffMs);
    }
  }
}

/** `setTimeout` as a promise. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
