/**
 * The onnx engine on the stand-ins of published layouts, in Node: the engine (its facts read
 * from the hub files, its tokenizer, template, caches and pooling) against onnxruntime-node
 * sessions driven directly here, with pooling and the greedy loop written out independently.
 */
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import * as ortNode from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import type { JobResult } from '../../../protocol/jobs.ts';
import { type ModelEntry, type OnnxModel, parseManifest } from '../../../protocol/manifest.ts';
import { STANDIN_IDS, standinModels, type BuiltModel } from '../../../modelhost/models/index.ts';
import { buildManifest } from '../../../modelhost/server.ts';
import { graphInputs, graphNodes } from '../../../modelhost/models/onnx-graph.ts';
import { QwenStandinReference } from '../../../modelhost/reference.ts';
import { referenceStandinEmbed, referenceStandinGreedy, referenceStandinStepLogits } from '../../../modelhost/standin-reference.ts';
import { testModels } from '../../../modelhost/models/index.ts';
import type { EngineContext } from '../types.ts';
import { OnnxEngine } from './engine.ts';
import type { OrtModule } from './ort.ts';

// onnxruntime-node implements onnxruntime-web's API; its CPU provider stands in for WASM.
const ort = {
  ...ortNode,
  InferenceSession: {
    create: (bytes: Uint8Array, options: object) => ortNode.InferenceSession.create(bytes, { ...options, executionProviders: ['cpu'] }),
  },
} as unknown as OrtModule;

let models: Map<string, BuiltModel<unknown>>;
let entries: Map<string, OnnxModel>;

beforeAll(() => {
  models = new Map(standinModels().map((m) => [m.id, m]));
  const manifest = parseManifest(JSON.parse(JSON.stringify(buildManifest('http://host.invalid', testModels(), () => [], standinModels()))));
  entries = new Map(manifest.models.flatMap((m: ModelEntry) => (m.engine === 'onnx' ? [[m.id, m] as const] : [])));
}, 60_000);

function engine(): OnnxEngine {
  const ctx: EngineContext = {
    // The model store's boundary: the built bytes by file name (the store itself is tested in worker/models).
    store: {
      getFile: async (file) => {
        for (const m of models.values()) {
          const bytes = m.files.get(file.name);
          if (bytes !== undefined && file.url.includes(`/${m.id}/`)) return bytes;
        }
        throw new Error(`no file ${file.url}`);
      },
      has: async () => true,
      evict: async () => 0,
    },
    gpu: () => null,
    device: async () => null,
  };
  return new OnnxEngine(ctx, { loadOrt: async () => ort });
}

function entry(id: string): OnnxModel {
  const found = entries.get(id);
  if (found === undefined) throw new Error(`no entry ${id}`);
  return found;
}

function built(id: string): BuiltModel<unknown> {
  const found = models.get(id);
  if (found === undefined) throw new Error(`no model ${id}`);
  return found;
}

function file(id: string, name: string): Uint8Array {
  const bytes = models.get(id)?.files.get(name);
  if (bytes === undefined) throw new Error(`no ${name} in ${id}`);
  return bytes;
}

const json = (bytes: Uint8Array): object => JSON.parse(new TextDecoder().decode(bytes)) as object;

describe('MiniLM-shaped encoder stand-in', () => {
  it('reads its facts from the hub files: BERT, mean pooling, normalized, token types from the graph', () => {
    expect(entry(STANDIN_IDS.encoder).onnx.embedding).toEqual({
      dim: 32,
      maxTokens: 64,
      pooling: 'mean',
      normalize: true,
      output: 'last_hidden_state',
      tokenTypeIds: true,
      prefixes: {},
    });
  });

  it('embeddings equal a raw onnxruntime-node run, mean-pooled and normalized here, within 1e-5', async () => {
    const id = STANDIN_IDS.encoder;
    const texts = ['the quick brown fox jumps over the lazy dog', 'hello world', 'models run in the browser on webgpu'];
    const loaded = await engine().load(entry(id));
    const result = (await loaded.run({ kind: 'embed', model: id, inputs: texts })) as Extract<JobResult, { kind: 'embed' }>;
    await loaded.unload();

    const reference = await referenceStandinEmbed(built(id), texts);
    for (const [i, expected] of reference.entries()) {
      const got = result.embeddings[i] ?? [];
      expect(got).toHaveLength(32);
      expect(Math.max(...expected.map((x, d) => Math.abs(x - (got[d] ?? NaN))))).toBeLessThan(1e-5);
    }
  });
});

describe.each([
  ['q4', STANDIN_IDS.decoderQ4, 'float32'],
  ['q4f16', STANDIN_IDS.decoderQ4f16, 'float16'],
] as const)('Qwen-shaped %s decoder stand-in', (variant, id, cacheType) => {
  it('reads its facts from config.json, generation_config.json, tokenizer_config.json and the graph', () => {
    const spec = entry(id).onnx.decoder;
    expect(spec).toMatchObject({
      numLayers: 2,
      numKvHeads: 2,
      headDim: 8,
      vocabSize: 151936,
      maxContext: 256,
      eosTokenIds: [151645, 151643],
    });
    expect(spec?.cacheType).toBe(cacheType);
    expect(spec?.positionIds).toBe(true);
    expect(entry(id).hub).toEqual({ repository: `spinneret-test/${id}`, revision: 'main', variant });
    expect(entry(id).requiredFeatures).toEqual(variant === 'q4f16' ? ['shader-f16'] : []);
  });

  it('chat renders the real Qwen3 template as @huggingface/jinja does, and greedy tokens equal the raw session', async () => {
    const messages = [
      { role: 'system' as const, content: 'You are terse.' },
      { role: 'user' as const, content: 'Name a colour.' },
    ];
    const config = json(file(id, 'tokenizer_config.json')) as { chat_template: string; eos_token: string };
    const rendered = new Template(config.chat_template).render({ messages, add_generation_prompt: true, eos_token: config.eos_token });
    // The published template's output, written out by hand.
    expect(rendered).toBe(
      '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n',
    );
    const tokenizer = new Tokenizer(json(file(id, 'tokenizer.json')), config);
    const prompt = tokenizer.encode(rendered, { add_special_tokens: false }).ids;
    expect(prompt[0]).toBe(151644); // <|im_start|> as one special token
    const expected = (await referenceStandinGreedy(built(id), prompt, 12)).tokens;
    expect(expected.length).toBe(12);

    const loaded = await engine().load(entry(id));
    expect(loaded.backend).toBe('wasm');
    const result = (await loaded.run({
      kind: 'chat',
      model: id,
      messages,
      maxTokens: 12,
      sampling: { temperature: 0, topP: 1, seed: 0 },
    })) as Extract<JobResult, { kind: 'chat' }>;
    expect(result.usage.promptTokens).toBe(prompt.length);
    expect(result.tokens).toEqual(expected);
    expect(result.text).toBe(tokenizer.decode(expected, { skip_special_tokens: true }));

    // A stop sequence ends the generation before it, and the text never shows it.
    const full = tokenizer.decode(expected.slice(0, 6), { skip_special_tokens: true });
    const stop = full.slice(Math.max(1, full.length - 3));
    const chunks: string[] = [];
    const stopped = (await loaded.run(
      { kind: 'chat', model: id, messages, maxTokens: 12, sampling: { temperature: 0, topP: 1, seed: 0 }, stop: [stop] },
      { onChunk: (c) => chunks.push(c.text) },
    )) as Extract<JobResult, { kind: 'chat' }>;
    expect(stopped.finishReason).toBe('stop');
    expect(stopped.text).toBe(full.slice(0, full.indexOf(stop)));
    expect(chunks.join('')).toBe(stopped.text);
    await loaded.unload();
  }, 60_000);
});

describe('Qwen-shaped q4 decoder laid out as ONNX Runtime GenAI exports it (rotary inside GroupQueryAttention)', () => {
  const id = STANDIN_IDS.decoderQ4RotaryInAttention;
  const messages = [{ role: 'user' as const, content: 'Name a colour.' }];

  function prompt(): number[] {
    const config = json(file(id, 'tokenizer_config.json')) as { chat_template: string; eos_token: string };
    const rendered = new Template(config.chat_template).render({ messages, add_generation_prompt: true, eos_token: config.eos_token });
    return new Tokenizer(json(file(id, 'tokenizer.json')), config).encode(rendered, { add_special_tokens: false }).ids;
  }

  it('is the GenAI layout: no position_ids, packed QKV into GroupQueryAttention with do_rotary=1 and cos/sin caches', () => {
    const graph = file(id, 'onnx/model_q4.onnx');
    expect(graphInputs(graph).map((i) => i.name)).toEqual([
      'input_ids',
      'attention_mask',
      ...['0', '1'].flatMap((l) => [`past_key_values.${l}.key`, `past_key_values.${l}.value`]),
    ]);
    const nodes = graphNodes(graph);
    expect(nodes.some((n) => n.opType === 'RotaryEmbedding')).toBe(false);
    const gqa = nodes.filter((n) => n.opType === 'GroupQueryAttention');
    expect(gqa).toHaveLength(2);
    for (const n of gqa) {
      expect(n.ints).toMatchObject({ do_rotary: 1, rotary_interleaved: 0, num_heads: 2, kv_num_heads: 1 });
      // query = packed QKV, key and value left out; inputs 7 and 8 are cos_cache and sin_cache.
      expect([n.inputs[1], n.inputs[2], n.inputs[7], n.inputs[8]]).toEqual(['', '', 'cos_cache', 'sin_cache']);
    }
    expect(entry(id).onnx.decoder).toMatchObject({
      positionIds: false,
      cacheType: 'float32',
      headDim: 16,
      numKvHeads: 1,
      eosTokenIds: [151645, 151643],
    });
  });

  it('onnxruntime-node runs it as the float64 reference computes it: logits within 1e-3 at every cached step, the same greedy tokens', async () => {
    const ids = prompt();
    const reference = new QwenStandinReference(built(id));
    const greedy = reference.greedy(ids, 12, [151645, 151643]);
    expect(greedy.tokens).toHaveLength(12);
    // Far enough from ties that float32 rounding cannot change a choice.
    expect(greedy.minMargin).toBeGreaterThan(1e-2);
    expect((await referenceStandinGreedy(built(id), ids, 12)).tokens).toEqual(greedy.tokens);
    // The prompt in one pass, then one token at a time from the cache: positions come from seqlens_k.
    const rows = await referenceStandinStepLogits(built(id), ids, greedy.tokens);
    expect(rows).toHaveLength(13);
    let worst = 0;
    rows.forEach((row, step) => {
      const expected = reference.logits([...ids, ...greedy.tokens.slice(0, step)]);
      row.forEach((x, v) => (worst = Math.max(worst, Math.abs(x - (expected[v] ?? NaN)))));
    });
    expect(worst).toBeLessThan(1e-3);
  }, 120_000);

  it('the engine chats with it: no position_ids fed, greedy tokens equal the float64 reference', async () => {
    const ids = prompt();
    const expected = new QwenStandinReference(built(id)).greedy(ids, 10, [151645, 151643]).tokens;
    const loaded = await engine().load(entry(id));
    const result = (await loaded.run({
      kind: 'chat',
      model: id,
      messages,
      maxTokens: 10,
      sampling: { temperature: 0, topP: 1, seed: 0 },
    })) as Extract<JobResult, { kind: 'chat' }>;
    await loaded.unload();
    expect(result.usage).toEqual({ promptTokens: ids.length, completionTokens: 10 });
    expect(result.tokens).toEqual(expected);
  }, 60_000);
});

describe('loading checks the manifest against the files', () => {
  it('a manifest whose facts disagree with config.json is refused, naming the fact', async () => {
    const good = entry(STANDIN_IDS.decoderQ4);
    const bad = { ...good, onnx: { ...good.onnx, decoder: { ...good.onnx.decoder!, eosTokenIds: [151645] } } };
    await expect(engine().load(bad)).rejects.toThrow(/eosTokenIds is \[151645\], but the model's own files say \[151645,151643\]/);
  });
});
