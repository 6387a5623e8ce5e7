/** Finds a WebGPU adapter and describes it as plain {@link GpuInfo}. */
import { WebGPUUnavailableError } from '../../protocol/errors.ts';
import type { GpuInfo } from './types.ts';

/** An adapter ready for `requestDevice`, and what was learnt about it. */
export interface GpuProbe {
  /** Fresh and unconsumed: an adapter gives one device only. */
  adapter: GPUAdapter;
  info: GpuInfo;
}

/** `navigator.gpu` where the global exists (it does not in Node 20). */
export function defaultGpu(): GPU | undefined {
  return typeof navigator === 'undefined' ? undefined : navigator.gpu;
}

/**
 * Requests a high-performance adapter. Throws {@link WebGPUUnavailableError} when there is
 * no `navigator.gpu`, no adapter, or `requestAdapter` itself fails. Call it again for every
 * new device: a lost device's adapter cannot make another.
 */
export async function probeGpu(gpu: GPU | undefined = defaultGpu()): Promise<GpuProbe> {
  if (gpu === undefined || gpu === null) {
    throw new WebGPUUnavailableError('navigator.gpu missing — browser without WebGPU');
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    throw new WebGPUUnavailableError(`requestAdapter failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (adapter === null) {
    throw new WebGPUUnavailableError('no adapter — the GPU is blocklisted, disabled, or WebGPU is off');
  }
  return { adapter, info: describeAdapter(adapter) };
}

/** Reads an adapter's identity, features and the limits models care about. */
export function describeAdapter(adapter: GPUAdapter): GpuInfo {
  // `adapter.info` arrived in Chrome 127; older builds only had `requestAdapterInfo()`.
  const info: Partial<GPUAdapterInfo> | undefined = adapter.info;
  const limits = adapter.limits;
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    isFallbackAdapter: readFallback(info) ?? readFallback(adapter) ?? false,
    features: [...adapter.features].sort(),
    limits: {
      maxBufferSize: limits.maxBufferSize,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
    },
  };
}

/**
 * `isFallbackAdapter` moved from GPUAdapter to GPUAdapterInfo (Chrome 131) and is absent from
 * `@webgpu/types`, so it is read structurally from whichever object has it.
 */
function readFallback(source: object | undefined): boolean | undefined {
  if (source === undefined || !('isFallbackAdapter' in source)) return undefined;
  return typeof source.isFallbackAdapter === 'boolean' ? source.isFallbackAdapter : undefined;
}
