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

/** Rows in the store's database (PGlite or PostgreSQL). */
export class SqlCreationRows implements CreationRows {
  readonly #db: SqlDb;

  constructor(db: SqlDb) {
    this.#db = db;
  }

  async claim(apiKeyId: string, key: string, row: CreationRow, now: number, cap: number): Promise<Claim> {
    // A row deleted between the insert and the read (its creation refused, or expired) is claimed again.
    for (let round = 0; round < 8; round++) {
      // The cap is counted in the insert itself: creations at once may pass it by how many run at once, never more.
      const inserted = await this.#db.query(
        `INSERT INTO idempotency_keys (api_key_id, idem_key, fingerprint, job_id, state, claimed_at, expires_at)
         SELECT $1::text, $2::text, $3::text, $4::text, 'pending', $5::bigint, $6::bigint
         WHERE (SELECT count(*) FROM (SELECT 1 FROM idempotency_keys WHERE api_key_id = $1::text AND expires_at > $5::bigint LIMIT $7::bigint) AS live) < $7::bigint
         ON CONFLICT (api_key_id, idem_key) DO NOTHING RETURNING 1`,
        [apiKeyId, key, row.fingerprint, row.jobId, row.claimedAt, row.expiresAt, cap],
      );
      if (inserted.rows.length > 0) return { kind: 'claimed' };
      const { rows } = await this.#db.query<Row>(
        'SELECT fingerprint, job_id, state, claimed_at, expires_at FROM idempotency_keys WHERE api_key_id = $1 AND idem_key = $2',
        [apiKeyId, key],
      );
      const held = rows[0];
      if (held !== undefined && toInt(held.expires_at) > now) return { kind: 'taken', row: fromRow(held) };
      if (held !== undefined) {
        await this.#db.query('DELETE FROM idempotency_keys WHERE api_key_id = $1 AND idem_key = $2 AND expires_at <= $3', [
          apiKeyId,
          key,
          now,
        ]);
        continue;
      }
      const oldest = await this.#db.query<{ n: unknown; oldest: unknown }>(
        `SELECT count(*) AS n, min(expires_at) AS oldest FROM
           (SELECT expires_at FROM idempotency_keys WHERE api_key_id = $1 AND expires_at > $2 ORDER BY expires_at LIMIT $3) AS live`,
        [apiKeyId, now, cap],
      );
      const o = oldest.rows[0];
      if (o !== undefined && toInt(o.n) >= cap) return { kind: 'full', oldestExpiresAt: toInt(o.oldest) };
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
    await this.#db.query('DELETE FROM idempotency_keys WHERE api_key_id = $1 AND idem_key = $2 AND job_id = $3', [apiKeyId, key, jobId]);
  }

  async forgetExpired(now: number): Promise<number> {
    const { rows } = await this.#db.query<{ n: unknown }>(
      'WITH gone AS (DELETE FROM idempotency_keys WHERE expires_at <= $1 RETURNING 1) SELECT count(*) AS n FROM gone',
      [now],
    );
    return toInt(rows[0]?.n ?? 0);
  }
}

/**
 * Rows in this process, for a coordinator on the memory store: the same contract, nothing kept
 * across a restart or shared with another process. Each API key's rows are in expiry order (the
 * time to live is one for all), so the expired ones are found at the front.
 */
export class MemoryCreationRows implements CreationRows {
  readonly #byApiKey = new Map<string, Map<string, CreationRow>>();

  /** Rows held, expired or not (tests). */
  get size(): number {
    let n = 0;
    for (const rows of this.#byApiKey.values()) n += rows.size;
    return n;
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
