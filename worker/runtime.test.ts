import { describe, expect, it } from 'vitest';
import { InvalidInputError, UnknownModelError } from '../protocol/errors.ts';
import type { JobRequest, JobResult } from '../protocol/jobs.ts';
import type { ModelEntry } from '../protocol/manifest.ts';
import type { Engine, EngineContext, LoadedModel } from './engines/types.ts';
import { GpuDeviceManager } from './gpu/device.ts';
import { FakeGpu } from './gpu/fake-gpu.ts';
import type { ModelStore } from './models/store.ts';
import { Runtime } from './runtime.ts';

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
  constructor(private readonly ctx: EngineContext) {}
  plan() {
    return { backend: 'webgpu', memoryBytes: 10 };
  }
  async load(model: ModelEntry): Promise<LoadedModel> {
    this.loads++;
    const device = await this.ctx.device();
    const load = this.loads;
    return {
      modelId: model.id,
      backend: 'webgpu',
      memoryBytes: () => 10,
      async run(request: JobRequest): Promise<JobResult> {
        if (request.kind !== 'embed') throw new InvalidInputError('embed only');
        // A destroyed device fails work, as WebGPU's mapAsync does.
        if ((device as unknown as { destroyed: boolean }).destroyed) throw new Error('mapAsync: device lost');
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
