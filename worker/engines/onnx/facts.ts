/**
 * What the engine runs a model with: the facts its own hub files and graph say, read at load
 * time with the same rules the manifest was derived with (protocol/hub-config.ts). A manifest
 * that disagrees with the files it lists is refused, since the coordinator and the requester
 * SDK count and check with the manifest's copy.
 */
import { ManifestError } from '../../../protocol/errors.ts';
import {
  decoderFacts,
  decoderSection,
  embeddingSection,
  encoderFacts,
  readHubFiles,
  type GraphInput,
} from '../../../protocol/hub-config.ts';
import type { DecoderSpec, EmbeddingSpec, OnnxModel } from '../../../protocol/manifest.ts';

export interface RunSpecs {
  embedding: EmbeddingSpec | undefined;
  decoder: DecoderSpec | undefined;
}

export function runSpecs(model: OnnxModel, files: ReadonlyMap<string, Uint8Array>, inputs: readonly GraphInput[]): RunSpecs {
  const { embedding, decoder } = model.onnx;
  const has = (name: string): boolean => inputs.some((i) => i.name === name);
  if (model.onnx.config === undefined) {
    // No config.json: the manifest is all there is; the graph still says what it takes.
    const past = inputs.find((i) => i.name.startsWith('past_key_values.'));
    return {
      embedding: embedding === undefined ? undefined : { ...embedding, tokenTypeIds: has('token_type_ids') },
      decoder:
        decoder === undefined
          ? undefined
          : { ...decoder, positionIds: has('position_ids'), cacheType: past?.type === 'float16' ? 'float16' : 'float32' },
    };
  }
  const hub = readHubFiles(model.onnx, (name) => files.get(name), inputs);
  const out: RunSpecs = { embedding: undefined, decoder: undefined };
  if (embedding !== undefined) {
    const derived = { ...embeddingSection(encoderFacts(hub), embedding.prefixes), output: embedding.output };
    agree(model.id, embedding, derived, ['dim', 'maxTokens', 'pooling', 'normalize', 'tokenTypeIds']);
    out.embedding = derived;
  }
  if (decoder !== undefined) {
    const derived = decoderSection(decoderFacts(hub), decoder.maxContext);
    agree(model.id, decoder, derived, [
      'numLayers',
      'numKvHeads',
      'headDim',
      'vocabSize',
      'eosTokenIds',
      'positionIds',
      'cacheType',
      'chatTemplate',
    ]);
    out.decoder = derived;
  }
  return out;
}

function agree<T extends object>(id: string, manifest: T, files: T, keys: readonly (keyof T)[]): void {
  for (const key of keys) {
    if (JSON.stringify(manifest[key]) !== JSON.stringify(files[key])) {
      throw new ManifestError(
        `The manifest entry of "${id}" says ${String(key)} is ${JSON.stringify(manifest[key])}, but the model's own files say ${JSON.stringify(files[key])}. Regenerate the entry from the files (npm run catalog -- pin).`,
      );
    }
  }
}
