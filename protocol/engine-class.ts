/**
 * The engine class results are compared within, derived from the model's manifest entry and
 * never from what a contributor says: the engine, the model build and its quantization. An
 * ONNX model is one build (its graph's SHA-256) on every backend; a web-llm model is one
 * build per quantization, chosen by the adapter features the build requires. Honest
 * differences between devices of one class (WebGPU against WASM, vendor against vendor) are
 * left to the tolerant comparisons of protocol/compare.ts.
 */
import type { ModelEntry } from './manifest.ts';

/** What the class of a device depends on besides the manifest: the adapter features it reported. */
export interface DeviceFacts {
  readonly features: readonly string[];
}

/**
 * The class of `model` on a device with `facts`, or `model:<id>` when the manifest does not
 * list the model (a coordinator without a catalog): then every device serving the id shares one class.
 */
export function engineClassOf(modelId: string, entry: ModelEntry | undefined, facts: DeviceFacts): string {
  if (entry === undefined) return `model:${modelId}`;
  if (entry.engine === 'onnx') {
    const graph = entry.files.find((f) => f.name === entry.onnx.model);
    return `onnx:${entry.id}:${(graph?.sha256 ?? 'unpinned').slice(0, 16)}`;
  }
  // The worker loads a q4f16 build where the adapter has `shader-f16`, else a q4f32 one (worker/engines/webllm/select.ts).
  const quantization =
    facts.features.includes('shader-f16') && entry.webllm.builds.some((b) => b.quantization === 'q4f16_1') ? 'q4f16_1' : 'q4f32_1';
  return `webllm:${entry.id}:${quantization}`;
}
