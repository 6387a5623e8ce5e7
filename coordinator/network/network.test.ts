import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { NetworkInfo } from '../../protocol/network.ts';
import { createNetworkInfo } from './network.ts';

const MINUTE = 60_000;

function manualClock(start: number) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const done = (model: string, contributorId: string, promptTokens: number, completionTokens = 0) => ({
  model,
  contributorId,
  usage: { promptTokens, completionTokens },
});

describe('GET /v1/network', () => {
  it('measures demand per model over the window: jobs per minute, tokens per job, contributors', async () => {
    const clock = manualClock(1_000_000);
    const network = createNetworkInfo({ clock, windowMs: 10 * MINUTE });
    clock.advance(2 * MINUTE);
    // 6 embedding jobs of 10 tokens by two contributors, and one chat job of 5 + 15 tokens.
    for (let i = 0; i < 6; i++) network.record(done('tiny-embed', i % 2 === 0 ? 'a' : 'b', 10));
    network.record(done('tiny-decoder', 'a', 5, 15));
    clock.advance(2 * MINUTE);
    const res = await network.routes().request('/network', { headers: { origin: 'http://app.example' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    const body = v.parse(NetworkInfo, await res.json());
    // Up for 4 minutes: the rate is over 4 minutes, not the 10-minute window.
    expect(body.windowMs).toBe(4 * MINUTE);
    expect(body.demand['tiny-embed']).toEqual({ jobsPerMinute: 1.5, tokensPerJob: 10, contributors: 2 });
    expect(body.demand['tiny-decoder']).toEqual({ jobsPerMinute: 0.25, tokensPerJob: 20, contributors: 1 });
    expect(body.payouts).toBeNull();
  });

  it('forgets jobs older than the window', () => {
    const clock = manualClock(0);
    const network = createNetworkInfo({ clock, windowMs: 5 * MINUTE });
    network.record(done('m', 'a', 1));
    clock.advance(20 * MINUTE);
    network.record(done('m', 'a', 3));
    network.record(done('m', 'b', 3));
    const info = network.info();
    expect(info.windowMs).toBe(5 * MINUTE);
    expect(info.demand['m']).toEqual({ jobsPerMinute: 0.4, tokensPerJob: 3, contributors: 2 });
    clock.advance(6 * MINUTE);
    expect(network.info().demand).toEqual({});
  });

  it('says when the next payout round is due, from the first round and the interval', () => {
    const clock = manualClock(100_000);
    const network = createNetworkInfo({
      clock,
      payouts: { thresholdNano: '1000000', verificationWindowMs: 30_000, intervalMs: 30_000, chain: 'sandbox', firstAt: 130_000 },
    });
    expect(network.info().payouts).toEqual({
      thresholdNano: '1000000',
      verificationWindowMs: 30_000,
      intervalMs: 30_000,
      chain: 'sandbox',
      nextAt: 130_000,
    });
    clock.advance(45_000); // 145 000: the round at 130 000 has run, the next is at 160 000.
    expect(network.info().payouts?.nextAt).toBe(160_000);
    clock.advance(15_000); // exactly at a round
    expect(network.info().payouts?.nextAt).toBe(160_000);
    expect(v.safeParse(NetworkInfo, network.info()).success).toBe(true);
  });
});
