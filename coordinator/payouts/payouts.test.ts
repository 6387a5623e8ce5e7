import { describe, expect, it } from 'vitest';
import { Address, fromNano, toNano } from '@ton/core';
import { PayoutRunner, type PayoutRunnerOptions } from './payouts.ts';
import { hangingChain, outgoingByPayoutId, payoutFixture, randomRecipient } from './testing.ts';
import { InsufficientHotWalletBalanceError, InvalidPayoutAddressError } from './errors.ts';

const THRESHOLD = toNano('1');
const fastRetry = { timeoutMs: 200, retries: 3, backoffMs: 5 };

function runner(fixture: Pick<PayoutRunnerOptions, 'book' | 'chain' | 'wallet'>, extra: Partial<PayoutRunnerOptions> = {}) {
  return new PayoutRunner({
    book: fixture.book,
    chain: fixture.chain,
    wallet: fixture.wallet,
    threshold: THRESHOLD,
    retry: fastRetry,
    pollIntervalMs: 5,
    // What the operator is told is checked in bad-input.test.ts.
    logger: { info: () => {}, warn: () => {}, error: () => {} },
    ...extra,
  });
}

async function balances(fixture: Awaited<ReturnType<typeof payoutFixture>>, wallets: readonly string[]) {
  return Promise.all(wallets.map((w) => fixture.chain.getBalance(Address.parse(w))));
}

describe('PayoutRunner on the sandbox', () => {
  it('pays 300 wallets above the threshold in batches of 255 + 45, exactly the amounts', async () => {
    const f = await payoutFixture(toNano('1000'));
    const due = Array.from({ length: 300 }, (_, i) => ({ wallet: randomRecipient(), amount: THRESHOLD + BigInt(i) * 1_000_000n }));
    const below = Array.from({ length: 5 }, () => randomRecipient());
    for (const d of due) f.book.credit(d.wallet, d.amount);
    for (const w of below) f.book.credit(w, THRESHOLD - 1n);
    const hotBefore = await f.chain.getBalance(f.wallet.address);

    const report = await runner(f).runOnce();

    expect(report.batches.map((b) => b.size)).toEqual([255, 45]);
    expect(report.batches.map((b) => b.confirmed)).toEqual([255, 45]);
    expect(
      await balances(
        f,
        due.map((d) => d.wallet),
      ),
    ).toEqual(due.map((d) => d.amount));
    expect(await balances(f, below)).toEqual(below.map(() => 0n));
    for (const d of due) expect(f.book.paid.get(d.wallet)).toBe(d.amount);
    for (const w of below) expect(f.book.settled.get(w)).toBe(THRESHOLD - 1n);

    const paid = due.reduce((s, d) => s + d.amount, 0n);
    const fees = report.batches.reduce((s, b) => s + (b.fee ?? 0n), 0n);
    const recordedFees = [...f.book.payouts.values()].reduce((s, p) => s + (p.state.status === 'paid' ? p.state.confirmation.fee : 0n), 0n);
    expect(recordedFees).toBe(fees);
    // Independent reference: what actually left the hot wallet.
    expect(hotBefore - (await f.chain.getBalance(f.wallet.address))).toBe(paid + fees);
    for (const b of report.batches) {
      console.log(
        `[payouts] batch of ${b.size}: fee ${fromNano(b.fee ?? 0n)} TON ` +
          `(${fromNano((b.fee ?? 0n) / BigInt(b.size))} per transfer), ${b.elapsedMs} ms`,
      );
    }
    console.log(`[payouts] 300 payouts: total fees ${fromNano(fees)} TON`);
  }, 120_000);

  it('after a crash between send and confirmation, a new runner reconciles and pays nothing twice', async () => {
    const f = await payoutFixture();
    const due = Array.from({ length: 10 }, () => ({ wallet: randomRecipient(), amount: toNano('2') }));
    for (const d of due) f.book.credit(d.wallet, d.amount);
    const crashing = runner(f, {
      onSent: () => {
        throw new Error('crash after send');
      },
    });
    await expect(crashing.runOnce()).rejects.toThrow('crash after send');
    expect(f.book.count('pending')).toBe(10);

    const report = await runner(f).runOnce();
    expect(report.batches).toHaveLength(1);
    expect(report.batches[0]?.confirmed).toBe(10);
    expect(f.book.count('paid')).toBe(10);
    const again = await runner(f).runOnce();
    expect(again.batches).toEqual([]);

    expect(
      await balances(
        f,
        due.map((d) => d.wallet),
      ),
    ).toEqual(due.map((d) => d.amount));
    const sent = await outgoingByPayoutId(f.chain, f.wallet.address);
    expect(sent.size).toBe(10);
    expect([...sent.values()].every((n) => n === 1)).toBe(true);
    expect(await f.chain.getSeqno(f.wallet.address)).toBe(1);
  });

  it('fails intents whose message expired unsent and pays them in a later batch', async () => {
    const f = await payoutFixture();
    const wallet = randomRecipient();
    f.book.credit(wallet, toNano('3'));
    let now = Date.now();
    const deadChain = hangingChain(f.chain, { method: 'send', times: Infinity });
    const first = await runner({ ...f, chain: deadChain }, { now: () => now, reconcileTimeoutMs: 0 }).runOnce();
    expect(first.batches[0]?.pending).toBe(1);
    expect(f.book.settled.get(wallet)).toBe(0n);

    now += 10 * 60_000;
    const second = await runner(f, { now: () => now }).runOnce();
    expect(second.batches.map((b) => [b.failed, b.confirmed])).toEqual([
      [1, 0],
      [0, 1],
    ]);
    expect(await f.chain.getBalance(Address.parse(wallet))).toBe(toNano('3'));
    expect(f.book.paid.get(wallet)).toBe(toNano('3'));
  });

  it('sends nothing and reports it when the hot wallet cannot cover the batch', async () => {
    const f = await payoutFixture(toNano('2'));
    const due = Array.from({ length: 3 }, () => randomRecipient());
    for (const w of due) f.book.credit(w, toNano('1'));
    const report = await runner(f).runOnce();
    expect(report.blocked).toBeInstanceOf(InsufficientHotWalletBalanceError);
    expect(report.blocked?.available).toBe(toNano('2'));
    expect(report.batches).toEqual([]);
    expect(f.book.payouts.size).toBe(0);
    for (const w of due) expect(f.book.settled.get(w)).toBe(toNano('1'));
    expect(await f.chain.findTransfers(f.wallet.address)).toEqual([]);
    expect(await f.chain.getBalance(f.wallet.address)).toBe(toNano('2'));
  });

  it('marks the transfers missing from the batch transaction failed, back to settled', async () => {
    const amounts = [toNano('1'), toNano('1'), toNano('1')];
    // Covers the amounts but not the fees, so the wallet skips the last transfer.
    const f = await payoutFixture(toNano('3'));
    const due = amounts.map((amount) => ({ wallet: randomRecipient(), amount }));
    for (const d of due) f.book.credit(d.wallet, d.amount);
    const report = await runner(f, { feeReservePerTransfer: 0n }).runOnce();
    const batch = report.batches[0];
    expect(batch?.failed).toBeGreaterThan(0);
    expect((batch?.confirmed ?? 0) + (batch?.failed ?? 0)).toBe(3);
    expect(await f.chain.getSeqno(f.wallet.address)).toBe(1);
    const onChain = await balances(
      f,
      due.map((d) => d.wallet),
    );
    due.forEach((d, i) => {
      const paid = f.book.paid.get(d.wallet) ?? 0n;
      expect(onChain[i]).toBe(paid);
      expect(paid + (f.book.settled.get(d.wallet) ?? 0n)).toBe(d.amount);
    });
  });

  it('refuses an invalid address with a clear error and pays the others', async () => {
    const f = await payoutFixture();
    const good = [randomRecipient(), randomRecipient()];
    for (const w of good) f.book.credit(w, toNano('1.5'));
    f.book.credit('not-a-ton-address', toNano('5'));
    const report = await runner(f).runOnce();
    expect(report.refused).toHaveLength(1);
    expect(report.refused[0]).toBeInstanceOf(InvalidPayoutAddressError);
    expect(report.refused[0]?.message).toContain('not-a-ton-address');
    expect(f.book.settled.get('not-a-ton-address')).toBe(toNano('5'));
    expect(await balances(f, good)).toEqual([toNano('1.5'), toNano('1.5')]);
  });

  it.each([
    ['send hangs before reaching the chain', { method: 'send', times: 1 }],
    ['send reaches the chain but its answer is lost', { method: 'send', times: 1, afterInner: true }],
    ['getSeqno hangs once', { method: 'getSeqno', times: 1 }],
    ['findTransfers hangs once', { method: 'findTransfers', times: 1 }],
  ] as const)('retries when %s, paying once', async (_, hang) => {
    const f = await payoutFixture();
    const wallet = randomRecipient();
    f.book.credit(wallet, toNano('4'));
    const chain = hangingChain(f.chain, hang);
    const report = await runner({ ...f, chain }).runOnce();
    expect(chain.hung).toBe(1);
    expect(report.batches[0]?.confirmed).toBe(1);
    expect(await f.chain.getBalance(Address.parse(wallet))).toBe(toNano('4'));
    expect([...(await outgoingByPayoutId(f.chain, f.wallet.address)).values()]).toEqual([1]);
    expect(await f.chain.getSeqno(f.wallet.address)).toBe(1);
  });
});
