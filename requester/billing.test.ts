/**
 * The SDK's billing envelopes against the real coordinator and model host: input tokens as the
 * model's own tokenizer counts them (checked against the reference tokenizers and chat
 * rendering in modelhost/reference.ts), each tokenizer fetched once and checked against its
 * SHA-256, and never fewer tokens than the coordinator's byte bound asks for.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCoordinator } from '../coordinator/app.ts';
import { ModelCatalog } from '../coordinator/models/catalog.ts';
import { MemoryStore } from '../coordinator/store/memory.ts';
import { decoderTokenizer, embedTokenizer, referenceChatPrompt } from '../modelhost/reference.ts';
import { type ModelHost, startModelHost } from '../modelhost/server.ts';
import { minInputTokens } from '../protocol/billing.ts';
import { IntegrityError } from '../protocol/errors.ts';
import type { ChatRequest, EmbedRequest } from '../protocol/jobs.ts';
import { EnvelopeCounter } from './billing.ts';

const plaintext = (request: unknown): number => new TextEncoder().encode(JSON.stringify({ request, resultKey: 'k'.repeat(43) })).length;

describe('billing envelopes counted by the SDK', () => {
  let host: ModelHost;
  let url: string;
  let secret: string;
  let close: () => Promise<void>;
  const fetched: string[] = [];
  const counting: typeof fetch = (input, init) => {
    fetched.push(input instanceof Request ? input.url : input.toString());
    return fetch(input, init);
  };
  const counter = () =>
    new EnvelopeCounter(async (path) => {
      const res = await fetch(url + path, { headers: { authorization: `Bearer ${secret}` } });
      if (!res.ok) throw new Error(`${path}: ${res.status}`);
      return res;
    }, counting);

  beforeAll(async () => {
    host = await startModelHost({ port: 0 });
    const coordinator = createCoordinator({
      store: new MemoryStore(),
      catalog: await ModelCatalog.load(host.manifestUrl),
      logger: { info() {}, warn() {}, error() {} },
    });
    const server = await coordinator.listen({ port: 0 });
    url = server.url;
    secret = (await coordinator.createApiKey('sdk')).secret;
    close = async () => {
      await coordinator.close();
      await server.close();
      await host.close();
    };
  });
  afterAll(async () => close());

  it('counts embed inputs and chat prompts with the model tokenizer, fetching each tokenizer once', async () => {
    const envelopes = counter();
    const embed: EmbedRequest = { kind: 'embed', model: 'tiny-embed', inputs: ['the small model runs in a tab', 'hello world'] };
    const tokens = embed.inputs.reduce((n, text) => n + embedTokenizer().encode(text).ids.length, 0);
    expect(await envelopes.envelope(embed, plaintext(embed))).toEqual({ inputTokens: tokens, maxOutputTokens: 0 });
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'Tell me a story about the sea.' },
    ];
    const chat: ChatRequest = {
      kind: 'chat',
      model: 'tiny-decoder',
      messages,
      maxTokens: 24,
      sampling: { temperature: 0, topP: 1, seed: 0 },
    };
    const prompt = decoderTokenizer().encode(referenceChatPrompt(messages)).ids.length;
    expect(await envelopes.envelope(chat, plaintext(chat))).toEqual({ inputTokens: prompt, maxOutputTokens: 24 });
    await envelopes.envelope(chat, plaintext(chat));
    await envelopes.envelope(embed, plaintext(embed));
    // One tokenizer.json and one config per model, whatever the number of jobs.
    expect(fetched.filter((u) => u.includes('tiny-embed')).length).toBe(2);
    expect(fetched.filter((u) => u.includes('tiny-decoder')).length).toBe(2);
  });

  it('declares at least the byte bound, so text the tokenizer folds away is never refused', async () => {
    const envelopes = counter();
    const facts = await envelopes.facts('tiny-embed');
    // BERT-style normalizers drop whitespace: 30 000 spaces are 2 tokens ([CLS] and [SEP]).
    const spaces: EmbedRequest = { kind: 'embed', model: 'tiny-embed', inputs: [`${' '.repeat(30_000)}hi`] };
    const bytes = plaintext(spaces);
    const floor = minInputTokens(bytes, facts.limits.embed?.maxBytesPerToken ?? null);
    expect(embedTokenizer().encode(spaces.inputs[0] ?? '').ids.length).toBeLessThan(floor);
    expect(await envelopes.envelope(spaces, bytes)).toEqual({ inputTokens: floor, maxOutputTokens: 0 });
  });

  it('refuses a tokenizer that fails its SHA-256 check, and tries again once it is whole', async () => {
    host.corrupt.add('tiny-decoder/tokenizer.json');
    const envelopes = counter();
    const chat: ChatRequest = {
      kind: 'chat',
      model: 'tiny-decoder',
      messages: [{ role: 'user', content: 'hi' }],
      maxTokens: 4,
      sampling: { temperature: 0, topP: 1, seed: 0 },
    };
    await expect(envelopes.envelope(chat, plaintext(chat))).rejects.toBeInstanceOf(IntegrityError);
    host.corrupt.clear();
    expect((await envelopes.envelope(chat, plaintext(chat))).inputTokens).toBe(
      decoderTokenizer().encode(referenceChatPrompt(chat.messages)).ids.length,
    );
  });
});
