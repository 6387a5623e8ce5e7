/**
 * A server process of the dispatch benchmark (see ipc.ts): `coordinator` — a real
 * coordinator on the embedded store (PGlite in memory), listening on 127.0.0.1 — or `echo`,
 * the raw `ws` baseline. Forked by {@link Child.spawn}; answers the parent's calls.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createCoordinator } from '../../coordinator/app.ts';
import { openStore } from '../../coordinator/store/index.ts';
import { startEchoServer } from './echo.ts';
import type { ChildReady, ChildRequest, CpuSample, FromChild, MemorySample, ToChild } from './ipc.ts';
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

async function coordinatorMode(): Promise<void> {
  const store = await openStore();
  const loggedErrors: string[] = [];
  const logger = {
    info: () => {},
    warn: () => {},
    error: (message: string, fields?: Record<string, unknown>) => {
      if (loggedErrors.length < 20) loggedErrors.push(`${message} ${JSON.stringify(fields ?? {}).slice(0, 300)}`);
    },
  };
  // Every simulated contributor and requester connects from loopback: the per-address limits are lifted.
  const coordinator = createCoordinator({ store, logger, limits: { connectionsPerIp: 1_000_000, subscribersPerKey: 1_000_000 } });
  const server = await coordinator.listen({ port: 0, host: '127.0.0.1' });
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
else if (mode === 'echo') await echoMode();
else throw new Error(`unknown mode ${String(mode)}`);
