/**
 * The requester SDK across faults, on the real coordinator with its money side, real
 * Contributor loops and real sockets: a broken event stream is reopened where it was (each
 * delta once, one result), a job is created once the coordinator comes back (capped, jittered
 * backoff; a typed error when it does not), and a job the coordinator's restart or graceful
 * shutdown ended (`RESTARTED`, `DRAINING`) is run again and charged once. Each fault runs over
 * HTTP and over the requester channel (`channel: true`). A coordinator that stays away:
 * retry.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { toNano } from '@ton/core';
import {
  type FaultContributor,
  type FaultNetwork,
  startFaultNetwork,
  startTcpRelay,
  type Relay,
  TINY_CHAT as chat,
} from '../testing/faults.ts';
import { countingFetch, freePort } from '../testing/http.ts';
import { RequesterClient } from './client.ts';
import { startGateway } from './gateway.ts';
import { CoordinatorUnavailableError, JobInterruptedError } from './errors.ts';

vi.setConfig({ testTimeout: 60_000 });

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// One network for the file (starting one takes a while on a loaded machine); each test has its own key.
let net: FaultNetwork;
let worker: FaultContributor;
beforeAll(async () => {
  // Contributors told to come back 200 ms after a drain (default 5 s): the graceful restarts below wait for them.
  net = await startFaultNetwork({ reconnectAfterMs: 200 });
  worker = await net.contributor();
}, 180_000);
afterAll(() => net.close());

async function relayTo(port: number, listenOn?: number): Promise<Relay> {
  const relay = await startTcpRelay(port, listenOn);
  cleanups.push(() => relay.close());
  return relay;
}

/** The key's jobs' billing rows, oldest first. */
async function billing(keyId: string): Promise<Array<{ job_id: string; state: string; charged: string | null }>> {
  const { rows } = await net.store.db.query<{ job_id: string; state: string; charged: string | null }>(
    'SELECT job_id, state, charged::text AS charged FROM job_billing WHERE api_key_id = $1 ORDER BY created_at',
    [keyId],
  );
  return rows;
}

/** A client of `url` over HTTP or the requester channel, its requests counted. */
function client(
  url: string,
  secret: string,
  channel: boolean,
  calls: ReturnType<typeof countingFetch>,
  retry: ConstructorParameters<typeof RequesterClient>[0]['retry'] = {},
): RequesterClient {
  const c = new RequesterClient({ coordinatorUrl: url, apiKey: secret, fetch: calls.fetch, checkReplicas: false, channel, retry });
  cleanups.push(async () => c.close());
  return c;
}

/** What a key holds after its delivered jobs were charged: its funds less exactly their charges, nothing reserved. */
async function expectChargedOnce(keyId: string, funds: bigint): Promise<void> {
  const rows = await billing(keyId);
  const charged = rows.filter((r) => r.state === 'charged');
  expect(charged).toHaveLength(1);
  expect(net.done.filter((d) => d.apiKeyId === keyId).map((d) => d.jobId)).toEqual(charged.map((r) => r.job_id));
  const cost = BigInt(charged[0]?.charged ?? 'x');
  expect(cost).toBeGreaterThan(0n);
  expect(await net.ledger.payerBalances({ kind: 'requester', apiKeyId: keyId })).toEqual({ available: funds - cost, reserved: 0n });
  expect(await net.ledger.checkBooks()).toMatchObject({ ok: true, problems: [] });
}

describe.each([
  { over: 'HTTP', channel: false },
  { over: 'the requester channel', channel: true },
])('the requester SDK across faults, over $over', ({ channel }) => {
  it('reopens a broken event stream where it was: each delta once, one result, one charge', async () => {
    worker.runtime.chatDelayMs = 400;
    const relay = await relayTo(net.port);
    const key = await net.key(toNano('1'));
    const calls = countingFetch();
    const sdk = client(relay.url, key.secret, channel, calls);
    const deltas: string[] = [];
    // The first delta arrives, then every connection to the coordinator breaks (a proxy restart).
    const result = await sdk.run(chat, {
      onDelta: (piece) => {
        deltas.push(piece.text);
        if (deltas.length === 1) relay.drop();
      },
    });
    expect(result).toMatchObject({ kind: 'chat', text: 'Hello!', attempts: 1 });
    expect(deltas).toEqual(['Hel', 'lo', '!']);
    if (channel) {
      // Created on the channel and followed again on a new one: no HTTP job request at all.
      expect(calls.count('POST', /^\/v1\/jobs$/)).toBe(0);
      expect(calls.count('GET', /\/events$/)).toBe(0);
      expect(await sdk.transport()).toBe('channel');
      expect(relay.requests.filter((r) => r.startsWith('GET /v1/requester ')).length).toBeGreaterThanOrEqual(2);
    } else {
      expect(calls.count('GET', /\/events$/)).toBeGreaterThanOrEqual(2);
      expect(calls.count('POST', /^\/v1\/jobs$/)).toBe(1);
    }
    await net.money.idle();
    expect((await billing(key.id)).map((r) => r.state)).toEqual(['charged']);
    await expectChargedOnce(key.id, toNano('1'));
  });

  it('creates the job once the coordinator is reachable again, retrying with capped, jittered backoff', async () => {
    worker.runtime.chatDelayMs = 0;
    const key = await net.key(toNano('1'));
    const port = await freePort();
    const calls = countingFetch();
    const sdk = client(`http://127.0.0.1:${port}`, key.secret, channel, calls, { baseMs: 50, capMs: 200, attempts: 100, forMs: 20_000 });
    const running = sdk.run(chat);
    // Nothing listens yet: the SDK keeps trying (the envelope's model facts come first).
    await vi.waitFor(() => expect(calls.count('GET', /^\/v1\/models\//)).toBeGreaterThanOrEqual(3), { timeout: 20_000 });
    await relayTo(net.port, port);
    expect(await running).toMatchObject({ kind: 'chat', text: 'Hello!' });
    if (channel) {
      // The channel is tried at each try, so the client is back on it as soon as the coordinator is (not on HTTP for a
      // minute); the try that met the coordinator coming up may have used HTTP.
      expect(calls.count('POST', /^\/v1\/jobs$/)).toBeLessThanOrEqual(1);
      expect(await sdk.transport()).toBe('channel');
    } else expect(calls.count('POST', /^\/v1\/jobs$/)).toBe(1);
    await net.money.idle();
    expect((await billing(key.id)).map((r) => r.state)).toEqual(['charged']);
    await expectChargedOnce(key.id, toNano('1'));
  });

  it('repeats a creation cut off after it was sent under the same idempotency key: one job, charged once, answered once', async () => {
    worker.runtime.chatDelayMs = 0;
    const relay = await relayTo(net.port);
    const key = await net.key(toNano('1'));
    const calls = countingFetch();
    const sdk = client(relay.url, key.secret, channel, calls, { baseMs: 50, capMs: 200, attempts: 20, forMs: 20_000 });
    // The coordinator creates the job and answers; the answer never reaches the SDK (a proxy reset after the request).
    const dropped = relay.dropResponse(channel ? /"type":"created"/ : /^HTTP\/1\.1 201 /);
    const deltas: string[] = [];
    const result = await sdk.run(chat, { onDelta: (piece) => void deltas.push(piece.text) });
    await dropped;
    expect(result).toMatchObject({ kind: 'chat', text: 'Hello!', attempts: 1 });
    expect(deltas).toEqual(['Hel', 'lo', '!']);
    if (channel) {
      expect(calls.count('POST', /^\/v1\/jobs$/)).toBe(0);
      expect(relay.requests.filter((r) => r.startsWith('GET /v1/requester ')).length).toBeGreaterThanOrEqual(2);
    } else {
      // Two tries with one key: the first one's answer was cut off, the repeat was answered 200 with the same job.
      expect(calls.count('POST', /^\/v1\/jobs$/)).toBe(2);
      expect(calls.statuses('POST', /^\/v1\/jobs$/)).toEqual([200]);
      const keys = calls.keys('POST', /^\/v1\/jobs$/);
      expect(keys[0]).toMatch(/^[A-Za-z0-9_-]{16,64}$/);
      expect(keys[1]).toBe(keys[0]);
    }
    await net.money.idle();
    // One job was created (one reservation), answered once, and charged once.
    expect((await billing(key.id)).map((r) => r.state)).toEqual(['charged']);
    await expectChargedOnce(key.id, toNano('1'));
  });

  it('runs a job the coordinator restarted under it again, streams no text twice, and charges once', async () => {
    worker.runtime.chatDelayMs = 3_000;
    const relay = await relayTo(net.port);
    const key = await net.key(toNano('1'));
    const calls = countingFetch();
    const sdk = client(relay.url, key.secret, channel, calls, { baseMs: 50, capMs: 300, attempts: 50, forMs: 20_000 });
    const deltas: string[] = [];
    // An object, not a `let`: TypeScript does not see the callback below assigning it.
    const crash: { done: Promise<void> | null } = { done: null };
    const result = await sdk.run(chat, {
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
    if (!channel) expect(calls.count('POST', /^\/v1\/jobs$/)).toBe(2);
    await net.money.idle();
    const rows = await billing(key.id);
    expect(rows.map((r) => r.state)).toEqual(['released', 'charged']);
    const first = await net.store.getJob(rows[0]?.job_id ?? '');
    expect(first).toMatchObject({ state: 'failed', error: expect.stringMatching(/^RESTARTED: /) });
    // Charged once: what the re-run cost, nothing held.
    await expectChargedOnce(key.id, toNano('1'));
  });

  it('runs a job a graceful shutdown ended (DRAINING) again, and retries a creation the draining coordinator refused', async () => {
    // Longer than the drain: the job is still running when the coordinator stops waiting for it.
    worker.runtime.chatDelayMs = 4_000;
    const [keyA, keyB] = [await net.key(toNano('1')), await net.key(toNano('1'))];
    const [callsA, callsB] = [countingFetch(), countingFetch()];
    const retry = { baseMs: 50, capMs: 300, attempts: 200, forMs: 40_000 };
    const a = client(net.url, keyA.secret, channel, callsA, retry);
    const b = client(net.url, keyB.secret, channel, callsB, retry);
    const deltas: string[] = [];
    const restart: { done: Promise<void> | null; drainingSince: number; back: number } = { done: null, drainingSince: 0, back: 0 };
    const later: { run: Promise<unknown> | null } = { run: null };
    const result = await a.run(chat, {
      onDelta: (piece) => {
        deltas.push(piece.text);
        if (restart.done !== null) return;
        // SIGTERM: the coordinator drains for 1.5 s, then fails what still runs and starts again.
        restart.done = net
          .restart(1_500, async () => {
            restart.drainingSince = Date.now();
            // By now the job sleeps its 4 s; the re-runs after the restart need no delay.
            await new Promise((resolve) => setTimeout(resolve, 200));
            worker.runtime.chatDelayMs = 0;
            // Another requester submits while it drains: refused DRAINING (503), tried again after the restart.
            later.run = b.run(chat);
            // Awaited below; a failure before then is not an unhandled rejection.
            later.run.catch(() => undefined);
            if (channel) await new Promise((resolve) => setTimeout(resolve, 500));
            else await vi.waitFor(() => expect(callsB.statuses('POST', /^\/v1\/jobs$/)).toContain(503), { timeout: 1_200, interval: 20 });
          })
          .then(() => void (restart.back = Date.now()));
      },
    });
    await restart.done;
    expect(result).toMatchObject({ kind: 'chat', text: 'Hello!' });
    expect(deltas).toEqual(['Hel', 'lo', '!']);
    expect(await later.run).toMatchObject({ kind: 'chat', text: 'Hello!' });
    await net.money.idle();

    const rowsA = await billing(keyA.id);
    expect(rowsA.map((r) => r.state)).toEqual(['released', 'charged']);
    expect(await net.store.getJob(rowsA[0]?.job_id ?? '')).toMatchObject({ state: 'failed', error: expect.stringMatching(/^DRAINING: /) });
    // The re-run's creation may meet the closing coordinator (503) first; two jobs were created.
    if (!channel) expect(callsA.statuses('POST', /^\/v1\/jobs$/).filter((s) => s === 201)).toHaveLength(2);
    await expectChargedOnce(keyA.id, toNano('1'));

    // B asked while the coordinator drained; its one job was created by the coordinator that came back.
    const rowsB = await billing(keyB.id);
    expect(rowsB.map((r) => r.state)).toEqual(['charged']);
    expect((await net.store.getJob(rowsB[0]?.job_id ?? ''))?.createdAt).toBeGreaterThan(restart.drainingSince);
    if (!channel) expect(callsB.count('POST', /^\/v1\/jobs$/)).toBeGreaterThanOrEqual(2);
    await expectChargedOnce(keyB.id, toNano('1'));
  });

  it('ends with a typed error, nothing charged, once a job was interrupted more than maxReruns times', async () => {
    worker.runtime.chatDelayMs = 4_000;
    const key = await net.key(toNano('1'));
    const sdk = new RequesterClient({ coordinatorUrl: net.url, apiKey: key.secret, checkReplicas: false, channel, maxReruns: 0 });
    cleanups.push(async () => sdk.close());
    const restart: { done: Promise<void> | null } = { done: null };
    const err = await sdk
      .run(chat, {
        onDelta: () => {
          restart.done ??= net.restart(300, async () => {
            // By now the job sleeps its 4 s: the drain ends it.
            await new Promise((resolve) => setTimeout(resolve, 200));
            worker.runtime.chatDelayMs = 0;
          });
        },
      })
      .catch((e: unknown) => e);
    await restart.done;
    expect(err).toBeInstanceOf(JobInterruptedError);
    expect(err).toBeInstanceOf(CoordinatorUnavailableError);
    expect(err).toMatchObject({ wireCode: 'DRAINING', reruns: 0, status: 503 });
    await net.money.idle();
    expect((await billing(key.id)).map((r) => r.state)).toEqual(['released']);
    expect(await net.ledger.payerBalances({ kind: 'requester', apiKeyId: key.id })).toEqual({ available: toNano('1'), reserved: 0n });
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true, problems: [] });
  });
});

describe('the OpenAI gateway across faults', () => {
  it('runs its requests on the requester channel by default and survives a coordinator restart mid-request, charging once', async () => {
    worker.runtime.chatDelayMs = 0;
    // The gateway lists what connected contributors serve: the worker is back from the last restart first.
    await vi.waitFor(() => expect(worker.contributor.status().state).toBe('connected'), { timeout: 20_000, interval: 50 });
    const relay = await relayTo(net.port);
    const key = await net.key(toNano('1'));
    const gateway = await startGateway({
      port: 0,
      coordinatorUrl: relay.url,
      apiKey: key.secret,
      log: { error: (fields, message) => console.error(message, fields) },
    });
    cleanups.push(() => gateway.close());
    const complete = () =>
      fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'tiny-decoder',
          messages: [{ role: 'user', content: 'hello there' }],
          max_tokens: 8,
          temperature: 0,
        }),
      });
    const answer = async (res: Response) => {
      expect(res.status).toBe(200);
      return ((await res.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content;
    };
    expect(await answer(await complete())).toBe('Hello!');
    // On the channel: the job was never created over HTTP.
    expect(relay.requests).toContain('GET /v1/requester HTTP/1.1');
    expect(relay.requests.filter((r) => r.startsWith('POST /v1/jobs '))).toEqual([]);

    // Mid-request the coordinator process dies and starts again: the answer still comes, once.
    worker.runtime.chatDelayMs = 3_000;
    const pending = complete();
    await vi.waitFor(async () => expect(await billing(key.id)).toHaveLength(2), { timeout: 20_000, interval: 50 });
    await vi.waitFor(() => expect(worker.runtime.running).toBe(1), { timeout: 20_000, interval: 20 });
    worker.runtime.chatDelayMs = 0;
    await net.crash(() => relay.drop());
    expect(await answer(await pending)).toBe('Hello!');
    await net.money.idle();
    const rows = await billing(key.id);
    expect(rows.map((r) => r.state)).toEqual(['charged', 'released', 'charged']);
    expect(await net.store.getJob(rows[1]?.job_id ?? '')).toMatchObject({ state: 'failed', error: expect.stringMatching(/^RESTARTED: /) });
    const cost = rows.filter((r) => r.state === 'charged').reduce((n, r) => n + BigInt(r.charged ?? 'x'), 0n);
    expect(net.done.filter((d) => d.apiKeyId === key.id)).toHaveLength(2);
    expect(await net.ledger.payerBalances({ kind: 'requester', apiKeyId: key.id })).toEqual({
      available: toNano('1') - cost,
      reserved: 0n,
    });
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true, problems: [] });
  });
});
