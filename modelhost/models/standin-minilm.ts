/**
 * A stand-in shaped like the ONNX export of sentence-transformers/all-MiniLM-L6-v2, with
 * random weights: a BERT encoder (word + position + token-type embeddings, post-LN blocks,
 * erf GELU) taking `input_ids`, `attention_mask` and `token_type_ids` and giving
 * `last_hidden_state`, in the hub layout (`config.json`, `modules.json`,
 * `1_Pooling/config.json`, `sentence_bert_config.json`, `tokenizer.json`,
 * `tokenizer_config.json`, `onnx/model.onnx`). Never the real model: its vectors mean nothing.
 */
import { type BuiltModel, estimateVram, jsonBytes, withHubFacts } from './layers.ts';
import { GraphBuilder, float, int, ints } from './onnx-graph.ts';
import { Rng } from './prng.ts';
import { embedVocab, poolingConfig, SENTENCE_TRANSFORMERS_MODULES, tokenizerJson } from './tiny-embed.ts';

export interface BertShape {
  hidden: number;
  layers: number;
  heads: number;
  ff: number;
  /** Vocabulary rows; the WordPiece vocabulary is padded with `[unusedN]` up to it. */
  vocab: number;
  maxPositions: number;
  /** sentence-transformers' max_seq_length. */
  maxSeqLength: number;
}

/** all-MiniLM-L6-v2's shapes (its config.json and sentence_bert_config.json). */
export const MINILM_L6_SHAPE: BertShape = {
  hidden: 384,
  layers: 6,
  heads: 12,
  ff: 1536,
  vocab: 30522,
  maxPositions: 512,
  maxSeqLength: 256,
};
export const TINY_MINILM_SHAPE: BertShape = { hidden: 32, layers: 2, heads: 4, ff: 64, vocab: 0, maxPositions: 64, maxSeqLength: 64 };

const MASK_VALUE = -1e4;

function buildGraph(shape: BertShape, vocab: number, seed: number): GraphBuilder {
  const { hidden: d, layers, heads, ff, maxPositions } = shape;
  const headDim = d / heads;
  const rng = new Rng(seed);
  const g = new GraphBuilder('standin-minilm');
  const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const mask = g.input('attention_mask', 'int64', ['batch_size', 'sequence_length']);
  const types = g.input('token_type_ids', 'int64', ['batch_size', 'sequence_length']);
  g.output('last_hidden_state', 'float32', ['batch_size', 'sequence_length', d]);
  const ln = (x: string, name: string, output?: string): string => {
    const gamma = rng.floats(d, 0.1, 1);
    const beta = rng.floats(d, 0.05);
    return g.node(
      'LayerNormalization',
      [x, g.f32(`${name}.weight`, [d], gamma), g.f32(`${name}.bias`, [d], beta)],
      { axis: int(-1), epsilon: float(1e-12) },
      output === undefined ? {} : { outputs: [output] },
    );
  };
  const linear = (x: string, inDim: number, outDim: number, name: string, gain = 1): string =>
    g.node('Add', [
      g.node('MatMul', [x, g.f32(`${name}.weight`, [inDim, outDim], rng.floats(inDim * outDim, gain / Math.sqrt(inDim)))]),
      g.f32(`${name}.bias`, [outDim], rng.floats(outDim, 0.02)),
    ]);

  const word = g.node('Gather', [g.f32('embeddings.word_embeddings.weight', [vocab, d], rng.floats(vocab * d, 1)), ids], { axis: int(0) });
  const seqLen = g.node('Shape', [ids], { start: int(1), end: int(2) });
  const pos = g.node('Slice', [
    g.f32('embeddings.position_embeddings.weight', [maxPositions, d], rng.floats(maxPositions * d, 0.3)),
    g.shape([0]),
    seqLen,
    g.shape([0]),
  ]);
  const type = g.node('Gather', [g.f32('embeddings.token_type_embeddings.weight', [2, d], rng.floats(2 * d, 0.3)), types], {
    axis: int(0),
  });
  let x = ln(g.node('Add', [g.node('Add', [word, pos]), type]), 'embeddings.LayerNorm');
  const padding = g.node('Mul', [g.node('Sub', [g.scalar(1), g.node('Cast', [mask], { to: int(1) })]), g.scalar(MASK_VALUE)]);
  const keyMask = g.node('Reshape', [padding, g.shape([0, 1, 1, -1])]);
  const split = (t: string, perm: readonly number[]): string =>
    g.node('Transpose', [g.node('Reshape', [t, g.shape([0, 0, heads, headDim])])], { perm: ints(perm) });
  for (let i = 0; i < layers; i++) {
    const p = `encoder.layer.${i}`;
    const q = split(linear(x, d, d, `${p}.attention.self.query`, 1.5), [0, 2, 1, 3]);
    const k = split(linear(x, d, d, `${p}.attention.self.key`, 1.5), [0, 2, 3, 1]);
    const v = split(linear(x, d, d, `${p}.attention.self.value`), [0, 2, 1, 3]);
    const scores = g.node('Add', [g.node('Mul', [g.node('MatMul', [q, k]), g.scalar(Math.fround(1 / Math.sqrt(headDim)))]), keyMask]);
    const probs = g.node('Softmax', [scores], { axis: int(-1) });
    const ctx = g.node('Reshape', [g.node('Transpose', [g.node('MatMul', [probs, v])], { perm: ints([0, 2, 1, 3]) }), g.shape([0, 0, d])]);
    const x1 = ln(g.node('Add', [x, linear(ctx, d, d, `${p}.attention.output.dense`)]), `${p}.attention.output.LayerNorm`);
    const h = linear(x1, d, ff, `${p}.intermediate.dense`, 1.5);
    // GELU with erf, as BERT's "gelu" is exported.
    const gelu = g.node('Mul', [
      g.node('Mul', [h, g.scalar(0.5)]),
      g.node('Add', [g.node('Erf', [g.node('Div', [h, g.scalar(Math.fround(Math.SQRT2))])]), g.scalar(1)]),
    ]);
    const out = g.node('Add', [x1, linear(gelu, ff, d, `${p}.output.dense`)]);
    x = ln(out, `${p}.output.LayerNorm`, i === layers - 1 ? 'last_hidden_state' : undefined);
  }
  return g;
}

/** The WordPiece vocabulary padded to `size` with BERT's `[unusedN]` tokens. */
function paddedVocab(size: number): string[] {
  const vocab = embedVocab();
  for (let n = 0; vocab.length < size; n++) vocab.push(`[unused${n}]`);
  return vocab;
}

export interface StandinEncoderOptions {
  id: string;
  name: string;
  shape: BertShape;
  seed?: number;
}

export function buildMiniLmStandin(options: StandinEncoderOptions): BuiltModel<{ shape: BertShape }> {
  const { shape } = options;
  const vocab = paddedVocab(shape.vocab);
  const g = buildGraph(shape, vocab.length, options.seed ?? 0x3141_5926);
  const model = g.encode(
    [{ domain: '', version: 17 }],
    'Spinneret stand-in shaped like all-MiniLM-L6-v2; random weights, not a real model.',
  );
  const files = new Map<string, Uint8Array>([
    [
      'config.json',
      jsonBytes({
        architectures: ['BertModel'],
        model_type: 'bert',
        hidden_act: 'gelu',
        hidden_size: shape.hidden,
        intermediate_size: shape.ff,
        num_attention_heads: shape.heads,
        num_hidden_layers: shape.layers,
        max_position_embeddings: shape.maxPositions,
        type_vocab_size: 2,
        vocab_size: vocab.length,
        layer_norm_eps: 1e-12,
        pad_token_id: 0,
      }),
    ],
    ['modules.json', jsonBytes(SENTENCE_TRANSFORMERS_MODULES)],
    ['1_Pooling/config.json', jsonBytes(poolingConfig(shape.hidden, false))],
    ['sentence_bert_config.json', jsonBytes({ max_seq_length: shape.maxSeqLength, do_lower_case: false })],
    ['tokenizer.json', jsonBytes(tokenizerJson(vocab))],
    [
      'tokenizer_config.json',
      jsonBytes({
        tokenizer_class: 'BertTokenizer',
        do_lower_case: true,
        model_max_length: shape.maxPositions,
        pad_token: '[PAD]',
        unk_token: '[UNK]',
        cls_token: '[CLS]',
        sep_token: '[SEP]',
        mask_token: '[MASK]',
      }),
    ],
    ['onnx/model.onnx', model],
  ]);
  const entry = withHubFacts(
    {
      id: options.id,
      name: options.name,
      description: `A stand-in shaped like all-MiniLM-L6-v2 (${shape.layers} layers, hidden ${shape.hidden}) with random weights: its vectors mean nothing.`,
      license: 'MIT',
      kinds: ['embed'],
      engine: 'onnx',
      vramBytes: estimateVram(g.initializerBytes, 16 * shape.heads * shape.maxSeqLength * shape.maxSeqLength * 4),
      maxBufferBytes: g.largestInitializerBytes,
      requiredFeatures: [],
      hub: { repository: `spinneret-test/${options.id}`, revision: 'main', variant: 'fp32' },
      onnx: {
        model: 'onnx/model.onnx',
        tokenizer: 'tokenizer.json',
        tokenizerConfig: 'tokenizer_config.json',
        config: 'config.json',
        modules: 'modules.json',
        pooling: '1_Pooling/config.json',
        sentenceBertConfig: 'sentence_bert_config.json',
        backends: ['webgpu', 'wasm'],
      },
    },
    files,
  );
  return { id: options.id, files, weights: { shape }, entry };
}
