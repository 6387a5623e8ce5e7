/**
 * Any replica answers (no sticky load balancing): two coordinators on one PostgreSQL schema and
 * NATS, as replicas run them. A job created on A has its payload, its event stream, its report,
 * its cancel sent to B, which passes them to A: answered once, the result equal to the reference.
 * When A stops, B's stream of A's job ends with `RESTARTED`. A `ton_proof` payload issued by A
 * is checked on B, single use on both, and the per-address limit counts both replicas' payloads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { referenceEmbed } from '../../modelhost/reference.ts';
import { RequesterClient } from '../../requester/client.ts';
import type { Contributor } from '../../worker/network/contributor.ts';
import { type Coordinator, createCoordinator } from '../app.ts';
import { systemClock } from '../clock.ts';
import type { SqlStore } from '../store/sql-store.ts';
import { uniqueSchema } from '../store/testing.ts';
import { HeldRuntime, NATS_URL, quiet, ReplicaKit, startContributor, testVerification, until } from '../../testing/cluster.ts';
import { EmbedRuntime } from '../../testing/verification.ts';
import { proofBody, testWallet } from '../wallets/test-wallet.ts';
import { type Bus, connectBus } from './bus.ts';
import { JobForwarding } from './forwarding.ts';
import { recordedOwner } from './replica.ts';
import { SharedProofPayloads } from './proof-payloads.ts';
import { Routing } from './routing.ts';
import { SharedWalletSessions } from './wallet-sessions.ts';

const schema = uniqueSchema('forward');
const kit = new ReplicaKit();
afterAll(() => kit.dispose());

interface Replica {
  id: string;
  store: SqlStore;
  coordinator: Coordinator;
  routing: Routing;
  forwarding: JobForwarding;
  bus: Bus;
  url: string;
  /** Stops this replica as a crash would look to the others: no goodbye, its bus and server gone. */
  kill(): Promise<void>;
}

const replica = async (id: string, proofLimit = 32): Promise<Replica> => {
  const store = await kit.store(schema, id);
  const bus = await connectBus(NATS_URL, `test-${id}`, () => undefined);
  const prefix = `spinneret.${schema}`;
  const routing = new Routing({ replicaId: id, bus, prefix, clock: systemClock, logger: quiet, heartbeatMs: 100, deadAfterMs: 1_000 });
  const forwarding = new JobForwarding({
    replicaId: id,
    bus,
    prefix,
    logger: quiet,
    peers: () => routing.peers,
    recordedOwner: (jobId) => recordedOwner(store.db, jobId),
  });
  routing.onPeerLost((peer) => forwarding.lost(peer));
  const verification = testVerification(store, { canaryRate: 0, replicationRate: 0, seed: 1 });
  await verification.start();
  const coordinator = createCoordinator({
    store,
    logger: quiet,
    recoverUnfinished: false,
    verification,
    cluster: (relay, find) => routing.attach(relay, find),
    forwarding,
    walletSessions: new SharedWalletSessions({ db: store.db, clock: systemClock, log: () => undefined }),
    proofPayloads: new SharedProofPayloads({ db: store.db, clock: systemClock, perIp: proofLimit }),
  });
  const server = await coordinator.listen();
  routing.start();
  forwarding.start();
  let stopped = false;
  const kill = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    routing.stop();
    await bus.close();
    await coordinator.close();
    await server.close();
    await verification.idle();
  };
  kit.cleanup.push(kill);
  return { id, store, coordinator, routing, forwarding, bus, url: server.url, kill };
};

const contributor = (url: string, runtime: EmbedRuntime): Promise<Contributor> => startContributor(kit, url, runtime);

/** A fetch that creates jobs on `create` and sends every other call to `rest`, as a round-robin balancer might. */
const split =
  (create: string, rest: string, calls: string[]): typeof fetch =>
  (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
    const to = method === 'POST' && url.pathname === '/v1/jobs' ? create : rest;
    calls.push(`${method} ${url.pathname.replace(/\/jobs\/[^/]+/, '/jobs/:id')} → ${to === create ? 'A' : 'B'}`);
    return fetch(to + url.pathname + url.search, init);
  };

const lines = (text: string): { type: string; final?: boolean; error?: { code: string } }[] =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { type: string; final?: boolean; error?: { code: string } });

let a: Replica;
let b: Replica;
beforeAll(async () => {
  a = await replica('a', 3);
  b = await replica('b', 3);
  await until('the replicas to hear each other', () => (a.routing.peers.includes('b') && b.routing.peers.includes('a') ? true : undefined));
}, 60_000);

describe('job calls on any replica', () => {
  it('runs a job created on A with its payload, events and report sent to B', { timeout: 120_000 }, async () => {
    const runtime = new EmbedRuntime();
    await contributor(a.url, runtime);
    const key = await a.coordinator.createApiKey('test');
    const calls: string[] = [];
    const requester = new RequesterClient({
      coordinatorUrl: a.url,
      apiKey: key.secret,
      checkReplicas: false,
      fetch: split(a.url, b.url, calls),
    });
    const text = 'a job whose calls land on the other replica';
    const result = await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] });
    await requester.idle();
    if (result.kind !== 'embed') throw new Error(`expected an embedding, got ${result.kind}`);
    const expected = referenceEmbed([text])[0] ?? [];
    expect(result.embeddings[0]?.length).toBe(expected.length);
    result.embeddings[0]?.forEach((x, i) => expect(Math.abs(x - (expected[i] ?? NaN))).toBeLessThan(1e-6));
    expect(result.attempts).toBe(1);
    expect(runtime.jobs).toBe(1);
    // (The SDK asks for the model's facts first, and opens the events while it sends the payload.)
    expect(calls.filter((c) => c.includes('/jobs')).sort()).toEqual([
      'GET /v1/jobs/:id/events → B',
      'POST /v1/jobs → A',
      'POST /v1/jobs/:id/report → B',
      'PUT /v1/jobs/:id/payload → B',
    ]);
    // Each was answered by A, once: A ran one job, B none; B passed the three calls on.
    expect(a.coordinator.stats().jobs.done).toBe(1);
    expect(b.coordinator.stats().jobs.done).toBe(0);
    expect(b.forwarding.counts.forwarded).toBe(3);
    expect(a.forwarding.counts.served).toBe(3);
    const jobId = (await a.store.db.query<{ id: string; replica_id: string }>('SELECT id, replica_id FROM jobs')).rows[0];
    expect(jobId?.replica_id).toBe('a');
    const id = jobId?.id ?? '';

    // The report went through B into A's record, once: a second one is refused on either replica.
    const reports = await a.store.db.query<{ outcome: string }>('SELECT outcome FROM verification_reports WHERE job_id = $1', [id]);
    expect(reports.rows.map((r) => r.outcome)).toEqual(['ok']);
    for (const r of [a, b]) {
      const again = await fetch(`${r.url}/v1/jobs/${id}/report`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ opened: true }),
      });
      expect(again.status).toBe(409);
    }

    // The event stream read through B is A's stream: the same lines, one final chunk.
    const read = async (url: string): Promise<string> =>
      (await fetch(`${url}/v1/jobs/${id}/events`, { headers: { authorization: `Bearer ${key.secret}` } })).text();
    const [viaA, viaB] = [await read(a.url), await read(b.url)];
    expect(viaB).toBe(viaA);
    expect(lines(viaB).filter((e) => e.type === 'chunk' && e.final === true)).toHaveLength(1);
    expect(lines(viaB).filter((e) => e.type === 'failed')).toHaveLength(0);
    // Another key sees nothing of it through either replica.
    const other = await a.coordinator.createApiKey('other');
    for (const r of [a, b]) {
      const res = await fetch(`${r.url}/v1/jobs/${id}/events`, { headers: { authorization: `Bearer ${other.secret}` } });
      expect(res.status).toBe(404);
    }
  });

  it('cancels through B, and ends B’s stream with RESTARTED when A stops', { timeout: 120_000 }, async () => {
    const held = new HeldRuntime();
    await contributor(a.url, held);
    const key = await a.coordinator.createApiKey('held');
    const auth = { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' };
    const create = async (): Promise<string> => {
      const res = await fetch(`${a.url}/v1/jobs`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ model: 'tiny-embed', kind: 'embed', billing: { inputTokens: 8, maxOutputTokens: 0 } }),
      });
      expect(res.status).toBe(201);
      return ((await res.json()) as { jobId: string }).jobId;
    };

    const first = await create();
    const stream = await fetch(`${b.url}/v1/jobs/${first}/events`, { headers: auth });
    expect(stream.status).toBe(200);
    const cancelled = await fetch(`${b.url}/v1/jobs/${first}`, { method: 'DELETE', headers: auth });
    expect(cancelled.status).toBe(200);
    expect(await cancelled.json()).toEqual({ jobId: first, state: 'cancelled' });
    expect(lines(await stream.text()).at(-1)).toMatchObject({ type: 'failed', error: { code: 'ABORTED' } });

    // A job A holds while A stops: B's reader is told RESTARTED instead of waiting for ever.
    const second = await create();
    const open = await fetch(`${b.url}/v1/jobs/${second}/events`, { headers: auth });
    expect(open.status).toBe(200);
    const body = open.text();
    // A payload larger than NATS takes (this server's max_payload) is refused on B, typed, before it is sent.
    const large = JSON.stringify({ attempt: 1, sealed: { enc: 'e'.repeat(43), ct: 'c'.repeat(b.bus.maxPayload) } });
    const tooLarge = await fetch(`${b.url}/v1/jobs/${second}/payload`, { method: 'PUT', headers: auth, body: large });
    expect(tooLarge.status).toBe(413);
    expect(((await tooLarge.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'BAD_MESSAGE',
      message: expect.stringContaining('max_payload') as unknown,
    });
    await a.kill();
    const events = lines(await body);
    expect(events.at(-1)).toMatchObject({ type: 'failed', error: { code: 'RESTARTED' } });
    expect(b.forwarding.counts.ownerLost).toBe(1);
    // With A gone, B answers from the database: no peer holds the job, and it is not B's.
    const late = await fetch(`${b.url}/v1/jobs/${second}`, { method: 'DELETE', headers: auth });
    expect(late.status).toBe(409);
  });
});

describe('a stream whose owner stops after writing the job done', () => {
  it('ends on B with the stored answer, not RESTARTED', { timeout: 120_000 }, async () => {
    const c = await replica('c');
    const d = await replica('d');
    await until('the replicas to hear each other', () =>
      c.routing.peers.includes('d') && d.routing.peers.includes('c') ? true : undefined,
    );
    await contributor(c.url, new HeldRuntime());
    const key = await c.coordinator.createApiKey('stored');
    const auth = { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' };
    const created = await fetch(`${c.url}/v1/jobs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ model: 'tiny-embed', kind: 'embed', billing: { inputTokens: 8, maxOutputTokens: 0 } }),
    });
    const id = ((await created.json()) as { jobId: string }).jobId;
    const open = await fetch(`${d.url}/v1/jobs/${id}/events`, { headers: auth });
    expect(open.status).toBe(200);
    const body = open.text();
    // What C wrote just before it stopped (it sends a final chunk only after this write): the job done, with its sealed answer.
    const chunk = {
      type: 'chunk',
      attempt: 1,
      seq: 0,
      final: true,
      sealed: { ct: 'c2VhbGVk' },
      usage: { promptTokens: 4, completionTokens: 0 },
    };
    await c.store.flush();
    await c.store.db.query(`UPDATE jobs SET state = 'done', result = $2 WHERE id = $1`, [
      id,
      JSON.stringify({ attempt: 1, chunks: [chunk] }),
    ]);
    d.forwarding.lost('c'); // as D's routing does when C's heartbeats stop
    const events = lines(await body);
    expect(events.map((e) => e.type)).toEqual(['assigned', 'chunk']);
    expect(events.at(-1)).toEqual(chunk);
    expect(d.forwarding.counts.ownerLost).toBe(1);
  });
});

describe('ton_proof payloads on any replica', () => {
  const wallet = testWallet();
  const domain = '127.0.0.1:5173';
  const post = (url: string, path: string, body: unknown): Promise<Response> =>
    fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const proofFor = (deviceKey: string, payload: string) =>
    proofBody(wallet, { deviceKey, payload, domain, timestamp: Math.floor(Date.now() / 1000) });
  const deviceKey = (): string => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url');

  it('checks a payload issued by one replica on the other, once, within one per-address limit', { timeout: 60_000 }, async () => {
    // A stopped in the test before; this pair is fresh.
    const c = await replica('c', 3);
    const d = await replica('d', 3);
    const key = deviceKey();
    const issued = (await (await post(c.url, '/v1/wallet/payload', { deviceKey: key })).json()) as { payload: string };
    const proof = proofFor(key, issued.payload);
    const accepted = await post(d.url, '/v1/wallet/proof', proof);
    expect(accepted.status).toBe(200);
    expect(((await accepted.json()) as { wallet: string }).wallet).toBe(wallet.address);
    // Used up on both.
    for (const r of [c, d]) {
      const replay = await post(r.url, '/v1/wallet/proof', proof);
      expect(replay.status).toBe(401);
      expect(((await replay.json()) as { error: { reason: string } }).error.reason).toBe('payload-replayed');
    }
    // Only hashes are stored.
    const rows = await c.store.db.query<{ payload_hash: string }>('SELECT payload_hash FROM proof_payloads');
    expect(rows.rows.some((r) => r.payload_hash === issued.payload)).toBe(false);
    // Three unused payloads per address (this test's limit), counted over both replicas: the fourth is refused on either.
    for (const r of [c, d, c]) expect((await post(r.url, '/v1/wallet/payload', { deviceKey: key })).status).toBe(200);
    for (const r of [c, d]) expect((await post(r.url, '/v1/wallet/payload', { deviceKey: key })).status).toBe(429);
  });
  it('finds a job’s owner from its row, asking that one replica and not every peer', { timeout: 60_000 }, async () => {
    const [e, f, g] = [await replica('e', 3), await replica('f', 3), await replica('g', 3)];
    await until('the three to hear each other', () =>
      ['f', 'g'].every((p) => e.routing.peers.includes(p)) && ['e', 'g'].every((p) => f.routing.peers.includes(p)) ? true : undefined,
    );
    const key = await e.coordinator.createApiKey('owner lookup');
    const auth = { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' };
    const res = await fetch(`${e.url}/v1/jobs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ model: 'tiny-embed', kind: 'embed', billing: { inputTokens: 8, maxOutputTokens: 0 } }),
    });
    expect(res.status).toBe(201);
    const jobId = ((await res.json()) as { jobId: string }).jobId;
    // Store writes are batched: wait for the job's row, which names e.
    const row = async (): Promise<string | null> => recordedOwner(f.store.db, jobId);
    let recorded: string | null = null;
    for (let i = 0; i < 600 && recorded === null; i++) {
      recorded = await row();
      if (recorded === null) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(recorded).toBe('e');
    expect(f.routing.peers.length).toBeGreaterThanOrEqual(2);

    // One question, to e, though f has more live peers; then it is kept.
    const before = f.forwarding.counts.holdsAsked;
    expect(await f.forwarding.ownerOf(jobId)).toBe('e');
    expect(f.forwarding.counts.holdsAsked - before).toBe(1);
    const cancelled = await fetch(`${f.url}/v1/jobs/${jobId}`, { method: 'DELETE', headers: auth });
    expect(cancelled.status).toBe(200);
    expect(await cancelled.json()).toEqual({ jobId, state: 'cancelled' });
    expect(f.forwarding.counts.holdsAsked - before).toBe(1);

    // A job whose row is not written (here: none at all) is still looked for among every live peer.
    const peers = g.routing.peers.length;
    const asked = g.forwarding.counts.holdsAsked;
    expect(await g.forwarding.ownerOf('no-such-job')).toBeNull();
    expect(g.forwarding.counts.holdsAsked - asked).toBe(peers);
  });
});
