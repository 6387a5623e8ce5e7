/**
 * The baseline: onnxruntime-web called directly, with no Spinneret code in between — the
 * same ORT build, the same model bytes, the same tensors. Times are measured here, around
 * `session.run` and the read-back of its output only.
 */
/// <reference lib="webworker" />
import { expose } from 'comlink';
import * as ort from 'onnxruntime-web/webgpu';

interface DecoderShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** The graph's cache type (fp16 for fp16/q4f16 exports); float32 when not given. */
  cacheType?: 'float32' | 'float16';
  /** End-of-sequence ids: greedy stops after one, as the engine does. */
  eosTokenIds?: readonly number[];
}

/** IEEE 754 half-precision bits to a number (float16 logits read as Uint16Array). */
function half(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const sessions = new Map<string, ort.InferenceSession>();

function ids(values: readonly number[], dims: number[]): ort.Tensor {
  return new ort.Tensor(
    'int64',
    BigInt64Array.from(values, (v) => BigInt(v)),
    dims,
  );
}

const api = {
  /** Releases every session (the page then ends the worker). */
  async close(): Promise<void> {
    for (const session of sessions.values()) await session.release();
    sessions.clear();
  },

  async open(key: string, url: string, backend: 'webgpu' | 'wasm', gpuOutputs: string[] = []): Promise<void> {
    ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const options: ort.InferenceSession.SessionOptions = { executionProviders: [backend], graphOptimizationLevel: 'all' };
    // The same session settings as the engine, so that the ratio measures only the code around the session.
    if (backend === 'wasm') options.extra = { session: { 'intra_op.allow_spinning': '0', 'inter_op.allow_spinning': '0' } };
    if (backend === 'webgpu' && gpuOutputs.length > 0) {
      options.preferredOutputLocation = Object.fromEntries(gpuOutputs.map((n) => [n, 'gpu-buffer' as const]));
    }
    sessions.set(key, await ort.InferenceSession.create(bytes, options));
  },

  /** One embedding batch: ids and mask already made (and zero `token_type_ids` where the graph takes them); returns milliseconds. */
  async embed(key: string, inputIds: number[], mask: number[], batch: number, seq: number, tokenTypeIds = false): Promise<number> {
    const session = sessions.get(key);
    if (session === undefined) throw new Error(`no session ${key}`);
    const feeds: Record<string, ort.Tensor> = { input_ids: ids(inputIds, [batch, seq]), attention_mask: ids(mask, [batch, seq]) };
    if (tokenTypeIds) feeds['token_type_ids'] = ids(new Array<number>(inputIds.length).fill(0), [batch, seq]);
    const start = performance.now();
    const out = await session.run(feeds);
    await out['last_hidden_state']?.getData();
    return performance.now() - start;
  },

  /** Greedy decoding of up to `maxTokens` tokens (the end token not counted) with the cache on the GPU; returns milliseconds and the tokens. */
  async generate(key: string, prompt: number[], maxTokens: number, shape: DecoderShape): Promise<{ ms: number; tokens: number[] }> {
    const session = sessions.get(key);
    if (session === undefined) throw new Error(`no session ${key}`);
    const dims = [1, shape.numKvHeads, 0, shape.headDim];
    const empty =
      shape.cacheType === 'float16'
        ? new ort.Tensor('float16', new Uint16Array(0), dims)
        : new ort.Tensor('float32', new Float32Array(0), dims);
    const eos = new Set(shape.eosTokenIds ?? []);
    const start = performance.now();
    let past: ort.Tensor[] = [];
    let pending = prompt;
    let length = 0;
    const tokens: number[] = [];
    while (tokens.length < maxTokens) {
      const n = pending.length;
      const feeds: Record<string, ort.Tensor> = {
        input_ids: ids(pending, [1, n]),
        attention_mask: ids(new Array<number>(length + n).fill(1), [1, length + n]),
        position_ids: ids(
          Array.from({ length: n }, (_, i) => length + i),
          [1, n],
        ),
      };
      for (let l = 0; l < shape.numLayers; l++) {
        feeds[`past_key_values.${l}.key`] = past[2 * l] ?? empty;
        feeds[`past_key_values.${l}.value`] = past[2 * l + 1] ?? empty;
      }
      const out = await session.run(feeds);
      const data = await out['logits']?.getData();
      let best = 0;
      if (data instanceof Uint16Array) {
        const last = data.subarray((n - 1) * shape.vocabSize, n * shape.vocabSize);
        for (let i = 1; i < last.length; i++) if (half(last[i] ?? 0) > half(last[best] ?? 0)) best = i;
      } else {
        const last = (data as Float32Array).subarray((n - 1) * shape.vocabSize, n * shape.vocabSize);
        for (let i = 1; i < last.length; i++) if ((last[i] ?? 0) > (last[best] ?? 0)) best = i;
      }
      for (const t of past) t.dispose();
      past = [];
      for (let l = 0; l < shape.numLayers; l++) past.push(out[`present.${l}.key`] as ort.Tensor, out[`present.${l}.value`] as ort.Tensor);
      length += n;
      if (eos.has(best)) break;
      tokens.push(best);
      pending = [best];
    }
    for (const t of past) t.dispose();
    return { ms: performance.now() - start, tokens };
  },
};

export type RawApi = typeof api;
expose(api);
