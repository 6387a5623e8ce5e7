/**
 * Job creations remembered by their idempotency key (docs/protocol.md, "Job creation"): a
 * requester whose creation was cut off after it was sent tries it again with the same key and
 * gets the same job, not a second one with a second reservation — on any replica, and after a
 * restart, since the keys are rows of the store (idempotency-rows.ts). Each key is claimed
 * before its creation runs, under the job id the creation will use; the row's primary key
 * decides between creations at once, and the loser waits for the winner's row. Each API key
 * holds at most `keys` unexpired rows, so one key's creations never push out another's.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { CreationRow, CreationRows } from './idempotency-rows.ts';

export interface IdempotencyLimits {
  /** Unexpired creations one API key holds (default 100,000); past it, creations under a key are refused. */
  keys: number;
  /** How long each is remembered, ms (default one hour). */
  ttlMs: number;
  /**
   * How long a repeat waits for a creation still running elsewhere, ms (default 10 s): past it a
   * creation whose coordinator stopped mid-way is taken over, and one still running is `busy`.
   */
  pendingMs: number;
}

/** What {@link IdempotentCreations.run} answers. */
export type Remembered<T> =
  /** This call ran the creation. */
  | { kind: 'first'; value: T }
  /** An earlier creation under the key made job `jobId`. */
  | { kind: 'repeat'; jobId: string }
  /** The key was used for another body. */
  | { kind: 'mismatch' }
  /** The API key holds its limit of keys; the oldest is forgotten in `retryAfterMs`. */
  | { kind: 'full'; retryAfterMs: number }
  /** A creation under the key is still running elsewhere after `pendingMs`. */
  | { kind: 'busy' }
  /** This call's creation ran past `pendingMs` and a repeat took the key over: `value` must be undone. */
  | { kind: 'superseded'; value: T };

/** Between two looks at a creation running elsewhere, ms. */
const POLL_MS = 50;
/** How often expired rows are deleted, ms of the clock. */
const SWEEP_MS = 60_000;

export class IdempotentCreations<T> {
  readonly #rows: CreationRows;
  readonly #limits: IdempotencyLimits;
  readonly #clock: Clock;
  /** Creations running in this process, by API key and key: a repeat here waits on it, not on the database. */
  readonly #running = new Map<string, Promise<unknown>>();
  #nextSweep = 0;

  constructor(rows: CreationRows, limits: Partial<IdempotencyLimits> = {}, clock: Clock = systemClock) {
    this.#rows = rows;
    this.#limits = { keys: limits.keys ?? 100_000, ttlMs: limits.ttlMs ?? 3_600_000, pendingMs: limits.pendingMs ?? 10_000 };
    this.#clock = clock;
  }

  get limits(): Readonly<IdempotencyLimits> {
    return this.#limits;
  }

  /**
   * Runs `create` once per (`apiKeyId`, `key`) with a new job id from `newId`: a repeat with the
   * same `body` gets the first run's job (waiting for it while it runs); another body is a
   * mismatch. A creation that throws (a refusal, which created nothing) is forgotten, so its
   * repeat runs again.
   */
  async run(
    apiKeyId: string,
    key: string,
    body: unknown,
    newId: () => string,
    create: (jobId: string) => Promise<T>,
  ): Promise<Remembered<T>> {
    const id = `${apiKeyId}\n${key}`;
    const fingerprint = createHash('sha256').update(JSON.stringify(body)).digest('base64url');
    const rounds = Math.ceil(this.#limits.pendingMs / POLL_MS) + 1;
    for (let round = 0; ; round++) {
      await this.#running.get(id);
      const now = this.#clock.now();
      await this.#sweep(now);
      const mine: CreationRow = { fingerprint, jobId: newId(), state: 'pending', claimedAt: now, expiresAt: now + this.#limits.ttlMs };
      const claim = await this.#rows.claim(apiKeyId, key, mine, now, this.#limits.keys);
      if (claim.kind === 'full') return { kind: 'full', retryAfterMs: Math.max(0, claim.oldestExpiresAt - now) };
      if (claim.kind === 'claimed') return this.#create(id, apiKeyId, key, mine.jobId, create);
      const { row } = claim;
      if (row.fingerprint !== fingerprint) return { kind: 'mismatch' };
      if (row.state === 'created') return { kind: 'repeat', jobId: row.jobId };
      // Its coordinator stopped mid-way (that job, if made, ends with its restart): this try makes the job.
      const stale = now - row.claimedAt >= this.#limits.pendingMs && !this.#running.has(id);
      if (stale && (await this.#rows.takeOver(apiKeyId, key, row.jobId, mine))) return this.#create(id, apiKeyId, key, mine.jobId, create);
      if (round >= rounds) return { kind: 'busy' };
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  async #create(id: string, apiKeyId: string, key: string, jobId: string, create: (jobId: string) => Promise<T>): Promise<Remembered<T>> {
    const running = (async (): Promise<Remembered<T>> => {
      let value: T;
      try {
        value = await create(jobId);
      } catch (err) {
        // Left pending when the database is away: a repeat takes it over after `pendingMs`.
        await this.#rows.forget(apiKeyId, key, jobId).catch(() => undefined);
        throw err;
      }
      // Not marked created (taken over, or the database away): the job is undone, so never two.
      const finished = await this.#rows.finish(apiKeyId, key, jobId).catch(() => false);
      return finished ? { kind: 'first', value } : { kind: 'superseded', value };
    })();
    const settled = running.catch(() => undefined);
    this.#running.set(id, settled);
    try {
      return await running;
    } finally {
      if (this.#running.get(id) === settled) this.#running.delete(id);
    }
  }

  /** Deletes expired rows, at most once a minute (by the clock); a failure waits for the next. */
  async #sweep(now: number): Promise<void> {
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + SWEEP_MS;
    await this.#rows.forgetExpired(now).catch(() => undefined);
  }
}
