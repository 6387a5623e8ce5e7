/**
 * The connections benchmark's load phase: jobs offered at a fixed rate (open loop: a job
 * starts when it is due, whether or not earlier ones have finished) over the requester channel
 * (`/v1/requester`), each as the SDK runs it there: `create` → `created` → `payload` → the
 * final chunk `event`, answered by the held contributor sockets. Every job started is followed
 * to its end: a job without its result within the step timeout, or failed, is lost.
 */
import { followJob, Socket } from '../dispatch/channel-load.ts';
import { epochMs, filler, type LatencySummary, Samples, stampedBlob } from '../dispatch/stats.ts';

export interface OfferedLoadOptions {
  /** The coordinator's base URL (http://127.0.0.1:port). */
  url: string;
  /** API key secrets; socket s uses keys[s % keys.length]. */
  keys: readonly string[];
  /** Requester channels the jobs are spread over. */
  sockets: number;
  /** Jobs offered per second. */
  rate: number;
  /** How long jobs are offered, s. */
  seconds: number;
  model: string;
  payloadBytes: number;
  /** How long one job may take from `create` to its result, ms; later it counts as lost. */
  stepTimeoutMs: number;
}

export interface OfferedLoadResult {
  offered: number;
  /** Jobs created (every one offered, unless the generator fell behind by more than a second). */
  started: number;
  completed: number;
  /** Completed within the offering window, per second of it. */
  achievedPerSecond: number;
  /** Started − completed: failed or unanswered; `failures` says why. */
  lost: number;
  failures: Record<string, number>;
  /** `create` sent → final chunk received, ms. */
  endToEnd: LatencySummary;
  /** How far behind its due time the generator started jobs, worst case, ms. */
  maxLagMs: number;
  /** Epoch ms of the offering window. */
  windowStart: number;
  windowEnd: number;
}

/** How often the generator starts the jobs that are due, ms. */
const TICK_MS = 5;

/** Offers `rate` jobs/s for `seconds` s, then waits for every started job to end. */
export async function runOfferedLoad(o: OfferedLoadOptions): Promise<OfferedLoadResult> {
  const sockets = await Promise.all(Array.from({ length: o.sockets }, (_, s) => Socket.open(o.url, o.keys[s % o.keys.length] ?? '')));
  const blobFiller = filler(o.payloadBytes);
  const enc = filler(32).subarray(0, 32).toString('base64url');
  const body = { model: o.model, kind: 'chat', sizeBytes: o.payloadBytes, billing: { inputTokens: 64, maxOutputTokens: 64 } };
  const endToEnd = new Samples();
  const failures: Record<string, number> = {};
  const offered = Math.round(o.rate * o.seconds);
  const windowStart = epochMs();
  const windowEnd = windowStart + o.seconds * 1000;
  let started = 0;
  let completed = 0;
  let inWindow = 0;
  let maxLagMs = 0;
  const ended: Promise<void>[] = [];

  const oneJob = (socket: Socket): Promise<void> =>
    followJob(socket, {
      body,
      seal: () => ({ enc, ct: stampedBlob(o.payloadBytes, epochMs(), blobFiller) }),
      stepMs: o.stepTimeoutMs,
      done(t0, t1) {
        completed++;
        if (t1 < windowEnd) inWindow++;
        endToEnd.add(t1 - t0);
      },
      fail(why) {
        failures[why] = (failures[why] ?? 0) + 1;
      },
    });

  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = epochMs();
      const due = Math.min(offered, Math.floor(((now - windowStart) / 1000) * o.rate));
      if (due > started) maxLagMs = Math.max(maxLagMs, now - (windowStart + (started / o.rate) * 1000));
      while (started < due) {
        const socket = sockets[started % sockets.length] as Socket;
        started++;
        ended.push(oneJob(socket));
      }
      if (started >= offered || now >= windowEnd + 1000) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, TICK_MS);
  });
  await Promise.all(ended);
  for (const socket of sockets) socket.close();
  return {
    offered,
    started,
    completed,
    achievedPerSecond: inWindow / o.seconds,
    lost: started - completed,
    failures,
    endToEnd: endToEnd.summary(),
    maxLagMs,
    windowStart,
    windowEnd,
  };
}
