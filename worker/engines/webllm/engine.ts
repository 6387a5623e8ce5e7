/**
 * The web-llm engine: MLC chat models on WebGPU, run by web-llm's `MLCEngine` directly in
 * this worker (the worker already keeps the page responsive; `WebWorkerMLCEngine` would only
 * add a second hop).
 *
 * web-llm asks for its own adapter and device (`detectGPUDevice`); it cannot be handed
 * `ctx.device()`, so while a web-llm model is loaded the worker holds two GPU devices.
 */
import type { ChatCompletionChunk, ChatCompletionRequestStreaming, MLCEngineConfig } from '@mlc-ai/web-llm';
import { AbortedError, EngineError } from '../../../protocol/errors.ts';
import type { ModelEntry, WebLlmBuild, WebLlmModel } from '../../../protocol/manifest.ts';
import type { Engine, EngineContext, LoadedModel, LoadOptions, RunPlan } from '../types.ts';
import type { CachesLike } from './integrity.ts';
import { selectBuild } from './select.ts';

/** The part of web-llm's `MLCEngine` used here; tests pass a double. */
export interface MlcEngineLike {
  reload(modelId: string): Promise<void>;
  unload(): Promise<void>;
  interruptGenerate(): unknown;
  chat: { completions: { create(request: ChatCompletionRequestStreaming): Promise<AsyncIterable<ChatCompletionChunk>> } };
}

/** Says why `url` cannot be downloaded (`HTTP 404`, `Failed to fetch`), or null when it can. */
export type UrlProbe = (url: string) => Promise<string | null>;

export interface WebLlmEngineOptions {
  /** GPU memory a model may use, bytes, read at every estimate and load. Default: no cap. */
  vramBudgetBytes?: () => number;
  /** Makes web-llm's engine. Default: `new MLCEngine(config)`, imported on first use. */
  createEngine?: (config: MLCEngineConfig) => Promise<MlcEngineLike>;
  /** web-llm's Cache API storage, verified and seeded before each load. Default: `globalThis.caches`. */
  caches?: CachesLike;
  /** Finds which URL failed after a download error. Default: a GET with a 5 s timeout. */
  probe?: UrlProbe;
  /** Base for relative URLs in builds. Default: the worker's `location.href`. */
  baseUrl?: string;
}

export class WebLlmEngine implements Engine {
  readonly kind = 'webllm' as const;
  readonly #ctx: EngineContext;
  readonly #options: WebLlmEngineOptions;

  constructor(ctx: EngineContext, options: WebLlmEngineOptions = {}) {
    this.#ctx = ctx;
    this.#options = options;
  }

  plan(model: ModelEntry): RunPlan {
    const build = this.#select(asWebLlm(model));
    return { backend: `webllm:${build.quantization}`, memoryBytes: build.vramBytes };
  }

  async load(entry: ModelEntry, options: LoadOptions = {}): Promise<LoadedModel> {
    const model = asWebLlm(entry);
    if (options.signal?.aborted === true) throw new AbortedError(`Loading model "${model.id}"`);
    const build = this.#select(model);
    // What loads and runs a model (cache seeding, web-llm's errors, the chat loop) comes with the first one.
    const { loadWebLlmModel } = await import('./loaded.ts');
    return loadWebLlmModel(this.#ctx, this.#options, model, build, options);
  }

  #select(model: WebLlmModel): WebLlmBuild {
    return selectBuild(model, this.#ctx.gpu(), this.#options.vramBudgetBytes?.() ?? Number.POSITIVE_INFINITY);
  }
}

function asWebLlm(model: ModelEntry): WebLlmModel {
  if (model.engine !== 'webllm')
    throw new EngineError(`Model "${model.id}" is an ${model.engine} model; the web-llm engine cannot load it.`);
  return model;
}
