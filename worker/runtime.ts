/**
 * The contributor runtime: the manifest, the engines, the models they hold, and the GPU
 * device they share. It survives device loss: loaded WebGPU models are reloaded on the new
 * device and a job that the loss interrupted runs again, once.
 */
import { DeviceLostError, EngineError, SpinneretError, serializeError, type SerializedError } from '../protocol/errors.ts';
import { fetchManifest, findModel, type EngineKind, type Manifest, type ModelEntry, type TensorSpec } from '../protocol/manifest.ts';
import { parseJobRequest, type JobResult, type StreamChunk } from '../protocol/jobs.ts';
import type { GpuDeviceManager } from './gpu/device.ts';
import type { GpuInfo } from './gpu/types.ts';
import type { ModelStore } from './models/store.ts';
import type { Engine, EngineContext, LoadProgress, LoadedModel, RunPlan } from './engines/types.ts';
import type { RuntimeDownload } from './models/runtime-download.ts';

/** A model as the page lists it. */
export interface ModelSummary {
  id: string;
  name: string;
  engine: EngineKind;
  kinds: string[];
  /** Download size, bytes. */
  sizeBytes: number;
  /**
   * The engine's runtime still to download before this model's first job (onnxruntime-web's
   * WASM, compressed), bytes; 0 once it is in the browser, for engines without one, or when unknown.
   */
  runtimeBytes: number;
  vramBytes: number;
  /** Every file has a verified cached copy. */
  cached: boolean;
  /** Backend it is loaded on, or null. */
  loadedOn: string | null;
  /** How it would run here, or null when it cannot. */
  plan: RunPlan | null;
  /** Why it cannot run here, or null when it can. */
  blocked: SerializedError | null;
  /** Declared inputs of an `infer` model. */
  inputs?: TensorSpec[];
}

export interface RunOutcome {
  result: JobResult;
  backend: string;
  /** Wall time of the run (not the load), milliseconds. */
  ms: number;
  /** Device generation it ran on (bumps after each loss). */
  deviceGeneration: number;
}

export interface RuntimeStatus {
  gpu: GpuInfo | null;
  gpuError: SerializedError | null;
  deviceGeneration: number;
  deviceLosses: number;
  /** Jobs run again on a new device after a loss cut them short. */
  jobsRerun: number;
  lastDeviceLoss: { at: number; message: string } | null;
  /**
   * The GPU device was lost too often (more than 3 times in 60 s by default) and is not made again
   * until the tab reloads; null while the GPU works or recovers. From then on `gpu` is null, no job
   * runs on the GPU (each fails DEVICE_LOST), and `wasmModels` counts the models that still run here, on WASM.
   */
  gpuRetired: GpuRetired | null;
}

/** A GPU device the runtime gave up on: when, why, and how many models still run on WASM. */
export interface GpuRetired {
  /** ms since the epoch. */
  at: number;
  message: string;
  wasmModels: number;
}

export interface LoadedSummary {
  modelId: string;
  backend: string;
  memoryBytes: number;
}

export interface RuntimeOptions {
  manifestUrl: string;
  store: ModelStore;
  gpu: GpuDeviceManager | null;
  /** Builds the engines around the context; the worker passes the onnx and webllm engines. */
  engines: (ctx: EngineContext) => Engine[];
  fetch?: typeof fetch;
  /** What the onnx engine's runtime costs to download (measured once, at init); none by default. */
  runtimeDownload?: () => Promise<RuntimeDownload | null>;
}

export class Runtime {
  readonly #options: RuntimeOptions;
  readonly #engines = new Map<EngineKind, Engine>();
  readonly #loaded = new Map<string, Promise<LoadedModel>>();
  /** Backend of each settled load, known synchronously (the loss handler needs it). */
  readonly #backends = new WeakMap<Promise<LoadedModel>, string>();
  #manifest: Manifest | null = null;
  #gpuInfo: GpuInfo | null = null;
  #gpuError: SerializedError | null = null;
  #losses = 0;
  #lastLoss: RuntimeStatus['lastDeviceLoss'] = null;
  /** Jobs run again after a device loss cut them short. */
  #rerun = 0;
  #retired: GpuRetired | null = null;
  #lossListeners = new Set<(status: RuntimeStatus) => void>();
  readonly #loading = new Set<string>();
  readonly #loadingListeners = new Set<() => void>();
  #runtimeDownload: Promise<RuntimeDownload | null> = Promise.resolve(null);
  /** An onnx model has loaded in this worker: its runtime is downloaded. */
  #onnxReady = false;

  constructor(options: RuntimeOptions) {
    this.#options = options;
    const ctx: EngineContext = {
      store: options.store,
      gpu: () => this.#gpuInfo,
      device: async () => (options.gpu === null || this.#gpuInfo === null ? null : options.gpu.device()),
    };
    for (const engine of options.engines(ctx)) this.#engines.set(engine.kind, engine);
    options.gpu?.onLost((loss) => {
      this.#losses++;
      this.#lastLoss = { at: Date.now(), message: loss.message || loss.reason };
      // Models on the lost device are gone, and so are loads still in progress on it: forget
      // both now (not in a later microtask) so that the very next job reloads them.
      for (const [id, pending] of this.#loaded) {
        if (this.#backends.get(pending) === 'wasm') continue;
        this.#loaded.delete(id);
        void pending.then((m) => m.unload()).catch(() => undefined);
      }
      if (!loss.recovering) this.#retire(loss.message || loss.reason);
      for (const listener of this.#lossListeners) listener(this.status());
    });
  }

  /**
   * The device manager will not make another device: the GPU is gone from this runtime. Models
   * are planned without it (those that list WASM run there), and GPU jobs fail DEVICE_LOST.
   */
  #retire(lastLoss: string): void {
    this.#gpuInfo = null;
    const message =
      `The GPU device was lost ${this.#losses} time(s), too often to make it again (last: ${lastLoss}); ` +
      'this tab no longer runs jobs on the GPU. Reload the tab; if it happens again, restart the browser or update the GPU driver.';
    this.#gpuError = serializeError(new SpinneretError('DEVICE_LOST', message));
    const wasmModels = (this.#manifest?.models ?? []).filter((m) => this.#planBackend(m) === 'wasm').length;
    this.#retired = { at: Date.now(), message, wasmModels };
  }

  /** What a job that needs the retired GPU fails with: DEVICE_LOST, which the coordinator re-queues elsewhere. */
  #retiredError(): SpinneretError {
    return new SpinneretError('DEVICE_LOST', this.#retired?.message ?? 'The GPU device is gone.');
  }

  /** The backend a model would run on now, or null when it cannot run here. */
  #planBackend(model: ModelEntry): string | null {
    try {
      return this.#engine(model).plan(model).backend;
    } catch {
      return null;
    }
  }

  /** Fetches and validates the manifest, and probes the GPU (a missing GPU is not an error). */
  async init(): Promise<void> {
    this.#manifest = await fetchManifest(this.#options.manifestUrl, this.#options.fetch ?? fetch);
    // Measured in the background: the model list waits for it, the probe does not.
    this.#runtimeDownload = (this.#options.runtimeDownload?.() ?? Promise.resolve(null)).catch(() => null);
    await this.#probe();
  }

  async #probe(): Promise<void> {
    const gpu = this.#options.gpu;
    if (gpu === null) {
      this.#gpuError = serializeError(new SpinneretError('WEBGPU_UNAVAILABLE', 'WebGPU is not available in this browser.'));
      return;
    }
    try {
      await gpu.device();
      this.#gpuInfo = gpu.info();
      this.#gpuError = null;
    } catch (err) {
      this.#gpuInfo = null;
      this.#gpuError = serializeError(err);
    }
  }

  manifest(): Manifest {
    if (this.#manifest === null) throw new EngineError('The runtime is not initialised yet. Call init() first.');
    return this.#manifest;
  }

  /** Models being loaded now (downloaded, checked, compiled), for the contributor's status. */
  loadingModels(): string[] {
    return [...this.#loading];
  }

  #loadingChanged(modelId: string, loading: boolean): void {
    if (loading) this.#loading.add(modelId);
    else this.#loading.delete(modelId);
    for (const listener of this.#loadingListeners) listener();
  }

  /** Calls `listener` when a load starts or ends; returns the unsubscribe function. */
  onLoadingChange(listener: () => void): () => void {
    this.#loadingListeners.add(listener);
    return () => this.#loadingListeners.delete(listener);
  }

  onDeviceLost(listener: (status: RuntimeStatus) => void): () => void {
    this.#lossListeners.add(listener);
    return () => this.#lossListeners.delete(listener);
  }

  async models(): Promise<ModelSummary[]> {
    const out: ModelSummary[] = [];
    const runtime = this.#onnxReady ? null : await this.#runtimeDownload;
    for (const model of this.manifest().models) {
      const cached = (await Promise.all(model.files.map((f) => this.#options.store.has(f)))).every(Boolean);
      const loaded = await this.#loaded.get(model.id)?.catch(() => undefined);
      let blocked: SerializedError | null = null;
      let plan: RunPlan | null = null;
      try {
        plan = this.#engine(model).plan(model);
      } catch (err) {
        blocked = serializeError(err);
      }
      out.push({
        id: model.id,
        name: model.name,
        engine: model.engine,
        kinds: [...model.kinds],
        sizeBytes: model.files.reduce((sum, f) => sum + f.size, 0),
        runtimeBytes: model.engine === 'onnx' && runtime !== null ? runtime.bytes : 0,
        vramBytes: model.vramBytes,
        cached: cached && model.files.length > 0,
        loadedOn: loaded?.backend ?? null,
        plan,
        blocked,
        ...(model.engine === 'onnx' && model.onnx.inputs ? { inputs: model.onnx.inputs } : {}),
      });
    }
    return out;
  }

  /** Loads a model (or returns the one already loaded). */
  load(modelId: string, options: { signal?: AbortSignal; onProgress?: (p: LoadProgress) => void } = {}): Promise<LoadedModel> {
    const model = findModel(this.manifest(), modelId);
    let pending = this.#loaded.get(modelId);
    if (pending === undefined) {
      const loading = this.#engine(model).load(model, options);
      pending = loading;
      this.#loaded.set(modelId, loading);
      this.#loadingChanged(modelId, true);
      void loading.then(
        () => this.#loadingChanged(modelId, false),
        () => this.#loadingChanged(modelId, false),
      );
      loading.then(
        (m) => {
          this.#backends.set(loading, m.backend);
          if (model.engine === 'onnx') this.#onnxReady = true;
        },
        () => undefined,
      );
      // A failed load is forgotten so that the next call tries again.
      pending.catch(() => this.#loaded.get(modelId) === pending && this.#loaded.delete(modelId));
    }
    return pending;
  }

  /**
   * Validates and runs one job, loading its model first if needed. A job cut short by a device
   * loss (while its model loaded or while it ran) runs again, once, on the new device; its
   * chunks reach `onChunk` once: the re-run's chunks that were already sent are checked and
   * dropped, and a re-run that differs from them fails with DeviceLostError.
   */
  async run(request: unknown, options: { signal?: AbortSignal; onChunk?: (c: StreamChunk) => void } = {}): Promise<RunOutcome> {
    const job = parseJobRequest(request);
    const entry = findModel(this.manifest(), job.model);
    // The GPU is retired: a job that needs it is handed back at once (DEVICE_LOST re-queues it elsewhere).
    if (this.#retired !== null && this.#planBackend(entry) !== 'wasm') throw this.#retiredError();
    let lossesBefore = this.#losses;
    let backend: string | null = null;
    // A WASM run does not use the GPU: a loss during it leaves its chunks and result good.
    const stream = new ChunksOnce(options.onChunk, () => backend !== 'wasm' && this.#losses > lossesBefore);
    const runOptions = options.onChunk === undefined ? options : { ...options, onChunk: (c: StreamChunk) => stream.push(c) };
    for (let attempt = 0; ; attempt++) {
      lossesBefore = this.#losses;
      stream.restart();
      backend = null;
      try {
        const model = await this.load(job.model, options.signal ? { signal: options.signal } : {});
        backend = model.backend;
        const started = performance.now();
        const result = await model.run(job, runOptions);
        // Results computed across a loss are not trusted, even when the engine returned some.
        if (model.backend !== 'wasm' && this.#losses > lossesBefore) throw new DeviceLostError('lost while the job ran');
        stream.end();
        return { result, backend: model.backend, ms: performance.now() - started, deviceGeneration: this.#options.gpu?.generation ?? 0 };
      } catch (err) {
        // A job cut short by a device loss runs again, once, on the new device; other errors are the job's own.
        if (attempt === 0 && backend !== 'wasm' && !stream.diverged && (await this.#lossSeen(lossesBefore))) {
          if (this.#retired !== null) throw this.#retiredError();
          this.#rerun++;
          await this.#options.gpu?.device();
          continue;
        }
        throw err;
      }
    }
  }

  /** True when a device loss was reported since `lossesBefore`, giving `device.lost` a moment to settle. */
  async #lossSeen(lossesBefore: number): Promise<boolean> {
    if (this.#losses > lossesBefore) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
    return this.#losses > lossesBefore;
  }

  async unload(modelId: string): Promise<void> {
    const pending = this.#loaded.get(modelId);
    this.#loaded.delete(modelId);
    await (await pending?.catch(() => undefined))?.unload();
  }

  /** Unloads the model and removes its cached files; returns the bytes freed. */
  async evict(modelId: string): Promise<number> {
    const model = findModel(this.manifest(), modelId);
    await this.unload(modelId);
    return this.#options.store.evict(model.files);
  }

  status(): RuntimeStatus {
    return {
      gpu: this.#gpuInfo,
      gpuError: this.#gpuError,
      deviceGeneration: this.#options.gpu?.generation ?? 0,
      deviceLosses: this.#losses,
      jobsRerun: this.#rerun,
      lastDeviceLoss: this.#lastLoss,
      gpuRetired: this.#retired === null ? null : { ...this.#retired },
    };
  }

  async loadedModels(): Promise<LoadedSummary[]> {
    const out: LoadedSummary[] = [];
    for (const pending of this.#loaded.values()) {
      const m = await pending.catch(() => null);
      if (m !== null) out.push({ modelId: m.modelId, backend: m.backend, memoryBytes: m.memoryBytes() });
    }
    return out;
  }

  #engine(model: ModelEntry): Engine {
    const engine = this.#engines.get(model.engine);
    if (engine === undefined) throw new EngineError(`No ${model.engine} engine in this worker.`);
    return engine;
  }
}

/**
 * A job's chunks, passed on once across its re-run after a device loss. Chunks that arrive once
 * the loss is seen are held back (nothing computed across a loss is trusted); the re-run's
 * chunks up to those already sent must equal them and are dropped, as they were sent.
 */
class ChunksOnce {
  readonly #onChunk: ((chunk: StreamChunk) => void) | undefined;
  readonly #lost: () => boolean;
  readonly #sent: StreamChunk[] = [];
  /** Chunks of the current run so far. */
  #seen = 0;
  /** The re-run gave other chunks than those already sent, which cannot be taken back. */
  diverged = false;

  constructor(onChunk: ((chunk: StreamChunk) => void) | undefined, lost: () => boolean) {
    this.#onChunk = onChunk;
    this.#lost = lost;
  }

  restart(): void {
    this.#seen = 0;
  }

  push(chunk: StreamChunk): void {
    if (this.diverged || this.#lost()) return;
    const i = this.#seen++;
    const sent = this.#sent[i];
    if (sent !== undefined) {
      this.diverged ||= sent.text !== chunk.text || sent.tokens.join() !== chunk.tokens.join();
      return;
    }
    this.#sent.push(chunk);
    this.#onChunk?.(chunk);
  }

  /** Throws when the run that ended does not continue what was already sent. */
  end(): void {
    this.diverged ||= this.#seen < this.#sent.length;
    if (this.diverged) {
      throw new DeviceLostError(
        'the job run again on the new device gave other output than was already streamed, so it cannot be continued',
      );
    }
  }
}
