/**
 * The deposit watcher (docs/protocol.md, "Deposits"): reads the transfers the deposit address
 * received and books each exactly once in the ledger — to the API key whose deposit memo its
 * comment carries, to the check budget for the budget memo, or to `deposits:unmatched` for the
 * operator when the comment names no key. A transfer is identified by its transaction's
 * logical time and hash, so one seen twice, or re-read after a crash, books nothing more.
 */
import type { Address } from '@ton/core';
import * as v from 'valibot';
import { DepositMemo } from '../../protocol/wire.ts';
import { type Clock, systemClock } from '../clock.ts';
import { keys } from '../ledger/accounts.ts';
import type { DepositTarget, Ledger } from '../ledger/ledger.ts';
import { toInt, type SqlDb } from '../store/sql.ts';
import type { Store } from '../store/types.ts';
import type { DepositChain, IncomingTransfer } from './chain.ts';

/** Settings of {@link createDepositWatcher}. */
export interface DepositWatcherOptions {
  readonly db: SqlDb;
  readonly ledger: Ledger;
  readonly store: Pick<Store, 'findApiKeyByMemo'>;
  readonly chain: DepositChain;
  /** The address requesters send TON to. */
  readonly address: Address;
  /** The comment that funds the network's check budget instead of a key. */
  readonly budgetMemo: string;
  /** How often the address is read, ms. Default 10 s. */
  readonly intervalMs?: number;
  /**
   * Where the first read starts when the address has no cursor yet: `latest` (its last
   * transaction now: nothing from before the watcher existed is booked, as no memo existed
   * then) or a logical time. Default `latest`.
   */
  readonly startAt?: 'latest' | bigint;
  /** Told after a deposit to the check budget is booked. */
  readonly onBudgetDeposit?: () => void;
  readonly clock?: Clock;
  /** Where failures of the timer go. Default console.error. */
  readonly log?: (message: string, err?: unknown) => void;
}

/** What one read of the address did. */
export interface PollReport {
  /** Transfers seen after the cursor. */
  readonly seen: number;
  /** Newly booked to a key, to the budget, to unmatched. */
  readonly toKeys: number;
  readonly toBudget: number;
  readonly unmatched: number;
  /** Seen before (already in the ledger): nothing booked. */
  readonly replayed: number;
}

/** A deposit held for the operator: its comment named no API key. */
export interface UnmatchedDeposit {
  /** The ledger's key for it; pass it to the assign route. */
  readonly depositKey: string;
  readonly lt: string;
  readonly txHash: string;
  readonly from: string | null;
  /** nanoTON. */
  readonly amount: bigint;
  readonly comment: string | null;
  readonly at: number;
}

export interface DepositWatcher {
  /** Reads and books what arrived since the last read; one at a time (a tick during a read joins it). */
  poll(): Promise<PollReport>;
  start(): void;
  stop(): void;
  /** Unmatched deposits not yet assigned, oldest first. */
  unmatched(limit?: number): Promise<UnmatchedDeposit[]>;
  /** Gives an unmatched deposit to the key its sender meant (the operator's call, after checking with the sender). */
  assign(depositKey: string, apiKeyId: string): Promise<void>;
}

/** Longest comment kept for the operator, characters. */
const MAX_COMMENT = 120;

export function createDepositWatcher(options: DepositWatcherOptions): DepositWatcher {
  const { db, ledger, chain, address } = options;
  const clock = options.clock ?? systemClock;
  const log = options.log ?? ((message: string, err?: unknown) => console.error(`[deposits] ${message}`, err ?? ''));
  const raw = address.toRawString();
  let running: Promise<PollReport> | null = null;
  let timer: NodeJS.Timeout | null = null;

  async function cursor(): Promise<bigint> {
    const { rows } = await db.query<{ lt: string }>('SELECT lt FROM deposit_cursors WHERE address = $1', [raw]);
    const found = rows[0]?.lt;
    if (found !== undefined) return BigInt(found);
    const start = options.startAt === undefined || options.startAt === 'latest' ? await chain.lastLt(address) : options.startAt;
    await saveCursor(start);
    return start;
  }

  async function saveCursor(lt: bigint): Promise<void> {
    await db.query(
      `INSERT INTO deposit_cursors (address, lt, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (address) DO UPDATE SET lt = EXCLUDED.lt, updated_at = EXCLUDED.updated_at`,
      [raw, lt.toString(), clock.now()],
    );
  }

  async function targetOf(memo: string | null): Promise<DepositTarget> {
    if (memo === null) return { kind: 'unmatched' };
    if (memo === options.budgetMemo) return { kind: 'budget' };
    if (!v.is(DepositMemo, memo)) return { kind: 'unmatched' };
    const key = await options.store.findApiKeyByMemo(memo);
    return key === null ? { kind: 'unmatched' } : { kind: 'requester', apiKeyId: key.id };
  }

  async function book(transfer: IncomingTransfer): Promise<{ target: DepositTarget; replayed: boolean }> {
    const memo = transfer.comment?.trim() ?? null;
    const target = await targetOf(memo);
    const shown = memo === null ? 'no comment' : `comment ${JSON.stringify(memo.slice(0, MAX_COMMENT))}`;
    const txn = await ledger.deposit({
      lt: transfer.lt,
      hash: transfer.hash,
      amount: transfer.amount,
      to: target,
      note: `from ${transfer.from}, ${shown}`,
    });
    await db.query(
      `INSERT INTO deposits (deposit_key, address, lt, tx_hash, sender, amount, comment, target, api_key_id, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (deposit_key) DO NOTHING`,
      [
        keys.deposit(transfer.lt, transfer.hash),
        raw,
        transfer.lt.toString(),
        transfer.hash,
        transfer.from,
        transfer.amount.toString(),
        memo === null ? null : memo.slice(0, MAX_COMMENT),
        target.kind,
        target.kind === 'requester' ? target.apiKeyId : null,
        clock.now(),
      ],
    );
    return { target, replayed: txn.replayed };
  }

  async function pollOnce(): Promise<PollReport> {
    const since = await cursor();
    const transfers = await chain.incoming(address, since);
    const report = { seen: transfers.length, toKeys: 0, toBudget: 0, unmatched: 0, replayed: 0 };
    let budget = false;
    for (const transfer of transfers) {
      const { target, replayed } = await book(transfer);
      if (replayed) report.replayed++;
      else if (target.kind === 'requester') report.toKeys++;
      else if (target.kind === 'budget') report.toBudget++;
      else report.unmatched++;
      if (target.kind === 'budget' && !replayed) budget = true;
      // Booked in order, so the cursor never passes a transfer that was not booked.
      await saveCursor(transfer.lt);
    }
    if (budget) options.onBudgetDeposit?.();
    return report;
  }

  function poll(): Promise<PollReport> {
    running ??= pollOnce().finally(() => (running = null));
    return running;
  }

  return {
    poll,
    start() {
      if (timer !== null) return;
      timer = setInterval(() => {
        poll().catch((err: unknown) => log(`reading deposits of ${raw} failed; retrying`, err));
      }, options.intervalMs ?? 10_000);
      timer.unref();
    },
    stop() {
      if (timer !== null) clearInterval(timer);
      timer = null;
    },
    async unmatched(limit = 100) {
      const { rows } = await db.query<{
        deposit_key: string;
        lt: string;
        tx_hash: string;
        sender: string | null;
        amount: unknown;
        comment: string | null;
        created_at: unknown;
      }>(
        `SELECT deposit_key, lt, tx_hash, sender, amount::text AS amount, comment, created_at FROM deposits
         WHERE target = 'unmatched' AND assigned_to IS NULL ORDER BY created_at, deposit_key LIMIT $1`,
        [Math.max(1, Math.min(limit, 1000))],
      );
      return rows.map((r) => ({
        depositKey: r.deposit_key,
        lt: r.lt,
        txHash: r.tx_hash,
        from: r.sender,
        amount: BigInt(String(r.amount)),
        comment: r.comment,
        at: toInt(r.created_at),
      }));
    },
    async assign(depositKey, apiKeyId) {
      await ledger.assignDeposit(depositKey, apiKeyId);
      await db.query(`UPDATE deposits SET assigned_to = $2 WHERE deposit_key = $1 AND target = 'unmatched'`, [depositKey, apiKeyId]);
    },
  };
}
