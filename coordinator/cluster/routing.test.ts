/**
 * The routing between two replicas in one process, on real PostgreSQL and NATS: a job created
 * on A runs on a contributor connected to B and its result comes back through A; when that
 * contributor leaves B mid-job, A hears it is gone and the job is re-leased (a second attempt,
 * sealed again by the requester) to B's other contributor; results match the reference.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { referenceEmbed } from '../../modelhost/reference.ts';
import { RequesterClient } from '../../requester/client.ts';
import { HeldRuntime, NATS_URL, quiet, ReplicaKit, startContributor, until } from '../../testing/cluster.ts';
import { EmbedRuntime } from '../../testing/verification.ts';
import { createCoordinator } from '../app.ts';
import { systemClock } from '../clock.ts';
import { uniqueSchema } from '../store/testing.ts';
import { connectBus } from './bus.ts';
import { Routing } from './routing.ts';

const schema = uniqueSchema('routing');
const kit = new ReplicaKit();
afterAll(() => kit.dispose());

const replica = async (id: string) => {
  const store = await kit.store(schema, id);
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
  kit.cleanup.push(async () => {
    routing.stop();
    await coordinator.close();
    await server.close();
    await bus.close();
  });
  return { coordinator, routing, url: server.url };
};

const contributor = (url: string, runtime: EmbedRuntime) => startContributor(kit, url, runtime);

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
