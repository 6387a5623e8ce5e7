/**
 * References for the stand-ins, computed with onnxruntime-node on the CPU: raw sessions driven
 * here (own past/present loop, own pooling), independent of the engine's code.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import * as ort from 'onnxruntime-node';
import type { BuiltModel } from './models/index.ts';

const json = (bytes: Uint8Array | undefined): object => JSON.parse(new TextDecoder().decode(bytes)) as object;

function file(model: BuiltModel<unknown>, name: string): Uint8Array {
  const bytes = model.files.get(name);
  if (bytes === undefined) throw new Error(`no ${name} in ${model.id}`);
  return bytes;
}

export function standinTokenizer(model: BuiltModel<unknown>): Tokenizer {
  return new Tokenizer(json(file(model, 'tokenizer.json')), json(file(model, 'tokenizer_config.json')));
}

const i64 = (values: readonly number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), [1, values.length]);

function half(bits: number): number {
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  const value = exp === 0 ? frac * 2 ** -24 : exp === 31 ? Infinity : (1 + frac / 1024) * 2 ** (exp - 15);
  return bits & 0x8000 ? -value : value;
}

type DecoderSpec = NonNullable<BuiltModel<unknown>['entry']['onnx']['decoder']>;

/** An empty cache for each of the decoder's layers. */
function emptyPast(spec: DecoderSpec): Record<string, ort.Tensor> {
  const dims = [1, spec.numKvHeads, 0, spec.headDim];
  const empty =
    spec.cacheType === 'float16'
      ? new ort.Tensor('float16', new Uint16Array(0), dims)
      : new ort.Tensor('float32', new Float32Array(0), dims);
  const past: Record<string, ort.Tensor> = {};
  for (let l = 0; l < spec.numLayers; l++) past[`past_key_values.${l}.key`] = past[`past_key_values.${l}.value`] = empty;
  return past;
}

/**
 * A cached run on a raw decoder session: each call feeds `ids` after all those fed before (the
 * first call with an empty cache), keeps the cache the session returns, and gives the logits
 * after the last of `ids`, widened to numbers, with the logits' element type.
 */
function cachedRun(
  session: ort.InferenceSession,
  spec: DecoderSpec,
): (ids: readonly number[]) => Promise<{ type: ort.Tensor['type']; at: (token: number) => number }> {
  const past = emptyPast(spec);
  let length = 0;
  return async (ids) => {
    const result = await session.run({
      input_ids: i64(ids),
      attention_mask: i64(Array.from({ length: length + ids.length }, () => 1)),
      ...(spec.positionIds ? { position_ids: i64(ids.map((_, i) => length + i)) } : {}),
      ...past,
    });
    length += ids.length;
    for (let l = 0; l < spec.numLayers; l++) {
      past[`past_key_values.${l}.key`] = result[`present.${l}.key`] as ort.Tensor;
      past[`past_key_values.${l}.value`] = result[`present.${l}.value`] as ort.Tensor;
    }
    const logits = result['logits'] as ort.Tensor;
    const data = logits.data as Float32Array | Uint16Array;
    const row = (ids.length - 1) * spec.vocabSize;
    return { type: logits.type, at: (v) => (logits.type === 'float16' ? half(data[row + v] ?? 0) : (data[row + v] ?? 0)) };
  };
}

/** Mean-pooled, L2-normalized embeddings of each text, one unpadded run per text. */
export async function referenceStandinEmbed(model: BuiltModel<unknown>, texts: readonly string[]): Promise<number[][]> {
  const spec = model.entry.onnx.embedding;
  if (spec === undefined) throw new Error(`${model.id} is no encoder`);
  const tokenizer = standinTokenizer(model);
  const session = await ort.InferenceSession.create(file(model, model.entry.onnx.model));
  const out: number[][] = [];
  for (const text of texts) {
    const ids = tokenizer.encode(text).ids;
    const result = await session.run({ input_ids: i64(ids), attention_mask: i64(ids.map(() => 1)), token_type_ids: i64(ids.map(() => 0)) });
    const hidden = result['last_hidden_state']?.data as Float32Array;
    const dim = spec.dim;
    const mean = Array.from({ length: dim }, (_, d) => ids.reduce((sum, _id, s) => sum + (hidden[s * dim + d] ?? 0), 0) / ids.length);
    const norm = Math.hypot(...mean);
    out.push(mean.map((x) => x / norm));
  }
  await session.release();
  return out;
}

/** Greedy tokens and the smallest gap between the top two logits over the run. */
export async function referenceStandinGreedy(
  model: BuiltModel<unknown>,
  prompt: readonly number[],
  steps: number,
): Promise<{ tokens: number[]; minMargin: number }> {
  const entry = model.entry;
  const spec = entry.onnx.decoder;
  if (spec === undefined) throw new Error(`${model.id} is no decoder`);
  const session = await ort.InferenceSession.create(file(model, entry.onnx.model));
  const step = cachedRun(session, spec);
  const tokens: number[] = [];
  let minMargin = Infinity;
  let pending = [...prompt];
  while (tokens.length < steps) {
    const logits = await step(pending);
    if (logits.type !== spec.cacheType) throw new Error(`logits are ${logits.type}, the cache ${spec.cacheType}`);
    let best = 0;
    let first = -Infinity;
    let second = -Infinity;
    for (let v = 0; v < spec.vocabSize; v++) {
      const x = logits.at(v);
      if (x > first) [second, first, best] = [first, x, v];
      else if (x > second) second = x;
    }
    minMargin = Math.min(minMargin, first - second);
    if (spec.eosTokenIds.includes(best)) break;
    tokens.push(best);
    pending = [best];
  }
  await session.release();
  return { tokens, minMargin };
}

/**
 * How far a generation strays from greedy under the reference: one teacher-forced pass over
 * prompt + tokens, and at each generated position the gap between the reference's best logit
 * and the logit of the token actually chosen (0 where they agree). fp16 runtimes round
 * differently, so a cross-runtime check bounds this gap rather than asking for equal tokens.
 */
export async function referenceStandinGap(
  model: BuiltModel<unknown>,
  prompt: readonly number[],
  tokens: readonly number[],
): Promise<number> {
  const entry = model.entry;
  const spec = entry.onnx.decoder;
  if (spec === undefined) throw new Error(`${model.id} is no decoder`);
  const session = await ort.InferenceSession.create(file(model, entry.onnx.model));
  const feeds = emptyPast(spec);
  const sequence = [...prompt, ...tokens];
  const result = await session.run({
    ...feeds,
    input_ids: i64(sequence),
    attention_mask: i64(sequence.map(() => 1)),
    ...(spec.positionIds ? { position_ids: i64(sequence.map((_, i) => i)) } : {}),
  });
  const logits = result['logits'] as ort.Tensor;
  const data = logits.data as Float32Array | Uint16Array;
  const at = (i: number): number => (logits.type === 'float16' ? half(data[i] ?? 0) : (data[i] ?? 0));
  let worst = 0;
  tokens.forEach((token, i) => {
    const row = (prompt.length - 1 + i) * spec.vocabSize;
    let best = -Infinity;
    for (let v = 0; v < spec.vocabSize; v++) best = Math.max(best, at(row + v));
    worst = Math.max(worst, best - at(row + token));
  });
  await session.release();
  return worst;
}

/**
 * The logits (widened to numbers) a raw session gives at each step of a cached run: the
 * prompt in one pass, then each of `tokens` fed alone with the cache, so both the prompt and
 * the one-token path of the graph are read. Row i is the distribution after prompt +
 * tokens[0..i).
 */
export async function referenceStandinStepLogits(
  model: BuiltModel<unknown>,
  prompt: readonly number[],
  tokens: readonly number[],
): Promise<Float64Array[]> {
  const spec = model.entry.onnx.decoder;
  if (spec === undefined) throw new Error(`${model.id} is no decoder`);
  const session = await ort.InferenceSession.create(file(model, model.entry.onnx.model));
  const step = cachedRun(session, spec);
  const rows: Float64Array[] = [];
  let pending = [...prompt];
  for (let i = 0; i <= tokens.length; i++) {
    const logits = await step(pending);
    rows.push(Float64Array.from({ length: spec.vocabSize }, (_, v) => logits.at(v)));
    const next = tokens[i];
    if (next === undefined) break;
    pending = [next];
  }
  await session.release();
  return rows;
}
