/**
 * Seeded random sequences of deposits, reservations, charges, releases, settles, voids, budget
 * fundings and payouts, with replays and conflicting duplicates mixed in, checked after every
 * few steps against an in-memory model: the books balance, no balance goes negative, and
 * nothing is paid out that was not paid in.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../protocol/random.ts';
import { BACKENDS, useMigratedBackend } from '../store/testing.ts';
import type { SqlDb } from '../store/sql.ts';
import {
  CHAIN_DEPOSITS,
  CHAIN_FEES,
  FEES_NETWORK,
  HOT_WALLET,
  keys,
  payerAccounts,
  PENALTIES,
  pendingAccount,
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
  UnknownJobError,
  UnknownPayoutError,
  UnknownPriceError,
  UnknownReservationError,
} from './errors.ts';
import { Ledger } from './ledger.ts';
import { defaultPrices } from './prices.ts';
import { LedgerModel, ledgerRowCounts, type ModelJob, modelPrice, nearest } from './testing.ts';
import type { LedgerTxn } from './txn.ts';

const SEEDS = [1, 7, 42, 2024, 99_991];
const STEPS = 500;
const WALLETS = ['EQwalletA', 'EQwalletB', '0:cafe', 'UQwalletD'];
const REQUESTERS = ['key-1', 'key-2', 'key-3'];
const PAYERS = [...REQUESTERS, 'budget'];
const MODELS = Object.keys(defaultPrices().models);
/** The check budget's limit on reservations in flight. */
const LIMIT = 6_000_000n;

type ErrorClass = abstract new (...args: never[]) => Error;
/** What the model says a call must do. */
type Expect = { new: string } | { replay: string } | { error: ErrorClass };

describe.each(BACKENDS)('Ledger properties on $name', (backend) => {
  let db: SqlDb;
  useMigratedBackend(backend, (opened) => (db = opened), 'ledger_entries, ledger_txns');

  it.each(SEEDS)('seed %i: books balance, nothing goes negative, payouts never exceed deposits', async (seed) => {
    const rand = mulberry32(seed);
    const pick = <T>(items: readonly T[]): T => items[rand() % items.length] as T;
    const prices = defaultPrices();
    const ledger = new Ledger(db, { now: () => 1_733_000_000_000 + seed });
    const model = new LedgerModel();
    const history: (() => Promise<LedgerTxn>)[] = [];
    const stats = { new: 0, replay: 0, error: 0, short: 0, charged: 0, released: 0, voided: 0 };

    /** Runs one call and checks it against the model; returns whether it posted anew. */
    async function step(expected: Expect, call: () => Promise<LedgerTxn>): Promise<boolean> {
      const before = await ledgerRowCounts(db);
      if ('error' in expected) {
        await expect(call()).rejects.toBeInstanceOf(expected.error);
        stats.error++;
      } else {
        const txn = await call();
        if ('replay' in expected) {
          expect(txn.replayed).toBe(true);
          expect(txn.id).toBe(model.txnIds.get(expected.replay));
          stats.replay++;
        } else {
          expect(txn.replayed).toBe(false);
          model.txnIds.set(expected.new, txn.id);
          history.push(call);
          stats.new++;
          return true;
        }
      }
      expect(await ledgerRowCounts(db)).toEqual(before);
      return false;
    }

    const jobIds = (): string[] => [...model.jobs.keys(), 'never-reserved'];
    const payoutIds = (): string[] => [...model.payouts.keys(), 'never-intended'];
    const deposits: { lt: bigint; hash: string; amount: bigint; to: string }[] = [];
    let nextJob = 0;
    let nextPayout = 0;
    let nextFunding = 0;

    for (let i = 0; i < STEPS; i++) {
      const op = rand() % 100;
      if (op < 12) {
        // A deposit, or the same chain transaction seen again (with the same or other numbers).
        const old = op >= 10 && deposits.length > 0 ? pick(deposits) : undefined;
        const to = old !== undefined && rand() % 2 === 0 ? old.to : rand() % 8 === 0 ? 'unmatched' : pick(PAYERS);
        const amount = old !== undefined && rand() % 3 > 0 ? old.amount : BigInt(1 + (rand() % 20_000_000));
        const tx = old ?? { lt: BigInt(1000 + i), hash: randomBytes(32).toString('hex'), amount, to };
        const key = keys.deposit(tx.lt, tx.hash);
        const expected: Expect =
          old === undefined ? { new: key } : old.to === to && old.amount === amount ? { replay: key } : { error: IdempotencyConflictError };
        const target =
          to === 'budget'
            ? { kind: 'budget' as const }
            : to === 'unmatched'
              ? { kind: 'unmatched' as const }
              : { kind: 'requester' as const, apiKeyId: to };
        const call = () => ledger.deposit({ lt: tx.lt, hash: tx.hash, amount, to: target, note: `step ${i}` });
        if (await step(expected, call)) {
          deposits.push({ ...tx, amount, to });
          model.deposits.set(key, { to, amount });
        }
      } else if (op < 32) {
        // A reservation: mostly new jobs, sometimes a duplicate of an old one with other numbers.
        const old = op >= 29 && model.jobs.size > 0 ? pick([...model.jobs.keys()]) : undefined;
        const jobId = old ?? `job-${nextJob++}`;
        const known = model.jobs.get(jobId);
        const payer = known !== undefined && rand() % 2 === 0 ? known.payer : pick(PAYERS);
        const have = model.payer(payer);
        const roll = rand() % 10;
        const amount =
          known !== undefined && roll < 5
            ? known.reserved
            : roll === 5
              ? have.available + 1n
              : roll === 6
                ? 0n
                : BigInt(rand() % 4_000_000);
        const key = keys.reserve(jobId);
        const limited = payer === 'budget' && amount > 0n && have.reserved + amount > LIMIT;
        const expected: Expect = known
          ? known.payer === payer && known.reserved === amount
            ? { replay: key }
            : { error: IdempotencyConflictError }
          : amount > 0n && have.available < amount
            ? { error: InsufficientFundsError }
            : limited
              ? { error: BudgetLimitError }
              : { new: key };
        if ('error' in expected && expected.error === InsufficientFundsError) stats.short++;
        const call = () =>
          ledger.reserve({
            jobId,
            payer: payer === 'budget' ? { kind: 'budget' } : { kind: 'requester', apiKeyId: payer },
            amount,
            ...(payer === 'budget' ? { limit: LIMIT } : {}),
          });
        if (await step(expected, call)) model.jobs.set(jobId, { payer, reserved: amount, state: 'reserved' });
      } else if (op < 50) {
        // A charge (the job delivered) or a release (it did not).
        const jobId = pick(jobIds());
        const job = model.jobs.get(jobId);
        const charge = op < 44;
        if (charge) {
          const wallet = job?.wallet !== undefined && rand() % 2 === 0 ? job.wallet : rand() % 6 === 0 ? null : pick(WALLETS);
          const modelId = rand() % 25 === 0 ? 'no-such-model' : pick(MODELS);
          const usage = { promptTokens: rand() % 3000, completionTokens: rand() % 1200 };
          const listed = modelPrice(prices, modelId, usage);
          const key = keys.credit(jobId);
          let expected: Expect;
          let priced: { gross: bigint; commission: bigint; share: bigint } | undefined;
          if (listed === undefined) expected = { error: UnknownPriceError };
          else if (job === undefined) expected = { error: UnknownReservationError };
          else {
            const gross = listed.gross <= job.reserved ? listed.gross : job.reserved;
            const commission = gross === listed.gross ? listed.commission : nearest(gross * BigInt(prices.commissionBps), 10_000n);
            priced = { gross, commission, share: gross - commission };
            const same =
              chargeSignature(job, job.wallet ?? null, job.gross ?? 0n, job.commission ?? 0n) ===
              chargeSignature(job, wallet, gross, commission);
            expected =
              job.state === 'released'
                ? { error: JobStateError }
                : job.state === 'charged'
                  ? same
                    ? { replay: key }
                    : { error: IdempotencyConflictError }
                  : { new: key };
          }
          const call = () => ledger.chargeJob({ jobId, contributorWallet: wallet, model: modelId, usage });
          if ((await step(expected, call)) && job && priced) {
            Object.assign(job, { state: 'charged', wallet, ...priced, credit: 'pending' });
            stats.charged++;
          }
        } else {
          const key = keys.release(jobId);
          const expected: Expect = !job
            ? { error: UnknownReservationError }
            : job.state === 'reserved'
              ? { new: key }
              : job.state === 'released'
                ? { replay: key }
                : { error: JobStateError };
          if ((await step(expected, () => ledger.releaseJob(jobId, `step ${i}`))) && job) {
            job.state = 'released';
            stats.released++;
          }
        }
      } else if (op < 62) {
        const jobId = pick(jobIds());
        const job = model.jobs.get(jobId);
        const settle = op < 56;
        const expected: Expect =
          job?.state !== 'charged'
            ? { error: UnknownJobError }
            : job.credit === 'pending'
              ? { new: settle ? keys.settle(jobId) : keys.void(jobId) }
              : job.credit === (settle ? 'settled' : 'voided')
                ? { replay: settle ? keys.settle(jobId) : keys.void(jobId) }
                : { error: JobStateError };
        const call = () => (settle ? ledger.settleJob(jobId) : ledger.voidJob(jobId, `seed ${seed} step ${i}`));
        if ((await step(expected, call)) && job) {
          job.credit = settle ? 'settled' : 'voided';
          if (!settle) stats.voided++;
        }
      } else if (op < 65) {
        // The operator moves commission into the check budget.
        const fundingId = `f-${nextFunding++}`;
        const have = model.commission();
        const amount = rand() % 3 === 0 ? have + 1n : have > 0n ? 1n + (BigInt(rand()) % have) : 0n;
        const expected: Expect =
          amount <= 0n ? { error: InvalidAmountError } : have < amount ? { error: InsufficientFundsError } : { new: keys.fund(fundingId) };
        if (await step(expected, () => ledger.fundBudgetFromFees(fundingId, amount))) model.fundedFromFees += amount;
      } else if (op < 77) {
        // A payout intent: new, or a duplicate of an old id, for up to a bit more than is settled.
        const old = op >= 74 && model.payouts.size > 0 ? pick([...model.payouts.keys()]) : undefined;
        const payoutId = old ?? `payout-${nextPayout++}`;
        const previous = old === undefined ? undefined : model.payouts.get(old);
        const wallet = previous && rand() % 2 === 0 ? previous.wallet : pick(WALLETS);
        const settled = model.balances(wallet).settled;
        const roll = rand() % 10;
        const amount =
          previous && roll < 5
            ? previous.amount
            : roll === 5
              ? 0n
              : roll === 6
                ? settled + 1n
                : 1n + (settled > 0n ? BigInt(rand()) % settled : BigInt(rand() % 3));
        const expected: Expect =
          amount <= 0n
            ? { error: InvalidAmountError }
            : previous
              ? previous.wallet === wallet && previous.amount === amount
                ? { replay: keys.intent(payoutId) }
                : { error: IdempotencyConflictError }
              : settled < amount
                ? { error: InsufficientSettledError }
                : { new: keys.intent(payoutId) };
        const call = () => ledger.recordPayoutIntent({ payoutId, wallet, amount });
        if (await step(expected, call)) model.payouts.set(payoutId, { wallet, amount, state: 'in-flight' });
      } else if (op < 90) {
        const payoutId = pick(payoutIds());
        const payout = model.payouts.get(payoutId);
        const confirm = op < 85;
        const txHash = payout?.txHash && rand() % 3 > 0 ? payout.txHash : `hash-${rand() % 4}`;
        const fee = payout?.fee !== undefined && rand() % 3 > 0 ? payout.fee : BigInt(rand() % 3) * 1_000_000n;
        const key = confirm ? keys.confirm(payoutId) : keys.fail(payoutId);
        const expected: Expect = !payout
          ? { error: UnknownPayoutError }
          : payout.state === 'in-flight'
            ? { new: key }
            : payout.state === (confirm ? 'confirmed' : 'failed')
              ? !confirm || (payout.txHash === txHash && payout.fee === fee)
                ? { replay: key }
                : { error: IdempotencyConflictError }
              : { error: PayoutStateError };
        const call = () => (confirm ? ledger.confirmPayout({ payoutId, txHash, fee }) : ledger.failPayout(payoutId));
        if ((await step(expected, call)) && payout)
          Object.assign(payout, confirm ? { state: 'confirmed', txHash, fee } : { state: 'failed' });
      } else if (history.length > 0) {
        // Replays an earlier successful call exactly: nothing may change.
        const before = await ledgerRowCounts(db);
        const txn = await pick(history)();
        expect(txn.replayed).toBe(true);
        expect(model.txnIds.get(txn.idempotencyKey)).toBe(txn.id);
        expect(await ledgerRowCounts(db)).toEqual(before);
        stats.replay++;
      }
      if (i % 50 === 49 || i === STEPS - 1) await expectMatchesModel(ledger, model);
    }
    // Every kind of outcome happened, so the run tested something.
    expect(stats.new).toBeGreaterThan(STEPS / 4);
    expect(stats.replay).toBeGreaterThan(10);
    expect(stats.error).toBeGreaterThan(10);
    expect(stats.short).toBeGreaterThan(0);
    expect(stats.charged).toBeGreaterThan(5);
    expect(stats.released).toBeGreaterThan(2);
    expect(stats.voided).toBeGreaterThan(0);
    expect([...model.payouts.values()].some((p) => p.state === 'confirmed')).toBe(true);
  });
});

/** A charge's non-zero entries, to tell a replay from a conflict. */
function chargeSignature(job: ModelJob, wallet: string | null, gross: bigint, commission: bigint): string {
  const payer = job.payer === 'budget' ? { kind: 'budget' as const } : { kind: 'requester' as const, apiKeyId: job.payer };
  const { available, reserved } = payerAccounts(payer);
  const lines: [string, bigint][] = [
    [reserved, job.reserved],
    [wallet === null ? UNCLAIMED : pendingAccount(wallet), -(gross - commission)],
    [FEES_NETWORK, -commission],
    [available, -(job.reserved - gross)],
  ];
  return lines
    .filter(([, amount]) => amount !== 0n)
    .map(([account, amount]) => `${account}=${amount}`)
    .sort()
    .join(',');
}

async function expectMatchesModel(ledger: Ledger, model: LedgerModel): Promise<void> {
  const check = await ledger.checkBooks();
  expect(check.problems).toEqual([]);
  expect(check.ok).toBe(true);
  for (const wallet of WALLETS) {
    const balances = await ledger.balances(wallet);
    expect(balances).toEqual(model.balances(wallet));
    for (const value of Object.values(balances)) expect(value).toBeGreaterThanOrEqual(0n);
  }
  for (const payer of PAYERS) {
    const have = await ledger.payerBalances(payer === 'budget' ? { kind: 'budget' } : { kind: 'requester', apiKeyId: payer });
    expect(have).toEqual(model.payer(payer));
    expect(have.available).toBeGreaterThanOrEqual(0n);
    expect(have.reserved).toBeGreaterThanOrEqual(0n);
  }
  const { amounts, fees } = model.paidOut();
  expect(await ledger.accountBalance(FEES_NETWORK)).toBe(-model.commission());
  expect(await ledger.accountBalance(PENALTIES)).toBe(-model.penalties());
  expect(await ledger.accountBalance(UNCLAIMED)).toBe(-model.unclaimed());
  expect(await ledger.accountBalance(CHAIN_FEES)).toBe(fees);
  expect(await ledger.accountBalance(HOT_WALLET)).toBe(-(amounts + fees));
  let all = 0n;
  for (const d of model.deposits.values()) all += d.amount;
  expect(await ledger.accountBalance(CHAIN_DEPOSITS)).toBe(all);
  expect(-(await ledger.accountBalance(UNMATCHED_DEPOSITS))).toBe(all - model.paidIn());
  // Nothing paid out that was not paid in: confirmed and in-flight payouts within deposits.
  let out = 0n;
  for (const p of model.payouts.values()) if (p.state !== 'failed') out += p.amount;
  expect(check.totals.payouts).toBe(out);
  expect(check.totals.deposits).toBe(model.paidIn());
  expect(out).toBeLessThanOrEqual(model.paidIn());
}
