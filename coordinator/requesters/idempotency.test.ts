/**
 * Job creation under an idempotency key (docs/protocol.md, "Job creation"), on the real
 * coordinator with its money side: a repeat with the same key and body gets the same job and
 * reserves nothing again (exact nanoTON), over HTTP and the requester channel; another body under
 * the key is 409; a malformed key is 400; the same on a coordinator on the memory store, with
 * its cap per API key (429). Then the keys' own rules, kept in memory and in the database: time,
 * a cap per API key, creations at once, and one cut off mid-way.
 */
import { randomUUID } from 'node:crypto';
import { toNano } from '@ton/core';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type PaidNetwork, startPaidNetwork, type TestKey } from '../../testing/billing.ts';
import { createCoordinator } from '../app.ts';
import { MemoryStore } from '../store/memory.ts';
import { FakeClock, TEST_ENVELOPE } from '../testing.ts';
import { IdempotentCreations } from './idempotency.ts';
import { type CreationRows, MemoryCreationRows, SqlCreationRows } from './idempotency-rows.ts';

vi.setConfig({ testTimeout: 60_000 });
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** tiny-decoder (prices.json): 40 · 1,000 + 16 · 3,000 nanoTON reserved for this envelope. */
const ENVELOPE = { inputTokens: 40, maxOutputTokens: 16 };
const RESERVED = 88_000n;
const BODY = { model: 'tiny-decoder', kind: 'chat', billing: ENVELOPE };

let net: PaidNetwork;
beforeAll(async () => {
  net = await startPaidNetwork('PGlite');
}, 180_000);
afterAll(() => net.close());

async function post(key: TestKey, body: unknown, idempotencyKey?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${net.url}/v1/jobs`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key.secret}`,
      'content-type': 'application/json',
      ...(idempotencyKey !== undefined && { 'idempotency-key': idempotencyKey }),
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function billingRows(keyId: string): Promise<string[]> {
  const { rows } = await net.store.db.query<{ job_id: string }>('SELECT job_id FROM job_billing WHERE api_key_id = $1', [keyId]);
  return rows.map((r) => r.job_id);
}

/** One message sent on a new requester channel, and the first answer that is not `ready`. */
async function overChannel(key: TestKey, message: unknown): Promise<Record<string, unknown>> {
  const ws = new WebSocket(`${net.url.replace(/^http/, 'ws')}/v1/requester`, { headers: { authorization: `Bearer ${key.secret}` } });
  try {
    return await new Promise((resolve, reject) => {
      ws.on('error', reject);
      ws.on('message', (data) => {
        const m = JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>;
        if (m['type'] === 'ready') ws.send(JSON.stringify(message));
        else resolve(m);
      });
    });
  } finally {
    ws.close();
  }
}

describe('job creation under an idempotency key', () => {
  it('answers a repeat with the same job, reserving once (exact nanoTON), and refuses the key for another body (409)', async () => {
    const key = await net.key(toNano('1'));
    const idem = 'same-creation-0123456789';
    const first = await post(key, BODY, idem);
    expect(first.status).toBe(201);
    const jobId = first.body['jobId'];
    expect(typeof jobId).toBe('string');
    const again = await post(key, BODY, idem);
    expect(again).toEqual({ status: 200, body: { jobId, assignment: null } });
    // Two at once with a new key: one job between them.
    const [a, b] = await Promise.all([post(key, BODY, 'at-once-0123456789ab'), post(key, BODY, 'at-once-0123456789ab')]);
    expect([a.status, b.status].sort()).toEqual([200, 201]);
    expect(a.body['jobId']).toBe(b.body['jobId']);
    expect(await net.balance(key)).toEqual({ available: toNano('1') - 2n * RESERVED, reserved: 2n * RESERVED });
    expect((await billingRows(key.id)).sort()).toEqual([jobId, a.body['jobId']].sort());

    // The same key for another job: refused, nothing reserved.
    const other = await post(key, { ...BODY, billing: { inputTokens: 41, maxOutputTokens: 16 } }, idem);
    expect(other.status).toBe(409);
    expect(other.body).toMatchObject({ error: { code: 'CONFLICT', message: expect.stringMatching(/idempotency key/) as unknown } });
    // Another API key's creation under the same key string is its own.
    const stranger = await net.key(toNano('1'));
    const theirs = await post(stranger, BODY, idem);
    expect(theirs.status).toBe(201);
    expect(theirs.body['jobId']).not.toBe(jobId);
    // Malformed keys are refused at the edge.
    for (const bad of ['short', 'x'.repeat(65), 'has space 0123456789', 'semi;colon-0123456789', 'dots.are.not.base64url']) {
      expect((await post(key, BODY, bad)).status).toBe(400);
    }
    expect(await net.balance(key)).toEqual({ available: toNano('1') - 2n * RESERVED, reserved: 2n * RESERVED });
    expect(await billingRows(key.id)).toHaveLength(2);
  });

  it('answers a repeat on another requester channel with the same job, reserving once', async () => {
    const key = await net.key(toNano('1'));
    const create = { v: 1, type: 'create', ref: 'r1', job: BODY, idempotencyKey: 'channel-creation-01234' };
    const first = await overChannel(key, create);
    expect(first).toMatchObject({ type: 'created', ref: 'r1' });
    const again = await overChannel(key, { ...create, ref: 'r2' });
    expect(again).toMatchObject({ type: 'created', ref: 'r2', jobId: first['jobId'] });
    // HTTP and the channel share the memory.
    expect((await post(key, BODY, 'channel-creation-01234')).body['jobId']).toBe(first['jobId']);
    const other = await overChannel(key, { ...create, ref: 'r3', job: { ...BODY, billing: { inputTokens: 41, maxOutputTokens: 16 } } });
    expect(other).toMatchObject({ type: 'error', status: 409, ref: 'r3', error: { code: 'CONFLICT' } });
    const bad = await overChannel(key, { ...create, ref: 'r4', idempotencyKey: 'short' });
    expect(bad).toMatchObject({ type: 'error', status: 400, ref: 'r4' });
    expect(await net.balance(key)).toEqual({ available: toNano('1') - RESERVED, reserved: RESERVED });
    expect(await billingRows(key.id)).toEqual([first['jobId']]);
  });
});

describe('job creation under an idempotency key on the memory store', () => {
  it('answers a repeat with the same job, refuses another body, and refuses past the cap per API key (429)', async () => {
    const clock = new FakeClock();
    const coordinator = createCoordinator({
      store: new MemoryStore(),
      clock,
      logger: quiet,
      limits: { idempotencyKeys: 1, idempotencyTtlS: 60 },
    });
    try {
      const [one, two] = [await coordinator.createApiKey('one'), await coordinator.createApiKey('two')];
      const create = async (
        secret: string,
        key: string,
        envelope = TEST_ENVELOPE,
      ): Promise<{ status: number; body: Record<string, unknown> }> => {
        const res = await coordinator.app.request('/v1/jobs', {
          method: 'POST',
          headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify({ model: 'm', kind: 'chat', billing: envelope }),
        });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const first = await create(one.secret, 'memory-store-key-01');
      expect(first.status).toBe(201);
      expect(await create(one.secret, 'memory-store-key-01')).toEqual({
        status: 200,
        body: { jobId: first.body['jobId'], assignment: null },
      });
      expect((await create(one.secret, 'memory-store-key-01', { ...TEST_ENVELOPE, maxOutputTokens: 1 })).status).toBe(409);
      expect(await create(one.secret, 'memory-store-key-02')).toMatchObject({ status: 429, body: { error: { code: 'QUOTA' } } });
      expect((await create(two.secret, 'memory-store-key-02')).status).toBe(201);
      clock.advance(60_000);
      expect((await create(one.secret, 'memory-store-key-02')).status).toBe(201);
    } finally {
      await coordinator.close();
    }
  });
});

describe.each(['memory', 'database'] as const)('idempotency keys kept in %s', (where) => {
  const rows = (): CreationRows => (where === 'memory' ? new MemoryCreationRows() : new SqlCreationRows(net.store.db));
  /** Rows of `apiKeyId` held (expired or not). */
  const held = async (r: CreationRows, apiKeyId: string): Promise<number> => {
    if (r instanceof MemoryCreationRows) return r.held(apiKeyId);
    const { rows: found } = await net.store.db.query<{ n: unknown }>('SELECT count(*) AS n FROM idempotency_keys WHERE api_key_id = $1', [
      apiKeyId,
    ]);
    return Number(found[0]?.n);
  };
  let made = 0;
  const newId = (): string => `job-${++made}`;
  const make = (id: string): Promise<string> => Promise.resolve(id);
  const apiKey = (): string => `key-${randomUUID()}`;

  it('answers a repeat until the key expires, refuses another body, and deletes expired rows', async () => {
    const clock = new FakeClock();
    const r = rows();
    const memory = new IdempotentCreations<string>(r, { keys: 10, ttlMs: 1_000 }, clock);
    const k = apiKey();
    const first = await memory.run(k, 'a', 1, newId, make);
    expect(first.kind).toBe('first');
    const jobId = first.kind === 'first' ? first.value : '';
    expect(await memory.run(k, 'a', 1, newId, make)).toEqual({ kind: 'repeat', jobId });
    expect(await memory.run(k, 'a', 2, newId, make)).toEqual({ kind: 'mismatch' });
    clock.advance(999);
    expect(await memory.run(k, 'a', 1, newId, make)).toEqual({ kind: 'repeat', jobId });
    clock.advance(1);
    const again = await memory.run(k, 'a', 1, newId, make);
    expect(again).toMatchObject({ kind: 'first' });
    expect(again).not.toEqual(first);
    await memory.run(k, 'b', 1, newId, make);
    expect(await held(r, k)).toBe(2);
    // Both expire; the sweep (once a minute of the clock) deletes them without any repeat.
    clock.advance(60_000);
    expect(await r.forgetExpired(clock.now())).toBeGreaterThanOrEqual(2);
    expect(await held(r, k)).toBe(0);
  });

  it("refuses a key's creations past its cap without touching another key's, and forgets a refused creation", async () => {
    const clock = new FakeClock();
    const r = rows();
    const memory = new IdempotentCreations<string>(r, { keys: 2, ttlMs: 1_000 }, clock);
    const [busy, other] = [apiKey(), apiKey()];
    const kept = await memory.run(other, 'x', 1, newId, make);
    clock.advance(100);
    expect((await memory.run(busy, 'a', 1, newId, make)).kind).toBe('first');
    expect((await memory.run(busy, 'b', 1, newId, make)).kind).toBe('first');
    for (let i = 0; i < 5; i++) expect(await memory.run(busy, `c${i}`, 1, newId, make)).toEqual({ kind: 'full', retryAfterMs: 1_000 });
    expect(await memory.run(other, 'x', 1, newId, make)).toEqual({ kind: 'repeat', jobId: kept.kind === 'first' ? kept.value : '' });
    // Once the busy key's rows expire (before any sweep) they make room again.
    clock.advance(1_000);
    expect((await memory.run(busy, 'c0', 1, newId, make)).kind).toBe('first');
    expect(await held(r, busy)).toBe(1);
    // A creation that throws (a refusal) made nothing: its repeat runs again.
    await expect(memory.run(other, 'y', 1, newId, () => Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    expect((await memory.run(other, 'y', 1, newId, make)).kind).toBe('first');
  });

  it('makes one job of two creations at once on two coordinators, and takes over one whose coordinator stopped mid-way', async () => {
    const clock = new FakeClock();
    const r = rows();
    const limits = { keys: 10, ttlMs: 60_000, pendingMs: 150 };
    const [a, b] = [new IdempotentCreations<string>(r, limits, clock), new IdempotentCreations<string>(r, limits, clock)];
    const k = apiKey();
    let letGo = (): void => undefined;
    const slow = (id: string): Promise<string> => new Promise((resolve) => (letGo = () => resolve(id)));
    const first = a.run(k, 'same', 1, newId, slow);
    await vi.waitFor(() => expect(held(r, k)).resolves.toBe(1));
    // B waits for A's creation: within `pendingMs` it answers busy (try again), not a second job.
    expect(await b.run(k, 'same', 1, newId, make)).toEqual({ kind: 'busy' });
    const repeat = b.run(k, 'same', 1, newId, make);
    letGo();
    const answer = await first;
    expect(answer.kind).toBe('first');
    expect(await repeat).toEqual({ kind: 'repeat', jobId: answer.kind === 'first' ? answer.value : '' });

    // A stopped mid-way (its creation never ends): past `pendingMs` B makes the job, and A's late one is undone.
    const stuck = a.run(k, 'cut-off', 1, newId, slow);
    await vi.waitFor(() => expect(held(r, k)).resolves.toBe(2));
    clock.advance(150);
    const taken = await b.run(k, 'cut-off', 1, newId, make);
    expect(taken.kind).toBe('first');
    letGo();
    expect((await stuck).kind).toBe('superseded');
    expect(await a.run(k, 'cut-off', 1, newId, make)).toEqual({ kind: 'repeat', jobId: taken.kind === 'first' ? taken.value : '' });
  });
});
