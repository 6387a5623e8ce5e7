/**
 * The worker's API, a plain typed object exposed to the page with comlink. Long calls take a
 * call id the page can cancel with {@link WorkerApi.cancel}, since an AbortSignal cannot cross
 * `postMessage`.
 */
import type { StreamChunk } from '../protocol/jobs.ts';
import type { GpuBenchmark, GpuInfo } from './gpu/types.ts';
import type { GpuDeviceManager } from './gpu/device.ts';
import { runGpuBenchmark } from './gpu/bench.ts';
import { AbortedError, EngineError, WebGPUUnavailableError } from '../protocol/errors.ts';
import type { LoadProgress } from './engines/types.ts';
import type { LoadedSummary, ModelSummary, RunOutcome, Runtime, RuntimeStatus } from './runtime.ts';
import type { JobKind } from '../protocol/manifest.ts';
import { Contributor, type ContributorStatus } from './network/contributor.ts';
import { IndexedDbKeyStore, loadOrCreateIdentity } from './network/identity.ts';

/** How the worker takes part in the network. */
export interface ContributeOptions {
  /** Base URL of the coordinator (http or https); the WebSocket goes to `/v1/contributor`. */
  coordinatorUrl: string;
  /** Jobs run at once. */
  slots?: number;
  /** Job kinds the contributor allows; all by default. */
  consent?: JobKind[];
  /** Wallet session token from `POST /v1/wallet/proof`, sent in `hello.session`. */
  session?: string;
}

const CLIENT = { name: 'spinneret-web', version: '0.1.0' };
const ALL_KINDS: JobKind[] = ['embed', 'generate', 'chat', 'infer'];

/** `http(s)://host/base` → `ws(s)://host/base/v1/contributor`. */
export function contributorSocketUrl(coordinatorUrl: string): string {
  const url = new URL(coordinatorUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : url.protocol === 'http:' ? 'ws:' : url.protocol;
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/contributor`;
  return url.href;
}

export interface CallOptions {
  /** Lets the page cancel this call with `cancel(callId)`. */
  callId?: string;
}

/** What the page tells the worker at start. */
export interface WorkerConfig {
  /** URL of the model manifest. */
  manifestUrl: string;
  /** Forces ONNX models onto one backend (comparisons and tests). */
  backend?: 'webgpu' | 'wasm';
  /** GPU memory the contributor allows, MiB. */
  vramMiB?: number;
}

export interface RuntimeParts {
  runtime: Runtime;
  gpu: GpuDeviceManager | null;
}

export function createWorkerApi(build: (config: WorkerConfig) => RuntimeParts) {
  let parts: RuntimeParts | null = null;
  let contributor: Contributor | null = null;
  const need = (): RuntimeParts => {
    if (parts === null) throw new EngineError('The worker is not initialised. Call init(config) first.');
    return parts;
  };
  const calls = new Map<string, AbortController>();
  const track = <T>(callId: string | undefined, body: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const controller = new AbortController();
    if (callId !== undefined) calls.set(callId, controller);
    return body(controller.signal).finally(() => callId !== undefined && calls.delete(callId));
  };

  return {
    /** Loads the manifest and probes the GPU. */
    async init(config: WorkerConfig): Promise<RuntimeStatus> {
      parts ??= build(config);
      await parts.runtime.init();
      return parts.runtime.status();
    },

    status(): RuntimeStatus {
      return need().runtime.status();
    },

    gpuInfo(): GpuInfo | null {
      return need().runtime.status().gpu;
    },

    /** Runs the WGSL matmul and copy kernels, each checked against a CPU reference. */
    async benchmark(options: { matmulSize?: number; copyBytes?: number } = {}): Promise<GpuBenchmark> {
      const { runtime, gpu } = need();
      if (gpu === null || runtime.status().gpu === null) throw new WebGPUUnavailableError('no WebGPU adapter to benchmark');
      return runGpuBenchmark(await gpu.device(), options);
    },

    models(): Promise<ModelSummary[]> {
      return need().runtime.models();
    },

    loaded(): Promise<LoadedSummary[]> {
      return need().runtime.loadedModels();
    },

    /** Loads a model; `onProgress` must be wrapped with comlink's `proxy()`. */
    async load(modelId: string, onProgress?: (p: LoadProgress) => void, options: CallOptions = {}): Promise<LoadedSummary> {
      return track(options.callId, async (signal) => {
        const model = await need().runtime.load(modelId, { signal, ...(onProgress ? { onProgress } : {}) });
        return { modelId: model.modelId, backend: model.backend, memoryBytes: model.memoryBytes() };
      });
    },

    /** Validates and runs a job; `onChunk` (a comlink `proxy()`) receives streamed pieces. */
    run(request: unknown, onChunk?: (chunk: StreamChunk) => void, options: CallOptions = {}): Promise<RunOutcome> {
      return track(options.callId, (signal) => need().runtime.run(request, { signal, ...(onChunk ? { onChunk } : {}) }));
    },

    cancel(callId: string): boolean {
      const controller = calls.get(callId);
      controller?.abort(new AbortedError(`Call ${callId}`));
      return controller !== undefined;
    },

    unload(modelId: string): Promise<void> {
      return need().runtime.unload(modelId);
    },

    /** Unloads and removes the cached files; returns the bytes freed. */
    evict(modelId: string): Promise<number> {
      return need().runtime.evict(modelId);
    },

    /**
     * Starts serving the network from this worker (the job loop lives here, not on the page,
     * so a hidden tab keeps working). `onStatus` (a comlink `proxy()`) hears every change.
     */
    async startContributing(options: ContributeOptions, onStatus?: (status: ContributorStatus) => void): Promise<ContributorStatus> {
      const { runtime } = need();
      if (contributor !== null) await contributor.stop({ drain: false });
      const identity = await loadOrCreateIdentity(new IndexedDbKeyStore());
      contributor = new Contributor({
        coordinatorUrl: contributorSocketUrl(options.coordinatorUrl),
        runtime,
        identity,
        slots: options.slots ?? 1,
        consent: options.consent ?? ALL_KINDS,
        client: CLIENT,
        ...(options.session !== undefined && { session: options.session }),
      });
      if (onStatus !== undefined) contributor.onStatus(onStatus);
      contributor.start();
      return contributor.status();
    },

    /** This device's identity key (Ed25519, base64url): what wallet proof payloads are bound to. */
    async deviceKey(): Promise<string> {
      return (await loadOrCreateIdentity(new IndexedDbKeyStore())).identityKey;
    },

    /** Stops taking jobs; with `drain` (the default) running jobs finish first. */
    async stopContributing(drain = true): Promise<ContributorStatus | null> {
      if (contributor === null) return null;
      await contributor.stop({ drain });
      return contributor.status();
    },

    contributorStatus(): ContributorStatus | null {
      return contributor?.status() ?? null;
    },

    /**
     * Destroys the current GPU device, as a driver reset would. The runtime notices the loss,
     * makes a new device and reloads models on next use. For the recovery test and the
     * "simulate GPU loss" button.
     */
    async loseDevice(): Promise<void> {
      const { gpu } = need();
      if (gpu === null) throw new WebGPUUnavailableError('no WebGPU device to lose');
      (await gpu.device()).destroy();
    },
  };
}

export type WorkerApi = ReturnType<typeof createWorkerApi>;
