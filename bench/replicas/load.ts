/**
 * `BENCH_ONLY=replicas`, the load part: the dispatch benchmark's channel load with N contributors
 * and closed-loop requester lanes over 1, 2 and 3 coordinator replicas in one run, each replica
 * a process of its own (bench/dispatch/child.ts `replica`: one PostgreSQL schema, NATS, wired
 * as `cluster.nats` wires them), the contributors and the requester channels spread over them.
 * With `BENCH_REPLICAS_CROSS=1` (the default) the contributors of replica i serve model i and
 * the requesters on replica i ask for model i+1, so with 2 or 3 replicas every job crosses
 * replicas (claim, payload down, result up over NATS); with 1 replica the same load stays in
 * one process: the baseline. Printed per replica count: jobs/s, end-to-end and dispatch
 * p50/p99, coordinator CPU per job summed over the replicas (and the NATS server's and
 * PostgreSQL's), each as a ratio to the 1-replica run.
 *
 * Then, with 2 or more replicas, the last replica is killed with SIGKILL while requesters on the
 * others keep running jobs; its contributors come back on the survivors (kill.ts).
 *
 * Knobs (env): BENCH_REPLICAS_COUNTS (1,2,3), BENCH_REPLICAS_CONTRIBUTORS (1000),
 * BENCH_REPLICAS_LANES (128), BENCH_REPLICAS_SOCKETS (6 requester channels in all),
 * BENCH_REPLICAS_PAYLOAD (1024 bytes), BENCH_REPLICAS_WARMUP_MS (2000),
 * BENCH_REPLICAS_WINDOW_MS (10000), BENCH_REPLICAS_CROSS (1), BENCH_REPLICAS_KILL (1; 0: no
 * kill), BENCH_REPLICAS_KILL_AT_MS (3000 into the kill phase's window),
 * BENCH_REPLICAS_KILL_WINDOW_MS (15000), BENCH_REPLICAS_IDLE_MS (2000: the replicas' CPU with the
 * contributors connected and no jobs, measured first, so that a job's share can be told from the
 * heartbeats, pings and timers that cost the same at any rate). Needs PostgreSQL (TEST_DATABASE_URL) and NATS
 * (TEST_NATS_URL, default nats://127.0.0.1:4222).
 */
import os from 'node:os';
import { openStore } from '../../coordinator/store/index.ts';
import { TEST_DATABASE_URL, uniqueSchema } from '../../coordinator/store/testing.ts';
import { disposeStore } from '../../testing/verification.ts';
import { type ChannelEndpoint, runChannelLoad } from '../dispatch/channel-load.ts';
import { ContributorPool } from '../dispatch/contributors.ts';
import { Child } from '../dispatch/ipc.ts';
import { cpuMeter } from '../dispatch/meter.ts';
import type { LoadResult } from '../dispatch/requesters.ts';
import { envNumber, epochMs, int, type LatencySummary, ms, Samples, sleep } from '../dispatch/stats.ts';
import { type KillResult, printKill, runKill } from './kill.ts';
import { readServices, serviceCpu, type ServiceReading } from './services.ts';

const NATS_URL = process.env['TEST_NATS_URL'] ?? 'nats://127.0.0.1:4222';

export interface LoadConfig {
  counts: number[];
  contributors: number;
  lanes: number;
  sockets: number;
  payloadBytes: number;
  warmupMs: number;
  windowMs: number;
  cross: boolean;
  kill: boolean;
  killAtMs: number;
  killWindowMs: number;
  idleMs: number;
}

function config(): LoadConfig {
  const counts = (process.env['BENCH_REPLICAS_COUNTS'] ?? '1,2,3').split(',').map((s) => Number(s.trim()));
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 8))
    throw new Error('BENCH_REPLICAS_COUNTS must list replica counts from 1 to 8');
  const windowMs = envNumber('BENCH_REPLICAS_WINDOW_MS', 10_000, 500, 120_000);
  const killWindowMs = envNumber('BENCH_REPLICAS_KILL_WINDOW_MS', 15_000, 2_000, 120_000);
  return {
    counts,
    contributors: envNumber('BENCH_REPLICAS_CONTRIBUTORS', 1_000, 1, 5_000),
    lanes: envNumber('BENCH_REPLICAS_LANES', 128, 1, 1_000),
    sockets: envNumber('BENCH_REPLICAS_SOCKETS', 6, 1, 64),
    payloadBytes: envNumber('BENCH_REPLICAS_PAYLOAD', 1_024, 16, 100_000),
    warmupMs: envNumber('BENCH_REPLICAS_WARMUP_MS', 2_000, 0, 30_000),
    windowMs,
    cross: envNumber('BENCH_REPLICAS_CROSS', 1, 0, 1) === 1,
    kill: envNumber('BENCH_REPLICAS_KILL', 1, 0, 1) === 1,
    killAtMs: envNumber('BENCH_REPLICAS_KILL_AT_MS', 3_000, 500, killWindowMs - 1_000),
    killWindowMs,
    idleMs: envNumber('BENCH_REPLICAS_IDLE_MS', 2_000, 500, 60_000),
  };
}

/** Replicas sharing one schema, with their contributors. */
export interface Cluster {
  replicas: Child[];
  pools: ContributorPool[];
  /** Contributors of replica i serve models[i]. */
  models: string[];
  /** The model requesters on replica i ask for. */
  asks: string[];
  /** How long connecting every contributor took (handshakes, 64 at once), ms. */
  connectMs: number;
}

const loadAverage = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

/** Starts `n` replica processes on a fresh schema (the first migrates it) and connects the contributors, spread over them. */
async function startCluster(n: number, schema: string, cfg: LoadConfig, closers: (() => Promise<void>)[]): Promise<Cluster> {
  const spawn = (i: number): Promise<Child> =>
    Child.spawn('replica', cfg.sockets, 180_000, { replicaId: `r${i}`, databaseUrl: TEST_DATABASE_URL, schema, natsUrl: NATS_URL });
  const first = await spawn(0);
  closers.push(() => first.close());
  const rest = await Promise.all(Array.from({ length: n - 1 }, (_, i) => spawn(i + 1)));
  for (const r of rest) closers.push(() => r.close());
  const replicas = [first, ...rest];
  for (let i = 0; i < 600; i++) {
    const heard = await Promise.all(replicas.map((r) => r.call({ cmd: 'peers' })));
    if (heard.every((p) => p === n - 1)) break;
    if (i === 599) throw new Error(`the replicas did not hear each other within 30 s (${heard.join(', ')} peers)`);
    await sleep(50);
  }
  const models = replicas.map((_, i) => (cfg.cross ? `bench-model-${i}` : 'bench-model-0'));
  const asks = replicas.map((_, i) => models[(i + 1) % n] ?? '');
  // One slot each, or more when there are fewer contributors than twice the lanes (as the dispatch bench).
  const slots = Math.min(64, Math.max(1, Math.ceil((2 * cfg.lanes) / cfg.contributors)));
  const pools: ContributorPool[] = [];
  const t0 = performance.now();
  for (const [i, replica] of replicas.entries()) {
    const count = Math.floor(cfg.contributors / n) + (i < cfg.contributors % n ? 1 : 0);
    const pool = await ContributorPool.connect({
      url: replica.ready.url,
      count,
      slots,
      model: models[i] ?? '',
      resultBytes: cfg.payloadBytes,
    });
    closers.push(() => pool.close());
    pools.push(pool);
    const connected = await replica.call({ cmd: 'connected' });
    if (connected !== count) throw new Error(`${connected} of ${count} contributors connected to replica ${i}`);
  }
  return { replicas, pools, models, asks, connectMs: performance.now() - t0 };
}

export interface SteadyResult {
  n: number;
  load: LoadResult;
  dispatch: LatencySummary;
  /** Coordinator CPU, summed over the replicas, in cores (1 = one core busy). */
  coordinatorCpu: number;
  /** Coordinator CPU summed over the replicas with no jobs (heartbeats, pings, timers), cores. */
  idleCpu: number;
  /** This process's CPU (the contributors and the requesters), cores. */
  driverCpu: number;
  connectMs: number;
  contributors: number;
  /** The NATS server's and PostgreSQL's CPU in the window, cores; null without /proc. */
  services: { nats: number; postgres: number } | null;
  loadBefore: string;
  loadAfter: string;
  loggedErrors: string[];
}

/** Requester channels on every replica in `use`, each asking for the model the next replica's contributors serve. */
export function endpoints(cluster: Cluster, use: number[]): ChannelEndpoint[] {
  return use.map((i) => ({
    url: cluster.replicas[i]?.ready.url ?? '',
    model: cluster.asks[i] ?? '',
    keys: cluster.replicas[i]?.ready.keys ?? [],
  }));
}

/** The replicas' CPU with their contributors connected and nothing to do, cores summed. */
async function idleCpu(cluster: Cluster, cfg: LoadConfig): Promise<number> {
  await sleep(500); // the contributors' records written, the connect's garbage collected
  const from = epochMs() + 20;
  const meters = cluster.replicas.map((r) => cpuMeter(r, from, from + cfg.idleMs));
  await sleep(cfg.idleMs + 40);
  let cores = 0;
  for (const meter of meters) cores += (await meter()).server;
  return cores;
}

async function steady(n: number, cluster: Cluster, cfg: LoadConfig): Promise<SteadyResult> {
  const idle = await idleCpu(cluster, cfg);
  const loadBefore = loadAverage();
  const startAt = epochMs() + 50;
  const windowStart = startAt + cfg.warmupMs;
  const windowEnd = windowStart + cfg.windowMs;
  for (const pool of cluster.pools) pool.record(0, windowStart, windowEnd);
  const meters = cluster.replicas.map((r) => cpuMeter(r, windowStart, windowEnd));
  const services: { reading: ServiceReading; at: number }[] = [];
  const sample = (): void => {
    const reading = readServices();
    if (reading !== null) services.push({ reading, at: epochMs() });
  };
  const timers = [windowStart, windowEnd].map((t) => setTimeout(sample, t - epochMs()));
  const use = cluster.replicas.map((_, i) => i);
  const es = endpoints(cluster, use);
  const load = await runChannelLoad({
    url: es[0]?.url ?? '',
    model: es[0]?.model ?? '',
    keys: [],
    endpoints: es,
    sockets: Math.max(cfg.sockets, n),
    lanes: cfg.lanes,
    payloadBytes: cfg.payloadBytes,
    startAt,
    warmupMs: cfg.warmupMs,
    windowMs: cfg.windowMs,
    maxJobs: 10_000_000,
  });
  timers.forEach(clearTimeout);
  let coordinatorCpu = 0;
  let driverCpu = 0;
  for (const meter of meters) {
    const used = await meter();
    coordinatorCpu += used.server;
    driverCpu = used.driver;
  }
  const dispatch = new Samples();
  for (const pool of cluster.pools) dispatch.addAll(pool.stop().dispatch);
  const [a, b] = services;
  const used = a !== undefined && b !== undefined ? serviceCpu(a.reading, b.reading) : null;
  const seconds = a !== undefined && b !== undefined ? (b.at - a.at) / 1000 : Number.NaN;
  const loggedErrors: string[] = [];
  for (const r of cluster.replicas) loggedErrors.push(...(await r.call({ cmd: 'report' })).loggedErrors);
  return {
    n,
    load,
    dispatch: dispatch.summary(),
    coordinatorCpu,
    idleCpu: idle,
    driverCpu,
    connectMs: cluster.connectMs,
    contributors: cluster.pools.reduce((sum, pool) => sum + pool.size, 0),
    services: used === null ? null : { nats: used.nats / 1000 / seconds, postgres: used.postgres / 1000 / seconds },
    loadBefore,
    loadAfter: loadAverage(),
    loggedErrors,
  };
}

/** CPU ms per job from a share of cores. */
const perJob = (cores: number, jobsPerSecond: number): number => (cores * 1000) / jobsPerSecond;
const x = (value: number, base: number | undefined): string =>
  base === undefined || !Number.isFinite(value / base) ? '' : ` (×${(value / base).toFixed(2)})`;

function printSteady(r: SteadyResult, base: SteadyResult | undefined): void {
  const failures = Object.entries(r.load.failures).map(([k, v]) => `${k}×${v}`);
  const coord = perJob(r.coordinatorCpu, r.load.jobsPerSecond);
  const baseCoord = base === undefined ? undefined : perJob(base.coordinatorCpu, base.load.jobsPerSecond);
  const net = perJob(r.coordinatorCpu - r.idleCpu, r.load.jobsPerSecond);
  const baseNet = base === undefined ? undefined : perJob(base.coordinatorCpu - base.idleCpu, base.load.jobsPerSecond);
  const svc = r.services;
  const svcText =
    svc === null
      ? ''
      : `  NATS ${ms(perJob(svc.nats, r.load.jobsPerSecond))} ms/job, PostgreSQL ${ms(perJob(svc.postgres, r.load.jobsPerSecond))} ms/job`;
  console.log(
    `  ${r.n} replica(s): ${int(r.load.jobsPerSecond).padStart(6)} jobs/s${x(r.load.jobsPerSecond, base?.load.jobsPerSecond)}  ` +
      `e2e p50 ${ms(r.load.endToEnd.p50)} p99 ${ms(r.load.endToEnd.p99)} ms  ` +
      `dispatch p50 ${ms(r.dispatch.p50)}${x(r.dispatch.p50, base?.dispatch.p50)} p99 ${ms(r.dispatch.p99)} ms  ` +
      `coordinator CPU ${(r.coordinatorCpu * 100).toFixed(0)}% summed, ${ms(coord)} ms/job${x(coord, baseCoord)}, ` +
      `${ms(net)} ms/job${x(net, baseNet)} over the ${(r.idleCpu * 100).toFixed(0)}% idle${svcText}  ` +
      `driver CPU ${(r.driverCpu * 100).toFixed(0)}%  ${int(r.contributors)} contributors welcomed in ${ms(r.connectMs)} ms ` +
      `(${int((r.contributors / r.connectMs) * 1000)}/s)  load average ${r.loadBefore} → ${r.loadAfter}${failures.length > 0 ? `  failures: ${failures.join(', ')}` : ''}` +
      `${r.loggedErrors.length > 0 ? `  logged errors: ${r.loggedErrors.slice(0, 3).join(' | ')}` : ''}`,
  );
}

/** Runs the load part of the replicas suite and prints its results. */
export async function runReplicaLoadBench(): Promise<void> {
  const cfg = config();
  const started = performance.now();
  console.log(
    `\nReplicas under load: ${int(cfg.contributors)} contributors and ${cfg.lanes} requester lanes on ${cfg.counts.join(', ')} ` +
      `replica process(es) (PostgreSQL, NATS), ${cfg.cross ? 'every job on another replica than its requester' : 'one model everywhere'}, ` +
      `${cfg.payloadBytes} B payloads, ${cfg.warmupMs} ms warm-up, ${cfg.windowMs} ms window ` +
      `(Node ${process.version}, ${os.cpus().length} CPUs, load average ${loadAverage()})`,
  );
  const results: SteadyResult[] = [];
  const kills: KillResult[] = [];
  for (const n of cfg.counts) {
    const schema = uniqueSchema('bench_replicas_load');
    const closers: (() => Promise<void>)[] = [];
    try {
      const cluster = await startCluster(n, schema, cfg, closers);
      const result = await steady(n, cluster, cfg);
      results.push(result);
      printSteady(
        result,
        results.find((r) => r.n === 1),
      );
      if (cfg.kill && n >= 2) {
        const survivors = cluster.replicas.slice(0, -1).map((_, i) => i);
        const kill = await runKill(cluster, cfg, endpoints(cluster, survivors));
        kills.push(kill);
        printKill(kill);
      }
    } finally {
      for (const close of closers.reverse()) await close().catch((err: unknown) => console.error(err));
      const store = await openStore({ databaseUrl: TEST_DATABASE_URL, schema });
      await disposeStore(store);
    }
  }
  console.log(`\nReplicas under load took ${((performance.now() - started) / 1000).toFixed(0)} s.`);
}
