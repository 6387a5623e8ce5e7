/** `job_billing`, per job: what was agreed (the envelope and reservation), claimed and billed. */
import type { BillingEnvelope } from '../../protocol/billing.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { Clock } from '../clock.ts';
import type { JobDone } from '../leases/relay.ts';
import type { Payer } from '../ledger/accounts.ts';
import { toInt, type SqlDb } from '../store/sql.ts';

/** One job's billing row, as a re-run reads it. */
export interface BillingRow {
  job_id: string;
  api_key_id: string;
  payer: 'requester' | 'budget';
  role: string;
  model: string;
  kind: JobKind;
  input_tokens: unknown;
  max_output_tokens: unknown;
  state: 'reserved' | 'charged' | 'released';
}

/** A reservation as written, before the ledger holds the money. */
export interface NewBillingRow {
  jobId: string;
  apiKeyId: string;
  payer: Payer['kind'];
  role: string;
  model: string;
  kind: JobKind;
  envelope: BillingEnvelope;
  /** nanoTON reserved. */
  amount: bigint;
  /** The job a `rerun` re-runs; null otherwise. */
  rerunOf: string | null;
}

const SWEEP_BATCH = 500;

/** `AND b.replica_id …` with its parameter, when one replica's rows are asked for. */
const ofReplica = (replicaId: string | null | undefined): [string, unknown[]] =>
  replicaId === undefined ? ['', []] : [' AND b.replica_id IS NOT DISTINCT FROM $1', [replicaId]];

export class BillingRows {
  readonly #db: SqlDb;
  readonly #clock: Clock;

  constructor(db: SqlDb, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
  }

  /** Writes a reservation's row (a row already there for the job is kept). */
  async insert(row: NewBillingRow): Promise<void> {
    const { jobId, apiKeyId, payer, role, model, kind, envelope, amount, rerunOf } = row;
    await this.#db.query(
      `INSERT INTO job_billing (job_id, api_key_id, payer, role, model, kind, input_tokens, max_output_tokens, reserved, state, rerun_of, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'reserved', $10, $11, $11) ON CONFLICT (job_id) DO NOTHING`,
      [
        jobId,
        apiKeyId,
        payer,
        role,
        model,
        kind,
        envelope.inputTokens,
        envelope.maxOutputTokens,
        amount.toString(),
        rerunOf,
        this.#clock.now(),
      ],
    );
  }

  /** Forgets a reservation the ledger refused. */
  async deleteReserved(jobId: string): Promise<void> {
    await this.#db.query(`DELETE FROM job_billing WHERE job_id = $1 AND state = 'reserved'`, [jobId]);
  }

  async markReleased(jobId: string): Promise<void> {
    await this.#db.query(`UPDATE job_billing SET state = 'released', updated_at = $2 WHERE job_id = $1 AND state = 'reserved'`, [
      jobId,
      this.#clock.now(),
    ]);
  }

  /** What a finished job's contributor claimed and what was billed; `charged` null: released. */
  async recordDone(done: JobDone, charged: bigint | null): Promise<void> {
    await this.#db.query(
      `UPDATE job_billing SET state = $2, claimed_prompt = $3, claimed_completion = $4, billed_prompt = $5, billed_completion = $6,
         charged = $7, updated_at = $8 WHERE job_id = $1`,
      [
        done.jobId,
        charged === null ? 'released' : 'charged',
        done.claimed.promptTokens,
        done.claimed.completionTokens,
        done.usage.promptTokens,
        done.usage.completionTokens,
        charged === null ? null : charged.toString(),
        this.#clock.now(),
      ],
    );
  }

  /** Open reservations written before `before` (ms), oldest first, a batch at a time. */
  async staleReserved(before: number): Promise<string[]> {
    const { rows } = await this.#db.query<{ job_id: string }>(
      `SELECT job_id FROM job_billing WHERE state = 'reserved' AND created_at < $1 ORDER BY created_at LIMIT ${SWEEP_BATCH}`,
      [before],
    );
    return rows.map((r) => r.job_id);
  }

  /** Open reservations whose job never got a row or ended failed or cancelled (of one replica, when named). */
  async orphaned(replicaId?: string | null): Promise<string[]> {
    const [only, params] = ofReplica(replicaId);
    const { rows } = await this.#db.query<{ job_id: string }>(
      `SELECT b.job_id FROM job_billing b LEFT JOIN jobs j ON j.id = b.job_id
       WHERE b.state = 'reserved' AND (j.id IS NULL OR j.state IN ('failed', 'cancelled'))${only} ORDER BY b.created_at`,
      params,
    );
    return rows.map((r) => r.job_id);
  }

  /** Requester jobs done whose reservation is still open (of one replica, when named), with their envelopes. */
  async doneUncharged(replicaId?: string | null): Promise<Array<{ jobId: string; envelope: BillingEnvelope }>> {
    const [only, params] = ofReplica(replicaId);
    const { rows } = await this.#db.query<{ job_id: string; input_tokens: unknown; max_output_tokens: unknown }>(
      `SELECT b.job_id, b.input_tokens, b.max_output_tokens FROM job_billing b JOIN jobs j ON j.id = b.job_id
       WHERE b.state = 'reserved' AND b.role = 'job' AND j.state = 'done'${only} ORDER BY b.created_at`,
      params,
    );
    return rows.map((r) => ({
      jobId: r.job_id,
      envelope: { inputTokens: toInt(r.input_tokens), maxOutputTokens: toInt(r.max_output_tokens) },
    }));
  }

  async get(jobId: string): Promise<BillingRow | undefined> {
    const { rows } = await this.#db.query<BillingRow>(
      `SELECT job_id, api_key_id, payer, role, model, kind, input_tokens, max_output_tokens, state FROM job_billing WHERE job_id = $1`,
      [jobId],
    );
    return rows[0];
  }

  /** Whether a re-run of `primaryJobId` was reserved already. */
  async hasRerun(primaryJobId: string): Promise<boolean> {
    const taken = await this.#db.query<{ job_id: string }>(`SELECT job_id FROM job_billing WHERE rerun_of = $1`, [primaryJobId]);
    return taken.rows.length > 0;
  }
}
