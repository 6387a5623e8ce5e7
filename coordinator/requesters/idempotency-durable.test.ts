/**
 * Idempotency keys kept in the store (migration 011), on PostgreSQL: a repeat after a restart,
 * or on another replica, gets the job the first creation made and reserves nothing again (one
 * `job.reserve` in the ledger), and a creation its coordinator stopped mid-way is taken over; two
 * tries at once on two replicas make one job; one API key at its cap of keys never pushes out
 * another key's; an expired key makes a new job and expired rows are deleted.
 */
import { toNano } from '@ton/core';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { paidReplica, quiet, ReplicaKit, testMoney } from '../../testing/cluster.ts';
import { type Coordinator, createCoordinator } from '../app.ts';
import type { Clock } from '../clock.ts';
import type { EdgeLimits } from '../edges/limits.ts';
import type { SqlStore } from '../store/sql-store.ts';
import { uniqueSchema } from '../store/testing.ts';
import { FakeClock } from '../testing.ts';

vi.setConfig({ testTimeout: 60_000 });

const BODY = { model: 'tiny-decoder', kind: 'chat', billing: { inputTokens: 40, maxOutputTokens: 16 } };
const kit = new ReplicaKit();
afterAll(() => kit.dispose());

interface Key {
  id: string;
  secret: string;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  retryAfter: string | null;
}

async function post(url: string, key: Key, idempotencyKey: string, body: unknown = BODY): Promise<Answer> {
  const res = await fetch(`${url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, retryAfter: res.headers.get('retry-after') };
}

/** One coordinator with billing on `schema`, as `replicaId`; `stop` ends it as a graceful stop does. */
async function coordinatorOn(
  schema: string,
  replicaId: string,
  options: { clock?: Clock; limits?: Partial<EdgeLimits> } = {},
): Promise<{
  store: SqlStore;
  coordinator: Coordinator;
  money: Awaited<ReturnType<typeof testMoney>>;
  url: string;
  stop(): Promise<void>;
}> {
  const store = await kit.store(schema, replicaId);
  const money = await testMoney(store);
  const coordinator = createCoordinator({
    store,
    logger: quiet,
    billing: money.billing,
    onJobDone: (done) => money.onJobDone(done),
    ...(options.clock !== undefined && { clock: options.clock }),
    ...(options.limits !== undefined && { limits: options.limits }),
  });
  const server = await coordinator.listen();
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    money.stop();
    await coordinator.close();
    await server.close();
    await money.idle();
  };
  kit.cleanup.push(stop);
  return { store, coordinator, money, url: server.url, stop };
}

/** Reservations in the ledger for `apiKeyId`'s jobs, and its billing rows. */
async function reservations(store: SqlStore, apiKeyId: string): Promise<{ reserves: number; billed: string[] }> {
  const reserves = await store.db.query<{ n: unknown }>(
    `SELECT count(*) AS n FROM ledger_txns t JOIN job_billing b ON b.job_id = t.ref WHERE t.kind = 'job.reserve' AND b.api_key_id = $1`,
    [apiKeyId],
  );
  const billed = await store.db.query<{ job_id: string }>('SELECT job_id FROM job_billing WHERE api_key_id = $1 ORDER BY job_id', [
    apiKeyId,
  ]);
  return { reserves: Number(reserves.rows[0]?.n), billed: billed.rows.map((r) => r.job_id) };
}

describe('idempotency keys in the store', () => {
  it('answers a repeat after a restart with the job made before it, reserving once', async () => {
    const schema = uniqueSchema('idem_restart');
    const first = await coordinatorOn(schema, 'r1');
    const key = await first.coordinator.createApiKey('restart');
    await first.money.fund(key.depositMemo, toNano('1'));
    const made = await post(first.url, key, 'before-the-restart-01');
    expect(made.status).toBe(201);
    const jobId = made.body['jobId'];
    await first.store.flush();
    await first.stop();

    const second = await coordinatorOn(schema, 'r1');
    const again = await post(second.url, key, 'before-the-restart-01');
    expect(again).toMatchObject({ status: 200, body: { jobId, assignment: null } });
    // Another body under the key is still refused after the restart.
    const other = await post(second.url, key, 'before-the-restart-01', { ...BODY, billing: { inputTokens: 41, maxOutputTokens: 16 } });
    expect(other).toMatchObject({
      status: 409,
      body: { error: { code: 'CONFLICT', message: expect.stringMatching(/idempotency key/) as unknown } },
    });
    expect(await reservations(second.store, key.id)).toEqual({ reserves: 1, billed: [jobId] });

    // A creation the stopped coordinator claimed and never finished: after 10 s its repeat makes the job.
    await second.store.db.query(
      `INSERT INTO idempotency_keys (api_key_id, idem_key, fingerprint, job_id, state, claimed_at, expires_at)
       SELECT api_key_id, 'cut-off-mid-creation', fingerprint, 'never-made', 'pending', $1, expires_at FROM idempotency_keys WHERE api_key_id = $2`,
      [Date.now() - 10_000, key.id],
    );
    const taken = await post(second.url, key, 'cut-off-mid-creation');
    expect(taken.status).toBe(201);
    const { rows } = await second.store.db.query<{ job_id: string; state: string }>(
      `SELECT job_id, state FROM idempotency_keys WHERE idem_key = 'cut-off-mid-creation'`,
    );
    expect(rows).toEqual([{ job_id: taken.body['jobId'], state: 'created' }]);
    expect((await reservations(second.store, key.id)).reserves).toBe(2);
  });

  it('answers a repeat on another replica with the same job, and makes one job of two tries at once on two replicas', async () => {
    const schema = uniqueSchema('idem_replicas');
    const a = await paidReplica(kit, schema, 'a', { canaryRate: 0, replicationRate: 0 });
    const b = await paidReplica(kit, schema, 'b', { canaryRate: 0, replicationRate: 0 });
    const key = await a.coordinator.createApiKey('replicas');
    await a.money.fund(key.depositMemo, toNano('1'));
    const made = await post(a.url, key, 'made-on-replica-a-01');
    expect(made.status).toBe(201);
    const again = await post(b.url, key, 'made-on-replica-a-01');
    expect(again).toMatchObject({ status: 200, body: { jobId: made.body['jobId'] } });

    const [x, y] = await Promise.all([post(a.url, key, 'at-once-on-two-replicas'), post(b.url, key, 'at-once-on-two-replicas')]);
    expect([x.status, y.status].sort()).toEqual([200, 201]);
    expect(x.body['jobId']).toBe(y.body['jobId']);
    const both = [made.body['jobId'], x.body['jobId']] as string[];
    expect(await reservations(a.store, key.id)).toEqual({ reserves: 2, billed: both.sort() });
  });

  it("holds each API key's keys apart under its cap, and forgets a key after its time, deleting its row", async () => {
    const schema = uniqueSchema('idem_cap');
    const clock = new FakeClock();
    const c = await coordinatorOn(schema, 'r1', { clock, limits: { idempotencyKeys: 2, idempotencyTtlS: 60 } });
    const [busy, other] = [await c.coordinator.createApiKey('busy'), await c.coordinator.createApiKey('other')];
    await c.money.fund(busy.depositMemo, toNano('1'));
    await c.money.fund(other.depositMemo, toNano('1'));
    const kept = await post(c.url, other, 'other-key-creation-1');
    expect(kept.status).toBe(201);

    clock.advance(10_000);
    expect((await post(c.url, busy, 'busy-key-creation-01')).status).toBe(201);
    expect((await post(c.url, busy, 'busy-key-creation-02')).status).toBe(201);
    // The busy key at its cap: refused, saying when to retry; nothing made, nothing pushed out.
    const refused = await post(c.url, busy, 'busy-key-creation-03');
    expect(refused).toMatchObject({
      status: 429,
      body: { error: { code: 'QUOTA', message: expect.stringMatching(/without an Idempotency-Key/) as unknown } },
    });
    expect(refused.retryAfter).toBe('60');
    expect(await post(c.url, other, 'other-key-creation-1')).toMatchObject({ status: 200, body: { jobId: kept.body['jobId'] } });
    expect((await reservations(c.store, busy.id)).reserves).toBe(2);

    // Past their time the creations are forgotten: the key makes a new job, and the busy key has room again.
    clock.advance(60_000);
    const anew = await post(c.url, other, 'other-key-creation-1');
    expect(anew.status).toBe(201);
    expect(anew.body['jobId']).not.toBe(kept.body['jobId']);
    expect((await post(c.url, busy, 'busy-key-creation-03')).status).toBe(201);
    clock.advance(60_000);
    expect((await post(c.url, busy, 'busy-key-creation-04')).status).toBe(201);
    const rows = await c.store.db.query<{ api_key_id: string; idem_key: string }>(
      'SELECT api_key_id, idem_key FROM idempotency_keys ORDER BY idem_key',
    );
    // Every row expired by now was deleted by the sweep; only the last creation's is left.
    expect(rows.rows).toEqual([{ api_key_id: busy.id, idem_key: 'busy-key-creation-04' }]);
    // Each API key's count of rows (its cap's measure) follows every insert and delete.
    const counts = await c.store.db.query<{ api_key_id: string; n: number }>(
      'SELECT api_key_id, n FROM idempotency_key_counts WHERE n > 0',
    );
    expect(counts.rows).toEqual([{ api_key_id: busy.id, n: 1 }]);
  });
});
