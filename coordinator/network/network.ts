/**
 * `GET /v1/network` (protocol/network.ts): recent demand per model and the payout rules, public
 * and open to other origins; the dashboard estimates earnings from it before a device has done
 * any work. Demand is every job requesters created in the window, finished or still waiting for
 * a contributor (a network with no contributor still has demand), read from the store's `jobs`
 * table; the tokens per job are the means of the model's finished jobs over the last day; the
 * contributors are those that finished its jobs in the window, and are still connected.
 */
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import type { NetworkInfo, PayoutRules } from '../../protocol/network.ts';
import { type Clock, systemClock } from '../clock.ts';
import type { SqlClient } from '../store/sql.ts';

export interface NetworkInfoOptions {
  /** The coordinator's database (the store's `jobs` table). */
  db: SqlClient;
  clock?: Clock;
  /** Demand is measured over this span, ms. Default 10 minutes. */
  windowMs?: number;
  /**
   * Contributors connected now (e.g. `() => coordinator.stats().contributors`). A model's
   * `contributors` is at most this: one that served it earlier in the window and has left does
   * not share its demand any more.
   */
  connected?: () => number;
  /** Payout rules; `nextAt` follows from `firstAt` and `intervalMs`. Omit when the network pays nothing. */
  payouts?: Omit<PayoutRules, 'nextAt'> & {
    /** When the first payout round ran or runs, ms since the epoch. */
    firstAt: number;
  };
}

export interface NetworkInfoService {
  info(): Promise<NetworkInfo>;
  /** `GET /network`; the coordinator mounts it under `/v1`. */
  routes(): Hono;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
/** Models listed at most. */
const MAX_MODELS = 1000;

interface Row {
  model: string;
  jobs: unknown;
  contributors: unknown;
  prompt: unknown;
  completion: unknown;
}

export function createNetworkInfo(options: NetworkInfoOptions): NetworkInfoService {
  const clock = options.clock ?? systemClock;
  const windowMs = options.windowMs ?? 10 * MINUTE;
  const startedAt = clock.now();

  const info = async (): Promise<NetworkInfo> => {
    const now = clock.now();
    // A coordinator up for less than the window measures over the time it has run, at least a minute.
    const span = Math.max(MINUTE, Math.min(windowMs, now - startedAt));
    const { rows } = await options.db.query<Row>(
      `SELECT model,
              count(*) FILTER (WHERE created_at >= $1) AS jobs,
              count(DISTINCT contributor_id) FILTER (WHERE created_at >= $1 AND state = 'done') AS contributors,
              coalesce(avg(prompt_tokens) FILTER (WHERE state = 'done'), 0) AS prompt,
              coalesce(avg(completion_tokens) FILTER (WHERE state = 'done'), 0) AS completion
         FROM jobs
        WHERE created_at >= $2
        GROUP BY model
       HAVING count(*) FILTER (WHERE created_at >= $1) > 0
        ORDER BY model
        LIMIT ${MAX_MODELS}`,
      [now - span, now - DAY],
    );
    const demand: NetworkInfo['demand'] = {};
    for (const row of rows) {
      demand[row.model] = {
        jobsPerMinute: (Number(row.jobs) * MINUTE) / span,
        promptTokensPerJob: Number(row.prompt),
        completionTokensPerJob: Number(row.completion),
        contributors: Math.min(Number(row.contributors), options.connected?.() ?? Number.POSITIVE_INFINITY),
      };
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
            nextAt:
              now <= p.firstAt || p.intervalMs <= 0 ? p.firstAt : p.firstAt + Math.ceil((now - p.firstAt) / p.intervalMs) * p.intervalMs,
          };
    return { at: now, windowMs: span, demand, payouts };
  };

  return {
    info,
    routes() {
      const app = new Hono();
      app.use('/network', cors({ origin: '*', allowMethods: ['GET'] }));
      app.get('/network', async (c) => c.json(await info(), 200, { 'cache-control': 'no-store' }));
      return app;
    },
  };
}
