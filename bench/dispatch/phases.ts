/**
 * One timed phase of the dispatch benchmark each: requesters over HTTP, over the requester
 * channel (with and without assignments ahead of need), inside the coordinator's process, and
 * the raw `ws` echo baseline.
 */
import { runChannelLoad } from './channel-load.ts';
import { type Config, frameSizes, MODEL } from './config.ts';
import type { ContributorPool } from './contributors.ts';
import { EchoClients, type EchoResult } from './echo.ts';
import { Child, type MemorySample } from './ipc.ts';
import { clockOffset, cpuMeter } from './meter.ts';
import { type LoadResult, runLoad, type Transport } from './requesters.ts';
import { epochMs, type LatencySummary, sleep } from './stats.ts';

export interface Phase {
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

export interface EchoRun extends EchoResult {
  serverCpu: number;
  memBefore: MemorySample;
  memConnected: MemorySample;
}

export async function httpPhase(
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
export async function channelPhase(
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
export function aheadPerSocket(freeSlots: number, lanes: number): number {
  return Math.max(1, Math.min(64, Math.floor((freeSlots - lanes) / Math.min(lanes, CHANNEL_SOCKETS))));
}

function timing(cfg: Config, windowMs: number): { warmupMs: number; windowMs: number; maxJobs: number } {
  return { warmupMs: cfg.warmupMs, windowMs, maxJobs: 2_000_000 };
}

export async function inProcessPhase(child: Child, pool: ContributorPool, lanes: number, cfg: Config): Promise<Phase> {
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

export async function echoBaseline(n: number, slots: number, inflight: number, cfg: Config): Promise<EchoRun> {
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
