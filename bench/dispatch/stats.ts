/**
 * Small helpers shared by the dispatch benchmark: a wall clock with sub-millisecond
 * resolution that two processes on one machine agree on, latency samples, percentiles,
 * the opaque "sealed" blobs that carry a send time, and formatting.
 */

/** Milliseconds since the epoch, sub-millisecond resolution (comparable across processes up to a calibrated offset). */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** A bounded list of numbers (latencies, ms): samples beyond `max` are counted but not kept. */
export class Samples {
  readonly #values: number[] = [];
  dropped = 0;

  constructor(readonly max = 1_000_000) {}

  add(value: number): void {
    if (this.#values.length < this.max) this.#values.push(value);
    else this.dropped++;
  }

  /** Adds every sample `other` kept (and counts those it dropped). */
  addAll(other: Samples): void {
    for (const value of other.#values) this.add(value);
    this.dropped += other.dropped;
  }

  get count(): number {
    return this.#values.length + this.dropped;
  }

  summary(): LatencySummary {
    return summarize(this.#values);
  }
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** p50 / p99 / max of `values` (nearest rank); NaN when empty. */
export function summarize(values: readonly number[]): LatencySummary {
  if (values.length === 0) return { count: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const sorted = Float64Array.from(values).sort();
  const rank = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
  return { count: sorted.length, p50: rank(0.5), p99: rank(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

/** Bytes of the sealed blob's timestamp prefix (a float64, little-endian). */
const STAMP_BYTES = 8;

/**
 * An opaque "ciphertext" of `bytes` bytes, base64url, whose first 8 bytes carry `stampMs`.
 * The coordinator never opens payloads, so the requester can use them to tell the worker
 * when the payload was sent, the way a real payload carries the request.
 */
export function stampedBlob(bytes: number, stampMs: number, filler: Buffer): string {
  const buf = Buffer.allocUnsafe(Math.max(bytes, STAMP_BYTES));
  buf.writeDoubleLE(stampMs, 0);
  filler.copy(buf, STAMP_BYTES, 0, buf.length - STAMP_BYTES);
  return buf.toString('base64url');
}

/** The timestamp {@link stampedBlob} put in a blob, or NaN. */
export function readStamp(ct: string): number {
  const head = Buffer.from(ct.slice(0, 12), 'base64url');
  return head.length >= STAMP_BYTES ? head.readDoubleLE(0) : Number.NaN;
}

/** Random filler for blobs of up to `bytes` bytes. */
export function filler(bytes: number): Buffer {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(Math.max(bytes, 16))));
}

/** The integer in environment variable `name`, or `fallback` when unset; throws naming the variable when out of [min, max]. */
export function envNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) throw new Error(`${name} must be a number from ${min} to ${max}, got ${raw}`);
  return Math.round(value);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects after `ms` unless `promise` settles first. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `task(i)` for i in [0, count) with at most `parallel` at once. */
export async function pool(count: number, parallel: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, lane));
}

export function ms(value: number): string {
  if (!Number.isFinite(value)) return '—';
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0);
}

export function int(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '—';
}

export function kib(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KiB` : '—';
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
