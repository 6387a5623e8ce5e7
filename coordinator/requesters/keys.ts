/**
 * Requester authentication and quotas. API keys are looked up by the SHA-256 of the secret
 * and cached briefly, so a busy requester does not cost a database query per request
 * (a revoked key keeps working for at most {@link KEY_CACHE_MS}).
 */
import { type Clock } from '../clock.ts';
import { sha256Hex } from '../ids.ts';
import type { ApiKeyRecord, Store } from '../store/types.ts';

/** How long a found key is cached, ms. */
export const KEY_CACHE_MS = 30_000;
/** How long an unknown secret is remembered as unknown, ms. */
const MISS_CACHE_MS = 5_000;
const MAX_CACHED = 10_000;
const MINUTE_MS = 60_000;

export class ApiKeys {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #cache = new Map<string, { key: ApiKeyRecord | null; until: number }>();

  constructor(store: Store, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  /** The live key whose secret this is, or null. */
  async find(secret: string): Promise<ApiKeyRecord | null> {
    const hash = sha256Hex(secret);
    const now = this.#clock.now();
    const cached = this.#cache.get(hash);
    if (cached !== undefined && cached.until > now) return cached.key;
    const key = await this.#store.findApiKey(hash);
    if (this.#cache.size >= MAX_CACHED) this.#cache.clear();
    this.#cache.set(hash, { key, until: now + (key === null ? MISS_CACHE_MS : KEY_CACHE_MS) });
    return key;
  }

  /** Revokes key `id` in the store and forgets it here, so its next request is refused. */
  async revoke(id: string): Promise<void> {
    await this.#store.revokeApiKey(id);
    for (const [hash, entry] of this.#cache) if (entry.key?.id === id) this.#cache.delete(hash);
  }
}

/** A refused job creation: why, and when to try again (seconds). */
export interface QuotaRefusal {
  message: string;
  retryAfterS: number;
}

/** Per-key limits: jobs created per minute (sliding window) and jobs unfinished at once. */
export class Quotas {
  readonly #clock: Clock;
  /**
   * Creation times within the last minute, per key id, oldest first: `times[head..]` are live.
   * Expired ones are skipped by moving `head` (O(1) per job); the array is compacted only
   * when half of it is dead, since filtering it on every request cost milliseconds per job
   * at thousands of jobs a minute.
   */
  readonly #recent = new Map<string, { times: number[]; head: number }>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Null when the key may create a job now. */
  check(key: ApiKeyRecord, inFlight: number): QuotaRefusal | null {
    if (inFlight >= key.maxInFlight) {
      return { message: `This key has ${inFlight} unfinished jobs, its limit; wait for one to finish.`, retryAfterS: 1 };
    }
    const now = this.#clock.now();
    const recent = this.#window(key.id, now);
    const count = recent.times.length - recent.head;
    if (count >= key.jobsPerMinute) {
      const retryAfterS = Math.max(1, Math.ceil(((recent.times[recent.head] ?? now) + MINUTE_MS - now) / 1000));
      return { message: `This key created ${count} jobs in the last minute, its limit; retry in ${retryAfterS} s.`, retryAfterS };
    }
    return null;
  }

  record(keyId: string): void {
    const now = this.#clock.now();
    this.#window(keyId, now).times.push(now);
  }

  #window(keyId: string, now: number): { times: number[]; head: number } {
    let recent = this.#recent.get(keyId);
    if (recent === undefined) {
      recent = { times: [], head: 0 };
      this.#recent.set(keyId, recent);
    }
    while (recent.head < recent.times.length && now - (recent.times[recent.head] ?? now) >= MINUTE_MS) recent.head++;
    if (recent.head > 1024 && recent.head * 2 > recent.times.length) {
      recent.times = recent.times.slice(recent.head);
      recent.head = 0;
    }
    return recent;
  }
}
