/**
 * `tiny-q4`: y = x·Wᵀ + bias with W [N=32, K=64] stored 4-bit by `com.microsoft.MatMulNBits`.
 *
 * Layout per onnxruntime docs/ContribOperators.md (com.microsoft.MatMulNBits):
 * - B: uint8 [N, n_blocks_per_col, blob_size], n_blocks_per_col = ceil(K / block_size),
 *   blob_size = block_size·bits/8; within a byte the element with the lower k is the low nibble.
 * - scales: float [N · n_blocks_per_col], index n·n_blocks_per_col + block.
 * - zero_points: uint8 [N · ceil(n_blocks_per_col·bits/8)], packed like B (block 0 in the low nibble).
 * - W[n][k] = (q[n][k] − zero_point[n][block]) · scale[n][block].
 */
import { GraphBuilder, int } from './onnx-graph.ts';
import { type BuiltModel, estimateVram } from './layers.ts';
import { Rng } from './prng.ts';

export const Q4_K = 64;
export const Q4_N = 32;
export const Q4_BLOCK_SIZE = 32;
export const Q4_BITS = 4;

/** The initializers exactly as stored in the graph. */
export interface TinyQ4Weights {
  k: number;
  n: number;
  blockSize: number;
  /** Packed 4-bit weights, [N, n_blocks_per_col, blob_size]. */
  packed: Uint8Array;
  /** [N · n_blocks_per_col]. */
  scales: Float32Array;
  /** Packed 4-bit zero points, [N · ceil(n_blocks_per_col / 2)]. */
  zeroPoints: Uint8Array;
  /** [N]. */
  bias: Float32Array;
}

function randomWeights(): TinyQ4Weights {
  const rng = new Rng(0x0004_b175);
  const blocks = Math.ceil(Q4_K / Q4_BLOCK_SIZE);
  const blobSize = (Q4_BLOCK_SIZE * Q4_BITS) / 8;
  const packed = new Uint8Array(Q4_N * blocks * blobSize);
  for (let i = 0; i < packed.length; i++) packed[i] = rng.int(0, 15) | (rng.int(0, 15) << 4);
  const scales = new Float32Array(Q4_N * blocks);
  for (let i = 0; i < scales.length; i++) scales[i] = 0.01 + 0.04 * rng.uniform();
  const zpBytesPerRow = Math.ceil((blocks * Q4_BITS) / 8);
  const zeroPoints = new Uint8Array(Q4_N * zpBytesPerRow);
  for (let i = 0; i < zeroPoints.length; i++) zeroPoints[i] = rng.int(5, 10) | (rng.int(5, 10) << 4);
  return { k: Q4_K, n: Q4_N, blockSize: Q4_BLOCK_SIZE, packed, scales, zeroPoints, bias: rng.floats(Q4_N, 0.1) };
}

export function buildTinyQ4(): BuiltModel<TinyQ4Weights> {
  const w = randomWeights();
  const blocks = Math.ceil(w.k / w.blockSize);
  const g = new GraphBuilder('tiny-q4');
  const x = g.input('x', 'float32', ['batch', w.k]);
  g.output('y', 'float32', ['batch', w.n]);
  const b = g.u8('fc.qweight', [w.n, blocks, (w.blockSize * Q4_BITS) / 8], w.packed);
  const scales = g.f32('fc.scales', [w.n * blocks], w.scales);
  const zp = g.u8('fc.qzeros', [w.zeroPoints.length], w.zeroPoints);
  const mm = g.node(
    'MatMulNBits',
    [x, b, scales, zp],
    { K: int(w.k), N: int(w.n), bits: int(Q4_BITS), block_size: int(w.blockSize) },
    { domain: 'com.microsoft' },
  );
  g.node('Add', [mm, g.f32('fc.bias', [w.n], w.bias)], {}, { outputs: ['y'] });
  const model = g.encode(
    [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ],
    'Spinneret test model: one 4-bit MatMulNBits layer with random weights.',
  );
  return {
    id: 'tiny-q4',
    files: new Map([['onnx/model_q4.onnx', model]]),
    weights: w,
    entry: {
      id: 'tiny-q4',
      name: 'Tiny 4-bit linear (test)',
      description: 'One 64→32 layer quantized to 4 bits (MatMulNBits, block 32, with zero points) plus a bias.',
      license: 'MIT',
      kinds: ['infer'],
      engine: 'onnx',
      vramBytes: estimateVram(g.initializerBytes, 256 * 1024),
      maxBufferBytes: g.largestInitializerBytes,
      requiredFeatures: [],
      onnx: {
        model: 'onnx/model_q4.onnx',
        // WebGPU only: it proves the 4-bit GPU kernel, and stands for models too slow for a CPU fallback.
        backends: ['webgpu'],
        inputs: [{ name: 'x', type: 'float32', shape: ['batch', w.k] }],
        outputs: ['y'],
      },
    },
  };
}
