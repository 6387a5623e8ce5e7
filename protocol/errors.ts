/**
 * Typed errors shared by every part of Spinneret.
 *
 * Each subclass is one failure that a caller handles differently, and each message says
 * what to do next. Errors cross the worker boundary as {@link SerializedError} and are
 * rebuilt by {@link reviveError}, so `instanceof` keeps working on the other side.
 */

/** Stable codes, one per subclass. Part of the page ↔ worker and wire contract. */
export const ERROR_CODES = [
  'UNKNOWN_MODEL',
  'MANIFEST_INVALID',
  'INTEGRITY',
  'MODEL_UNREACHABLE',
  'WEBGPU_UNAVAILABLE',
  'FEATURE_MISSING',
  'MODEL_TOO_LARGE',
  'INVALID_INPUT',
  'ABORTED',
  'DEVICE_LOST',
  'ENGINE',
  'STORAGE',
  'SEAL',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface SerializedError {
  name: string;
  code: ErrorCode;
  message: string;
  /** Extra facts for the UI and logs (never secrets). */
  details?: Record<string, unknown>;
}

export class SpinneretError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.details = details;
    // Set explicitly: minifiers mangle class names, and `name` is part of the contract.
    this.name = NAMES[code];
  }

  toJSON(): SerializedError {
    return this.details === undefined
      ? { name: this.name, code: this.code, message: this.message }
      : { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}

/** The model id is not in the manifest. */
export class UnknownModelError extends SpinneretError {
  constructor(modelId: string, known: readonly string[]) {
    super(
      'UNKNOWN_MODEL',
      `Unknown model "${modelId}". Choose one of: ${known.length > 0 ? known.join(', ') : '(the manifest lists no models)'}.`,
      { modelId, known: [...known] },
    );
  }
}

/** The manifest (or a job's reference to it) does not match the schema. */
export class ManifestError extends SpinneretError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('MANIFEST_INVALID', message, details);
  }
}

/** A downloaded file's SHA-256 differs from the manifest; the file was discarded. */
export class IntegrityError extends SpinneretError {
  /** `found` is the SHA-256 of the bytes received, or words saying what else was wrong (e.g. their length). */
  constructor(url: string, expected: string, found: string) {
    const what = /^[0-9a-f]{64}$/.test(found) ? `SHA-256 ${found.slice(0, 12)}…, expected ${expected.slice(0, 12)}…` : found;
    super(
      'INTEGRITY',
      `Model file ${url} failed its integrity check (${what}). ` +
        'The file was discarded and nothing from it was run. Try again later; if it keeps failing, the model host serves a different file than the manifest lists.',
      { url, expected, found },
    );
  }
}

/** A model file could not be fetched. */
export class ModelUnreachableError extends SpinneretError {
  constructor(url: string, reason: string) {
    super(
      'MODEL_UNREACHABLE',
      `Could not download ${url} (${reason}). Check the network connection and that the model host is up, then try again.`,
      { url, reason },
    );
  }
}

/** No usable WebGPU adapter, and the model has no WASM fallback. */
export class WebGPUUnavailableError extends SpinneretError {
  constructor(reason: string) {
    super(
      'WEBGPU_UNAVAILABLE',
      `WebGPU is not available here (${reason}). Use a recent Chrome or Edge with hardware acceleration on, or pick a model that can run on the CPU (WASM).`,
      { reason },
    );
  }
}

/** The adapter lacks a feature the model needs (for example `shader-f16`). */
export class FeatureMissingError extends SpinneretError {
  constructor(modelId: string, missing: readonly string[]) {
    super(
      'FEATURE_MISSING',
      `Model "${modelId}" needs GPU feature(s) ${missing.join(', ')}, which this adapter lacks. Pick a build without them (for example q4f32_1 instead of q4f16_1).`,
      { modelId, missing: [...missing] },
    );
  }
}

/** The model needs more memory or a larger buffer than the adapter allows. */
export class ModelTooLargeError extends SpinneretError {
  constructor(modelId: string, neededBytes: number, availableBytes: number, what: string) {
    super(
      'MODEL_TOO_LARGE',
      `Model "${modelId}" needs ${formatBytes(neededBytes)} of ${what}, but this device allows ${formatBytes(availableBytes)}. Pick a smaller model or raise the memory cap in the settings.`,
      { modelId, neededBytes, availableBytes, what },
    );
  }
}

/** The job's input does not fit the model (shape, type, length). */
export class InvalidInputError extends SpinneretError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('INVALID_INPUT', message, details);
  }
}

/** The caller aborted the operation. */
export class AbortedError extends SpinneretError {
  constructor(what: string) {
    super('ABORTED', `${what} was cancelled.`, { what });
  }
}

/** The GPU device was lost during the operation; the runtime recreates it. */
export class DeviceLostError extends SpinneretError {
  constructor(reason: string) {
    super('DEVICE_LOST', `The GPU device was lost (${reason}). Spinneret recreates it and reloads the model; retry the job.`, {
      reason,
    });
  }
}

/** An engine failed in a way not covered above (for example a corrupt model library). */
export class EngineError extends SpinneretError {
  constructor(message: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super('ENGINE', message, details, options);
  }
}

/** Browser storage is full or denied. */
export class StorageError extends SpinneretError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('STORAGE', message, details);
  }
}

/**
 * A sealed envelope (job payload or result chunk) could not be opened: tampered with, sealed
 * to another key or for another job, out of order, truncated, or not a valid plaintext.
 */
export class SealError extends SpinneretError {
  /** `what`: which envelope, e.g. "job payload of job abc"; `reason`: what failed. */
  constructor(what: string, reason: string, options?: ErrorOptions) {
    super(
      'SEAL',
      `Could not open the ${what}: ${reason}. Nothing from it was used. It was altered in transit, sealed to another key or job, or sent out of order; run the job again.`,
      { what, reason },
      options,
    );
  }
}

const NAMES: Record<ErrorCode, string> = {
  UNKNOWN_MODEL: 'UnknownModelError',
  MANIFEST_INVALID: 'ManifestError',
  INTEGRITY: 'IntegrityError',
  MODEL_UNREACHABLE: 'ModelUnreachableError',
  WEBGPU_UNAVAILABLE: 'WebGPUUnavailableError',
  FEATURE_MISSING: 'FeatureMissingError',
  MODEL_TOO_LARGE: 'ModelTooLargeError',
  INVALID_INPUT: 'InvalidInputError',
  ABORTED: 'AbortedError',
  DEVICE_LOST: 'DeviceLostError',
  ENGINE: 'EngineError',
  STORAGE: 'StorageError',
  SEAL: 'SealError',
  INTERNAL: 'SpinneretError',
};

const PROTOTYPES: Record<ErrorCode, object> = {
  UNKNOWN_MODEL: UnknownModelError.prototype,
  MANIFEST_INVALID: ManifestError.prototype,
  INTEGRITY: IntegrityError.prototype,
  MODEL_UNREACHABLE: ModelUnreachableError.prototype,
  WEBGPU_UNAVAILABLE: WebGPUUnavailableError.prototype,
  FEATURE_MISSING: FeatureMissingError.prototype,
  MODEL_TOO_LARGE: ModelTooLargeError.prototype,
  INVALID_INPUT: InvalidInputError.prototype,
  ABORTED: AbortedError.prototype,
  DEVICE_LOST: DeviceLostError.prototype,
  ENGINE: EngineError.prototype,
  STORAGE: StorageError.prototype,
  SEAL: SealError.prototype,
  INTERNAL: SpinneretError.prototype,
};

/** Turns anything thrown into the serialized form; unexpected errors become `INTERNAL`. */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof SpinneretError) return err.toJSON();
  if (err instanceof Error) return { name: 'SpinneretError', code: 'INTERNAL', message: err.message || String(err) };
  return { name: 'SpinneretError', code: 'INTERNAL', message: String(err) };
}

/** Rebuilds the subclass instance from its serialized form (the inverse of {@link serializeError}). */
export function reviveError(data: SerializedError): SpinneretError {
  const code: ErrorCode = (ERROR_CODES as readonly string[]).includes(data.code) ? data.code : 'INTERNAL';
  const err = new SpinneretError(code, data.message, data.details);
  Object.setPrototypeOf(err, PROTOTYPES[code]);
  return err;
}

/** True when `value` has the shape of a {@link SerializedError}. */
export function isSerializedError(value: unknown): value is SerializedError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'string' &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}

/** Normalizes a thrown value: SpinneretErrors pass through, AbortSignal reasons become AbortedError. */
export function toSpinneretError(err: unknown, context: string): SpinneretError {
  if (err instanceof SpinneretError) return err;
  if (err instanceof DOMException && err.name === 'AbortError') return new AbortedError(context);
  const message = err instanceof Error ? err.message : String(err);
  return new EngineError(`${context} failed: ${message}`, undefined, { cause: err });
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
