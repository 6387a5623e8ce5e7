/**
 * Errors of the requester SDK talking to the coordinator over HTTP. They stay in the
 * requester's process (they never cross a worker boundary), so they extend SpinneretError
 * with code `INTERNAL` and are told apart by class and `status`.
 */
import * as v from 'valibot';
import { AbortedError, ERROR_CODES, InvalidInputError, reviveError, SpinneretError, type ErrorCode } from '../protocol/errors.ts';
import { type DepositInstructions, PaymentRequired, type WireError } from '../protocol/wire.ts';

/** The coordinator answered with an error the caller cannot fix by changing the request. */
export class CoordinatorError extends SpinneretError {
  /** HTTP status of the answer; 0 when there was none (unreachable, or a broken event stream). */
  readonly status: number;

  constructor(message: string, status: number, details?: Record<string, unknown>, options?: ErrorOptions) {
    super('INTERNAL', message, { ...details, status }, options);
    this.status = status;
    this.name = 'CoordinatorError';
  }
}

/** The coordinator refused the API key (HTTP 401/403). */
export class ApiKeyRefusedError extends CoordinatorError {
  constructor(status: number, message: string) {
    super(`API key refused by the coordinator (${message}). Check the key you configured, or ask the operator for a new one.`, status);
    this.name = 'ApiKeyRefusedError';
  }
}

/**
 * The key's balance cannot cover the job's maximum price (HTTP 402): nothing was reserved and
 * nothing runs. Deposit at least `shortfall` nanoTON to `deposit.address` with `deposit.memo`
 * as the comment, then run the job again.
 */
export class PaymentRequiredError extends CoordinatorError {
  /** The job's maximum price, nanoTON. */
  readonly required: bigint;
  /** The key's available balance, nanoTON. */
  readonly available: bigint;
  /** nanoTON missing: `required - available`. */
  readonly shortfall: bigint;
  readonly deposit: DepositInstructions;

  constructor(body: PaymentRequired) {
    const p = body.payment;
    super(
      `The API key's balance is short by ${p.shortfall} nanoTON for this job (it may cost up to ${p.required}, ${p.available} is available). Send at least ${p.shortfall} nanoTON to ${p.deposit.address} with the comment "${p.deposit.memo}", then run the job again.`,
      402,
      { required: p.required, available: p.available, shortfall: p.shortfall, deposit: p.deposit },
    );
    this.required = BigInt(p.required);
    this.available = BigInt(p.available);
    this.shortfall = BigInt(p.shortfall);
    this.deposit = p.deposit;
    this.name = 'PaymentRequiredError';
  }
}

/** The API key is over its rate or in-flight limit (HTTP 429). */
export class QuotaExceededError extends CoordinatorError {
  /** How long the coordinator asked to wait, ms; undefined when it did not say. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, message: string, retryAfterMs: number | undefined) {
    const wait = retryAfterMs === undefined ? 'a moment' : `${Math.ceil(retryAfterMs / 1000)} s`;
    super(`The API key is over its quota (${message}). Wait ${wait} and try again, or ask the operator to raise the limit.`, status, {
      retryAfterMs,
    });
    this.retryAfterMs = retryAfterMs;
    this.name = 'QuotaExceededError';
  }
}

/** The coordinator could not be reached or is failing (network error, HTTP 5xx). Retrying later may work. */
export class CoordinatorUnavailableError extends CoordinatorError {
  constructor(coordinatorUrl: string, reason: string, status = 0, options?: ErrorOptions) {
    super(
      `The coordinator at ${coordinatorUrl} is unavailable (${reason}). Check the URL and the network, then try again.`,
      status,
      { reason },
      options,
    );
    this.name = 'CoordinatorUnavailableError';
  }
}

/**
 * The coordinator stayed unreachable through every retry (bounded by attempts and time):
 * creating the job, or reopening its event stream. `attempts` tries over `elapsedMs`; the
 * last failure is the `cause`.
 */
export class RetriesExhaustedError extends CoordinatorUnavailableError {
  readonly attempts: number;
  readonly elapsedMs: number;

  constructor(coordinatorUrl: string, what: string, attempts: number, elapsedMs: number, cause: unknown) {
    const last = cause instanceof Error ? cause.message : String(cause);
    super(coordinatorUrl, `${what}: gave up after ${attempts} tries in ${Math.round(elapsedMs / 1000)} s; last: ${last}`, 0, { cause });
    this.attempts = attempts;
    this.elapsedMs = elapsedMs;
    this.name = 'RetriesExhaustedError';
  }
}

/**
 * The coordinator ended the job without running it to the end, by restarting (`RESTARTED`) or
 * shutting down (`DRAINING`), and it did so again each of the `maxReruns` times the job was run
 * again. Nothing was charged for any of them; submit the job again once the coordinator is back.
 */
export class JobInterruptedError extends CoordinatorUnavailableError {
  /** The last run's job id. */
  readonly jobId: string;
  readonly wireCode: 'RESTARTED' | 'DRAINING';
  /** Times the job was run again before this error. */
  readonly reruns: number;

  constructor(coordinatorUrl: string, jobId: string, wireCode: 'RESTARTED' | 'DRAINING', reruns: number, cause: unknown) {
    const why = wireCode === 'RESTARTED' ? 'restarted' : 'shut down';
    super(coordinatorUrl, `it ${why} while job ${jobId} ran, after ${reruns} re-run${reruns === 1 ? '' : 's'}; nothing was charged`, 503, {
      cause,
    });
    this.jobId = jobId;
    this.wireCode = wireCode;
    this.reruns = reruns;
    this.name = 'JobInterruptedError';
  }
}

const ErrorBody = v.object({ error: v.object({ code: v.exactOptional(v.string()), message: v.string() }) });

/** Turns a non-2xx answer into the error a caller handles. `what` names the request, e.g. "creating the job". */
export async function httpError(response: Response, what: string, coordinatorUrl: string): Promise<SpinneretError> {
  const text = await response.text().catch(() => '');
  let parsed: { code?: string; message: string } | undefined;
  let json: unknown = null;
  try {
    json = JSON.parse(text);
    const body = v.safeParse(ErrorBody, json);
    if (body.success) parsed = body.output.error;
  } catch {
    // Not JSON: keep the status text.
  }
  const payment = v.safeParse(PaymentRequired, json);
  if (response.status === 402 && payment.success) return new PaymentRequiredError(payment.output);
  const message = parsed?.message ?? (text.slice(0, 200) || response.statusText || `HTTP ${response.status}`);
  const status = response.status;
  if (status === 401 || status === 403) return new ApiKeyRefusedError(status, message);
  if (status === 429 || status === 402) return new QuotaExceededError(status, message, retryAfterMs(response.headers.get('retry-after')));
  if (status >= 500) return new CoordinatorUnavailableError(coordinatorUrl, `HTTP ${status} while ${what}: ${message}`, status);
  if (parsed?.code !== undefined && isErrorCode(parsed.code)) return reviveError({ name: '', code: parsed.code, message });
  if (status === 400 || status === 413 || status === 422)
    return reviveError({ name: '', code: 'INVALID_INPUT', message: `The coordinator refused ${what}: ${message}` });
  return new CoordinatorError(`The coordinator answered HTTP ${status} while ${what}: ${message}`, status, { wireCode: parsed?.code });
}

/**
 * The error for a job's `failed` event. Codes shared with the engines keep their class;
 * `OPEN_FAILED` (the contributor could not open the payload) becomes a SealError; other wire
 * codes are INTERNAL with the coordinator's message.
 */
export function failedJobError(error: WireError, jobId: string): SpinneretError {
  if (error.code === 'ENVELOPE') return new InvalidInputError(`Job ${jobId} was refused: ${error.message}`, { jobId });
  const code = error.code === 'OPEN_FAILED' ? 'SEAL' : error.code;
  if (isErrorCode(code)) return reviveError({ name: '', code, message: error.message, details: { jobId } });
  if (code === 'UNAUTHORIZED') return new ApiKeyRefusedError(0, error.message);
  if (code === 'QUOTA') return new QuotaExceededError(0, error.message, undefined);
  return new SpinneretError('INTERNAL', `Job ${jobId} failed (${code}): ${error.message}`, { jobId, wireCode: code });
}

/** Normalizes what fetch throws: aborts stay aborts, everything else means the coordinator is unreachable. */
export function networkError(err: unknown, coordinatorUrl: string, what: string): SpinneretError {
  if (err instanceof SpinneretError) return err;
  if (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')) return new AbortedError(what);
  const reason = err instanceof Error ? err.message : String(err);
  return new CoordinatorUnavailableError(coordinatorUrl, `${what}: ${reason}`, 0, { cause: err });
}

function isErrorCode(code: string): code is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code);
}

function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
