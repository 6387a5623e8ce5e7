/**
 * The requester channel (`/v1/requester`) on the real coordinator: the upgrade refused without
 * a valid key as the HTTP routes refuse it, typed errors for bad messages on a socket that
 * stays open, the same limits as HTTP, and a job run by the SDK over the channel, checked
 * against the float64 reference and billed to the nanoTON as the same job over HTTP.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { toNano } from '@ton/core';
import { RequesterClient } from '../../requester/client.ts';
import { QuotaExceededError } from '../../requester/errors.ts';
import { startPaidNetwork, type PaidNetwork } from '../../testing/billing.ts';
import { startCoordinator, TEST_ENVELOPE } from '../testing.ts';
import { type Cleanups, embedContributor, expectReferenceEmbeddings, RawChannel } from '../../testing/requesters.ts';

// A paid network (PGlite, the model host, the sandbox chain) on a busy 2-core machine can take minutes.
vi.setConfig({ testTimeout: 300_000 });

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function channel(url: string, auth: string): Promise<RawChannel> {
  const opened = await RawChannel.connect(url, auth, cleanups);
  if (!(opened instanceof RawChannel)) throw new Error(`channel refused: ${opened.status} ${opened.body}`);
  expect(await opened.next('ready')).toMatchObject({ maxMessageBytes: expect.any(Number) as number });
  return opened;
}

const create = (ref: string, model = 'm') => ({ v: 1, type: 'create', ref, job: { model, kind: 'chat', billing: TEST_ENVELOPE } });

describe('the requester channel', () => {
  it('refuses the upgrade without a valid API key, with the HTTP routes’ 401', async () => {
    const net = await startCoordinator();
    cleanups.push(() => net.close());
    const none = await RawChannel.connect(net.url, null, cleanups);
    const wrong = await RawChannel.connect(net.url, 'Bearer not-a-key', cleanups);
    const http = await fetch(`${net.url}/v1/jobs`, { method: 'POST', headers: { authorization: 'Bearer not-a-key' }, body: '{}' });
    expect(none).toMatchObject({ status: 401 });
    expect(wrong).toMatchObject({ status: 401, body: await http.text() });
    expect(http.status).toBe(401);
    expect(JSON.parse((wrong as { body: string }).body)).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    // A revoked key is refused too.
    const key = await net.coordinator.createApiKey('soon revoked');
    await net.store.revokeApiKey(key.id);
    expect(await RawChannel.connect(net.url, `Bearer ${key.secret}`, cleanups)).toMatchObject({ status: 401 });
  });

  it('answers bad messages with typed errors and keeps the socket; then serves a job on it', async () => {
    const net = await startCoordinator();
    cleanups.push(() => net.close());
    const ch = await channel(net.url, net.auth);
    ch.send('not json');
    expect(await ch.next('error')).toMatchObject({ status: 400, error: { code: 'BAD_MESSAGE', message: 'Message is not JSON.' } });
    ch.send({ v: 1, type: 'create', ref: 'r1', job: { model: 'm', kind: 'chat' } });
    expect(await ch.next('error')).toMatchObject({ status: 400, ref: 'r1', error: { code: 'BAD_MESSAGE' } });
    ch.send({ v: 2, type: 'create', ref: 'r2' });
    expect(await ch.next('error')).toMatchObject({ status: 400, ref: 'r2', error: { code: 'PROTOCOL_VERSION' } });
    ch.send({ v: 1, type: 'shout', ref: 'r3' });
    expect(await ch.next('error')).toMatchObject({ status: 400, ref: 'r3', error: { code: 'BAD_MESSAGE' } });
    ch.send({ ...create('r4'), job: { model: 'm\u0000', kind: 'chat', billing: TEST_ENVELOPE } });
    expect(await ch.next('error')).toMatchObject({ status: 400, error: { code: 'BAD_MESSAGE' } });
    ch.send({ v: 1, type: 'payload', jobId: 'no-such-job', attempt: 1, sealed: { ct: 'AAAA' } });
    expect(await ch.next('error')).toMatchObject({ status: 404, jobId: 'no-such-job', error: { code: 'NOT_FOUND' } });
    // An over-long create is refused by size, as the route's body limit does.
    ch.send({ ...create('r5'), pad: 'x'.repeat(20_000) });
    expect(await ch.next('error')).toMatchObject({ status: 413, ref: 'r5', error: { code: 'BAD_MESSAGE' } });
    // Text the schema lets through but nothing stores (NUL): an `error` frame that names the message, never typed as it.
    ch.send({ v: 1, type: 'report', ref: 'r6', jobId: 'job-x', report: { opened: false, reason: 'a\u0000b' } });
    expect(await ch.next('error')).toMatchObject({ type: 'error', status: 400, ref: 'r6', jobId: 'job-x', error: { code: 'BAD_MESSAGE' } });

    // The same socket still works: a job created, assigned, its payload delivered, its result streamed back.
    const worker = await net.worker({ slots: 1 });
    ch.send(create('ok'));
    const created = await ch.next('created');
    expect(created).toMatchObject({ ref: 'ok', assignment: { attempt: 1, contributorId: worker.contributorId } });
    ch.send({ v: 1, type: 'payload', jobId: created.jobId, attempt: 1, sealed: { enc: 'ZW5j', ct: 'c2VhbGVk' } });
    const frame = await worker.take('job');
    expect(frame).toMatchObject({ jobId: created.jobId, sealed: { enc: 'ZW5j', ct: 'c2VhbGVk' } });
    worker.send({ v: 1, type: 'chunk', jobId: created.jobId, leaseId: frame.leaseId, seq: 0, final: true, sealed: { ct: 'cmVzdWx0' } });
    const event = await ch.next('event');
    // The `assigned` event came in `created`: it is not sent twice.
    expect(event).toMatchObject({ jobId: created.jobId, event: { type: 'chunk', seq: 0, final: true, sealed: { ct: 'cmVzdWx0' } } });
    // A payload for the done job: the relay's refusal, with the route's status.
    ch.send({ v: 1, type: 'payload', jobId: created.jobId, attempt: 1, sealed: { ct: 'AAAA' } });
    expect(await ch.next('error')).toMatchObject({ status: 409, jobId: created.jobId, error: { code: 'CONFLICT' } });
  });

  it('keeps the HTTP limits: jobs in flight per key, channels per key, event streams per job', async () => {
    const net = await startCoordinator({ limits: { channelsPerKey: 2, subscribersPerJob: 1 } });
    cleanups.push(() => net.close());
    const key = await net.coordinator.createApiKey('one at a time', { maxInFlight: 1 });
    const auth = `Bearer ${key.secret}`;
    const ch = await channel(net.url, auth);
    ch.send(create('a'));
    const first = await ch.next('created');
    ch.send(create('b'));
    expect(await ch.next('error')).toMatchObject({
      status: 429,
      ref: 'b',
      error: { code: 'QUOTA' },
      retryAfterS: expect.any(Number) as number,
    });
    // Over HTTP the same key gets the same refusal.
    const http = await fetch(`${net.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify(create('c').job),
    });
    expect(http.status).toBe(429);
    // The job's one event-stream slot is this socket's: a second follower, on HTTP or another socket, is refused.
    expect((await fetch(`${net.url}/v1/jobs/${first.jobId}/events`, { headers: { authorization: auth } })).status).toBe(429);
    const second = await channel(net.url, auth);
    second.send({ v: 1, type: 'follow', jobId: first.jobId });
    expect(await second.next('error')).toMatchObject({ status: 429, jobId: first.jobId, error: { code: 'QUOTA' } });
    // A third channel for the key is refused at the upgrade.
    expect(await RawChannel.connect(net.url, auth, cleanups)).toMatchObject({ status: 429 });
    // Closing a socket gives its slots back.
    second.ws.close();
    const third = await vi.waitFor(
      async () => {
        const opened = await RawChannel.connect(net.url, auth, cleanups);
        expect(opened).toBeInstanceOf(RawChannel);
        return opened as RawChannel;
      },
      { timeout: 10_000 },
    );
    third.ws.close();
    // Cancelled on the channel: answered, and the key may create again.
    ch.send({ v: 1, type: 'cancel', jobId: first.jobId });
    expect(await ch.next('cancelled')).toMatchObject({ jobId: first.jobId, state: 'cancelled' });
    ch.send(create('d'));
    expect(await ch.next('created')).toMatchObject({ ref: 'd' });
    // The SDK turns the channel's 429 into the same typed error as over HTTP (another key, its one job in flight over HTTP).
    const busy = await net.coordinator.createApiKey('busy', { maxInFlight: 1 });
    const held = await fetch(`${net.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${busy.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify(create('e').job),
    });
    expect(held.status).toBe(201);
    const client = new RequesterClient({ coordinatorUrl: net.url, apiKey: busy.secret, checkReplicas: false, channel: true });
    cleanups.push(() => client.close());
    expect(await client.transport()).toBe('channel');
    await expect(client.run({ kind: 'embed', model: 'm', inputs: ['x'] })).rejects.toBeInstanceOf(QuotaExceededError);
  });
});

describe('the SDK over the requester channel', () => {
  it('runs a tiny-embed job to the reference result, billed and reported exactly as over HTTP', async () => {
    const net: PaidNetwork = await startPaidNetwork('PGlite', { receipts: true });
    cleanups.push(() => net.close());
    await embedContributor(net, cleanups);
    const overChannel = await net.key(toNano('1'));
    const overHttp = await net.key(toNano('1'));
    const channelClient = new RequesterClient({ coordinatorUrl: net.url, apiKey: overChannel.secret, checkReplicas: false, channel: true });
    const httpClient = new RequesterClient({ coordinatorUrl: net.url, apiKey: overHttp.secret, checkReplicas: false, channel: false });
    cleanups.push(() => channelClient.close());
    expect(await channelClient.transport()).toBe('channel');
    expect(await httpClient.transport()).toBe('http');

    const inputs = ['the channel carries sealed jobs', 'one socket, many jobs'];
    const before = await requestCounts(net.url);
    const viaChannel = await Promise.all([
      channelClient.run({ kind: 'embed', model: 'tiny-embed', inputs }),
      channelClient.run({ kind: 'embed', model: 'tiny-embed', inputs }),
    ]);
    await channelClient.idle();
    const afterChannel = await requestCounts(net.url);
    const viaHttp = await Promise.all([
      httpClient.run({ kind: 'embed', model: 'tiny-embed', inputs }),
      httpClient.run({ kind: 'embed', model: 'tiny-embed', inputs }),
    ]);
    await httpClient.idle();
    const afterHttp = await requestCounts(net.url);

    for (const result of [...viaChannel, ...viaHttp]) expectReferenceEmbeddings(result, inputs);
    // No job request went over HTTP for the channel's jobs (the model facts are read once, over HTTP, by both).
    expect(afterChannel.jobs - before.jobs).toBe(0);
    expect(afterHttp.jobs - afterChannel.jobs).toBe(2 * 3 + 2); // per job: POST, GET events, PUT payload; then the reports

    await net.settled();
    // The same jobs cost the same to the nanoTON, reserved nothing left over, and each was reported once.
    const a = await net.balance(overChannel);
    const b = await net.balance(overHttp);
    expect(a).toEqual(b);
    expect(a.reserved).toBe(0n);
    expect(a.available).toBeLessThan(toNano('1'));
    const count = async (sql: string, keyId: string): Promise<number> =>
      (await net.store.db.query<{ n: number }>(sql, [keyId])).rows[0]?.n ?? -1;
    const charged = `SELECT count(*)::int AS n FROM job_billing WHERE api_key_id = $1 AND state = 'charged'`;
    const reported = `SELECT count(*)::int AS n FROM verification_reports WHERE api_key_id = $1`;
    for (const key of [overChannel, overHttp]) {
      expect(await count(charged, key.id)).toBe(2);
      await vi.waitFor(async () => expect(await count(reported, key.id)).toBe(2), { timeout: 20_000 });
    }
  });
});

/** Requests the coordinator counted on its job routes (`/metrics`). */
async function requestCounts(url: string): Promise<{ jobs: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let jobs = 0;
  for (const m of text.matchAll(/^spinneret_http_requests_total\{([^}]*)\} (\d+)$/gm)) {
    if (/route="\/v1\/jobs[^"]*"/.test(m[1] ?? '')) jobs += Number(m[2]);
  }
  return { jobs };
}
