/**
 * The web-llm engine: MLC chat models on WebGPU, run by web-llm's `MLCEngine` directly in
 * this worker (the worker already keeps the page responsive; `WebWorkerMLCEngine` would only
 * add a second hop).
 *
 * web-llm asks for its own adapter and device (`detectGPUDevice`); it cannot be handed
 * `ctx.device()`, so while a web-llm model is loaded the worker holds two GPU devices.
 */
import type { ChatCompletionChunk, ChatCompletionRequestStreaming, MLCEngineConfig } from '@mlc-ai/web-llm';
import { AbortedError, EngineError, InvalidInputError, ModelUnreachableError, type SpinneretError } from '../../../protocol/errors.ts';
import type { ChatRequest, JobRequest, JobResult } from '../../../protocol/jobs.ts';
import type { ModelEntry, WebLlmBuild, WebLlmModel } from '../../../protocol/manifest.ts';
import type { Engine, EngineContext, LoadedModel, LoadOptions, RunOptions, RunPlan } from '../types.ts';
import { isNetworkFailure, isWasmFailure, mapWebLlmError, type ErrorContext } from './errors.ts';
import { planSeeding, seedWebLlmCache, type CachesLike } from './integrity.ts';
import { progressFromReport } from './progress.ts';
import { selectBuild, toAppConfig, webLlmUrls } from './select.ts';

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
    const { signal, onProgress } = options;
    const action = `Loading model "${model.id}"`;
    if (aborted(signal)) throw new AbortedError(action);
    const build = this.#select(model);
    const baseUrl = this.#options.baseUrl ?? globalThis.location?.href;
    const urls = webLlmUrls(build, baseUrl);
    const errCtx: ErrorContext = { modelId: model.id, action, modelLib: urls.modelLib, modelUrl: urls.modelUrl };
    let engine: MlcEngineLike | undefined;
    try {
      const caches = this.#options.caches ?? globalThis.caches;
      if (build.files.length > 0) {
        await seedWebLlmCache(build, planSeeding(build, baseUrl), {
          caches,
          store: this.#ctx.store,
          ...(signal !== undefined && { signal }),
          onProgress: (p) =>
            onProgress?.({ modelId: model.id, phase: p.phase, loadedBytes: p.loadedBytes, totalBytes: p.totalBytes, text: p.url }),
        });
      }
      const appConfig = toAppConfig(build, {
        ...(baseUrl !== undefined && { baseUrl }),
        modelFeatures: model.requiredFeatures,
        ...(model.maxBufferBytes !== undefined && { maxBufferBytes: model.maxBufferBytes }),
      });
      const create = this.#options.createEngine ?? createMlcEngine;
      engine = await create({
        appConfig,
        initProgressCallback: (report) => onProgress?.(progressFromReport(model.id, report)),
        logLevel: 'WARN',
      });
      const loading = engine.reload(build.modelId);
      await untilSettledOrAborted(loading, signal, freeAfter(engine, loading));
      if (aborted(signal)) throw new AbortedError(action);
      return new WebLlmLoadedModel(model.id, build, engine);
    } catch (err) {
      if (aborted(signal)) throw new AbortedError(action);
      if (engine !== undefined) void engine.unload().catch(() => undefined);
      throw await this.#explain(err, errCtx, [urls.config, urls.modelLib, urls.tensorCache]);
    }
  }

  #select(model: WebLlmModel): WebLlmBuild {
    return selectBuild(model, this.#ctx.gpu(), this.#options.vramBudgetBytes?.() ?? Number.POSITIVE_INFINITY);
  }

  /**
   * A download error from `Cache.add` does not say which file failed, and a model library
   * fetched past the cache is compiled even when the server answered 404. So on either, the
   * files are probed in web-llm's order and the first that cannot be downloaded is named.
   */
  async #explain(err: unknown, ctx: ErrorContext, inOrder: string[]): Promise<SpinneretError> {
    const mapped = mapWebLlmError(err, ctx);
    const candidates = isNetworkFailure(err) ? inOrder : isWasmFailure(err) && ctx.modelLib !== undefined ? [ctx.modelLib] : [];
    const probe = this.#options.probe ?? probeUrl;
    for (const url of candidates) {
      const reason = await probe(url);
      if (reason !== null) return new ModelUnreachableError(url, reason);
    }
    return mapped;
  }
}

class WebLlmLoadedModel implements LoadedModel {
  readonly backend: string;
  #engine: MlcEngineLike | null;

  constructor(
    readonly modelId: string,
    private readonly build: WebLlmBuild,
    engine: MlcEngineLike,
  ) {
    this.backend = `webllm:${build.quantization}`;
    this.#engine = engine;
  }

  memoryBytes(): number {
    return this.#engine === null ? 0 : this.build.vramBytes;
  }

  async run(request: JobRequest, options: RunOptions = {}): Promise<JobResult> {
    if (request.kind !== 'chat') {
      throw new InvalidInputError(
        `Model "${this.modelId}" runs on web-llm, which takes chat jobs only, not "${request.kind}". Send a chat job.`,
      );
    }
    const engine = this.#engine;
    if (engine === null) throw new EngineError(`Model "${this.modelId}" was unloaded. Load it again, then retry the job.`);
    const { signal, onChunk } = options;
    const action = `Chat job on "${this.modelId}"`;
    if (aborted(signal)) throw new AbortedError(action);
    // web-llm checks the flag between decode steps; a long prefill is not interrupted.
    const interrupt = (): void => void engine.interruptGenerate();
    signal?.addEventListener('abort', interrupt, { once: true });
    try {
      const stream = await engine.chat.completions.create(toCompletionRequest(request, this.build.modelId));
      let text = '';
      let index = 0;
      let finish: string | null = null;
      let usage: ChatCompletionChunk['usage'];
      for await (const chunk of stream) {
        const choice = chunk.choices[0];
        const delta = choice?.delta.content ?? '';
        if (delta !== '') {
          text += delta;
          onChunk?.({ index: index++, tokens: [], text: delta });
        }
        if (choice?.finish_reason != null) finish = choice.finish_reason;
        if (chunk.usage !== undefined) usage = chunk.usage;
      }
      if (aborted(signal) || finish === 'abort') throw new AbortedError(action);
      return {
        kind: 'chat',
        text,
        finishReason: finish === 'length' ? 'length' : 'stop',
        usage: { promptTokens: usage?.prompt_tokens ?? 0, completionTokens: usage?.completion_tokens ?? 0 },
      };
    } catch (err) {
      if (aborted(signal)) throw new AbortedError(action);
      throw mapWebLlmError(err, { modelId: this.modelId, action });
    } finally {
      signal?.removeEventListener('abort', interrupt);
    }
  }

  async unload(): Promise<void> {
    const engine = this.#engine;
    if (engine === null) return;
    this.#engine = null;
    try {
      await engine.unload();
    } catch (err) {
      throw mapWebLlmError(err, { modelId: this.modelId, action: `Unloading model "${this.modelId}"` });
    }
  }
}

/** web-llm's OpenAI-style request for a chat job; temperature 0 is greedy in web-llm too. */
export function toCompletionRequest(request: ChatRequest, webllmModelId: string): ChatCompletionRequestStreaming {
  return {
    model: webllmModelId,
    messages: request.messages.map((m) => ({ role: m.role, content: m.content })),
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: request.maxTokens,
    temperature: request.sampling.temperature,
    top_p: request.sampling.topP,
    seed: request.sampling.seed,
  };
}

/** Reads the signal afresh (TypeScript would keep an earlier check's narrowing). */
function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function asWebLlm(model: ModelEntry): WebLlmModel {
  if (model.engine !== 'webllm')
    throw new EngineError(`Model "${model.id}" is an ${model.engine} model; the web-llm engine cannot load it.`);
  return model;
}

async function createMlcEngine(config: MLCEngineConfig): Promise<MlcEngineLike> {
  // Imported on first use: web-llm is ~7 MB of JS that only web-llm models need.
  const { MLCEngine } = await import('@mlc-ai/web-llm');
  return new MLCEngine(config);
}

/**
 * Waits for `work`, but rejects at once when `signal` aborts (after calling `onAbort`):
 * web-llm's `reload()` only notices an abort between downloads.
 */
function untilSettledOrAborted(work: Promise<void>, signal: AbortSignal | undefined, onAbort: () => void): Promise<void> {
  if (signal === undefined) return work;
  return new Promise((resolve, reject) => {
    const abort = (): void => {
      onAbort();
      reject(new DOMException('Aborted', 'AbortError'));
    };
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

/** Stops a `reload()` and frees whatever it had loaded, also if it finishes after the abort. */
function freeAfter(engine: MlcEngineLike, loading: Promise<void>): () => void {
  return () => {
    const free = (): Promise<void> => engine.unload().catch(() => undefined);
    void free();
    void loading.then(free, free);
  };
}

async function probeUrl(url: string): Promise<string | null> {
  try {
    const res = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(5000) });
    void res.body?.cancel().catch(() => undefined);
    return res.ok ? null : `HTTP ${res.status}`;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
