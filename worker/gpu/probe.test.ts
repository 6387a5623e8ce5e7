import { describe, expect, it } from 'vitest';
import { WebGPUUnavailableError } from '../../protocol/errors.ts';
import { FakeGpu, SWIFTSHADER_LIKE } from './fake-gpu.ts';
import { probeGpu } from './probe.ts';

describe('probeGpu', () => {
  it('throws WebGPUUnavailableError when there is no navigator.gpu', async () => {
    const err = await probeGpu(undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WebGPUUnavailableError);
    expect((err as WebGPUUnavailableError).details).toEqual({
      reason: 'navigator.gpu missing — browser without WebGPU',
    });
  });

  it('throws WebGPUUnavailableError when requestAdapter gives null or fails', async () => {
    const gpu = new FakeGpu();
    gpu.adapterResults.push('null', 'throw');
    await expect(probeGpu(gpu.asGpu())).rejects.toThrow(/no adapter/);
    const err = await probeGpu(gpu.asGpu()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WebGPUUnavailableError);
    expect((err as Error).message).toMatch(/requestAdapter failed: GPU process unavailable/);
  });

  it('asks for the high-performance adapter and describes it', async () => {
    const gpu = new FakeGpu();
    const { adapter, info } = await probeGpu(gpu.asGpu());
    expect(gpu.lastAdapterOptions).toEqual({ powerPreference: 'high-performance' });
    expect(adapter).toBe(gpu.adapters[0]);
    expect(info).toEqual({
      vendor: 'google',
      architecture: 'swiftshader',
      device: '',
      description: 'google fake',
      isFallbackAdapter: true,
      features: ['float32-filterable', 'subgroups', 'timestamp-query'],
      limits: {
        maxBufferSize: 1024 ** 3,
        maxStorageBufferBindingSize: 1024 ** 3,
        maxComputeWorkgroupStorageSize: 32768,
        maxComputeInvocationsPerWorkgroup: 1024,
        maxComputeWorkgroupSizeX: 1024,
        maxStorageBuffersPerShaderStage: 10,
      },
    });
  });

  it('reads isFallbackAdapter from the adapter where adapter.info lacks it (Chrome < 131)', async () => {
    const onAdapter = new FakeGpu({ ...SWIFTSHADER_LIKE, fallbackOnAdapter: true, isFallbackAdapter: true });
    expect((await probeGpu(onAdapter.asGpu())).info.isFallbackAdapter).toBe(true);
    const hardware = new FakeGpu({ ...SWIFTSHADER_LIKE, vendor: 'nvidia', isFallbackAdapter: false });
    const { info } = await probeGpu(hardware.asGpu());
    expect(info.isFallbackAdapter).toBe(false);
    expect(info.vendor).toBe('nvidia');
  });
});
