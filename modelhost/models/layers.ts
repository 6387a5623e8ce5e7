/**
 * Weights and graph pieces shared by the test models. The float64 reference
 * (`../reference.ts`) reads the same weight objects; it never reads the ONNX bytes.
 */
import { decoderFacts, decoderSection, embeddingSection, encoderFacts, readHubFiles } from '../../protocol/hub-config.ts';
import type { OnnxModel } from '../../protocol/manifest.ts';
import { float, graphInputs, int, type GraphBuilder } from './onnx-graph.ts';
import type { Rng } from './prng.ts';

/** A manifest entry before the host fills in each file's URL, size and SHA-256. */
export type ModelEntryDraft = Omit<OnnxModel, 'files'>;

/** A draft without the sections the model's own files say: {@link withHubFacts} derives them. */
export type HubDraft = Omit<ModelEntryDraft, 'onnx'> & { onnx: Omit<ModelEntryDraft['onnx'], 'embedding' | 'decoder'> };

/**
 * Completes a draft with the `embedding` or `decoder` section read from the model's hub files
 * and its graph's declared inputs (protocol/hub-config.ts), so no fact is typed twice.
 */
export function withHubFacts(
  draft: HubDraft,
  files: ReadonlyMap<string, Uint8Array>,
  prefixes: Record<string, string> = {},
): ModelEntryDraft {
  const graph = files.get(draft.onnx.model);
  if (graph === undefined) throw new Error(`${draft.id}: no graph file ${draft.onnx.model}`);
  const hub = readHubFiles(draft.onnx, (name) => files.get(name), graphInputs(graph));
  if (draft.kinds.includes('embed')) return { ...draft, onnx: { ...draft.onnx, embedding: embeddingSection(encoderFacts(hub), prefixes) } };
  return { ...draft, onnx: { ...draft.onnx, decoder: decoderSection(decoderFacts(hub)) } };
}

/** One generated model: its files, its manifest entry and the weights behind the files. */
export interface BuiltModel<W> {
  id: string;
  /** File name inside the model's folder → bytes, in the order the manifest lists them. */
  files: Map<string, Uint8Array>;
  entry: ModelEntryDraft;
  weights: W;
}

/** y = x·W + b with W stored row-major as [inDim, outDim] (the ONNX MatMul layout). */
export interface Linear {
  inDim: number;
  outDim: number;
  w: Float32Array;
  b: Float32Array;
}

export interface LayerNorm {
  gamma: Float32Array;
  beta: Float32Array;
  epsilon: number;
}

export function randomLinear(rng: Rng, inDim: number, outDim: number, gain = 1, biasStd = 0.02): Linear {
  return { inDim, outDim, w: rng.floats(inDim * outDim, gain / Math.sqrt(inDim)), b: rng.floats(outDim, biasStd) };
}

export function randomLayerNorm(rng: Rng, dim: number): LayerNorm {
  return { gamma: rng.floats(dim, 0.1, 1), beta: rng.floats(dim, 0.05), epsilon: 1e-5 };
}

/** Emits MatMul + Add for `lin`, naming its initializers `<prefix>.weight` / `.bias`. */
export function emitLinear(g: GraphBuilder, x: string, lin: Linear, prefix: string): string {
  const w = g.f32(`${prefix}.weight`, [lin.inDim, lin.outDim], lin.w);
  const b = g.f32(`${prefix}.bias`, [lin.outDim], lin.b);
  return g.node('Add', [g.node('MatMul', [x, w]), b]);
}

/** LayerNormalization over the last axis (opset 17). */
export function emitLayerNorm(g: GraphBuilder, x: string, ln: LayerNorm, prefix: string, output?: string): string {
  const gamma = g.f32(`${prefix}.weight`, [ln.gamma.length], ln.gamma);
  const beta = g.f32(`${prefix}.bias`, [ln.beta.length], ln.beta);
  const attrs = { axis: int(-1), epsilon: float(ln.epsilon) };
  return g.node('LayerNormalization', [x, gamma, beta], attrs, output === undefined ? {} : { outputs: [output] });
}

/** GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). Built from basic ops: `Gelu` is opset 20. */
export function emitGeluTanh(g: GraphBuilder, x: string): string {
  const cube = g.node('Mul', [g.node('Mul', [x, x]), x]);
  const inner = g.node('Mul', [g.node('Add', [x, g.node('Mul', [cube, g.scalar(GELU_A)])]), g.scalar(GELU_C)]);
  const t = g.node('Tanh', [inner]);
  return g.node('Mul', [g.node('Mul', [x, g.scalar(0.5)]), g.node('Add', [t, g.scalar(1)])]);
}

/** SiLU: x·sigmoid(x). */
export function emitSilu(g: GraphBuilder, x: string): string {
  return g.node('Mul', [x, g.node('Sigmoid', [x])]);
}

/** GELU constants rounded to float32: the values both the graph and the reference use. */
export const GELU_C = Math.fround(Math.sqrt(2 / Math.PI));
export const GELU_A = Math.fround(0.044715);

/**
 * GPU memory estimate in bytes: weights twice (upload staging and the buffers ORT keeps)
 * plus `activationBytes`, rounded up to 256 KiB.
 */
export function estimateVram(weightBytes: number, activationBytes: number): number {
  const unit = 256 * 1024;
  return Math.ceil((2 * weightBytes + activationBytes) / unit) * unit;
}

export function jsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value, null, 2) + '\n');
}
