/**
 * `tiny-embed`: a one-block BERT-style encoder (hidden 32, 4 heads) with a real WordPiece
 * `tokenizer.json`. Post-LN: LN(tok+pos) → self-attention (padding masked) → residual + LN →
 * GELU MLP → residual + LN → `last_hidden_state`. The host pools and normalizes.
 */
import { readFileSync } from 'node:fs';
import { GraphBuilder, int, ints } from './onnx-graph.ts';
import {
  type BuiltModel,
  type LayerNorm,
  type Linear,
  emitGeluTanh,
  emitLayerNorm,
  emitLinear,
  estimateVram,
  jsonBytes,
  randomLayerNorm,
  randomLinear,
  withHubFacts,
} from './layers.ts';
import { Rng } from './prng.ts';

export const EMBED_DIM = 32;
export const EMBED_HEADS = 4;
export const EMBED_FF = 64;
/** Rows of the position table: the longest input, special tokens included. */
export const EMBED_MAX_TOKENS = 64;
/** Added to the attention scores of padded keys; exp(-1e4) is exactly 0 in float32 and float64. */
export const MASK_VALUE = -1e4;

export interface TinyEmbedWeights {
  vocabSize: number;
  dim: number;
  heads: number;
  tokEmb: Float32Array;
  posEmb: Float32Array;
  ln0: LayerNorm;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  ln1: LayerNorm;
  ff1: Linear;
  ff2: Linear;
  ln2: LayerNorm;
}

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;
const PUNCTUATION = [...'.,!?;:\'"()-/&%$#@'];
const SUFFIXES = ['##s', '##es', '##ed', '##ing', '##ly', '##er', '##est', '##tion', '##ness', '##ment', '##able', '##ful'];
const LETTERS = [...'abcdefghijklmnopqrstuvwxyz'];
const DIGITS = [...'0123456789'];

/** Common English words, kept as data in tiny-embed-words.json. */
function readWords(): string[] {
  const data = JSON.parse(readFileSync(new URL('./tiny-embed-words.json', import.meta.url), 'utf8')) as { words?: unknown };
  if (!Array.isArray(data.words) || !data.words.every((w) => typeof w === 'string'))
    throw new Error('tiny-embed-words.json needs a "words" array of strings');
  return data.words;
}

/** WordPiece vocabulary: every lowercase word, number and listed symbol tokenizes without [UNK]. */
export function embedVocab(): string[] {
  const vocab: string[] = [];
  const add = (token: string): void => {
    if (!vocab.includes(token)) vocab.push(token);
  };
  [...SPECIALS, ...PUNCTUATION, ...LETTERS, ...DIGITS].forEach(add);
  [...LETTERS, ...DIGITS].forEach((c) => add(`##${c}`));
  SUFFIXES.forEach(add);
  readWords().forEach(add);
  return vocab;
}

export function tokenizerJson(vocab: readonly string[]): unknown {
  const id = (token: string): number => vocab.indexOf(token);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content) => ({
      id: id(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: Object.fromEntries(['[CLS]', '[SEP]'].map((t) => [t, { id: t, ids: [id(t)], tokens: [t] }])),
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
    },
  };
}

const TOKENIZER_CONFIG = {
  tokenizer_class: 'BertTokenizer',
  do_lower_case: true,
  model_max_length: EMBED_MAX_TOKENS,
  pad_token: '[PAD]',
  unk_token: '[UNK]',
  cls_token: '[CLS]',
  sep_token: '[SEP]',
  mask_token: '[MASK]',
  clean_up_tokenization_spaces: true,
};

function randomWeights(vocabSize: number): TinyEmbedWeights {
  const rng = new Rng(0x5eed_e3b0);
  const d = EMBED_DIM;
  return {
    vocabSize,
    dim: d,
    heads: EMBED_HEADS,
    tokEmb: rng.floats(vocabSize * d, 1),
    posEmb: rng.floats(EMBED_MAX_TOKENS * d, 0.3),
    ln0: randomLayerNorm(rng, d),
    q: randomLinear(rng, d, d, 1.5),
    k: randomLinear(rng, d, d, 1.5),
    v: randomLinear(rng, d, d),
    o: randomLinear(rng, d, d),
    ln1: randomLayerNorm(rng, d),
    ff1: randomLinear(rng, d, EMBED_FF, 1.5),
    ff2: randomLinear(rng, EMBED_FF, d),
    ln2: randomLayerNorm(rng, d),
  };
}

function buildGraph(w: TinyEmbedWeights): GraphBuilder {
  const g = new GraphBuilder('tiny-embed');
  const d = w.dim;
  const heads = w.heads;
  const headDim = d / heads;
  const ids = g.input('input_ids', 'int64', ['batch', 'sequence']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'sequence']);
  g.output('last_hidden_state', 'float32', ['batch', 'sequence', d]);

  const tok = g.node('Gather', [g.f32('embeddings.word', [w.vocabSize, d], w.tokEmb), ids], { axis: int(0) });
  // Position rows 0..S-1 by slicing the table with S itself: no Range, no position input.
  const seqLen = g.node('Shape', [ids], { start: int(1), end: int(2) });
  const pos = g.node('Slice', [g.f32('embeddings.position', [EMBED_MAX_TOKENS, d], w.posEmb), g.shape([0]), seqLen, g.shape([0])]);
  const x0 = emitLayerNorm(g, g.node('Add', [tok, pos]), w.ln0, 'embeddings.norm');

  const split = (t: string, perm: readonly number[]): string =>
    g.node('Transpose', [g.node('Reshape', [t, g.shape([0, 0, heads, headDim])])], { perm: ints(perm) });
  const q = split(emitLinear(g, x0, w.q, 'attention.query'), [0, 2, 1, 3]);
  const k = split(emitLinear(g, x0, w.k, 'attention.key'), [0, 2, 3, 1]);
  const v = split(emitLinear(g, x0, w.v, 'attention.value'), [0, 2, 1, 3]);
  const scores = g.node('Mul', [g.node('MatMul', [q, k]), g.scalar(Math.fround(1 / Math.sqrt(headDim)))]);
  const padding = g.node('Mul', [g.node('Sub', [g.scalar(1), g.node('Cast', [mask], { to: int(1) })]), g.scalar(MASK_VALUE)]);
  const masked = g.node('Add', [scores, g.node('Reshape', [padding, g.shape([0, 1, 1, -1])])]);
  const probs = g.node('Softmax', [masked], { axis: int(-1) });
  const ctx = g.node('Reshape', [g.node('Transpose', [g.node('MatMul', [probs, v])], { perm: ints([0, 2, 1, 3]) }), g.shape([0, 0, d])]);
  const x1 = emitLayerNorm(g, g.node('Add', [x0, emitLinear(g, ctx, w.o, 'attention.output')]), w.ln1, 'attention.norm');
  const ff = emitLinear(g, emitGeluTanh(g, emitLinear(g, x1, w.ff1, 'mlp.fc1')), w.ff2, 'mlp.fc2');
  emitLayerNorm(g, g.node('Add', [x1, ff]), w.ln2, 'mlp.norm', 'last_hidden_state');
  return g;
}

export function buildTinyEmbed(): BuiltModel<TinyEmbedWeights> {
  const vocab = embedVocab();
  const weights = randomWeights(vocab.length);
  const g = buildGraph(weights);
  const model = g.encode([{ domain: '', version: 17 }], 'Spinneret test model: tiny BERT-style encoder with random weights.');
  const files = new Map<string, Uint8Array>([
    ['onnx/model.onnx', model],
    ['tokenizer.json', jsonBytes(tokenizerJson(vocab))],
    ['tokenizer_config.json', jsonBytes(TOKENIZER_CONFIG)],
    // What a sentence-transformers publisher ships next to the weights: the facts the engine reads.
    [
      'config.json',
      jsonBytes({
        architectures: ['BertModel'],
        model_type: 'bert',
        hidden_size: EMBED_DIM,
        num_attention_heads: EMBED_HEADS,
        num_hidden_layers: 1,
        intermediate_size: EMBED_FF,
        vocab_size: weights.vocabSize,
        max_position_embeddings: EMBED_MAX_TOKENS,
        type_vocab_size: 1,
        hidden_act: 'gelu_new',
        layer_norm_eps: 1e-5,
        pad_token_id: 0,
      }),
    ],
    ['modules.json', jsonBytes(SENTENCE_TRANSFORMERS_MODULES)],
    ['1_Pooling/config.json', jsonBytes(poolingConfig(EMBED_DIM, false))],
  ]);
  const entry = withHubFacts(
    {
      id: 'tiny-embed',
      name: 'Tiny embed (test)',
      description: 'A 32-dimensional test encoder with random weights; its vectors mean nothing.',
      license: 'MIT',
      kinds: ['embed'],
      engine: 'onnx',
      vramBytes: estimateVram(g.initializerBytes, 4 * EMBED_MAX_TOKENS * EMBED_MAX_TOKENS * EMBED_HEADS * 4),
      maxBufferBytes: g.largestInitializerBytes,
      requiredFeatures: [],
      onnx: {
        model: 'onnx/model.onnx',
        tokenizer: 'tokenizer.json',
        tokenizerConfig: 'tokenizer_config.json',
        config: 'config.json',
        modules: 'modules.json',
        pooling: '1_Pooling/config.json',
        backends: ['webgpu', 'wasm'],
      },
    },
    files,
  );
  return { id: 'tiny-embed', files, weights, entry };
}

/** sentence-transformers' `modules.json` for Transformer → Pooling → Normalize. */
export const SENTENCE_TRANSFORMERS_MODULES = [
  { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
  { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
  { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
];

/** sentence-transformers' `1_Pooling/config.json`. */
export function poolingConfig(dim: number, cls: boolean): unknown {
  return {
    word_embedding_dimension: dim,
    pooling_mode_cls_token: cls,
    pooling_mode_mean_tokens: !cls,
    pooling_mode_max_tokens: false,
    pooling_mode_mean_sqrt_len_tokens: false,
  };
}
