/**
 * The replicas load bench's kill phase: requester lanes on every replica but the last keep
 * running jobs; a few seconds in, the last replica is killed with SIGKILL. Its contributors'
 * sockets drop and they come back on the survivors (round robin, the real worker's first
 * reconnect delay), as workers behind a load balancer would. The owners of jobs that were on
 * those contributors hear nothing more from the dead replica and re-lease the jobs once it has
 * been silent for the routing's limit (3 s).
 *
 * Printed: how long the killed replica's contributors took to be welcomed again on a survivor
 * and to run their first job there; how long the jobs in flight at the kill took to be answered
 * (every one of them, re-leased); the longest silence of the requesters whose model only the
 * killed replica's contributors served; jobs/s second by second; jobs lost (must be 0).
 */
import os from 'node:os';
import { type ChannelEndpoint, runChannelLoad } from '../dispatch/channel-load.ts';
import type { FailoverReport } from '../dispatch/contributors.ts';
import type { LoadResult } from '../dispatch/requesters.ts';
import { epochMs, int, type LatencySummary, ms, summarize } from '../dispatch/stats.ts';
import type { Cluster, LoadConfig } from './load.ts';

export interface KillResult {
  n: number;
  load: LoadResult;
  failover: FailoverReport;
  back: LatencySummary;
  serving: LatencySummary;
  /** Contributors the killed replica had. */
  lostContributors: number;
  /** SIGKILL → the last job in flight at the kill answered, ms. */
  inFlightAnsweredMs: number;
  /** Jobs in flight at the kill (started before it, answered after). */
  inFlight: number;
  /** The longest gap between answers after the kill for the requesters whose model only the killed replica served, ms. */
  stallMs: number;
  /** Jobs answered per second of the window, the kill in second `killSecond`. */
  perSecond: number[];
  killSecond: number;
  loadAverage: string;
}

/** Kills the last replica of `cluster` while lanes run on the others, on `es` (the survivors' endpoints, in order). */
export async function runKill(cluster: Cluster, cfg: LoadConfig, es: ChannelEndpoint[]): Promise<KillResult> {
  const n = cluster.replicas.length;
  const victim = cluster.replicas[n - 1];
  const victimPool = cluster.pools[n - 1];
  if (victim === undefined || victimPool === undefined) throw new Error('no replica to kill');
  const survivors = cluster.replicas.slice(0, -1).map((_, i) => i);
  // The requesters whose model only the killed replica's contributors serve (cross mode: the replica before it).
  const stalled = survivors.filter(
    (i) => cluster.asks[i] === cluster.models[n - 1] && cluster.models.indexOf(cluster.asks[i] ?? '') === n - 1,
  );
  const answers: { endpoint: number; t0: number; t1: number }[] = [];
  const startAt = epochMs() + 50;
  const windowStart = startAt + cfg.warmupMs;
  let killedAt = Number.NaN;
  let killed: Promise<void> = Promise.resolve();
  const timer = setTimeout(
    () => {
      killedAt = epochMs();
      victimPool.failOver(
        survivors.map((i) => cluster.replicas[i]?.ready.url ?? ''),
        killedAt,
      );
      killed = victim.kill();
    },
    windowStart + cfg.killAtMs - epochMs(),
  );
  const load = await runChannelLoad({
    url: es[0]?.url ?? '',
    model: es[0]?.model ?? '',
    keys: [],
    endpoints: es,
    sockets: Math.max(cfg.sockets, survivors.length),
    lanes: cfg.lanes,
    payloadBytes: cfg.payloadBytes,
    startAt,
    warmupMs: cfg.warmupMs,
    windowMs: cfg.killWindowMs,
    maxJobs: 10_000_000,
    onResult: (endpoint, t0, t1) => answers.push({ endpoint, t0, t1 }),
  });
  clearTimeout(timer);
  await killed;
  const failover = victimPool.failoverReport();
  const inFlight = answers.filter((a) => a.t0 < killedAt && a.t1 >= killedAt);
  let stallMs = 0;
  for (const endpoint of stalled) {
    const after = answers
      .filter((a) => a.endpoint === endpoint && a.t1 >= killedAt)
      .map((a) => a.t1)
      .sort((p, q) => p - q);
    let previous = killedAt;
    for (const t of [...after, load.windowEnd]) {
      stallMs = Math.max(stallMs, t - previous);
      previous = t;
    }
  }
  const seconds = Math.ceil(cfg.killWindowMs / 1000);
  const perSecond = Array.from({ length: seconds }, () => 0);
  for (const a of answers) {
    const s = Math.floor((a.t1 - windowStart) / 1000);
    if (s >= 0 && s < seconds) perSecond[s] = (perSecond[s] ?? 0) + 1;
  }
  return {
    n,
    load,
    failover,
    back: summarize(failover.backMs),
    serving: summarize(failover.servingMs),
    lostContributors: victimPool.size,
    inFlightAnsweredMs: inFlight.reduce((m, a) => Math.max(m, a.t1 - killedAt), 0),
    inFlight: inFlight.length,
    stallMs,
    perSecond,
    killSecond: Math.floor((killedAt - windowStart) / 1000),
    loadAverage: os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' '),
  };
}

export function printKill(k: KillResult): void {
  const f = k.failover;
  const lost = Object.entries(k.load.failures).map(([why, count]) => `${why}×${count}`);
  console.log(
    `  ${k.n} replicas, SIGKILL of one mid-load (requesters on the ${k.n - 1} others): ${f.dropped} of its ${k.lostContributors} contributors dropped; ` +
      `sockets closed by ${ms(summarize(f.closedMs).max)} ms; welcomed again on a survivor ${f.backMs.length} (p50 ${ms(k.back.p50)} ms, all by ${ms(k.back.max)} ms after the kill); ` +
      `ran a job there ${f.servingMs.length} (first-job p50 ${ms(k.serving.p50)} ms, last ${ms(k.serving.max)} ms)` +
      `${f.failedAttempts > 0 ? `, ${f.failedAttempts} reconnects failed and were tried again` : ''}`,
  );
  console.log(
    `    ${int(k.inFlight)} jobs in flight at the kill, the last answered ${ms(k.inFlightAnsweredMs)} ms after it; ` +
      `longest silence of the requesters whose model only the killed replica served: ${ms(k.stallMs)} ms; ` +
      `jobs lost: ${lost.length === 0 ? '0' : lost.join(', ')} (of ${int(k.load.started)} started); load average ${k.loadAverage}`,
  );
  const timeline = k.perSecond.map((count, s) => (s === k.killSecond ? `[${int(count)}]` : int(count))).join(' ');
  console.log(`    jobs answered per second (the kill in [ ]): ${timeline}`);
}
