/**
 * Job creation under an idempotency key (docs/protocol.md, "Job creation"), on the real
 * coordinator with its money side: a repeat with the same key and body gets the same job and
 * reserves nothing again (exact nanoTON), over HTTP and the requester channel; another body under
 * the key is 409; a malformed key is 400. Then the memory's own bounds: time, count, oldest first.
 */
import { toNano } from '@ton/core';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type PaidNetwork, startPaidNetwork, type TestKey } from '../../testing/billing.ts';
import { FakeClock } from '../testing.ts';
import { IdempotentCreations } from './idempotency.ts';

vi.setConfig({ testTimeout: 60_000 });

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

describe('the idempotency memory', () => {
  const ok = (): boolean => true;
  it('forgets a creation after its time and the oldest past its count, and never remembers a refusal', async () => {
    const clock = new FakeClock(0);
    const memory = new IdempotentCreations<string>({ keys: 2, ttlMs: 1_000 }, clock);
    let made = 0;
    const create = (): Promise<string> => Promise.resolve(`job-${++made}`);
    expect(await memory.run('k', 'a', 1, ok, create)).toEqual({ kind: 'first', value: 'job-1' });
    expect(await memory.run('k', 'a', 1, ok, create)).toEqual({ kind: 'repeat', value: 'job-1' });
    expect(await memory.run('k', 'a', 2, ok, create)).toEqual({ kind: 'mismatch' });
    clock.advance(1_000);
    expect(await memory.run('k', 'a', 1, ok, create)).toEqual({ kind: 'first', value: 'job-2' });
    await memory.run('k', 'b', 1, ok, create);
    await memory.run('k', 'c', 1, ok, create);
    expect(memory.size).toBe(2);
    // `a` was the oldest: forgotten.
    expect(await memory.run('k', 'a', 1, ok, create)).toEqual({ kind: 'first', value: 'job-5' });
    expect(await memory.run('k', 'c', 1, ok, create)).toEqual({ kind: 'repeat', value: 'job-4' });
    // A refused creation made nothing: the next try runs again.
    expect(await memory.run('k', 'd', 1, () => false, create)).toEqual({ kind: 'first', value: 'job-6' });
    expect(await memory.run('k', 'd', 1, ok, create)).toEqual({ kind: 'first', value: 'job-7' });
  });
});
