/** Which backend an ONNX model runs on, on this device. Pure rules, tested in Node. */
import { FeatureMissingError, ModelTooLargeError, WebGPUUnavailableError } from '../../../protocol/errors.ts';
import type { OnnxBackend, OnnxModel } from '../../../protocol/manifest.ts';
import type { GpuInfo } from '../../gpu/types.ts';

export interface BackendChoice {
  backend: OnnxBackend;
  /** Why this backend and not the preferred one, for the UI; absent when the first choice was taken. */
  fallbackReason?: string;
}

export interface SelectOptions {
  /** The GPU, or null when WebGPU is unavailable. */
  gpu: GpuInfo | null;
  /** Why WebGPU is unavailable, when `gpu` is null. */
  gpuUnavailableReason?: string;
  /** Most GPU memory the contributor lets Spinneret use, bytes. */
  vramBudgetBytes: number;
  /** Forces a backend (tests and benchmarks); must be one the model lists. */
  force?: OnnxBackend;
}

/**
 * Takes the model's backends in its order of preference and returns the first that can run
 * here. WebGPU needs an adapter, the model's features, buffers within the adapter's limits and
 * memory within the budget; WASM needs none of these. Throws the error of the preferred
 * backend when none fits, so the message names what to change.
 */
export function selectOnnxBackend(model: OnnxModel, options: SelectOptions): BackendChoice {
  const candidates = options.force !== undefined ? model.onnx.backends.filter((b) => b === options.force) : model.onnx.backends;
  if (candidates.length === 0) {
    throw new WebGPUUnavailableError(`model "${model.id}" does not list the ${options.force ?? ''} backend`);
  }
  let firstError: Error | null = null;
  for (const backend of candidates) {
    const error = backend === 'wasm' ? null : webgpuBlocker(model, options);
    if (error === null) {
      return firstError === null ? { backend } : { backend, fallbackReason: firstError.message };
    }
    firstError ??= error;
  }
  throw firstError ?? new WebGPUUnavailableError('no backend');
}

function webgpuBlocker(model: OnnxModel, { gpu, gpuUnavailableReason, vramBudgetBytes }: SelectOptions): Error | null {
  if (gpu === null) return new WebGPUUnavailableError(gpuUnavailableReason ?? 'no adapter');
  const missing = model.requiredFeatures.filter((f) => !gpu.features.includes(f));
  if (missing.length > 0) return new FeatureMissingError(model.id, missing);
  const maxBuffer = Math.min(gpu.limits.maxBufferSize, gpu.limits.maxStorageBufferBindingSize);
  if (model.maxBufferBytes !== undefined && model.maxBufferBytes > maxBuffer) {
    return new ModelTooLargeError(model.id, model.maxBufferBytes, maxBuffer, 'a single GPU buffer');
  }
  if (model.vramBytes > vramBudgetBytes) {
    return new ModelTooLargeError(model.id, model.vramBytes, vramBudgetBytes, 'GPU memory');
  }
  return null;
}
