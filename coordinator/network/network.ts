/**
 * `GET /v1/network` (protocol/network.ts): recent demand per model, measured from the jobs that
 * finished, and the payout rules. Public and open to other origins: the dashboard estimates
 * earnings from it before a device has done any work.
 */
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import type { NetworkInfo, PayoutRules } from '../../protocol/network.ts';
import { type Clock, systemClock } from '../deps.ts';
import type { JobDone } from '../leases/relay.ts';

export interface NetworkInfoOptions {
  clock?: Clock;
  /** Demand is measured over this span, ms. Default 10 minutes. */
  windowMs?: number;
  /** Payout rules; `nextAt` follows from `firstAt` and `intervalMs`. Omit when the network pays nothing. */
  payouts?: Omit<PayoutRules, 'nextAt'> & {
    /** When the first payout round ran or runs, ms since the epoch. */
    firstAt: number;
  };
}

export interface NetworkInfoService {
  /** Counts a finished job (give it to `createCoordinator({ onJobDone })`). */
  record(done: Pick<JobDone, 'model' | 'usage' | 'contributorId'>): void;
  info(): NetworkInfo;
  /** `GET /network`; the coordinator mounts it under `/v1`. */
  routes(): Hono;
}

interface Finished {
  at: number;
  model: string;
  tokens: number;
  contributorId: string;
}

/** Jobs kept for the window; beyond this the oldest are dropped first (the rates then cover a shorter span). */
const MAX_EVENTS = 200_000;
const MINUTE = 60_000;

export function createNetworkInfo(options: NetworkInfoOptions = {}): NetworkInfoService {
  const clock = options.clock ?? systemClock;
  const windowMs = options.windowMs ?? 10 * MINUTE;
  const startedAt = clock.now();
  let events: Finished[] = [];

  const prune = (now: number): void => {
    const from = now - windowMs;
    if (events.length > MAX_EVENTS) events = events.slice(-MAX_EVENTS);
    const first = events.findIndex((e) => e.at >= from);
    if (first !== 0) events = first < 0 ? [] : events.slice(first);
  };

  const info = (): NetworkInfo => {
    const now = clock.now();
    prune(now);
    // A coordinator up for less than the window measures over the time it has run, at least a minute.
    const span = Math.max(MINUTE, Math.min(windowMs, now - startedAt));
    const byModel = new Map<string, { jobs: number; tokens: number; contributors: Set<string> }>();
    for (const e of events) {
      const m = byModel.get(e.model) ?? { jobs: 0, tokens: 0, contributors: new Set<string>() };
      m.jobs += 1;
      m.tokens += e.tokens;
      m.contributors.add(e.contributorId);
      byModel.set(e.model, m);
    }
    const demand: NetworkInfo['demand'] = {};
    for (const [model, m] of byModel) {
      demand[model] = { jobsPerMinute: (m.jobs * MINUTE) / span, tokensPerJob: m.tokens / m.jobs, contributors: m.contributors.size };
    }
    const p = options.payouts;
    const payouts =
      p === undefined
        ? null
        : {
            thresholdNano: p.thresholdNano,
            verificationWindowMs: p.verificationWindowMs,
            intervalMs: p.intervalMs,
            chain: p.chain,
            nextAt: now <= p.firstAt || p.intervalMs <= 0 ? p.firstAt : p.firstAt + Math.ceil((now - p.firstAt) / p.intervalMs) * p.intervalMs,
          };
    return { at: now, windowMs: span, demand, payouts };
  };

  return {
    record(done) {
      const tokens = done.usage.promptTokens + done.usage.completionTokens;
      events.push({ at: clock.now(), model: done.model, tokens, contributorId: done.contributorId });
    },
    info,
    routes() {
      const app = new Hono();
      app.use('/network', cors({ origin: '*', allowMethods: ['GET'] }));
      app.get('/network', (c) => c.json(info(), 200, { 'cache-control': 'no-store' }));
      return app;
    },
  };
}
