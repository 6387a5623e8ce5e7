/**
 * Each test model run by onnxruntime-web in Node (its `node` export: the WASM backend) against
 * the float64 reference, which never reads the ONNX bytes.
 */
import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { testModels } from './models/index.ts';
import {
  DECODER_TEST_PROMPTS,
  decoderTokenizer,
  dequantizeQ4,
  embedTokenizer,
  referenceChatPrompt,
  referenceDecoderForward,
  referenceEmbed,
  referenceGreedy,
  referenceQ4,
} from './reference.ts';

const models = testModels();

function session(bytes: Uint8Array | undefined): Promise<ort.InferenceSession> {
  if (bytes === undefined) throw new Error('missing model file');
  return ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
}

const int64 = (values: readonly number[], dims: readonly number[]): ort.Tensor =>
  new ort.Tensor(
    'int64',
    BigInt64Array.from(values, (v) => BigInt(v)),
    dims,
  );

function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

function rows(data: Float32Array, width: number): number[][] {
  return Array.from({ length: data.length / width }, (_, i) => Array.from(data.subarray(i * width, (i + 1) * width)));
}

describe('tiny-embed under onnxruntime-web matches the float64 reference', () => {
  it('pooled, normalized embeddings of a padded batch agree within 1e-4', async () => {
    const texts = ['Hello, world!', 'The quick brown fox jumps over the lazy dog.', 'a', 'Numbers like 42 and 7 are fine too.'];
    const tokenizer = embedTokenizer();
    const encoded = texts.map((t) => tokenizer.encode(t));
    const seq = Math.max(...encoded.map((e) => e.ids.length));
    const pad = (values: number[]): number[] => [...values, ...new Array<number>(seq - values.length).fill(0)];
    const s = await session(models.embed.files.get('onnx/model.onnx'));
    const out = await s.run({
      input_ids: int64(
        encoded.flatMap((e) => pad(e.ids)),
        [texts.length, seq],
      ),
      attention_mask: int64(
        encoded.flatMap((e) => pad(e.attention_mask)),
        [texts.length, seq],
      ),
    });
    const hidden = out['last_hidden_state']!;
    const dim = models.embed.entry.onnx.embedding!.dim;
    expect(hidden.dims).toEqual([texts.length, seq, dim]);
    const tokens = rows(hidden.data as Float32Array, dim);
    const ortEmbeddings = encoded.map((e, b) => {
      const n = e.ids.length;
      const mean = new Array<number>(dim).fill(0);
      for (let t = 0; t < n; t++) tokens[b * seq + t]!.forEach((v, i) => (mean[i]! += v / n));
      const norm = Math.hypot(...mean);
      return mean.map((v) => v / norm);
    });
    const reference = referenceEmbed(texts);
    const diff = Math.max(...reference.map((r, i) => maxAbsDiff(r, ortEmbeddings[i]!)));
    expect(diff).toBeLessThan(1e-4);
    // Different texts give clearly different vectors (the check above is not vacuous).
    expect(maxAbsDiff(reference[0]!, reference[1]!)).toBeGreaterThan(0.1);
  });

  it('refuses texts longer than maxTokens', () => {
    expect(() => referenceEmbed(['word '.repeat(100)])).toThrow(RangeError);
  });
});

describe('tiny-q4 under onnxruntime-web matches dequantize + matmul', () => {
  it('agrees within 1e-4 for a batch of 3', async () => {
    const x = Array.from({ length: 3 }, (_, b) => Array.from({ length: 64 }, (_, k) => Math.sin(0.37 * k + b) * (1 + b)));
    const s = await session(models.q4.files.get('onnx/model_q4.onnx'));
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from(x.flat()), [3, 64]) });
    const y = out['y']!;
    expect(y.dims).toEqual([3, 32]);
    const got = rows(y.data as Float32Array, 32);
    const want = referenceQ4(x);
    expect(Math.max(...want.map((r, i) => maxAbsDiff(r, got[i]!)))).toBeLessThan(1e-4);
    // The weights use all 16 levels and both blocks' zero points: a wrong nibble order would show.
    expect(new Set(dequantizeQ4().flatMap((r) => Array.from(r))).size).toBeGreaterThan(200);
    expect(maxAbsDiff(want[0]!, Array.from(models.q4.weights.bias))).toBeGreaterThan(0.1);
  });
});

interface Step {
  logits: number[][];
  present: ort.Tensor[];
}

describe('tiny-decoder under onnxruntime-web matches the cache-free reference', () => {
  const spec = models.decoder.entry.onnx.decoder!;
  const eos = spec.eosTokenIds;
  const sessionPromise = session(models.decoder.files.get('onnx/model.onnx'));

  /** One call with batch 1: `tokens` at positions past.., after `past` (or zero-length tensors). */
  async function step(tokens: readonly number[], pastLength: number, past: ort.Tensor[] | null): Promise<Step> {
    const s = await sessionPromise;
    const n = tokens.length;
    const empty = new ort.Tensor('float32', new Float32Array(0), [1, spec.numKvHeads, 0, spec.headDim]);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64(tokens, [1, n]),
      attention_mask: int64(new Array<number>(pastLength + n).fill(1), [1, pastLength + n]),
      position_ids: int64(
        Array.from({ length: n }, (_, i) => pastLength + i),
        [1, n],
      ),
    };
    for (let i = 0; i < spec.numLayers; i++) {
      feeds[`past_key_values.${i}.key`] = past?.[2 * i] ?? empty;
      feeds[`past_key_values.${i}.value`] = past?.[2 * i + 1] ?? empty;
    }
    const out = await s.run(feeds);
    const present = Array.from({ length: spec.numLayers }, (_, i) => [out[`present.${i}.key`]!, out[`present.${i}.value`]!]).flat();
    for (const t of present) expect(t.dims).toEqual([1, spec.numKvHeads, pastLength + n, spec.headDim]);
    return { logits: rows(out['logits']!.data as Float32Array, spec.vocabSize), present };
  }

  it('prompt logits (zero-length past) agree within 1e-3 at every position', async () => {
    const ids = decoderTokenizer().encode(referenceChatPrompt([{ role: 'user', content: 'Hello, how are you?' }])).ids;
    const { logits } = await step(ids, 0, null);
    const reference = referenceDecoderForward(ids);
    expect(Math.max(...reference.map((r, i) => maxAbsDiff(r, logits[i]!)))).toBeLessThan(1e-3);
  });

  it('greedy decoding with a real past/present loop gives exactly the reference tokens', async () => {
    const tokenizer = decoderTokenizer();
    for (const prompt of DECODER_TEST_PROMPTS.slice(0, 3)) {
      const ids = tokenizer.encode(prompt).ids;
      const want = referenceGreedy(ids, 100, eos);
      expect(want.minMargin, `${prompt}: the reference comes close to a tie`).toBeGreaterThan(1e-2);
      expect(want.finishReason).toBe('stop');
      expect(want.tokens.length).toBeGreaterThanOrEqual(16);
      expect(new Set(want.tokens).size).toBeGreaterThan(8);

      const got: number[] = [];
      const stepLogits: number[][] = [];
      let out = await step(ids, 0, null);
      for (;;) {
        const logits = out.logits.at(-1)!;
        stepLogits.push(logits);
        const next = logits.indexOf(Math.max(...logits));
        if (eos.includes(next) || got.length >= 100) break;
        got.push(next);
        out = await step([next], ids.length + got.length - 1, out.present);
      }
      expect(got, prompt).toEqual(want.tokens);
      // A causal forward over the final sequence holds every step's logits (row p predicts p + 1).
      const full = referenceDecoderForward([...ids, ...got]);
      const diff = Math.max(...stepLogits.map((l, j) => maxAbsDiff(l, full[ids.length - 1 + j]!)));
      expect(diff).toBeLessThan(1e-3);
    }
  });

  it('masks left padding in a batch: padded rows match their unpadded reference', async () => {
    const s = await sessionPromise;
    const long = [10, 20, 30, 40, 50];
    const short = [60, 70, 80];
    const padded = [0, 0, ...short];
    const empty = new ort.Tensor('float32', new Float32Array(0), [2, spec.numKvHeads, 0, spec.headDim]);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64([...long, ...padded], [2, 5]),
      attention_mask: int64([1, 1, 1, 1, 1, 0, 0, 1, 1, 1], [2, 5]),
      position_ids: int64([0, 1, 2, 3, 4, 0, 0, 0, 1, 2], [2, 5]),
    };
    for (let i = 0; i < spec.numLayers; i++) feeds[`past_key_values.${i}.key`] = feeds[`past_key_values.${i}.value`] = empty;
    const logits = rows((await s.run(feeds))['logits']!.data as Float32Array, spec.vocabSize);
    const refLong = referenceDecoderForward(long);
    const refShort = referenceDecoderForward(short);
    expect(Math.max(...refLong.map((r, i) => maxAbsDiff(r, logits[i]!)))).toBeLessThan(1e-3);
    expect(Math.max(...refShort.map((r, i) => maxAbsDiff(r, logits[7 + i]!)))).toBeLessThan(1e-3);
  });

  it('every listed test prompt stays clear of ties and ends with eos after at least 16 varied tokens', () => {
    const tokenizer = decoderTokenizer();
    for (const prompt of DECODER_TEST_PROMPTS) {
      const result = referenceGreedy(tokenizer.encode(prompt).ids, 200, eos);
      expect(result.minMargin, prompt).toBeGreaterThan(1e-2);
      expect(result.finishReason, prompt).toBe('stop');
      expect(result.tokens.length, prompt).toBeGreaterThanOrEqual(16);
      expect(new Set(result.tokens).size, prompt).toBeGreaterThan(8);
    }
  });
});
