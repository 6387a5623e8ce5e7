import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../protocol/random.ts';
import { InvalidAmountError, UnknownPriceError } from './errors.ts';
import { defaultPrices, divRoundHalfUp, parsePriceList, price, type PriceList } from './prices.ts';

const LIST: PriceList = parsePriceList({
  commissionBps: 1000,
  models: {
    chat: { kind: 'chat', unit: 'tokens', promptPer1k: '1500', completionPer1k: '6000' },
    embed: { kind: 'embed', unit: 'tokens', inputPer1k: '200' },
  },
});

describe('price', () => {
  it('prices prompt and completion tokens separately, commission out of the gross', () => {
    // 1000 × 1.5 + 2000 × 6 = 13 500 nanoTON; 10 % = 1 350.
    expect(price('chat', { promptTokens: 1000, completionTokens: 2000 }, LIST)).toEqual({
      gross: 13_500n,
      commission: 1_350n,
      contributorShare: 12_150n,
    });
  });

  it('rounds the gross once, halves up, from the exact sum of its parts', () => {
    // 1 × 1.5 = 1.5 → 2; 333 × 1.5 = 499.5 → 500; 1 × 1.5 + 1 × 6 = 7.5 → 8 (not 2 + 6).
    expect(price('chat', { promptTokens: 1, completionTokens: 0 }, LIST).gross).toBe(2n);
    expect(price('chat', { promptTokens: 333, completionTokens: 0 }, LIST).gross).toBe(500n);
    expect(price('chat', { promptTokens: 1, completionTokens: 1 }, LIST).gross).toBe(8n);
    // 2 × 0.2 = 0.4 → 0: a tiny embedding costs nothing and owes nothing.
    expect(price('embed', { promptTokens: 2, completionTokens: 0 }, LIST)).toEqual({ gross: 0n, commission: 0n, contributorShare: 0n });
  });

  it('rounds the commission halves up and gives the contributor the rest', () => {
    // 25 tokens × 0.2 = 5 nanoTON; 10 % = 0.5 → 1, share 4.
    expect(price('embed', { promptTokens: 25, completionTokens: 0 }, LIST)).toEqual({ gross: 5n, commission: 1n, contributorShare: 4n });
    // 20 tokens → 4 nanoTON; 10 % = 0.4 → 0, share 4.
    expect(price('embed', { promptTokens: 20, completionTokens: 0 }, LIST)).toEqual({ gross: 4n, commission: 0n, contributorShare: 4n });
  });

  it('prices embeddings by input tokens only', () => {
    expect(price('embed', { promptTokens: 10_000, completionTokens: 999 }, LIST).gross).toBe(2_000n);
  });

  it('never creates or loses a nanoTON, and stays within half a nanoTON of the exact price (random lists)', () => {
    const rand = mulberry32(12345);
    for (let i = 0; i < 2_000; i++) {
      const bps = rand() % 10_001;
      const promptPer1k = BigInt(rand()) * BigInt(rand() % 1000);
      const completionPer1k = BigInt(rand() % 1_000_000);
      const list = parsePriceList({
        commissionBps: bps,
        models: { m: { kind: 'chat', unit: 'tokens', promptPer1k: String(promptPer1k), completionPer1k: String(completionPer1k) } },
      });
      const usage = { promptTokens: rand() % 100_000, completionTokens: rand() % 100_000 };
      const { gross, commission, contributorShare } = price('m', usage, list);
      expect(commission + contributorShare).toBe(gross);
      expect(commission >= 0n && commission <= gross).toBe(true);
      // |1000·gross − exact·1000| ≤ 500, ties rounded up.
      const exact = BigInt(usage.promptTokens) * promptPer1k + BigInt(usage.completionTokens) * completionPer1k;
      const err = gross * 1000n - exact;
      expect(err > -500n && err <= 500n).toBe(true);
      const cErr = commission * 10_000n - gross * BigInt(bps);
      expect(cErr > -5_000n && cErr <= 5_000n).toBe(true);
    }
  });

  it('keeps full precision for the largest usage counts', () => {
    const n = Number.MAX_SAFE_INTEGER;
    expect(price('chat', { promptTokens: n, completionTokens: n }, LIST).gross).toBe(divRoundHalfUp(BigInt(n) * 7_500n, 1000n));
  });

  it('refuses unknown models and unusable usage counts', () => {
    expect(() => price('nope', { promptTokens: 1, completionTokens: 1 }, LIST)).toThrow(UnknownPriceError);
    expect(() => price('chat', { promptTokens: -1, completionTokens: 0 }, LIST)).toThrow(InvalidAmountError);
    expect(() => price('chat', { promptTokens: 1.5, completionTokens: 0 }, LIST)).toThrow(InvalidAmountError);
    expect(() => price('chat', { promptTokens: 0, completionTokens: Number.NaN }, LIST)).toThrow(InvalidAmountError);
  });
});

describe('price list', () => {
  it('loads and validates the bundled prices.json', () => {
    const list = defaultPrices();
    expect(Object.keys(list.models).length).toBeGreaterThan(0);
    expect(list.commissionBps).toBeGreaterThanOrEqual(0);
  });

  it.each([
    ['a number instead of a string', { commissionBps: 0, models: { m: { kind: 'embed', unit: 'tokens', inputPer1k: 200 } } }],
    ['a fractional price', { commissionBps: 0, models: { m: { kind: 'embed', unit: 'tokens', inputPer1k: '1.5' } } }],
    ['a negative price', { commissionBps: 0, models: { m: { kind: 'embed', unit: 'tokens', inputPer1k: '-1' } } }],
    ['a commission over 100 %', { commissionBps: 10_001, models: {} }],
    ['an unknown unit', { commissionBps: 0, models: { m: { kind: 'embed', unit: 'inputs', inputPer1k: '1' } } }],
  ])('rejects %s', (_, json) => {
    expect(() => parsePriceList(json)).toThrow(/invalid price list/);
  });
});
