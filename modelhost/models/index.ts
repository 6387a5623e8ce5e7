/** The three test models, built from fixed seeds: every build gives the same bytes. */
import type { BuiltModel } from './layers.ts';
import { buildMiniLmStandin, MINILM_L6_SHAPE, TINY_MINILM_SHAPE } from './standin-minilm.ts';
import { buildQwenStandin, QWEN25_05B_SHAPE, TINY_QWEN_GENAI_SHAPE, TINY_QWEN_SHAPE } from './standin-qwen.ts';
import { buildTinyDecoder, type TinyDecoderWeights } from './tiny-decoder.ts';
import { buildTinyEmbed, type TinyEmbedWeights } from './tiny-embed.ts';
import { buildTinyQ4, type TinyQ4Weights } from './tiny-q4.ts';

export type { BuiltModel, ModelEntryDraft } from './layers.ts';
export type { TinyDecoderWeights } from './tiny-decoder.ts';
export type { TinyEmbedWeights } from './tiny-embed.ts';
export type { TinyQ4Weights } from './tiny-q4.ts';

export interface TestModels {
  embed: BuiltModel<TinyEmbedWeights>;
  q4: BuiltModel<TinyQ4Weights>;
  decoder: BuiltModel<TinyDecoderWeights>;
}

/** Builds all three models afresh (about 50 ms). */
export function buildTestModels(): TestModels {
  return { embed: buildTinyEmbed(), q4: buildTinyQ4(), decoder: buildTinyDecoder() };
}

let cached: TestModels | undefined;

/** The models, built once per process. Treat the returned bytes and weights as read-only. */
export function testModels(): TestModels {
  cached ??= buildTestModels();
  return cached;
}

/** The models in manifest order. */
export function modelList(models: TestModels): BuiltModel<unknown>[] {
  return [models.embed, models.q4, models.decoder];
}

/** Ids of the tiny stand-ins (tests) and the real-shaped ones (bench). */
export const STANDIN_IDS = {
  encoder: 'standin-minilm-l6-tiny',
  decoderQ4: 'standin-qwen2.5-q4-tiny',
  decoderQ4f16: 'standin-qwen2.5-q4f16-tiny',
  decoderQ4RotaryInAttention: 'standin-qwen2.5-q4-genai-tiny',
  encoderReal: 'standin-minilm-l6',
  decoderQ4Real: 'standin-qwen2.5-0.5b-q4',
  decoderQ4f16Real: 'standin-qwen2.5-0.5b-q4f16',
} as const;

let standins: BuiltModel<unknown>[] | undefined;

/**
 * The tiny stand-ins of published layouts (about 2 s to build, once per process): an encoder
 * shaped like all-MiniLM-L6-v2, q4 / q4f16 decoders shaped like onnx-community Qwen exports, and
 * a q4 decoder laid out as ONNX Runtime GenAI exports it (rotary inside GroupQueryAttention).
 */
export function standinModels(): BuiltModel<unknown>[] {
  standins ??= [
    buildMiniLmStandin({ id: STANDIN_IDS.encoder, name: 'Stand-in: MiniLM-L6-shaped encoder, tiny (test)', shape: TINY_MINILM_SHAPE }),
    buildQwenStandin({
      id: STANDIN_IDS.decoderQ4,
      name: 'Stand-in: Qwen-shaped decoder, q4, tiny (test)',
      shape: TINY_QWEN_SHAPE,
      variant: 'q4',
    }),
    buildQwenStandin({
      id: STANDIN_IDS.decoderQ4f16,
      name: 'Stand-in: Qwen-shaped decoder, q4f16, tiny (test)',
      shape: TINY_QWEN_SHAPE,
      variant: 'q4f16',
    }),
    buildQwenStandin({
      id: STANDIN_IDS.decoderQ4RotaryInAttention,
      name: 'Stand-in: Qwen-shaped decoder, q4, rotary inside GroupQueryAttention (GenAI layout), tiny (test)',
      shape: TINY_QWEN_GENAI_SHAPE,
      variant: 'q4',
      rotary: 'in-attention',
    }),
  ];
  return standins;
}

/** The stand-ins at the real models' shapes (hundreds of MB; the bench builds them). */
export function realShapedStandins(): BuiltModel<unknown>[] {
  return [
    buildMiniLmStandin({
      id: STANDIN_IDS.encoderReal,
      name: 'Stand-in: all-MiniLM-L6-v2-shaped encoder (random weights)',
      shape: MINILM_L6_SHAPE,
    }),
    buildQwenStandin({
      id: STANDIN_IDS.decoderQ4Real,
      name: 'Stand-in: Qwen2.5-0.5B-shaped decoder, q4 (random weights)',
      shape: QWEN25_05B_SHAPE,
      variant: 'q4',
    }),
  ];
}
