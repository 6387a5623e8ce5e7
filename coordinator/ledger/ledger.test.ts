import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BACKENDS } from '../store/testing.ts';
import { migrate, readMigrations } from '../store/migrate.ts';
import type { SqlDb } from '../store/sql.ts';
import { CHAIN_FEES, FEES_NETWORK, HOT_WALLET, requesterAccount } from './accounts.ts';
import {
  IdempotencyConflictError,
  InsufficientSettledError,
  InvalidAmountError,
  JobStateError,
  PayoutStateError,
  UnknownJobError,
  UnknownPayoutError,
} from './errors.ts';
import { Ledger } from './ledger.ts';
import { parsePriceList } from './prices.ts';
import { ledgerRowCounts } from './testing.ts';

// 1 000 prompt + 1 000 completion tokens of `chat` = 1 000 + 3 000 = 4 000 nanoTON; 10 % commission.
const PRICES = parsePriceList({
  commissionBps: 1000,
  models: { chat: { kind: 'chat', unit: 'tokens', promptPer1k: '1000', completionPer1k: '3000' } },
});
const W = 'EQwallet';
const credit = (jobId: string, tokens = 1000) => ({
  jobId,
  requester: 'key-1',
  contributorWallet: W,
  model: 'chat',
  usage: { promptTokens: tokens, completionTokens: tokens },
});

describe.each(BACKENDS)('Ledger on $name', (backend) => {
  let db: SqlDb;
  let dispose: () => Promise<void>;
  let ledger: Ledger;

  beforeAll(async () => {
    ({ db, dispose } = await backend.open());
    await migrate(db, await readMigrations());
    ledger = new Ledger(db, { prices: PRICES, now: () => 1_733_000_000_000 });
  }, 60_000);
  afterAll(async () => dispose?.());
  beforeEach(async () => {
    await db.exec('TRUNCATE ledger_entries, ledger_txns RESTART IDENTITY');
  });

  it('credits a job: requester debited the gross, contributor pending its share, network its commission', async () => {
    const txn = await ledger.creditJob(credit('j1'));
    expect(txn.replayed).toBe(false);
    expect(txn.entries.reduce((s, e) => s + e.amount, 0n)).toBe(0n);
    expect(await ledger.balances(W)).toEqual({ pending: 3_600n, settled: 0n, inFlight: 0n, paid: 0n });
    expect(await ledger.accountBalance(requesterAccount('key-1'))).toBe(4_000n);
    expect(await ledger.accountBalance(FEES_NETWORK)).toBe(-400n);
  });

  it('returns the first credit on a replay and refuses a replay with other numbers', async () => {
    const first = await ledger.creditJob(credit('j1'));
    const counts = await ledgerRowCounts(db);
    const again = await ledger.creditJob(credit('j1'));
    expect(again).toEqual({ ...first, replayed: true });
    expect(await ledgerRowCounts(db)).toEqual(counts);
    await expect(ledger.creditJob(credit('j1', 999))).rejects.toBeInstanceOf(IdempotencyConflictError);
    await expect(ledger.creditJob({ ...credit('j1'), contributorWallet: 'EQother' })).rejects.toBeInstanceOf(IdempotencyConflictError);
    expect(await ledgerRowCounts(db)).toEqual(counts);
  });

  it('settles pending into settled, once', async () => {
    await ledger.creditJob(credit('j1'));
    const settle = await ledger.settleJob('j1');
    expect((await ledger.settleJob('j1')).id).toBe(settle.id);
    expect(await ledger.balances(W)).toEqual({ pending: 0n, settled: 3_600n, inFlight: 0n, paid: 0n });
    await expect(ledger.voidJob('j1', 'late')).rejects.toBeInstanceOf(JobStateError);
    await expect(ledger.settleJob('nope')).rejects.toBeInstanceOf(UnknownJobError);
  });

  it('voids a credit: requester refunded, nothing owed, and it cannot be settled after', async () => {
    await ledger.creditJob(credit('j1'));
    const v = await ledger.voidJob('j1', 'canary failed');
    expect(v.note).toBe('canary failed');
    // A replay with another reason is the same void.
    expect((await ledger.voidJob('j1', 'other words')).id).toBe(v.id);
    expect(await ledger.balances(W)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: 0n });
    expect(await ledger.accountBalance(requesterAccount('key-1'))).toBe(0n);
    expect(await ledger.accountBalance(FEES_NETWORK)).toBe(0n);
    await expect(ledger.settleJob('j1')).rejects.toBeInstanceOf(JobStateError);
  });

  it('pays out: intent, confirm with chain fee, and refuses more than is settled', async () => {
    await ledger.creditJob(credit('j1'));
    await expect(ledger.recordPayoutIntent({ payoutId: 'p0', wallet: W, amount: 1n })).rejects.toBeInstanceOf(InsufficientSettledError);
    await ledger.settleJob('j1');
    await expect(ledger.recordPayoutIntent({ payoutId: 'p0', wallet: W, amount: 3_601n })).rejects.toBeInstanceOf(InsufficientSettledError);
    await expect(ledger.recordPayoutIntent({ payoutId: 'p0', wallet: W, amount: 0n })).rejects.toBeInstanceOf(InvalidAmountError);
    await ledger.recordPayoutIntent({ payoutId: 'p1', wallet: W, amount: 3_000n });
    expect(await ledger.balances(W)).toEqual({ pending: 0n, settled: 600n, inFlight: 3_000n, paid: 0n });
    // The replay is still accepted although the balance no longer covers it.
    expect((await ledger.recordPayoutIntent({ payoutId: 'p1', wallet: W, amount: 3_000n })).replayed).toBe(true);
    await expect(ledger.recordPayoutIntent({ payoutId: 'p1', wallet: W, amount: 500n })).rejects.toBeInstanceOf(IdempotencyConflictError);
    const confirm = await ledger.confirmPayout({ payoutId: 'p1', txHash: 'abc', fee: 7n });
    expect(confirm.note).toBe('abc');
    expect((await ledger.confirmPayout({ payoutId: 'p1', txHash: 'abc', fee: 7n })).id).toBe(confirm.id);
    await expect(ledger.confirmPayout({ payoutId: 'p1', txHash: 'abd', fee: 7n })).rejects.toBeInstanceOf(IdempotencyConflictError);
    await expect(ledger.confirmPayout({ payoutId: 'p1', txHash: 'abc', fee: 8n })).rejects.toBeInstanceOf(IdempotencyConflictError);
    await expect(ledger.failPayout('p1')).rejects.toBeInstanceOf(PayoutStateError);
    expect(await ledger.balances(W)).toEqual({ pending: 0n, settled: 600n, inFlight: 0n, paid: 3_000n });
    expect(await ledger.accountBalance(HOT_WALLET)).toBe(-3_007n);
    expect(await ledger.accountBalance(CHAIN_FEES)).toBe(7n);
    expect(await ledger.checkBooks()).toMatchObject({ ok: true, problems: [] });
  });

  it('returns a failed payout to settled and refuses to confirm it', async () => {
    await ledger.creditJob(credit('j1'));
    await ledger.settleJob('j1');
    await ledger.recordPayoutIntent({ payoutId: 'p1', wallet: W, amount: 3_600n });
    await ledger.failPayout('p1');
    expect((await ledger.failPayout('p1')).replayed).toBe(true);
    await expect(ledger.confirmPayout({ payoutId: 'p1', txHash: 'x', fee: 0n })).rejects.toBeInstanceOf(PayoutStateError);
    await expect(ledger.failPayout('p2')).rejects.toBeInstanceOf(UnknownPayoutError);
    expect(await ledger.balances(W)).toEqual({ pending: 0n, settled: 3_600n, inFlight: 0n, paid: 0n });
  });

  it('records each concurrent duplicate once and never pays out more than is settled', async () => {
    const credits = await Promise.all(Array.from({ length: 8 }, () => ledger.creditJob(credit('j1'))));
    expect(new Set(credits.map((t) => t.id)).size).toBe(1);
    expect(credits.filter((t) => !t.replayed)).toHaveLength(1);
    await ledger.settleJob('j1');
    const intents = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => ledger.recordPayoutIntent({ payoutId: `p${i}`, wallet: W, amount: 1_000n })),
    );
    expect(intents.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    for (const r of intents) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(InsufficientSettledError);
    await ledger.creditJob(credit('j2'));
    const race = await Promise.allSettled([ledger.settleJob('j2'), ledger.voidJob('j2', 'race')]);
    expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(await ledger.checkBooks()).toMatchObject({ ok: true });
  });

  it('refuses UPDATE, DELETE and an unbalanced transaction in the database itself', async () => {
    await ledger.creditJob(credit('j1'));
    await expect(db.query('UPDATE ledger_entries SET amount = amount + 1')).rejects.toThrow(/append-only/);
    await expect(db.query('DELETE FROM ledger_txns')).rejects.toThrow(/append-only/);
    await expect(
      db.transaction(async (tx) => {
        const { rows } = await tx.query<{ id: string }>(
          `INSERT INTO ledger_txns (idempotency_key, kind, ref, created_at) VALUES ('bad', 'job.credit', 'x', 0) RETURNING id::text AS id`,
        );
        await tx.query(`INSERT INTO ledger_entries (txn_id, account, amount, kind, ref, created_at) VALUES ($1, 'a', 5, 'k', 'x', 0)`, [
          rows[0]?.id,
        ]);
      }),
    ).rejects.toThrow(/does not balance/);
  });

  it('checkBooks reports an overdrawn contributor, a settle without a credit, and a job both settled and voided', async () => {
    expect(await ledger.checkBooks()).toEqual({ ok: true, problems: [], txns: 0, entries: 0 });
    const raw = async (key: string, kind: string, ref: string, lines: [string, bigint][]): Promise<void> => {
      await db.transaction(async (tx) => {
        const { rows } = await tx.query<{ id: string }>(
          `INSERT INTO ledger_txns (idempotency_key, kind, ref, created_at) VALUES ($1, $2, $3, 0) RETURNING id::text AS id`,
          [key, kind, ref],
        );
        for (const [account, amount] of lines) {
          await tx.query(`INSERT INTO ledger_entries (txn_id, account, amount, kind, ref, created_at) VALUES ($1, $2, $3, $4, $5, 0)`, [
            rows[0]?.id,
            account,
            amount.toString(),
            kind,
            ref,
          ]);
        }
      });
    };
    await raw('job:x:settle', 'job.settle', 'x', [
      [`contributor:${W}:settled`, 5n],
      [HOT_WALLET, -5n],
    ]);
    await raw('job:x:void', 'job.void', 'x', []);
    const check = await ledger.checkBooks();
    expect(check.ok).toBe(false);
    expect(check.problems.map((p) => `${p.kind} ${p.subject}`).sort()).toEqual([
      `negative-balance contributor:${W}:settled`,
      'orphan job:x:settle',
      'orphan job:x:void',
      'settled-and-voided x',
    ]);
  });
});
