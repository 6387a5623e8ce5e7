/**
 * Known answers for ONNX `infer` models, computed by the coordinator itself: the worker's own
 * onnx engine on onnxruntime-node (CPU), loaded from the files the manifest lists, each
 * fetched from the model host and checked against its pinned SHA-256 before use. Inputs are
 * tensors in the shapes and types the manifest declares for the graph, their values drawn
 * with a CSPRNG; a free dimension (such as `batch`) is drawn in 1–{@link MAX_FREE_DIM}.
 * Results are cached per model build (its files' hashes) for the life of the process.
 *
 * Only float32 inputs are drawn: an integer input is usually an index (token ids, positions)
 * whose valid range the manifest does not state, so such models are left to replicas.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { InferRequest, Tensor } from '../../protocol/jobs.ts';
import type { ModelEntry, OnnxModel, TensorSpec } from '../../protocol/manifest.ts';
import type { KnownAnswer } from '../../coordinator/verification/canaries.ts';
import { fetchModelFiles, knownAnswersPerModel, loadOnnxNode } from './onnx-node.ts';

export interface OnnxInferAnswerOptions {
  manifestUrl: string;
  /** Known answers per model. */
  count: number;
  /** Models whose files add up to more are left to replicas. Default 64 MiB. */
  maxModelBytes?: number;
  /** Integers in [0, n): a CSPRNG by default. */
  randomInt?: (n: number) => number;
  /** Floats in [0, 1): a CSPRNG by default. */
  uniform?: () => number;
}

/** Largest value drawn for a free (symbolic) dimension: jobs stay small enough to compute at start. */
export const MAX_FREE_DIM = 8;
/** Most values one drawn input may hold: a free dimension is drawn lower when the fixed ones are large. */
const MAX_VALUES = 1 << 16;

const cache = new Map<string, Promise<KnownAnswer[]>>();

/** Floats in [0, 1) from 48 secure random bits. */
const secureUniform = (): number => randomBytes(6).readUIntBE(0, 6) / 2 ** 48;

/** Whether `model` is an ONNX model whose `infer` inputs can be drawn (declared, all float32). */
export function inferable(model: ModelEntry): model is OnnxModel {
  const inputs = model.engine === 'onnx' ? model.onnx.inputs : undefined;
  return (
    model.engine === 'onnx' &&
    model.kinds.includes('infer') &&
    inputs !== undefined &&
    inputs.length > 0 &&
    inputs.every((i) => i.type === 'float32')
  );
}

/** `count` known `infer` answers for each ONNX `infer` model of the manifest (those within `maxModelBytes`, float32 inputs). */
export async function onnxInferKnownAnswers(options: OnnxInferAnswerOptions): Promise<KnownAnswer[]> {
  return await knownAnswersPerModel(options, inferable, cache, `${options.count}`, (model) => computeAnswers(model, options));
}

/** One input tensor of `spec`, values uniform in [-1, 1) rounded to float32 (what the device feeds). */
export function drawTensor(spec: TensorSpec, freeDim: number, uniform: () => number): Tensor {
  const dims = spec.shape.map((d) => (typeof d === 'string' ? freeDim : d));
  const count = dims.reduce((a, b) => a * b, 1);
  const data = Array.from({ length: count }, () => Math.fround(uniform() * 2 - 1));
  return { type: spec.type, dims, data };
}

async function computeAnswers(model: OnnxModel, options: OnnxInferAnswerOptions): Promise<KnownAnswer[]> {
  const specs = model.onnx.inputs ?? [];
  const fixed = Math.max(1, ...specs.map((s) => s.shape.reduce<number>((n, d) => (typeof d === 'string' ? n : n * d), 1)));
  const maxFree = Math.max(1, Math.min(MAX_FREE_DIM, Math.floor(MAX_VALUES / fixed)));
  const draw = options.randomInt ?? ((n: number) => randomInt(n));
  const uniform = options.uniform ?? secureUniform;
  const loaded = await loadOnnxNode(model, await fetchModelFiles(model));
  const answers: KnownAnswer[] = [];
  try {
    for (let i = 0; i < options.count; i++) {
      // One draw per job for every free dimension: inputs sharing `batch` must agree on it.
      const free = 1 + draw(maxFree);
      const inputs: Record<string, Tensor> = {};
      for (const spec of specs) inputs[spec.name] = drawTensor(spec, free, uniform);
      const request: InferRequest = { kind: 'infer', model: model.id, inputs };
      const expected = await loaded.run(request);
      if (expected.kind !== 'infer') throw new Error(`${model.id} answered an infer job with ${expected.kind}`);
      answers.push({ request, expected });
    }
  } finally {
    await loaded.unload();
  }
  return answers;
}
