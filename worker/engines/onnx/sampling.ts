/** Token sampling: greedy argmax, or temperature + nucleus (top-p) with a seeded PRNG. */
import type { Sampling } from '../../../protocol/jobs.ts';
import { seededRandom } from '../../../protocol/random.ts';

/** Index of the largest value; the lowest index wins a tie. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const value = values[i] ?? -Infinity;
    if (value > bestValue) {
      bestValue = value;
      best = i;
    }
  }
  return best;
}

export type Sampler = (logits: ArrayLike<number>) => number;

/** Builds the sampler for a job: greedy when `temperature` is 0. */
export function createSampler(sampling: Sampling): Sampler {
  if (sampling.temperature === 0) return argmax;
  const random = seededRandom(sampling.seed);
  return (logits) => sampleTopP(logits, sampling.temperature, sampling.topP, random());
}

/**
 * Softmax at `temperature`, keep the smallest set of most likely tokens whose mass reaches
 * `topP`, renormalize, and pick with the uniform draw `u` in [0, 1).
 */
export function sampleTopP(logits: ArrayLike<number>, temperature: number, topP: number, u: number): number {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i] ?? -Infinity);
  const probs = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const p = Math.exp(((logits[i] ?? -Infinity) - max) / temperature);
    probs[i] = p;
    sum += p;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (probs[b] ?? 0) - (probs[a] ?? 0) || a - b);
  const kept: number[] = [];
  let mass = 0;
  for (const i of order) {
    kept.push(i);
    mass += (probs[i] ?? 0) / sum;
    if (mass >= topP) break;
  }
  let target = u * mass;
  for (const i of kept) {
    target -= (probs[i] ?? 0) / sum;
    if (target < 0) return i;
  }
  return kept[kept.length - 1] ?? 0;
}
