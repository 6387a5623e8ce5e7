/**
 * The routing between two replicas in one process, on real PostgreSQL and NATS: a job created
 * on A runs on a contributor connected to B and its result comes back through A; when that
 * contributor leaves B mid-job, A hears it is gone and the job is re-leased (a second attempt,
 * sealed again by the requester) to B's other contributor; results match the reference.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { referenceEmbed } from '../../modelhost/reference.ts';
import { RequesterClient } from '../../requester/client.ts';
import { Contributor } from '../../worker/network/contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../../worker/network/identity.ts';
import { createCoordinator } from '../app.ts';
import { systemClock } from '../clock.ts';
import { openStore } from '../store/index.ts';
import type { SqlStore } from '../store/sql-store.ts';
import { TEST_DATABASE_URL, uniqueSchema } from '../store/testing.ts';
import { disposeStore, EmbedRuntime } from '../../testing/verification.ts';
import { connectBus } from './bus.ts';
import { Routing } from './routing.ts';

const NATS_URL = process.env['TEST_NATS_URL'] ?? 'nats://127.0.0.1:4222';
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const schema = uniqueSchema('routing');
const cleanup: (() => Promise<unknown>)[] = [];
const stores: SqlStore[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  await stores[1]?.close();
  if (stores[0] !== undefined) await disposeStore(stores[0]);
});

const until = async <T>(what: string, read: () => T | undefined, timeoutMs = 30_000): Promise<T> => {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

/** Holds each job until `letGo` is called. */
class HeldRuntime extends EmbedRuntime {
  started = 0;
  letGo: () => void = () => undefined;
  override async run(...args: Parameters<EmbedRuntime['run']>): ReturnType<EmbedRuntime['run']> {
    this.started++;
    await new Promise<void>((resolve) => (this.letGo = resolve));
    return super.run(...args);
  }
}

const replica = async (id: string) => {
  const store = await openStore({ databaseUrl: TEST_DATABASE_URL, schema, replicaId: id });
  stores.push(store);
  const bus = await connectBus(NATS_URL, `test-${id}`, () => undefined);
  const routing = new Routing({ replicaId: id, bus, prefix: `spinneret.${schema}`, clock: systemClock, logger: quiet, heartbeatMs: 100 });
  const coordinator = createCoordinator({
    store,
    logger: quiet,
    recoverUnfinished: false,
    cluster: (relay, find) => routing.attach(relay, find),
  });
  const server = await coordinator.listen();
  routing.start();
  cleanup.push(async () => {
    routing.stop();
    await coordinator.close();
    await server.close();
    await bus.close();
  });
  return { coordinator, routing, url: server.url };
};

const contributor = async (url: string, runtime: EmbedRuntime) => {
  const c = new Contributor({
    coordinatorUrl: `${url.replace(/^http/, 'ws')}/v1/contributor`,
    runtime,
    identity: await loadOrCreateIdentity(new MemoryKeyStore()),
    consent: ['embed'],
    client: { name: 'test', version: '0.0.0' },
    webSocket: WebSocket,
  });
  c.start();
  cleanup.push(() => c.stop({ drain: false }));
  await until('the contributor to connect', () => c.status().contributorId ?? undefined);
  return c;
};

describe('routing between replicas', () => {
  it('runs a job of A on a contributor of B, and re-leases it when that contributor leaves B', { timeout: 120_000 }, async () => {
    const [a, b] = [await replica('a'), await replica('b')];
    await until('the replicas to hear each other', () =>
      a.routing.peers.includes('b') && b.routing.peers.includes('a') ? true : undefined,
    );
    const key = await a.coordinator.createApiKey('test');
    const requester = new RequesterClient({ coordinatorUrl: a.url, apiKey: key.secret, checkReplicas: false });
    const check = (text: string, result: Awaited<ReturnType<RequesterClient['run']>>) => {
      if (result.kind !== 'embed') throw new Error(`expected an embedding, got ${result.kind}`);
      const expected = referenceEmbed([text])[0] ?? [];
      expect(result.embeddings[0]?.length).toBe(expected.length);
      result.embeddings[0]?.forEach((x, i) => expect(Math.abs(x - (expected[i] ?? NaN))).toBeLessThan(1e-6));
    };

    // One held contributor on B: A's job goes to it.
    const held = new HeldRuntime();
    const leaving = await contributor(b.url, held);
    const text = 'a job that changes contributors';
    const running = requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] });
    await until('the job on B', () => (held.started === 1 ? true : undefined));
    expect(a.coordinator.stats().contributors).toBe(0); // none connected to A itself
    expect(a.routing.holding).toBe(1);

    // A second contributor on B; the first leaves mid-job: A re-leases the job to the second.
    const stays = new EmbedRuntime();
    await contributor(b.url, stays);
    // (stop() waits for the held job, which is let go once the second attempt answered.)
    const stopped = leaving.stop({ drain: false });
    const result = await running;
    held.letGo();
    await stopped;
    check(text, result);
    expect(result.attempts).toBe(2);
    expect(stays.jobs).toBe(1);

    // And a plain crossing on the remaining contributor.
    const again = 'one more across';
    check(again, await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [again] }));
    expect(a.routing.counts.claimsGranted).toBeGreaterThanOrEqual(3);
    expect(b.routing.counts.slotsLent).toBe(a.routing.counts.claimsGranted);
    expect(a.routing.counts.remoteResults).toBeGreaterThanOrEqual(2);
    // A holds nothing of B's once its jobs are done.
    await until('remote contributors to leave A', () => (a.routing.holding === 0 ? true : undefined));
  });
});
