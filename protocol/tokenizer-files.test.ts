import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decoderTokenizer, embedTokenizer } from '../modelhost/reference.ts';
import { testModels } from '../modelhost/models/index.ts';
import { IntegrityError, ModelUnreachableError } from './errors.ts';
import type { ModelEntry } from './manifest.ts';
import { mulberry32 } from './random.ts';
import { fetchVerified, maxBytesPerToken, tokenizerFiles } from './tokenizer-files.ts';

const json = (files: Map<string, Uint8Array> | Record<string, Uint8Array>, name: string): unknown => {
  const bytes = files instanceof Map ? files.get(name) : files[name];
  return JSON.parse(new TextDecoder().decode(bytes));
};

/** Bytes `text` takes inside a JSON string, measured by JSON.stringify (the independent reference). */
const jsonBytes = (text: string): number => new TextEncoder().encode(JSON.stringify(text)).length - 2;

describe('tokenizer facts', () => {
  const { embed, decoder } = testModels();

  it('bounds the JSON bytes any text of the vocabulary takes per token, for both test tokenizers', () => {
    const cases = [
      {
        tokenizer: embedTokenizer(),
        bound: maxBytesPerToken(json(embed.files, 'tokenizer.json')),
        alphabet: 'abcdefghijklmnopqrstuvwxyz .,!?"\\\n',
      },
      {
        tokenizer: decoderTokenizer(),
        bound: maxBytesPerToken(json(decoder.files, 'tokenizer.json')),
        alphabet: "abcdefghijklmnopqrstuvwxyz0123456789 .,!?'-:+()\n",
      },
    ];
    const rand = mulberry32(5);
    for (const { tokenizer, bound, alphabet } of cases) {
      expect(bound).toBeGreaterThan(1);
      for (let i = 0; i < 300; i++) {
        const text = Array.from({ length: 1 + (rand() % 200) }, () => alphabet[rand() % alphabet.length]).join('');
        const tokens = tokenizer.encode(text).ids.length;
        expect(jsonBytes(text)).toBeLessThanOrEqual(tokens * bound);
      }
    }
  });

  it('maps byte-level entries back to their bytes and counts JSON escapes', () => {
    // "Ġ" is a space, "Ċ" a newline (escaped as two bytes), "ĉ" a tab: a 3-byte token in JSON is " \n" + "a".
    expect(maxBytesPerToken({ model: { vocab: { ĠĊa: 0, b: 1 } }, decoder: { type: 'ByteLevel' } })).toBe(jsonBytes(' \na'));
    // Without a byte-level decoder the entries are text: "▁" is a space, "##" no text.
    expect(maxBytesPerToken({ model: { vocab: { '▁"x': 0, '##abcd': 1 } } })).toBe(4);
    // Unigram vocabularies are [piece, score] pairs; added tokens count too.
    expect(maxBytesPerToken({ model: { vocab: [['ab', -1]] }, added_tokens: [{ content: '<|assistant|>' }] })).toBe(13);
  });

  it('fetches a tokenizer file once it matches its size and SHA-256, and refuses one that does not', async () => {
    const bytes = new TextEncoder().encode('{"model":{"vocab":{"a":0}}}');
    const file = {
      name: 'tokenizer.json',
      url: 'http://host/t.json',
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    };
    const serve =
      (body: Uint8Array, status = 200): typeof fetch =>
      async () =>
        new Response(new Blob([body.slice()]), { status });
    expect(await fetchVerified(file, serve(bytes))).toEqual(bytes);
    const tampered = bytes.slice();
    tampered[2] = 0x41;
    await expect(fetchVerified(file, serve(tampered))).rejects.toBeInstanceOf(IntegrityError);
    await expect(fetchVerified(file, serve(bytes.slice(1)))).rejects.toBeInstanceOf(IntegrityError);
    await expect(fetchVerified(file, serve(bytes, 404))).rejects.toBeInstanceOf(ModelUnreachableError);
    const entry = (tokenizer?: string): ModelEntry => ({
      id: 'm',
      name: 'm',
      kinds: ['embed'],
      files: [file],
      vramBytes: 0,
      requiredFeatures: [],
      engine: 'onnx',
      onnx: { model: 'tokenizer.json', backends: ['wasm'], ...(tokenizer === undefined ? {} : { tokenizer }) },
    });
    expect(tokenizerFiles(entry('tokenizer.json'))).toEqual({ json: file, config: undefined });
    expect(tokenizerFiles(entry())).toBeNull();
  });
});
