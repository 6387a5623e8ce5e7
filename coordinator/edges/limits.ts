/**
 * The coordinator's limits on what callers may hold: each has a default, an environment
 * variable (read when the coordinator is created) and an option that wins over both, and each
 * is answered with a typed refusal (413, 429, or a WebSocket close code). README.md lists them.
 */

export interface EdgeLimits {
  /** Largest request body on routes without a limit of their own (owner, fleet, operator, verdict), bytes. */
  maxBodyBytes: number;
  /** Unused `ton_proof` payloads one IP address may hold at once. */
  proofPayloadsPerIp: number;
  /** Unused `ton_proof` payloads held in all. */
  proofPayloadsTotal: number;
  /** Contributor WebSockets open at once from one IP address. */
  connectionsPerIp: number;
  /** Contributor WebSockets open at once earning for one wallet. */
  connectionsPerWallet: number;
  /** Bytes queued to one WebSocket peer before it is dropped as too slow. */
  sendBufferBytes: number;
  /** Result chunks one lease may send. */
  chunksPerLease: number;
  /** Empty (no ciphertext, not final) result chunks one lease may send. */
  emptyChunksPerLease: number;
  /** Event streams open at once on one job. */
  subscribersPerJob: number;
  /** Event streams open at once for one API key. */
  subscribersPerKey: number;
  /** Bytes queued to one event-stream reader that does not read before it is dropped. */
  eventStreamBufferBytes: number;
  /** Requester channels (`/v1/requester` WebSockets) open at once for one API key. */
  channelsPerKey: number;
  /** Unexpired job creations one API key holds by idempotency key (past it, a creation under a new key is refused 429). */
  idempotencyKeys: number;
  /** How long a job creation is remembered by its idempotency key, seconds. */
  idempotencyTtlS: number;
}

export const DEFAULT_LIMITS: EdgeLimits = {
  maxBodyBytes: 64 * 1024,
  proofPayloadsPerIp: 32,
  proofPayloadsTotal: 100_000,
  connectionsPerIp: 256,
  connectionsPerWallet: 10_000,
  sendBufferBytes: 16 * 1024 * 1024,
  chunksPerLease: 100_000,
  emptyChunksPerLease: 256,
  subscribersPerJob: 8,
  subscribersPerKey: 1_000,
  eventStreamBufferBytes: 16 * 1024 * 1024,
  channelsPerKey: 64,
  idempotencyKeys: 100_000,
  idempotencyTtlS: 3_600,
};

/** The environment variable of each limit. */
export const LIMIT_ENV: Record<keyof EdgeLimits, string> = {
  maxBodyBytes: 'SPINNERET_MAX_BODY_BYTES',
  proofPayloadsPerIp: 'SPINNERET_PROOF_PAYLOADS_PER_IP',
  proofPayloadsTotal: 'SPINNERET_PROOF_PAYLOADS_TOTAL',
  connectionsPerIp: 'SPINNERET_CONNECTIONS_PER_IP',
  connectionsPerWallet: 'SPINNERET_CONNECTIONS_PER_WALLET',
  sendBufferBytes: 'SPINNERET_SEND_BUFFER_BYTES',
  chunksPerLease: 'SPINNERET_CHUNKS_PER_LEASE',
  emptyChunksPerLease: 'SPINNERET_EMPTY_CHUNKS_PER_LEASE',
  subscribersPerJob: 'SPINNERET_SUBSCRIBERS_PER_JOB',
  subscribersPerKey: 'SPINNERET_SUBSCRIBERS_PER_KEY',
  eventStreamBufferBytes: 'SPINNERET_EVENT_STREAM_BUFFER_BYTES',
  channelsPerKey: 'SPINNERET_CHANNELS_PER_KEY',
  idempotencyKeys: 'SPINNERET_IDEMPOTENCY_KEYS',
  idempotencyTtlS: 'SPINNERET_IDEMPOTENCY_TTL_S',
};

/** A limit set in the environment that is not a positive whole number. */
export class LimitConfigError extends Error {
  constructor(name: string, value: string) {
    super(`${name}=${JSON.stringify(value)} is not a positive whole number; unset it for the default or give e.g. ${name}=100.`);
    this.name = 'LimitConfigError';
  }
}

/** The limits: defaults, then the environment's, then `overrides`. Throws {@link LimitConfigError} for a bad variable. */
export function resolveLimits(overrides: Partial<EdgeLimits> = {}, env: Record<string, string | undefined> = process.env): EdgeLimits {
  const limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(LIMIT_ENV) as (keyof EdgeLimits)[]) {
    const raw = env[LIMIT_ENV[key]];
    if (raw === undefined || raw === '') continue;
    if (!/^[1-9]\d{0,15}$/.test(raw)) throw new LimitConfigError(LIMIT_ENV[key], raw);
    limits[key] = Number(raw);
  }
  return { ...limits, ...overrides };
}

/** Counts of things held per key (an IP, a wallet, an API key), dropping keys at zero. */
export class Counter {
  readonly #counts = new Map<string, number>();

  get(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Adds one unless `key` already holds `max`; true when added. */
  take(key: string, max: number): boolean {
    const n = this.get(key);
    if (n >= max) return false;
    this.#counts.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    const n = this.get(key);
    if (n <= 1) this.#counts.delete(key);
    else this.#counts.set(key, n - 1);
  }

  get keys(): number {
    return this.#counts.size;
  }
}
