/** The dispatch benchmark's knobs (env), and the sizes and slot counts derived from them. */
import os from 'node:os';
import { envNumber } from './stats.ts';

export const MODEL = 'bench-model';

export interface Config {
  sizes: number[];
  lanes: number;
  lightLanes: number;
  payloadBytes: number;
  warmupMs: number;
  windowMs: number;
}

export function config(): Config {
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
export function frameSizes(payloadBytes: number): { job: number; chunk: number } {
  const blob = 'A'.repeat(Math.ceil((payloadBytes * 4) / 3));
  const enc = 'E'.repeat(43);
  const ids = { jobId: 'J'.repeat(22), leaseId: 'L'.repeat(16) };
  const job = { v: 1, type: 'job', ...ids, model: MODEL, kind: 'chat', attempt: 1, deadline: Date.now(), sealed: { enc, ct: blob } };
  const usage = { promptTokens: 1, completionTokens: 1 };
  const chunk = { v: 1, type: 'chunk', ...ids, seq: 0, final: true, sealed: { enc, ct: blob }, usage };
  return { job: JSON.stringify(job).length, chunk: JSON.stringify(chunk).length };
}

/** Slots per worker: enough that the requester lanes never wait for a free slot. */
export function slotsFor(n: number, lanes: number): number {
  return Math.min(64, Math.max(1, Math.ceil((2 * lanes) / n)));
}

export function load(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
}
