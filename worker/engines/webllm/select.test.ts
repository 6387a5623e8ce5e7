import { createHash } from 'node:crypto';
import { isValidSRI, verifyIntegrity } from '@mlc-ai/web-llm';
import { describe, expect, it } from 'vitest';
import { FeatureMissingError, ModelTooLargeError, WebGPUUnavailableError } from '../../../protocol/errors.ts';
import type { WebLlmBuild, WebLlmModel } from '../../../protocol/manifest.ts';
import type { GpuInfo } from '../../gpu/types.ts';
import { selectBuild, toAppConfig, webLlmDeviceLimits, webLlmModelUrl } from './select.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function gpu(features: string[], limits: Partial<GpuInfo['limits']> = {}): GpuInfo {
  return {
    vendor: 'google',
    architecture: 'swiftshader',
    device: '',
    description: '',
    isFallbackAdapter: true,
    features,
    limits: {
      maxBufferSize: GiB,
      maxStorageBufferBindingSize: GiB,
      maxComputeWorkgroupStorageSize: 32768,
      maxComputeInvocationsPerWorkgroup: 256,
      maxComputeWorkgroupSizeX: 256,
      maxStorageBuffersPerShaderStage: 10,
      ...limits,
    },
  };
}
/** SwiftShader as measured: subgroups, no shader-f16, 1 GiB limits. */
const swiftshader = gpu(['subgroups', 'timestamp-query']);
const f16Gpu = gpu(['shader-f16', 'subgroups']);

function build(quantization: WebLlmBuild['quantization'], over: Partial<WebLlmBuild> = {}): WebLlmBuild {
  return {
    quantization,
    modelId: `Tiny-${quantization}-MLC`,
    model: `https://models.example/org/Tiny-${quantization}-MLC`,
    modelLib: `https://libs.example/Tiny-${quantization}-webgpu.wasm`,
    vramBytes: 600 * MiB,
    requiredFeatures: quantization === 'q4f16_1' ? ['shader-f16'] : [],
    files: [],
    ...over,
  };
}

function model(builds: WebLlmBuild[], over: Partial<WebLlmModel> = {}): WebLlmModel {
  return {
    id: 'tiny',
    name: 'Tiny',
    kinds: ['chat'],
    files: [],
    vramBytes: 600 * MiB,
    requiredFeatures: [],
    engine: 'webllm',
    webllm: { builds },
    ...over,
  };
}

const both = model([build('q4f32_1'), build('q4f16_1', { vramBytes: 500 * MiB })]);

describe('selectBuild', () => {
  it('takes q4f16_1 where the adapter has shader-f16', () => {
    expect(selectBuild(both, f16Gpu, Infinity).quantization).toBe('q4f16_1');
  });

  it('takes q4f32_1 on an adapter without shader-f16 (SwiftShader)', () => {
    expect(selectBuild(both, swiftshader, Infinity).quantization).toBe('q4f32_1');
  });

  it('runs q4f32_1 on an f16 adapter when the model has no f16 build', () => {
    expect(selectBuild(model([build('q4f32_1')]), f16Gpu, Infinity).quantization).toBe('q4f32_1');
  });

  it('refuses with WebGPUUnavailableError without a GPU: web-llm has no CPU path', () => {
    expect(() => selectBuild(both, null, Infinity)).toThrow(WebGPUUnavailableError);
  });

  it('refuses with FeatureMissingError when every build needs shader-f16', () => {
    const f16Only = model([build('q4f16_1', { requiredFeatures: [] })]);
    const err = catchError(() => selectBuild(f16Only, swiftshader, Infinity));
    expect(err).toBeInstanceOf(FeatureMissingError);
    // shader-f16 is implied by q4f16_1 even when the manifest forgets to list it.
    expect((err as FeatureMissingError).details).toMatchObject({ modelId: 'tiny', missing: ['shader-f16'] });
    expect((err as Error).message).toMatch(/q4f32_1/);
  });

  it("counts the model's own required features", () => {
    const needsF64 = model([build('q4f32_1')], { requiredFeatures: ['shader-f64'] });
    expect(() => selectBuild(needsF64, f16Gpu, Infinity)).toThrow(FeatureMissingError);
  });

  it('refuses with ModelTooLargeError when the chosen build exceeds the VRAM budget', () => {
    const err = catchError(() => selectBuild(model([build('q4f32_1')]), swiftshader, 512 * MiB));
    expect(err).toBeInstanceOf(ModelTooLargeError);
    expect((err as ModelTooLargeError).details).toMatchObject({ neededBytes: 600 * MiB, availableBytes: 512 * MiB });
  });

  it('falls back to a usable build that fits when the preferred one does not', () => {
    const m = model([build('q4f16_1', { vramBytes: 900 * MiB }), build('q4f32_1', { vramBytes: 700 * MiB })]);
    expect(selectBuild(m, f16Gpu, 800 * MiB).quantization).toBe('q4f32_1');
    // Without f16 the q4f16 build is not usable, whatever its size.
    expect(() => selectBuild(m, swiftshader, 650 * MiB)).toThrow(ModelTooLargeError);
  });

  it('keeps the manifest order within a quantization', () => {
    const m = model([build('q4f32_1', { modelId: 'first' }), build('q4f32_1', { modelId: 'second' })]);
    expect(selectBuild(m, swiftshader, Infinity).modelId).toBe('first');
  });

  it("checks the model's largest buffer against the binding size web-llm's device gets", () => {
    const m = model([build('q4f32_1')], { maxBufferBytes: 512 * MiB });
    expect(selectBuild(m, swiftshader, Infinity).quantization).toBe('q4f32_1');
    // 768 MiB adapter: web-llm falls back to a fixed 128 MiB binding, not the adapter's 768.
    const smaller = gpu([], { maxStorageBufferBindingSize: 768 * MiB });
    const err = catchError(() => selectBuild(m, smaller, Infinity));
    expect(err).toBeInstanceOf(ModelTooLargeError);
    expect((err as ModelTooLargeError).details).toMatchObject({ neededBytes: 512 * MiB, availableBytes: 128 * MiB });
  });

  it('refuses adapters below the floors web-llm requires', () => {
    expect(() => selectBuild(both, gpu([], { maxStorageBuffersPerShaderStage: 8 }), Infinity)).toThrow(WebGPUUnavailableError);
    expect(() => selectBuild(both, gpu([], { maxStorageBufferBindingSize: 64 * MiB }), Infinity)).toThrow(/maxStorageBufferBindingSize/);
  });
});

describe('webLlmDeviceLimits', () => {
  it('mirrors detectGPUDevice: 1 GiB when offered, else the fixed fallbacks', () => {
    expect(webLlmDeviceLimits(swiftshader)).toEqual({ maxBufferSize: GiB, maxStorageBufferBindingSize: GiB });
    expect(webLlmDeviceLimits(gpu([], { maxBufferSize: 512 * MiB, maxStorageBufferBindingSize: 256 * MiB }))).toEqual({
      maxBufferSize: 256 * MiB,
      maxStorageBufferBindingSize: 128 * MiB,
    });
  });
});

describe('webLlmModelUrl', () => {
  it('appends resolve/main/ like web-llm cleanModelUrl', () => {
    expect(webLlmModelUrl('https://h.example/org/M')).toBe('https://h.example/org/M/resolve/main/');
    expect(webLlmModelUrl('https://h.example/org/M/')).toBe('https://h.example/org/M/resolve/main/');
    expect(webLlmModelUrl('https://h.example/org/M/resolve/v2/')).toBe('https://h.example/org/M/resolve/v2/');
    expect(webLlmModelUrl('/models/org/M', 'http://127.0.0.1:4100/app/')).toBe('http://127.0.0.1:4100/models/org/M/resolve/main/');
  });
});

describe('toAppConfig', () => {
  const configBytes = new TextEncoder().encode('{"vocab_size": 8}');
  const libBytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]);
  const hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
  const base = 'https://models.example/org/Tiny-q4f16_1-MLC/resolve/main/';
  const b = build('q4f16_1', {
    contextWindow: 2048,
    vramBytes: 879 * MiB,
    files: [
      { name: 'mlc-chat-config.json', url: `${base}mlc-chat-config.json`, size: configBytes.length, sha256: hex(configBytes) },
      { name: 'lib.wasm', url: 'https://libs.example/Tiny-q4f16_1-webgpu.wasm', size: libBytes.length, sha256: hex(libBytes) },
      { name: 'tokenizer.json', url: `${base}tokenizer.json`, size: 1, sha256: 'ab'.repeat(32) },
      { name: 'params_shard_0.bin', url: `${base}params_shard_0.bin`, size: 1, sha256: 'cd'.repeat(32) },
    ],
  });

  it('makes one ModelRecord web-llm can find by the build id', () => {
    const config = toAppConfig(b, { modelFeatures: ['subgroups'], maxBufferBytes: 200 * MiB });
    expect(config.cacheBackend).toBe('cache');
    expect(config.model_list).toHaveLength(1);
    const record = config.model_list[0];
    expect(record).toMatchObject({
      model: base,
      model_id: 'Tiny-q4f16_1-MLC',
      model_lib: 'https://libs.example/Tiny-q4f16_1-webgpu.wasm',
      vram_required_MB: 879,
      required_features: ['shader-f16', 'subgroups'],
      overrides: { context_window_size: 2048 },
      buffer_size_required_bytes: 200 * MiB,
    });
  });

  it('leaves out overrides and integrity the build does not give', () => {
    const record = toAppConfig(build('q4f32_1')).model_list[0];
    expect(record?.overrides).toBeUndefined();
    expect(record?.integrity).toBeUndefined();
    expect(record?.required_features).toEqual([]);
  });

  it("turns listed config, library and tokenizer hashes into SRI that web-llm's own verifier accepts", async () => {
    const integrity = toAppConfig(b).model_list[0]?.integrity;
    expect(integrity?.onFailure).toBe('error');
    expect(integrity?.config).toBe(`sha256-${createHash('sha256').update(configBytes).digest('base64')}`);
    expect(Object.keys(integrity?.tokenizer ?? {})).toEqual(['tokenizer.json']);
    const lib = integrity?.model_lib ?? '';
    expect(isValidSRI(lib)).toBe(true);
    await expect(verifyIntegrity(libBytes.slice().buffer, lib, 'lib.wasm')).resolves.toBeUndefined();
    await expect(verifyIntegrity(configBytes.slice().buffer, lib, 'lib.wasm')).rejects.toMatchObject({ name: 'IntegrityError' });
  });

  it('resolves relative URLs against the base', () => {
    const rel = build('q4f32_1', { model: '/m/org/M', modelLib: 'libs/m.wasm' });
    const record = toAppConfig(rel, { baseUrl: 'http://127.0.0.1:4100/app/' }).model_list[0];
    expect(record?.model).toBe('http://127.0.0.1:4100/m/org/M/resolve/main/');
    expect(record?.model_lib).toBe('http://127.0.0.1:4100/app/libs/m.wasm');
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}
