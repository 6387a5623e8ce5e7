/**
 * A contributor whose GPU the runtime gave up on (lost more than 3 times in a minute), against the
 * real coordinator and requester SDK: the real Runtime and GpuDeviceManager on a fake `navigator.gpu`.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import type { JobDone } from '../../coordinator/app.ts';
import type { Relay } from '../../coordinator/leases/relay.ts';
import { startCoordinator } from '../../coordinator/testing.ts';
import { WebGPUUnavailableError } from '../../protocol/errors.ts';
import type { JobRequest, JobResult } from '../../protocol/jobs.ts';
import type { ModelEntry } from '../../protocol/manifest.ts';
import { RequesterClient } from '../../requester/client.ts';
import type { Engine, EngineContext, LoadedModel } from '../engines/types.ts';
import { GpuDeviceManager } from '../gpu/device.ts';
import { FakeGpu } from '../gpu/fake-gpu.ts';
import type { ModelStore } from '../models/store.ts';
import { Runtime } from '../runtime.ts';
import { Contributor } from './contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from './identity.ts';

const MODEL = 'gpu-embed';
const WASM_MODEL = 'any-embed';
const entry = (id: string, backends: string[]) => ({
  id,
  name: 'GPU embed',
  engine: 'onnx',
  kinds: ['embed'],
  files: [{ name: 'model.onnx', url: 'model.onnx', size: 1, sha256: 'a'.repeat(64) }],
  vramBytes: 10,
  onnx: {
    model: 'model.onnx',
    tokenizer: 'model.onnx',
    backends,
    embedding: { dim: 1, maxTokens: 8, pooling: 'mean', normalize: false },
  },
});
const gpuOnly = { version: 1, models: [entry(MODEL, ['webgpu'])] };
const store: ModelStore = { getFile: async () => new Uint8Array(1), has: async () => true, evict: async () => 0 };
const embed: JobRequest = { kind: 'embed', model: MODEL, inputs: ['x'] };

/**
 * An engine that runs on the GPU, or on WASM when there is none and the model lists `wasm` (as the onnx
 * engine chooses); a GPU run fails once its device is destroyed; `hold` keeps runs waiting.
 */
class GpuOnlyEngine implements Engine {
  readonly kind = 'onnx' as const;
  runs = 0;
  running = 0;
  #hold: Promise<void> | null = null;
  #release: () => void = () => undefined;
  constructor(private readonly ctx: EngineContext) {}
  plan(model: ModelEntry) {
    if (this.ctx.gpu() !== null) return { backend: 'webgpu', memoryBytes: 10 };
    if (model.engine === 'onnx' && model.onnx.backends.includes('wasm')) return { backend: 'wasm', memoryBytes: 10 };
    throw new WebGPUUnavailableError('no WebGPU adapter');
  }
  hold(): void {
    this.#hold = new Promise((resolve) => (this.#release = resolve));
  }
  release(): void {
    this.#hold = null;
    this.#release();
  }
  async load(model: ModelEntry): Promise<LoadedModel> {
    const backend = this.plan(model).backend;
    const device = backend === 'wasm' ? { destroyed: false } : ((await this.ctx.device()) as unknown as { destroyed: boolean } | null);
    if (device === null) throw new WebGPUUnavailableError('no device');
    return {
      modelId: model.id,
      backend,
      memoryBytes: () => 10,
      run: async (): Promise<JobResult> => {
        this.runs++;
        this.running++;
        try {
          await this.#hold;
          if (device.destroyed) throw new Error('mapAsync: device lost');
          return { kind: 'embed', embeddings: [[1]], usage: { promptTokens: 1, completionTokens: 0 } };
        } finally {
          this.running--;
        }
      },
      unload: async () => undefined,
    };
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function device(coordinatorUrl: string, manifest: object = gpuOnly) {
  const gpu = new GpuDeviceManager({ gpu: new FakeGpu().asGpu() });
  let engine: GpuOnlyEngine | null = null;
  const runtime = new Runtime({
    manifestUrl: 'https://host.test/manifest.json',
    store,
    gpu,
    fetch: async () => new Response(JSON.stringify(manifest)),
    engines: (ctx) => [(engine = new GpuOnlyEngine(ctx))],
  });
  await runtime.init();
  const contributor = new Contributor({
    coordinatorUrl: `${coordinatorUrl.replace(/^http/, 'ws')}/v1/contributor`,
    runtime,
    identity: await loadOrCreateIdentity(new MemoryKeyStore()),
    consent: ['embed'],
    client: { name: 'test', version: '0.0.0' },
    webSocket: WebSocket,
  });
  cleanups.push(() => contributor.stop({ drain: false }));
  contributor.start();
  await vi.waitFor(() => expect(contributor.status().state).toBe('connected'), { timeout: 5000 });
  if (engine === null) throw new Error('no engine');
  return { gpu, runtime, contributor, engine: engine as GpuOnlyEngine, id: contributor.status().contributorId ?? '' };
}

async function network() {
  const captured: { relay: Relay | null } = { relay: null };
  /** Contributors the scheduler found able to take a job (slots, consent, model), in order. */
  const considered: string[] = [];
  const done: JobDone[] = [];
  const coordinator = await startCoordinator({
    cluster: (r) => (captured.relay = r),
    scheduler: { eligible: (c) => (considered.push(c.id), true) },
    onJobDone: (d) => done.push(d),
  });
  cleanups.push(() => coordinator.close());
  const { secret } = await coordinator.coordinator.createApiKey('requester', { jobsPerMinute: 1000, maxInFlight: 100 });
  const requester = new RequesterClient({ coordinatorUrl: coordinator.url, apiKey: secret });
  /** The coordinator's own record of a connected contributor. */
  const seen = (id: string): NonNullable<ReturnType<Relay['contributors']['get']>> => {
    const c = captured.relay?.contributors.get(id);
    if (c === undefined) throw new Error(`contributor ${id} is not connected`);
    return c;
  };
  return { coordinator, requester, considered, done, seen };
}

describe('A contributor whose GPU cannot be made again', () => {
  it('tells the coordinator, gets no job after that, and hands its job in flight back to be run elsewhere, credited there', async () => {
    const { coordinator, requester, considered, done, seen: seenBy } = await network();
    const a = await device(coordinator.url);
    const seen = () => seenBy(a.id);

    // Three losses within a minute are recovered: A keeps its GPU and its slot.
    for (let i = 0; i < 3; i++) (await a.gpu.device()).destroy();
    expect(a.runtime.status().gpuRetired ?? null).toBeNull();
    expect(await requester.run(embed)).toMatchObject({ attempts: 1 });

    // The fourth loss comes while A runs a job.
    a.engine.hold();
    const first = requester.run(embed);
    await vi.waitFor(() => expect(a.engine.running).toBe(1), { timeout: 5000 });
    (await a.gpu.device()).destroy();
    a.engine.release();

    await vi.waitFor(
      () => expect(a.contributor.status()).toMatchObject({ state: 'paused', pausedBy: 'device', jobsFailed: 1, running: 0 }),
      {
        timeout: 5000,
      },
    );
    expect(a.contributor.status().device.retired).toMatchObject({ wasmModels: 0, message: expect.stringMatching(/Reload the tab/) });
    // The coordinator's view: no adapter, no model, no open slot, paused by `device`.
    await vi.waitFor(() => expect(seen().status?.pausedBy).toBe('device'), { timeout: 5000 });
    expect(seen().capabilities).toMatchObject({ adapter: null, models: [] });
    expect(seen().openSlots).toBeLessThanOrEqual(0);

    // From then on A is offered nothing: the handed-back job and a new one wait for another device.
    const consideredBefore = considered.length;
    const runsBefore = a.engine.runs;
    const second = requester.run(embed);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(considered.slice(consideredBefore)).not.toContain(a.id);
    expect(a.engine.runs).toBe(runsBefore);
    expect(a.contributor.status()).toMatchObject({ jobsFailed: 1, running: 0, jobsDone: 1 });

    // A healthy device joins and answers both, once each; only it is credited for them.
    const b = await device(coordinator.url);
    expect(await first).toMatchObject({ kind: 'embed', embeddings: [[1]], attempts: 2 });
    expect(await second).toMatchObject({ kind: 'embed', embeddings: [[1]], attempts: 1 });
    expect(considered.slice(consideredBefore)).not.toContain(a.id);
    expect(done.map((d) => d.contributorId)).toEqual([a.id, b.id, b.id]);
    expect(coordinator.coordinator.stats()).toMatchObject({ jobs: { done: 3 } });
  });

  it('goes WASM-only when a model runs without the GPU: the coordinator leases it only that model, run on WASM', async () => {
    const { coordinator, requester, considered, seen } = await network();
    const a = await device(coordinator.url, { version: 1, models: [entry(MODEL, ['webgpu']), entry(WASM_MODEL, ['webgpu', 'wasm'])] });
    for (let i = 0; i < 4; i++) (await a.gpu.device()).destroy();
    await vi.waitFor(() => expect(seen(a.id).capabilities).toMatchObject({ adapter: null, models: [{ id: WASM_MODEL }] }), {
      timeout: 5000,
    });
    expect(a.contributor.status()).toMatchObject({ state: 'connected', pausedBy: null, device: { retired: { wasmModels: 1 } } });
    expect(seen(a.id).openSlots).toBeGreaterThan(0);
    expect(await requester.run({ ...embed, model: WASM_MODEL })).toMatchObject({ kind: 'embed', embeddings: [[1]], attempts: 1 });
    expect(await a.runtime.loadedModels()).toEqual([{ modelId: WASM_MODEL, backend: 'wasm', memoryBytes: 10 }]);
    // The GPU-only model is not leased to it: the job waits for another device.
    const before = considered.length;
    const gpuJob = requester.run(embed);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(considered.slice(before)).not.toContain(a.id);
    const b = await device(coordinator.url);
    expect(await gpuJob).toMatchObject({ attempts: 1 });
    expect(considered.slice(before)).toEqual([b.id]);
    expect(a.contributor.status()).toMatchObject({ jobsDone: 1, jobsFailed: 0 });
  });
});
