/**
 * Loading and running a web-llm model: web-llm's cache seeded from SHA-256-checked files, its
 * engine made and reloaded, its errors mapped to typed ones, the chat loop. The engine imports
 * this module on the first web-llm model it loads, so none of it is in the worker a page starts
 * on mount (scripts/budget.ts).
 */
import type { ChatCompletionChunk, ChatCompletionRequestStreaming, MLCEngineConfig } from '@mlc-ai/web-llm';
import { AbortedError, EngineError, InvalidInputError, ModelUnreachableError, type SpinneretError } from '../../../protocol/errors.ts';
import type { ChatRequest, JobRequest, JobResult } from '../../../protocol/jobs.ts';
import type { WebLlmBuild, WebLlmModel } from '../../../protocol/manifest.ts';
import type { EngineContext, LoadedModel, LoadOptions, RunOptions } from '../types.ts';
import type { MlcEngineLike, WebLlmEngineOptions } from './engine.ts';
import { isNetworkFailure, isWasmFailure, mapWebLlmError, type ErrorContext } from './errors.ts';
import { planSeeding, seedWebLlmCache } from './integrity.ts';
import { progressFromReport } from './progress.ts';
import { toAppConfig, webLlmUrls } from './select.ts';

/** Loads `build` of `model` with web-llm (the engine has chosen the build and checked it fits). */
export async function loadWebLlmModel(
  ctx: EngineContext,
  engineOptions: WebLlmEngineOptions,
  model: WebLlmModel,
  build: WebLlmBuild,
  options: LoadOptions,
): Promise<LoadedModel> {
  const { signal, onProgress } = options;
  const action = `Loading model "${model.id}"`;
  if (aborted(signal)) throw new AbortedError(action);
  const baseUrl = engineOptions.baseUrl ?? globalThis.location?.href;
  const urls = webLlmUrls(build, baseUrl);
  const errCtx: ErrorContext = { modelId: model.id, action, modelLib: urls.modelLib, modelUrl: urls.modelUrl };
  let engine: MlcEngineLike | undefined;
  try {
    const caches = engineOptions.caches ?? globalThis.caches;
    if (build.files.length > 0) {
      await seedWebLlmCache(build, planSeeding(build, baseUrl), {
        caches,
        store: ctx.store,
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
    const create = engineOptions.createEngine ?? createMlcEngine;
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
    throw await explain(engineOptions, err, errCtx, [urls.config, urls.modelLib, urls.tensorCache]);
  }
}

/**
 * A download error from `Cache.add` does not say which file failed, and a model library
 * fetched past the cache is compiled even when the server answered 404. So on either, the
 * files are probed in web-llm's order and the first that cannot be downloaded is named.
 */
async function explain(engineOptions: WebLlmEngineOptions, err: unknown, ctx: ErrorContext, inOrder: string[]): Promise<SpinneretError> {
  const mapped = mapWebLlmError(err, ctx);
  const candidates = isNetworkFailure(err) ? inOrder : isWasmFailure(err) && ctx.modelLib !== undefined ? [ctx.modelLib] : [];
  const probe = engineOptions.probe ?? probeUrl;
  for (const url of candidates) {
    const reason = await probe(url);
    if (reason !== null) return new ModelUnreachableError(url, reason);
  }
  return mapped;
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
