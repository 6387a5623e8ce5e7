/**
 * The money a stopped replica left, on real PostgreSQL with the real billing, ledger and
 * earnings: replica x reserved for three jobs and died — one never reached the store (orphaned),
 * one was stored done but never charged, one was still leased. The singleton holder (replica y,
 * alive, with a reservation of its own whose job row is still on its way) hands x's work over:
 * the orphan and the leased job's reservations go back, the delivered job is charged from its
 * record, to the nanoTON; y's reservation is not touched. A second pass, and x's own restart
 * after it, change nothing.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { chargeDoneUncharged } from '../leases/restart.ts';
import { FEES_NETWORK } from '../ledger/accounts.ts';
import { Ledger } from '../ledger/ledger.ts';
import { TEST_DATABASE_URL, uniqueSchema } from '../store/testing.ts';
import type { JobRecord } from '../store/types.ts';
import { ReplicaKit, testMoney } from '../../testing/cluster.ts';
import { testWallet } from '../wallets/test-wallet.ts';
import { ReplicaLocks } from './locks.ts';
import { recoverDead, recoverOwn, type RecoveryOptions } from './recovery.ts';

const schema = uniqueSchema('handover');
const kit = new ReplicaKit();
afterAll(() => kit.dispose());

const replica = async (id: string) => {
  const store = await kit.store(schema, id);
  const money = await testMoney(store);
  kit.cleanup.push(() => money.stop());
  // As operator/wiring.ts hands over with a replica's money.
  const hooks: Pick<RecoveryOptions, 'released' | 'money'> = {
    released: (jobId, reason) => money.billing.relay.ended(jobId, reason),
    money: {
      releaseOrphaned: (replicaId) => money.billing.releaseOrphaned(replicaId),
      chargeUncharged: async (replicaId) => {
        const n = await chargeDoneUncharged({ store, billing: money.billing, onJobDone: money.onJobDone }, replicaId);
        await money.idle();
        return n;
      },
    },
  };
  return { store, money, hooks, options: (now: number): RecoveryOptions => ({ db: store.db, now: () => now, ...hooks }) };
};

const lock = async (id: string): Promise<ReplicaLocks> => {
  const l = await ReplicaLocks.open({ url: TEST_DATABASE_URL, schema, replicaId: id, onLost: () => undefined }, 300);
  kit.cleanup.push(() => l.close());
  return l;
};

const record = (id: string, state: JobRecord['state'], contributorId: string | null, promptTokens: number): JobRecord => ({
  id,
  apiKeyId: '',
  model: 'tiny-embed',
  kind: 'embed',
  state,
  attempt: 1,
  contributorId,
  createdAt: 1,
  updatedAt: 1,
  payloadBytes: 0,
  resultBytes: 0,
  promptTokens,
  completionTokens: 0,
  error: null,
});

describe('a stopped replica’s money, handed over', () => {
  it('releases its orphaned reservations and charges its delivered jobs once, to the nanoTON', { timeout: 60_000 }, async () => {
    const x = await replica('x');
    const y = await replica('y');
    const lockX = await lock('x');
    const lockY = await lock('y');
    const ledger = new Ledger(y.store.db);
    const { record: key } = await y.store.createApiKey({ label: 'requester', jobsPerMinute: 600, maxInFlight: 32 });
    await ledger.deposit({ lt: 1n, hash: 'ab'.repeat(32), amount: 1_000_000n, to: { kind: 'requester', apiKeyId: key.id }, note: 'test' });
    const wallet = testWallet().address;
    await y.store.upsertContributor({
      id: 'worker-1',
      identityKey: 'k'.repeat(43),
      hpkeKey: 'h'.repeat(43),
      wallet,
      firstSeen: 1,
      lastSeen: 1,
    });

    // tiny-embed: 1,000,000 nanoTON per 1,000 input tokens (prices.json), so 1,000 per token; 10% commission.
    const reserve = async (on: typeof x, jobId: string, inputTokens: number): Promise<void> => {
      const r = await on.money.billing.reserveJob(key, jobId, 'tiny-embed', 'embed', { inputTokens, maxOutputTokens: 0 });
      expect(r.ok).toBe(true);
    };
    await reserve(x, 'x-orphan', 40); // 40,000: its job row never reached the store
    await reserve(x, 'x-done', 50); // 50,000: delivered (37 tokens), never charged
    await reserve(x, 'x-leased', 30); // 30,000: still leased when x died
    await reserve(y, 'y-live', 20); // 20,000: y's job row is still on its way; y lives
    x.store.putJob({ ...record('x-done', 'done', 'worker-1', 37), apiKeyId: key.id });
    x.store.putJob({ ...record('x-leased', 'leased', 'worker-1', 0), apiKeyId: key.id });
    await x.store.flush();
    const owners = await y.store.db.query<{ job_id: string; replica_id: string }>(
      'SELECT job_id, replica_id FROM job_billing ORDER BY job_id',
    );
    expect(owners.rows.map((r) => `${r.job_id}:${r.replica_id}`)).toEqual(['x-done:x', 'x-leased:x', 'x-orphan:x', 'y-live:y']);
    const payer = { kind: 'requester', apiKeyId: key.id } as const;
    expect(await ledger.payerBalances(payer)).toEqual({ available: 1_000_000n - 140_000n, reserved: 140_000n });

    // x dies.
    x.money.stop();
    await lockX.close();
    expect(await lockY.tryLeader()).toBe(true);
    const handed = await recoverDead(y.options(10), lockY, 'y');
    expect([...handed]).toEqual([['x', { failed: 1, released: 2, charged: 1 }]]);

    // Charged 37 × 1,000 = 37,000 of x-done's 50,000; the rest and the other two of x's reservations come back.
    const after = {
      available: 1_000_000n - 20_000n - 37_000n,
      reserved: 20_000n,
      pending: 37_000n - 3_700n,
      fees: 3_700n,
    };
    // (The ledger keeps what the network owes as negative balances.)
    const read = async () => ({
      ...(await ledger.payerBalances(payer)),
      pending: (await ledger.balances(wallet)).pending,
      fees: -(await ledger.accountBalance(FEES_NETWORK)),
    });
    expect(await read()).toEqual(after);
    const states = await y.store.db.query<{ job_id: string; state: string }>('SELECT job_id, state FROM job_billing ORDER BY job_id');
    expect(states.rows.map((r) => `${r.job_id}:${r.state}`)).toEqual([
      'x-done:charged',
      'x-leased:released',
      'x-orphan:released',
      'y-live:reserved',
    ]);
    expect((await y.store.getJob('x-leased'))?.error).toMatch(/^RESTARTED: The coordinator replica x /);

    // Once: the next pass finds nothing, and x coming back under its id finds nothing of its own either.
    expect([...(await recoverDead(y.options(11), lockY, 'y'))]).toEqual([]);
    await lock('x');
    const x2 = await replica('x');
    expect(await recoverOwn(x2.options(12), 'x')).toEqual({ failed: 0, released: 0, charged: 0 });
    expect(await read()).toEqual(after);
    expect((await ledger.checkBooks()).ok).toBe(true);
  });

  it('lets a restarting replica end its own leftovers, and never a live replica’s', { timeout: 60_000 }, async () => {
    const z = await replica('z');
    const w = await replica('w');
    await lock('w');
    const ledger = new Ledger(z.store.db);
    const { record: key } = await z.store.createApiKey({ label: 'own', jobsPerMinute: 600, maxInFlight: 32 });
    await ledger.deposit({ lt: 2n, hash: 'cd'.repeat(32), amount: 500_000n, to: { kind: 'requester', apiKeyId: key.id }, note: 'test' });
    for (const [on, jobId] of [
      [z, 'z-orphan'],
      [w, 'w-live'],
    ] as const) {
      expect((await on.money.billing.reserveJob(key, jobId, 'tiny-embed', 'embed', { inputTokens: 10, maxOutputTokens: 0 })).ok).toBe(true);
    }
    // z's process restarts (its lock is its own again): its orphan goes back, w's reservation stays.
    await lock('z');
    expect(await recoverOwn(z.options(20), 'z')).toEqual({ failed: 0, released: 1, charged: 0 });
    expect(await ledger.payerBalances({ kind: 'requester', apiKeyId: key.id })).toEqual({
      available: 500_000n - 10_000n,
      reserved: 10_000n,
    });
  });
});
