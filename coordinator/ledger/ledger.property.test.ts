/**
 * Seeded random sequences of credits, settles, voids and payouts, with replays and
 * conflicting duplicates mixed in, checked after every step against an in-memory model.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../protocol/random.ts';
import { BACKENDS, useMigratedBackend } from '../store/testing.ts';
import type { SqlDb } from '../store/sql.ts';
import { CHAIN_FEES, FEES_NETWORK, HOT_WALLET, keys, requesterAccount } from './accounts.ts';
import {
  IdempotencyConflictError,
  InsufficientSettledError,
  InvalidAmountError,
  JobStateError,
  PayoutStateError,
  UnknownJobError,
  UnknownPayoutError,
  UnknownPriceError,
} from './errors.ts';
import { Ledger } from './ledger.ts';
import { defaultPrices } from './prices.ts';
import { creditSignature, LedgerModel, ledgerRowCounts, modelPrice } from './testing.ts';
import type { LedgerTxn } from './txn.ts';

const SEEDS = [1, 7, 42, 2024, 99_991];
const STEPS = 400;
const WALLETS = ['EQwalletA', 'EQwalletB', '0:cafe', 'UQwalletD'];
const REQUESTERS = ['key-1', 'key-2', 'key-3'];
const MODELS = [...Object.keys(defaultPrices().models), 'no-such-model'];

type ErrorClass = abstract new (...args: never[]) => Error;
/** What the model says a call must do. */
type Expect = { new: string } | { replay: string } | { error: ErrorClass };

describe.each(BACKENDS)('Ledger properties on $name', (backend) => {
  let db: SqlDb;
  useMigratedBackend(backend, (opened) => (db = opened), 'ledger_entries, ledger_txns');

  it.each(SEEDS)('seed %i: books balance and balances match the model', async (seed) => {
    const rand = mulberry32(seed);
    const pick = <T>(items: readonly T[]): T => items[rand() % items.length] as T;
    const prices = defaultPrices();
    const ledger = new Ledger(db, { now: () => 1_733_000_000_000 + seed });
    const model = new LedgerModel();
    const history: (() => Promise<LedgerTxn>)[] = [];
    const stats = { new: 0, replay: 0, error: 0 };

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

    const jobIds = (): string[] => [...model.jobs.keys(), 'never-credited'];
    const payoutIds = (): string[] => [...model.payouts.keys(), 'never-intended'];
    let nextJob = 0;
    let nextPayout = 0;

    for (let i = 0; i < STEPS; i++) {
      const op = rand() % 100;
      if (op < 30) {
        // A credit: mostly new jobs, sometimes a duplicate of an old one with other numbers.
        const jobId = op < 24 || model.jobs.size === 0 ? `job-${nextJob++}` : pick([...model.jobs.keys()]);
        const input = {
          jobId,
          requester: pick(REQUESTERS),
          contributorWallet: pick(WALLETS),
          model: rand() % 20 === 0 ? 'no-such-model' : pick(MODELS.slice(0, -1)),
          usage: { promptTokens: rand() % 4000, completionTokens: rand() % 1500 },
        };
        const p = modelPrice(prices, input.model, input.usage);
        const known = model.jobs.get(jobId);
        const key = keys.credit(jobId);
        const job = p && { requester: input.requester, wallet: input.contributorWallet, ...p, state: 'pending' as const };
        const expected: Expect = !job
          ? { error: UnknownPriceError }
          : known
            ? creditSignature(known) === creditSignature(job)
              ? { replay: key }
              : { error: IdempotencyConflictError }
            : { new: key };
        if ((await step(expected, () => ledger.creditJob(input))) && job) model.jobs.set(jobId, job);
      } else if (op < 45) {
        const jobId = pick(jobIds());
        const job = model.jobs.get(jobId);
        const settle = op < 38;
        const expected: Expect = !job
          ? { error: UnknownJobError }
          : job.state === 'pending'
            ? { new: settle ? keys.settle(jobId) : keys.void(jobId) }
            : job.state === (settle ? 'settled' : 'voided')
              ? { replay: settle ? keys.settle(jobId) : keys.void(jobId) }
              : { error: JobStateError };
        const call = () => (settle ? ledger.settleJob(jobId) : ledger.voidJob(jobId, `seed ${seed} step ${i}`));
        if ((await step(expected, call)) && job) job.state = settle ? 'settled' : 'voided';
      } else if (op < 62) {
        // A payout intent: new, or a duplicate of an old id, for up to a bit more than is settled.
        const old = op >= 58 && model.payouts.size > 0 ? pick([...model.payouts.keys()]) : undefined;
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
      } else if (op < 85) {
        const payoutId = pick(payoutIds());
        const payout = model.payouts.get(payoutId);
        const confirm = op < 76;
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
    expect(stats.new).toBeGreaterThan(STEPS / 3);
    expect(stats.replay).toBeGreaterThan(10);
    expect(stats.error).toBeGreaterThan(10);
    expect([...model.jobs.values()].some((j) => j.state === 'settled')).toBe(true);
    expect([...model.payouts.values()].some((p) => p.state === 'confirmed')).toBe(true);
  });
});

async function expectMatchesModel(ledger: Ledger, model: LedgerModel): Promise<void> {
  const check = await ledger.checkBooks();
  expect(check.problems).toEqual([]);
  expect(check.ok).toBe(true);
  for (const wallet of WALLETS) {
    const balances = await ledger.balances(wallet);
    expect(balances).toEqual(model.balances(wallet));
    for (const value of Object.values(balances)) expect(value).toBeGreaterThanOrEqual(0n);
  }
  for (const requester of REQUESTERS) {
    expect(await ledger.accountBalance(requesterAccount(requester))).toBe(model.requesterCharged(requester));
  }
  const { amounts, fees } = model.paidOut();
  expect(await ledger.accountBalance(FEES_NETWORK)).toBe(-model.commission());
  expect(await ledger.accountBalance(CHAIN_FEES)).toBe(fees);
  expect(await ledger.accountBalance(HOT_WALLET)).toBe(-(amounts + fees));
}
