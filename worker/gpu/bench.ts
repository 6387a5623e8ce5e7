/**
 * A short compute benchmark: a tiled f32 matmul (GFLOP/s) and a storage-to-storage copy
 * (GB/s). Every kernel's output is checked against a CPU reference before its number is
 * reported; a wrong kernel throws EngineError and scores nothing.
 *
 * Timing is wall clock from submit to `onSubmittedWorkDone`, so it includes submit overhead;
 * on fast GPUs pass larger sizes or the overhead dominates the small defaults.
 */
import { AbortedError, DeviceLostError, EngineError, SpinneretError } from '../../protocol/errors.ts';
import {
  COPY_WGSL,
  MATMUL_TILE,
  MATMUL_WGSL,
  copyGrid,
  cpuMatmulReference,
  firstMismatch,
  maxAbs,
  maxAbsDifference,
  seededFloats,
  seededWords,
} from './kernels.ts';
import type { GpuBenchmark } from './types.ts';

export { cpuMatmulReference } from './kernels.ts';

export interface GpuBenchmarkOptions {
  /** Matmul sizes; each defaults to 256 (about 50 ms per dispatch on SwiftShader). */
  m?: number;
  n?: number;
  k?: number;
  /** Source buffer size of the copy, bytes, a multiple of 16. Default 16 MiB. */
  copyBytes?: number;
  /** Timed dispatches per kernel, after one untimed warm-up. Default 5. */
  iterations?: number;
  /**
   * Matmul tolerance relative to the largest |C| (at least 1): f32 accumulation over k
   * terms errs by about k·2⁻²⁴ of the terms' sum. Default 1e-3.
   */
  relativeTolerance?: number;
  /** Seed of the inputs. Default 1. */
  seed?: number;
  /** Checked before each kernel; a dispatch already submitted runs to its end. */
  signal?: AbortSignal;
}

const MiB = 1024 * 1024;

/** Runs both kernels on `device`. Throws EngineError, DeviceLostError or AbortedError. */
export async function runGpuBenchmark(device: GPUDevice, options: GpuBenchmarkOptions = {}): Promise<GpuBenchmark> {
  const started = performance.now();
  const iterations = positiveInt(options.iterations ?? 5, 'iterations');
  const seed = options.seed ?? 1;
  const m = positiveInt(options.m ?? 256, 'm');
  const n = positiveInt(options.n ?? 256, 'n');
  const k = positiveInt(options.k ?? 256, 'k');
  const copyBytes = positiveInt(options.copyBytes ?? 16 * MiB, 'copyBytes');
  if (copyBytes % 16 !== 0) throw new RangeError(`copyBytes must be a multiple of 16, got ${copyBytes}`);
  const relativeTolerance = options.relativeTolerance ?? 1e-3;

  const matmul = await guarded(device, 'GPU matmul benchmark', options.signal, () =>
    benchMatmul(device, { m, n, k, iterations, seed, relativeTolerance }),
  );
  const copy = await guarded(device, 'GPU copy benchmark', options.signal, () => benchCopy(device, { bytes: copyBytes, iterations, seed }));
  return { matmul, copy, ms: performance.now() - started };
}

interface MatmulParams {
  m: number;
  n: number;
  k: number;
  iterations: number;
  seed: number;
  relativeTolerance: number;
}

async function benchMatmul(device: GPUDevice, p: MatmulParams): Promise<GpuBenchmark['matmul']> {
  const { m, n, k, iterations } = p;
  const a = seededFloats(m * k, p.seed);
  const b = seededFloats(k * n, p.seed + 1);
  const buffers = new Buffers(device);
  try {
    const bufA = await buffers.upload(a, GPUBufferUsage.STORAGE);
    const bufB = await buffers.upload(b, GPUBufferUsage.STORAGE);
    const bufC = await buffers.create(m * n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const dims = await buffers.upload(new Uint32Array([m, n, k, 0]), GPUBufferUsage.UNIFORM);
    const pipeline = await compile(device, MATMUL_WGSL, 'matmul');
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [bufA, bufB, bufC, dims].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const grid: [number, number] = [Math.ceil(n / MATMUL_TILE), Math.ceil(m / MATMUL_TILE)];
    const seconds = await timeDispatches(device, pipeline, bindGroup, grid, iterations);

    const c = new Float32Array(await readBack(device, bufC));
    const reference = cpuMatmulReference(a, b, m, n, k);
    const maxAbsError = maxAbsDifference(c, reference);
    const tolerance = p.relativeTolerance * maxAbs(reference, 1);
    if (!(maxAbsError <= tolerance)) {
      throw new EngineError(
        `The GPU matmul kernel gave wrong results (max |error| ${maxAbsError} > ${tolerance}); this device is not scored. Update the GPU driver or try another browser.`,
        { m, n, k, maxAbsError, tolerance },
      );
    }
    const gflops = (2 * m * n * k * iterations) / seconds / 1e9;
    return {
      m,
      n,
      k,
      iterations,
      gflops,
      msPerIteration: (seconds * 1000) / iterations,
      maxAbsError,
      tolerance,
      ok: true,
    };
  } finally {
    buffers.destroy();
  }
}

async function benchCopy(device: GPUDevice, p: { bytes: number; iterations: number; seed: number }): Promise<GpuBenchmark['copy']> {
  const { bytes, iterations } = p;
  const src = seededWords(bytes / 4, p.seed + 2);
  const buffers = new Buffers(device);
  try {
    const bufSrc = await buffers.upload(src, GPUBufferUsage.STORAGE);
    const bufDst = await buffers.create(bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const pipeline = await compile(device, COPY_WGSL, 'copy');
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [bufSrc, bufDst].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const grid = copyGrid(bytes / 16, device.limits.maxComputeWorkgroupsPerDimension);
    const seconds = await timeDispatches(device, pipeline, bindGroup, grid, iterations);

    const dst = new Uint32Array(await readBack(device, bufDst));
    const bad = firstMismatch(dst, src);
    if (bad !== -1) {
      throw new EngineError(
        `The GPU copy kernel corrupted data (first wrong word at byte ${bad * 4} of ${bytes}); this device is not scored. Update the GPU driver or try another browser.`,
        { bytes, firstWrongByte: bad * 4 },
      );
    }
    const gbps = (2 * bytes * iterations) / seconds / 1e9;
    return { bytes, iterations, gbps, msPerIteration: (seconds * 1000) / iterations, ok: true };
  } finally {
    buffers.destroy();
  }
}

/** One untimed warm-up dispatch, then `iterations` dispatches timed together; seconds. */
async function timeDispatches(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  bindGroup: GPUBindGroup,
  [x, y]: [number, number],
  iterations: number,
): Promise<number> {
  const submit = async (count: number): Promise<void> => {
    const encoder = device.createCommandEncoder();
    for (let i = 0; i < count; i++) {
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(x, y);
      pass.end();
    }
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  await submit(1);
  const start = performance.now();
  await submit(iterations);
  // performance.now() may be coarsened (100 µs without cross-origin isolation); never 0.
  return Math.max(performance.now() - start, 0.001) / 1000;
}

async function compile(device: GPUDevice, code: string, label: string): Promise<GPUComputePipeline> {
  const module = device.createShaderModule({ label, code });
  try {
    return await device.createComputePipelineAsync({ label, layout: 'auto', compute: { module, entryPoint: 'main' } });
  } catch (err) {
    const info = await module.getCompilationInfo();
    const messages = info.messages.map((msg) => `${msg.lineNum}:${msg.linePos} ${msg.message}`).join('; ');
    throw new EngineError(`The ${label} benchmark shader did not compile (${messages || String(err)}).`, { label });
  }
}

async function readBack(device: GPUDevice, source: GPUBuffer): Promise<ArrayBuffer> {
  const staging = device.createBuffer({ size: source.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    const encoder = device.createCommandEncoder();
    encoder.copyBufferToBuffer(source, 0, staging, 0, source.size);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const copy = staging.getMappedRange().slice(0);
    staging.unmap();
    return copy;
  } finally {
    staging.destroy();
  }
}

/** Creates buffers, turns out-of-memory into EngineError, and destroys them all at the end. */
class Buffers {
  private readonly owned: GPUBuffer[] = [];
  constructor(private readonly device: GPUDevice) {}

  async create(size: number, usage: GPUBufferUsageFlags): Promise<GPUBuffer> {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation'); // e.g. larger than maxBufferSize
    const buffer = this.device.createBuffer({ size, usage });
    this.owned.push(buffer);
    const invalid = await this.device.popErrorScope();
    const outOfMemory = await this.device.popErrorScope();
    const error = invalid ?? outOfMemory;
    if (error !== null) {
      throw new EngineError(`The GPU benchmark could not allocate ${size} bytes (${error.message}).`, { size });
    }
    return buffer;
  }

  async upload(data: Float32Array | Uint32Array, usage: GPUBufferUsageFlags): Promise<GPUBuffer> {
    const buffer = await this.create(data.byteLength, usage | GPUBufferUsage.COPY_DST);
    this.device.queue.writeBuffer(buffer, 0, data);
    return buffer;
  }

  destroy(): void {
    for (const buffer of this.owned) buffer.destroy();
  }
}

/** Runs one phase, mapping a device loss to DeviceLostError and anything untyped to EngineError. */
async function guarded<T>(device: GPUDevice, what: string, signal: AbortSignal | undefined, phase: () => Promise<T>): Promise<T> {
  if (signal?.aborted) throw new AbortedError(what);
  try {
    return await phase();
  } catch (err) {
    // A loss rejects mapAsync and friends with generic DOMExceptions; `lost` settles soon after.
    const lost = await Promise.race([device.lost, delay(100)]);
    if (lost) throw new DeviceLostError(lost.message || lost.reason);
    if (err instanceof SpinneretError) throw err;
    // Not toSpinneretError: a DOMException AbortError here comes from WebGPU, not from `signal`.
    const message = err instanceof Error ? err.message : String(err);
    throw new EngineError(`${what} failed: ${message}`, undefined, { cause: err });
  }
}

function delay(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms));
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}
