/** The three test models, built from fixed seeds: every build gives the same bytes. */
import type { BuiltModel } from './layers.ts';
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
