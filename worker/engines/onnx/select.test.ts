import { describe, expect, it } from 'vitest';
import { FeatureMissingError, ModelTooLargeError, WebGPUUnavailableError } from '../../../protocol/errors.ts';
import type { OnnxModel } from '../../../protocol/manifest.ts';
import type { GpuInfo } from '../../gpu/types.ts';
import { selectOnnxBackend } from './select.ts';

const gpu: GpuInfo = {
  vendor: 'google',
  architecture: 'swiftshader',
  device: '',
  description: '',
  isFallbackAdapter: true,
  features: ['subgroups', 'timestamp-query'],
  limits: {
    maxBufferSize: 1 << 30,
    maxStorageBufferBindingSize: 1 << 27,
    maxComputeWorkgroupStorageSize: 32768,
    maxComputeInvocationsPerWorkgroup: 256,
    maxComputeWorkgroupSizeX: 256,
    maxStorageBuffersPerShaderStage: 10,
  },
};

function model(backends: ('webgpu' | 'wasm')[], extra: Partial<OnnxModel> = {}): OnnxModel {
  return {
    id: 'm',
    name: 'm',
    engine: 'onnx',
    kinds: ['infer'],
    files: [],
    vramBytes: 1 << 20,
    requiredFeatures: [],
    onnx: { model: 'model.onnx', backends, inputs: [] },
    ...extra,
  };
}

const budget = 1 << 30;

describe('selectOnnxBackend', () => {
  it('takes WebGPU first when the model prefers it and the device can', () => {
    expect(selectOnnxBackend(model(['webgpu', 'wasm']), { gpu, vramBudgetBytes: budget })).toEqual({ backend: 'webgpu' });
  });

  it('falls back to WASM without an adapter and says why', () => {
    const choice = selectOnnxBackend(model(['webgpu', 'wasm']), { gpu: null, gpuUnavailableReason: 'no adapter', vramBudgetBytes: budget });
    expect(choice.backend).toBe('wasm');
    expect(choice.fallbackReason).toMatch(/WebGPU is not available/);
  });

  it('refuses a WebGPU-only model without an adapter', () => {
    expect(() => selectOnnxBackend(model(['webgpu']), { gpu: null, vramBudgetBytes: budget })).toThrow(WebGPUUnavailableError);
  });

  it('refuses missing features, oversized buffers and memory beyond the budget', () => {
    expect(() => selectOnnxBackend(model(['webgpu'], { requiredFeatures: ['shader-f16'] }), { gpu, vramBudgetBytes: budget })).toThrow(
      FeatureMissingError,
    );
    expect(() => selectOnnxBackend(model(['webgpu'], { maxBufferBytes: (1 << 27) + 1 }), { gpu, vramBudgetBytes: budget })).toThrow(
      /single GPU buffer/,
    );
    expect(() => selectOnnxBackend(model(['webgpu'], { vramBytes: budget + 1 }), { gpu, vramBudgetBytes: budget })).toThrow(
      ModelTooLargeError,
    );
  });

  it('falls back to WASM when a WebGPU rule fails and WASM is allowed', () => {
    const choice = selectOnnxBackend(model(['webgpu', 'wasm'], { requiredFeatures: ['shader-f16'] }), { gpu, vramBudgetBytes: budget });
    expect(choice).toMatchObject({ backend: 'wasm', fallbackReason: expect.stringMatching(/shader-f16/) });
  });

  it('honours a forced backend only when the model lists it', () => {
    expect(selectOnnxBackend(model(['webgpu', 'wasm']), { gpu, vramBudgetBytes: budget, force: 'wasm' }).backend).toBe('wasm');
    expect(() => selectOnnxBackend(model(['webgpu']), { gpu, vramBudgetBytes: budget, force: 'wasm' })).toThrow(/does not list/);
  });
});
