/**
 * The parts of a device's record that are not verification decisions and must survive a
 * restart (migration 008_reputation.sql): its faults, the models it is benched off (a first
 * failure forgiven once, never again after a restart), and the credits it earned for
 * requester jobs while on probation, which the probation credit cap counts.
 */
import type { SqlDb } from '../store/sql.ts';
import { toInt } from '../store/sql.ts';

/** What {@link ReputationStore.load} gives back, per device. */
export interface SavedReputation {
  readonly faults: ReadonlyMap<string, number>;
  /** Device → model → when its bench ends, ms. */
  readonly benched: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

export class ReputationStore {
  constructor(private readonly db: SqlDb) {}

  async addFault(contributorId: string, now: number): Promise<void> {
    await this.db.query(
      `INSERT INTO verification_faults (contributor_id, faults, updated_at) VALUES ($1, 1, $2)
       ON CONFLICT (contributor_id) DO UPDATE SET faults = verification_faults.faults + 1, updated_at = EXCLUDED.updated_at`,
      [contributorId, now],
    );
  }

  async bench(contributorId: string, model: string, until: number, now: number): Promise<void> {
    await this.db.query(
      `INSERT INTO verification_benched (contributor_id, model, until_at, updated_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (contributor_id, model) DO UPDATE SET until_at = EXCLUDED.until_at, updated_at = EXCLUDED.updated_at`,
      [contributorId, model, until, now],
    );
  }

  async load(): Promise<SavedReputation> {
    const faults = new Map<string, number>();
    for (const r of (await this.db.query<Record<string, unknown>>(`SELECT contributor_id, faults FROM verification_faults`)).rows) {
      faults.set(String(r['contributor_id']), toInt(r['faults']));
    }
    const benched = new Map<string, Map<string, number>>();
    const rows = (await this.db.query<Record<string, unknown>>(`SELECT contributor_id, model, until_at FROM verification_benched`)).rows;
    for (const r of rows) {
      const id = String(r['contributor_id']);
      const models = benched.get(id) ?? new Map<string, number>();
      models.set(String(r['model']), toInt(r['until_at']));
      benched.set(id, models);
    }
    return { faults, benched };
  }

  /** Records the credit of a requester job a device on probation ran. */
  async addProbationCredit(jobId: string, contributorId: string, amountNano: bigint, at: number): Promise<void> {
    await this.db.query(
      `INSERT INTO verification_probation_credits (job_id, contributor_id, amount_nano, at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (job_id) DO NOTHING`,
      [jobId, contributorId, amountNano.toString(), at],
    );
  }

  /**
   * Whether the credit of `jobId` lies beyond `cap`: the device's probation credits up to and
   * including it (in the order they were earned, voided ones left out) add up to more.
   * False for a job that is not a probation credit.
   */
  async beyondCap(jobId: string, cap: bigint): Promise<boolean> {
    const { rows } = await this.db.query<{ total: unknown }>(
      `SELECT
         (SELECT COALESCE(SUM(c.amount_nano), 0) FROM verification_probation_credits c
            LEFT JOIN verification_jobs j ON j.job_id = c.job_id
           WHERE c.contributor_id = p.contributor_id AND (c.at, c.job_id) <= (p.at, p.job_id)
             AND (j.status IS NULL OR j.status <> 'void')) AS total
       FROM verification_probation_credits p WHERE p.job_id = $1`,
      [jobId],
    );
    const r = rows[0];
    if (r === undefined) return false;
    return BigInt(String(r.total)) > cap;
  }
}
