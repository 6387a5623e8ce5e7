/**
 * Coordinator dispatch benchmark (`BENCH_ONLY=dispatch npm run bench`): jobs/s and latency
 * of empty jobs through a real coordinator (embedded PGlite store, in memory) with N
 * simulated contributors on loopback, against a raw `ws` echo baseline of the same message
 * sizes and concurrency; plus the coordinator's memory per connected contributor.
 *
 * Layout: the coordinator (or the echo server) runs in a child process (ipc.ts, child.ts),
 * so it has one of the machine's cores to itself and its memory is its own; this process
 * runs the contributors (contributors.ts) and the HTTP requesters (requesters.ts), one timed
 * phase at a time (phases.ts), and prints each size's lines and the tables (report.ts). The
 * in-process requester variant runs the same requester code inside the coordinator's
 * process, calling `coordinator.app.fetch` (the same routes without sockets or HTTP parsing).
 *
 * Speed is printed, never asserted. Knobs (env): BENCH_DISPATCH_SIZES (10,100,1000),
 * BENCH_DISPATCH_LANES (128), BENCH_DISPATCH_PAYLOAD (1024 bytes), BENCH_DISPATCH_WINDOW_MS
 * (4000), BENCH_DISPATCH_WARMUP_MS (1500), BENCH_DISPATCH_PROFILE (a folder: V8 CPU profiles
 * of the server processes).
 */
import os from 'node:os';
import { type Config, config, load, MODEL, slotsFor } from './config.ts';
import { ContributorPool } from './contributors.ts';
import { hotPaths } from './hot-paths.ts';
import { Child } from './ipc.ts';
import { aheadPerSocket, channelPhase, echoBaseline, httpPhase, inProcessPhase, type Phase } from './phases.ts';
import { phaseLine, printTable, type SizeResult } from './report.ts';
import { httpTransport } from './requesters.ts';
import { int, kib, mib, ms, sleep } from './stats.ts';

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
