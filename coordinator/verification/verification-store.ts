/**
 * Verification's tables (migration 004): job rows saying what each credit waits for, the
 * decision records, quarantines, receipts and the receipt key.
 */
import type { JobKind } from '../../protocol/manifest.ts';
import type { SqlDb } from '../store/sql.ts';
import { toInt, toIntOrNull } from '../store/sql.ts';
import type { DecisionRecord } from './policy.ts';
import type { SignedReceipt } from './receipts.ts';

/** What a job's credit waits for. */
export type JobStatus = 'unchecked' | 'awaiting' | 'settle' | 'void';

/** One row of `verification_jobs`. */
export interface JobRow {
  jobId: string;
  contributorId: string;
  role: 'job' | 'canary' | 'replica' | 'tie-break' | 'rerun';
  primaryJobId: string;
  apiKeyId: string;
  model: string;
  kind: JobKind;
  engineClass: string;
  status: JobStatus;
  replicaJobId: string | null;
  tieBreakJobId: string | null;
  replicaVerdictAt: number | null;
  tieBreakVerdictAt: number | null;
  awaitingUntil: number | null;
  /** The usage the contributor claimed in its final chunk, if known. */
  claimed?: { promptTokens: number; completionTokens: number } | null;
}

/** Counts per record kind, for a contributor's page and for restoring the policy. */
export type KindCounts = Partial<Record<DecisionRecord['kind'], number>>;

export class VerificationStore {
  constructor(private readonly db: SqlDb) {}

  async insertJob(row: JobRow, now: number): Promise<void> {
    await this.db.query(
      `INSERT INTO verification_jobs (job_id, contributor_id, role, primary_job_id, api_key_id, model, kind, engine_class, status,
         replica_job_id, tie_break_job_id, awaiting_until, updated_at, claimed_prompt, claimed_completion)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (job_id) DO NOTHING`,
      [
        row.jobId,
        row.contributorId,
        row.role,
        row.primaryJobId,
        row.apiKeyId,
        row.model,
        row.kind,
        row.engineClass,
        row.status,
        row.replicaJobId,
        row.tieBreakJobId,
        row.awaitingUntil,
        now,
        row.claimed?.promptTokens ?? null,
        row.claimed?.completionTokens ?? null,
      ],
    );
  }

  async job(jobId: string): Promise<JobRow | null> {
    const { rows } = await this.db.query<Record<string, unknown>>(`SELECT * FROM verification_jobs WHERE job_id = $1`, [jobId]);
    const r = rows[0];
    return r === undefined ? null : toRow(r);
  }

  /** Sets the status of the row of `contributorId` among the runs of `primaryJobId`; returns its job id(s). */
  async setStatus(
    primaryJobId: string,
    contributorId: string,
    status: JobStatus,
    awaitingUntil: number | null,
    now: number,
  ): Promise<string[]> {
    const { rows } = await this.db.query<{ job_id: string }>(
      `UPDATE verification_jobs SET status = $3, awaiting_until = $4, updated_at = $5
       WHERE primary_job_id = $1 AND contributor_id = $2 AND status <> 'void' RETURNING job_id`,
      [primaryJobId, contributorId, status, awaitingUntil, now],
    );
    return rows.map((r) => r.job_id);
  }

  /** Marks every run of a primary job that still awaits a check as unchecked (the check could not run). */
  async uncheck(primaryJobId: string, now: number): Promise<void> {
    await this.db.query(
      `UPDATE verification_jobs SET status = 'unchecked', awaiting_until = NULL, updated_at = $2
       WHERE primary_job_id = $1 AND status = 'awaiting'`,
      [primaryJobId, now],
    );
  }

  async update(
    jobId: string,
    fields: Partial<Pick<JobRow, 'replicaJobId' | 'tieBreakJobId' | 'replicaVerdictAt' | 'tieBreakVerdictAt'>>,
  ): Promise<void> {
    const columns: Record<string, string> = {
      replicaJobId: 'replica_job_id',
      tieBreakJobId: 'tie_break_job_id',
      replicaVerdictAt: 'replica_verdict_at',
      tieBreakVerdictAt: 'tie_break_verdict_at',
    };
    const entries = Object.entries(fields).filter(([, value]) => value !== undefined);
    if (entries.length === 0) return;
    const sets = entries.map(([key], i) => `${columns[key] ?? 'invalid'} = $${i + 2}`).join(', ');
    await this.db.query(`UPDATE verification_jobs SET ${sets} WHERE job_id = $1`, [jobId, ...entries.map(([, value]) => value)]);
  }

  /** Takes the one verdict of `stage` for a primary job; false when one was already taken. */
  async claimVerdict(jobId: string, stage: 'replica' | 'tie-break', now: number): Promise<boolean> {
    const column = stage === 'replica' ? 'replica_verdict_at' : 'tie_break_verdict_at';
    const { rows } = await this.db.query<{ job_id: string }>(
      `UPDATE verification_jobs SET ${column} = $2 WHERE job_id = $1 AND ${column} IS NULL RETURNING job_id`,
      [jobId, now],
    );
    return rows.length === 1;
  }

  /** Voids every credit of the contributor still unjudged; returns the job ids. */
  async voidUnjudged(contributorId: string, now: number): Promise<string[]> {
    const { rows } = await this.db.query<{ job_id: string }>(
      `UPDATE verification_jobs SET status = 'void', updated_at = $2
       WHERE contributor_id = $1 AND status IN ('unchecked', 'awaiting') RETURNING job_id`,
      [contributorId, now],
    );
    return rows.map((r) => r.job_id);
  }

  async addRecords(records: readonly DecisionRecord[]): Promise<void> {
    for (const r of records) {
      await this.db.query(`INSERT INTO verification_records (at, contributor_id, job_id, kind, reason) VALUES ($1, $2, $3, $4, $5)`, [
        r.at,
        r.contributorId,
        r.jobId ?? null,
        r.kind,
        r.reason,
      ]);
    }
  }

  /** The latest `limit` records, newest first. */
  async records(contributorId: string, limit: number): Promise<DecisionRecord[]> {
    const { rows } = await this.db.query<Record<string, unknown>>(
      `SELECT at, contributor_id, job_id, kind, reason FROM verification_records WHERE contributor_id = $1 ORDER BY id DESC LIMIT $2`,
      [contributorId, limit],
    );
    return rows.map((r) => ({
      at: toInt(r['at']),
      contributorId: String(r['contributor_id']),
      jobId: r['job_id'] === null ? undefined : (r['job_id'] as string),
      kind: String(r['kind']) as DecisionRecord['kind'],
      reason: String(r['reason']),
    }));
  }

  async kindCounts(contributorId: string): Promise<KindCounts> {
    const { rows } = await this.db.query<{ kind: string; n: unknown }>(
      `SELECT kind, count(*) AS n FROM verification_records WHERE contributor_id = $1 GROUP BY kind`,
      [contributorId],
    );
    return Object.fromEntries(rows.map((r) => [r.kind, toInt(r.n)]));
  }

  /** Contributors with records, for restoring the policy after a restart. */
  async contributors(): Promise<string[]> {
    const { rows } = await this.db.query<{ contributor_id: string }>(`SELECT DISTINCT contributor_id FROM verification_records`);
    return rows.map((r) => r.contributor_id);
  }

  /** The wallets the contributors earn for (those without one are left out). */
  async wallets(contributorIds: readonly string[]): Promise<Map<string, string>> {
    if (contributorIds.length === 0) return new Map();
    const { rows } = await this.db.query<{ id: string; wallet: string | null }>(
      `SELECT id, wallet FROM contributors WHERE id = ANY($1::text[])`,
      [[...contributorIds]],
    );
    return new Map(rows.flatMap((r) => (r.wallet === null ? [] : [[r.id, r.wallet] as [string, string]])));
  }

  /** Takes the one report of a delivered job; false when it has one already. */
  async addReport(
    report: { jobId: string; apiKeyId: string; contributorId: string; outcome: 'ok' | 'unopenable'; disputed: boolean; counted: boolean },
    now: number,
  ): Promise<boolean> {
    const { rows } = await this.db.query<{ job_id: string }>(
      `INSERT INTO verification_reports (job_id, api_key_id, contributor_id, outcome, disputed, counted, at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_id) DO NOTHING RETURNING job_id`,
      [report.jobId, report.apiKeyId, report.contributorId, report.outcome, report.disputed, report.counted, now],
    );
    return rows.length === 1;
  }

  /** Reports since `since`, oldest first, for restoring requesters' standing after a restart. */
  async reportsSince(
    since: number,
  ): Promise<{ apiKeyId: string; contributorId: string; outcome: string; disputed: boolean; at: number }[]> {
    const { rows } = await this.db.query<Record<string, unknown>>(
      `SELECT api_key_id, contributor_id, outcome, disputed, at FROM verification_reports WHERE at > $1 ORDER BY at`,
      [since],
    );
    return rows.map((r) => ({
      apiKeyId: String(r['api_key_id']),
      contributorId: String(r['contributor_id']),
      outcome: String(r['outcome']),
      disputed: r['disputed'] === true,
      at: toInt(r['at']),
    }));
  }

  /** Every device that earns for `wallet`. */
  async devicesOf(wallet: string): Promise<string[]> {
    const { rows } = await this.db.query<{ id: string }>(`SELECT id FROM contributors WHERE wallet = $1`, [wallet]);
    return rows.map((r) => r.id);
  }

  async quarantine(contributorId: string, until: number | null, now: number): Promise<void> {
    await this.db.query(
      `INSERT INTO verification_quarantines (contributor_id, until_at, since_at) VALUES ($1, $2, $3)
       ON CONFLICT (contributor_id) DO UPDATE SET until_at = EXCLUDED.until_at, since_at = EXCLUDED.since_at`,
      [contributorId, until, now],
    );
  }

  async release(contributorId: string): Promise<void> {
    await this.db.query(`DELETE FROM verification_quarantines WHERE contributor_id = $1`, [contributorId]);
  }

  /** Whether any of `ids` (devices, or `wallet:` keys) is quarantined now. */
  async anyQuarantined(ids: readonly string[], now: number): Promise<boolean> {
    if (ids.length === 0) return false;
    const { rows } = await this.db.query(
      `SELECT 1 FROM verification_quarantines WHERE contributor_id = ANY($1::text[]) AND (until_at IS NULL OR until_at > $2) LIMIT 1`,
      [[...ids], now],
    );
    return rows.length > 0;
  }

  /** Quarantines in force: contributor → until (null: until released). */
  async quarantines(now: number): Promise<Map<string, number | null>> {
    const { rows } = await this.db.query<{ contributor_id: string; until_at: unknown }>(
      `SELECT contributor_id, until_at FROM verification_quarantines WHERE until_at IS NULL OR until_at > $1`,
      [now],
    );
    return new Map(rows.map((r) => [r.contributor_id, toIntOrNull(r.until_at)]));
  }

  async addReceipt(signed: SignedReceipt): Promise<void> {
    await this.db.query(
      `INSERT INTO verification_receipts (job_id, contributor_id, receipt, signature, at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (job_id) DO NOTHING`,
      [signed.receipt.jobId, signed.receipt.contributorId, JSON.stringify(signed.receipt), signed.signature, signed.receipt.at],
    );
  }

  /** The latest `limit` receipts, newest first. */
  async receipts(contributorId: string, limit: number): Promise<SignedReceipt[]> {
    const { rows } = await this.db.query<{ receipt: string; signature: string }>(
      `SELECT receipt, signature FROM verification_receipts WHERE contributor_id = $1 ORDER BY at DESC, job_id LIMIT $2`,
      [contributorId, limit],
    );
    return rows.map((r) => ({ receipt: JSON.parse(r.receipt) as SignedReceipt['receipt'], signature: r.signature }));
  }

  /** The stored key pair (PKCS#8 and raw public, base64url), storing `fresh` first when there is none. */
  async key(name: string, fresh: () => Promise<{ pkcs8: string; raw: string }>, now: number): Promise<{ pkcs8: string; raw: string }> {
    const read = async (): Promise<{ pkcs8: string; raw: string } | undefined> => {
      const { rows } = await this.db.query<{ private_pkcs8: string; public_raw: string }>(
        `SELECT private_pkcs8, public_raw FROM verification_keys WHERE name = $1`,
        [name],
      );
      const r = rows[0];
      return r === undefined ? undefined : { pkcs8: r.private_pkcs8, raw: r.public_raw };
    };
    const existing = await read();
    if (existing !== undefined) return existing;
    const made = await fresh();
    // Another replica may have stored one meanwhile: the first stored wins.
    await this.db.query(
      `INSERT INTO verification_keys (name, private_pkcs8, public_raw, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING`,
      [name, made.pkcs8, made.raw, now],
    );
    return (await read()) ?? made;
  }
}

/** Replaces a stored private key (sealing one that was stored plain). */
export async function replaceKey(db: SqlDb, name: string, privateKey: string): Promise<void> {
  await db.query(`UPDATE verification_keys SET private_pkcs8 = $2 WHERE name = $1`, [name, privateKey]);
}

function toRow(r: Record<string, unknown>): JobRow {
  return {
    jobId: String(r['job_id']),
    contributorId: String(r['contributor_id']),
    role: String(r['role']) as JobRow['role'],
    primaryJobId: String(r['primary_job_id']),
    apiKeyId: String(r['api_key_id']),
    model: String(r['model']),
    kind: String(r['kind']) as JobKind,
    engineClass: String(r['engine_class']),
    status: String(r['status']) as JobStatus,
    replicaJobId: r['replica_job_id'] === null ? null : (r['replica_job_id'] as string),
    tieBreakJobId: r['tie_break_job_id'] === null ? null : (r['tie_break_job_id'] as string),
    replicaVerdictAt: toIntOrNull(r['replica_verdict_at']),
    tieBreakVerdictAt: toIntOrNull(r['tie_break_verdict_at']),
    awaitingUntil: toIntOrNull(r['awaiting_until']),
    claimed:
      r['claimed_prompt'] === null || r['claimed_prompt'] === undefined
        ? null
        : { promptTokens: toInt(r['claimed_prompt']), completionTokens: toInt(r['claimed_completion']) },
  };
}
