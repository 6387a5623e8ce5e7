import { describe, expect, it } from 'vitest';
import { DeviceLostError, InvalidInputError, UnknownModelError, WebGPUUnavailableError } from '../protocol/errors.ts';
import type { JobRequest, JobResult, StreamChunk } from '../protocol/jobs.ts';
import type { ModelEntry } from '../protocol/manifest.ts';
import type { Engine, EngineContext, LoadedModel } from './engines/types.ts';
import { GpuDeviceManager } from './gpu/device.ts';
import { FakeGpu } from './gpu/fake-gpu.ts';
import type { ModelStore } from './models/store.ts';
import { describeCapabilities } from './network/capabilities.ts';
import { Runtime, type RuntimeStatus } from './runtime.ts';

const manifest = {
  version: 1,
  models: [
    {
      id: 'echo',
      name: 'Echo',
      engine: 'onnx',
      kinds: ['embed'],
      files: [{ name: 'model.onnx', url: 'model.onnx', size: 1, sha256: 'a'.repeat(64) }],
      vramBytes: 10,
      onnx: {
        model: 'model.onnx',
        tokenizer: 'model.onnx',
        backends: ['webgpu', 'wasm'],
        embedding: { dim: 1, maxTokens: 8, pooling: 'mean', normalize: false },
      },
    },
  ],
};

const store: ModelStore = { getFile: async () => new Uint8Array(1), has: async () => false, evict: async () => 0 };

/** An engine whose models remember the device they were loaded on and fail once it is gone. */
class DeviceBoundEngine implements Engine {
  readonly kind = 'onnx' as const;
  loads = 0;
  /** Runs during each load, after the device was taken (a test destroys it there). */
  duringLoad: ((load: number) => void) | null = null;
  /** The text of the chunks each run streams, by load; the device is checked before each. */
  chunks: (load: number) => string[] = () => [];
  /** Runs after each streamed chunk (a test destroys the device there). */
  afterChunk: ((load: number, index: number) => void) | null = null;
  /** Where its models run: `wasm` models do not touch the device. */
  backend: 'webgpu' | 'wasm' = 'webgpu';
  /** Without a GPU, models run on WASM (as an onnx model listing `wasm` does) instead of being blocked. */
  wasmFallback = false;
  constructor(private readonly ctx: EngineContext) {}
  plan() {
    if (this.ctx.gpu() === null && this.backend === 'webgpu') {
      if (!this.wasmFallback) throw new WebGPUUnavailableError('no WebGPU adapter');
      return { backend: 'wasm', memoryBytes: 10 };
    }
    return { backend: this.backend, memoryBytes: 10 };
  }
  async load(model: ModelEntry): Promise<LoadedModel> {
    this.loads++;
    const backend = this.plan().backend;
    const device = backend === 'wasm' ? null : await this.ctx.device();
    const load = this.loads;
    const lost = (): boolean => backend === 'webgpu' && (device as unknown as { destroyed: boolean }).destroyed;
    this.duringLoad?.(load);
    await Promise.resolve();
    if (lost()) throw new Error('createBuffer: device lost');
    return {
      modelId: model.id,
      backend,
      memoryBytes: () => 10,
      run: async (request: JobRequest, options = {}): Promise<JobResult> => {
        if (request.kind !== 'embed') throw new InvalidInputError('embed only');
        const texts = this.chunks(load);
        for (const [index, text] of texts.entries()) {
          await Promise.resolve();
          if (lost()) throw new Error('mapAsync: device lost');
          options.onChunk?.({ index, tokens: [text.charCodeAt(0)], text });
          this.afterChunk?.(load, index);
        }
        // A destroyed device fails work, as WebGPU's mapAsync does.
        if (lost()) throw new Error('mapAsync: device lost');
        return { kind: 'embed', embeddings: [[load]], usage: { promptTokens: 1, completionTokens: 0 } };
      },
      unload: async () => undefined,
    };
  }
}

async function setup(runtimeBytes?: number) {
  const gpu = new GpuDeviceManager({ gpu: new FakeGpu().asGpu() });
  let engine: DeviceBoundEngine | null = null;
  const runtime = new Runtime({
    manifestUrl: 'https://host.test/manifest.json',
    store,
    gpu,
    fetch: async () => new Response(JSON.stringify(manifest)),
    engines: (ctx) => [(engine = new DeviceBoundEngine(ctx))],
    ...(runtimeBytes !== undefined && { runtimeDownload: async () => ({ bytes: runtimeBytes, rawBytes: runtimeBytes * 5 }) }),
  });
  await runtime.init();
  if (engine === null) throw new Error('no engine');
  return { runtime, gpu, engine: engine as DeviceBoundEngine };
}

const job = { kind: 'embed', model: 'echo', inputs: ['hi'] };

describe('Runtime', () => {
  it('loads a model once for concurrent jobs', async () => {
    const { runtime, engine } = await setup();
    await Promise.all([runtime.run(job), runtime.run(job), runtime.run(job)]);
    expect(engine.loads).toBe(1);
    expect(runtime.status().gpu?.architecture).toBe('swiftshader');
  });

  it('says which models are loading while they load, and when they are done', async () => {
    const { runtime } = await setup();
    const seen: string[][] = [];
    runtime.onLoadingChange(() => seen.push(runtime.loadingModels()));
    expect(runtime.loadingModels()).toEqual([]);
    const running = runtime.run(job);
    expect(runtime.loadingModels()).toEqual(['echo']);
    await running;
    expect(seen).toEqual([['echo'], []]);
    await runtime.run(job);
    expect(seen).toHaveLength(2);
  });

  it('survives device loss: new device, model reloaded, the job runs again', async () => {
    const { runtime, gpu, engine } = await setup();
    expect((await runtime.run(job)).deviceGeneration).toBe(1);
    (await gpu.device()).destroy();
    const after = await runtime.run(job);
    expect(after.result).toEqual({ kind: 'embed', embeddings: [[2]], usage: { promptTokens: 1, completionTokens: 0 } });
    expect(after.deviceGeneration).toBe(2);
    expect(engine.loads).toBe(2);
    expect(runtime.status().deviceLosses).toBe(1);
  });

  it('runs a job again once when the device is lost while its model loads', async () => {
    const { runtime, gpu, engine } = await setup();
    engine.duringLoad = (load) => {
      if (load === 1) void gpu.device().then((d) => d.destroy());
    };
    const outcome = await runtime.run(job);
    expect(outcome.deviceGeneration).toBe(2);
    expect(engine.loads).toBe(2);
    expect(runtime.status()).toMatchObject({ deviceLosses: 1, jobsRerun: 1 });
  });

  it('streams a job cut by a device loss once: the re-run on the new device continues where the stream was', async () => {
    const { runtime, gpu, engine } = await setup();
    engine.chunks = () => ['a', 'b', 'c', 'd'];
    engine.afterChunk = (load, index) => {
      if (load === 1 && index === 1) void gpu.device().then((d) => d.destroy());
    };
    const seen: StreamChunk[] = [];
    const outcome = await runtime.run(job, { onChunk: (c) => seen.push(c) });
    expect(seen.map((c) => c.text)).toEqual(['a', 'b', 'c', 'd']);
    expect(seen.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(outcome).toMatchObject({ deviceGeneration: 2, result: { embeddings: [[2]] } });
    expect(runtime.status()).toMatchObject({ deviceLosses: 1, jobsRerun: 1 });
  });

  it('fails a streamed job with DeviceLostError when its re-run differs from what was already sent', async () => {
    const { runtime, gpu, engine } = await setup();
    engine.chunks = (load) => (load === 1 ? ['a', 'b', 'c'] : ['a', 'x', 'c']);
    engine.afterChunk = (load, index) => {
      if (load === 1 && index === 1) void gpu.device().then((d) => d.destroy());
    };
    const seen: string[] = [];
    await expect(runtime.run(job, { onChunk: (c) => seen.push(c.text) })).rejects.toBeInstanceOf(DeviceLostError);
    expect(seen).toEqual(['a', 'b']);
    // The device is back and the next job runs whole.
    engine.chunks = () => ['a', 'b'];
    const next: string[] = [];
    await runtime.run(job, { onChunk: (c) => next.push(c.text) });
    expect(next).toEqual(['a', 'b']);
  });

  it('passes on every chunk of a WASM job once, also when the GPU device is lost while it runs', async () => {
    const { runtime, gpu, engine } = await setup();
    engine.backend = 'wasm';
    engine.chunks = () => ['a', 'b', 'c'];
    engine.afterChunk = (load, index) => {
      if (index === 0) void gpu.device().then((d) => d.destroy());
    };
    const seen: string[] = [];
    const outcome = await runtime.run(job, { onChunk: (c) => seen.push(c.text) });
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(outcome.backend).toBe('wasm');
    expect(runtime.status()).toMatchObject({ deviceLosses: 1, jobsRerun: 0 });
  });

  it('retires the GPU once the device manager gives up: no GPU models offered, GPU jobs handed back DEVICE_LOST', async () => {
    const { runtime, gpu, engine } = await setup();
    const heard: RuntimeStatus[] = [];
    runtime.onDeviceLost((s) => heard.push(s));
    // Three losses in a minute are recovered; the fourth is one too many.
    for (let i = 0; i < 3; i++) (await gpu.device()).destroy();
    expect(runtime.status().gpuRetired).toBeNull();
    await runtime.run(job);
    // The fourth loss cuts a streamed job: it is not run again, it fails DEVICE_LOST.
    engine.chunks = () => ['a', 'b'];
    engine.afterChunk = (_load, index) => {
      if (index === 0) void gpu.device().then((d) => d.destroy());
    };
    const loadsBefore = engine.loads;
    await expect(runtime.run(job, { onChunk: () => undefined })).rejects.toMatchObject({ code: 'DEVICE_LOST' });
    expect(runtime.status()).toMatchObject({ gpu: null, deviceLosses: 4, jobsRerun: 0, gpuError: { code: 'DEVICE_LOST' } });
    expect(runtime.status().gpuRetired).toMatchObject({ wasmModels: 0, message: expect.stringMatching(/Reload the tab/) });
    expect(heard.at(-1)?.gpuRetired).toMatchObject({ wasmModels: 0 });
    // The model that needs the GPU is no longer offered, and a job for it fails at once, without a load.
    expect((await runtime.models())[0]).toMatchObject({ plan: null, blocked: { code: 'WEBGPU_UNAVAILABLE' } });
    expect(await describeCapabilities(runtime, ['embed'])).toMatchObject({ adapter: null, models: [] });
    await expect(runtime.run(job)).rejects.toMatchObject({ code: 'DEVICE_LOST' });
    expect(engine.loads).toBe(loadsBefore);
  });

  it('keeps running models that list WASM after the GPU is retired', async () => {
    const { runtime, gpu, engine } = await setup();
    engine.wasmFallback = true;
    for (let i = 0; i < 4; i++) (await gpu.device()).destroy();
    expect(runtime.status().gpuRetired).toMatchObject({ wasmModels: 1 });
    expect(await describeCapabilities(runtime, ['embed'])).toMatchObject({ adapter: null, models: [{ id: 'echo', state: 'available' }] });
    expect(await runtime.run(job)).toMatchObject({ backend: 'wasm' });
  });

  it('rejects malformed jobs and unknown models with typed errors, and keeps working', async () => {
    const { runtime } = await setup();
    await expect(runtime.run({ kind: 'embed', model: 'echo' })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(runtime.run({ ...job, model: 'nope' })).rejects.toBeInstanceOf(UnknownModelError);
    expect((await runtime.run(job)).result.kind).toBe('embed');
  });

  it('counts the onnx runtime in what a model downloads, until an onnx model has loaded', async () => {
    const { runtime } = await setup(4_900_000);
    expect((await runtime.models())[0]).toMatchObject({ id: 'echo', sizeBytes: 1, runtimeBytes: 4_900_000 });
    await runtime.run(job);
    expect((await runtime.models())[0]?.runtimeBytes).toBe(0);
    const { runtime: unknown } = await setup();
    expect((await unknown.models())[0]?.runtimeBytes).toBe(0);
  });

  it('reports a missing manifest as unreachable', async () => {
    const runtime = new Runtime({
      manifestUrl: 'https://host.test/manifest.json',
      store,
      gpu: null,
      fetch: async () => new Response('missing', { status: 404 }),
      engines: () => [],
    });
    await expect(runtime.init()).rejects.toThrow(/HTTP 404/);
  });
});
