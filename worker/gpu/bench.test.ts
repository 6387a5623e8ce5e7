import { describe, expect, it } from 'vitest';
import { cpuMatmulReference, runGpuBenchmark } from './bench.ts';
import { copyGrid, firstMismatch, maxAbs, maxAbsDifference, seededFloats, seededWords } from './kernels.ts';

/** Textbook i-j-p triple loop: independent of the i-p-j order the reference uses. */
function naiveMatmul(a: Float32Array, b: Float32Array, m: number, n: number, k: number): number[] {
  const c: number[] = [];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += (a[i * k + p] ?? NaN) * (b[p * n + j] ?? NaN);
      c.push(sum);
    }
  }
  return c;
}

describe('cpuMatmulReference', () => {
  it('multiplies a 2×3 by a 3×2 matrix (worked by hand)', () => {
    const a = [1, 2, 3, 4, 5, 6];
    const b = [7, 8, 9, 10, 11, 12];
    // [1 2 3; 4 5 6]·[7 8; 9 10; 11 12] = [58 64; 139 154]
    expect([...cpuMatmulReference(a, b, 2, 2, 3)]).toEqual([58, 64, 139, 154]);
  });

  it('leaves B unchanged when A is the identity', () => {
    const n = 5;
    const eye = Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0));
    const b = seededFloats(n * 3, 9);
    expect([...cpuMatmulReference(eye, b, n, 3, n)]).toEqual([...b]);
  });

  it('matches a naive triple loop on non-square, non-multiple-of-16 sizes', () => {
    const [m, n, k] = [17, 33, 21];
    const a = seededFloats(m * k, 1);
    const b = seededFloats(k * n, 2);
    const c = cpuMatmulReference(a, b, m, n, k);
    expect(c).toHaveLength(m * n);
    expect(maxAbsDifference(c, naiveMatmul(a, b, m, n, k))).toBeLessThan(1e-12);
  });

  it('rejects inputs whose length does not match the sizes', () => {
    expect(() => cpuMatmulReference([1, 2, 3], [1, 2], 2, 1, 2)).toThrow(RangeError);
  });
});

describe('benchmark helpers', () => {
  it('seededFloats is deterministic, in [-1, 1) and exact in f32', () => {
    const a = seededFloats(10_000, 42);
    expect(seededFloats(10_000, 42)).toEqual(a);
    expect(seededFloats(10_000, 43)).not.toEqual(a);
    const values = [...a];
    expect(Math.min(...values)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...values)).toBeLessThan(1);
    expect(Math.min(...values)).toBeLessThan(-0.99); // spread over the whole range
    expect(values.every((v) => Math.fround(v) === v && v === Math.round(v * 2 ** 23) / 2 ** 23)).toBe(true);
  });

  it('seededWords is deterministic and varied', () => {
    const w = seededWords(1000, 7);
    expect(seededWords(1000, 7)).toEqual(w);
    expect(new Set(w).size).toBeGreaterThan(990);
  });

  it('maxAbsDifference and maxAbs', () => {
    expect(maxAbsDifference([1, 2, 3], [1, 2.5, 2])).toBe(1);
    expect(maxAbsDifference([1, NaN], [1, 2])).toBe(Infinity);
    expect(maxAbsDifference([1], [1, 2])).toBe(Infinity);
    expect(maxAbs([-3, 2])).toBe(3);
    expect(maxAbs([0.1], 1)).toBe(1);
  });

  it('firstMismatch finds the first differing word', () => {
    const a = new Uint32Array([1, 2, 3, 4]);
    expect(firstMismatch(a, new Uint32Array([1, 2, 3, 4]))).toBe(-1);
    expect(firstMismatch(a, new Uint32Array([1, 2, 9, 9]))).toBe(2);
    expect(firstMismatch(a, new Uint32Array([1, 2]))).toBe(2);
  });

  it('copyGrid covers every vec4 within the per-dimension limit', () => {
    expect(copyGrid((16 * 1024 * 1024) / 16, 65535)).toEqual([4096, 1]);
    expect(copyGrid(256 * 65535, 65535)).toEqual([65535, 1]);
    const [x, y] = copyGrid(256 * 65535 + 1, 65535);
    expect([x, y]).toEqual([65535, 2]);
    expect(x * y * 256).toBeGreaterThanOrEqual(256 * 65535 + 1);
    expect(() => copyGrid(256 * 4 * 4 + 1, 4)).toThrow(RangeError);
  });

  it('runGpuBenchmark rejects bad options before touching the device', async () => {
    const untouchable = new Proxy({} as GPUDevice, {
      get() {
        throw new Error('device touched');
      },
    });
    await expect(runGpuBenchmark(untouchable, { iterations: 0 })).rejects.toThrow(RangeError);
    await expect(runGpuBenchmark(untouchable, { m: 1.5 })).rejects.toThrow(/m must be a positive integer/);
    await expect(runGpuBenchmark(untouchable, { copyBytes: 1000 })).rejects.toThrow(/multiple of 16/);
  });
});
