import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { EngineError, SealError } from '../protocol/errors.ts';
import type { JobRequest, JobResult } from '../protocol/jobs.ts';
import type { ModelFacts } from '../protocol/wire.ts';
import type { ModelListing, RunOptions } from './client.ts';
import { ApiKeyRefusedError, CoordinatorUnavailableError, PaymentRequiredError } from './errors.ts';
import { startFakeCoordinator } from './fake-coordinator.ts';
import { createGateway, listen, startGateway } from './gateway.ts';
import { DEFAULT_MAX_TOKENS } from './openai.ts';

interface Script {
  deltas?: string[];
  result?: JobResult;
  /** Thrown after the deltas (before any when there are none). */
  error?: Error;
  /** Never finishes: waits for the abort signal. */
  hang?: boolean;
}

/** Test double of RequesterClient: answers from `script`, records what it was asked. */
class ScriptedClient {
  calls: Array<{ request: JobRequest; signal: AbortSignal | undefined }> = [];
  script: Script = {};
  aborted = false;

  async models(): Promise<ModelListing[]> {
    return [
      { id: 'tiny-chat', kinds: ['chat', 'generate'] },
      { id: 'tiny-embed', kinds: ['embed'] },
    ];
  }

  async run(request: JobRequest, options: RunOptions = {}): Promise<JobResult & { attempts: number }> {
    this.calls.push({ request, signal: options.signal });
    for (const text of this.script.deltas ?? []) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      options.onDelta?.({ text, tokens: [text.length] });
    }
    if (this.script.hang === true) {
      await new Promise<void>((resolve) => options.signal?.addEventListener('abort', () => resolve()));
      this.aborted = true;
    }
    if (this.script.error !== undefined) throw this.script.error;
    if (this.script.result === undefined) throw new Error('no result scripted');
    return { ...this.script.result, attempts: 1 };
  }
}

const client = new ScriptedClient();
let gateway: { url: string; close(): Promise<void> };
let openai: OpenAI;

beforeAll(async () => {
  gateway = await listen(createGateway({ client, modelsInfo: { 'tiny-chat': { maxTokens: 64, created: 1700000000 } } }), 0, '127.0.0.1');
  openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
});
afterAll(() => gateway.close());
beforeEach(() => {
  client.calls = [];
  client.script = {};
  client.aborted = false;
});

const chatResult = (text: string, finishReason: 'stop' | 'length' = 'stop'): JobResult => ({
  kind: 'chat',
  text,
  finishReason,
  usage: { promptTokens: 7, completionTokens: 3 },
});

describe('gateway: models', () => {
  it('lists and retrieves models, 404 for an unknown one', async () => {
    const page = await openai.models.list();
    expect(page.data.map((m) => [m.id, m.object, m.owned_by])).toEqual([
      ['tiny-chat', 'model', 'spinneret'],
      ['tiny-embed', 'model', 'spinneret'],
    ]);
    expect((await openai.models.retrieve('tiny-chat')).created).toBe(1700000000);
    await expect(openai.models.retrieve('nope')).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
  });
});

describe('gateway: embeddings', () => {
  it('answers the default (base64) and float encodings', async () => {
    const embeddings = [
      [0.5, -1.25, 3],
      [0.1, 0, -0.3],
    ];
    client.script = { result: { kind: 'embed', embeddings, usage: { promptTokens: 4, completionTokens: 0 } } };
    const res = await openai.embeddings.create({ model: 'tiny-embed', input: ['a b', 'c d'] });
    expect(client.calls[0]!.request).toEqual({ kind: 'embed', model: 'tiny-embed', inputs: ['a b', 'c d'] });
    expect(res.data.map((d) => d.index)).toEqual([0, 1]);
    // The client decoded little-endian float32: compare to float32-rounded values.
    expect(res.data.map((d) => d.embedding)).toEqual(embeddings.map((e) => Array.from(Float32Array.from(e))));
    expect(res.usage).toEqual({ prompt_tokens: 4, total_tokens: 4 });
    expect(res.model).toBe('tiny-embed');

    const floats = await openai.embeddings.create({ model: 'tiny-embed', input: 'one', encoding_format: 'float' });
    expect(client.calls[1]!.request).toMatchObject({ inputs: ['one'] });
    expect(floats.data[0]!.embedding).toEqual(embeddings[0]);
  });

  it('refuses token input, an empty string and a chat model', async () => {
    await expect(openai.embeddings.create({ model: 'tiny-embed', input: [[1, 2]] })).rejects.toMatchObject({ status: 400 });
    await expect(openai.embeddings.create({ model: 'tiny-embed', input: '' })).rejects.toMatchObject({ status: 400 });
    await expect(openai.embeddings.create({ model: 'tiny-chat', input: 'x' })).rejects.toMatchObject({ status: 400 });
    expect(client.calls).toEqual([]);
  });
});

describe('gateway: chat completions', () => {
  it('answers a non-streamed completion and maps the parameters', async () => {
    client.script = { result: chatResult('Hello there', 'length') };
    const res = await openai.chat.completions.create({
      model: 'tiny-chat',
      messages: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
      ],
      max_completion_tokens: 20,
      temperature: 0.7,
      top_p: 0.9,
      seed: 3,
    });
    expect(client.calls[0]!.request).toEqual({
      kind: 'chat',
      model: 'tiny-chat',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      maxTokens: 20,
      sampling: { temperature: 0.7, topP: 0.9, seed: 3 },
    });
    expect(res.object).toBe('chat.completion');
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.choices).toHaveLength(1);
    expect(res.choices[0]!.message).toMatchObject({ role: 'assistant', content: 'Hello there' });
    expect(res.choices[0]!.finish_reason).toBe('length');
    expect(res.usage).toEqual({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
  });

  it('is greedy without temperature and takes max tokens from the model info', async () => {
    client.script = { result: chatResult('ok') };
    await openai.chat.completions.create({ model: 'tiny-chat', messages: [{ role: 'user', content: 'x' }] });
    expect(client.calls[0]!.request).toMatchObject({ maxTokens: 64, sampling: { temperature: 0, topP: 1, seed: 0 } });
    expect(DEFAULT_MAX_TOKENS).toBeGreaterThan(0);
  });

  it('streams deltas as chunks, then finish_reason and usage', async () => {
    client.script = { deltas: ['Hel', 'lo', ' there'], result: chatResult('Hello there') };
    const stream = await openai.chat.completions.create({
      model: 'tiny-chat',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const contents: string[] = [];
    const finishes: Array<string | null> = [];
    let usage: unknown = null;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      const choice = chunk.choices[0];
      if (choice === undefined) usage = chunk.usage;
      else {
        if (choice.delta.content) contents.push(choice.delta.content);
        finishes.push(choice.finish_reason);
      }
    }
    expect(contents).toEqual(['Hel', 'lo', ' there']);
    expect(finishes.at(-1)).toBe('stop');
    expect(finishes.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(usage).toEqual({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
  });

  it('puts usage on the finish chunk without include_usage, sends unstreamed text, and ends with [DONE]', async () => {
    client.script = { deltas: ['Hel'], result: chatResult('Hello') };
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: 'x' }], stream: true }),
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = (await res.text()).split('\n\n').filter((e) => e !== '');
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events
      .slice(0, -1)
      .map((e) => JSON.parse(e.slice('data: '.length)) as { choices: Array<{ delta: { content?: string } }>; usage?: unknown });
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe('Hello');
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
  });

  it('answers a job that fails before any text with an HTTP error, and one that fails mid-stream with an error event', async () => {
    client.script = { error: new EngineError('out of GPU memory') };
    await expect(
      openai.chat.completions.create({ model: 'tiny-chat', messages: [{ role: 'user', content: 'x' }], stream: true }),
    ).rejects.toMatchObject({
      status: 502,
      code: 'engine',
    });

    client.script = { deltas: ['Hel'], error: new SealError('result chunk 1 of job j', 'decryption failed') };
    const stream = await openai.chat.completions.create({ model: 'tiny-chat', messages: [{ role: 'user', content: 'x' }], stream: true });
    const seen: string[] = [];
    const err = await (async () => {
      for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((e: unknown) => e);
    expect(seen.join('')).toBe('Hel');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toMatch(/Could not open the result chunk/);
  });

  it('cancels the job when the HTTP client goes away', async () => {
    client.script = { deltas: ['Hel'], hang: true };
    const controller = new AbortController();
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: 'x' }], stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await expect.poll(() => client.aborted).toBe(true);
  });
});

describe('gateway: errors', () => {
  const ask = (body: Record<string, unknown>): Promise<unknown> =>
    openai.chat.completions.create({
      model: 'tiny-chat',
      messages: [{ role: 'user', content: 'x' }],
      ...body,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);

  it('400 with the validation summary for bad input, never reaching the network', async () => {
    await expect(ask({ max_tokens: 0 })).rejects.toMatchObject({
      status: 400,
      type: 'invalid_request_error',
      message: expect.stringMatching(/maxTokens/),
    });
    await expect(ask({ messages: [] })).rejects.toMatchObject({
      status: 400,
      message: expect.stringMatching(/messages must not be empty/),
    });
    await expect(ask({ messages: [{ role: 'tool', content: 'x', tool_call_id: 'a' }] })).rejects.toMatchObject({ status: 400 });
    await expect(ask({ tools: [{ type: 'function', function: { name: 'f' } }] })).rejects.toMatchObject({
      status: 400,
      message: expect.stringMatching(/"tools" is not supported/),
    });
    await expect(ask({ stop: ['x'.repeat(65)] })).rejects.toMatchObject({ status: 400 });
    await expect(ask({ temperature: 9 })).rejects.toMatchObject({ status: 400 });
    const raw = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(raw.status).toBe(400);
    expect(await raw.json()).toMatchObject({ error: { type: 'invalid_request_error', message: expect.stringMatching(/not JSON/) } });
    expect(client.calls).toEqual([]);
  });

  it('404 for a model nobody serves', async () => {
    await expect(ask({ model: 'gpt-4o' })).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
      message: expect.stringMatching(/tiny-chat/),
    });
  });

  it('maps network, key and engine failures to 503, 401 and 502', async () => {
    client.script = { error: new CoordinatorUnavailableError('http://c', 'connection refused') };
    await expect(ask({})).rejects.toMatchObject({ status: 503, code: 'coordinator_unavailable' });
    client.script = { error: new ApiKeyRefusedError(401, 'unknown API key') };
    await expect(ask({})).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    client.script = { error: new EngineError('boom') };
    await expect(ask({})).rejects.toMatchObject({ status: 502, code: 'engine' });
    client.script = { error: new TypeError('bug') };
    const log = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    await expect(ask({})).rejects.toMatchObject({ status: 500, code: 'internal_error' });
    expect(log).toHaveBeenCalledWith('gateway:', client.script.error);
    log.mockRestore();
  });

  it("answers 402 insufficient_quota when the gateway's key is short, with where to deposit, and the client does not retry", async () => {
    const deposit = { address: 'kQDe36hTeslL-nuYnFe5fftyRn6q7aNe5YCDEU5PTsYIw2ej', memo: 'spn-mjed5sdimtmw7ixki3ez' };
    client.script = {
      error: new PaymentRequiredError({
        error: { code: 'PAYMENT_REQUIRED', message: 'short' },
        payment: { required: '88000', available: '1000', shortfall: '87000', deposit },
      }),
    };
    const retrying = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 2 });
    const asked = retrying.chat.completions.create({ model: 'tiny-chat', messages: [{ role: 'user', content: 'hi' }] });
    await expect(asked).rejects.toMatchObject({ status: 402, code: 'insufficient_quota', type: 'insufficient_quota' });
    await expect(asked).rejects.toThrow(/short by 87000 nanoTON.*spn-mjed5sdimtmw7ixki3ez/);
    expect(client.calls).toHaveLength(1);
  });
});

describe('gateway end to end', () => {
  it('serves the OpenAI client through a real RequesterClient and sealed jobs', async () => {
    const coordinator = await startFakeCoordinator({ dropAttempts: [1] });
    const live = await startGateway({ port: 0, coordinatorUrl: coordinator.url, apiKey: 'test-key' });
    try {
      const api = new OpenAI({ baseURL: `${live.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const stream = await api.chat.completions.create({ model: 'tiny-chat', messages: [{ role: 'user', content: 'ping' }], stream: true });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      expect(text).toBe('You said: ping');
      expect(coordinator.opened).toHaveLength(2);
      const embed = await api.embeddings.create({ model: 'tiny-embed', input: 'abc' });
      expect(embed.data[0]!.embedding).toEqual([3, 0.5, -1]);
    } finally {
      await live.close();
      await coordinator.close();
    }
  });
});

describe('gateway edges', () => {
  const chat = JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: 'hi' }] });
  const result: JobResult = {
    kind: 'chat',
    text: 'ok',
    tokens: [1],
    finishReason: 'stop',
    usage: { promptTokens: 1, completionTokens: 1 },
  };

  it('refuses cross-site requests: another site’s Origin, Sec-Fetch-Site cross-site, and text/plain POSTs', async () => {
    client.script = { result };
    const cases: Array<[Record<string, string>, number]> = [
      [{ 'content-type': 'text/plain', origin: 'https://evil.example' }, 403],
      [{ 'content-type': 'text/plain' }, 415],
      [{ 'content-type': 'application/json', 'sec-fetch-site': 'cross-site' }, 403],
      [{ 'content-type': 'application/json', 'sec-fetch-site': 'same-site' }, 403],
      [{ 'content-type': 'application/json', origin: 'https://evil.example' }, 403],
      [{ 'content-type': 'application/x-www-form-urlencoded' }, 415],
    ];
    for (const [headers, status] of cases) {
      const res = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers, body: chat });
      expect(res.status, JSON.stringify(headers)).toBe(status);
      const body = (await res.json()) as { error: { type: string; message: string } };
      expect(body.error.type).toBe('invalid_request_error');
    }
    expect(client.calls).toHaveLength(0);
    // The page's own origin and non-browser clients pass.
    const own = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: gateway.url, 'sec-fetch-site': 'same-origin' },
      body: chat,
    });
    expect(own.status).toBe(200);
  });

  it('limits bodies with a 413', async () => {
    const small = await listen(createGateway({ client, maxBodyBytes: 1024 }), 0, '127.0.0.1');
    try {
      const big = JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: 'x'.repeat(4096) }] });
      const res = await fetch(`${small.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: big,
      });
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('body_too_large');
      expect(client.calls).toHaveLength(0);
    } finally {
      await small.close();
    }
  });

  it('requires its own key when given one, and refuses to listen beyond loopback without one', async () => {
    client.script = { result };
    const keyed = await listen(createGateway({ client, apiKeys: ['gw-secret-1'] }), 0, '127.0.0.1');
    try {
      for (const auth of [undefined, 'Bearer wrong', 'Bearer gw-secret-12', 'gw-secret-1']) {
        const res = await fetch(`${keyed.url}/v1/models`, { headers: auth === undefined ? {} : { authorization: auth } });
        expect(res.status, String(auth)).toBe(401);
        expect(((await res.json()) as { error: { type: string } }).error.type).toBe('authentication_error');
      }
      const api = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'gw-secret-1', maxRetries: 0 });
      expect((await api.models.list()).data.map((m) => m.id)).toContain('tiny-chat');
    } finally {
      await keyed.close();
    }
    await expect(startGateway({ port: 0, host: '0.0.0.0', coordinatorUrl: 'http://127.0.0.1:1', apiKey: 'k' })).rejects.toThrow(
      /SPINNERET_GATEWAY_KEY/,
    );
  });

  it('answers an unexpected failure with a typed 500 and keeps serving', async () => {
    const broken = createGateway({
      client: {
        models: () => {
          throw new TypeError('boom');
        },
        run: client.run.bind(client),
      },
    });
    const server = await listen(broken, 0, '127.0.0.1');
    try {
      const res = await fetch(`${server.url}/v1/models`);
      expect(res.status).toBe(500);
      expect(((await res.json()) as { error: { type: string } }).error.type).toBe('api_error');
      expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

describe('gateway: what the OpenAI API can use', () => {
  /** A client whose coordinator lists a chat model, an embedding model and a raw-tensor model, all under every consented kind. */
  class CatalogClient extends ScriptedClient {
    override async models(): Promise<ModelListing[]> {
      const all: ModelListing['kinds'] = ['embed', 'chat', 'generate', 'infer'];
      return [
        { id: 'tiny-chat', kinds: all },
        { id: 'tiny-embed', kinds: all },
        { id: 'tiny-q4', kinds: all },
      ];
    }

    async modelFacts(id: string): Promise<ModelFacts> {
      const kinds = ({ 'tiny-chat': ['chat', 'generate'], 'tiny-embed': ['embed'], 'tiny-q4': ['infer'] } as const)[id] ?? [];
      const limit = { maxTokens: 128, maxOutputTokens: null, maxBytesPerToken: 8 };
      const embedding = {
        dim: 4,
        maxTokens: 64,
        pooling: 'mean',
        normalize: true,
        output: 'last_hidden_state',
        tokenTypeIds: false,
        prefixes: {},
      };
      return {
        id,
        model: {
          id,
          name: id,
          kinds: [...kinds],
          engine: 'onnx',
          files: [],
          vramBytes: 1,
          requiredFeatures: [],
          onnx: { model: 'm.onnx', backends: ['wasm'], ...(id === 'tiny-embed' ? { embedding } : {}) },
        } as ModelFacts['model'],
        limits: id === 'tiny-chat' ? { chat: limit, generate: limit } : {},
      };
    }
  }

  it('lists only models and kinds an OpenAI route serves, with context length and price', async () => {
    const scripted = new CatalogClient();
    const pricing = { currency: 'nanoTON' as const, inputPer1k: '2000', outputPer1k: '6000' };
    const server = await listen(createGateway({ client: scripted, modelsInfo: { 'tiny-chat': { pricing } } }), 0, '127.0.0.1');
    try {
      const api = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const page = await api.models.list();
      expect(page.data.map((m) => ({ ...m }))).toEqual([
        { id: 'tiny-chat', object: 'model', created: 0, owned_by: 'spinneret', kinds: ['chat', 'generate'], context_length: 128, pricing },
        { id: 'tiny-embed', object: 'model', created: 0, owned_by: 'spinneret', kinds: ['embed'], context_length: 64 },
      ]);
      await expect(api.models.retrieve('tiny-q4')).rejects.toMatchObject({ status: 404 });
      await expect(api.embeddings.create({ model: 'tiny-chat', input: 'x' })).rejects.toMatchObject({
        status: 400,
        message: expect.stringMatching(/use chat completions or completions/),
      });
    } finally {
      await server.close();
    }
  });
});

describe('gateway: completions', () => {
  const generated = (text: string): JobResult => ({
    kind: 'generate',
    tokens: [1, 2],
    text,
    finishReason: 'stop',
    usage: { promptTokens: 5, completionTokens: 2 },
  });

  it('answers raw generation from a text prompt, with stop sequences passed on', async () => {
    client.script = { result: generated(' upon a time') };
    const res = await openai.completions.create({ model: 'tiny-chat', prompt: 'Once', max_tokens: 9, stop: ['\n'], seed: 2 });
    expect(client.calls[0]!.request).toMatchObject({
      kind: 'generate',
      model: 'tiny-chat',
      prompt: 'Once',
      maxTokens: 9,
      sampling: { seed: 2 },
      stop: ['\n'],
    });
    expect(res.object).toBe('text_completion');
    expect(res.choices[0]).toMatchObject({ index: 0, text: ' upon a time', finish_reason: 'stop' });
    expect(res.usage).toEqual({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
  });

  it('streams text pieces as text_completion chunks, and takes token-id prompts', async () => {
    client.script = { deltas: [' up', 'on'], result: generated(' upon') };
    const stream = await openai.completions.create({ model: 'tiny-chat', prompt: [3, 4, 5], max_tokens: 4, stream: true });
    const pieces: string[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      pieces.push(chunk.choices[0]?.text ?? '');
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(client.calls[0]!.request).toMatchObject({ kind: 'generate', prompt: [3, 4, 5], maxTokens: 4 });
    expect(pieces.join('')).toBe(' upon');
    expect(finish).toBe('stop');
  });

  it('refuses an embedding model and several prompts at once', async () => {
    await expect(openai.completions.create({ model: 'tiny-embed', prompt: 'x' })).rejects.toMatchObject({ status: 400 });
    await expect(openai.completions.create({ model: 'tiny-chat', prompt: ['a', 'b'] })).rejects.toMatchObject({ status: 400 });
    expect(client.calls).toEqual([]);
  });
});
