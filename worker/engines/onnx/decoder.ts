/** A decoder-with-past ONNX session as a {@link DecoderStep}: the standard LLM export layout. */
import type { DecoderSpec } from '../../../protocol/manifest.ts';
import type { DecoderStep } from './generate.ts';
import { emptyTensor, int64Tensor, readFloat32, type OrtModule, type OrtSession, type OrtTensor } from './ort.ts';

/** `present.{i}.key` / `present.{i}.value` of the last step, by layer. */
export type KvCache = OrtTensor[];

/** Output names kept on the GPU between steps. */
export function presentNames(spec: DecoderSpec): string[] {
  const names: string[] = [];
  for (let i = 0; i < spec.numLayers; i++) names.push(`present.${i}.key`, `present.${i}.value`);
  return names;
}

export class OrtDecoder implements DecoderStep<KvCache> {
  readonly #ort: OrtModule;
  readonly #session: OrtSession;
  readonly #spec: DecoderSpec;
  readonly #empty: OrtTensor;

  constructor(ort: OrtModule, session: OrtSession, spec: DecoderSpec) {
    this.#ort = ort;
    this.#session = session;
    this.#spec = spec;
    // The first step has no past: a zero-length sequence axis, in the type the graph declares
    // (fp16 and q4f16 exports keep fp16 caches; a float32 empty past would be refused).
    this.#empty = emptyTensor(ort, spec.cacheType, [1, spec.numKvHeads, 0, spec.headDim]);
  }

  async step(tokens: readonly number[], pastLength: number, cache: KvCache | null): Promise<{ logits: Float32Array; cache: KvCache }> {
    const vocab = this.#spec.vocabSize;
    // Only the last position's logits are read (and widened, for fp16 exports).
    const { all, cache: next } = await this.#run(tokens, pastLength, cache, (tokens.length - 1) * vocab);
    return { logits: all, cache: next };
  }

  async #run(
    tokens: readonly number[],
    pastLength: number,
    cache: KvCache | null,
    from = 0,
  ): Promise<{ all: Float32Array; cache: KvCache }> {
    const ort = this.#ort;
    const n = tokens.length;
    const feeds: Record<string, OrtTensor> = {
      input_ids: int64Tensor(ort, tokens, [1, n]),
      attention_mask: int64Tensor(ort, new Array<number>(pastLength + n).fill(1), [1, pastLength + n]),
    };
    if (this.#spec.positionIds) {
      feeds['position_ids'] = int64Tensor(
        ort,
        Array.from({ length: n }, (_, i) => pastLength + i),
        [1, n],
      );
    }
    for (let layer = 0; layer < this.#spec.numLayers; layer++) {
      feeds[`past_key_values.${layer}.key`] = cache?.[2 * layer] ?? this.#empty;
      feeds[`past_key_values.${layer}.value`] = cache?.[2 * layer + 1] ?? this.#empty;
    }
    const out = await this.#session.run(feeds);
    const logitsTensor = out['logits'];
    if (logitsTensor === undefined) throw new TypeError('the decoder has no "logits" output');
    const all = await readFloat32(logitsTensor, from);
    logitsTensor.dispose();
    const next: KvCache = [];
    for (const name of presentNames(this.#spec)) {
      const tensor = out[name];
      if (tensor === undefined) throw new TypeError(`the decoder has no "${name}" output`);
      next.push(tensor);
    }
    return { all, cache: next };
  }

  /** One pass over `tokens` with no past: the logits of every position, `[tokens.length × vocab]`. */
  async all(tokens: readonly number[]): Promise<{ logits: Float32Array; cache: KvCache }> {
    const { all, cache } = await this.#run(tokens, 0, null);
    return { logits: all, cache };
  }

  release(cache: KvCache): void {
    for (const tensor of cache) tensor.dispose();
  }
}
