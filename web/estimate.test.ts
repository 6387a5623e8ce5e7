import { describe, expect, it } from 'vitest';
import type { NetworkInfo } from '../protocol/network.ts';
import type { PriceListView } from '../protocol/answers.ts';
import { estimateEarnings, measuredRate } from './estimate.ts';

const prices: PriceListView = {
  commissionBps: 1000,
  models: {
    chat: { kind: 'chat', promptPer1k: '2000', completionPer1k: '6000' },
    emb: { kind: 'embed', inputPer1k: '1000000' },
  },
};

const network = (demand: NetworkInfo['demand']): NetworkInfo => ({ at: 0, windowMs: 600_000, demand, payouts: null });

describe('earnings estimate', () => {
  it('follows demand when the device is fast enough: an equal share of the jobs, at the price, after commission', () => {
    // 10 embedding jobs a minute of 12 tokens, one other contributor: this device would get 5 a minute.
    // A job pays 12 · 1,000,000 / 1000 = 12,000 gross, 10,800 after 10 %; 5 a minute is 3,240,000 an hour.
    const e = estimateEarnings({
      gflops: 10,
      models: [{ id: 'emb', engine: 'onnx', sizeBytes: 40_000, servable: true }],
      prices,
      network: network({ emb: { jobsPerMinute: 10, promptTokensPerJob: 12, completionTokensPerJob: 0, contributors: 1 } }),
      counted: false,
    });
    expect(e).toEqual({ low: 1_600_000n, high: 4_900_000n, mid: 3_240_000n, limit: 'demand', models: ['emb'], unknownSize: [] });
  });

  it('is held back by speed on a slow device, and counts a busy device once', () => {
    // A 1e9-parameter 4-bit chat model (500 MB) at 1 GFLOP/s · 0.3: 0.15 tokens/s; 100 tokens a job → 0.09 jobs/min.
    const e = estimateEarnings({
      gflops: 1,
      models: [{ id: 'chat', engine: 'webllm', sizeBytes: 500_000_000, servable: true }],
      prices,
      network: network({ chat: { jobsPerMinute: 30, promptTokensPerJob: 20, completionTokensPerJob: 80, contributors: 2 } }),
      counted: true,
    });
    // 0.09 jobs/min · (20·2000 + 80·6000)/1000 · 0.9 = 0.09 · 468 = 42.12 nanoTON/min → 2527 an hour.
    expect(e?.limit).toBe('speed');
    expect(e?.mid).toBe(2527n);
  });

  it('says nothing earns without demand, and gives no estimate when no priced model can run here', () => {
    const models = [{ id: 'emb', engine: 'onnx', sizeBytes: 40_000, servable: true }];
    expect(estimateEarnings({ gflops: 10, models, prices, network: network({}), counted: false })).toMatchObject({
      low: 0n,
      high: 0n,
      mid: 0n,
      models: [],
    });
    expect(
      estimateEarnings({ gflops: 10, models: [{ ...models[0]!, servable: false }], prices, network: network({}), counted: false }),
    ).toBeNull();
    expect(estimateEarnings({ gflops: 0, models, prices, network: network({}), counted: false })).toBeNull();
  });
});

describe('measured rate', () => {
  const r = (at: number, amountNano: string) => ({ jobId: `j${at}`, model: 'm', tokens: 1, amountNano, at });

  it('is what the receipts of the run earned over the window, per hour', () => {
    const receipts = [r(0, '999'), r(70_000, '100'), r(80_000, '100'), r(100_000, '100')];
    // Since the run started at 60 000, measured at 120 000: 300 nanoTON in 60 s → 18,000 an hour.
    expect(measuredRate(receipts, 60_000, 120_000)).toEqual({ nanoPerHour: 18_000n, jobs: 3, spanMs: 60_000 });
  });

  it('waits for a minute and three jobs', () => {
    expect(measuredRate([r(10, '5'), r(20, '5'), r(30, '5')], 0, 30_000)).toBeNull();
    expect(measuredRate([r(10, '5'), r(20, '5')], 0, 120_000)).toBeNull();
  });
});
