/**
 * Where job creations by idempotency key are kept (coordinator/requesters/idempotency.ts): rows
 * of `idempotency_keys` (migration 011) in the store's database, shared by every replica and kept
 * across restarts, or a map in this process for a coordinator on the memory store. One row per
 * (API key, idempotency key); the primary key decides between two creations at once.
 */
import type { SqlDb } from '../store/sql.ts';
import { toInt } from '../store/sql.ts';

/** One remembered creation. */
export interface CreationRow {
  /** SHA-256 of the creation's body (base64url): a repeat must match it. */
  fingerprint: string;
  /** The job the creation makes (chosen before it runs) or made. */
  jobId: string;
  /** `pending`: the creation is running since `claimedAt`; `created`: it made the job. */
  state: 'pending' | 'created';
  /** ms since epoch. */
  claimedAt: number;
  /** ms since epoch; from then on the row is as good as gone. */
  expiresAt: number;
}

/** What {@link CreationRows.claim} found. */
export type Claim =
  | { kind: 'claimed' }
  /** Another creation holds the key: its row. */
  | { kind: 'taken'; row: CreationRow }
  /** The API key holds `cap` unexpired rows; the oldest expires at `oldestExpiresAt` (ms). */
  | { kind: 'full'; oldestExpiresAt: number };

export interface CreationRows {
  /**
   * Inserts `row` as `pending` for (`apiKeyId`, `key`) unless an unexpired row holds the key
   * (an expired one is deleted first) or the API key holds `cap` rows unexpired at `now`.
   */
  claim(apiKeyId: string, key: string, row: CreationRow, now: number, cap: number): Promise<Claim>;
  /** Replaces the `pending` row for job `fromJobId` (a creation that never finished) by `row`; false when it is not there. */
  takeOver(apiKeyId: string, key: string, fromJobId: string, row: CreationRow): Promise<boolean>;
  /** Marks the `pending` row for `jobId` `created`; false when it is not there (taken over). */
  finish(apiKeyId: string, key: string, jobId: string): Promise<boolean>;
  /** Deletes the row for `jobId` (its creation was refused: a repeat runs again). */
  forget(apiKeyId: string, key: string, jobId: string): Promise<void>;
  /** Deletes every row expired at `now`; how many. */
  forgetExpired(now: number): Promise<number>;
}

interface Row {
  fingerprint: string;
  job_id: string;
  state: 'pending' | 'created';
  claimed_at: unknown;
  expires_at: unknown;
}

const fromRow = (r: Row): CreationRow => ({
  fingerprint: r.fingerprint,
  jobId: r.job_id,
  state: r.state,
  claimedAt: toInt(r.claimed_at),
  expiresAt: toInt(r.expires_at),
});

/**
 * Deletes the rows matching `where` (over `params`) and takes them off their API keys' counts;
 * how many. `many`: it may match several rows, so it runs under one transaction lock, and two
 * such deletes never wait on each other's rows (a deadlock); one row needs none.
 */
async function deleteCounted(db: SqlDb, where: string, params: readonly unknown[], many = false): Promise<number> {
  return db.transaction(async (tx) => {
    if (many) await tx.query(`SELECT pg_advisory_xact_lock(hashtext('spinneret.idempotency-keys'))`);
    const { rows } = await tx.query<{ n: unknown }>(
      `WITH gone AS (DELETE FROM idempotency_keys WHERE ${where} RETURNING api_key_id),
            per AS (SELECT api_key_id, count(*) AS k FROM gone GROUP BY api_key_id),
            counted AS (UPDATE idempotency_key_counts c SET n = c.n - per.k FROM per WHERE c.api_key_id = per.api_key_id RETURNING per.k)
       SELECT coalesce(sum(k), 0) AS n FROM counted`,
      params,
    );
    return toInt(rows[0]?.n ?? 0);
  });
}

/**
 * Rows in the store's database (PGlite or PostgreSQL). Each API key's rows are counted in
 * `idempotency_key_counts` as they are inserted and deleted, so a claim checks the cap in one
 * row, whatever the key holds.
 */
export class SqlCreationRows implements CreationRows {
  readonly #db: SqlDb;

  constructor(db: SqlDb) {
    this.#db = db;
  }

  async claim(apiKeyId: string, key: string, row: CreationRow, now: number, cap: number): Promise<Claim> {
    // A row deleted between the insert and the read (its creation refused, or expired) is claimed again.
    for (let round = 0; round < 8; round++) {
      // The row and its count in one statement; past the cap it is deleted again, so creations at
      // once near the cap may all be refused, and the key keeps at most `cap`.
      const { rows: counted } = await this.#db.query<{ n: unknown }>(
        `WITH ins AS (
           INSERT INTO idempotency_keys (api_key_id, idem_key, fingerprint, job_id, state, claimed_at, expires_at)
           VALUES ($1, $2, $3, $4, 'pending', $5, $6) ON CONFLICT (api_key_id, idem_key) DO NOTHING RETURNING api_key_id
         ), cnt AS (
           INSERT INTO idempotency_key_counts (api_key_id, n) SELECT api_key_id, 1 FROM ins
           ON CONFLICT (api_key_id) DO UPDATE SET n = idempotency_key_counts.n + 1 RETURNING n
         )
         SELECT n FROM cnt`,
        [apiKeyId, key, row.fingerprint, row.jobId, row.claimedAt, row.expiresAt],
      );
      const n = counted[0]?.n;
      if (n !== undefined && toInt(n) <= cap) return { kind: 'claimed' };
      if (n !== undefined) {
        await this.forget(apiKeyId, key, row.jobId);
        const { rows } = await this.#db.query<{ oldest: unknown }>(
          'SELECT min(expires_at) AS oldest FROM idempotency_keys WHERE api_key_id = $1',
          [apiKeyId],
        );
        const oldest = toInt(rows[0]?.oldest ?? now);
        if (oldest > now) return { kind: 'full', oldestExpiresAt: oldest };
        // Rows expired and not yet swept count against the cap: delete the key's, and claim again.
        await deleteCounted(this.#db, 'api_key_id = $1 AND expires_at <= $2', [apiKeyId, now], true);
        continue;
      }
      const { rows } = await this.#db.query<Row>(
        'SELECT fingerprint, job_id, state, claimed_at, expires_at FROM idempotency_keys WHERE api_key_id = $1 AND idem_key = $2',
        [apiKeyId, key],
      );
      const held = rows[0];
      if (held !== undefined && toInt(held.expires_at) > now) return { kind: 'taken', row: fromRow(held) };
      if (held !== undefined) await deleteCounted(this.#db, 'api_key_id = $1 AND idem_key = $2 AND expires_at <= $3', [apiKeyId, key, now]);
    }
    throw new Error(`internal: the idempotency key of API key ${apiKeyId} changed hands 8 times in one claim`);
  }

  async takeOver(apiKeyId: string, key: string, fromJobId: string, row: CreationRow): Promise<boolean> {
    const { rows } = await this.#db.query(
      `UPDATE idempotency_keys SET job_id = $4, claimed_at = $5, expires_at = $6
       WHERE api_key_id = $1 AND idem_key = $2 AND job_id = $3 AND state = 'pending' AND fingerprint = $7 RETURNING 1`,
      [apiKeyId, key, fromJobId, row.jobId, row.claimedAt, row.expiresAt, row.fingerprint],
    );
    return rows.length > 0;
  }

  async finish(apiKeyId: string, key: string, jobId: string): Promise<boolean> {
    const { rows } = await this.#db.query(
      `UPDATE idempotency_keys SET state = 'created' WHERE api_key_id = $1 AND idem_key = $2 AND job_id = $3 AND state = 'pending' RETURNING 1`,
      [apiKeyId, key, jobId],
    );
    return rows.length > 0;
  }

  async forget(apiKeyId: string, key: string, jobId: string): Promise<void> {
    await deleteCounted(this.#db, 'api_key_id = $1 AND idem_key = $2 AND job_id = $3', [apiKeyId, key, jobId]);
  }

  async forgetExpired(now: number): Promise<number> {
    return deleteCounted(this.#db, 'expires_at <= $1', [now], true);
  }
}

/**
 * Rows in this process, for a coordinator on the memory store: the same contract, nothing kept
 * across a restart or shared with another process. Each API key's rows are in expiry order (the
 * time to live is one for all), so the expired ones are found at the front.
 */
export class MemoryCreationRows implements CreationRows {
  readonly #byApiKey = new Map<string, Map<string, CreationRow>>();

  /** Rows `apiKeyId` holds, expired or not (tests). */
  held(apiKeyId: string): number {
    return this.#byApiKey.get(apiKeyId)?.size ?? 0;
  }

  async claim(apiKeyId: string, key: string, row: CreationRow, now: number, cap: number): Promise<Claim> {
    const known = this.#byApiKey.get(apiKeyId);
    if (known !== undefined) this.#expire(apiKeyId, known, now);
    const rows = this.#rows(apiKeyId);
    const held = rows.get(key);
    if (held !== undefined) return { kind: 'taken', row: { ...held } };
    const oldest = rows.values().next().value;
    if (oldest !== undefined && rows.size >= cap) return { kind: 'full', oldestExpiresAt: oldest.expiresAt };
    rows.set(key, { ...row, state: 'pending' });
    return { kind: 'claimed' };
  }

  async takeOver(apiKeyId: string, key: string, fromJobId: string, row: CreationRow): Promise<boolean> {
    const rows = this.#byApiKey.get(apiKeyId);
    const held = rows?.get(key);
    if (rows === undefined || held?.jobId !== fromJobId || held.state !== 'pending' || held.fingerprint !== row.fingerprint) return false;
    // Deleted and set again: its new expiry puts it last.
    rows.delete(key);
    rows.set(key, { ...row, state: 'pending' });
    return true;
  }

  async finish(apiKeyId: string, key: string, jobId: string): Promise<boolean> {
    const held = this.#byApiKey.get(apiKeyId)?.get(key);
    if (held?.jobId !== jobId || held.state !== 'pending') return false;
    held.state = 'created';
    return true;
  }

  async forget(apiKeyId: string, key: string, jobId: string): Promise<void> {
    const rows = this.#byApiKey.get(apiKeyId);
    if (rows?.get(key)?.jobId === jobId) rows.delete(key);
    if (rows?.size === 0) this.#byApiKey.delete(apiKeyId);
  }

  async forgetExpired(now: number): Promise<number> {
    let n = 0;
    for (const [apiKeyId, rows] of this.#byApiKey) n += this.#expire(apiKeyId, rows, now);
    return n;
  }

  #rows(apiKeyId: string): Map<string, CreationRow> {
    let rows = this.#byApiKey.get(apiKeyId);
    if (rows === undefined) this.#byApiKey.set(apiKeyId, (rows = new Map<string, CreationRow>()));
    return rows;
  }

  #expire(apiKeyId: string, rows: Map<string, CreationRow>, now: number): number {
    let n = 0;
    for (const [key, row] of rows) {
      if (row.expiresAt > now) break;
      rows.delete(key);
      n++;
    }
    if (rows.size === 0) this.#byApiKey.delete(apiKeyId);
    return n;
  }
}
