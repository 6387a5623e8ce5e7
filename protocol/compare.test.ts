import { describe, expect, it } from 'vitest';
import type { JobResult } from './jobs.ts';
import { compareResults, compareTokens, cosineSimilarity } from './compare.ts';

const usage = { promptTokens: 1, completionTokens: 0 };
const embed = (...embeddings: number[][]): JobResult => ({ kind: 'embed', embeddings, usage });
const gen = (tokens: number[]): JobResult => ({ kind: 'generate', tokens, finishReason: 'stop', usage });

describe('compareResults', () => {
  it('computes cosine against a hand-worked value', () => {
    // (1,0)·(1,1) / (1 · √2) = 1/√2
    expect(cosineSimilarity([1, 0], [1, 1])).toBeCloseTo(Math.SQRT1_2, 12);
    expect(cosineSimilarity([0, 0], [1, 1])).toBeNaN();
  });

  it('accepts embeddings within the cosine threshold and rejects the rest, naming the vector', () => {
    const ok = compareResults(embed([1, 0, 0], [0, 1, 0]), embed([1, 0.01, 0], [0, 1, 0]));
    expect(ok.agree).toBe(true);
    expect(ok.score).toBeCloseTo(1 / Math.sqrt(1.0001), 9);
    const bad = compareResults(embed([1, 0, 0], [0, 1, 0]), embed([1, 0, 0], [0, 1, 0.1]));
    expect(bad.agree).toBe(false);
    expect(bad.reason).toMatch(/Vector 1 differs/);
    expect(compareResults(embed([1, 0]), embed([1, 0.1]), { minCosine: 0.99 }).agree).toBe(true);
  });

  it('rejects mismatched shapes, kinds and non-numbers', () => {
    expect(compareResults(embed([1, 0]), embed([1, 0], [0, 1])).agree).toBe(false);
    expect(compareResults(embed([1, 0]), embed([1, 0, 0])).agree).toBe(false);
    expect(compareResults(embed([Number.NaN, 0]), embed([1, 0])).agree).toBe(false);
    expect(compareResults(embed([1]), gen([1])).reason).toMatch(/embed result and the other a generate/);
  });

  it('requires every greedy token and the same length by default', () => {
    expect(compareResults(gen([1, 2, 3]), gen([1, 2, 3]))).toMatchObject({ agree: true, score: 1 });
    const diff = compareTokens([1, 2, 3, 4], [1, 2, 9, 4]);
    expect(diff).toMatchObject({ agree: false, score: 0.75 });
    expect(diff.reason).toMatch(/position 2/);
    expect(compareTokens([1, 2, 3], [1, 2])).toMatchObject({ agree: false, score: 1 });
    expect(compareTokens([1, 2, 3, 4], [1, 2, 9, 4], { minTokenAgreement: 0.7 }).agree).toBe(true);
  });

  it('falls back to the teacher-forced hook only when tokens differ', () => {
    let calls = 0;
    const teacherForcedScore = (): number => {
      calls++;
      return 0.995;
    };
    expect(compareTokens([1, 2], [1, 2], { teacherForcedScore }).agree).toBe(true);
    expect(calls).toBe(0);
    expect(compareTokens([1, 2], [1, 3], { teacherForcedScore })).toMatchObject({ agree: true, score: 0.995 });
    expect(compareTokens([1, 2], [1, 3], { teacherForcedScore, minTeacherForced: 0.999 }).agree).toBe(false);
  });

  it('compares chat text by code point', () => {
    const chat = (text: string): JobResult => ({ kind: 'chat', text, finishReason: 'stop', usage });
    expect(compareResults(chat('héllo'), chat('héllo')).agree).toBe(true);
    expect(compareResults(chat('héllo'), chat('hello')).score).toBeCloseTo(0.8, 12);
  });
});
