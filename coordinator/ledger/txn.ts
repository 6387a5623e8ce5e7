/**
 * Posting one balanced, idempotent ledger transaction, and reading one back. Amounts cross
 * the driver as decimal strings (`::text` out, string parameters in), so neither `pg` nor
 * PGlite ever turns nanoTON into a float.
 */
import type { SqlClient } from '../store/sql.ts';
import type { TxnKind } from './accounts.ts';
import { IdempotencyConflictError } from './errors.ts';

/** One line of a transaction. */
export interface LedgerEntry {
  account: string;
  /** Signed nanoTON: debit positive, credit negative, never zero. */
  amount: bigint;
}

/** A recorded transaction, as a ledger operation returns it. */
export interface LedgerTxn {
  /** Database id (BIGSERIAL), as a decimal string. */
  id: string;
  idempotencyKey: string;
  kind: TxnKind;
  /** The job id or payout id. */
  ref: string;
  /** A void's reason or a payout's chain transaction hash; null otherwise. */
  note: string | null;
  /** Milliseconds since epoch. */
  createdAt: number;
  /** Sorted by account, then amount. Empty for a zero-priced job. */
  entries: LedgerEntry[];
  /** True when this call found the transaction already recorded and wrote nothing. */
  replayed: boolean;
}

/** What to post. */
export interface TxnSpec {
  idempotencyKey: string;
  kind: TxnKind;
  ref: string;
  note?: string | null;
  /** Zero amounts are dropped; the rest must sum to 0n. */
  entries: LedgerEntry[];
  /** Whether a replay with another note is a conflict (a payout's hash) or not (a void's reason). */
  noteMatters?: boolean;
}

function canonical(entries: readonly LedgerEntry[]): LedgerEntry[] {
  return entries
    .filter((e) => e.amount !== 0n)
    .sort((a, b) => (a.account < b.account ? -1 : a.account > b.account ? 1 : a.amount < b.amount ? -1 : a.amount > b.amount ? 1 : 0));
}

function sameEntries(a: readonly LedgerEntry[], b: readonly LedgerEntry[]): boolean {
  return a.length === b.length && a.every((e, i) => e.account === b[i]?.account && e.amount === b[i]?.amount);
}

interface TxnRow {
  id: string;
  idempotency_key: string;
  kind: TxnKind;
  ref: string;
  note: string | null;
  created_at: string;
}

const TXN_COLUMNS = 'id::text AS id, idempotency_key, kind, ref, note, created_at::text AS created_at';

/** Reads the transaction with this key, or undefined. With `lock`, holds its row until commit. */
export async function readTxn(tx: SqlClient, idempotencyKey: string, lock = false): Promise<LedgerTxn | undefined> {
  const { rows } = await tx.query<TxnRow>(`SELECT ${TXN_COLUMNS} FROM ledger_txns WHERE idempotency_key = $1${lock ? ' FOR UPDATE' : ''}`, [
    idempotencyKey,
  ]);
  const row = rows[0];
  if (row === undefined) return undefined;
  const entries = await tx.query<{ account: string; amount: string }>(
    'SELECT account, amount::text AS amount FROM ledger_entries WHERE txn_id = $1',
    [row.id],
  );
  return {
    id: row.id,
    idempotencyKey: row.idempotency_key,
    kind: row.kind,
    ref: row.ref,
    note: row.note,
    createdAt: Number(row.created_at),
    entries: canonical(entries.rows.map((e) => ({ account: e.account, amount: BigInt(e.amount) }))),
    replayed: false,
  };
}

/**
 * Returns `existing` marked as a replay when it records what `spec` asks for, else throws
 * {@link IdempotencyConflictError}.
 */
export function replayOf(existing: LedgerTxn, spec: TxnSpec): LedgerTxn {
  const same =
    existing.kind === spec.kind &&
    existing.ref === spec.ref &&
    sameEntries(existing.entries, canonical([...spec.entries])) &&
    (!spec.noteMatters || existing.note === (spec.note ?? null));
  if (!same) throw new IdempotencyConflictError(spec.idempotencyKey);
  return { ...existing, replayed: true };
}

/**
 * Posts `spec` inside `tx`, or, when its key is already recorded (also by a concurrent
 * caller that committed first), returns the earlier transaction via {@link replayOf}.
 */
export async function postTxn(tx: SqlClient, spec: TxnSpec, now: number): Promise<LedgerTxn> {
  const entries = canonical([...spec.entries]);
  const sum = entries.reduce((total, e) => total + e.amount, 0n);
  if (sum !== 0n) throw new Error(`internal: ledger transaction ${spec.idempotencyKey} sums to ${sum}, not 0`);
  const inserted = await tx.query<{ id: string }>(
    `INSERT INTO ledger_txns (idempotency_key, kind, ref, note, created_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING id::text AS id`,
    [spec.idempotencyKey, spec.kind, spec.ref, spec.note ?? null, now],
  );
  const id = inserted.rows[0]?.id;
  if (id === undefined) {
    const existing = await readTxn(tx, spec.idempotencyKey);
    if (existing === undefined) throw new Error(`internal: ledger transaction ${spec.idempotencyKey} vanished`);
    return replayOf(existing, spec);
  }
  if (entries.length > 0) {
    const params: unknown[] = [id, spec.kind, spec.ref, now];
    const values = entries.map((e) => {
      params.push(e.account, e.amount.toString());
      return `($1, $${params.length - 1}, $${params.length}::bigint, $2, $3, $4)`;
    });
    await tx.query(`INSERT INTO ledger_entries (txn_id, account, amount, kind, ref, created_at) VALUES ${values.join(', ')}`, params);
  }
  return {
    id,
    idempotencyKey: spec.idempotencyKey,
    kind: spec.kind,
    ref: spec.ref,
    note: spec.note ?? null,
    createdAt: now,
    entries,
    replayed: false,
  };
}
