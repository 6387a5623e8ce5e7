/**
 * Replica ownership on real PostgreSQL: jobs name the replica whose connection wrote them
 * (migration 009); recovery fails only the jobs of replicas whose lock is free (dead), never a
 * live one's; a live replica's id cannot be taken twice; the singleton lock has one holder and
 * moves when it dies; wallet sessions issued on one replica work on another.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../store/index.ts';
import type { SqlStore } from '../store/sql-store.ts';
import { TEST_DATABASE_URL, uniqueSchema } from '../store/testing.ts';
import type { JobRecord } from '../store/types.ts';
import { disposeStore } from '../../testing/verification.ts';
import { ReplicaLocks } from './locks.ts';
import { recoverDead, recoverOwn } from './recovery.ts';
import { SharedWalletSessions } from './wallet-sessions.ts';

const schema = uniqueSchema('cluster');
const stores: SqlStore[] = [];
const locks: ReplicaLocks[] = [];
afterAll(async () => {
  for (const l of locks) await l.close();
  for (const s of stores.slice(1)) await s.close();
  if (stores[0] !== undefined) await disposeStore(stores[0]);
});

const storeFor = async (replicaId: string): Promise<SqlStore> => {
  const store = await openStore({ databaseUrl: TEST_DATABASE_URL, schema, replicaId });
  stores.push(store);
  return store;
};
const lockFor = async (replicaId: string, lost: string[] = []): Promise<ReplicaLocks> => {
  const l = await ReplicaLocks.open({ url: TEST_DATABASE_URL, schema, replicaId, onLost: (why) => void lost.push(why) }, 300);
  locks.push(l);
  return l;
};
const job = (id: string, state: JobRecord['state']): JobRecord => ({
  id,
  apiKeyId: 'key',
  model: 'tiny-embed',
  kind: 'embed',
  state,
  attempt: 1,
  contributorId: null,
  createdAt: 1,
  updatedAt: 1,
  payloadBytes: 0,
  resultBytes: 0,
  promptTokens: 0,
  completionTokens: 0,
  error: null,
});

describe('replica ownership and locks', () => {
  it('fails the jobs of dead replicas only, each with RESTARTED and its reservation released', { timeout: 60_000 }, async () => {
    const [a, b, c] = [await storeFor('a'), await storeFor('b'), await storeFor('c')];
    const [lockA, lockB] = [await lockFor('a'), await lockFor('b')];
    const lockC = await lockFor('c');
    a.putJob(job('a-1', 'leased'));
    b.putJob(job('b-1', 'queued'));
    b.putJob(job('b-done', 'done'));
    c.putJob(job('c-1', 'waiting'));
    c.putJob(job('c-2', 'leased'));
    await Promise.all([a.flush(), b.flush(), c.flush()]);
    // An update by another replica does not change a job's owner.
    a.putJob({ ...job('c-2', 'leased'), attempt: 2 });
    await a.flush();
    const owners = await a.db.query<{ id: string; replica_id: string }>('SELECT id, replica_id FROM jobs ORDER BY id');
    expect(owners.rows.map((r) => `${r.id}:${r.replica_id}`)).toEqual(['a-1:a', 'b-1:b', 'b-done:b', 'c-1:c', 'c-2:c']);

    // A live replica's id cannot be taken by a second process.
    await expect(lockFor('b')).rejects.toThrow(/held by another live replica/);

    // c dies (its connection ends); a holds the singletons and recovers.
    await lockC.close();
    expect(await lockA.tryLeader()).toBe(true);
    expect(await lockB.tryLeader()).toBe(false);
    const released: string[] = [];
    const failed = await recoverDead({ db: a.db, now: () => 5, released: (id) => void released.push(id) }, lockA, 'a');
    expect([...failed]).toEqual([['c', { failed: 2, released: 0, charged: 0 }]]);
    expect(released.sort()).toEqual(['c-1', 'c-2']);
    const rows = await a.db.query<{ id: string; state: string; error: string | null }>('SELECT id, state, error FROM jobs ORDER BY id');
    expect(rows.rows.map((r) => `${r.id}:${r.state}`)).toEqual(['a-1:leased', 'b-1:queued', 'b-done:done', 'c-1:failed', 'c-2:failed']);
    expect(rows.rows.find((r) => r.id === 'c-1')?.error).toMatch(/^RESTARTED: The coordinator replica c /);

    // c comes back under its id: the lock is free again, and it ends what its earlier process left (nothing now).
    const again = await lockFor('c');
    expect((await recoverOwn({ db: c.db, now: () => 6 }, 'c')).failed).toBe(0);
    // b's own restart: its unfinished job ends, its finished one stays.
    expect((await recoverOwn({ db: b.db, now: () => 7 }, 'b')).failed).toBe(1);
    expect((await b.getJob('b-done'))?.state).toBe('done');

    // The singleton lock moves when its holder's connection ends.
    await lockA.close();
    expect(await lockB.tryLeader()).toBe(true);
    expect(await again.tryLeader()).toBe(false);
  });

  it('accepts a wallet session on every replica, for its device only, until it expires', { timeout: 30_000 }, async () => {
    const db = stores[0]?.db ?? (await storeFor('a')).db;
    let now = 1_000;
    const clock = { now: () => now };
    const log = (message: string, err: unknown) => {
      throw new Error(`${message}: ${String(err)}`);
    };
    const one = new SharedWalletSessions({ db, clock, log });
    const two = new SharedWalletSessions({ db, clock, log });
    const { token } = one.issue('0:' + 'ab'.repeat(32), 'device-key');
    await one.idle();
    expect(await two.resolve(token, 'device-key')).toEqual({ ok: true, wallet: '0:' + 'ab'.repeat(32) });
    expect((await two.resolve(token, 'other-device')).ok).toBe(false);
    expect((await two.resolve(`${token}x`, 'device-key')).ok).toBe(false);
    // Only the hash is stored.
    const stored = await db.query<{ token_hash: string }>('SELECT token_hash FROM wallet_sessions');
    expect(stored.rows.some((r) => r.token_hash === token)).toBe(false);
    now += 25 * 60 * 60_000;
    expect((await two.resolve(token, 'device-key')).ok).toBe(false);
    expect(await two.forgetExpired()).toBe(1);
  });
});
