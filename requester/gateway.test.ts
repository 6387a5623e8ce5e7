/**
 * The OpenAI-compatible gateway's routes (models, embeddings, chat and text completions) over a
 * scripted requester SDK, and once end to end through a real RequesterClient and sealed jobs.
 * Its refusals and protections are in gateway-edges.test.ts.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EngineError, SealError } from '../protocol/errors.ts';
import type { JobResult } from '../protocol/jobs.ts';
import type { ModelFacts } from '../protocol/wire.ts';
import type { ModelListing } from './client.ts';
import { startFakeCoordinator } from './fake-coordinator.ts';
import { createGateway, listen, startGateway } from './gateway.ts';
import { DEFAULT_MAX_TOKENS } from './openai.ts';
import { ScriptedClient, startScripted, type ScriptedGateway, chatResult } from './scripted-client.ts';

const client = new ScriptedClient();
let gateway: ScriptedGateway, openai: OpenAI;
beforeAll(async () => ({ gateway, openai } = await startScripted(client)));
afterAll(() => gateway.close());
beforeEach(() => client.reset());

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
