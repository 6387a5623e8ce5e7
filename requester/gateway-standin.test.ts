/**
 * A model's second end-of-sequence id through the OpenAI gateway: the official `openai`
 * client → the gateway → the requester SDK (sealed jobs) → a coordinator double whose
 * contributor runs the real onnx engine on a Qwen-shaped stand-in in Node. The stand-in's own
 * files name two end ids (config.json one, generation_config.json both), and the second is a
 * token the model really produces part-way through its greedy answer.
 */
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import * as ortNode from 'onnxruntime-node';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResultPiece } from '../protocol/envelope.ts';
import type { JobRequest } from '../protocol/jobs.ts';
import { parseManifest, type OnnxModel } from '../protocol/manifest.ts';
import { withHubFacts } from '../modelhost/models/layers.ts';
import { STANDIN_IDS, standinModels, testModels, type BuiltModel } from '../modelhost/models/index.ts';
import { buildManifest } from '../modelhost/server.ts';
import { referenceStandinGreedy } from '../modelhost/standin-reference.ts';
import type { EngineContext } from '../worker/engines/types.ts';
import { OnnxEngine } from '../worker/engines/onnx/engine.ts';
import type { OrtModule } from '../worker/engines/onnx/ort.ts';
import { startFakeCoordinator, type FakeCoordinator } from './fake-coordinator.ts';
import { startGateway } from './gateway.ts';

// onnxruntime-node implements onnxruntime-web's API; its CPU provider stands in for WASM.
const ort = {
  ...ortNode,
  InferenceSession: {
    create: (bytes: Uint8Array, options: object) => ortNode.InferenceSession.create(bytes, { ...options, executionProviders: ['cpu'] }),
  },
} as unknown as OrtModule;

const IM_END = 151645;
const ID = 'standin-qwen2.5-q4-tiny-second-eos';
const messages = [{ role: 'user' as const, content: 'Name a colour.' }];
/** Where the second end id falls in the greedy answer: the tokens before it are the reply. */
const AT = 4;

const text = (bytes: Uint8Array | undefined): string => new TextDecoder().decode(bytes);

/** The q4 stand-in with a generation_config.json whose second end id is `secondEos`. */
function withSecondEos(base: BuiltModel<unknown>, secondEos: number): BuiltModel<unknown> {
  const files = new Map(base.files);
  const generation = JSON.parse(text(base.files.get('generation_config.json'))) as Record<string, unknown>;
  files.set('generation_config.json', new TextEncoder().encode(JSON.stringify({ ...generation, eos_token_id: [IM_END, secondEos] })));
  const { onnx, ...rest } = base.entry;
  const { decoder: _fromFiles, ...hubOnly } = onnx;
  const entry = withHubFacts({ ...rest, id: ID, name: 'Stand-in: Qwen-shaped decoder, q4, a second end id (test)', onnx: hubOnly }, files);
  return { id: ID, files, entry, weights: base.weights };
}

function engineFor(model: BuiltModel<unknown>): OnnxEngine {
  const ctx: EngineContext = {
    // The model store's boundary: the built bytes by file name (the store is tested in worker/models).
    store: {
      getFile: async (file) => {
        const bytes = model.files.get(file.name);
        if (bytes === undefined) throw new Error(`no file ${file.url}`);
        return bytes;
      },
      has: async () => true,
      evict: async () => 0,
    },
    gpu: () => null,
    device: async () => null,
  };
  return new OnnxEngine(ctx, { loadOrt: async () => ort });
}

let model: BuiltModel<unknown>;
let greedy: number[];
let prompt: number[];
let tokenizer: Tokenizer;
let coordinator: FakeCoordinator;
let gateway: { url: string; close(): Promise<void> };
let openai: OpenAI;
let close: () => Promise<void>;

beforeAll(async () => {
  const base = standinModels().find((m) => m.id === STANDIN_IDS.decoderQ4);
  if (base === undefined) throw new Error('no q4 stand-in');
  tokenizer = new Tokenizer(
    JSON.parse(text(base.files.get('tokenizer.json'))) as object,
    JSON.parse(text(base.files.get('tokenizer_config.json'))) as object,
  );
  const config = JSON.parse(text(base.files.get('tokenizer_config.json'))) as { chat_template: string; eos_token: string };
  const rendered = new Template(config.chat_template).render({ messages, add_generation_prompt: true, eos_token: config.eos_token });
  prompt = tokenizer.encode(rendered, { add_special_tokens: false }).ids;
  // The model's greedy answer (raw onnxruntime-node, not the engine) with only <|im_end|> ending it.
  greedy = (await referenceStandinGreedy(base, prompt, 12)).tokens;
  const second = greedy[AT];
  if (second === undefined || greedy.slice(0, AT).includes(second))
    throw new Error(`token ${AT} of ${JSON.stringify(greedy)} is no clean second end id`);
  model = withSecondEos(base, second);

  const manifest = parseManifest(JSON.parse(JSON.stringify(buildManifest('http://host.invalid', testModels(), () => [], [model, base]))));
  const entries = new Map(manifest.models.map((m) => [m.id, m as OnnxModel]));
  const loaded = new Map(
    await Promise.all(
      [model, base].map(async (m) => {
        const entry = entries.get(m.id);
        if (entry === undefined) throw new Error(`no entry ${m.id}`);
        return [m.id, await engineFor(m).load(entry)] as const;
      }),
    ),
  );
  // The contributor: the engine's chunks become delta pieces and its answer the result piece, as worker/network/job.ts sends them.
  const answer = async (request: JobRequest): Promise<ResultPiece[]> => {
    const engine = loaded.get(request.model);
    if (engine === undefined) throw new Error(`no model ${request.model}`);
    const pieces: ResultPiece[] = [];
    const result = await engine.run(request, { onChunk: (c) => pieces.push({ type: 'delta', text: c.text, tokens: c.tokens }) });
    return [...pieces, { type: 'result', result }];
  };
  coordinator = await startFakeCoordinator({
    answer,
    models: [
      { id: ID, kinds: ['chat', 'generate'] },
      { id: base.id, kinds: ['chat', 'generate'] },
    ],
  });
  gateway = await startGateway({ port: 0, coordinatorUrl: coordinator.url, apiKey: 'test-key' });
  openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
  close = async () => {
    for (const l of loaded.values()) await l.unload();
  };
}, 120_000);

afterAll(async () => {
  await gateway.close();
  await coordinator.close();
  await close();
});

describe('the second end-of-sequence id through the OpenAI gateway', () => {
  it('reads both end ids from the files: config.json first, generation_config.json second', () => {
    expect(model.entry.onnx.decoder?.eosTokenIds).toEqual([IM_END, greedy[AT]]);
  });

  it('ends the chat there: finish_reason stop, no token of it or after it, usage counts the reply', async () => {
    const reply = tokenizer.decode(greedy.slice(0, AT), { skip_special_tokens: true });
    const chat = await openai.chat.completions.create({ model: ID, messages, max_tokens: 12, temperature: 0 });
    expect(chat.choices[0]?.finish_reason).toBe('stop');
    expect(chat.choices[0]?.message.content).toBe(reply);
    expect(chat.usage).toMatchObject({ prompt_tokens: prompt.length, completion_tokens: AT, total_tokens: prompt.length + AT });

    const stream = await openai.chat.completions.create({
      model: ID,
      messages,
      max_tokens: 12,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let streamed = '';
    const finishes: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice !== undefined) {
        streamed += choice.delta.content ?? '';
        finishes.push(choice.finish_reason);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(streamed).toBe(reply);
    expect(finishes.filter((f) => f !== null)).toEqual(['stop']);
    expect(finishes.at(-1)).toBe('stop');
    expect(usage).toMatchObject({ prompt_tokens: prompt.length, completion_tokens: AT });
  }, 60_000);

  it('the same weights with only the first end id answer on to max_tokens (finish_reason length)', async () => {
    const chat = await openai.chat.completions.create({ model: STANDIN_IDS.decoderQ4, messages, max_tokens: 12, temperature: 0 });
    expect(chat.choices[0]?.finish_reason).toBe('length');
    expect(chat.choices[0]?.message.content).toBe(tokenizer.decode(greedy, { skip_special_tokens: true }));
    expect(chat.usage?.completion_tokens).toBe(12);
  }, 60_000);
});
