/**
 * The onnxruntime-web boundary: module loading, session creation per backend, tensors.
 * One build only (`onnxruntime-web/webgpu`: native WebGPU EP + WASM) — importing several
 * builds multiplies the 14–28 MB wasm in the bundle.
 */
import type * as Ort from 'onnxruntime-web';
import type { OnnxBackend } from '../../../protocol/manifest.ts';
import { checkExternalData } from './external-data.ts';

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
  /** The manifest id of the model the graph belongs to (errors name it). */
  modelId: string;
  bytes: Uint8Array;
  backend: OnnxBackend;
  /** The device sessions on `webgpu` run on; the engine recreates sessions after a device loss. */
  device: GPUDevice | null;
  /** Outputs kept on the GPU between runs (a decoder's `present.*`). */
  gpuOutputs?: readonly string[];
  /** The graph's external data files (`model.onnx_data`), by the path the graph names them with. */
  externalData?: readonly { path: string; data: Uint8Array }[];
}

/**
 * A session for the graph `request.bytes`, after checking that it reads external data only from
 * the files handed over ({@link checkExternalData}): onnxruntime would read any other location
 * from the file system.
 */
export async function createSession(ort: OrtModule, request: SessionRequest): Promise<OrtSession> {
  const { modelId, bytes, backend, device, gpuOutputs = [], externalData = [] } = request;
  checkExternalData(
    modelId,
    bytes,
    externalData.map((f) => f.path),
  );
  const options: Ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' };
  if (externalData.length > 0) options.externalData = externalData.map((f) => ({ path: f.path, data: f.data }));
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

/**
 * A graph's external data among a model's files: `<graph>_data` and its numbered parts
 * (`onnx/model_q4f16.onnx_data`, `…_data_1`), as published exports name them, each with the
 * path relative to the graph's folder that the graph refers to it by.
 */
export function externalDataFiles(graph: string, files: ReadonlyMap<string, Uint8Array>): { path: string; data: Uint8Array }[] {
  const dir = graph.slice(0, graph.lastIndexOf('/') + 1);
  const part = new RegExp(`^${graph.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_data(_\\d+)?$`);
  return [...files]
    .filter(([name]) => part.test(name))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, data]) => ({ path: name.slice(dir.length), data }));
}

/** An empty tensor of `type` (a decoder's first past, with a zero-length sequence axis). */
export function emptyTensor(ort: OrtModule, type: 'float32' | 'float16', dims: readonly number[]): OrtTensor {
  return type === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), dims) : new ort.Tensor('float32', new Float32Array(0), dims);
}

/** IEEE 754 half-precision bits to a number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Reads a tensor to the CPU as float32 (downloads GPU tensors; widens float16), or only the
 * values in [`from`, `to`) — a decoder step needs the last position's logits, not all of them.
 */
export async function readFloat32(tensor: OrtTensor, from = 0, to?: number): Promise<Float32Array> {
  const data = tensor.location === 'cpu' ? tensor.data : await tensor.getData();
  const end = to ?? (data as ArrayLike<number>).length;
  if (data instanceof Float32Array) return from === 0 && end === data.length ? data : data.slice(from, end);
  if (tensor.type === 'float16') {
    // ORT hands float16 out as Uint16Array bits, or as Float16Array where the runtime has one.
    if (data instanceof Uint16Array) {
      const out = new Float32Array(end - from);
      for (let i = from; i < end; i++) out[i - from] = halfToFloat(data[i] ?? 0);
      return out;
    }
    return Float32Array.from((data as unknown as Float32Array).subarray(from, end));
  }
  throw new TypeError(`expected a float output, got ${tensor.type}`);
}

/** The graph's declared inputs with their element types, as the session reports them. */
export function sessionInputs(session: OrtSession): { name: string; type: string }[] {
  const metadata = (session as { inputMetadata?: readonly Ort.InferenceSession.ValueMetadata[] }).inputMetadata;
  if (metadata === undefined) return session.inputNames.map((name) => ({ name, type: 'unknown' }));
  return metadata.map((m) => ({ name: m.name, type: m.isTensor ? m.type : 'unknown' }));
}
