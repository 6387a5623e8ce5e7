import { describe, expect, it } from 'vitest';
import { estimateEarnings, type PriceListView } from './estimate.ts';

const prices: PriceListView = {
  commissionBps: 1000,
  models: {
    chat: { kind: 'chat', promptPer1k: '2000', completionPer1k: '6000' },
    emb: { kind: 'embed', inputPer1k: '200' },
  },
};

describe('earnings estimate', () => {
  it('follows from the speed, the model size and the price, after commission', () => {
    // 100 GFLOP/s · 0.3 = 3e10 FLOP/s usable; a 500 MB 4-bit build has 1e9 parameters, 2e9 FLOP per token → 15 tokens/s.
    // 15 · 3600 = 54,000 tokens/hour · 6,000 nanoTON per 1k = 324,000 gross; 90 % share = 291,600; a quarter of 24 h = 6 h → 1,749,600.
    const e = estimateEarnings(100, [{ id: 'chat', engine: 'webllm', sizeBytes: 500_000_000, servable: true }], prices);
    expect(e?.modelId).toBe('chat');
    expect(e?.tokensPerSecond).toBeCloseTo(15, 9);
    expect(e?.perBusyHour).toBe(291_600n);
    expect(e?.perDay).toBe(1_749_600n);
  });

  it('picks the best-paying model this device can serve, and none without a price', () => {
    const models = [
      { id: 'chat', engine: 'webllm', sizeBytes: 500_000_000, servable: false },
      { id: 'emb', engine: 'onnx', sizeBytes: 4_000_000, servable: true },
      { id: 'unpriced', engine: 'onnx', sizeBytes: 4_000, servable: true },
    ];
    // 1e6 parameters, 2e6 FLOP per token at 3e10 → 15,000 tokens/s; 54e6/hour · 200/1000 = 10.8e6 · 0.9.
    expect(estimateEarnings(100, models, prices)?.perBusyHour).toBe(9_720_000n);
    expect(estimateEarnings(100, [models[2]!], prices)).toBeNull();
    expect(estimateEarnings(0, models, prices)).toBeNull();
  });
});
