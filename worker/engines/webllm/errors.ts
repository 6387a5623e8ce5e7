/**
 * web-llm's failures as Spinneret's typed errors.
 *
 * web-llm 0.2.86 exports almost none of its error classes, but each sets `name` to a string
 * literal (which survives minification), so they are matched by `name`; browser errors (fetch,
 * Cache API, WebAssembly) by class name and message. Names and messages were read from
 * `@mlc-ai/web-llm/lib/index.js` 0.2.86 and checked in Chromium 156.
 */
import {
  AbortedError,
  DeviceLostError,
  EngineError,
  FeatureMissingError,
  IntegrityError,
  InvalidInputError,
  ManifestError,
  ModelTooLargeError,
  ModelUnreachableError,
  SpinneretError,
  WebGPUUnavailableError,
} from '../../../protocol/errors.ts';
import { hexFromSri } from './hash.ts';

export interface ErrorContext {
  /** The model's manifest id, for messages. */
  modelId: string;
  /** What was being done, as the start of a sentence: `Loading model "x"`. */
  action: string;
  /** URL of the model library, named when it turns out corrupt. */
  modelLib?: string;
  /** web-llm's model URL (`.../resolve/main/`), named when a download fails and the file is unknown. */
  modelUrl?: string;
}

/** The reason web-llm's `unload()` aborts a running `reload()` with (a string, not an Error). */
export const WEBLLM_UNLOAD_REASON = 'Engine.unload() is called.';

/** Chat request errors web-llm raises before generating: the job is at fault, not the model. */
const REQUEST_ERRORS = new Set([
  'MessageOrderError',
  'SystemMessageOrderError',
  'UnsupportedRoleError',
  'ContentTypeError',
  'ConfigValueError',
  'MinValueError',
  'NonNegativeError',
  'InvalidNumberStringError',
  'DependencyError',
  'SeedTypeError',
  'UnsupportedFieldsError',
]);

/** Errors about context-window settings: they come from the manifest's `contextWindow` override. */
const WINDOW_ERRORS = new Set(['WindowSizeConfigurationError', 'AttentionSinkSizeError', 'WindowSizeSpecificationError']);

/** True for the browser's "could not download" errors: `fetch()` and `Cache.add()` throw TypeError. */
export function isNetworkFailure(err: unknown): boolean {
  return err instanceof TypeError && /Failed to fetch|NetworkError|Load failed|Request failed|network error/i.test(err.message);
}

/** True when the model library did not compile or link as WebAssembly. */
export function isWasmFailure(err: unknown): boolean {
  return err instanceof Error && (err.name === 'CompileError' || err.name === 'LinkError');
}

/** Maps anything web-llm (or the browser under it) throws to a typed error. */
export function mapWebLlmError(err: unknown, ctx: ErrorContext): SpinneretError {
  if (err instanceof SpinneretError) return err;
  if (err === WEBLLM_UNLOAD_REASON || (err instanceof DOMException && err.name === 'AbortError')) return new AbortedError(ctx.action);
  if (!(err instanceof Error)) return new EngineError(`${ctx.action} failed in web-llm: ${String(err)}. Retry; if it persists, report it.`);
  const { name, message } = err;
  const opts = { cause: err };
  const details = { webllmError: name };

  if (name === 'IntegrityError') {
    const e = err as Error & { url?: unknown; expected?: unknown; actual?: unknown };
    if (typeof e.url === 'string' && typeof e.expected === 'string' && typeof e.actual === 'string') {
      return new IntegrityError(e.url, hexFromSri(e.expected), hexFromSri(e.actual));
    }
  }
  if (name === 'WebGPUNotAvailableError' || name === 'WebGPUNotFoundError') {
    return new WebGPUUnavailableError('web-llm found no navigator.gpu in this worker');
  }
  if (message.startsWith('Unable to find a compatible GPU')) return new WebGPUUnavailableError('requestAdapter() returned no adapter');
  if (message.startsWith('Cannot initialize runtime because of requested')) {
    return new WebGPUUnavailableError(`the adapter's limits are below what web-llm needs: ${message.trim()}`);
  }
  if (name === 'ShaderF16SupportError') return new FeatureMissingError(ctx.modelId, ['shader-f16']);
  if (name === 'FeatureSupportError') {
    return new FeatureMissingError(ctx.modelId, [/requires feature (\S+?),/.exec(message)?.[1] ?? 'unknown']);
  }
  if (name === 'ArtifactManifestError') return mapArtifactError(message, ctx, details, opts);
  if (name === 'DeviceLostError') return new DeviceLostError('lost while loading the model, most often because GPU memory ran out');
  if (/device (was |is )?lost|GPUDevice.*lost/i.test(message)) return new DeviceLostError(message);

  if (isWasmFailure(err)) {
    const lib = ctx.modelLib ?? 'of the build';
    if (name === 'LinkError') {
      return new EngineError(
        `The model library ${lib} of "${ctx.modelId}" does not fit this web-llm runtime (${message}). ` +
          'It was compiled for another web-llm version; point the build at a library compiled for web-llm 0.2.86.',
        { ...details, url: ctx.modelLib, reason: 'model-library-mismatch' },
        opts,
      );
    }
    return new EngineError(
      `The model library ${lib} of "${ctx.modelId}" is not valid WebAssembly (${message}). ` +
        "The file is corrupt or not a web-llm model library: check the build's modelLib URL and SHA-256 in the manifest.",
      { ...details, url: ctx.modelLib, reason: 'corrupt-model-library' },
      opts,
    );
  }
  if (isNetworkFailure(err)) return new ModelUnreachableError(ctx.modelUrl ?? `the files of "${ctx.modelId}"`, message);
  if (err instanceof SyntaxError) {
    return new EngineError(
      `A JSON file of "${ctx.modelId}" is not valid JSON (${message}). The host serves something other than the model's files; check the build's model URL.`,
      details,
      opts,
    );
  }
  if (name === 'ContextWindowSizeExceededError') {
    return new InvalidInputError(
      `The conversation is too long for "${ctx.modelId}": ${firstLine(message)}. Shorten the messages and send the job again.`,
      details,
    );
  }
  if (REQUEST_ERRORS.has(name) || (name === 'RangeError' && message.startsWith('Make sure '))) {
    return new InvalidInputError(`web-llm refused the chat request: ${message} Fix the request and send it again.`, details);
  }
  if (WINDOW_ERRORS.has(name)) {
    return new ManifestError(
      `web-llm rejects the context settings of "${ctx.modelId}": ${firstLine(message)}. Fix the build's contextWindow in the manifest.`,
      details,
    );
  }
  if (name === 'UnsupportedTokenizerFilesError') {
    return new EngineError(
      `The mlc-chat-config.json of "${ctx.modelId}" names tokenizer files web-llm cannot read (${message}). The model package is incomplete.`,
      details,
      opts,
    );
  }
  if (name === 'ModelNotLoadedError') {
    return new EngineError(
      `Model "${ctx.modelId}" is not loaded in web-llm (it was unloaded). Load it again, then retry the job.`,
      details,
      opts,
    );
  }
  return new EngineError(
    `${ctx.action} failed in web-llm: ${message} Retry; if it keeps failing, report it with this message.`,
    details,
    opts,
  );
}

function mapArtifactError(message: string, ctx: ErrorContext, details: Record<string, unknown>, opts: ErrorOptions): SpinneretError {
  const feature = /unsupported WebGPU feature "([^"]+)"/.exec(message)?.[1];
  if (feature !== undefined) return new FeatureMissingError(ctx.modelId, [feature]);
  const buffer = /requires maxStorageBufferBindingSize (\d+), but this device exposes (\d+)/.exec(message);
  if (buffer?.[1] !== undefined && buffer[2] !== undefined) {
    return new ModelTooLargeError(
      ctx.modelId,
      Number(buffer[1]),
      Number(buffer[2]),
      'storage buffer binding (maxStorageBufferBindingSize)',
    );
  }
  return new EngineError(
    `The model package of "${ctx.modelId}" is inconsistent (${message}). Its files do not belong together; fix the build in the manifest.`,
    details,
    opts,
  );
}

function firstLine(text: string): string {
  return (text.split('\n')[0] ?? text).replace(/[.\s]+$/, '');
}
