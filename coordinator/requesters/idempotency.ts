/**
 * Job creations remembered by their idempotency key (docs/protocol.md, "Job creation"): a
 * requester whose creation was cut off after it was sent tries it again with the same key and
 * gets the same job, not a second one with a second reservation. Kept in memory per API key,
 * for `ttlMs` and at most `keys` entries in all; the oldest is forgotten first.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';

export interface IdempotencyLimits {
  /** Creations remembered in all (default 100,000). */
  keys: number;
  /** How long each is remembered, ms (default one hour). */
  ttlMs: number;
}

interface Entry<T> {
  fingerprint: string;
  at: number;
  /** The first creation's outcome, while it runs and after. */
  outcome: Promise<T>;
}

/** What {@link IdempotentCreations.run} answers. */
export type Remembered<T> = { kind: 'first'; value: T } | { kind: 'repeat'; value: T } | { kind: 'mismatch' };

export class IdempotentCreations<T> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #limits: IdempotencyLimits;
  readonly #clock: Clock;

  constructor(limits: Partial<IdempotencyLimits> = {}, clock: Clock = systemClock) {
    this.#limits = { keys: limits.keys ?? 100_000, ttlMs: limits.ttlMs ?? 3_600_000 };
    this.#clock = clock;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Runs `create` once per (`apiKeyId`, `key`): a repeat with the same `body` gets the first
   * run's outcome (waiting for it if it is still running); another body is a mismatch. An
   * outcome `remember` refuses (a refusal, which created nothing) or a throw is forgotten, so
   * the creation can be tried again.
   */
  async run(
    apiKeyId: string,
    key: string,
    body: unknown,
    remember: (outcome: T) => boolean,
    create: () => Promise<T>,
  ): Promise<Remembered<T>> {
    const now = this.#clock.now();
    this.#expire(now);
    const id = `${apiKeyId}\n${key}`;
    const fingerprint = createHash('sha256').update(JSON.stringify(body)).digest('base64url');
    const known = this.#entries.get(id);
    if (known !== undefined) {
      if (known.fingerprint !== fingerprint) return { kind: 'mismatch' };
      return { kind: 'repeat', value: await known.outcome };
    }
    const outcome = create();
    const entry: Entry<T> = { fingerprint, at: now, outcome };
    this.#entries.set(id, entry);
    while (this.#entries.size > this.#limits.keys) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
    const forget = (): void => {
      if (this.#entries.get(id) === entry) this.#entries.delete(id);
    };
    try {
      const value = await outcome;
      if (!remember(value)) forget();
      return { kind: 'first', value };
    } catch (err) {
      forget();
      throw err;
    }
  }

  #expire(now: number): void {
    // Insertion order is age order: the oldest come first.
    for (const [id, entry] of this.#entries) {
      if (now - entry.at < this.#limits.ttlMs) break;
      this.#entries.delete(id);
    }
  }
}
