/**
 * For the ledger tests: an in-memory model of what the ledger should hold, written without
 * SQL and with its own rounding, to compare derived balances against.
 */
import type { Usage } from '../../protocol/jobs.ts';
import { FEES_NETWORK, pendingAccount, requesterAccount } from './accounts.ts';
import type { ContributorBalances } from './books.ts';
import type { PriceList } from './prices.ts';

/** Nearest integer to n / d, halves up, by quotient and remainder (prices.ts doubles instead). */
function nearest(n: bigint, d: bigint): bigint {
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

/** A credited job in the model. */
export interface ModelJob {
  requester: string;
  wallet: string;
  gross: bigint;
  commission: bigint;
  share: bigint;
  state: 'pending' | 'settled' | 'voided';
}

/** A payout in the model. */
export interface ModelPayout {
  wallet: string;
  amount: bigint;
  state: 'in-flight' | 'confirmed' | 'failed';
  txHash?: string;
  fee?: bigint;
}

/** The credit's non-zero entries as sorted `account=amount` strings, to tell a replay from a conflict. */
export function creditSignature(j: Pick<ModelJob, 'requester' | 'wallet' | 'gross' | 'commission' | 'share'>): string {
  const lines: [string, bigint][] = [
    [requesterAccount(j.requester), j.gross],
    [pendingAccount(j.wallet), -j.share],
    [FEES_NETWORK, -j.commission],
  ];
  return lines
    .filter(([, amount]) => amount !== 0n)
    .map(([account, amount]) => `${account}=${amount}`)
    .sort()
    .join(',');
}

/** Jobs and payouts as the ledger should know them, and the balances that follow. */
export class LedgerModel {
  readonly jobs = new Map<string, ModelJob>();
  readonly payouts = new Map<string, ModelPayout>();
  /** Transaction id first returned for each idempotency key. */
  readonly txnIds = new Map<string, string>();

  /** What the wallet should show. */
  balances(wallet: string): ContributorBalances {
    const b: ContributorBalances = { pending: 0n, settled: 0n, inFlight: 0n, paid: 0n };
    for (const j of this.jobs.values()) {
      if (j.wallet !== wallet) continue;
      if (j.state === 'pending') b.pending += j.share;
      if (j.state === 'settled') b.settled += j.share;
    }
    for (const p of this.payouts.values()) {
      if (p.wallet !== wallet) continue;
      if (p.state === 'in-flight') b.inFlight += p.amount;
      if (p.state === 'confirmed') b.paid += p.amount;
      if (p.state !== 'failed') b.settled -= p.amount;
    }
    return b;
  }

  /** What the requester was charged, net of voids (the debit-positive account sum). */
  requesterCharged(requester: string): bigint {
    let total = 0n;
    for (const j of this.jobs.values()) if (j.requester === requester && j.state !== 'voided') total += j.gross;
    return total;
  }

  /** Commission earned on jobs not voided (positive; the account sum is its negation). */
  commission(): bigint {
    let total = 0n;
    for (const j of this.jobs.values()) if (j.state !== 'voided') total += j.commission;
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
