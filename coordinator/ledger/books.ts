/** Balances derived from ledger entries, and the audit of the whole book. */
import type { SqlClient } from '../store/sql.ts';
import {
  BUDGET_AVAILABLE,
  BUDGET_RESERVED,
  CHAIN_DEPOSITS,
  FEES_NETWORK,
  inFlightAccount,
  PENALTIES,
  pendingAccount,
  settledAccount,
  UNCLAIMED,
  UNMATCHED_DEPOSITS,
} from './accounts.ts';

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
  kind:
    | 'unbalanced-txn'
    | 'negative-balance'
    | 'duplicate-key'
    | 'settled-and-voided'
    | 'confirmed-and-failed'
    | 'charged-and-released'
    | 'orphan'
    | 'overdrawn-reservation'
    | 'void-not-to-penalties'
    | 'payouts-exceed-deposits';
  /** The idempotency key, account or ref concerned. */
  subject: string;
  message: string;
}

/** Money in and out of the network, positive nanoTON. */
export interface BookTotals {
  /** Deposits booked to requesters and to the check budget (unmatched ones excluded until assigned). */
  deposits: bigint;
  /** Deposits held for the operator: no API key's memo. */
  unmatched: bigint;
  /** Payouts sent (in flight) or confirmed. */
  payouts: bigint;
  /** Contributor shares voided into `network:penalties`. */
  penalties: bigint;
  /** The check budget: available and reserved. */
  budget: bigint;
  /** Requesters' balances: available and reserved. */
  requesters: bigint;
}

/** The result of {@link checkBooks}. */
export interface BookCheck {
  ok: boolean;
  problems: BookProblem[];
  /** Transactions and entries audited. */
  txns: number;
  entries: number;
  totals: BookTotals;
}

/** Accounts owed to someone (credit-normal): a positive sum means one is overdrawn. */
const OWED = `account LIKE 'contributor:%' OR account LIKE 'requester:%:available' OR account LIKE 'requester:%:reserved'
  OR account IN ('${FEES_NETWORK}', '${BUDGET_AVAILABLE}', '${BUDGET_RESERVED}', '${PENALTIES}', '${UNCLAIMED}', '${UNMATCHED_DEPOSITS}')`;
const RESERVED_ACCOUNT = `(account LIKE 'requester:%:reserved' OR account = '${BUDGET_RESERVED}')`;

/**
 * Audits the book: every transaction sums to zero; no account owed to someone (contributors,
 * requesters' available and reserved balances, the fees, the check budget, penalties) is
 * overdrawn; idempotency keys are unique; no job is both settled and voided or both charged
 * and released, no payout both confirmed and failed; every settle, void, charge, release,
 * confirm and fail has its origin; no job's charge and release exceed its reservation; every
 * void goes from the contributor to `network:penalties` and nowhere else; and nothing was
 * paid out that was not paid in (payouts ≤ deposits to requesters and to the budget).
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
    `SELECT account, sum(amount)::text AS total FROM ledger_entries WHERE ${OWED} GROUP BY account HAVING sum(amount) > 0`,
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
    ['charged-and-released', 'job.credit', 'job.release', 'job'],
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
           AND NOT EXISTS (SELECT 1 FROM ledger_txns o WHERE o.kind = 'payout.intent' AND o.ref = t.ref))
       OR (t.kind = 'job.release' AND NOT EXISTS (SELECT 1 FROM ledger_txns o WHERE o.kind = 'job.reserve' AND o.ref = t.ref))
       OR (t.kind = 'job.credit' AND EXISTS (SELECT 1 FROM ledger_entries e WHERE e.txn_id = t.id AND ${RESERVED_ACCOUNT})
           AND NOT EXISTS (SELECT 1 FROM ledger_txns o WHERE o.kind = 'job.reserve' AND o.ref = t.ref))
       OR (t.kind = 'deposit.assign' AND NOT EXISTS (SELECT 1 FROM ledger_txns o WHERE o.kind = 'deposit' AND o.ref = t.ref))`,
  );
  for (const r of orphans.rows) {
    problems.push({ kind: 'orphan', subject: r.key, message: `${r.key} has no reservation, charge, deposit or intent to follow` });
  }
  const overdrawnJobs = await db.query<{ ref: string; total: string }>(
    `SELECT ref, sum(amount)::text AS total FROM ledger_entries
     WHERE kind IN ('job.reserve', 'job.credit', 'job.release') AND ${RESERVED_ACCOUNT} GROUP BY ref HAVING sum(amount) > 0`,
  );
  for (const r of overdrawnJobs.rows) {
    problems.push({
      kind: 'overdrawn-reservation',
      subject: r.ref,
      message: `job ${r.ref} was charged and released ${r.total} nanoTON more than it reserved`,
    });
  }
  const strayVoids = await db.query<{ key: string; account: string }>(
    `SELECT t.idempotency_key AS key, e.account FROM ledger_txns t JOIN ledger_entries e ON e.txn_id = t.id
     WHERE t.kind = 'job.void' AND NOT (e.account LIKE 'contributor:%:pending' OR e.account = '${PENALTIES}')`,
  );
  for (const r of strayVoids.rows) {
    problems.push({
      kind: 'void-not-to-penalties',
      subject: r.key,
      message: `void ${r.key} moves money on ${r.account}; a void only moves a contributor's pending share to ${PENALTIES}`,
    });
  }
  const totals = await bookTotals(db);
  if (totals.payouts > totals.deposits) {
    problems.push({
      kind: 'payouts-exceed-deposits',
      subject: 'payouts',
      message: `${totals.payouts} nanoTON were paid out but only ${totals.deposits} were deposited by requesters and into the check budget`,
    });
  }
  const counts = await db.query<{ txns: string; entries: string }>(
    `SELECT (SELECT count(*) FROM ledger_txns)::text AS txns, (SELECT count(*) FROM ledger_entries)::text AS entries`,
  );
  return {
    ok: problems.length === 0,
    problems,
    txns: Number(counts.rows[0]?.txns ?? 0),
    entries: Number(counts.rows[0]?.entries ?? 0),
    totals,
  };
}

/** Money in and out, from the entries: see {@link BookTotals}. */
export async function bookTotals(db: SqlClient): Promise<BookTotals> {
  const { rows } = await db.query<Record<keyof BookTotals, string>>(
    `SELECT
       coalesce(-sum(amount) FILTER (WHERE (kind = 'deposit' AND account NOT IN ('${CHAIN_DEPOSITS}', '${UNMATCHED_DEPOSITS}'))
         OR (kind = 'deposit.assign' AND account LIKE 'requester:%')), 0)::text AS deposits,
       coalesce(-sum(amount) FILTER (WHERE account = '${UNMATCHED_DEPOSITS}'), 0)::text AS unmatched,
       coalesce(-sum(amount) FILTER (WHERE kind IN ('payout.intent', 'payout.fail') AND account LIKE 'contributor:%:in-flight'), 0)::text AS payouts,
       coalesce(-sum(amount) FILTER (WHERE account = '${PENALTIES}'), 0)::text AS penalties,
       coalesce(-sum(amount) FILTER (WHERE account IN ('${BUDGET_AVAILABLE}', '${BUDGET_RESERVED}')), 0)::text AS budget,
       coalesce(-sum(amount) FILTER (WHERE account LIKE 'requester:%:available' OR account LIKE 'requester:%:reserved'), 0)::text AS requesters
     FROM ledger_entries`,
  );
  const row = rows[0];
  const read = (k: keyof BookTotals): bigint => BigInt(row?.[k] ?? '0');
  return {
    deposits: read('deposits'),
    unmatched: read('unmatched'),
    payouts: read('payouts'),
    penalties: read('penalties'),
    budget: read('budget'),
    requesters: read('requesters'),
  };
}
