/**
 * The mapper fed web-llm's real errors: real instances where web-llm or the runtime can throw
 * them in Node, else errors with the `name` and message web-llm 0.2.86's source gives them.
 */
import { createHash } from 'node:crypto';
import { MLCEngine, ModelType, postInitAndCheckFieldsChatCompletion, verifyIntegrity } from '@mlc-ai/web-llm';
import type { ChatCompletionRequest } from '@mlc-ai/web-llm';
import { describe, expect, it } from 'vitest';
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
  WebGPUUnavailableError,
  type SpinneretError,
} from '../../../protocol/errors.ts';
import { mlcFixtureFiles } from '../../../modelhost/mlc.ts';
import { isNetworkFailure, mapWebLlmError, WEBLLM_UNLOAD_REASON, type ErrorContext } from './errors.ts';

const ctx: ErrorContext = {
  modelId: 'tiny',
  action: 'Loading model "tiny"',
  modelLib: 'http://127.0.0.1:4100/lib.wasm',
  modelUrl: 'http://127.0.0.1:4100/org/tiny/resolve/main/',
};

/** An error as web-llm builds it: `class X extends Error { constructor() { super(msg); this.name = "X"; } }`. */
function webllm(name: string, message: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { name }, extra);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('mapWebLlmError, load failures', () => {
  it("maps web-llm's IntegrityError (SRI) to ours with hex digests", async () => {
    const bytes = new TextEncoder().encode('tampered');
    const expectedHex = 'ab'.repeat(32);
    const sri = `sha256-${Buffer.from(expectedHex, 'hex').toString('base64')}`;
    const real = await rejection(verifyIntegrity(bytes.slice().buffer, sri, 'http://h/config.json'));
    const mapped = mapWebLlmError(real, ctx);
    expect(mapped).toBeInstanceOf(IntegrityError);
    expect(mapped.details).toEqual({
      url: 'http://h/config.json',
      expected: expectedHex,
      found: createHash('sha256').update(bytes).digest('hex'),
    });
  });

  it('maps a corrupt model library (real CompileError) to EngineError naming the library', async () => {
    const lib = mlcFixtureFiles().get('spinneret-test/tiny-mlc-q4f32_1-MLC/resolve/main/tiny-mlc-q4f32_1-webgpu.wasm');
    const real = await rejection(WebAssembly.instantiate(lib ?? new Uint8Array(), {}));
    expect((real as Error).name).toBe('CompileError');
    const mapped = mapWebLlmError(real, ctx);
    expect(mapped).toBeInstanceOf(EngineError);
    expect(mapped.message).toMatch(/model library http:\/\/127\.0\.0\.1:4100\/lib\.wasm of "tiny" is not valid WebAssembly/);
    expect(mapped.message).toMatch(/modelLib URL and SHA-256/);
    expect(mapped.details).toMatchObject({ reason: 'corrupt-model-library' });
    expect(mapped.cause).toBe(real);
  });

  it('maps a LinkError to a runtime-version mismatch', async () => {
    // A module importing a function that is not given: the shape of a library built for another runtime.
    const importsF = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 2, 7, 1, 1, 109, 1, 102, 0, 0]);
    const real = await rejection(WebAssembly.instantiate(importsF, { m: {} }));
    expect(mapWebLlmError(real, ctx).details).toMatchObject({ reason: 'model-library-mismatch' });
  });

  it('maps fetch / Cache.add failures (messages measured in Chromium) to ModelUnreachableError', () => {
    for (const message of ['Failed to fetch', "Failed to execute 'add' on 'Cache': Request failed"]) {
      const err = new TypeError(message);
      expect(isNetworkFailure(err)).toBe(true);
      const mapped = mapWebLlmError(err, ctx);
      expect(mapped).toBeInstanceOf(ModelUnreachableError);
      expect(mapped.details).toEqual({ url: ctx.modelUrl, reason: message });
    }
    expect(isNetworkFailure(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBe(false);
  });

  it('maps GPU availability and feature errors', () => {
    expect(mapWebLlmError(webllm('WebGPUNotAvailableError', 'WebGPU is not supported in your current environment…'), ctx)).toBeInstanceOf(
      WebGPUUnavailableError,
    );
    expect(mapWebLlmError(new Error('Unable to find a compatible GPU. This issue might be…'), ctx)).toBeInstanceOf(WebGPUUnavailableError);
    const limits = new Error(
      'Cannot initialize runtime because of requested maxStorageBufferBindingSize exceeds limit. requested=128MB, limit=64MB. ',
    );
    expect(mapWebLlmError(limits, ctx).message).toMatch(/maxStorageBufferBindingSize/);
    const f16 = webllm(
      'ShaderF16SupportError',
      'This model requires feature This model requires WebGPU extension shader-f16, which is not enabled…',
    );
    expect(mapWebLlmError(f16, ctx)).toBeInstanceOf(FeatureMissingError);
    expect(mapWebLlmError(f16, ctx).details).toMatchObject({ missing: ['shader-f16'] });
    const other = webllm('FeatureSupportError', 'This model requires feature subgroups, which is not yet supported by this browser.');
    expect(mapWebLlmError(other, ctx).details).toMatchObject({ missing: ['subgroups'] });
  });

  it('maps artifact checks on features and binding size', () => {
    const feature = webllm('ArtifactManifestError', 'Compiled artifact requires unsupported WebGPU feature "shader-f16"');
    expect(mapWebLlmError(feature, ctx)).toBeInstanceOf(FeatureMissingError);
    const buffer = webllm(
      'ArtifactManifestError',
      'Compiled artifact requires maxStorageBufferBindingSize 201326592, but this device exposes 134217728',
    );
    const mapped = mapWebLlmError(buffer, ctx);
    expect(mapped).toBeInstanceOf(ModelTooLargeError);
    expect(mapped.details).toMatchObject({ neededBytes: 201326592, availableBytes: 134217728 });
  });

  it('maps device loss during reload', () => {
    const lost = webllm(
      'DeviceLostError',
      'The WebGPU device was lost while loading the model. This issue often occurs due to running out of memory (OOM)…',
    );
    expect(mapWebLlmError(lost, ctx)).toBeInstanceOf(DeviceLostError);
  });

  it("maps an unknown model id (real ModelNotFoundError) to an EngineError, not the job's fault", async () => {
    const real = await rejection(new MLCEngine({ appConfig: { model_list: [] } }).reload('nope'));
    expect((real as Error).name).toBe('ModelNotFoundError');
    const mapped = mapWebLlmError(real, ctx);
    expect(mapped).toBeInstanceOf(EngineError);
    expect(mapped.message).toMatch(/Cannot find model record/);
  });

  it('maps context-window settings from the manifest to ManifestError', () => {
    const err = webllm('WindowSizeSpecificationError', 'Need to specify either sliding_window_size or max_window_size.\nConsider…');
    expect(mapWebLlmError(err, ctx)).toBeInstanceOf(ManifestError);
  });

  it('maps an aborted reload: web-llm rejects with the unload reason string', () => {
    expect(mapWebLlmError(WEBLLM_UNLOAD_REASON, ctx)).toBeInstanceOf(AbortedError);
    expect(mapWebLlmError(new DOMException('signal is aborted without reason', 'AbortError'), ctx)).toBeInstanceOf(AbortedError);
  });

  it('passes typed errors through and wraps anything else in EngineError', () => {
    const typed = new ModelUnreachableError('http://x', 'HTTP 500');
    expect(mapWebLlmError(typed, ctx)).toBe(typed);
    const other = mapWebLlmError(new Error('something odd'), ctx);
    expect(other).toBeInstanceOf(EngineError);
    expect(other.message).toMatch(/^Loading model "tiny" failed in web-llm: something odd/);
  });
});

describe('mapWebLlmError, chat requests', () => {
  const check = (messages: ChatCompletionRequest['messages'], extra: Partial<ChatCompletionRequest> = {}): SpinneretError =>
    mapWebLlmError(
      thrown(() => postInitAndCheckFieldsChatCompletion({ messages, ...extra }, 'tiny', ModelType.LLM)),
      { modelId: 'tiny', action: 'Chat job on "tiny"' },
    );

  it('maps real request checks to InvalidInputError', () => {
    const lastAssistant = check([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
    ]);
    expect(lastAssistant).toBeInstanceOf(InvalidInputError);
    expect(lastAssistant.message).toMatch(/Last message should be from either `user` or `tool`/);
    expect(
      check([
        { role: 'user', content: 'hi' },
        { role: 'system', content: 's' },
        { role: 'user', content: 'x' },
      ]),
    ).toBeInstanceOf(InvalidInputError);
    expect(check([{ role: 'user', content: 'hi' }], { seed: 1.5 })).toBeInstanceOf(InvalidInputError);
  });

  it('maps a prompt longer than the context window to InvalidInputError', () => {
    const err = webllm(
      'ContextWindowSizeExceededError',
      'Prompt tokens exceed context window size: number of prompt tokens: 5000; context window size: 4096\nConsider shortening the prompt…',
    );
    const mapped = mapWebLlmError(err, { modelId: 'tiny', action: 'Chat job on "tiny"' });
    expect(mapped).toBeInstanceOf(InvalidInputError);
    expect(mapped.message).toMatch(/5000; context window size: 4096\. Shorten/);
  });

  it("tells web-llm's config RangeError from the built-in one", () => {
    expect(mapWebLlmError(webllm('RangeError', 'Make sure 0 < top_p <= 1.'), ctx)).toBeInstanceOf(InvalidInputError);
    expect(mapWebLlmError(new RangeError('Array buffer allocation failed'), ctx)).toBeInstanceOf(EngineError);
  });
});
