/**
 * The one engine interface. The real engines (onnxruntime-web, web-llm) implement it, and
 * so do test doubles, so the job loop runs in Node without a browser.
 */
import type { JobRequest, JobResult, StreamChunk } from '../../protocol/jobs.ts';
import type { EngineKind, ModelEntry } from '../../protocol/manifest.ts';
import type { GpuInfo } from '../gpu/types.ts';
import type { ModelStore } from '../models/store.ts';

/** Progress of a model load, for progress bars. */
export interface LoadProgress {
  modelId: string;
  phase: 'download' | 'verify' | 'compile' | 'ready';
  /** Bytes done and total of the current phase (0 / 0 when unknown). */
  loadedBytes: number;
  totalBytes: number;
  /** Optional words from the engine. */
  text?: string;
}

export interface LoadOptions {
  signal?: AbortSignal;
  onProgress?: (progress: LoadProgress) => void;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Called for each streamed piece of a `generate` or `chat` job. */
  onChunk?: (chunk: StreamChunk) => void;
}

/** A model held by an engine, ready to run jobs. */
export interface LoadedModel {
  readonly modelId: string;
  /** Where it runs, e.g. `webgpu`, `wasm`, `webllm:q4f32_1`. */
  readonly backend: string;
  /** Estimated memory held while loaded, bytes. */
  memoryBytes(): number;
  run(request: JobRequest, options?: RunOptions): Promise<JobResult>;
  unload(): Promise<void>;
}

/** What an engine needs from the worker around it. */
export interface EngineContext {
  store: ModelStore;
  /** The current GPU, or null when WebGPU is unavailable. */
  gpu(): GpuInfo | null;
  /** The current device (recreated after loss), or null without WebGPU. */
  device(): Promise<GPUDevice | null>;
}

/** How a model would run on this device, decided before anything is downloaded. */
export interface RunPlan {
  /** Where it would run, e.g. `webgpu`, `wasm`, `webllm:q4f32_1`. */
  backend: string;
  /** Estimated memory while loaded, bytes (GPU memory, or CPU memory for `wasm`). */
  memoryBytes: number;
  /** Why this is not the model's first choice (for example no WebGPU), when it is not. */
  fallbackReason?: string;
}

export interface Engine {
  readonly kind: EngineKind;
  /** How the model would run here; throws the typed reason when it cannot. */
  plan(model: ModelEntry): RunPlan;
  load(model: ModelEntry, options?: LoadOptions): Promise<LoadedModel>;
}
