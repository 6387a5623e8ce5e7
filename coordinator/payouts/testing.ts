/** Test fixtures for the payout slice: a fresh hot wallet, a sandbox, recipients. */
import { randomBytes } from 'node:crypto';
import { Address, toNano, type Cell } from '@ton/core';
import { mnemonicNew } from '@ton/crypto';
import type { Chain, HotWalletTx } from './chain.ts';
import { MemoryPayoutBook } from './book.ts';
import { HotWallet } from './hot-wallet.ts';
import { SandboxChain } from './sandbox-chain.ts';

/** A sandbox with a funded hot wallet (key generated now, never stored) and an empty book. */
export async function payoutFixture(hotWalletFunding: bigint = toNano('1000')) {
  const wallet = await HotWallet.fromMnemonic(await mnemonicNew());
  const chain = await SandboxChain.create({ fund: [{ address: wallet.address, amount: hotWalletFunding }] });
  return { wallet, chain, book: new MemoryPayoutBook() };
}

/** A fresh, never-used address in user-friendly non-bounceable form. */
export function randomRecipient(): string {
  return new Address(0, randomBytes(32)).toString({ bounceable: false, testOnly: true });
}

/** Every outgoing payout transfer of the hot wallet, by payout id. */
export async function outgoingByPayoutId(chain: Chain, hot: Address): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const txs: HotWalletTx[] = await chain.findTransfers(hot);
  for (const t of txs.flatMap((tx) => tx.transfers)) counts.set(t.payoutId, (counts.get(t.payoutId) ?? 0) + 1);
  return counts;
}

/** Wraps a chain so chosen calls hang (never settle) the first `times` times. */
export function hangingChain(inner: Chain, hang: { method: keyof Chain; times: number; afterInner?: boolean }): Chain & { hung: number } {
  const wrapper = {
    hung: 0,
    getSeqno: (a: Address) => maybeHang('getSeqno', () => inner.getSeqno(a)),
    getBalance: (a: Address) => maybeHang('getBalance', () => inner.getBalance(a)),
    getLastLt: (a: Address) => maybeHang('getLastLt', () => inner.getLastLt(a)),
    send: (...args: Parameters<Chain['send']>) => maybeHang('send', () => inner.send(...args)),
    findTransfers: (a: Address, lt?: bigint) => maybeHang('findTransfers', () => inner.findTransfers(a, lt)),
  };
  async function maybeHang<T>(method: keyof Chain, call: () => Promise<T>): Promise<T> {
    if (method !== hang.method || wrapper.hung >= hang.times) return call();
    wrapper.hung++;
    // afterInner: the call reaches the chain but its answer is lost.
    if (hang.afterInner === true) await call();
    return new Promise<T>(() => {});
  }
  return wrapper;
}

/**
 * Wraps a chain whose endpoint the test takes down and brings back. While `down` is set every
 * call hangs without reaching the chain; with `dropAnswerOfNextSend` the next send reaches it
 * and then the endpoint goes down before answering. `delivered` holds each message that
 * reached the chain.
 */
export function outageChain(inner: Chain): Chain & { down: boolean; dropAnswerOfNextSend: boolean; delivered: Cell[] } {
  const wrapper = {
    down: false,
    dropAnswerOfNextSend: false,
    delivered: [] as Cell[],
    getSeqno: (a: Address) => gate(() => inner.getSeqno(a)),
    getBalance: (a: Address) => gate(() => inner.getBalance(a)),
    getLastLt: (a: Address) => gate(() => inner.getLastLt(a)),
    findTransfers: (a: Address, lt?: bigint) => gate(() => inner.findTransfers(a, lt)),
    send: (external: Cell) =>
      gate(async () => {
        await inner.send(external);
        wrapper.delivered.push(external);
        if (wrapper.dropAnswerOfNextSend) {
          wrapper.dropAnswerOfNextSend = false;
          wrapper.down = true;
          return new Promise<void>(() => {});
        }
      }),
  };
  function gate<T>(call: () => Promise<T>): Promise<T> {
    return wrapper.down ? new Promise<T>(() => {}) : call();
  }
  return wrapper;
}
