/**
 * Payouts facing bad input, on the ledger (PGlite and PostgreSQL) and the sandbox chain:
 * addresses that cannot be paid, bounceable addresses of undeployed wallets, a hot wallet
 * too poor for the batch, and a chain endpoint that stops answering. In each case the
 * operator is told, nothing is lost, each transfer lands at most once, and the books balance.
 */
import { randomBytes } from 'node:crypto';
import { Address, toNano, type Cell } from '@ton/core';
import { describe, expect, it } from 'vitest';
import { LedgerPayoutBook } from '../earnings/payout-book.ts';
import { HOT_WALLET } from '../ledger/accounts.ts';
import { checkBooks } from '../ledger/books.ts';
import { Ledger } from '../ledger/ledger.ts';
import { parsePriceList } from '../ledger/prices.ts';
import { fund } from '../ledger/testing.ts';
import type { SqlDb } from '../store/sql.ts';
import { BACKENDS, useMigratedBackend } from '../store/testing.ts';
import { ChainTimeoutError, InsufficientHotWalletBalanceError, InvalidPayoutAddressError } from './errors.ts';
import { PayoutRunner, type PayoutRunnerOptions } from './payouts.ts';
import { outageChain, outgoingByPayoutId, payoutFixture, randomRecipient } from './testing.ts';

// 1 TON per 1k prompt tokens, 2 TON per 1k completion tokens, 10 % commission: 1k + 1k tokens earn 2.7 TON.
const PRICES = parsePriceList({
  commissionBps: 1000,
  models: { chat: { kind: 'chat', unit: 'tokens', promptPer1k: '1000000000', completionPer1k: '2000000000' } },
});
const SHARE = toNano('2.7');
const THRESHOLD = toNano('1');

interface LogLine {
  level: 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}

describe.each(BACKENDS)('payout bad input on $name and the sandbox chain', (backend) => {
  let db: SqlDb;
  useMigratedBackend(backend, (opened) => (db = opened), 'ledger_entries, ledger_txns, payouts, payout_batches, earnings_jobs');

  async function setup(hotWalletFunding = toNano('100')) {
    const f = await payoutFixture(hotWalletFunding);
    const ledger = new Ledger(db, { prices: PRICES });
    const book = new LedgerPayoutBook(db, ledger);
    const logs: LogLine[] = [];
    const line =
      (level: LogLine['level']) =>
      (message: string, fields: Record<string, unknown> = {}) =>
        void logs.push({ level, message, fields });
    const sleeps: number[] = [];
    const runner = (extra: Partial<PayoutRunnerOptions> = {}) =>
      new PayoutRunner({
        book,
        chain: f.chain,
        wallet: f.wallet,
        threshold: THRESHOLD,
        pollIntervalMs: 5,
        retry: { timeoutMs: 100, retries: 3, backoffMs: 5, sleep: (ms) => (sleeps.push(ms), new Promise((r) => setTimeout(r, ms))) },
        logger: { info: line('info'), warn: line('warn'), error: line('error') },
        ...extra,
      });
    let jobs = 0;
    /** Credits one job's share to `wallet` and settles it. */
    const earn = async (wallet: string) => {
      const jobId = `job-${++jobs}`;
      await fund(ledger, 'key-1', toNano('10'));
      await ledger.reserve({ jobId, payer: { kind: 'requester', apiKeyId: 'key-1' }, amount: toNano('10') });
      await ledger.chargeJob({ jobId, contributorWallet: wallet, model: 'chat', usage: { promptTokens: 1000, completionTokens: 1000 } });
      await ledger.settleJob(jobId);
    };
    const hotBefore = await f.chain.getBalance(f.wallet.address);
    /**
     * The book audit `coordinator/ledger/check.ts` runs, and the ledger's hot wallet against the
     * chain's; `inFlight` nanoTON already left on chain in a batch not yet confirmed (plus its fee).
     */
    const audit = async ({ topUp = 0n, inFlight = 0n } = {}) => {
      const check = await checkBooks(db);
      expect(check.problems).toEqual([]);
      const spentOnChain = hotBefore + topUp - (await f.chain.getBalance(f.wallet.address));
      const booked = -(await ledger.accountBalance(HOT_WALLET));
      if (inFlight === 0n) expect(booked).toBe(spentOnChain);
      else expect(spentOnChain - booked - inFlight).toSatisfy((fee: bigint) => fee > 0n && fee < toNano('0.1'));
    };
    const onChain = (wallet: string) => f.chain.getBalance(Address.parse(wallet));
    return { ...f, ledger, book, logs, sleeps, runner, earn, audit, onChain };
  }

  it('refuses addresses it cannot pay with a typed error, tells the operator, keeps their balances, pays the rest', async () => {
    const s = await setup();
    const good = randomRecipient();
    const bad = ['not-a-ton-address', `7:${'ab'.repeat(32)}`];
    for (const w of [good, ...bad]) await s.earn(w);

    const report = await s.runner().runOnce();

    expect(report.refused.map((e) => e.wallet).sort()).toEqual([...bad].sort());
    for (const err of report.refused) expect(err).toBeInstanceOf(InvalidPayoutAddressError);
    expect(report.refused.find((e) => e.wallet.startsWith('7:'))?.message).toMatch(/workchain 7 does not exist/);
    const told = s.logs.filter((l) => l.message === 'payout refused: invalid address');
    expect(told.map((l) => [l.level, l.fields['wallet'], l.fields['amountTon']]).sort()).toEqual(bad.map((w) => ['warn', w, '2.7']).sort());
    for (const w of bad) {
      expect(await s.ledger.balances(w)).toEqual({ pending: 0n, settled: SHARE, inFlight: 0n, paid: 0n });
      expect(await s.book.payoutsFor(w)).toEqual([]);
    }
    expect(report.batches.map((b) => [b.size, b.confirmed])).toEqual([[1, 1]]);
    expect(await s.onChain(good)).toBe(SHARE);
    expect(await s.ledger.balances(good)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: SHARE });
    await s.audit();
  }, 60_000);

  it('pays a bounceable-form address of an undeployed wallet non-bounceable: the money stays there', async () => {
    const s = await setup();
    const raw = new Address(0, randomBytes(32));
    const bounceable = raw.toString({ bounceable: true, testOnly: false });
    expect(bounceable.startsWith('EQ')).toBe(true);
    await s.earn(bounceable);

    const report = await s.runner().runOnce();

    expect(report.batches.map((b) => b.confirmed)).toEqual([1]);
    const recipient = await s.chain.blockchain.getContract(raw);
    expect(recipient.balance).toBe(SHARE);
    expect(recipient.accountState?.type ?? 'uninit').toBe('uninit');
    const sent = (await s.chain.blockchain.getTransactions(s.wallet.address)).flatMap((tx) => [...tx.outMessages.values()]);
    expect(sent.map((m) => (m.info.type === 'internal' ? m.info.bounce : null))).toEqual([false]);
    // No bounce came back: the hot wallet's only incoming internal message is its funding.
    const incoming = (await s.chain.blockchain.getTransactions(s.wallet.address)).filter((tx) => tx.inMessage?.info.type === 'internal');
    expect(incoming).toHaveLength(1);
    expect(await s.ledger.balances(bounceable)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: SHARE });
    await s.audit();
  }, 60_000);

  it('waits while the hot wallet is short, tells the operator, loses nothing, and pays after a top-up', async () => {
    const s = await setup(toNano('1'));
    const wallets = [randomRecipient(), randomRecipient()];
    for (const w of wallets) await s.earn(w);

    for (let round = 0; round < 2; round++) {
      const report = await s.runner().runOnce();
      expect(report.blocked).toBeInstanceOf(InsufficientHotWalletBalanceError);
      expect(report.blocked?.available).toBe(toNano('1'));
      expect(report.batches).toEqual([]);
    }
    const told = s.logs.filter((l) => l.level === 'error');
    expect(told).toHaveLength(2);
    expect(told[0]?.message).toBe('payouts wait: the hot wallet cannot cover the next batch; top it up');
    expect(told[0]?.fields).toMatchObject({ availableTon: '1', neededTon: '5.404', shortTon: '4.404' });
    for (const w of wallets) expect(await s.ledger.balances(w)).toEqual({ pending: 0n, settled: SHARE, inFlight: 0n, paid: 0n });
    expect(await s.chain.findTransfers(s.wallet.address)).toEqual([]);
    await s.audit();

    // What the top-up added: 10 TON less the storage fee its transaction charged the idle hot wallet.
    const beforeTopUp = await s.chain.getBalance(s.wallet.address);
    await s.chain.fund(s.wallet.address, toNano('10'));
    const topUp = (await s.chain.getBalance(s.wallet.address)) - beforeTopUp;
    expect(toNano('10') - topUp).toSatisfy((storageFee: bigint) => storageFee >= 0n && storageFee < toNano('0.001'));
    const report = await s.runner().runOnce();
    expect(report.blocked).toBeNull();
    expect(report.batches.map((b) => [b.size, b.confirmed])).toEqual([[2, 2]]);
    for (const w of wallets) {
      expect(await s.onChain(w)).toBe(SHARE);
      expect(await s.ledger.balances(w)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: SHARE });
    }
    expect([...(await outgoingByPayoutId(s.chain, s.wallet.address)).values()]).toEqual([1, 1]);
    await s.audit({ topUp });
  }, 60_000);

  it('stops a round whose endpoint times out before sending, with backoff, and pays once it answers', async () => {
    const s = await setup();
    const wallet = randomRecipient();
    await s.earn(wallet);
    const chain = outageChain(s.chain);
    chain.down = true;

    const err = await s
      .runner({ chain })
      .runOnce()
      .catch((e: unknown) => e);

    expect(err).toBeInstanceOf(ChainTimeoutError);
    expect((err as Error).message).toBe('getBalance did not answer within 100 ms in 4 attempt(s); check the TON endpoint');
    expect(s.sleeps).toEqual([5, 10, 20]);
    expect(s.logs.filter((l) => l.message === 'payout chain call failed; retrying').map((l) => l.fields['retryInMs'])).toEqual([5, 10, 20]);
    expect(s.logs.filter((l) => l.level === 'error').map((l) => l.message)).toEqual([
      'payout round stopped: the chain endpoint did not answer; nothing was lost, payouts wait for the next round',
    ]);
    expect(chain.delivered).toEqual([]);
    expect(await s.ledger.balances(wallet)).toMatchObject({ settled: SHARE, inFlight: 0n });
    await s.audit();

    chain.down = false;
    expect((await s.runner({ chain }).runOnce()).batches.map((b) => b.confirmed)).toEqual([1]);
    expect(await s.onChain(wallet)).toBe(SHARE);
    expect([...(await outgoingByPayoutId(s.chain, s.wallet.address)).values()]).toEqual([1]);
    await s.audit();
  }, 60_000);

  it('when the endpoint dies right after a send, holds the batch in flight and, once back, confirms it without sending twice', async () => {
    const s = await setup();
    const wallets = [randomRecipient(), randomRecipient()];
    for (const w of wallets) await s.earn(w);
    const chain = outageChain(s.chain);
    chain.dropAnswerOfNextSend = true;

    const first = await s.runner({ chain, reconcileTimeoutMs: 0 }).runOnce();
    expect(first.batches.map((b) => [b.size, b.confirmed, b.pending])).toEqual([[2, 0, 2]]);
    expect(s.logs.some((l) => l.message === 'payout batch not yet found on chain; reconciled next round')).toBe(true);
    // Still down next round: the batch stays in flight and nothing new is signed or sent.
    const second = await s.runner({ chain, reconcileTimeoutMs: 0 }).runOnce();
    expect(second.heldBack).toBe(true);
    expect(chain.delivered).toHaveLength(1);
    for (const w of wallets) expect(await s.ledger.balances(w)).toEqual({ pending: 0n, settled: 0n, inFlight: SHARE, paid: 0n });
    expect((await s.book.pendingBatches()).map((b) => b.payouts.length)).toEqual([2]);
    await s.audit({ inFlight: 2n * SHARE });

    chain.down = false;
    const third = await s.runner({ chain }).runOnce();
    expect(third.batches.map((b) => [b.confirmed, b.failed, b.pending])).toEqual([[2, 0, 0]]);
    // A replay of the very message that landed is refused by the wallet (its seqno is used).
    const replay = await s.chain.send(chain.delivered[0] as Cell).then(
      () => 'accepted',
      () => 'refused',
    );
    expect(replay).toBe('refused');
    for (const w of wallets) {
      expect(await s.onChain(w)).toBe(SHARE);
      expect(await s.ledger.balances(w)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: SHARE });
    }
    expect([...(await outgoingByPayoutId(s.chain, s.wallet.address)).values()]).toEqual([1, 1]);
    expect(await s.chain.getSeqno(s.wallet.address)).toBe(1);
    await s.audit();
  }, 60_000);
});
