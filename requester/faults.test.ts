/**
 * The requester SDK across faults, on the real coordinator with its money side, real
 * Contributor loops and real sockets: a broken event stream is reopened where it was (each
 * delta once, one result), a job is created once the coordinator comes back (capped, jittered
 * backoff; a typed error when it does not), and a job the coordinator's restart ended is run
 * again and charged once.
 */
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { toNano } from '@ton/core';
import type { JobRequest } from '../protocol/jobs.ts';
import { type FaultContributor, type FaultNetwork, startFaultNetwork, startTcpRelay, type Relay } from '../testing/faults.ts';
import { RequesterClient } from './client.ts';
import { CoordinatorUnavailableError, RetriesExhaustedError } from './errors.ts';
import { backoffMs, DEFAULT_RETRY } from './retry.ts';

vi.setConfig({ testTimeout: 60_000 });

const chat: JobRequest = {
  kind: 'chat',
  model: 'tiny-decoder',
  messages: [{ role: 'user', content: 'hello there' }],
  maxTokens: 8,
  sampling: { temperature: 0, topP: 1, seed: 1 },
};

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// One network for the file (starting one takes a while on a loaded machine); each test has its own key.
let net: FaultNetwork;
let worker: FaultContributor;
beforeAll(async () => {
  net = await startFaultNetwork();
  worker = await net.contributor();
}, 180_000);
afterAll(() => net.close());

async function relayTo(port: number, listenOn?: number): Promise<Relay> {
  const relay = await startTcpRelay(port, listenOn);
  cleanups.push(() => relay.close());
  return relay;
}

/** A fetch that counts the requests to each `METHOD path-pattern`. */
function counting(): { fetch: typeof fetch; count: (method: string, path: RegExp) => number } {
  const seen: string[] = [];
  return {
    fetch: (input, init) => {
      seen.push(`${init?.method ?? 'GET'} ${new URL(input instanceof Request ? input.url : input.toString()).pathname}`);
      return fetch(input, init);
    },
    count: (method, path) => seen.filter((s) => s.startsWith(`${method} `) && path.test(s.slice(method.length + 1))).length,
  };
}

/** The key's jobs' billing rows, oldest first. */
async function billing(keyId: string): Promise<Array<{ job_id: string; state: string; charged: string | null }>> {
  const { rows } = await net.store.db.query<{ job_id: string; state: string; charged: string | null }>(
    'SELECT job_id, state, charged::text AS charged FROM job_billing WHERE api_key_id = $1 ORDER BY created_at',
    [keyId],
  );
  return rows;
}

describe('the requester SDK across faults', () => {
  it('reopens a broken event stream where it was: each delta once, one result, one charge', async () => {
    worker.runtime.chatDelayMs = 400;
    const relay = await relayTo(net.port);
    const key = await net.key();
    const calls = counting();
    const client = new RequesterClient({ coordinatorUrl: relay.url, apiKey: key.secret, fetch: calls.fetch, checkReplicas: false });
    const deltas: string[] = [];
    // The first delta arrives, then every connection to the coordinator breaks (a proxy restart).
    const result = await client.run(chat, {
      onDelta: (piece) => {
        deltas.push(piece.text);
        if (deltas.length === 1) relay.drop();
      },
    });
    expect(result).toMatchObject({ kind: 'chat', text: 'Hello!', attempts: 1 });
    expect(deltas).toEqual(['Hel', 'lo', '!']);
    expect(calls.count('GET', /\/events$/)).toBeGreaterThanOrEqual(2);
    expect(calls.count('POST', /^\/v1\/jobs$/)).toBe(1);
    await net.money.idle();
    expect(net.done.filter((d) => d.apiKeyId === key.id)).toHaveLength(1);
    expect((await billing(key.id)).map((r) => r.state)).toEqual(['charged']);
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true, problems: [] });
  });

  it('creates the job once the coordinator is reachable again, retrying with capped, jittered backoff', async () => {
    worker.runtime.chatDelayMs = 0;
    const key = await net.key();
    const port = await freePort();
    const calls = counting();
    const client = new RequesterClient({
      coordinatorUrl: `http://127.0.0.1:${port}`,
      apiKey: key.secret,
      fetch: calls.fetch,
      checkReplicas: false,
      retry: { baseMs: 50, capMs: 200, attempts: 100, forMs: 20_000 },
    });
    const running = client.run(chat);
    // Nothing listens yet: the SDK keeps trying (the envelope's model facts come first).
    await vi.waitFor(() => expect(calls.count('GET', /^\/v1\/models\//)).toBeGreaterThanOrEqual(3), { timeout: 20_000 });
    await relayTo(net.port, port);
    expect(await running).toMatchObject({ kind: 'chat', text: 'Hello!' });
    expect(calls.count('POST', /^\/v1\/jobs$/)).toBe(1);
    await net.money.idle();
    expect((await billing(key.id)).map((r) => r.state)).toEqual(['charged']);
  });

  it('gives up with a typed error after its tries or its time, holding nothing', async () => {
    const port = await freePort();
    const byTries = new RequesterClient({
      coordinatorUrl: `http://127.0.0.1:${port}`,
      apiKey: 'k',
      retry: { attempts: 4, baseMs: 10, capMs: 40, forMs: 30_000 },
    });
    const err = await byTries.run(chat).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetriesExhaustedError);
    expect(err).toBeInstanceOf(CoordinatorUnavailableError);
    expect(err).toMatchObject({ attempts: 4, status: 0 });
    expect((err as Error).message).toMatch(/creating the job: gave up after 4 tries/);

    const started = Date.now();
    const byTime = new RequesterClient({
      coordinatorUrl: `http://127.0.0.1:${port}`,
      apiKey: 'k',
      retry: { attempts: 1_000, baseMs: 100, capMs: 100, forMs: 500 },
    });
    const late = (await byTime.run(chat).catch((e: unknown) => e)) as RetriesExhaustedError;
    expect(late).toBeInstanceOf(RetriesExhaustedError);
    expect(late.attempts).toBeLessThan(1_000);
    expect(late.elapsedMs).toBeLessThanOrEqual(500);
    // Each wait is at most 100 ms, so it cannot have run far past its 500 ms (generous for a loaded machine).
    expect(Date.now() - started).toBeLessThan(10_000);

    // An abort while waiting (up to a minute here) ends at once, as an abort.
    const controller = new AbortController();
    const calls = counting();
    const slow = new RequesterClient({
      coordinatorUrl: `http://127.0.0.1:${port}`,
      apiKey: 'k',
      fetch: calls.fetch,
      retry: { baseMs: 60_000, capMs: 60_000, forMs: 600_000 },
    });
    const aborted = slow.run(chat, { signal: controller.signal }).catch((e: unknown) => e);
    await vi.waitFor(() => expect(calls.count('GET', /^\/v1\/models\//)).toBe(1));
    controller.abort();
    expect(await aborted).toMatchObject({ code: 'ABORTED' });
  });

  it('keeps every backoff within its capped, doubling ceiling', () => {
    const policy = { ...DEFAULT_RETRY, baseMs: 100, capMs: 1_000 };
    expect([1, 2, 3, 4, 5, 9].map((n) => backoffMs(n, policy, () => 0.999_999))).toEqual([99, 199, 399, 799, 999, 999]);
    expect(backoffMs(3, policy, () => 0)).toBe(0);
  });

  it('runs a job the coordinator restarted under it again, streams no text twice, and charges once', async () => {
    worker.runtime.chatDelayMs = 3_000;
    const relay = await relayTo(net.port);
    const key = await net.key(toNano('1'));
    const calls = counting();
    const client = new RequesterClient({
      coordinatorUrl: relay.url,
      apiKey: key.secret,
      fetch: calls.fetch,
      checkReplicas: false,
      retry: { baseMs: 50, capMs: 300, attempts: 50, forMs: 20_000 },
    });
    const deltas: string[] = [];
    // An object, not a `let`: TypeScript does not see the callback below assigning it.
    const crash: { done: Promise<void> | null } = { done: null };
    const result = await client.run(chat, {
      onDelta: (piece) => {
        deltas.push(piece.text);
        // Mid-job, the coordinator process dies and is started again.
        if (crash.done === null) {
          worker.runtime.chatDelayMs = 0;
          crash.done = net.crash(() => relay.drop());
        }
      },
    });
    await crash.done;
    expect(result).toMatchObject({ kind: 'chat', text: 'Hello!' });
    expect(deltas.join('')).toBe('Hello!');
    expect(calls.count('POST', /^\/v1\/jobs$/)).toBe(2);
    await net.money.idle();
    const rows = await billing(key.id);
    expect(rows.map((r) => r.state)).toEqual(['released', 'charged']);
    const first = await net.store.getJob(rows[0]?.job_id ?? '');
    expect(first).toMatchObject({ state: 'failed', error: expect.stringMatching(/^RESTARTED: /) });
    expect(net.done.filter((d) => d.apiKeyId === key.id).map((d) => d.jobId)).toEqual([rows[1]?.job_id]);
    // Charged once: what the re-run cost, nothing held.
    const balance = await net.ledger.payerBalances({ kind: 'requester', apiKeyId: key.id });
    expect(balance).toEqual({ available: toNano('1') - BigInt(rows[1]?.charged ?? 'x'), reserved: 0n });
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true, problems: [] });
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
