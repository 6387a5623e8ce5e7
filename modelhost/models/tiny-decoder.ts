/**
 * `tiny-decoder`: a two-layer pre-LN causal decoder (hidden 32, 4 query heads sharing 2 KV
 * heads, learned absolute positions) in the layout ONNX exports of LLMs use: `input_ids`,
 * `attention_mask` [batch, past+seq], `position_ids`, `past_key_values.{i}.key|value` in and
 * `logits`, `present.{i}.key|value` out.
 *
 * Random weights give varied text. Two lookup tables are added to the logits: a bigram prior
 * (`Gather` by `input_ids`) that penalizes repeating the current token, and a per-position bias
 * (`Gather` by `position_ids`) that bans the special tokens and makes `</s>` win once the
 * sequence holds {@link EOS_AT} tokens, so generation length is predictable. Prompts longer
 * than that get `</s>` at once.
 */
import { decoderTokenizerConfig, decoderTokenizerJson, decoderVocab, EOS_TOKEN, DECODER_SPECIALS } from './decoder-tokenizer.ts';
import {
  type BuiltModel,
  type LayerNorm,
  type Linear,
  emitLayerNorm,
  emitLinear,
  emitSilu,
  estimateVram,
  jsonBytes,
  randomLayerNorm,
  randomLinear,
  withHubFacts,
} from './layers.ts';
import { GraphBuilder, int, ints } from './onnx-graph.ts';
import { Rng } from './prng.ts';

export const DECODER_DIM = 32;
export const DECODER_LAYERS = 2;
export const DECODER_HEADS = 4;
export const DECODER_KV_HEADS = 2;
export const DECODER_HEAD_DIM = 8;
export const DECODER_FF = 64;
export const DECODER_MAX_CONTEXT = 128;
/** The logits at position EOS_AT − 1 and later put `</s>` first: a sequence ends with at most EOS_AT tokens before it. */
export const EOS_AT = 64;
/** Size of the position logit bias; far above the random logits' spread. */
export const LOGIT_BIAS = 40;
/** Added to the scores of masked keys; exp(-1e4) is exactly 0 in float32 and float64. */
export const DECODER_MASK_VALUE = -1e4;

export interface DecoderLayer {
  ln1: LayerNorm;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  ln2: LayerNorm;
  ff1: Linear;
  ff2: Linear;
}

export interface TinyDecoderWeights {
  vocabSize: number;
  dim: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxContext: number;
  eosTokenId: number;
  /** [vocab, dim]. */
  tokEmb: Float32Array;
  /** [maxContext, dim]. */
  posEmb: Float32Array;
  layers: DecoderLayer[];
  lnF: LayerNorm;
  /** [dim, vocab]. */
  lmHead: Float32Array;
  /** [vocab, vocab]: row t is added to the logits at a position holding token t (a bigram prior that discourages repeats). */
  tokenLogitBias: Float32Array;
  /** [maxContext, vocab], added to the logits at each position. */
  posLogitBias: Float32Array;
}

/**
 * Weight scales, chosen so that greedy text varies (strong positions, a bigram prior that
 * penalizes repeating the current token) and logits spread widely (std ≈ 4), which makes
 * near-ties between the top two tokens rare (about 1 step in 1,000 within 1e-3).
 */
const SCALES = { seed: 0xdec0_de42, posStd: 1, lmStd: 4, bigramStd: 1.5, repeatPenalty: 8 };

function randomWeights(vocab: readonly string[]): TinyDecoderWeights {
  const sc = SCALES;
  const rng = new Rng(sc.seed);
  const d = DECODER_DIM;
  const v = vocab.length;
  const kvDim = DECODER_KV_HEADS * DECODER_HEAD_DIM;
  const layers: DecoderLayer[] = [];
  for (let i = 0; i < DECODER_LAYERS; i++) {
    layers.push({
      ln1: randomLayerNorm(rng, d),
      q: randomLinear(rng, d, d, 2),
      k: randomLinear(rng, d, kvDim, 2),
      v: randomLinear(rng, d, kvDim),
      o: randomLinear(rng, d, d),
      ln2: randomLayerNorm(rng, d),
      ff1: randomLinear(rng, d, DECODER_FF, 1.5),
      ff2: randomLinear(rng, DECODER_FF, d),
    });
  }
  const eosTokenId = vocab.indexOf(EOS_TOKEN);
  const specials = DECODER_SPECIALS.map((t) => vocab.indexOf(t));
  const posLogitBias = new Float32Array(DECODER_MAX_CONTEXT * v);
  for (let p = 0; p < DECODER_MAX_CONTEXT; p++) {
    for (const id of specials) posLogitBias[p * v + id] = -LOGIT_BIAS;
    if (p >= EOS_AT - 1) posLogitBias[p * v + eosTokenId] = LOGIT_BIAS;
  }
  return {
    vocabSize: v,
    dim: d,
    numHeads: DECODER_HEADS,
    numKvHeads: DECODER_KV_HEADS,
    headDim: DECODER_HEAD_DIM,
    maxContext: DECODER_MAX_CONTEXT,
    eosTokenId,
    tokEmb: rng.floats(v * d, 1),
    posEmb: rng.floats(DECODER_MAX_CONTEXT * d, sc.posStd),
    layers,
    lnF: randomLayerNorm(rng, d),
    lmHead: rng.floats(d * v, sc.lmStd / Math.sqrt(d)),
    tokenLogitBias: bigram(rng, v),
    posLogitBias,
  };
}

function bigram(rng: Rng, v: number): Float32Array {
  const table = rng.floats(v * v, SCALES.bigramStd);
  for (let t = 0; t < v; t++) table[t * v + t] = -SCALES.repeatPenalty;
  return table;
}

/**
 * The additive attention mask, [batch, 1, groups·seq, past+seq]: padding from `attention_mask`
 * plus causality between absolute positions (query s sits at past+s), tiled once per query
 * head of a KV group so it lines up with the grouped scores.
 */
function emitMask(g: GraphBuilder, ids: string, mask: string, groups: number): string {
  const toFloat = (t: string): string => g.node('Cast', [t], { to: int(1) });
  const scalarOf = (t: string): string => g.node('Squeeze', [t, g.shape([0])]);
  const seq = toFloat(g.node('Shape', [ids], { start: int(1), end: int(2) }));
  const total = toFloat(g.node('Shape', [mask], { start: int(1), end: int(2) }));
  const past = g.node('Sub', [total, seq]);
  const queryPos = g.node('Range', [scalarOf(past), scalarOf(total), g.scalar(1)]);
  const keyPos = g.node('Range', [g.scalar(0), scalarOf(total), g.scalar(1)]);
  const future = g.node('Greater', [g.node('Unsqueeze', [keyPos, g.shape([0])]), g.node('Unsqueeze', [queryPos, g.shape([1])])]);
  const causal = g.node('Mul', [g.node('Cast', [future], { to: int(1) }), g.scalar(DECODER_MASK_VALUE)]);
  const padding = g.node('Mul', [g.node('Sub', [g.scalar(1), toFloat(mask)]), g.scalar(DECODER_MASK_VALUE)]);
  const combined = g.node('Add', [g.node('Reshape', [padding, g.shape([0, 1, 1, -1])]), causal]);
  return g.node('Tile', [combined, g.shape([1, 1, groups, 1])]);
}

function emitLayer(g: GraphBuilder, w: TinyDecoderWeights, i: number, x: string, mask: string): string {
  const layer = w.layers[i];
  if (layer === undefined) throw new Error(`no layer ${i}`);
  const { numHeads, numKvHeads, headDim } = w;
  const p = `layers.${i}`;
  const h = emitLayerNorm(g, x, layer.ln1, `${p}.input_norm`);
  const heads = (t: string, n: number): string =>
    g.node('Transpose', [g.node('Reshape', [t, g.shape([0, 0, n, headDim])])], { perm: ints([0, 2, 1, 3]) });
  // [B, Hq, S, hd] → [B, Hkv, G·S, hd]: query head kv·G+g becomes rows g·S..g·S+S−1 of its KV group.
  const q = g.node('Reshape', [heads(emitLinear(g, h, layer.q, `${p}.attn.q_proj`), numHeads), g.shape([0, numKvHeads, -1, headDim])]);
  const k = heads(emitLinear(g, h, layer.k, `${p}.attn.k_proj`), numKvHeads);
  const v = heads(emitLinear(g, h, layer.v, `${p}.attn.v_proj`), numKvHeads);
  const presentK = g.node('Concat', [`past_key_values.${i}.key`, k], { axis: int(2) }, { outputs: [`present.${i}.key`] });
  const presentV = g.node('Concat', [`past_key_values.${i}.value`, v], { axis: int(2) }, { outputs: [`present.${i}.value`] });
  const kT = g.node('Transpose', [presentK], { perm: ints([0, 1, 3, 2]) });
  const scores = g.node('Mul', [g.node('MatMul', [q, kT]), g.scalar(Math.fround(1 / Math.sqrt(headDim)))]);
  const probs = g.node('Softmax', [g.node('Add', [scores, mask])], { axis: int(-1) });
  const ctx = g.node('Reshape', [g.node('MatMul', [probs, presentV]), g.shape([0, numHeads, -1, headDim])]);
  const merged = g.node('Reshape', [g.node('Transpose', [ctx], { perm: ints([0, 2, 1, 3]) }), g.shape([0, 0, w.dim])]);
  const x1 = g.node('Add', [x, emitLinear(g, merged, layer.o, `${p}.attn.o_proj`)]);
  const h2 = emitLayerNorm(g, x1, layer.ln2, `${p}.post_attention_norm`);
  const ff = emitLinear(g, emitSilu(g, emitLinear(g, h2, layer.ff1, `${p}.mlp.up_proj`)), layer.ff2, `${p}.mlp.down_proj`);
  return g.node('Add', [x1, ff]);
}

function buildGraph(w: TinyDecoderWeights): GraphBuilder {
  const g = new GraphBuilder('tiny-decoder');
  const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const mask = g.input('attention_mask', 'int64', ['batch_size', 'total_sequence_length']);
  const positions = g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  const kvDims = ['batch_size', w.numKvHeads, 'past_sequence_length', w.headDim];
  const presentDims = ['batch_size', w.numKvHeads, 'total_sequence_length', w.headDim];
  for (let i = 0; i < w.layers.length; i++) {
    g.input(`past_key_values.${i}.key`, 'float32', kvDims);
    g.input(`past_key_values.${i}.value`, 'float32', kvDims);
  }
  g.output('logits', 'float32', ['batch_size', 'sequence_length', w.vocabSize]);
  for (let i = 0; i < w.layers.length; i++) {
    g.output(`present.${i}.key`, 'float32', presentDims);
    g.output(`present.${i}.value`, 'float32', presentDims);
  }

  const tok = g.node('Gather', [g.f32('embed_tokens.weight', [w.vocabSize, w.dim], w.tokEmb), ids], { axis: int(0) });
  const pos = g.node('Gather', [g.f32('embed_positions.weight', [w.maxContext, w.dim], w.posEmb), positions], { axis: int(0) });
  const attnMask = emitMask(g, ids, mask, w.numHeads / w.numKvHeads);
  let x = g.node('Add', [tok, pos]);
  for (let i = 0; i < w.layers.length; i++) x = emitLayer(g, w, i, x, attnMask);
  const hidden = emitLayerNorm(g, x, w.lnF, 'norm');
  const raw = g.node('MatMul', [hidden, g.f32('lm_head.weight', [w.dim, w.vocabSize], w.lmHead)]);
  const posBias = g.node('Gather', [g.f32('position_logit_bias', [w.maxContext, w.vocabSize], w.posLogitBias), positions], {
    axis: int(0),
  });
  const tokBias = g.node('Gather', [g.f32('token_logit_bias', [w.vocabSize, w.vocabSize], w.tokenLogitBias), ids], { axis: int(0) });
  g.node('Add', [g.node('Add', [raw, tokBias]), posBias], {}, { outputs: ['logits'] });
  return g;
}

export function buildTinyDecoder(): BuiltModel<TinyDecoderWeights> {
  const vocab = decoderVocab();
  const weights = randomWeights(vocab);
  const g = buildGraph(weights);
  const model = g.encode([{ domain: '', version: 17 }], 'Spinneret test model: tiny causal decoder with random weights.');
  const files = new Map<string, Uint8Array>([
    ['onnx/model.onnx', model],
    ['tokenizer.json', jsonBytes(decoderTokenizerJson(vocab))],
    ['tokenizer_config.json', jsonBytes(decoderTokenizerConfig(DECODER_MAX_CONTEXT))],
    [
      'config.json',
      jsonBytes({
        architectures: ['SpinneretTinyDecoder'],
        model_type: 'spinneret-tiny-decoder',
        hidden_size: DECODER_DIM,
        num_attention_heads: DECODER_HEADS,
        num_key_value_heads: DECODER_KV_HEADS,
        num_hidden_layers: DECODER_LAYERS,
        intermediate_size: DECODER_FF,
        vocab_size: weights.vocabSize,
        max_position_embeddings: DECODER_MAX_CONTEXT,
        bos_token_id: vocab.indexOf('<s>'),
        eos_token_id: weights.eosTokenId,
        tie_word_embeddings: false,
      }),
    ],
    ['generation_config.json', jsonBytes({ bos_token_id: vocab.indexOf('<s>'), eos_token_id: weights.eosTokenId })],
  ]);
  const kvCacheBytes = 2 * DECODER_LAYERS * DECODER_KV_HEADS * DECODER_MAX_CONTEXT * DECODER_HEAD_DIM * 4;
  const entry = withHubFacts(
    {
      id: 'tiny-decoder',
      name: 'Tiny decoder (test)',
      description: `A two-layer test decoder with random weights: random-looking text that ends with </s> once the sequence holds ${EOS_AT} tokens.`,
      license: 'MIT',
      kinds: ['generate', 'chat'],
      engine: 'onnx',
      vramBytes: estimateVram(g.initializerBytes, kvCacheBytes + DECODER_MAX_CONTEXT * DECODER_MAX_CONTEXT * DECODER_HEADS * 4),
      maxBufferBytes: g.largestInitializerBytes,
      requiredFeatures: [],
      onnx: {
        model: 'onnx/model.onnx',
        tokenizer: 'tokenizer.json',
        tokenizerConfig: 'tokenizer_config.json',
        config: 'config.json',
        generationConfig: 'generation_config.json',
        backends: ['webgpu', 'wasm'],
      },
    },
    files,
  );
  return { id: 'tiny-decoder', files, weights, entry };
}
