import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../protocol/random.ts';
import { argmax, createSampler, sampleTopP } from './sampling.ts';

describe('sampling', () => {
  it('greedy picks the largest logit, the first on a tie', () => {
    expect(argmax([0.1, 3, -2, 3])).toBe(1);
    expect(createSampler({ temperature: 0, topP: 1, seed: 0 })([1, 5, 2])).toBe(1);
  });

  it('top-p keeps only the nucleus', () => {
    // Probabilities ≈ [0.665, 0.245, 0.090]: with topP 0.6 only token 0 is kept, whatever the draw.
    const logits = [2, 1, 0];
    for (const u of [0, 0.3, 0.99]) expect(sampleTopP(logits, 1, 0.6, u)).toBe(0);
    // With topP 1, a draw past the first mass picks later tokens.
    expect(sampleTopP(logits, 1, 1, 0.7)).toBe(1);
    expect(sampleTopP(logits, 1, 1, 0.95)).toBe(2);
  });

  it('draws follow the softmax distribution (frequencies within 1 point over 20k draws)', () => {
    const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.2)];
    const sample = createSampler({ temperature: 1, topP: 1, seed: 42 });
    const counts = [0, 0, 0];
    const n = 20_000;
    for (let i = 0; i < n; i++) counts[sample(logits)]!++;
    expect(counts.map((c) => c / n)).toEqual([expect.closeTo(0.5, 1.7), expect.closeTo(0.3, 1.7), expect.closeTo(0.2, 1.7)]);
  });

  it('the same seed gives the same stream; another seed another', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const c = seededRandom(8);
    const first = [a(), a(), a()];
    expect([b(), b(), b()]).toEqual(first);
    expect([c(), c(), c()]).not.toEqual(first);
    expect(first.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});
