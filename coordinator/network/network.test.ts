import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { NetworkInfo } from '../../protocol/network.ts';
import type { SqlDb } from '../store/sql.ts';
import { BACKENDS, useMigratedBackend } from '../store/testing.ts';
import { createNetworkInfo } from './network.ts';

const MINUTE = 60_000;
const T0 = 1_700_000_000_000;

function manualClock(start: number) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

let db: SqlDb;
useMigratedBackend(BACKENDS[0]!, (opened) => (db = opened), 'jobs');

let seq = 0;
async function job(model: string, at: number, state: string, contributor: string | null, prompt = 0, completion = 0): Promise<void> {
  await db.query(
    `INSERT INTO jobs (id, api_key_id, model, kind, state, attempt, contributor_id, created_at, updated_at, payload_bytes, result_bytes, prompt_tokens, completion_tokens)
     VALUES ($1, 'k', $2, 'embed', $3, 1, $4, $5, $5, 100, 100, $6, $7)`,
    [`job${++seq}`, model, state, contributor, at, prompt, completion],
  );
}

describe('GET /v1/network', () => {
  it('counts every job created in the window as demand, waiting ones too, with the tokens of finished ones', async () => {
    const clock = manualClock(T0);
    const network = createNetworkInfo({ db, clock, windowMs: 10 * MINUTE });
    clock.advance(4 * MINUTE);
    // Six embedding jobs: four done by two contributors (10 tokens each), two still waiting for one.
    for (const [i, c] of ['a', 'b', 'a', 'b'].entries()) await job('tiny-embed', T0 + MINUTE + i, 'done', c, 10);
    await job('tiny-embed', T0 + 2 * MINUTE, 'waiting', null);
    await job('tiny-embed', T0 + 3 * MINUTE, 'failed', null);
    await job('tiny-decoder', T0 + 3 * MINUTE, 'done', 'a', 5, 15);
    const res = await network.routes().request('/network', { headers: { origin: 'http://app.example' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    const body = v.parse(NetworkInfo, await res.json());
    // Up for 4 minutes: the rate is over 4 minutes, not the 10-minute window.
    expect(body.windowMs).toBe(4 * MINUTE);
    expect(body.demand['tiny-embed']).toEqual({ jobsPerMinute: 1.5, promptTokensPerJob: 10, completionTokensPerJob: 0, contributors: 2 });
    expect(body.demand['tiny-decoder']).toEqual({
      jobsPerMinute: 0.25,
      promptTokensPerJob: 5,
      completionTokensPerJob: 15,
      contributors: 1,
    });
    expect(body.payouts).toBeNull();
  });

  it('forgets jobs older than the window, but keeps a day of finished jobs for their token counts', async () => {
    const clock = manualClock(T0);
    const network = createNetworkInfo({ db, clock, windowMs: 5 * MINUTE });
    clock.advance(60 * MINUTE);
    await job('m', T0, 'done', 'a', 7);
    await job('m', T0 + 57 * MINUTE, 'waiting', null);
    await job('m', T0 + 58 * MINUTE, 'waiting', null);
    const info = await network.info();
    expect(info.windowMs).toBe(5 * MINUTE);
    expect(info.demand['m']).toEqual({ jobsPerMinute: 0.4, promptTokensPerJob: 7, completionTokensPerJob: 0, contributors: 0 });
    clock.advance(6 * MINUTE);
    expect((await network.info()).demand).toEqual({});
  });

  it('counts only as many contributors as are connected now', async () => {
    const clock = manualClock(T0);
    let connected = 2;
    const network = createNetworkInfo({ db, clock, connected: () => connected });
    clock.advance(2 * MINUTE);
    for (const c of ['a', 'b', 'c']) await job('m', T0 + MINUTE, 'done', c, 4);
    expect((await network.info()).demand['m']?.contributors).toBe(2);
    connected = 0;
    expect((await network.info()).demand['m']?.contributors).toBe(0);
  });

  it('says when the next payout round is due, from the first round and the interval', async () => {
    const clock = manualClock(100_000);
    const network = createNetworkInfo({
      db,
      clock,
      payouts: { thresholdNano: '1000000', verificationWindowMs: 30_000, intervalMs: 30_000, chain: 'sandbox', firstAt: 130_000 },
    });
    expect((await network.info()).payouts).toEqual({
      thresholdNano: '1000000',
      verificationWindowMs: 30_000,
      intervalMs: 30_000,
      chain: 'sandbox',
      nextAt: 130_000,
    });
    clock.advance(45_000); // 145 000: the round at 130 000 has run, the next is at 160 000.
    expect((await network.info()).payouts?.nextAt).toBe(160_000);
    clock.advance(15_000); // exactly at a round
    expect((await network.info()).payouts?.nextAt).toBe(160_000);
    expect(v.safeParse(NetworkInfo, await network.info()).success).toBe(true);
  });
});
