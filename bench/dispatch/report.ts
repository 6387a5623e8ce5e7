/** The dispatch benchmark's printed lines and summary tables, with ratios against the raw echo baseline. */
import os from 'node:os';
import { type Config, frameSizes } from './config.ts';
import type { CoordinatorReport, MemorySample } from './ipc.ts';
import type { EchoRun, Phase } from './phases.ts';
import { int, kib, mib, ms } from './stats.ts';

export interface SizeResult {
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

export function phaseLine(n: number, p: Phase): string {
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

function ratio(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : '—';
}

export function printTable(results: SizeResult[], cfg: Config): void {
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
