/**
 * How close a greedy run came to a tie: one teacher-forced pass of the decoder graph on
 * onnxruntime-node over prompt + output gives the logits at every position, and the gap
 * between the best and the runner-up at each decided position is read off. Known answers
 * whose smallest gap is tiny are dropped, so an honest device whose rounding differs does
 * not fail a canary on a coin flip.
 */
import type { DecoderSpec, OnnxModel } from '../../protocol/manifest.ts';
import { OrtDecoder } from '../../worker/engines/onnx/decoder.ts';
import { createSession, externalDataFiles, type OrtSession } from '../../worker/engines/onnx/ort.ts';
import { nodeOrt } from './onnx-node.ts';

export class MarginProbe {
  readonly #session: OrtSession;
  readonly #spec: DecoderSpec;
  private constructor(session: OrtSession, spec: DecoderSpec) {
    this.#session = session;
    this.#spec = spec;
  }

  /**
   * A probe on `model`'s decoder graph, from its files checked against their pins
   * (`fetchModelFiles`); the graph's external data is handed over from them, never read from
   * the file system.
   */
  static async open(model: OnnxModel, spec: DecoderSpec, files: ReadonlyMap<string, Uint8Array>): Promise<MarginProbe> {
    const graph = files.get(model.onnx.model);
    if (graph === undefined) throw new Error(`${model.id} lists no file ${model.onnx.model}`);
    const session = await createSession(nodeOrt, {
      modelId: model.id,
      bytes: graph,
      backend: 'wasm',
      device: null,
      externalData: externalDataFiles(model.onnx.model, files),
    });
    return new MarginProbe(session, spec);
  }

  /**
   * The smallest best-minus-runner-up logit gap over the positions that chose `output`'s
   * tokens, and the end token when the run `stopped`.
   */
  async smallest(prompt: readonly number[], output: readonly number[], stopped: boolean): Promise<number> {
    const sequence = [...prompt, ...output];
    const vocab = this.#spec.vocabSize;
    const decoder = new OrtDecoder(nodeOrt, this.#session, this.#spec);
    const { logits, cache } = await decoder.all(sequence);
    decoder.release(cache);
    const last = stopped ? sequence.length - 1 : sequence.length - 2;
    let smallest = Number.POSITIVE_INFINITY;
    for (let at = prompt.length - 1; at <= last; at++) smallest = Math.min(smallest, gap(logits.subarray(at * vocab, (at + 1) * vocab)));
    return smallest;
  }

  async close(): Promise<void> {
    await this.#session.release();
  }
}

/** Best minus runner-up of one row of logits. */
export function gap(row: ArrayLike<number>): number {
  let best = Number.NEGATIVE_INFINITY;
  let second = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) {
    const x = row[i] ?? Number.NEGATIVE_INFINITY;
    if (x > best) [best, second] = [x, best];
    else if (x > second) second = x;
  }
  return best - second;
}
