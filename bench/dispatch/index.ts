/**
 * Coordinator dispatch benchmark (`BENCH_ONLY=dispatch npm run bench`): jobs/s and latency
 * of empty jobs through a real coordinator (embedded PGlite store, in memory) with N
 * simulated contributors on loopback, against a raw `ws` echo baseline of the same message
 * sizes and concurrency; plus the coordinator's memory per connected contributor.
 *
 * Layout: the coordinator (or the echo server) runs in a child process (ipc.ts, child.ts),
 * so it has one of the machine's cores to itself and its memory is its own; this process
 * runs the contributors (contributors.ts) and the HTTP requesters (requesters.ts). The
 * in-process requester variant runs the same requester code inside the coordinator's
 * process, calling `coordinator.app.fetch` (the same routes without sockets or HTTP parsing).
 *
 * Speed is printed, never asserted. Knobs (env): BENCH_DISPATCH_SIZES (10,100,1000),
 * BENCH_DISPATCH_LANES (128), BENCH_DISPATCH_PAYLOAD (1024 bytes), BENCH_DISPATCH_WINDOW_MS
 * (4000), BENCH_DISPATCH_WARMUP_MS (1500), BENCH_DISPATCH_PROFILE (a folder: V8 CPU profiles
 * of the server processes).
 */
import os from 'node:os';
import { ContributorPool } from './contributors.ts';
import { hotPaths } from './hot-paths.ts';
import { EchoClients, type EchoResult } from './echo.ts';
import { Child, type CoordinatorReport, type MemorySample } from './ipc.ts';
import { httpTransport, type LoadResult, runLoad, type Transport } from './requesters.ts';
import { runChannelLoad } from './channel-load.ts';
import { clockOffset, cpuMeter } from './meter.ts';
import { envNumber, epochMs, int, kib, type LatencySummary, mib, ms, sleep } from './stats.ts';

const MODEL = 'bench-model';

interface Config {
  sizes: number[];
  lanes: number;
  lightLanes: number;
  payloadBytes: number;
  warmupMs: number;
  windowMs: number;
}

function config(): Config {
  const sizes = (process.env['BENCH_DISPATCH_SIZES'] ?? '10,100,1000')
    .split(',')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0 && n <= 5_000);
  return {
    sizes: sizes.length > 0 ? sizes : [10, 100, 1000],
    lanes: envNumber('BENCH_DISPATCH_LANES', 128, 1, 1_000),
    lightLanes: 4,
    payloadBytes: envNumber('BENCH_DISPATCH_PAYLOAD', 1024, 16, 1_000_000),
    warmupMs: envNumber('BENCH_DISPATCH_WARMUP_MS', 1_500, 0, 30_000),
    windowMs: envNumber('BENCH_DISPATCH_WINDOW_MS', 4_000, 500, 60_000),
  };
}

/** Sizes of the two frames the raw baseline exchanges, as the coordinator and a worker send them. */
function frameSizes(payloadBytes: number): { job: number; chunk: number } {
  const blob = 'A'.repeat(Math.ceil((payloadBytes * 4) / 3));
  const enc = 'E'.repeat(43);
  const ids = { jobId: 'J'.repeat(22), leaseId: 'L'.repeat(16) };
  const job = { v: 1, type: 'job', ...ids, model: MODEL, kind: 'chat', attempt: 1, deadline: Date.now(), sealed: { enc, ct: blob } };
  const usage = { promptTokens: 1, completionTokens: 1 };
  const chunk = { v: 1, type: 'chunk', ...ids, seq: 0, final: true, sealed: { enc, ct: blob }, usage };
  return { job: JSON.stringify(job).length, chunk: JSON.stringify(chunk).length };
}

/** Slots per worker: enough that the requester lanes never wait for a free slot. */
function slotsFor(n: number, lanes: number): number {
  return Math.min(64, Math.max(1, Math.ceil((2 * lanes) / n)));
}

function load(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
}

interface Phase {
  name: string;
  load: LoadResult;
  /** Payload PUT sent → job frame at the worker, ms. */
  dispatch: LatencySummary;
  /** Share of one core the server process used in the window (1 = one core busy). */
  serverCpu: number;
  /** Share of one core this (driver) process used in the window. */
  driverCpu: number;
  /** The coordinator's event-loop delay during the phase, ms. */
  loop: { p99: number; max: number };
  /** Time to open the lanes' keep-alive sockets before the run, ms. */
  prepareMs?: number;
}

interface EchoRun extends EchoResult {
  serverCpu: number;
  memBefore: MemorySample;
  memConnected: MemorySample;
}

interface SizeResult {
  n: number;
  slots: number;
  connectMs: number;
  memBefore: MemorySample;
  memConnected: MemorySample;
  memAfterRun: MemorySample;
  phases: Phase[];
  report: CoordinatorReport;
  echo: EchoRun;
  loadBefore: string;
  loadAfter: string;
}

async function httpPhase(
  name: string,
  child: Child,
  transport: Transport,
  pool: ContributorPool,
  keys: readonly string[],
  lanes: number,
  cfg: Config,
  windowMs = cfg.windowMs,
): Promise<Phase> {
  const t0 = performance.now();
  await transport.prepare(lanes);
  const prepareMs = performance.now() - t0;
  await child.call({ cmd: 'report' }); // resets the event-loop delay histogram
  const startAt = epochMs() + 20;
  const windowStart = startAt + cfg.warmupMs;
  pool.record(0, windowStart, windowStart + windowMs);
  const cpu = cpuMeter(child, windowStart, windowStart + windowMs);
  const result = await runLoad({ transport, keys, lanes, model: MODEL, payloadBytes: cfg.payloadBytes, startAt, ...timing(cfg, windowMs) });
  const used = await cpu();
  const { loop } = await child.call({ cmd: 'report' });
  return { name, load: result, dispatch: pool.stop().dispatch.summary(), serverCpu: used.server, driverCpu: used.driver, loop, prepareMs };
}

/** The same lanes on the requester channel: a few WebSockets, one round trip per job. */
async function channelPhase(
  child: Child,
  pool: ContributorPool,
  keys: readonly string[],
  lanes: number,
  cfg: Config,
  windowMs = cfg.windowMs,
  ahead = 0,
): Promise<Phase> {
  await child.call({ cmd: 'report' });
  const startAt = epochMs() + 20;
  const windowStart = startAt + cfg.warmupMs;
  pool.record(0, windowStart, windowStart + windowMs);
  const cpu = cpuMeter(child, windowStart, windowStart + windowMs);
  const sockets = Math.min(lanes, CHANNEL_SOCKETS);
  const result = await runChannelLoad({
    url: child.ready.url,
    keys,
    sockets,
    lanes,
    model: MODEL,
    payloadBytes: cfg.payloadBytes,
    startAt,
    ...(ahead > 0 && { assignAhead: ahead }),
    ...timing(cfg, windowMs),
  });
  const used = await cpu();
  const { loop } = await child.call({ cmd: 'report' });
  const name = `channel${ahead > 0 ? '+ahead' : ''}, ${lanes} lanes/${sockets} ws`;
  return { name, load: result, dispatch: pool.stop().dispatch.summary(), serverCpu: used.server, driverCpu: used.driver, loop };
}

/** WebSockets the channel phases multiplex their lanes over. */
const CHANNEL_SOCKETS = 4;
/**
 * Assignments each socket keeps in hand in the ahead-of-need phases: the protocol's largest
 * batch, or the slots the lanes' own jobs leave free shared among the sockets, if fewer.
 */
function aheadPerSocket(freeSlots: number, lanes: number): number {
  return Math.max(1, Math.min(64, Math.floor((freeSlots - lanes) / Math.min(lanes, CHANNEL_SOCKETS))));
}

function timing(cfg: Config, windowMs: number): { warmupMs: number; windowMs: number; maxJobs: number } {
  return { warmupMs: cfg.warmupMs, windowMs, maxJobs: 2_000_000 };
}

async function inProcessPhase(child: Child, pool: ContributorPool, lanes: number, cfg: Config): Promise<Phase> {
  const offset = await clockOffset(child);
  await child.call({ cmd: 'report' });
  const startAt = epochMs() + 50;
  const windowStart = startAt + cfg.warmupMs;
  pool.record(offset, windowStart, windowStart + cfg.windowMs);
  const cpu = cpuMeter(child, windowStart, windowStart + cfg.windowMs);
  const result = await child.call({
    cmd: 'load',
    options: {
      lanes,
      sharedKey: false,
      model: MODEL,
      payloadBytes: cfg.payloadBytes,
      startAt: startAt + offset,
      ...timing(cfg, cfg.windowMs),
    },
  });
  const used = await cpu();
  const { loop } = await child.call({ cmd: 'report' });
  const dispatch = pool.stop().dispatch.summary();
  return { name: 'in-process app.fetch', load: result, dispatch, serverCpu: used.server, driverCpu: used.driver, loop };
}

async function echoBaseline(n: number, slots: number, inflight: number, cfg: Config): Promise<EchoRun> {
  const sizes = frameSizes(cfg.payloadBytes);
  const child = await Child.spawn('echo', 1);
  try {
    const memBefore = await child.call({ cmd: 'memory' });
    const clients = await EchoClients.connect(child.ready.url, n, sizes.chunk);
    try {
      for (let i = 0; i < 100 && (await child.call({ cmd: 'connected' })) < n; i++) await sleep(20);
      const memConnected = await child.call({ cmd: 'memory' });
      const windowStart = epochMs() + cfg.warmupMs;
      const cpu = cpuMeter(child, windowStart, windowStart + cfg.windowMs);
      const options = {
        inflight,
        slots,
        jobFrameBytes: sizes.job,
        warmupMs: cfg.warmupMs,
        windowMs: cfg.windowMs,
        maxMessages: 20_000_000,
      };
      const result = await child.call({ cmd: 'echo', options });
      return { ...result, serverCpu: (await cpu()).server, memBefore, memConnected };
    } finally {
      await clients.close();
    }
  } finally {
    await child.close();
  }
}

function phaseLine(n: number, p: Phase): string {
  const failures = Object.entries(p.load.failures)
    .map(([k, v]) => `${k}×${v}`)
    .join(', ');
  return (
    `  N=${n} ${p.name.padEnd(24)} ${int(p.load.jobsPerSecond).padStart(6)} jobs/s  e2e p50 ${ms(p.load.endToEnd.p50)} p99 ${ms(p.load.endToEnd.p99)} ms  ` +
    `dispatch p50 ${ms(p.dispatch.p50)} p99 ${ms(p.dispatch.p99)} ms  PUT p50 ${ms(p.load.putRoundTrip.p50)} ms  ` +
    `cpu coord ${(p.serverCpu * 100).toFixed(0)}% (${ms(cpuPerJob(p))} ms/job) driver ${(p.driverCpu * 100).toFixed(0)}%  ` +
    `loop delay p99 ${ms(p.loop.p99)} max ${ms(p.loop.max)} ms` +
    `${p.prepareMs === undefined ? '' : `  (sockets opened in ${ms(p.prepareMs)} ms)`}${failures === '' ? '' : `  failures: ${failures}`}`
  );
}

/** Coordinator CPU per job in the window, ms. */
function cpuPerJob(p: Phase): number {
  return (p.serverCpu * 1000) / p.load.jobsPerSecond;
}

async function runSize(n: number, cfg: Config): Promise<SizeResult> {
  const loadBefore = load();
  const slots = slotsFor(n, cfg.lanes);
  const child = await Child.spawn('coordinator', cfg.lanes);
  let pool: ContributorPool | null = null;
  try {
    await sleep(200);
    const memBefore = await child.call({ cmd: 'memory' });
    const t0 = performance.now();
    pool = await ContributorPool.connect({ url: child.ready.url, count: n, slots, model: MODEL, resultBytes: cfg.payloadBytes });
    const connectMs = performance.now() - t0;
    const connected = await child.call({ cmd: 'connected' });
    if (connected !== n) throw new Error(`${connected} of ${n} contributors connected`);
    const memConnected = await child.call({ cmd: 'memory' });
    console.log(
      `  N=${n}: ${n} contributors welcomed in ${ms(connectMs)} ms (${int((n / connectMs) * 1000)}/s), ${slots} slot(s) each; ` +
        `coordinator heap ${mib(memBefore.heapUsed)}, RSS ${mib(memBefore.rss)} before, +${kib((memConnected.heapUsed - memBefore.heapUsed) / n)} heap, ` +
        `+${kib((memConnected.rss - memBefore.rss) / n)} RSS per contributor; load average ${loadBefore}`,
    );

    const phases: Phase[] = [];
    const show = (p: Phase): void => {
      phases.push(p);
      console.log(phaseLine(n, p));
    };
    const transport = httpTransport(child.ready.url);
    try {
      const perLane = child.ready.keys;
      show(await httpPhase(`HTTP, ${cfg.lanes} lanes`, child, transport, pool, perLane, cfg.lanes, cfg));
      const light = Math.min(cfg.windowMs, 2_000);
      show(await httpPhase(`HTTP, ${cfg.lightLanes} lanes (light)`, child, transport, pool, perLane, cfg.lightLanes, cfg, light));
      if (n === Math.max(...cfg.sizes)) {
        show(await httpPhase(`HTTP, ${cfg.lanes} lanes, 1 key`, child, transport, pool, [child.ready.sharedKey], cfg.lanes, cfg));
      }
    } finally {
      transport.close();
    }
    show(await channelPhase(child, pool, child.ready.keys, cfg.lanes, cfg));
    show(await channelPhase(child, pool, child.ready.keys, cfg.lightLanes, cfg, Math.min(cfg.windowMs, 2_000)));
    show(await channelPhase(child, pool, child.ready.keys, cfg.lanes, cfg, cfg.windowMs, aheadPerSocket(n * slots, cfg.lanes)));
    const lightAhead = aheadPerSocket(n * slots, cfg.lightLanes);
    show(await channelPhase(child, pool, child.ready.keys, cfg.lightLanes, cfg, Math.min(cfg.windowMs, 2_000), lightAhead));
    show(await inProcessPhase(child, pool, cfg.lanes, cfg));
    const report = await child.call({ cmd: 'report' });
    const memAfterRun = await child.call({ cmd: 'memory' });
    const unusual = [...pool.unusual].map(([k, v]) => `${k}×${v}`);
    await pool.close();
    pool = null;
    await child.close();

    const echo = await echoBaseline(n, slots, cfg.lanes, cfg);
    console.log(
      `  N=${n} raw ws echo (${echo.inflight} in flight) ${int(echo.messagesPerSecond).padStart(7)} msg/s   round trip p50 ${ms(echo.roundTrip.p50)} p99 ${ms(echo.roundTrip.p99)} ms  ` +
        `cpu server ${(echo.serverCpu * 100).toFixed(0)}% (${ms((echo.serverCpu * 1000) / echo.messagesPerSecond)} ms/msg); ws server +${kib((echo.memConnected.heapUsed - echo.memBefore.heapUsed) / n)} heap, ` +
        `+${kib((echo.memConnected.rss - echo.memBefore.rss) / n)} RSS per connection`,
    );
    const r = report;
    const errors = Object.entries(r.stats.protocolErrors).map(([k, v]) => `${k}×${v}`);
    console.log(
      `  N=${n}: coordinator counted ${int(r.stats.jobs.done)} done, ${r.stats.jobs.failed} failed, ${r.stats.leaseExpiries} lease expiries, ` +
        `${r.stats.duplicates} duplicates${errors.length > 0 ? `, protocol errors ${errors.join(' ')}` : ''}${unusual.length > 0 ? `, workers saw ${unusual.join(' ')}` : ''}; ` +
        `store buffer ${r.bufferedJobs ?? '?'} records; /metrics dispatch (payload in → job frame written) ≤ 1 ms: ` +
        `${int(r.dispatchHistogram[0]?.count ?? 0)} of ${int(r.dispatchHistogram.at(-1)?.count ?? 0)}` +
        `${r.loggedErrors.length > 0 ? `; logged errors: ${r.loggedErrors.join(' | ')}` : ''}`,
    );
    return { n, slots, connectMs, memBefore, memConnected, memAfterRun, phases, report, echo, loadBefore, loadAfter: load() };
  } finally {
    await pool?.close();
    await child.close();
  }
}

function ratio(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : '—';
}

function printTable(results: SizeResult[], cfg: Config): void {
  const sizes = frameSizes(cfg.payloadBytes);
  console.log(
    `\nDispatch summary — payload ${cfg.payloadBytes} B sealed (job frame ${sizes.job} B, chunk frame ${sizes.chunk} B); ` +
      `${cfg.lanes} closed-loop requester lanes; ${cfg.windowMs / 1000} s window after ${cfg.warmupMs / 1000} s warm-up. ` +
      `e2e: POST → final chunk event; disp: PUT sent → job frame at the worker; ms.`,
  );
  const cols: [string, number][] = [
    ['N', 5],
    ['requesters', 24],
    ['jobs/s', 7],
    ['e2e p50', 8],
    ['e2e p99', 8],
    ['disp p50', 9],
    ['disp p99', 9],
    ['coord cpu', 9],
    ['cpu ms/job', 10],
    ['echo msg/s', 10],
    ['ratio', 6],
    ['cpu ratio', 9],
  ];
  console.log(cols.map(([h, w], i) => (i === 1 ? h.padEnd(w) : h.padStart(w))).join(' '));
  for (const r of results) {
    const echoCpuPerMsg = (r.echo.serverCpu * 1000) / r.echo.messagesPerSecond;
    for (const p of r.phases) {
      const row = [
        String(r.n),
        p.name,
        int(p.load.jobsPerSecond),
        ms(p.load.endToEnd.p50),
        ms(p.load.endToEnd.p99),
        ms(p.dispatch.p50),
        ms(p.dispatch.p99),
        `${(p.serverCpu * 100).toFixed(0)}%`,
        ms(cpuPerJob(p)),
        int(r.echo.messagesPerSecond),
        ratio(p.load.jobsPerSecond / r.echo.messagesPerSecond),
        ratio(echoCpuPerMsg / cpuPerJob(p)),
      ];
      console.log(row.map((v, i) => (i === 1 ? v.padEnd(cols[i]?.[1] ?? 0) : v.padStart(cols[i]?.[1] ?? 0))).join(' '));
    }
  }
  console.log(
    '  ratio: jobs/s ÷ echo msg/s (same N, same messages in flight); cpu ratio: echo server CPU per message ÷ coordinator CPU per job ' +
      '(less sensitive to other load on the machine).',
  );

  console.log(
    '\nCoordinator memory per connected contributor (median of 3 samples after full GCs; delta before → after connecting N; ' +
      'at small N the delta is mostly one-off allocations, N=1000 is the figure to read)',
  );
  console.log(
    `${'N'.padStart(5)} ${'heap/contrib'.padStart(13)} ${'RSS/contrib'.padStart(12)} ${'raw ws heap'.padStart(12)} ${'raw ws RSS'.padStart(11)}   after the run`,
  );
  for (const r of results) {
    const retained = (r.memAfterRun.heapUsed - r.memConnected.heapUsed) / Math.max(1, r.report.stats.jobs.done);
    console.log(
      [
        String(r.n).padStart(5),
        kib((r.memConnected.heapUsed - r.memBefore.heapUsed) / r.n).padStart(13),
        kib((r.memConnected.rss - r.memBefore.rss) / r.n).padStart(12),
        kib((r.echo.memConnected.heapUsed - r.echo.memBefore.heapUsed) / r.n).padStart(12),
        kib((r.echo.memConnected.rss - r.echo.memBefore.rss) / r.n).padStart(11),
        `  heap ${mib(r.memAfterRun.heapUsed)} (${mib(r.memConnected.heapUsed)} before the jobs), RSS ${mib(r.memAfterRun.rss)}; ` +
          `${int(r.report.stats.jobs.done)} finished jobs held for 60 s: ${kib(retained)} heap each`,
      ].join(' '),
    );
  }
  const r = results.find((x) => x.n === 1_000) ?? results[results.length - 1];
  const main = r?.phases[0];
  if (r !== undefined && main !== undefined) {
    const light = r.phases[1];
    const rate = main.load.jobsPerSecond / r.echo.messagesPerSecond;
    console.log(`\nIssue targets (N=${r.n}, HTTP requesters; load average ${r.loadBefore} → ${r.loadAfter} on ${os.cpus().length} CPUs):`);
    console.log(
      `  ≥ 5,000 jobs/s ............ ${int(main.load.jobsPerSecond)} jobs/s — ${main.load.jobsPerSecond >= 5_000 ? 'met' : 'NOT met'}`,
    );
    console.log(
      `  p99 < 25 ms ............... ${ms(main.load.endToEnd.p99)} ms at ${cfg.lanes} lanes (${main.load.endToEnd.p99 < 25 ? 'met' : 'NOT met'}); ` +
        `${ms(light?.load.endToEnd.p99 ?? Number.NaN)} ms at ${cfg.lightLanes} lanes`,
    );
    console.log(`  ≥ 0.25 of raw echo ........ ${ratio(rate)} — ${rate >= 0.25 ? 'met' : 'NOT met'}`);
    const channel = r.phases.find((p) => p.name.startsWith(`channel, ${cfg.lanes} `));
    if (channel !== undefined) {
      const c = channel.load;
      console.log(
        `  requester channel (${cfg.lanes} lanes): ${int(c.jobsPerSecond)} jobs/s (${ratio(c.jobsPerSecond / main.load.jobsPerSecond)}× HTTP), ` +
          `e2e p99 ${ms(c.endToEnd.p99)} ms (${ratio(c.endToEnd.p99 / main.load.endToEnd.p99)}× HTTP), dispatch p99 ${ms(channel.dispatch.p99)} ms, ` +
          `${ms(cpuPerJob(channel))} ms coordinator CPU per job (${ratio(cpuPerJob(channel) / cpuPerJob(main))}× HTTP), ` +
          `${ratio(c.jobsPerSecond / r.echo.messagesPerSecond)} of raw echo — ${c.jobsPerSecond >= 5_000 ? '≥ 5,000 met' : '≥ 5,000 NOT met'}, ` +
          `${c.endToEnd.p99 < 25 ? 'p99 < 25 ms met' : 'p99 < 25 ms NOT met'}, ${c.jobsPerSecond / r.echo.messagesPerSecond >= 0.25 ? '≥ 0.25 of echo met' : '≥ 0.25 of echo NOT met'}`,
      );
      const ahead = r.phases.find((p) => p.name.startsWith(`channel+ahead, ${cfg.lanes} `));
      if (ahead !== undefined) {
        const a = ahead.load;
        console.log(
          `  channel + assignments ahead of need (${cfg.lanes} lanes): ${int(a.jobsPerSecond)} jobs/s ` +
            `(${ratio(a.jobsPerSecond / c.jobsPerSecond)}× channel, ${ratio(a.jobsPerSecond / main.load.jobsPerSecond)}× HTTP), ` +
            `e2e p99 ${ms(a.endToEnd.p99)} ms (${ratio(a.endToEnd.p99 / c.endToEnd.p99)}× channel), dispatch p99 ${ms(ahead.dispatch.p99)} ms, ` +
            `${ms(cpuPerJob(ahead))} ms coordinator CPU per job (${ratio(cpuPerJob(ahead) / cpuPerJob(channel))}× channel), ` +
            `${ratio(a.jobsPerSecond / r.echo.messagesPerSecond)} of raw echo`,
        );
      }
    }
  }
}

/** Runs the whole dispatch benchmark and prints its results. */
export async function runDispatchBench(): Promise<void> {
  const cfg = config();
  const started = performance.now();
  console.log(
    `\nDispatch: a coordinator (embedded PGlite, in memory) in a child process, N contributors and ${cfg.lanes} HTTP requester lanes ` +
      `in this one, all on 127.0.0.1 (Node ${process.version}, ${os.cpus().length} CPUs, load average ${load()})`,
  );
  const results: SizeResult[] = [];
  for (const n of cfg.sizes) results.push(await runSize(n, cfg));
  console.log('\nCoordinator hot paths, timed directly in this process:');
  for (const line of hotPaths(cfg.sizes)) console.log(`  ${line}`);
  printTable(results, cfg);
  console.log(`\nDispatch benchmark took ${((performance.now() - started) / 1000).toFixed(0)} s.`);
}
