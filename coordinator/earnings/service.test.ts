import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Address, fromNano, toNano } from '@ton/core';
import { keyPairFromSeed, mnemonicNew } from '@ton/crypto';
import { WalletContractV4 } from '@ton/ton';
import { PENALTIES, UNCLAIMED } from '../ledger/accounts.ts';
import { Ledger } from '../ledger/ledger.ts';
import { parsePriceList } from '../ledger/prices.ts';
import { fund } from '../ledger/testing.ts';
import { HotWallet } from '../payouts/hot-wallet.ts';
import { SandboxChain } from '../payouts/sandbox-chain.ts';
import { outgoingByPayoutId } from '../payouts/testing.ts';
import type { SqlDb } from '../store/sql.ts';
import { BACKENDS, useMigratedBackend } from '../store/testing.ts';
import { createEarnings, type EarningsOptions, type EarningsSummary, type Verdict } from './service.ts';

// 1 TON per 1k prompt tokens, 2 TON per 1k completion tokens, 10 % commission.
const PRICES = parsePriceList({
  commissionBps: 1000,
  models: { chat: { kind: 'chat', unit: 'tokens', promptPer1k: '1000000000', completionPer1k: '2000000000' } },
});
const WINDOW = 60_000;
const THRESHOLD = toNano('1');
// 1k + 1k tokens: gross 3 TON, share 2.7; 2k + 1k: gross 4 TON, share 3.6.
const SHARE_A = toNano('2.7');
const SHARE_B = toNano('3.6');

function contributorWallet(): string {
  const { publicKey } = keyPairFromSeed(randomBytes(32));
  return WalletContractV4.create({ workchain: 0, publicKey }).address.toString({ bounceable: false, testOnly: true });
}

describe.each(BACKENDS)('earnings on $name with a sandbox chain', (backend) => {
  let db: SqlDb;
  useMigratedBackend(backend, (opened) => (db = opened), 'ledger_entries, ledger_txns, payouts, payout_batches, earnings_jobs');

  async function setup(extra: Partial<EarningsOptions> = {}) {
    let now = Date.now();
    const clock = { now: () => now, advance: (ms: number) => (now += ms) };
    const hotWallet = await HotWallet.fromMnemonic(await mnemonicNew());
    const chain = await SandboxChain.create({ fund: [{ address: hotWallet.address, amount: toNano('100') }] });
    const ledger = new Ledger(db, { prices: PRICES, now: clock.now });
    const make = (more: Partial<EarningsOptions> = {}) =>
      createEarnings({
        db,
        ledger,
        chain,
        hotWallet,
        threshold: THRESHOLD,
        windowMs: WINDOW,
        clock: clock.now,
        runner: { pollIntervalMs: 1, retry: { timeoutMs: 2_000, retries: 2, backoffMs: 1 } },
        ...extra,
        ...more,
      });
    const [a, b] = [contributorWallet(), contributorWallet()];
    const onChain = (w: string) => chain.getBalance(Address.parse(w));
    // The requester prepaid 100 TON; each job reserves 10 TON before it runs.
    await fund(ledger, 'key-1', toNano('100'));
    const earnings = make();
    const done = async (jobId: string, wallet: string | null, promptTokens = 1000, model = 'chat') => {
      await ledger.reserve({ jobId, payer: { kind: 'requester', apiKeyId: 'key-1' }, amount: toNano('10') });
      return earnings.onJobDone({ jobId, wallet, model, usage: { promptTokens, completionTokens: 1000 } });
    };
    return { clock, hotWallet, chain, ledger, make, earnings, a, b, onChain, done };
  }

  it('credits, settles after the window, pays on chain, and shows it all in the summary', async () => {
    const s = await setup();
    expect(await s.done('j1', s.a)).toEqual({ credited: true, amount: SHARE_A, gross: toNano('3'), replayed: false });
    expect(await s.done('j2', s.b, 2000)).toEqual({ credited: true, amount: SHARE_B, gross: toNano('4'), replayed: false });
    expect(
      await s.earnings.onJobDone({ jobId: 'j1', wallet: s.a, model: 'chat', usage: { promptTokens: 1000, completionTokens: 1000 } }),
    ).toMatchObject({
      credited: true,
      replayed: true,
    });
    // Delivered to a contributor without a wallet: the requester pays, the share waits in network:unclaimed.
    expect(await s.done('j3', null)).toMatchObject({ credited: false, reason: 'no-wallet', gross: toNano('3') });
    expect(await s.ledger.accountBalance(UNCLAIMED)).toBe(-SHARE_A);
    // A model without a price: nothing charged, the reservation goes back.
    expect(await s.done('j4', s.a, 1000, 'nope')).toMatchObject({ credited: false, reason: 'unknown-model', gross: 0n });
    // Never reserved: nothing charged.
    expect(
      await s.earnings.onJobDone({ jobId: 'j5', wallet: s.a, model: 'chat', usage: { promptTokens: 1, completionTokens: 1 } }),
    ).toMatchObject({
      credited: false,
      reason: 'no-reservation',
    });
    expect(await s.ledger.payerBalances({ kind: 'requester', apiKeyId: 'key-1' })).toEqual({ available: toNano('90'), reserved: 0n });

    s.clock.advance(WINDOW - 1);
    expect(await s.earnings.settleDue()).toEqual({ settled: 0, voided: 0, held: 0, dropped: 0 });
    expect((await s.earnings.runPayouts()).batches).toEqual([]);
    expect(await s.ledger.balances(s.a)).toEqual({ pending: SHARE_A, settled: 0n, inFlight: 0n, paid: 0n });

    s.clock.advance(1);
    expect(await s.earnings.settleDue()).toEqual({ settled: 2, voided: 0, held: 0, dropped: 0 });
    expect(await s.ledger.balances(s.b)).toEqual({ pending: 0n, settled: SHARE_B, inFlight: 0n, paid: 0n });

    const hotBefore = await s.chain.getBalance(s.hotWallet.address);
    const started = performance.now();
    const report = await s.earnings.runPayouts();
    const elapsed = performance.now() - started;
    expect(report.batches.map((b) => [b.size, b.confirmed, b.failed, b.pending])).toEqual([[2, 2, 0, 0]]);
    expect(await s.onChain(s.a)).toBe(SHARE_A);
    expect(await s.onChain(s.b)).toBe(SHARE_B);
    const fee = report.batches[0]?.fee ?? -1n;
    expect(fee).toBeGreaterThan(0n);
    // Independent reference: what left the hot wallet on chain.
    expect(hotBefore - (await s.chain.getBalance(s.hotWallet.address))).toBe(SHARE_A + SHARE_B + fee);
    expect(await s.ledger.balances(s.a)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: SHARE_A });
    expect(await s.ledger.balances(s.b)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: SHARE_B });
    const payouts = [...(await s.earnings.book.payoutsFor(s.a)), ...(await s.earnings.book.payoutsFor(s.b))];
    expect(payouts.map((p) => p.status)).toEqual(['paid', 'paid']);
    expect(payouts.every((p) => /^[0-9a-f]{64}$/.test(p.txHash ?? ''))).toBe(true);
    expect(payouts.reduce((sum, p) => sum + (p.fee ?? 0n), 0n)).toBe(fee);
    expect((await s.ledger.checkBooks()).ok).toBe(true);
    expect((await s.earnings.runPayouts()).batches).toEqual([]);

    const res = await s.earnings.routes().request(`/earnings/${s.a}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as EarningsSummary;
    expect(body.balances).toEqual({ pending: '0', settled: '0', inFlight: '0', paid: SHARE_A.toString() });
    expect(body.payouts).toHaveLength(1);
    expect(body.payouts[0]).toMatchObject({ status: 'paid', amount: SHARE_A.toString(), txHash: payouts[0]?.txHash });
    console.log(
      `[earnings:${backend.name}] batch of 2: chain fee ${fromNano(fee)} TON (${fromNano(fee / 2n)} per payout), ` +
        `runPayouts ${elapsed.toFixed(0)} ms`,
    );
  }, 60_000);

  it('voids a job verification rejects, holds one it has not decided, and pays only the rest', async () => {
    const verdicts = new Map<string, Verdict>([
      ['j1', 'void'],
      ['j2', 'hold'],
    ]);
    const s = await setup({ isVerified: (id) => verdicts.get(id) ?? 'ok' });
    // j1 failed its check before its credit landed: voided as it lands.
    await s.done('j1', s.a);
    expect(await s.ledger.balances(s.a)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: 0n });
    await s.done('j2', s.b, 2000);
    // j3 fails its check later: voided when its window ends.
    await s.done('j3', s.a);
    verdicts.set('j3', 'void');
    s.clock.advance(WINDOW);
    expect(await s.earnings.settleDue()).toEqual({ settled: 0, voided: 1, held: 1, dropped: 0 });
    expect(await s.ledger.balances(s.a)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: 0n });
    // The requester paid for every delivered job (3 + 4 + 3 TON); the voided shares went to penalties, not back to it.
    expect(await s.ledger.payerBalances({ kind: 'requester', apiKeyId: 'key-1' })).toEqual({ available: toNano('90'), reserved: 0n });
    expect(await s.ledger.accountBalance(PENALTIES)).toBe(-2n * SHARE_A);
    expect((await s.earnings.runPayouts()).batches).toEqual([]);

    verdicts.set('j2', 'ok');
    expect(await s.earnings.settleDue()).toEqual({ settled: 1, voided: 0, held: 0, dropped: 0 });
    const report = await s.earnings.runPayouts();
    expect(report.batches.map((b) => b.confirmed)).toEqual([1]);
    expect(await s.onChain(s.a)).toBe(0n);
    expect(await s.onChain(s.b)).toBe(SHARE_B);
    expect((await s.ledger.checkBooks()).ok).toBe(true);
  }, 60_000);

  it('after a crash between send and confirmation, a new service pays nothing twice', async () => {
    const s = await setup();
    await s.done('j1', s.a);
    await s.done('j2', s.b, 2000);
    s.clock.advance(WINDOW);
    await s.earnings.settleDue();
    const crashing = s.make({
      runner: {
        pollIntervalMs: 1,
        onSent: () => {
          throw new Error('crash after send');
        },
      },
    });
    await expect(crashing.runPayouts()).rejects.toThrow('crash after send');
    expect(await s.ledger.balances(s.a)).toEqual({ pending: 0n, settled: 0n, inFlight: SHARE_A, paid: 0n });
    expect((await crashing.book.pendingBatches()).map((b) => b.payouts.length)).toEqual([2]);

    const restarted = s.make();
    const report = await restarted.runPayouts();
    expect(report.batches.map((b) => [b.confirmed, b.failed])).toEqual([[2, 0]]);
    expect((await restarted.runPayouts()).batches).toEqual([]);
    expect(await s.onChain(s.a)).toBe(SHARE_A);
    expect(await s.onChain(s.b)).toBe(SHARE_B);
    const sent = await outgoingByPayoutId(s.chain, s.hotWallet.address);
    expect([...sent.values()]).toEqual([1, 1]);
    expect(await s.chain.getSeqno(s.hotWallet.address)).toBe(1);
    expect(await s.ledger.balances(s.b)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: SHARE_B });
    expect((await s.ledger.checkBooks()).ok).toBe(true);
  }, 60_000);

  it('fails a batch whose rows were written but whose intents never were, then pays the wallet once', async () => {
    const s = await setup();
    await s.done('j1', s.a);
    s.clock.advance(WINDOW);
    await s.earnings.settleDue();
    // The process died inside recordBatch: batch rows written, no ledger intent, nothing sent.
    const now = s.clock.now();
    await db.query(`INSERT INTO payout_batches VALUES ('dead', 0, $1, '0', $1)`, [now]);
    await db.query(
      `INSERT INTO payouts (payout_id, batch_id, wallet, to_addr, amount, status, created_at, updated_at)
      VALUES ('p-dead', 'dead', $1, $2, $3::bigint, 'pending', $4, $4)`,
      [s.a, Address.parse(s.a).toRawString(), SHARE_A.toString(), now],
    );
    expect((await s.earnings.book.pendingBatches()).map((b) => b.batchId)).toEqual(['dead']);
    expect(await s.ledger.balances(s.a)).toMatchObject({ settled: SHARE_A, inFlight: 0n });

    s.clock.advance(31_000);
    const report = await s.earnings.runPayouts();
    expect(report.batches.map((b) => [b.size, b.confirmed, b.failed])).toEqual([
      [1, 0, 1],
      [1, 1, 0],
    ]);
    expect(await s.earnings.book.payout('p-dead')).toMatchObject({ status: 'failed' });
    expect(await s.onChain(s.a)).toBe(SHARE_A);
    expect(await s.ledger.balances(s.a)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: SHARE_A });
    expect((await s.ledger.checkBooks()).ok).toBe(true);
  }, 60_000);

  it('records nothing spendable when an intent exceeds the settled balance', async () => {
    const s = await setup();
    await s.done('j1', s.a);
    s.clock.advance(WINDOW);
    await s.earnings.settleDue();
    const batch = {
      batchId: 'b1',
      seqno: 0,
      expiresAt: s.clock.now() + 60_000,
      sinceLt: 0n,
      payouts: [
        { payoutId: 'ok', wallet: s.a, to: Address.parse(s.a).toRawString(), amount: SHARE_A },
        { payoutId: 'over', wallet: s.b, to: Address.parse(s.b).toRawString(), amount: 1n },
      ],
    };
    await expect(s.earnings.book.recordBatch(batch)).rejects.toThrow();
    expect(await s.earnings.book.pendingBatches()).toEqual([]);
    expect(await s.ledger.balances(s.a)).toMatchObject({ settled: SHARE_A, inFlight: 0n });
    expect((await s.earnings.book.listPayable(THRESHOLD)).map((p) => [p.wallet, p.amount])).toEqual([[s.a, SHARE_A]]);
    expect(await s.earnings.book.listPayable(SHARE_A + 1n)).toEqual([]);
    expect((await s.ledger.checkBooks()).ok).toBe(true);
  }, 60_000);
});
