/**
 * The deposit watcher on the @ton/sandbox chain (PGlite and PostgreSQL): real transfers with
 * text comments to the deposit address, booked exactly once — also when read again, twice at
 * once, or after a crash — held for the operator when the comment names no key, and never
 * booked when the transfer bounced. Then the same transactions served by a stand-in for
 * toncenter, read through TonClient, book the same amounts.
 */
import { Address, toNano } from '@ton/core';
import { mnemonicNew } from '@ton/crypto';
import { TonClient } from '@ton/ton';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { availableAccount, BUDGET_AVAILABLE, CHAIN_DEPOSITS, UNMATCHED_DEPOSITS } from '../ledger/accounts.ts';
import { Ledger } from '../ledger/ledger.ts';
import { HotWallet } from '../payouts/hot-wallet.ts';
import { SandboxChain } from '../payouts/sandbox-chain.ts';
import { startTonCenterStandIn, type TonCenterStandIn, transactionsPage } from '../payouts/toncenter-stand-in.ts';
import { SqlStore } from '../store/sql-store.ts';
import type { SqlDb } from '../store/sql.ts';
import { BACKENDS, useMigratedBackend } from '../store/testing.ts';
import type { DepositChain } from './chain.ts';
import { SandboxDepositChain, SandboxFaucet } from './sandbox-chain.ts';
import { TonClientDepositChain } from './ton-client-chain.ts';
import { createDepositWatcher } from './watcher.ts';

// Each test runs a coordinator, a chain and a database; on a busy 2-core machine that can take a while.
vi.setConfig({ testTimeout: 120_000 });

const BUDGET_MEMO = 'spinneret:check-budget';
const TABLES = 'ledger_entries, ledger_txns, deposits, deposit_cursors, api_keys';

/** A fresh deposit address on a fresh sandbox: funded (deployed or not) before the watcher exists. */
async function sandbox(prefund = toNano('5')) {
  const address = (await HotWallet.fromMnemonic(await mnemonicNew())).address;
  const chain = await SandboxChain.create(prefund > 0n ? { fund: [{ address, amount: prefund }] } : {});
  return { address, chain, faucet: new SandboxFaucet(chain.blockchain, address) };
}

describe.each(BACKENDS)('deposits on the sandbox chain, $name', (backend) => {
  let db: SqlDb;
  useMigratedBackend(backend, (opened) => (db = opened), TABLES);

  const setup = async (
    chainOf: (s: Awaited<ReturnType<typeof sandbox>>) => DepositChain = (s) => new SandboxDepositChain(s.chain.blockchain),
  ) => {
    const s = await sandbox();
    const ledger = new Ledger(db);
    const store = new SqlStore(db);
    const budgetDeposits: number[] = [];
    const watcher = (chain: DepositChain = chainOf(s)) =>
      createDepositWatcher({
        db,
        ledger,
        store,
        chain,
        address: s.address,
        budgetMemo: BUDGET_MEMO,
        onBudgetDeposit: () => void budgetDeposits.push(1),
      });
    const key = async () => (await store.createApiKey({ label: 'k', jobsPerMinute: 1, maxInFlight: 1 })).record;
    const available = async (id: string) => -(await ledger.accountBalance(availableAccount(id)));
    return { ...s, ledger, store, watcher, key, available, budgetDeposits };
  };

  it('books each transfer once, to the key its memo names, however often it is read', async () => {
    const s = await setup();
    const a = await s.key();
    const b = await s.key();
    const watcher = s.watcher();
    // The first read sets the cursor: the funding before the watcher existed is not a deposit.
    expect(await watcher.poll()).toEqual({ seen: 0, toKeys: 0, toBudget: 0, unmatched: 0, replayed: 0 });
    await s.faucet.send(a.depositMemo, toNano('2'));
    await s.faucet.send(` ${b.depositMemo}\n`, toNano('0.5'), { from: 'someone else' });
    await s.faucet.send(a.depositMemo, toNano('1'));
    expect(await watcher.poll()).toEqual({ seen: 3, toKeys: 3, toBudget: 0, unmatched: 0, replayed: 0 });
    expect(await watcher.poll()).toEqual({ seen: 0, toKeys: 0, toBudget: 0, unmatched: 0, replayed: 0 });
    expect(await s.available(a.id)).toBe(toNano('3'));
    expect(await s.available(b.id)).toBe(toNano('0.5'));
    // Read again from the start (a lost cursor, a replayed page): the same transactions, nothing new.
    await db.query('UPDATE deposit_cursors SET lt = $1', ['0']);
    expect(await watcher.poll()).toMatchObject({ seen: 4, replayed: 3, unmatched: 1 });
    // Two coordinators reading at once book each transfer once.
    await s.faucet.send(b.depositMemo, toNano('4'));
    const [one, two] = await Promise.all([s.watcher().poll(), s.watcher().poll()]);
    expect(one.toKeys + two.toKeys).toBe(1);
    expect(await s.available(b.id)).toBe(toNano('4.5'));
    // The chain's own record: what the address received after the watcher started is what was booked.
    const received = (await new SandboxDepositChain(s.chain.blockchain).incoming(s.address, 0n)).reduce((n, t) => n + t.amount, 0n);
    expect(await s.ledger.accountBalance(CHAIN_DEPOSITS)).toBe(received);
    expect(await s.ledger.checkBooks()).toMatchObject({ ok: true, totals: { deposits: toNano('7.5'), unmatched: toNano('5') } });
  });

  it('holds a deposit with a wrong or missing memo for the operator, who can give it to a key', async () => {
    const s = await setup();
    const a = await s.key();
    const watcher = s.watcher();
    await watcher.poll();
    await s.faucet.send('spn-aaaaaaaaaaaaaaaaaaaa', toNano('1'));
    await s.faucet.send('please credit my key', toNano('2'));
    await s.faucet.send(null, toNano('3'));
    await s.faucet.send(BUDGET_MEMO, toNano('4'));
    expect(await watcher.poll()).toEqual({ seen: 4, toKeys: 0, toBudget: 1, unmatched: 3, replayed: 0 });
    expect(s.budgetDeposits).toHaveLength(1);
    expect(await s.ledger.accountBalance(BUDGET_AVAILABLE)).toBe(-toNano('4'));
    expect(await s.ledger.accountBalance(UNMATCHED_DEPOSITS)).toBe(-toNano('6'));
    const held = await watcher.unmatched();
    expect(held.map((d) => [d.comment, d.amount])).toEqual([
      ['spn-aaaaaaaaaaaaaaaaaaaa', toNano('1')],
      ['please credit my key', toNano('2')],
      [null, toNano('3')],
    ]);
    expect(held.every((d) => d.depositKey === `deposit:${d.lt}:${d.txHash}`)).toBe(true);
    const meant = held[1];
    if (meant === undefined) throw new Error('no unmatched deposit');
    await watcher.assign(meant.depositKey, a.id);
    expect(await s.available(a.id)).toBe(toNano('2'));
    expect((await watcher.unmatched()).map((d) => d.amount)).toEqual([toNano('1'), toNano('3')]);
    expect(await s.ledger.checkBooks()).toMatchObject({ ok: true, totals: { deposits: toNano('6'), unmatched: toNano('4') } });
  });

  it('books nothing for a transfer that bounced back to its sender', async () => {
    // An address that does not exist yet: a bounceable transfer to it comes back.
    const s = { ...(await setup()), ...(await sandbox(0n)) };
    const a = await s.key();
    const watcher = createDepositWatcher({
      db,
      ledger: s.ledger,
      store: s.store,
      chain: new SandboxDepositChain(s.chain.blockchain),
      address: s.address,
      budgetMemo: BUDGET_MEMO,
    });
    await watcher.poll();
    await s.faucet.send(a.depositMemo, toNano('1'), { bounce: true });
    expect(await s.chain.getBalance(s.address)).toBe(0n);
    expect(await watcher.poll()).toEqual({ seen: 0, toKeys: 0, toBudget: 0, unmatched: 0, replayed: 0 });
    // Non-bounceable, the money stays on the address, and is booked.
    await s.faucet.send(a.depositMemo, toNano('1'));
    expect(await s.chain.getBalance(s.address)).toBeGreaterThan(0n);
    expect(await watcher.poll()).toMatchObject({ seen: 1, toKeys: 1 });
    expect(await s.available(a.id)).toBe(toNano('1'));
  });
});

describe('deposits read through TonClient from a stand-in for toncenter', () => {
  let standIn: TonCenterStandIn;
  beforeAll(async () => {
    standIn = await startTonCenterStandIn();
  });
  afterAll(async () => standIn.close());

  it('walks getTransactions pages back to the cursor and finds what the sandbox finds', async () => {
    const s = await sandbox();
    // 120 deposits: two pages of 100 on the way back.
    for (let i = 0; i < 120; i++)
      await s.faucet.send(i % 7 === 0 ? null : `spn-${'a'.repeat(19)}${'bcdefg'[i % 6]}`, toNano('0.01') + BigInt(i));
    const newestFirst = [...(await s.chain.blockchain.getTransactions(s.address))].sort((a, b) => (a.lt < b.lt ? 1 : -1));
    standIn.replies = { getTransactions: (params) => ({ result: transactionsPage(newestFirst, params) }) };
    const http = new TonClientDepositChain(new TonClient({ endpoint: standIn.endpoint, timeout: 5_000 }));
    const local = new SandboxDepositChain(s.chain.blockchain);
    const all = await http.incoming(s.address, 0n);
    expect(all).toHaveLength(121);
    expect(all).toEqual(await local.incoming(s.address, 0n));
    expect(all.filter((t) => t.comment === null)).toHaveLength(1 + 18);
    const since = all[40]?.lt ?? 0n;
    expect(await http.incoming(s.address, since)).toEqual(await local.incoming(s.address, since));
    const pages = standIn.calls.filter((c) => c.method === 'getTransactions').map((c) => c.params);
    expect(pages[0]).toEqual({ address: Address.parse(s.address.toString()).toString(), limit: 100, to_lt: '0', archival: true });
    expect(pages).toHaveLength(3);
  }, 60_000);
});
