/**
 * `BENCH_ONLY=replicas npm run bench`: what routing a job through another replica costs, in two
 * parts (`BENCH_REPLICAS_PARTS`, default `embed,load`): `load`, the dispatch bench's channel
 * load over 1, 2 and 3 replica processes and a replica killed mid-load (load.ts); and `embed`,
 * below. Two
 * coordinators in this process share one PostgreSQL schema and a NATS server (as
 * `cluster.nats` wires them); contributors (the real worker loop, embedding runtime) are on
 * replica B only. The same requester code runs `tiny-embed` jobs on B (same replica: the
 * baseline) and on A (every job crosses: claim, payload down, chunks up over NATS), one at a
 * time (latency) and 16 at once (throughput). Needs PostgreSQL (TEST_DATABASE_URL) and NATS
 * (TEST_NATS_URL, default nats://127.0.0.1:4222).
 */
import { WebSocket } from 'ws';
import { createCoordinator } from '../../coordinator/app.ts';
import { connectBus } from '../../coordinator/cluster/bus.ts';
import { Routing } from '../../coordinator/cluster/routing.ts';
import { systemClock } from '../../coordinator/clock.ts';
import { openStore } from '../../coordinator/store/index.ts';
import { TEST_DATABASE_URL, uniqueSchema } from '../../coordinator/store/testing.ts';
import { disposeStore, EmbedRuntime } from '../../testing/verification.ts';
import { RequesterClient } from '../../requester/client.ts';
import { Contributor } from '../../worker/network/contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../../worker/network/identity.ts';

const NATS_URL = process.env['TEST_NATS_URL'] ?? 'nats://127.0.0.1:4222';
const quiet = { info: () => undefined, warn: () => undefined, error: (m: string, f?: unknown) => console.error(m, f) };

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;

export async function runReplicasBench(): Promise<void> {
  const parts = (process.env['BENCH_REPLICAS_PARTS'] ?? 'embed,load').split(',').map((p) => p.trim());
  const unknown = parts.filter((p) => p !== 'embed' && p !== 'load');
  if (unknown.length > 0) throw new Error(`BENCH_REPLICAS_PARTS lists embed and load, got ${unknown.join(', ')}`);
  if (parts.includes('embed')) await embedBench();
  if (parts.includes('load')) {
    const { runReplicaLoadBench } = await import('./load.ts');
    await runReplicaLoadBench();
  }
}

/** Tiny-embed jobs end to end through the same replica and through another. */
async function embedBench(): Promise<void> {
  const schema = uniqueSchema('bench_replicas');
  const stores = [
    await openStore({ databaseUrl: TEST_DATABASE_URL, schema, replicaId: 'a' }),
    await openStore({ databaseUrl: TEST_DATABASE_URL, schema, replicaId: 'b' }),
  ];
  const closers: (() => Promise<unknown>)[] = [];
  try {
    const nodes = await Promise.all(
      ['a', 'b'].map(async (id, i) => {
        const bus = await connectBus(NATS_URL, `bench-${id}`, (m, e) => console.error(m, e));
        const routing = new Routing({ replicaId: id, bus, prefix: `spinneret.${schema}`, clock: systemClock, logger: quiet });
        const store = stores[i];
        if (store === undefined) throw new Error('no store');
        const coordinator = createCoordinator({
          store,
          logger: quiet,
          recoverUnfinished: false,
          cluster: (relay, find) => routing.attach(relay, find),
        });
        const server = await coordinator.listen();
        routing.start();
        closers.push(async () => {
          routing.stop();
          await coordinator.close();
          await server.close();
          await bus.close();
        });
        return { coordinator, url: server.url, routing };
      }),
    );
    const [a, b] = nodes;
    if (a === undefined || b === undefined) throw new Error('no replicas');
    while (a.routing.peers.length === 0 || b.routing.peers.length === 0) await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 4; i++) {
      const contributor = new Contributor({
        coordinatorUrl: `${b.url.replace(/^http/, 'ws')}/v1/contributor`,
        runtime: new EmbedRuntime(),
        identity: await loadOrCreateIdentity(new MemoryKeyStore()),
        consent: ['embed'],
        client: { name: 'bench', version: '0.0.0' },
        webSocket: WebSocket,
        slots: 4,
      });
      contributor.start();
      closers.push(() => contributor.stop({ drain: false }));
    }
    while (b.coordinator.stats().contributors < 4) await new Promise((r) => setTimeout(r, 50));
    const key = await a.coordinator.createApiKey('bench', { jobsPerMinute: 1_000_000, maxInFlight: 64 });
    const client = (url: string) => new RequesterClient({ coordinatorUrl: url, apiKey: key.secret, checkReplicas: false });
    const job = (c: RequesterClient, i: number) => c.run({ kind: 'embed', model: 'tiny-embed', inputs: [`bench sentence ${i}`] });

    const measure = async (c: RequesterClient, n: number, concurrency: number) => {
      const times: number[] = [];
      let next = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < n) {
            const i = next++;
            const t = performance.now();
            await job(c, i);
            times.push(performance.now() - t);
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      times.sort((x, y) => x - y);
      return { median: percentile(times, 0.5), p99: percentile(times, 0.99), perSecond: n / seconds };
    };
    const same = client(b.url);
    const cross = client(a.url);
    await measure(same, 20, 4); // warm-up: both paths, JIT and connections
    await measure(cross, 20, 4);
    const n = Number(process.env['BENCH_REPLICA_JOBS'] ?? 200);
    const rows: [string, Awaited<ReturnType<typeof measure>>, Awaited<ReturnType<typeof measure>>][] = [];
    for (const concurrency of [1, 16]) {
      const baseline = await measure(same, n, concurrency);
      const routed = await measure(cross, n, concurrency);
      rows.push([`${concurrency} at a time`, baseline, routed]);
    }
    console.log(`\nReplicas: a tiny-embed job end to end (create, seal, payload, result), ${n} jobs, contributors on replica B`);
    console.log(`${'load'.padEnd(14)} ${'same replica'.padStart(26)} ${'through NATS'.padStart(26)}  ratio (median, jobs/s)`);
    const cell = (m: Awaited<ReturnType<typeof measure>>) =>
      `${m.median.toFixed(1)} / ${m.p99.toFixed(1)} ms, ${m.perSecond.toFixed(0)}/s`.padStart(26);
    for (const [name, base, routed] of rows) {
      console.log(
        `${name.padEnd(14)} ${cell(base)} ${cell(routed)}  ${(routed.median / base.median).toFixed(2)}, ${(routed.perSecond / base.perSecond).toFixed(2)}`,
      );
    }
    console.log('(median / p99 latency per job; one process holds both replicas, the contributors and the requesters on 2 cores)');
    const counts = a.routing.counts;
    console.log(`routing on A: ${counts.claimsSent} claims sent, ${counts.claimsGranted} granted, ${counts.remoteResults} results up`);
  } finally {
    for (const close of closers.reverse()) await close().catch((err: unknown) => console.error(err));
    await stores[1]?.close();
    if (stores[0] !== undefined) await disposeStore(stores[0]);
  }
}
