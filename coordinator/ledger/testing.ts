/**
 * For the ledger tests: an in-memory model of what the ledger should hold, written without
 * SQL and with its own rounding, to compare derived balances against; and helpers that fund
 * a key and reserve a job the way the deposit watcher and billing do.
 */
import { randomBytes } from 'node:crypto';
import type { Usage } from '../../protocol/jobs.ts';
import type { ContributorBalances } from './books.ts';
import type { Ledger } from './ledger.ts';
import type { PriceList } from './prices.ts';
import type { LedgerTxn } from './txn.ts';

/** Nearest integer to n / d, halves up, by quotient and remainder (prices.ts doubles instead). */
export function nearest(n: bigint, d: bigint): bigint {
  const q = n / d;
  return (n % d) * 2n >= d ? q + 1n : q;
}

/** The expected price, computed independently of prices.ts. */
export function modelPrice(
  prices: PriceList,
  model: string,
  usage: Usage,
): { gross: bigint; commission: bigint; share: bigint } | undefined {
  const p = prices.models[model];
  if (p === undefined) return undefined;
  const milli =
    p.kind === 'chat'
      ? BigInt(usage.promptTokens) * p.promptPer1k + BigInt(usage.completionTokens) * p.completionPer1k
      : BigInt(usage.promptTokens) * p.inputPer1k;
  const gross = nearest(milli, 1000n);
  const commission = nearest(gross * BigInt(prices.commissionBps), 10_000n);
  return { gross, commission, share: gross - commission };
}

let depositLt = 1_000_000n;

/** Books a deposit for `apiKeyId` (or the check budget) as the watcher would, under a fresh transaction id. */
export function fund(ledger: Ledger, to: string, amount: bigint): Promise<LedgerTxn> {
  return ledger.deposit({
    lt: depositLt++,
    hash: randomBytes(32).toString('hex'),
    amount,
    to: to === 'budget' ? { kind: 'budget' } : { kind: 'requester', apiKeyId: to },
    note: 'test deposit',
  });
}

/** A job's money from the payer's side, in the model. */
export interface ModelJob {
  /** The key, or `budget`. */
  payer: string;
  /** The reservation, nanoTON. */
  reserved: bigint;
  state: 'reserved' | 'charged' | 'released';
  /** Set once charged. */
  wallet?: string | null;
  gross?: bigint;
  commission?: bigint;
  share?: bigint;
  /** After the charge: the contributor's share's fate. */
  credit?: 'pending' | 'settled' | 'voided';
}

/** A payout in the model. */
export interface ModelPayout {
  wallet: string;
  amount: bigint;
  state: 'in-flight' | 'confirmed' | 'failed';
  txHash?: string;
  fee?: bigint;
}

/** Jobs, deposits and payouts as the ledger should know them, and the balances that follow. */
export class LedgerModel {
  readonly jobs = new Map<string, ModelJob>();
  readonly payouts = new Map<string, ModelPayout>();
  /** Deposits by idempotency key: target (`budget`, `unmatched`, or a key) and amount. */
  readonly deposits = new Map<string, { to: string; amount: bigint }>();
  /** Commission moved into the budget. */
  fundedFromFees = 0n;
  /** Transaction id first returned for each idempotency key. */
  readonly txnIds = new Map<string, string>();

  /** What the wallet should show. */
  balances(wallet: string): ContributorBalances {
    const b: ContributorBalances = { pending: 0n, settled: 0n, inFlight: 0n, paid: 0n };
    for (const j of this.jobs.values()) {
      if (j.wallet !== wallet || j.share === undefined) continue;
      if (j.credit === 'pending') b.pending += j.share;
      if (j.credit === 'settled') b.settled += j.share;
    }
    for (const p of this.payouts.values()) {
      if (p.wallet !== wallet) continue;
      if (p.state === 'in-flight') b.inFlight += p.amount;
      if (p.state === 'confirmed') b.paid += p.amount;
      if (p.state !== 'failed') b.settled -= p.amount;
    }
    return b;
  }

  /** A payer's available and reserved balances (positive). */
  payer(payer: string): { available: bigint; reserved: bigint } {
    let available = payer === 'budget' ? this.fundedFromFees : 0n;
    let reserved = 0n;
    for (const d of this.deposits.values()) if (d.to === payer) available += d.amount;
    for (const j of this.jobs.values()) {
      if (j.payer !== payer) continue;
      if (j.state === 'reserved') {
        available -= j.reserved;
        reserved += j.reserved;
      }
      if (j.state === 'charged') available -= j.gross ?? 0n;
    }
    return { available, reserved };
  }

  /** Commission earned, less what was moved into the budget (positive; the account sum is its negation). */
  commission(): bigint {
    let total = -this.fundedFromFees;
    for (const j of this.jobs.values()) total += j.commission ?? 0n;
    return total;
  }

  /** Voided shares (positive). */
  penalties(): bigint {
    let total = 0n;
    for (const j of this.jobs.values()) if (j.credit === 'voided' && j.wallet !== null) total += j.share ?? 0n;
    return total;
  }

  /** Shares of charged jobs without a wallet (positive). */
  unclaimed(): bigint {
    let total = 0n;
    for (const j of this.jobs.values()) if (j.state === 'charged' && j.wallet === null) total += j.share ?? 0n;
    return total;
  }

  /** Deposits to keys and to the budget (unmatched ones excluded). */
  paidIn(): bigint {
    let total = 0n;
    for (const d of this.deposits.values()) if (d.to !== 'unmatched') total += d.amount;
    return total;
  }

  /** Confirmed payouts: amounts and chain fees. */
  paidOut(): { amounts: bigint; fees: bigint } {
    let amounts = 0n;
    let fees = 0n;
    for (const p of this.payouts.values()) {
      if (p.state !== 'confirmed') continue;
      amounts += p.amount;
      fees += p.fee ?? 0n;
    }
    return { amounts, fees };
  }
}

/** Rows in the two ledger tables, to show that a replay wrote nothing. */
export async function ledgerRowCounts(db: { query<T>(sql: string): Promise<{ rows: T[] }> }): Promise<{ txns: number; entries: number }> {
  const { rows } = await db.query<{ txns: string; entries: string }>(
    'SELECT (SELECT count(*) FROM ledger_txns)::text AS txns, (SELECT count(*) FROM ledger_entries)::text AS entries',
  );
  return { txns: Number(rows[0]?.txns), entries: Number(rows[0]?.entries) };
}
