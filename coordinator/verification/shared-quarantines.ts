/**
 * Quarantines and benches the same on every replica (coordinator/cluster/policy-sync.ts), read
 * back from PostgreSQL by what changed, and the operator's lift of a quarantine.
 *
 * - A word from another replica names the devices and `wallet:` keys it quarantined or benched:
 *   only their rows are read (`contributor_id = ANY($1)`).
 * - A word missed is made up by reading the ids whose rows changed since the last read (a
 *   quarantine's `since_at`, a bench's `updated_at`, a lift's `lifted_at`), less
 *   {@link CLOCK_MARGIN_MS} for replicas whose clocks differ a little; then those ids' rows.
 * - The first read (at start) takes the quarantines and benches in force, nothing else.
 * - An id with no quarantine in force and a lift on record is let go here too.
 *
 * A lift deletes the quarantine's row and records who lifted it, when and why
 * (`verification_quarantine_lifts`); credits the quarantine voided stay voided.
 */
import type { Clock } from '../clock.ts';
import type { SqlDb } from '../store/sql.ts';
import { toInt, toIntOrNull } from '../store/sql.ts';
import { WALLET_PREFIX } from './judgement-writer.ts';
import type { DecisionRecord, VerificationPolicy } from './policy.ts';

/** How far before the last read a missed-word read looks, ms: covers replicas' clocks that differ by less. */
export const CLOCK_MARGIN_MS = 60_000;
/** Most ids one read applies; more changed at once are read in the next turns. */
export const MAX_IDS_PER_READ = 1_000;
/** Most quarantines and lifts the operator's list shows. */
const LIST_LIMIT = 1_000;

export interface QuarantineRow {
  /** A device id, or `wallet:<address>`. */
  id: string;
  since: number;
  /** Null: until lifted. */
  until: number | null;
}

export interface LiftRow {
  id: string;
  liftedAt: number;
  liftedBy: string;
  reason: string;
  quarantinedSince: number;
  quarantinedUntil: number | null;
}

export class SharedQuarantines {
  readonly #db: SqlDb;
  readonly #policy: VerificationPolicy;
  readonly #clock: Clock;
  /** When the last read started (this replica's clock); null before the first. */
  #readAt: number | null = null;
  /** Rows read back, for /metrics and the tests: a read by ids reads no more rows than it names. */
  readonly counts = { reads: 0, rows: 0 };

  constructor(options: { db: SqlDb; policy: VerificationPolicy; clock: Clock }) {
    this.#db = options.db;
    this.#policy = options.policy;
    this.#clock = options.clock;
  }

  /** Reads into the policy what changed: `ids` when a word named them, else what changed since the last read. */
  async refresh(ids?: readonly string[]): Promise<void> {
    const now = this.#clock.now();
    this.counts.reads++;
    if (ids !== undefined) return this.#apply([...new Set(ids)].slice(0, MAX_IDS_PER_READ), now);
    const since = this.#readAt;
    this.#readAt = now;
    if (since === null) return this.#applyInForce(now);
    const { rows } = await this.#db.query<{ contributor_id: string }>(
      `SELECT contributor_id FROM verification_quarantines WHERE since_at >= $1
       UNION SELECT contributor_id FROM verification_benched WHERE updated_at >= $1
       UNION SELECT contributor_id FROM verification_quarantine_lifts WHERE lifted_at >= $1
       LIMIT ${MAX_IDS_PER_READ}`,
      [since - CLOCK_MARGIN_MS],
    );
    this.counts.rows += rows.length;
    if (rows.length > 0)
      await this.#apply(
        rows.map((r) => r.contributor_id),
        now,
      );
  }

  /** The quarantines in force, newest first, and the latest lifts. */
  async list(): Promise<{ quarantines: QuarantineRow[]; lifts: LiftRow[] }> {
    const now = this.#clock.now();
    const q = await this.#db.query<{ contributor_id: string; since_at: unknown; until_at: unknown }>(
      `SELECT contributor_id, since_at, until_at FROM verification_quarantines WHERE until_at IS NULL OR until_at > $1
       ORDER BY since_at DESC LIMIT ${LIST_LIMIT}`,
      [now],
    );
    const l = await this.#db.query<Record<string, unknown>>(
      `SELECT contributor_id, lifted_at, lifted_by, reason, quarantined_since, quarantined_until
       FROM verification_quarantine_lifts ORDER BY lifted_at DESC, id DESC LIMIT ${LIST_LIMIT}`,
    );
    return {
      quarantines: q.rows.map((r) => ({ id: r.contributor_id, since: toInt(r.since_at), until: toIntOrNull(r.until_at) })),
      lifts: l.rows.map((r) => ({
        id: String(r['contributor_id']),
        liftedAt: toInt(r['lifted_at']),
        liftedBy: String(r['lifted_by']),
        reason: String(r['reason']),
        quarantinedSince: toInt(r['quarantined_since']),
        quarantinedUntil: toIntOrNull(r['quarantined_until']),
      })),
    };
  }

  /**
   * Lifts the quarantine of `id` (a device, or `wallet:<address>`): its row goes, the lift is
   * recorded, and this replica lets it go at once. Null when none is in force. Nothing in the
   * ledger moves: what the quarantine voided stays voided.
   */
  async lift(id: string, by: string, reason: string): Promise<{ lift: LiftRow; record: DecisionRecord | undefined } | null> {
    const now = this.#clock.now();
    const lift = await this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<{ since_at: unknown; until_at: unknown }>(
        `DELETE FROM verification_quarantines WHERE contributor_id = $1 AND (until_at IS NULL OR until_at > $2) RETURNING since_at, until_at`,
        [id, now],
      );
      const row = rows[0];
      if (row === undefined) return null;
      const lifted: LiftRow = {
        id,
        liftedAt: now,
        liftedBy: by,
        reason,
        quarantinedSince: toInt(row.since_at),
        quarantinedUntil: toIntOrNull(row.until_at),
      };
      await tx.query(
        `INSERT INTO verification_quarantine_lifts (contributor_id, lifted_at, lifted_by, reason, quarantined_since, quarantined_until)
         VALUES ($1, $2, $3, $4, $5, $6)`,
        [id, now, by, reason, lifted.quarantinedSince, lifted.quarantinedUntil],
      );
      return lifted;
    });
    if (lift === null) return null;
    return { lift, record: this.#letGo(id, `Lifted by ${by}: ${reason}`) };
  }

  /** The quarantines and benches in force (the first read). */
  async #applyInForce(now: number): Promise<void> {
    const q = await this.#db.query<{ contributor_id: string; until_at: unknown }>(
      `SELECT contributor_id, until_at FROM verification_quarantines WHERE until_at IS NULL OR until_at > $1`,
      [now],
    );
    const b = await this.#db.query<{ contributor_id: string; model: string; until_at: unknown }>(
      `SELECT contributor_id, model, until_at FROM verification_benched WHERE until_at > $1`,
      [now],
    );
    this.counts.rows += q.rows.length + b.rows.length;
    for (const r of q.rows) this.#share(r.contributor_id, toIntOrNull(r.until_at));
    for (const r of b.rows) this.#policy.shareBench(r.contributor_id, r.model, toInt(r.until_at));
  }

  /** Reads the rows of `ids` alone and makes the policy agree with them. */
  async #apply(ids: string[], now: number): Promise<void> {
    if (ids.length === 0) return;
    const q = await this.#db.query<{ contributor_id: string; until_at: unknown }>(
      `SELECT contributor_id, until_at FROM verification_quarantines
       WHERE contributor_id = ANY($1::text[]) AND (until_at IS NULL OR until_at > $2)`,
      [ids, now],
    );
    const b = await this.#db.query<{ contributor_id: string; model: string; until_at: unknown }>(
      `SELECT contributor_id, model, until_at FROM verification_benched WHERE contributor_id = ANY($1::text[]) AND until_at > $2`,
      [ids, now],
    );
    const l = await this.#db.query<{ contributor_id: string }>(
      `SELECT DISTINCT contributor_id FROM verification_quarantine_lifts WHERE contributor_id = ANY($1::text[])`,
      [ids],
    );
    this.counts.rows += q.rows.length + b.rows.length + l.rows.length;
    const inForce = new Set<string>();
    for (const r of q.rows) {
      inForce.add(r.contributor_id);
      this.#share(r.contributor_id, toIntOrNull(r.until_at));
    }
    for (const r of b.rows) this.#policy.shareBench(r.contributor_id, r.model, toInt(r.until_at));
    for (const r of l.rows) if (!inForce.has(r.contributor_id)) this.#letGo(r.contributor_id, 'An operator lifted the quarantine.');
  }

  #share(id: string, until: number | null): void {
    const end = until ?? Number.POSITIVE_INFINITY;
    if (id.startsWith(WALLET_PREFIX)) this.#policy.quarantineWallet(id.slice(WALLET_PREFIX.length), end);
    else this.#policy.shareQuarantine(id, end);
  }

  #letGo(id: string, reason: string): DecisionRecord | undefined {
    if (!id.startsWith(WALLET_PREFIX)) return this.#policy.release(id, reason);
    this.#policy.releaseWallet(id.slice(WALLET_PREFIX.length));
    return undefined;
  }
}
