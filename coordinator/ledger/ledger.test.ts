import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BACKENDS } from '../store/testing.ts';
import { migrate, readMigrations } from '../store/migrate.ts';
import type { SqlDb } from '../store/sql.ts';
import {
  availableAccount,
  BUDGET_AVAILABLE,
  CHAIN_DEPOSITS,
  CHAIN_FEES,
  FEES_NETWORK,
  HOT_WALLET,
  keys,
  PENALTIES,
  reservedAccount,
  UNCLAIMED,
  UNMATCHED_DEPOSITS,
} from './accounts.ts';
import {
  BudgetLimitError,
  IdempotencyConflictError,
  InsufficientFundsError,
  InsufficientSettledError,
  InvalidAmountError,
  JobStateError,
  PayoutStateError,
  UnknownDepositError,
  UnknownJobError,
  UnknownPayoutError,
  UnknownReservationError,
} from './errors.ts';
import { Ledger } from './ledger.ts';
import { parsePriceList } from './prices.ts';
import { fund, ledgerRowCounts } from './testing.ts';

// 1 000 prompt + 1 000 completion tokens of `chat` = 1 000 + 3 000 = 4 000 nanoTON; 10 % commission.
const PRICES = parsePriceList({
  commissionBps: 1000,
  models: { chat: { kind: 'chat', unit: 'tokens', promptPer1k: '1000', completionPer1k: '3000' } },
});
const W = 'EQwallet';
const KEY = { kind: 'requester' as const, apiKeyId: 'key-1' };
const charge = (jobId: string, tokens = 1000, wallet: string | null = W) => ({
  jobId,
  contributorWallet: wallet,
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

  /** Deposits `funds` for key-1 and reserves 5 000 nanoTON for `jobId`. */
  async function reserved(jobId: string, funds = 10_000n): Promise<void> {
    if (funds > 0n) await fund(ledger, 'key-1', funds);
    await ledger.reserve({ jobId, payer: KEY, amount: 5_000n });
  }

  it('books a deposit once per chain transaction, to the key, the budget or unmatched', async () => {
    const first = await ledger.deposit({
      lt: 7n,
      hash: 'ab'.repeat(32),
      amount: 9_000n,
      to: { kind: 'requester', apiKeyId: 'key-1' },
      note: 'x',
    });
    // Seen again (a replayed poll, a duplicate delivery): the same transaction, nothing new.
    const again = await ledger.deposit({
      lt: 7n,
      hash: 'ab'.repeat(32),
      amount: 9_000n,
      to: { kind: 'requester', apiKeyId: 'key-1' },
      note: 'y',
    });
    expect(again).toEqual({ ...first, replayed: true });
    await expect(
      ledger.deposit({ lt: 7n, hash: 'ab'.repeat(32), amount: 1n, to: { kind: 'requester', apiKeyId: 'key-1' }, note: 'x' }),
    ).rejects.toBeInstanceOf(IdempotencyConflictError);
    await expect(ledger.deposit({ lt: 8n, hash: 'cd'.repeat(32), amount: 0n, to: { kind: 'budget' }, note: '' })).rejects.toBeInstanceOf(
      InvalidAmountError,
    );
    await ledger.deposit({ lt: 8n, hash: 'cd'.repeat(32), amount: 500n, to: { kind: 'budget' }, note: '' });
    const stray = await ledger.deposit({ lt: 9n, hash: 'ef'.repeat(32), amount: 70n, to: { kind: 'unmatched' }, note: 'no memo' });
    expect(await ledger.payerBalances(KEY)).toEqual({ available: 9_000n, reserved: 0n });
    expect(await ledger.accountBalance(BUDGET_AVAILABLE)).toBe(-500n);
    expect(await ledger.accountBalance(UNMATCHED_DEPOSITS)).toBe(-70n);
    expect(await ledger.accountBalance(CHAIN_DEPOSITS)).toBe(9_570n);
    // The operator gives the unmatched one to the key its sender meant, once.
    await ledger.assignDeposit(stray.idempotencyKey, 'key-2');
    expect((await ledger.assignDeposit(stray.idempotencyKey, 'key-2')).replayed).toBe(true);
    await expect(ledger.assignDeposit(first.idempotencyKey, 'key-2')).rejects.toBeInstanceOf(UnknownDepositError);
    expect(await ledger.payerBalances({ kind: 'requester', apiKeyId: 'key-2' })).toEqual({ available: 70n, reserved: 0n });
    const books = await ledger.checkBooks();
    expect(books).toMatchObject({ ok: true, problems: [] });
    expect(books.totals).toMatchObject({ deposits: 9_570n, unmatched: 0n, budget: 500n, requesters: 9_070n });
  });

  it('reserves a job from the available balance, or refuses and says how much is short', async () => {
    await fund(ledger, 'key-1', 4_000n);
    const refused = ledger.reserve({ jobId: 'j1', payer: KEY, amount: 5_000n });
    await expect(refused).rejects.toBeInstanceOf(InsufficientFundsError);
    await expect(refused).rejects.toMatchObject({ required: 5_000n, available: 4_000n, shortfall: 1_000n });
    expect(await ledger.payerBalances(KEY)).toEqual({ available: 4_000n, reserved: 0n });
    await fund(ledger, 'key-1', 1_000n);
    const ok = await ledger.reserve({ jobId: 'j1', payer: KEY, amount: 5_000n });
    expect(await ledger.payerBalances(KEY)).toEqual({ available: 0n, reserved: 5_000n });
    // One reservation per job whatever its attempts: a replay is the first, even with nothing left.
    expect((await ledger.reserve({ jobId: 'j1', payer: KEY, amount: 5_000n })).id).toBe(ok.id);
    await expect(ledger.reserve({ jobId: 'j1', payer: KEY, amount: 4_999n })).rejects.toBeInstanceOf(IdempotencyConflictError);
    await expect(ledger.reserve({ jobId: 'j1', payer: { kind: 'budget' }, amount: 5_000n })).rejects.toBeInstanceOf(
      IdempotencyConflictError,
    );
    await expect(ledger.reserve({ jobId: 'j2', payer: KEY, amount: -1n })).rejects.toBeInstanceOf(InvalidAmountError);
  });

  it('never overdraws a key under concurrent reservations', async () => {
    await fund(ledger, 'key-1', 3_000n);
    const tries = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => ledger.reserve({ jobId: `j${i}`, payer: KEY, amount: 1_000n })),
    );
    expect(tries.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    for (const r of tries) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(InsufficientFundsError);
    expect(await ledger.payerBalances(KEY)).toEqual({ available: 0n, reserved: 3_000n });
    expect((await ledger.checkBooks()).ok).toBe(true);
  });

  it('charges a delivered job its price and gives the rest of the reservation back', async () => {
    await reserved('j1');
    // 500 + 500 tokens: 500 + 1 500 = 2 000 nanoTON gross, 200 commission, 1 800 to the contributor.
    const txn = await ledger.chargeJob(charge('j1', 500));
    expect(txn.entries.reduce((s, e) => s + e.amount, 0n)).toBe(0n);
    expect(await ledger.payerBalances(KEY)).toEqual({ available: 8_000n, reserved: 0n });
    expect(await ledger.balances(W)).toEqual({ pending: 1_800n, settled: 0n, inFlight: 0n, paid: 0n });
    expect(await ledger.accountBalance(FEES_NETWORK)).toBe(-200n);
    expect((await ledger.chargeJob(charge('j1', 500))).id).toBe(txn.id);
    const counts = await ledgerRowCounts(db);
    await expect(ledger.chargeJob(charge('j1', 499))).rejects.toBeInstanceOf(IdempotencyConflictError);
    await expect(ledger.releaseJob('j1', 'late')).rejects.toBeInstanceOf(JobStateError);
    await expect(ledger.chargeJob(charge('nope'))).rejects.toBeInstanceOf(UnknownReservationError);
    expect(await ledgerRowCounts(db)).toEqual(counts);
  });

  it('never charges more than was reserved', async () => {
    await reserved('j1');
    // 2 000 + 2 000 tokens would be 8 000; the reservation holds 5 000.
    await ledger.chargeJob(charge('j1', 2000));
    expect(await ledger.payerBalances(KEY)).toEqual({ available: 5_000n, reserved: 0n });
    expect(await ledger.balances(W)).toMatchObject({ pending: 4_500n });
    expect(await ledger.accountBalance(FEES_NETWORK)).toBe(-500n);
  });

  it('releases a job that never delivered, once, and refuses to charge it after', async () => {
    await reserved('j1');
    const release = await ledger.releaseJob('j1', 'lease expired three times');
    expect(release.note).toBe('lease expired three times');
    expect((await ledger.releaseJob('j1', 'other words')).id).toBe(release.id);
    expect(await ledger.payerBalances(KEY)).toEqual({ available: 10_000n, reserved: 0n });
    await expect(ledger.chargeJob(charge('j1'))).rejects.toBeInstanceOf(JobStateError);
    await expect(ledger.releaseJob('j2', 'x')).rejects.toBeInstanceOf(UnknownReservationError);
    const race = await Promise.allSettled([(await reserved('j3', 0n), ledger.chargeJob(charge('j3'))), ledger.releaseJob('j3', 'race')]);
    expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await ledger.checkBooks()).ok).toBe(true);
  });

  it('charges a job whose contributor has no wallet and holds the share in network:unclaimed', async () => {
    await reserved('j1');
    await ledger.chargeJob(charge('j1', 1000, null));
    expect(await ledger.payerBalances(KEY)).toEqual({ available: 6_000n, reserved: 0n });
    expect(await ledger.accountBalance(UNCLAIMED)).toBe(-3_600n);
    expect(await ledger.accountBalance(FEES_NETWORK)).toBe(-400n);
  });

  it('settles pending into settled, once', async () => {
    await reserved('j1');
    await ledger.chargeJob(charge('j1'));
    const settle = await ledger.settleJob('j1');
    expect((await ledger.settleJob('j1')).id).toBe(settle.id);
    expect(await ledger.balances(W)).toEqual({ pending: 0n, settled: 3_600n, inFlight: 0n, paid: 0n });
    await expect(ledger.voidJob('j1', 'late')).rejects.toBeInstanceOf(JobStateError);
    await expect(ledger.settleJob('nope')).rejects.toBeInstanceOf(UnknownJobError);
  });

  it('voids a credit into network:penalties: the requester is not refunded, nobody is owed anything', async () => {
    await reserved('j1');
    await ledger.chargeJob(charge('j1'));
    const v = await ledger.voidJob('j1', 'canary failed');
    expect(v.note).toBe('canary failed');
    expect((await ledger.voidJob('j1', 'other words')).id).toBe(v.id);
    expect(await ledger.balances(W)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: 0n });
    expect(await ledger.payerBalances(KEY)).toEqual({ available: 6_000n, reserved: 0n });
    expect(await ledger.accountBalance(PENALTIES)).toBe(-3_600n);
    expect(await ledger.accountBalance(FEES_NETWORK)).toBe(-400n);
    await expect(ledger.settleJob('j1')).rejects.toBeInstanceOf(JobStateError);
    expect(await ledger.checkBooks()).toMatchObject({ ok: true, totals: { penalties: 3_600n } });
  });

  it('funds the check budget from the commission, and holds checks in flight to its limit', async () => {
    await reserved('j1');
    await ledger.chargeJob(charge('j1'));
    await expect(ledger.fundBudgetFromFees('f1', 401n)).rejects.toBeInstanceOf(InsufficientFundsError);
    const f = await ledger.fundBudgetFromFees('f1', 400n);
    expect((await ledger.fundBudgetFromFees('f1', 400n)).id).toBe(f.id);
    expect(await ledger.accountBalance(FEES_NETWORK)).toBe(0n);
    await fund(ledger, 'budget', 1_000n);
    expect(await ledger.payerBalances({ kind: 'budget' })).toEqual({ available: 1_400n, reserved: 0n });
    await ledger.reserve({ jobId: 'c1', payer: { kind: 'budget' }, amount: 600n, limit: 1_000n });
    await expect(ledger.reserve({ jobId: 'c2', payer: { kind: 'budget' }, amount: 500n, limit: 1_000n })).rejects.toBeInstanceOf(
      BudgetLimitError,
    );
    await expect(ledger.reserve({ jobId: 'c2', payer: { kind: 'budget' }, amount: 900n, limit: 10_000n })).rejects.toBeInstanceOf(
      InsufficientFundsError,
    );
    await ledger.chargeJob(charge('c1', 100));
    expect(await ledger.payerBalances({ kind: 'budget' })).toEqual({ available: 1_000n, reserved: 0n });
    expect((await ledger.checkBooks()).ok).toBe(true);
  });

  it('pays out: intent, confirm with chain fee, and refuses more than is settled', async () => {
    await reserved('j1');
    await ledger.chargeJob(charge('j1'));
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
    expect(await ledger.checkBooks()).toMatchObject({ ok: true, problems: [], totals: { deposits: 10_000n, payouts: 3_000n } });
  });

  it('returns a failed payout to settled and refuses to confirm it', async () => {
    await reserved('j1');
    await ledger.chargeJob(charge('j1'));
    await ledger.settleJob('j1');
    await ledger.recordPayoutIntent({ payoutId: 'p1', wallet: W, amount: 3_600n });
    await ledger.failPayout('p1');
    expect((await ledger.failPayout('p1')).replayed).toBe(true);
    await expect(ledger.confirmPayout({ payoutId: 'p1', txHash: 'x', fee: 0n })).rejects.toBeInstanceOf(PayoutStateError);
    await expect(ledger.failPayout('p2')).rejects.toBeInstanceOf(UnknownPayoutError);
    expect(await ledger.balances(W)).toEqual({ pending: 0n, settled: 3_600n, inFlight: 0n, paid: 0n });
  });

  it('records each concurrent duplicate once and never pays out more than is settled', async () => {
    await reserved('j1');
    const credits = await Promise.all(Array.from({ length: 8 }, () => ledger.chargeJob(charge('j1'))));
    expect(new Set(credits.map((t) => t.id)).size).toBe(1);
    expect(credits.filter((t) => !t.replayed)).toHaveLength(1);
    await ledger.settleJob('j1');
    const intents = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => ledger.recordPayoutIntent({ payoutId: `p${i}`, wallet: W, amount: 1_000n })),
    );
    expect(intents.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    for (const r of intents) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(InsufficientSettledError);
    await reserved('j2', 0n);
    await ledger.chargeJob(charge('j2'));
    const race = await Promise.allSettled([ledger.settleJob('j2'), ledger.voidJob('j2', 'race')]);
    expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(await ledger.checkBooks()).toMatchObject({ ok: true });
  });

  it('refuses UPDATE, DELETE and an unbalanced transaction in the database itself', async () => {
    await reserved('j1');
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

  it('checkBooks reports overdrawn accounts, orphans, double endings, stray voids and payouts above deposits', async () => {
    expect(await ledger.checkBooks()).toMatchObject({ ok: true, problems: [], txns: 0, entries: 0 });
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
    // A job charged and released, together more than it reserved, paid from a key that had nothing.
    await raw(keys.reserve('y'), 'job.reserve', 'y', [
      [availableAccount('k'), 10n],
      [reservedAccount('k'), -10n],
    ]);
    await raw(keys.credit('y'), 'job.credit', 'y', [
      [reservedAccount('k'), 10n],
      [`contributor:${W}:pending`, -10n],
    ]);
    await raw(keys.release('y'), 'job.release', 'y', [
      [reservedAccount('k'), 10n],
      [availableAccount('k'), -10n],
    ]);
    // A void that refunds the requester instead of penalising the contributor.
    await raw(keys.void('y'), 'job.void', 'y', [
      [`contributor:${W}:pending`, 10n],
      [availableAccount('k'), -10n],
    ]);
    // A payout of money nobody deposited.
    await raw(keys.intent('p'), 'payout.intent', 'p', [
      [`contributor:${W}:settled`, 3n],
      [`contributor:${W}:in-flight`, -3n],
    ]);
    const check = await ledger.checkBooks();
    expect(check.ok).toBe(false);
    expect(check.problems.map((p) => `${p.kind} ${p.subject}`).sort()).toEqual([
      'charged-and-released y',
      `negative-balance contributor:${W}:settled`,
      `negative-balance ${reservedAccount('k')}`,
      'orphan job:x:settle',
      'orphan job:x:void',
      'overdrawn-reservation y',
      'payouts-exceed-deposits payouts',
      'settled-and-voided x',
      'void-not-to-penalties job:y:void',
    ]);
  });
});
