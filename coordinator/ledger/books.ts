/** Balances derived from ledger entries, and the audit of the whole book. */
import type { SqlClient } from '../store/sql.ts';
import { CONTRIBUTOR_PREFIX, FEES_NETWORK, inFlightAccount, pendingAccount, settledAccount } from './accounts.ts';

/** What a contributor's wallet is owed and has been paid, nanoTON, each ≥ 0 in a sound book. */
export interface ContributorBalances {
  /** Credited, inside the verification window. */
  pending: bigint;
  /** Past the window, payable. */
  settled: bigint;
  /** In payouts sent but not yet confirmed. */
  inFlight: bigint;
  /** Lifetime total of confirmed payouts. */
  paid: bigint;
}

/** Sums of the wallet's accounts (amounts owed to it are credits, hence the negations). */
export async function walletBalances(db: SqlClient, wallet: string): Promise<ContributorBalances> {
  const pending = pendingAccount(wallet);
  const settled = settledAccount(wallet);
  const inFlight = inFlightAccount(wallet);
  const { rows } = await db.query<{ account: string; kind: string; total: string }>(
    `SELECT account, kind, sum(amount)::text AS total FROM ledger_entries WHERE account IN ($1, $2, $3) GROUP BY account, kind`,
    [pending, settled, inFlight],
  );
  const result: ContributorBalances = { pending: 0n, settled: 0n, inFlight: 0n, paid: 0n };
  for (const row of rows) {
    const total = BigInt(row.total);
    if (row.account === pending) result.pending -= total;
    else if (row.account === settled) result.settled -= total;
    else result.inFlight -= total;
    // A confirmation debits in-flight by exactly the amount paid.
    if (row.account === inFlight && row.kind === 'payout.confirm') result.paid += total;
  }
  return result;
}

/** One thing wrong with the book. */
export interface BookProblem {
  kind: 'unbalanced-txn' | 'negative-balance' | 'duplicate-key' | 'settled-and-voided' | 'confirmed-and-failed' | 'orphan';
  /** The idempotency key, account or ref concerned. */
  subject: string;
  message: string;
}

/** The result of {@link checkBooks}. */
export interface BookCheck {
  ok: boolean;
  problems: BookProblem[];
  /** Transactions and entries audited. */
  txns: number;
  entries: number;
}

/**
 * Audits the book: every transaction sums to zero, no contributor account (nor the network's
 * fees) is overdrawn, idempotency keys are unique, no job is both settled and voided, no
 * payout both confirmed and failed, and every settle, void, confirm and fail has its origin.
 */
export async function checkBooks(db: SqlClient): Promise<BookCheck> {
  const problems: BookProblem[] = [];
  const unbalanced = await db.query<{ key: string; total: string }>(
    `SELECT t.idempotency_key AS key, sum(e.amount)::text AS total FROM ledger_entries e JOIN ledger_txns t ON t.id = e.txn_id
     GROUP BY t.id, t.idempotency_key HAVING sum(e.amount) <> 0`,
  );
  for (const r of unbalanced.rows) {
    problems.push({ kind: 'unbalanced-txn', subject: r.key, message: `transaction ${r.key} sums to ${r.total} nanoTON, not 0` });
  }
  const overdrawn = await db.query<{ account: string; total: string }>(
    `SELECT account, sum(amount)::text AS total FROM ledger_entries WHERE account LIKE $1 OR account = $2
     GROUP BY account HAVING sum(amount) > 0`,
    [`${CONTRIBUTOR_PREFIX}%`, FEES_NETWORK],
  );
  for (const r of overdrawn.rows) {
    problems.push({ kind: 'negative-balance', subject: r.account, message: `${r.account} is overdrawn by ${r.total} nanoTON` });
  }
  const duplicates = await db.query<{ key: string; n: string }>(
    `SELECT idempotency_key AS key, count(*)::text AS n FROM ledger_txns GROUP BY idempotency_key HAVING count(*) > 1`,
  );
  for (const r of duplicates.rows) {
    problems.push({ kind: 'duplicate-key', subject: r.key, message: `idempotency key ${r.key} is used ${r.n} times` });
  }
  const exclusive: [BookProblem['kind'], string, string, string][] = [
    ['settled-and-voided', 'job.settle', 'job.void', 'job'],
    ['confirmed-and-failed', 'payout.confirm', 'payout.fail', 'payout'],
  ];
  for (const [kind, a, b, what] of exclusive) {
    const both = await db.query<{ ref: string }>(
      `SELECT ref FROM ledger_txns WHERE kind IN ($1, $2) GROUP BY ref HAVING count(DISTINCT kind) > 1`,
      [a, b],
    );
    for (const r of both.rows) problems.push({ kind, subject: r.ref, message: `${what} ${r.ref} is both ${a} and ${b}` });
  }
  const orphans = await db.query<{ key: string }>(
    `SELECT t.idempotency_key AS key FROM ledger_txns t WHERE
       (t.kind IN ('job.settle', 'job.void') AND NOT EXISTS (SELECT 1 FROM ledger_txns o WHERE o.kind = 'job.credit' AND o.ref = t.ref))
       OR (t.kind IN ('payout.confirm', 'payout.fail')
           AND NOT EXISTS (SELECT 1 FROM ledger_txns o WHERE o.kind = 'payout.intent' AND o.ref = t.ref))`,
  );
  for (const r of orphans.rows) problems.push({ kind: 'orphan', subject: r.key, message: `${r.key} has no credit or intent to follow` });
  const counts = await db.query<{ txns: string; entries: string }>(
    `SELECT (SELECT count(*) FROM ledger_txns)::text AS txns, (SELECT count(*) FROM ledger_entries)::text AS entries`,
  );
  return {
    ok: problems.length === 0,
    problems,
    txns: Number(counts.rows[0]?.txns ?? 0),
    entries: Number(counts.rows[0]?.entries ?? 0),
  };
}
