/**
 * Messages on the replicas' bus from a client that is not a replica, in a replica's name, on
 * real PostgreSQL and NATS: two replicas, a contributor on B, and a plain NATS connection.
 *
 * - A `down` in A's name carries only what a job's relay sends its holder: a fleet owner's pause
 *   or message, a drain, a welcome or a fatal error never reach B's device.
 * - Claims in A's name take B's contributor's only slot; A never uses it. The slot comes back
 *   after `lendForMs`, and A's real job then runs on it.
 * - An `alive` in A's name with another boot id, while A still speaks, is not taken for a restart
 *   of A (which would end what A and B share: leases, slots, forwarded streams).
 * - A forwarded call whose header `Headers` refuses, or a GET with a body, is dropped and
 *   counted, not answered 500 with an error in the owner's log.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequesterClient } from '../../requester/client.ts';
import { paidReplica, type PaidReplica, NATS_URL, ReplicaKit, startContributor, until } from '../../testing/cluster.ts';
import { EmbedRuntime } from '../../testing/verification.ts';
import type { Contributor } from '../../worker/network/contributor.ts';
import { Ledger } from '../ledger/ledger.ts';
import type { Logger } from '../log.ts';
import { uniqueSchema } from '../store/testing.ts';
import type { Bus } from './bus.ts';

const schema = uniqueSchema('forgery');
const prefix = `spinneret.${schema}`;
const kit = new ReplicaKit();
const LEND_FOR_MS = 1_000;
let nc: NatsConnection;
let a: PaidReplica;
let b: PaidReplica;
let busB: Bus | undefined;
const errorsB: string[] = [];
let device: Contributor;
let deviceId = '';
const runtime = new EmbedRuntime();

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL, name: 'forger' });
  const checks = { canaryRate: 0, replicationRate: 0 };
  a = await paidReplica(kit, schema, 'a', checks, { routing: { lendForMs: LEND_FOR_MS } });
  const logger: Logger = { info: () => undefined, warn: () => undefined, error: (m, f) => errorsB.push(`${m} ${JSON.stringify(f)}`) };
  b = await paidReplica(kit, schema, 'b', checks, {
    logger,
    routing: { lendForMs: LEND_FOR_MS },
    bus: (bus) => (busB = bus),
  });
  await until('the replicas to hear each other', () => (a.routing.peers.includes('b') && b.routing.peers.includes('a') ? true : undefined));
  device = await startContributor(kit, b.url, runtime);
  deviceId = device.status().contributorId ?? '';
  await until('B to say what its contributor serves', () => (a.routing.peerServes('tiny-embed', 'embed') ? true : undefined));
}, 60_000);

afterAll(async () => {
  await nc?.close();
  await kit.dispose();
});

const send = (subject: string, body: unknown): void => nc.publish(`${prefix}.${subject}`, JSON.stringify(body));
let deposits = 0;
const run = async (text: string): Promise<string> => {
  const key = await a.coordinator.createApiKey(text);
  const n = ++deposits;
  const hash = n.toString(16).padStart(64, '0');
  await new Ledger(a.store.db).deposit({
    lt: BigInt(n),
    hash,
    amount: 10_000_000n,
    to: { kind: 'requester', apiKeyId: key.id },
    note: 't',
  });
  await a.money.billing.refreshBudget();
  const requester = new RequesterClient({ coordinatorUrl: a.url, apiKey: key.secret, checkReplicas: false });
  const result = await Promise.race([
    requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] }),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the job "${text}" did not run in 20 s`)), 20_000)),
  ]);
  await requester.idle();
  return result.kind;
};

describe('messages in a replica’s name from a client that is not one', () => {
  it('passes to a device only what a job’s relay sends its holder', { timeout: 60_000 }, async () => {
    const down = (message: unknown) => send('r.b.down', { owner: 'a', contributorId: deviceId, message });
    down({ v: 1, type: 'control', action: 'message', text: 'Your wallet is at risk: send your recovery words to evil.example' });
    down({ v: 1, type: 'control', action: 'pause' });
    down({ v: 1, type: 'drain', reconnectAfterMs: 1_000_000 });
    down({ v: 1, type: 'error', error: { code: 'UNAUTHORIZED', message: 'forged' }, fatal: true });
    await nc.flush();
    // A job of A after them reaches the device through the same subject, so they were handled before it.
    expect(await run('after forged downs')).toBe('embed');
    const status = device.status();
    expect(status.ownerMessage).toBeNull();
    expect(status.pausedBy).not.toBe('remote');
    expect(status.state).not.toBe('error');
    expect(status.contributorId).toBe(deviceId);
    expect(busB?.dropped).toBeGreaterThanOrEqual(4);
  });

  it('takes back slots lent in an owner’s name that the owner never uses', { timeout: 60_000 }, async () => {
    const claim = { owner: 'a', jobId: 'forged-job', model: 'tiny-embed', kind: 'embed', exclude: [] };
    const granted = (await nc.request(`${prefix}.r.b.claim`, JSON.stringify(claim), { timeout: 2_000 })).json<{
      contributor: { id: string } | null;
    }>();
    expect(granted.contributor?.id).toBe(deviceId);
    // The device's only slot is A's now, though A never asked for it: A's own job waits until it comes back.
    const again = (await nc.request(`${prefix}.r.b.claim`, JSON.stringify(claim), { timeout: 2_000 })).json<{ contributor: unknown }>();
    expect(again.contributor).toBeNull();
    const jobs = runtime.jobs;
    expect(await run('after a forged claim')).toBe('embed');
    expect(runtime.jobs - jobs).toBe(1);
    expect(b.routing.counts.slotsExpired).toBeGreaterThanOrEqual(1);
  });

  it('does not take another process speaking as a live replica for its restart', { timeout: 30_000 }, async () => {
    const lost = b.routing.counts.peersLost;
    for (let i = 0; i < 5; i++) {
      send('alive', { replica: 'a', boot: `forged${i}`, serves: [] });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await nc.flush();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(b.routing.counts.peersLost).toBe(lost);
    expect(b.routing.peers).toEqual(['a']);
    expect(b.routing.counts.aliveRefused).toBeGreaterThanOrEqual(5);
  });

  it('drops a forwarded call that no HTTP request could be, and counts it', { timeout: 30_000 }, async () => {
    const dropped = busB?.dropped ?? 0;
    const call = { from: 'a', stream: 'forged-stream', path: '/v1/jobs/forged-job/events' };
    const calls = [
      { ...call, method: 'GET', headers: { authorization: 'Bearer a\u0000b' } },
      { ...call, method: 'GET', headers: { authorization: 'Bearer \u0100' } },
      { ...call, method: 'GET', headers: {}, body: 'a body on a GET' },
    ];
    for (const body of calls) {
      const answer = await nc
        .request(`${prefix}.r.b.call`, JSON.stringify(body), { timeout: 1_000 })
        .then((m) => m.json<{ status: number }>().status)
        .catch(() => 'dropped');
      expect(answer).toBe('dropped');
    }
    expect((busB?.dropped ?? 0) - dropped).toBe(calls.length);
    expect(errorsB.filter((e) => !/^dropped a (malformed message|message that is not JSON) on /.test(e))).toEqual([]);
  });
});
