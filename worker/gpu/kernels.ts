/** WGSL kernels of the GPU benchmark, and the CPU references they are checked against. */
import { mulberry32 } from '../../protocol/random.ts';

/** Side of the square tile each 16×16 workgroup computes; also the workgroup shape. */
export const MATMUL_TILE = 16;

/**
 * C = A·B, all row-major f32; A is m×k, B is k×n. Each workgroup stages one 16×16 tile of A
 * and of B in workgroup memory per step along k. Edges of sizes that are not multiples of 16
 * read zeros, so any m, n, k works.
 */
export const MATMUL_WGSL = /* wgsl */ `
struct Dims { m: u32, n: u32, k: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;

const T: u32 = ${MATMUL_TILE}u;
var<workgroup> tileA: array<f32, ${MATMUL_TILE * MATMUL_TILE}>;
var<workgroup> tileB: array<f32, ${MATMUL_TILE * MATMUL_TILE}>;

@compute @workgroup_size(${MATMUL_TILE}, ${MATMUL_TILE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = gid.y;
  let col = gid.x;
  var acc = 0.0;
  let steps = (dims.k + T - 1u) / T;
  for (var t = 0u; t < steps; t++) {
    let ak = t * T + lid.x;
    let bk = t * T + lid.y;
    var av = 0.0;
    if (row < dims.m && ak < dims.k) { av = a[row * dims.k + ak]; }
    var bv = 0.0;
    if (bk < dims.k && col < dims.n) { bv = b[bk * dims.n + col]; }
    tileA[lid.y * T + lid.x] = av;
    tileB[lid.y * T + lid.x] = bv;
    workgroupBarrier();
    for (var i = 0u; i < T; i++) {
      acc += tileA[lid.y * T + i] * tileB[i * T + lid.x];
    }
    workgroupBarrier();
  }
  if (row < dims.m && col < dims.n) { c[row * dims.n + col] = acc; }
}
`;

/** Invocations per copy workgroup; each moves one vec4<u32> (16 bytes). */
export const COPY_WORKGROUP = 256;

/** dst = src, 16 bytes per invocation; a 2-D grid when one dimension is not enough. */
export const COPY_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;

@compute @workgroup_size(${COPY_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.y * groups.x * ${COPY_WORKGROUP}u + gid.x;
  if (i < arrayLength(&src)) { dst[i] = src[i]; }
}
`;

/**
 * Workgroup grid for copying `vec4Count` vec4s: x alone while it fits the per-dimension
 * limit (65 535 by default), else x at the limit and as many rows of y as needed.
 */
export function copyGrid(vec4Count: number, maxPerDimension: number): [x: number, y: number] {
  const groups = Math.ceil(vec4Count / COPY_WORKGROUP);
  if (groups <= maxPerDimension) return [groups, 1];
  const y = Math.ceil(groups / maxPerDimension);
  if (y > maxPerDimension) throw new RangeError(`copy of ${vec4Count} vec4s needs more than ${maxPerDimension}² workgroups`);
  return [maxPerDimension, y];
}

/** C = A·B in float64, A m×k and B k×n row-major: the reference for the matmul kernel. */
export function cpuMatmulReference(a: ArrayLike<number>, b: ArrayLike<number>, m: number, n: number, k: number): Float64Array {
  if (a.length !== m * k || b.length !== k * n) {
    throw new RangeError(`cpuMatmulReference: A has ${a.length} values (want ${m * k}), B ${b.length} (want ${k * n})`);
  }
  const c = new Float64Array(m * n);
  // i-p-j order walks B and C row by row, which is what keeps this fast in JS.
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p] ?? 0;
      if (aip === 0) continue;
      const bRow = p * n;
      const cRow = i * n;
      for (let j = 0; j < n; j++) c[cRow + j] = (c[cRow + j] ?? 0) + aip * (b[bRow + j] ?? 0);
    }
  }
  return c;
}

/** Largest |actual − expected|; Infinity when lengths differ or any value is NaN. */
export function maxAbsDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let max = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs((actual[i] ?? NaN) - (expected[i] ?? NaN));
    if (Number.isNaN(d)) return Infinity;
    if (d > max) max = d;
  }
  return max;
}

/** Largest |value|, at least `floor`. */
export function maxAbs(values: ArrayLike<number>, floor = 0): number {
  let max = floor;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i] ?? 0));
  return max;
}

/** Deterministic floats in [-1, 1) with 24 significant bits, so f32 holds them exactly (mulberry32). */
export function seededFloats(count: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (next() >>> 8) / 2 ** 23 - 1;
  return out;
}

/** Deterministic 32-bit words (mulberry32). */
export function seededWords(count: number, seed: number): Uint32Array {
  const next = mulberry32(seed);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = next();
  return out;
}

/** Index of the first differing element, or -1 when equal in length and content. */
export function firstMismatch(actual: Uint32Array, expected: Uint32Array): number {
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) if (actual[i] !== expected[i]) return i;
  return actual.length === expected.length ? -1 : n;
}
