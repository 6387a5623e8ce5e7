/**
 * A server process of the dispatch benchmark (see ipc.ts): `coordinator` — a real
 * coordinator on the embedded store (PGlite in memory), listening on 127.0.0.1 —, `replica` —
 * the same coordinator as one replica of several on a shared PostgreSQL schema and NATS, wired
 * as `operator/wiring.ts` wires `cluster.nats` (its lock, routing, job forwarding; no money or
 * verification, as in `coordinator`) — or `echo`, the raw `ws` baseline. Forked by
 * {@link Child.spawn}; answers the parent's calls.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type CoordinatorOptions, createCoordinator } from '../../coordinator/app.ts';
import { systemClock } from '../../coordinator/clock.ts';
import { openReplica } from '../../coordinator/cluster/replica.ts';
import { openStore } from '../../coordinator/store/index.ts';
import type { SqlStore } from '../../coordinator/store/sql-store.ts';
import { replicaCoordinatorOptions } from '../../operator/wiring/cluster.ts';
import { startEchoServer } from './echo.ts';
import type { ChildReady, ChildRequest, CpuSample, FromChild, MemorySample, ReplicaPlace, ToChild } from './ipc.ts';
import { fetchTransport, runLoad } from './requesters.ts';
import { epochMs, sleep } from './stats.ts';

const mode = process.argv[2];
const lanes = Number(process.argv[3] ?? 1);
const gc = (globalThis as { gc?: () => void }).gc;
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

function send(message: FromChild): void {
  process.send?.(message);
}

/** Median of three samples, each after two full GCs when available. */
async function memory(): Promise<MemorySample> {
  const samples: { heapUsed: number; rss: number; external: number }[] = [];
  for (let i = 0; i < 3; i++) {
    if (gc !== undefined) {
      gc();
      gc();
    }
    const m = process.memoryUsage();
    samples.push({ heapUsed: m.heapUsed, rss: m.rss, external: m.external });
    await sleep(50);
  }
  const median = (pick: (s: (typeof samples)[number]) => number): number => samples.map(pick).sort((a, b) => a - b)[1] ?? Number.NaN;
  return { heapUsed: median((s) => s.heapUsed), rss: median((s) => s.rss), external: median((s) => s.external), afterGc: gc !== undefined };
}

function cpu(): CpuSample {
  const usage = process.cpuUsage();
  return { cpuMs: (usage.user + usage.system) / 1000, at: epochMs() };
}

type Handler = (request: ChildRequest) => unknown;

function serve(handler: Handler): void {
  process.on('message', (message: ToChild) => {
    void (async () => {
      try {
        send({ type: 'result', id: message.id, ok: true, result: (await handler(message.request)) ?? null });
      } catch (err) {
        send({ type: 'result', id: message.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      }
    })();
  });
  // The parent went away: do not linger.
  process.on('disconnect', () => process.exit(0));
}

const loggedErrors: string[] = [];
const logger = {
  info: () => {},
  warn: () => {},
  error: (message: string, fields?: Record<string, unknown>) => {
    if (loggedErrors.length < 20) loggedErrors.push(`${message} ${JSON.stringify(fields ?? {}).slice(0, 300)}`);
  },
};

async function coordinatorMode(): Promise<void> {
  await serveCoordinator(await openStore(), {});
}

/** One replica of several: the replica's lock and bus (no singletons to run here: no money), then the coordinator. */
async function replicaMode(place: ReplicaPlace): Promise<void> {
  const store = await openStore({ databaseUrl: place.databaseUrl, schema: place.schema, replicaId: place.replicaId });
  const replica = await openReplica({
    replicaId: place.replicaId,
    natsUrl: place.natsUrl,
    databaseUrl: place.databaseUrl,
    schema: place.schema,
    db: store.db,
    clock: systemClock,
    logger,
    onLost: (why) => {
      console.error(`replica ${place.replicaId} lost its database locks: ${why}`);
      process.exit(1);
    },
  });
  const idle = { start: () => undefined, stop: () => undefined };
  await serveCoordinator(store, replicaCoordinatorOptions(replica), {
    start: () => replica.start(idle, {}),
    peers: () => replica.routing.peers.length,
    close: () => replica.close(),
  });
}

interface ReplicaHooks {
  /** After the coordinator listens. */
  start(): void;
  peers(): number;
  close(): Promise<void>;
}

async function serveCoordinator(store: SqlStore, options: Partial<CoordinatorOptions>, replica?: ReplicaHooks): Promise<void> {
  // Every simulated contributor and requester connects from loopback: the per-address limits are lifted.
  const coordinator = createCoordinator({
    store,
    logger,
    limits: { connectionsPerIp: 1_000_000, subscribersPerKey: 1_000_000 },
    ...options,
  });
  const server = await coordinator.listen({ port: 0, host: '127.0.0.1' });
  replica?.start();
  const limits = { jobsPerMinute: 2_000_000_000, maxInFlight: 1_000_000 };
  const keys: string[] = [];
  for (let i = 0; i < Math.max(1, lanes); i++) keys.push((await coordinator.createApiKey(`bench-lane-${i}`, limits)).secret);
  const sharedKey = (await coordinator.createApiKey('bench-shared', limits)).secret;
  const transport = fetchTransport((request) => coordinator.app.fetch(request));

  serve(async (request) => {
    switch (request.cmd) {
      case 'memory':
        return memory();
      case 'cpu':
        return cpu();
      case 'clock':
        return epochMs();
      case 'connected':
        return coordinator.stats().contributors;
      case 'peers':
        return replica?.peers() ?? 0;
      case 'report': {
        const metrics = await (await coordinator.app.fetch(new Request('http://coordinator.local/metrics'))).text();
        const dispatchHistogram = [...metrics.matchAll(/^spinneret_dispatch_latency_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)].map((m) => ({
          le: m[1] ?? '',
          count: Number(m[2]),
        }));
        const buffered = (store as { bufferedJobs?: unknown }).bufferedJobs;
        const loop = { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 };
        loopDelay.reset();
        return {
          stats: coordinator.stats(),
          bufferedJobs: typeof buffered === 'number' ? buffered : null,
          dispatchHistogram,
          loggedErrors,
          loop,
        };
      }
      case 'load': {
        const { sharedKey: shared, ...options } = request.options;
        return runLoad({ transport, keys: shared ? [sharedKey] : keys, ...options });
      }
      case 'echo':
        throw new Error('not the echo server');
      case 'close':
        setTimeout(() => {
          void (async () => {
            await server.close();
            await coordinator.close();
            await replica?.close();
            await store.close();
            process.exit(0);
          })();
        }, 0);
        return null;
    }
  });
  send({ type: 'ready', url: server.url, keys, sharedKey } satisfies ChildReady);
}

async function echoMode(): Promise<void> {
  const echo = await startEchoServer();
  serve(async (request) => {
    switch (request.cmd) {
      case 'memory':
        return memory();
      case 'cpu':
        return cpu();
      case 'clock':
        return epochMs();
      case 'connected':
        return echo.connected;
      case 'echo':
        return echo.run(request.options);
      case 'close':
        setTimeout(() => void echo.close().then(() => process.exit(0)), 0);
        return null;
      default:
        throw new Error(`${request.cmd}: not for the echo server`);
    }
  });
  send({ type: 'ready', url: echo.url, keys: [], sharedKey: '' } satisfies ChildReady);
}

if (mode === 'coordinator') await coordinatorMode();
else if (mode === 'replica') await replicaMode(JSON.parse(process.argv[4] ?? '{}') as ReplicaPlace);
else if (mode === 'echo') await echoMode();
else throw new Error(`unknown mode ${String(mode)}`);
