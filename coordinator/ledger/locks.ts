/**
 * The ledger's row and account locks and sums: reading a job's reservation or charge, or a
 * payout's intent, locked inside the caller's transaction (coordinator/ledger/ledger.ts).
 */
import type { SqlClient } from '../store/sql.ts';
import { keys, type Payer } from './accounts.ts';
import { UnknownJobError, UnknownPayoutError, UnknownReservationError } from './errors.ts';
import { readTxn, type LedgerTxn } from './txn.ts';

export const PENDING = /^contributor:(.*):pending$/;
const IN_FLIGHT = /^contributor:(.*):in-flight$/;
const RESERVED = /^(requester:.*|network:budget):reserved$/;
const PAYER_NOTE = /^payer=(budget|requester:(.+))$/;

/** The job's reservation, its row locked so charge and release of one job run one after the other. */
export async function lockReservation(tx: SqlClient, jobId: string): Promise<{ payer: Payer; amount: bigint }> {
  const reservation = await readTxn(tx, keys.reserve(jobId), true);
  if (reservation === undefined) throw new UnknownReservationError(jobId);
  const who = PAYER_NOTE.exec(reservation.note ?? '');
  if (who === null) throw new Error(`internal: job ${jobId}'s reservation names no payer`);
  const payer: Payer = who[2] === undefined ? { kind: 'budget' } : { kind: 'requester', apiKeyId: who[2] };
  const held = reservation.entries.find((e) => RESERVED.test(e.account));
  return { payer, amount: held === undefined ? 0n : -held.amount };
}

/** The job's charge, its row locked so settle and void of one job run one after the other. */
export async function lockJob(tx: SqlClient, jobId: string): Promise<LedgerTxn> {
  const credit = await readTxn(tx, keys.credit(jobId), true);
  if (credit === undefined) throw new UnknownJobError(jobId);
  return credit;
}

/** The payout's intent, locked likewise, with its wallet and amount. */
export async function lockPayout(tx: SqlClient, payoutId: string): Promise<{ inFlight: string; wallet: string; amount: bigint }> {
  const intent = await readTxn(tx, keys.intent(payoutId), true);
  if (intent === undefined) throw new UnknownPayoutError(payoutId);
  for (const e of intent.entries) {
    const wallet = IN_FLIGHT.exec(e.account)?.[1];
    if (wallet !== undefined) return { inFlight: e.account, wallet, amount: -e.amount };
  }
  throw new Error(`internal: payout ${payoutId}'s intent has no in-flight entry`);
}

/** Serialises decisions that read then spend one account, until the transaction ends. */
export async function lockAccount(tx: SqlClient, account: string): Promise<void> {
  await tx.query(`SELECT pg_advisory_xact_lock(hashtext('spinneret.ledger.account'), hashtext($1))`, [account]);
}

export async function sumOf(db: SqlClient, account: string): Promise<bigint> {
  const { rows } = await db.query<{ total: string }>(
    'SELECT coalesce(sum(amount), 0)::text AS total FROM ledger_entries WHERE account = $1',
    [account],
  );
  return BigInt(rows[0]?.total ?? '0');
}
