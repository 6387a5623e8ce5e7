/**
 * Seeded weights. Only integer math and additions: no Math.log/sin, whose last bits may
 * differ between engines, so the same seed gives the same bytes everywhere.
 */

/** mulberry32: a 32-bit state PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
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
