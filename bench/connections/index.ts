/**
 * `BENCH_ONLY=connections npm run bench`: many contributor WebSockets held open against one
 * coordinator (a child process, the embedded store), each a real worker: its own Ed25519 key,
 * a signed hello, capabilities, a lease, a ping every 5 s. First a baseline of
 * `BENCH_CONNECTIONS_BASE` (default 1,000), then up to `BENCH_CONNECTIONS` (default 10,000) on
 * the same coordinator, held for `BENCH_HOLD_S` (default 30) seconds, `BENCH_CONNECT_PARALLEL`
 * (default 16) handshakes at once. Printed: the coordinator's heap and RSS per connection added
 * (after GC), hello → welcome latency p50/p99 while the others are
 * held, how many are still connected after the hold, and each figure's ratio to the baseline.
 *
 * Then, with the connections still held, the load phase (bench/connections/load.ts; off with
 * `BENCH_LOAD_RATE=0`): jobs offered at `BENCH_LOAD_RATE` per second (default 200) for
 * `BENCH_LOAD_S` seconds (default 10) over `BENCH_LOAD_SOCKETS` requester channels (default 8),
 * answered by the held contributors. Printed: offered, achieved jobs/s, end-to-end and dispatch
 * p50/p99, lost (must be 0), the coordinator's memory per connection and the load average.
 * The issue's target: `BENCH_CONNECTIONS=10000 BENCH_LOAD_RATE=2000 BENCH_LOAD_S=60`.
 *
 * The per-address limit is lifted in the child (every socket comes from loopback); workers
 * hello without a wallet, so the per-wallet limit does not apply. File descriptors: each
 * socket costs one in this process and one in the coordinator's; the count is capped at what
 * the lower soft limit allows (the runner raises the soft limit to the hard one, see below).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { ContributorPool } from '../dispatch/contributors.ts';
import { Child, type MemorySample } from '../dispatch/ipc.ts';
import { epochMs, type LatencySummary, Samples, sleep } from '../dispatch/stats.ts';
import { runOfferedLoad } from './load.ts';

/** The soft and hard limits on open files of this process (what `ulimit -n` shows). */
function fileLimits(): { soft: number; hard: number } {
  const read = (flag: string): number => {
    const out = execFileSync('bash', ['-c', `ulimit ${flag}`])
      .toString()
      .trim();
    return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out);
  };
  return { soft: read('-Sn'), hard: read('-Hn') };
}

/**
 * Runs this benchmark again under `ulimit -n <hard>` when the soft limit is lower (a shell can
 * raise it; Node cannot). Returns true when it did (the caller stops: the re-run printed).
 */
export function rerunWithMoreFiles(): boolean {
  const { soft, hard } = fileLimits();
  if (process.env['BENCH_FILES_RAISED'] === '1' || soft >= hard) return false;
  const target = Number.isFinite(hard) ? String(hard) : '1048576';
  console.log(`open files: soft limit ${soft}, hard ${hard}; running again under ulimit -n ${target}`);
  const result = spawnSync(
    'bash',
    ['-c', `ulimit -n ${target} && exec "$@"`, 'bench', process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    { stdio: 'inherit', env: { ...process.env, BENCH_FILES_RAISED: '1', BENCH_ONLY: 'connections' } },
  );
  if (result.status !== 0) throw new Error(`the connections benchmark failed (exit ${result.status ?? result.signal})`);
  return true;
}

interface Step {
  connections: number;
  /** Per connection added in this step, bytes. */
  heapPerConn: number;
  rssPerConn: number;
  heapTotal: number;
  rssTotal: number;
  hello: LatencySummary;
  connectS: number;
  stillConnected: number;
}

const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
const ms = (value: number): string => `${value.toFixed(1)} ms`;

export async function runConnectionsBench(): Promise<void> {
  if (rerunWithMoreFiles()) return;
  const { soft, hard } = fileLimits();
  const wanted = Number(process.env['BENCH_CONNECTIONS'] ?? 10_000);
  const base = Number(process.env['BENCH_CONNECTIONS_BASE'] ?? 1_000);
  const holdS = Number(process.env['BENCH_HOLD_S'] ?? 30);
  const parallel = Number(process.env['BENCH_CONNECT_PARALLEL'] ?? 16);
  const loadRate = Number(process.env['BENCH_LOAD_RATE'] ?? 200);
  const loadS = Number(process.env['BENCH_LOAD_S'] ?? 10);
  const loadSockets = Number(process.env['BENCH_LOAD_SOCKETS'] ?? 8);
  // Headroom for the coordinator's own files (modules, the store, IPC) and this process's.
  const allowed = Math.max(base, Math.min(wanted, soft - 512));
  console.log(
    `\nConnections: ${allowed} contributor WebSockets held on one coordinator (asked ${wanted}; open files soft ${soft}, hard ${hard}), baseline ${base}`,
  );
  // One API key per requester channel (the coordinator limits channels per key).
  const child = await Child.spawn('coordinator', Math.max(1, loadSockets), 120_000);
  const pools: ContributorPool[] = [];
  try {
    await sleep(3_000); // past start-up's garbage
    const empty = await child.call({ cmd: 'memory' });
    const steps: Step[] = [];
    let held = 0;
    let before = empty;
    for (const target of [base, allowed]) {
      const held0 = held;
      const helloMs = new Samples();
      const started = performance.now();
      pools.push(
        await ContributorPool.connect({
          url: child.ready.url,
          count: target - held,
          slots: 1,
          model: 'bench-model',
          resultBytes: 16,
          connectParallel: parallel,
          helloMs,
          // A loaded machine answers slowly; a slow handshake is measured, not failed.
          stepTimeoutMs: 120_000,
        }),
      );
      const connectS = (performance.now() - started) / 1000;
      held = target;
      // Held: pings flow, nothing else; the coordinator must keep every one.
      await sleep(target === allowed ? holdS * 1000 : 2_000);
      const stillConnected = await child.call({ cmd: 'connected' });
      const mem = await child.call({ cmd: 'memory' });
      // Per connection added in this step: what it cost over the step before.
      steps.push({
        connections: target,
        heapPerConn: (mem.heapUsed - before.heapUsed) / (target - held0),
        rssPerConn: (mem.rss - before.rss) / (target - held0),
        heapTotal: mem.heapUsed,
        rssTotal: mem.rss,
        hello: helloMs.summary(),
        connectS,
        stillConnected,
      });
      before = mem;
    }
    const report = await child.call({ cmd: 'report' });
    console.log(
      `coordinator before any: heap ${(empty.heapUsed / 2 ** 20).toFixed(1)} MiB, RSS ${(empty.rss / 2 ** 20).toFixed(1)} MiB (after GC: ${empty.afterGc}); ${parallel} handshakes at once\n` +
        `${'connections'.padStart(11)} ${'heap MiB'.padStart(9)} ${'RSS MiB'.padStart(9)} ${'heap/conn'.padStart(11)} ${'RSS/conn'.padStart(11)} ${'hello p50'.padStart(10)} ${'hello p99'.padStart(10)} ${'connect'.padStart(9)} ${'held after'.padStart(10)}`,
    );
    for (const s of steps) {
      console.log(
        `${String(s.connections).padStart(11)} ${(s.heapTotal / 2 ** 20).toFixed(1).padStart(9)} ${(s.rssTotal / 2 ** 20).toFixed(1).padStart(9)} ${kib(s.heapPerConn).padStart(11)} ${kib(s.rssPerConn).padStart(11)} ${ms(s.hello.p50).padStart(10)} ${ms(s.hello.p99).padStart(10)} ${`${s.connectS.toFixed(1)} s`.padStart(9)} ${String(s.stillConnected).padStart(10)}`,
      );
    }
    const [b, t] = steps;
    if (b !== undefined && t !== undefined) {
      console.log(
        `ratios ${t.connections} vs ${b.connections}: heap/conn ×${(t.heapPerConn / b.heapPerConn).toFixed(2)}, RSS/conn ×${(t.rssPerConn / b.rssPerConn).toFixed(2)}, ` +
          `hello p50 ×${(t.hello.p50 / b.hello.p50).toFixed(2)}, p99 ×${(t.hello.p99 / b.hello.p99).toFixed(2)} ` +
          `(the larger step's hellos ran while ${b.connections} were held); lost during the ${holdS} s hold: ${t.connections - t.stillConnected}`,
      );
    }
    if (loadRate > 0 && loadS > 0) await loadPhase(child, pools, held, empty, { rate: loadRate, seconds: loadS, sockets: loadSockets });
    const unusual = new Map<string, number>();
    for (const p of pools) for (const [k, v] of p.unusual) unusual.set(k, (unusual.get(k) ?? 0) + v);
    if (unusual.size > 0) console.log(`unusual messages: ${JSON.stringify(Object.fromEntries(unusual))}`);
    console.log(
      `coordinator event loop p99 ${report.loop.p99.toFixed(1)} ms (max ${report.loop.max.toFixed(1)}), errors logged ${report.loggedErrors.length}${report.loggedErrors.length > 0 ? `: ${report.loggedErrors.slice(0, 3).join(' | ')}` : ''}`,
    );
  } finally {
    for (const p of pools) await p.close(30_000);
    await child.close();
  }
}

/** The load phase: jobs at an offered rate over the requester channel while `connections` contributors are held. */
async function loadPhase(
  child: Child,
  pools: readonly ContributorPool[],
  connections: number,
  empty: MemorySample,
  o: { rate: number; seconds: number; sockets: number },
): Promise<void> {
  const before = await child.call({ cmd: 'memory' });
  await child.call({ cmd: 'report' }); // resets the event-loop delay
  const jobsBefore = pools.reduce((n, p) => n + p.jobs, 0);
  const load0 = loadavg();
  // Requester and contributors share this process's clock: no offset. Dispatch is recorded over the whole phase.
  const from = epochMs();
  for (const p of pools) p.record(0, from, from + o.seconds * 1000 + 120_000);
  console.log(`\nLoad: ${o.rate} jobs/s offered for ${o.seconds} s over ${o.sockets} requester channels, ${connections} contributors held`);
  const result = await runOfferedLoad({
    url: child.ready.url,
    keys: child.ready.keys,
    sockets: o.sockets,
    rate: o.rate,
    seconds: o.seconds,
    model: 'bench-model',
    payloadBytes: 256,
    stepTimeoutMs: 60_000,
  });
  const dispatch = new Samples();
  for (const p of pools) dispatch.addAll(p.stop().dispatch);
  const load1 = loadavg();
  const report = await child.call({ cmd: 'report' });
  const stillConnected = await child.call({ cmd: 'connected' });
  const after = await child.call({ cmd: 'memory' });
  const served = pools.reduce((n, p) => n + p.jobs, 0) - jobsBefore;
  const e2e = result.endToEnd;
  const d = dispatch.summary();
  console.log(
    `offered ${result.offered}, started ${result.started}, completed ${result.completed}, lost ${result.lost}` +
      `${result.lost > 0 ? ` (${JSON.stringify(result.failures)})` : ''}; job frames the contributors received ${served}\n` +
      `achieved ${result.achievedPerSecond.toFixed(1)} jobs/s (×${(result.achievedPerSecond / o.rate).toFixed(3)} of offered); ` +
      `generator lag max ${result.maxLagMs.toFixed(1)} ms\n` +
      `end to end (create → result) p50 ${ms(e2e.p50)} p99 ${ms(e2e.p99)} max ${ms(e2e.max)}; ` +
      `dispatch (payload sent → job frame) p50 ${ms(d.p50)} p99 ${ms(d.p99)} (${d.count} frames)\n` +
      `coordinator after the load: heap ${(after.heapUsed / 2 ** 20).toFixed(1)} MiB, RSS ${(after.rss / 2 ** 20).toFixed(1)} MiB ` +
      `(${kib((after.rss - empty.rss) / connections)} RSS, ${kib((after.heapUsed - empty.heapUsed) / connections)} heap per connection over the empty coordinator; ` +
      `heap ${after.heapUsed >= before.heapUsed ? '+' : ''}${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(1)} MiB over the phase); ` +
      `event loop p99 ${report.loop.p99.toFixed(1)} ms (max ${report.loop.max.toFixed(1)}); still connected ${stillConnected}\n` +
      `load average (1 min) ${load0[0]?.toFixed(2) ?? '?'} before, ${load1[0]?.toFixed(2) ?? '?'} after; ` +
      `errors logged ${report.loggedErrors.length}`,
  );
}
