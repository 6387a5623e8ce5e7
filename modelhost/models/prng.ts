/**
 * Seeded weights. Only integer math and additions: no Math.log/sin, whose last bits may
 * differ between engines, so the same seed gives the same bytes everywhere.
 */

import { seededRandom } from '../../protocol/random.ts';

export class Rng {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = seededRandom(seed);
  }

  /** Uniform float in [0, 1). */
  uniform(): number {
    return this.next();
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Bell-shaped value with mean 0 and standard deviation `std` (sum of 3 uniforms, range ±3σ). */
  bell(std: number): number {
    return (this.next() + this.next() + this.next() - 1.5) * 2 * std;
  }

  /** `n` float32 values with standard deviation `std` around `mean`. */
  floats(n: number, std: number, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + this.bell(std);
    return out;
  }
}
