import type { ChatCompletionChunk, ChatCompletionRequestStreaming, MLCEngineConfig } from '@mlc-ai/web-llm';
import { describe, expect, it } from 'vitest';
import { AbortedError, EngineError, InvalidInputError, ModelUnreachableError, WebGPUUnavailableError } from '../../../protocol/errors.ts';
import type { ChatRequest } from '../../../protocol/jobs.ts';
import type { WebLlmModel } from '../../../protocol/manifest.ts';
import type { GpuInfo } from '../../gpu/types.ts';
import type { EngineContext, LoadProgress } from '../types.ts';
import { WebLlmEngine, type MlcEngineLike } from './engine.ts';

const MiB = 1024 * 1024;
const swiftshader: GpuInfo = {
  vendor: 'google',
  architecture: 'swiftshader',
  device: '',
  description: '',
  isFallbackAdapter: true,
  features: ['subgroups'],
  limits: {
    maxBufferSize: 1024 * MiB,
    maxStorageBufferBindingSize: 1024 * MiB,
    maxComputeWorkgroupStorageSize: 32768,
    maxComputeInvocationsPerWorkgroup: 256,
    maxComputeWorkgroupSizeX: 256,
    maxStorageBuffersPerShaderStage: 10,
  },
};

const model: WebLlmModel = {
  id: 'smol',
  name: 'Smol',
  kinds: ['chat'],
  files: [],
  vramBytes: 580 * MiB,
  requiredFeatures: [],
  engine: 'webllm',
  webllm: {
    builds: [
      {
        quantization: 'q4f16_1',
        modelId: 'Smol-q4f16_1-MLC',
        model: 'https://h.example/o/Smol-q4f16_1-MLC',
        modelLib: 'https://h.example/f16.wasm',
        vramBytes: 500 * MiB,
        requiredFeatures: ['shader-f16'],
        files: [],
      },
      {
        quantization: 'q4f32_1',
        modelId: 'Smol-q4f32_1-MLC',
        model: 'https://h.example/o/Smol-q4f32_1-MLC',
        modelLib: 'https://h.example/f32.wasm',
        vramBytes: 580 * MiB,
        requiredFeatures: [],
        contextWindow: 1024,
        files: [],
      },
    ],
  },
};

const chat: ChatRequest = {
  kind: 'chat',
  model: 'smol',
  messages: [{ role: 'user', content: 'hi' }],
  maxTokens: 8,
  sampling: { temperature: 0.5, topP: 0.9, seed: 42 },
};

function chunk(content: string | null, finish: ChatCompletionChunk.Choice['finish_reason'] = null): ChatCompletionChunk {
  return {
    id: 'c',
    object: 'chat.completion.chunk',
    created: 0,
    model: 'm',
    choices: [{ index: 0, delta: { content, role: 'assistant' }, finish_reason: finish }],
  };
}
const usage = (prompt: number, completion: number): ChatCompletionChunk => ({
  ...chunk(null),
  choices: [],
  usage: {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    extra: { e2e_latency_s: 0, prefill_tokens_per_s: 0, decode_tokens_per_s: 0, time_to_first_token_s: 0, time_per_output_token_s: 0 },
  },
});

/** Plays web-llm's part: reload, streaming deltas then a finish chunk and a usage chunk, interrupts. */
class FakeMlc implements MlcEngineLike {
  readonly reloads: string[] = [];
  readonly requests: ChatCompletionRequestStreaming[] = [];
  unloads = 0;
  interrupted = false;
  reloadImpl: () => Promise<void> = async () => undefined;
  deltas = ['Hel', 'lo', '!'];
  finish: 'stop' | 'length' = 'stop';
  createError: Error | undefined = undefined;

  constructor(readonly config: MLCEngineConfig) {}

  reload(modelId: string): Promise<void> {
    this.reloads.push(modelId);
    this.config.initProgressCallback?.({
      progress: 0.5,
      timeElapsed: 1,
      text: 'Fetching param cache[1/2]: 290MB fetched. 50% completed, 1 secs elapsed.',
    });
    return this.reloadImpl();
  }
  async unload(): Promise<void> {
    this.unloads++;
  }
  interruptGenerate(): void {
    this.interrupted = true;
  }
  readonly chat = {
    completions: {
      create: async (request: ChatCompletionRequestStreaming): Promise<AsyncIterable<ChatCompletionChunk>> => {
        this.requests.push(request);
        if (this.createError !== undefined) throw this.createError;
        return this.#stream();
      },
    },
  };
  async *#stream(): AsyncGenerator<ChatCompletionChunk> {
    let n = 0;
    for (const d of this.deltas) {
      if (this.interrupted) break;
      n++;
      yield chunk(d);
      await Promise.resolve();
    }
    yield chunk('', this.interrupted ? 'abort' : this.finish);
    yield usage(5, n);
  }
}

function setup(
  gpu: GpuInfo | null = swiftshader,
  configure: (fake: FakeMlc) => void = () => undefined,
): { engine: WebLlmEngine; made: FakeMlc[] } {
  const made: FakeMlc[] = [];
  const ctx: EngineContext = {
    store: { getFile: () => Promise.reject(new Error('unused')), has: async () => false, evict: async () => 0 },
    gpu: () => gpu,
    device: async () => null,
  };
  const engine = new WebLlmEngine(ctx, {
    vramBudgetBytes: () => 4096 * MiB,
    createEngine: async (config) => {
      const fake = new FakeMlc(config);
      configure(fake);
      made.push(fake);
      return fake;
    },
    probe: async () => null,
  });
  return { engine, made };
}

describe('WebLlmEngine.load', () => {
  it('loads the build selectBuild picks, with its AppConfig, and reports progress', async () => {
    const { engine, made } = setup();
    const progress: LoadProgress[] = [];
    const loaded = await engine.load(model, { onProgress: (p) => progress.push(p) });
    const fake = made[0];
    expect(fake?.reloads).toEqual(['Smol-q4f32_1-MLC']);
    expect(fake?.config.appConfig?.model_list[0]).toMatchObject({ model_id: 'Smol-q4f32_1-MLC', overrides: { context_window_size: 1024 } });
    expect(progress).toEqual([
      { modelId: 'smol', phase: 'download', loadedBytes: 290 * MiB, totalBytes: 580 * MiB, text: expect.stringContaining('Fetching') },
    ]);
    expect(loaded.backend).toBe('webllm:q4f32_1');
    expect(loaded.memoryBytes()).toBe(580 * MiB);
    expect(engine.plan(model)).toEqual({ backend: 'webllm:q4f32_1', memoryBytes: 580 * MiB });
  });

  it('refuses without a GPU before making a web-llm engine', async () => {
    const { engine, made } = setup(null);
    await expect(engine.load(model)).rejects.toBeInstanceOf(WebGPUUnavailableError);
    expect(made).toHaveLength(0);
  });

  it('rejects at once on abort, unloads, and unloads again if reload finishes later', async () => {
    let finish: () => void = () => undefined;
    let reloading: () => void = () => undefined;
    const started = new Promise<void>((r) => (reloading = r));
    const { engine, made } = setup(swiftshader, (fake) => {
      fake.reloadImpl = () => (reloading(), new Promise((r) => (finish = r)));
    });
    const controller = new AbortController();
    const loading = engine.load(model, { signal: controller.signal });
    await started;
    controller.abort();
    await expect(loading).rejects.toBeInstanceOf(AbortedError);
    const fake = made[0];
    expect(fake?.unloads).toBe(1);
    finish();
    await new Promise((r) => setTimeout(r, 0));
    expect(fake?.unloads).toBe(2);
  });

  it('maps a failed reload and frees the engine', async () => {
    const made: FakeMlc[] = [];
    const probed: string[] = [];
    const ctx: EngineContext = {
      store: { getFile: () => Promise.reject(new Error('unused')), has: async () => false, evict: async () => 0 },
      gpu: () => swiftshader,
      device: async () => null,
    };
    const engine = new WebLlmEngine(ctx, {
      createEngine: async (config) => {
        const fake = new FakeMlc(config);
        fake.reloadImpl = () => Promise.reject(new TypeError('Failed to fetch'));
        made.push(fake);
        return fake;
      },
      probe: async (url) => (probed.push(url), url.endsWith('mlc-chat-config.json') ? null : 'HTTP 404'),
    });
    const err = await engine.load(model).catch((e: unknown) => e);
    // The config downloads; the model library is the first file that does not.
    expect(err).toBeInstanceOf(ModelUnreachableError);
    expect((err as ModelUnreachableError).details).toEqual({ url: 'https://h.example/f32.wasm', reason: 'HTTP 404' });
    expect(probed).toEqual(['https://h.example/o/Smol-q4f32_1-MLC/resolve/main/mlc-chat-config.json', 'https://h.example/f32.wasm']);
    expect(made[0]?.unloads).toBe(1);
  });
});

describe('WebLlmLoadedModel.run', () => {
  it('streams deltas to onChunk and returns text, finish reason and usage', async () => {
    const { engine, made } = setup();
    const loaded = await engine.load(model);
    const chunks: string[] = [];
    const result = await loaded.run(chat, { onChunk: (c) => chunks.push(`${c.index}:${c.text}`) });
    expect(result).toEqual({ kind: 'chat', text: 'Hello!', finishReason: 'stop', usage: { promptTokens: 5, completionTokens: 3 } });
    expect(chunks).toEqual(['0:Hel', '1:lo', '2:!']);
    expect(made[0]?.requests[0]).toEqual({
      model: 'Smol-q4f32_1-MLC',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 8,
      temperature: 0.5,
      top_p: 0.9,
      seed: 42,
    });
  });

  it('reports length when web-llm stopped at max_tokens', async () => {
    const { engine, made } = setup();
    const loaded = await engine.load(model);
    if (made[0]) made[0].finish = 'length';
    const result = await loaded.run(chat);
    expect(result.kind === 'chat' && result.finishReason).toBe('length');
  });

  it('interrupts generation on abort and rejects with AbortedError', async () => {
    const { engine, made } = setup();
    const loaded = await engine.load(model);
    const controller = new AbortController();
    const texts: string[] = [];
    const run = loaded.run(chat, { signal: controller.signal, onChunk: (c) => (texts.push(c.text), controller.abort()) });
    await expect(run).rejects.toBeInstanceOf(AbortedError);
    expect(made[0]?.interrupted).toBe(true);
    expect(texts).toEqual(['Hel']);
  });

  it("maps web-llm's request errors", async () => {
    const { engine, made } = setup();
    const loaded = await engine.load(model);
    if (made[0])
      made[0].createError = Object.assign(new Error('Last message should be from either `user` or `tool`.'), { name: 'MessageOrderError' });
    await expect(loaded.run(chat)).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('takes chat jobs only, and nothing after unload', async () => {
    const { engine, made } = setup();
    const loaded = await engine.load(model);
    await expect(loaded.run({ kind: 'embed', model: 'smol', inputs: ['x'] })).rejects.toBeInstanceOf(InvalidInputError);
    await loaded.unload();
    await loaded.unload();
    expect(made[0]?.unloads).toBe(1);
    expect(loaded.memoryBytes()).toBe(0);
    await expect(loaded.run(chat)).rejects.toBeInstanceOf(EngineError);
  });
});
