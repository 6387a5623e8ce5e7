/**
 * `PayoutBook` on the ledger: balances come from `ledger_entries`, the batches and payouts
 * the runner signs are kept in `payout_batches` and `payouts` (migration 003) so a restarted
 * coordinator can reconcile them against the chain.
 *
 * Writes are ordered so that a crash at any point is recoverable: the batch rows go first
 * (so `pendingBatches` sees the batch), then the ledger intents; the ledger moves first on
 * confirm and fail, then the row. A payout whose intent was never written is failed without
 * touching the ledger.
 */
import type { Ledger } from '../ledger/ledger.ts';
import { UnknownPayoutError } from '../ledger/errors.ts';
import type { BatchIntent, PayableBalance, PayoutBook, PayoutConfirmation, PayoutIntent } from '../payouts/book.ts';
import { toInt, type SqlDb } from '../store/sql.ts';

/** One payout as the dashboard shows it. */
export interface PayoutRecord {
  readonly payoutId: string;
  readonly batchId: string;
  readonly wallet: string;
  /** Destination, raw form. */
  readonly to: string;
  /** nanoTON. */
  readonly amount: bigint;
  readonly status: 'pending' | 'paid' | 'failed';
  /** Hash (hex) of the hot-wallet transaction; null until paid. */
  readonly txHash: string | null;
  /** This payout's share of the batch's chain fee, nanoTON; null until paid. */
  readonly fee: bigint | null;
  /** Why it failed; null otherwise. */
  readonly reason: string | null;
  /** ms since epoch. */
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** Options for {@link LedgerPayoutBook}. */
export interface LedgerPayoutBookOptions {
  /** Clock for the rows' times, ms since epoch. Default Date.now. */
  readonly now?: () => number;
}

const SETTLED = /^contributor:(.*):settled$/;

interface PayoutRow {
  payout_id: string;
  batch_id: string;
  wallet: string;
  to_addr: string;
  amount: string;
  status: PayoutRecord['status'];
  tx_hash: string | null;
  fee: string | null;
  reason: string | null;
  created_at: unknown;
  updated_at: unknown;
}

const PAYOUT_COLUMNS = `payout_id, batch_id, wallet, to_addr, amount::text AS amount, status, tx_hash,
  fee::text AS fee, reason, created_at, updated_at`;

function recordFromRow(row: PayoutRow): PayoutRecord {
  return {
    payoutId: row.payout_id,
    batchId: row.batch_id,
    wallet: row.wallet,
    to: row.to_addr,
    amount: BigInt(row.amount),
    status: row.status,
    txHash: row.tx_hash,
    fee: row.fee === null ? null : BigInt(row.fee),
    reason: row.reason,
    createdAt: toInt(row.created_at),
    updatedAt: toInt(row.updated_at),
  };
}

/** The ledger-backed payout book. Every method is idempotent per payout id. */
export class LedgerPayoutBook implements PayoutBook {
  private readonly now: () => number;

  constructor(
    private readonly db: SqlDb,
    private readonly ledger: Ledger,
    options: LedgerPayoutBookOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  async listPayable(threshold: bigint): Promise<PayableBalance[]> {
    // Contributor accounts carry credits (negative sums): the settled balance is the negation.
    const { rows } = await this.db.query<{ account: string; total: string }>(
      `SELECT account, (-sum(amount))::text AS total FROM ledger_entries WHERE account LIKE 'contributor:%:settled'
       GROUP BY account HAVING -sum(amount) > 0 AND -sum(amount) >= $1::bigint ORDER BY account`,
      [threshold.toString()],
    );
    return rows.flatMap((row) => {
      const wallet = SETTLED.exec(row.account)?.[1];
      return wallet === undefined ? [] : [{ wallet, amount: BigInt(row.total) }];
    });
  }

  async recordBatch(batch: BatchIntent): Promise<void> {
    const now = this.now();
    await this.db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO payout_batches (batch_id, seqno, expires_at, since_lt, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (batch_id) DO NOTHING`,
        [batch.batchId, batch.seqno, batch.expiresAt, batch.sinceLt.toString(), now],
      );
      for (const p of batch.payouts) {
        await tx.query(
          `INSERT INTO payouts (payout_id, batch_id, wallet, to_addr, amount, status, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5::bigint, 'pending', $6, $6) ON CONFLICT (payout_id) DO NOTHING`,
          [p.payoutId, batch.batchId, p.wallet, p.to, p.amount.toString(), now],
        );
      }
    });
    try {
      for (const p of batch.payouts) {
        await this.ledger.recordPayoutIntent({ payoutId: p.payoutId, wallet: p.wallet, amount: p.amount });
      }
    } catch (err) {
      // The runner sends nothing when this throws: give back what was already moved.
      const reason = `the payout intent could not be recorded: ${err instanceof Error ? err.message : String(err)}`;
      for (const p of batch.payouts) await this.fail(p.payoutId, reason);
      throw err;
    }
  }

  async pendingBatches(): Promise<BatchIntent[]> {
    const batches = await this.db.query<{ batch_id: string; seqno: unknown; expires_at: unknown; since_lt: string }>(
      `SELECT batch_id, seqno, expires_at, since_lt FROM payout_batches b
       WHERE EXISTS (SELECT 1 FROM payouts p WHERE p.batch_id = b.batch_id AND p.status = 'pending') ORDER BY seqno, created_at`,
    );
    const result: BatchIntent[] = [];
    for (const b of batches.rows) {
      const payouts = await this.db.query<{ payout_id: string; wallet: string; to_addr: string; amount: string }>(
        `SELECT payout_id, wallet, to_addr, amount::text AS amount FROM payouts WHERE batch_id = $1 ORDER BY payout_id`,
        [b.batch_id],
      );
      result.push({
        batchId: b.batch_id,
        seqno: toInt(b.seqno),
        expiresAt: toInt(b.expires_at),
        sinceLt: BigInt(b.since_lt),
        payouts: payouts.rows.map((p): PayoutIntent => ({
          payoutId: p.payout_id,
          wallet: p.wallet,
          to: p.to_addr,
          amount: BigInt(p.amount),
        })),
      });
    }
    return result;
  }

  async confirm(payoutId: string, confirmation: PayoutConfirmation): Promise<void> {
    if ((await this.status(payoutId)) === 'paid') return;
    await this.ledger.confirmPayout({ payoutId, txHash: confirmation.txHash, fee: confirmation.fee });
    await this.db.query(
      `UPDATE payouts SET status = 'paid', tx_hash = $2, lt = $3, fee = $4::bigint, updated_at = $5
       WHERE payout_id = $1 AND status = 'pending'`,
      [payoutId, confirmation.txHash, confirmation.lt.toString(), confirmation.fee.toString(), this.now()],
    );
  }

  async fail(payoutId: string, reason: string): Promise<void> {
    if ((await this.status(payoutId)) === 'failed') return;
    try {
      await this.ledger.failPayout(payoutId);
    } catch (err) {
      // A crash between the batch rows and the intents: nothing was moved, nothing to give back.
      if (!(err instanceof UnknownPayoutError)) throw err;
    }
    await this.db.query(`UPDATE payouts SET status = 'failed', reason = $2, updated_at = $3 WHERE payout_id = $1 AND status = 'pending'`, [
      payoutId,
      reason,
      this.now(),
    ]);
  }

  /** The wallet's payouts, newest first. */
  async payoutsFor(wallet: string, limit = 100): Promise<PayoutRecord[]> {
    const { rows } = await this.db.query<PayoutRow>(
      `SELECT ${PAYOUT_COLUMNS} FROM payouts WHERE wallet = $1 ORDER BY created_at DESC, payout_id LIMIT $2`,
      [wallet, limit],
    );
    return rows.map(recordFromRow);
  }

  /** One payout, or undefined. */
  async payout(payoutId: string): Promise<PayoutRecord | undefined> {
    const { rows } = await this.db.query<PayoutRow>(`SELECT ${PAYOUT_COLUMNS} FROM payouts WHERE payout_id = $1`, [payoutId]);
    const row = rows[0];
    return row === undefined ? undefined : recordFromRow(row);
  }

  private async status(payoutId: string): Promise<PayoutRecord['status']> {
    const { rows } = await this.db.query<{ status: PayoutRecord['status'] }>('SELECT status FROM payouts WHERE payout_id = $1', [payoutId]);
    const status = rows[0]?.status;
    if (status === undefined) throw new Error(`unknown payout ${payoutId}: it is in no recorded batch`);
    return status;
  }
}
