import { describe, expect, it } from 'vitest';
import { secureUniform, startVerification } from './verification.ts';
import { disposeStore, openTestStore } from '../testing/verification.ts';

describe('startVerification', () => {
  it('draws uniform floats in [0, 1) for the policy', () => {
    const draws = Array.from({ length: 20_000 }, secureUniform);
    expect(draws.every((x) => x >= 0 && x < 1)).toBe(true);
    // Mean of U(0,1) over 20 000 draws: standard deviation 0.002.
    expect(Math.abs(draws.reduce((a, b) => a + b, 0) / draws.length - 0.5)).toBeLessThan(0.01);
    expect(draws.filter((x) => x < 0.05).length / draws.length).toBeCloseTo(0.05, 1);
  });

  it('keeps one receipt key across restarts of the coordinator', async () => {
    const store = await openTestStore('PostgreSQL');
    try {
      const first = await startVerification({ store, canaryCount: 4 });
      const second = await startVerification({ store, canaryCount: 4 });
      const key = (await first.receipts('nobody', 1)).publicKey;
      expect(Buffer.from(key, 'base64url')).toHaveLength(32);
      expect((await second.receipts('nobody', 1)).publicKey).toBe(key);
      expect(await first.report('nobody')).toEqual({
        reputation: { score: 0.5, clean: 0, failed: 0 },
        quarantined: false,
        canaries: { passed: 0, failed: 0 },
        replication: { checked: 0, agreed: 0, rate: 0.1 },
        records: [],
      });
    } finally {
      await disposeStore(store);
    }
  });
});
