/**
 * The onnxruntime-web boundary: module loading, session creation per backend, tensors.
 * One build only (`onnxruntime-web/webgpu`: native WebGPU EP + WASM) — importing several
 * builds multiplies the 14–28 MB wasm in the bundle.
 */
import type * as Ort from 'onnxruntime-web';
import type { OnnxBackend } from '../../../protocol/manifest.ts';

export type OrtModule = typeof Ort;
export type OrtSession = Ort.InferenceSession;
export type OrtTensor = Ort.Tensor;

let ortPromise: Promise<OrtModule> | null = null;

/** Loads onnxruntime-web once, on first use (it is large; the page never loads it). */
export function loadOrt(): Promise<OrtModule> {
  ortPromise ??= import('onnxruntime-web/webgpu').then((ort) => {
    ort.env.logLevel = 'error';
    // Threads need cross-origin isolation (COOP/COEP); without it ORT would warn and use one.
    ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    return ort;
  });
  return ortPromise;
}

export interface SessionRequest {
  bytes: Uint8Array;
  backend: OnnxBackend;
  /** The device sessions on `webgpu` run on; the engine recreates sessions after a device loss. */
  device: GPUDevice | null;
  /** Outputs kept on the GPU between runs (a decoder's `present.*`). */
  gpuOutputs?: readonly string[];
}

export async function createSession(ort: OrtModule, request: SessionRequest): Promise<OrtSession> {
  const { bytes, backend, device, gpuOutputs = [] } = request;
  const options: Ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' };
  if (backend === 'webgpu') {
    options.executionProviders = device === null ? ['webgpu'] : [{ name: 'webgpu', device }];
    if (gpuOutputs.length > 0) {
      options.preferredOutputLocation = Object.fromEntries(gpuOutputs.map((name) => [name, 'gpu-buffer' as const]));
    }
  } else {
    options.executionProviders = ['wasm'];
    // ORT's thread pool spins after each run by default, holding cores that the page (and the
    // contributor's other work) need; on a 2-core machine that stalled the reply by 5–10 ms.
    options.extra = { session: { 'intra_op.allow_spinning': '0', 'inter_op.allow_spinning': '0' } };
  }
  return ort.InferenceSession.create(bytes, options);
}

export function int64Tensor(ort: OrtModule, values: ArrayLike<number>, dims: readonly number[]): OrtTensor {
  const data = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i] ?? 0);
  return new ort.Tensor('int64', data, dims);
}

export function float32Tensor(ort: OrtModule, values: ArrayLike<number>, dims: readonly number[]): OrtTensor {
  return new ort.Tensor('float32', Float32Array.from(values), dims);
}

/** Reads a tensor to the CPU as float32 (downloads GPU tensors). */
export async function readFloat32(tensor: OrtTensor): Promise<Float32Array> {
  const data = tensor.location === 'cpu' ? tensor.data : await tensor.getData();
  if (!(data instanceof Float32Array)) throw new TypeError(`expected float32 output, got ${tensor.type}`);
  return data;
}
