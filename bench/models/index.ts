/**
 * `BENCH_ONLY=models npm run bench`: the real-shaped stand-ins (an all-MiniLM-L6-v2-shaped
 * encoder, fp32; a Qwen2.5-0.5B-shaped decoder, q4f16 and q4) through the onnx engine against
 * a raw session on the same runtime, in Node with onnxruntime-node on the CPU. The ratio
 * engine ÷ raw is the engine's own cost (tokenizing, feeds, pooling, the decode loop);
 * the browser's worker hop is measured by the `runtime` suite on the tiny models.
 */
import * as ortNode from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import { parseManifest, type OnnxModel } from '../../protocol/manifest.ts';
import { STANDIN_IDS, type BuiltModel } from '../../modelhost/models/index.ts';
import { buildMiniLmStandin, MINILM_L6_SHAPE } from '../../modelhost/models/standin-minilm.ts';
import { buildQwenStandin, QWEN25_05B_SHAPE } from '../../modelhost/models/standin-qwen.ts';
import { buildManifest } from '../../modelhost/server.ts';
import { testModels } from '../../modelhost/models/index.ts';
import { OnnxEngine } from '../../worker/engines/onnx/engine.ts';
import type { OrtModule } from '../../worker/engines/onnx/ort.ts';
import type { EngineContext } from '../../worker/engines/types.ts';

const iterations = Number(process.env['BENCH_ITERATIONS'] ?? 5);
/** The session options the engine uses on WASM (worker/engines/onnx/ort.ts), so both sides run the same way. */
const SESSION_OPTIONS = {
  graphOptimizationLevel: 'all',
  extra: { session: { 'intra_op.allow_spinning': '0', 'inter_op.allow_spinning': '0' } },
} as const;
const ort = {
  ...ortNode,
  InferenceSession: {
    create: (bytes: Uint8Array, options: object) => ortNode.InferenceSession.create(bytes, { ...options, executionProviders: ['cpu'] }),
  },
} as unknown as OrtModule;

function engineFor(model: BuiltModel<unknown>): OnnxEngine {
  const ctx: EngineContext = {
    store: {
      getFile: async (file) => {
        const bytes = model.files.get(file.name);
        if (bytes === undefined) throw new Error(`no ${file.name}`);
        return bytes;
      },
      has: async () => true,
      evict: async () => 0,
    },
    gpu: () => null,
    device: async () => null,
  };
  return new OnnxEngine(ctx, { loadOrt: async () => ort });
}

function entryOf(model: BuiltModel<unknown>): OnnxModel {
  const manifest = parseManifest(JSON.parse(JSON.stringify(buildManifest('http://bench.invalid', testModels(), () => [], [model]))));
  const entry = manifest.models.find((m) => m.id === model.id);
  if (entry?.engine !== 'onnx') throw new Error('no entry');
  return entry;
}

async function median(run: () => Promise<unknown>): Promise<number> {
  await run();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? NaN;
}

const json = (bytes: Uint8Array | undefined): object => JSON.parse(new TextDecoder().decode(bytes)) as object;
const i64 = (values: readonly number[], dims: number[]) => new ortNode.Tensor('int64', BigInt64Array.from(values.map(BigInt)), dims);

async function encoderBench(): Promise<void> {
  const t0 = performance.now();
  const model = buildMiniLmStandin({ id: STANDIN_IDS.encoderReal, name: 'bench', shape: MINILM_L6_SHAPE });
  console.log(
    `\nModels: ${STANDIN_IDS.encoderReal} (6 layers, hidden 384, vocab 30522, fp32) built in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const entry = entryOf(model);
  const loaded = await engineFor(model).load(entry);
  const tokenizer = new Tokenizer(json(model.files.get('tokenizer.json')), json(model.files.get('tokenizer_config.json')));
  const raw = await ortNode.InferenceSession.create(model.files.get('onnx/model.onnx') ?? new Uint8Array(), SESSION_OPTIONS);
  const sentence = (i: number) => `sentence ${i}: the quick brown fox jumps over the lazy dog while the models run in the browser`;
  console.log(`${'batch'.padEnd(8)} ${'raw session'.padStart(14)} ${'engine'.padStart(14)}  engine/raw`);
  for (const batch of [1, 16]) {
    const texts = Array.from({ length: batch }, (_, i) => sentence(i));
    const rawMs = await median(async () => {
      const encoded = texts.map((t) => tokenizer.encode(t).ids);
      const seq = Math.max(...encoded.map((e) => e.length));
      const ids = encoded.flatMap((e) => [...e, ...Array<number>(seq - e.length).fill(0)]);
      const mask = encoded.flatMap((e) => [...e.map(() => 1), ...Array<number>(seq - e.length).fill(0)]);
      const out = await raw.run({
        input_ids: i64(ids, [batch, seq]),
        attention_mask: i64(mask, [batch, seq]),
        token_type_ids: i64(
          ids.map(() => 0),
          [batch, seq],
        ),
      });
      return out['last_hidden_state']?.data;
    });
    const engineMs = await median(() => loaded.run({ kind: 'embed', model: entry.id, inputs: texts }));
    const rate = (ms: number) => `${((batch * 1000) / ms).toFixed(1)} sent/s`.padStart(14);
    console.log(`${String(batch).padEnd(8)} ${rate(rawMs)} ${rate(engineMs)}  ${(engineMs / rawMs).toFixed(3)}`);
  }
  await loaded.unload();
  await raw.release();
}

async function decoderBench(variant: 'q4f16' | 'q4'): Promise<void> {
  const t0 = performance.now();
  const model = buildQwenStandin({ id: STANDIN_IDS.decoderQ4f16Real, name: 'bench', shape: QWEN25_05B_SHAPE, variant });
  const bytes = model.files.get(`onnx/model_${variant}.onnx`) ?? new Uint8Array();
  console.log(
    `\nModels: Qwen2.5-0.5B-shaped ${variant} (24 layers, hidden 896, 14/2 heads, vocab 151936), ${(bytes.length / 1e6).toFixed(0)} MB, built in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const entry = entryOf(model);
  const loaded = await engineFor(model).load(entry);
  const spec = entry.onnx.decoder;
  if (spec === undefined) throw new Error('no decoder');
  const raw = await ortNode.InferenceSession.create(bytes, SESSION_OPTIONS);
  const prompt = Array.from({ length: 64 }, (_, i) => 1000 + i * 37);
  const steps = 16;
  const dims = [1, spec.numKvHeads, 0, spec.headDim];
  const empty =
    spec.cacheType === 'float16'
      ? new ortNode.Tensor('float16', new Uint16Array(0), dims)
      : new ortNode.Tensor('float32', new Float32Array(0), dims);
  /** One generation of 1 + `steps` tokens: the prefill step's time and the rest's. */
  const rawRun = async (): Promise<{ prefill: number; decode: number }> => {
    const past: Record<string, ortNode.Tensor> = {};
    for (let l = 0; l < spec.numLayers; l++) past[`past_key_values.${l}.key`] = past[`past_key_values.${l}.value`] = empty;
    let pending = prompt;
    let length = 0;
    const t0 = performance.now();
    let t1 = t0;
    for (let n = 0; n < 1 + steps; n++) {
      const out = await raw.run({
        input_ids: i64(pending, [1, pending.length]),
        attention_mask: i64(Array<number>(length + pending.length).fill(1), [1, length + pending.length]),
        position_ids: i64(
          pending.map((_, i) => length + i),
          [1, pending.length],
        ),
        ...past,
      });
      length += pending.length;
      for (let l = 0; l < spec.numLayers; l++) {
        past[`past_key_values.${l}.key`] = out[`present.${l}.key`] as ortNode.Tensor;
        past[`past_key_values.${l}.value`] = out[`present.${l}.value`] as ortNode.Tensor;
      }
      const logits = out['logits']?.data as ArrayLike<number>;
      const row = (pending.length - 1) * spec.vocabSize;
      let best = 0;
      for (let v = 1; v < spec.vocabSize; v++) if ((logits[row + v] ?? 0) > (logits[row + best] ?? 0)) best = v;
      pending = [best];
      if (n === 0) t1 = performance.now();
    }
    return { prefill: t1 - t0, decode: performance.now() - t1 };
  };
  const engineRun = async (): Promise<{ prefill: number; decode: number }> => {
    const t0 = performance.now();
    let t1 = t0;
    await loaded.run(
      { kind: 'generate', model: entry.id, prompt, maxTokens: 1 + steps, sampling: { temperature: 0, topP: 1, seed: 0 } },
      { onChunk: (c) => void (c.index === 0 && (t1 = performance.now())) },
    );
    return { prefill: t1 - t0, decode: performance.now() - t1 };
  };
  // Interleaved, so both sides see the same load.
  await rawRun();
  await engineRun();
  const samples = { raw: [] as { prefill: number; decode: number }[], engine: [] as { prefill: number; decode: number }[] };
  for (let i = 0; i < iterations; i++) {
    samples.raw.push(await rawRun());
    samples.engine.push(await engineRun());
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const rawPrefill = med(samples.raw.map((x) => x.prefill));
  const enginePrefill = med(samples.engine.map((x) => x.prefill));
  const rawDecode = med(samples.raw.map((x) => x.decode));
  const engineDecode = med(samples.engine.map((x) => x.decode));
  const tps = (tokens: number, ms: number) => `${((tokens * 1000) / ms).toFixed(1)} tok/s`.padStart(14);
  console.log(`${'phase'.padEnd(22)} ${'raw session'.padStart(14)} ${'engine'.padStart(14)}  engine/raw`);
  console.log(
    `${'prefill, 64 tokens'.padEnd(22)} ${tps(64, rawPrefill)} ${tps(64, enginePrefill)}  ${(enginePrefill / rawPrefill).toFixed(3)}`,
  );
  console.log(
    `${`decode, ${steps} tokens`.padEnd(22)} ${tps(steps, rawDecode)} ${tps(steps, engineDecode)}  ${(engineDecode / rawDecode).toFixed(3)}`,
  );
  await loaded.unload();
  await raw.release();
}

export async function runModelsBench(): Promise<void> {
  console.log(`\nReal-shaped stand-ins in Node, onnxruntime-node ${ortNode.env.versions.node ?? ''} on the CPU (median of ${iterations})`);
  if (process.env['BENCH_MODELS_PART'] !== 'decoder') await encoderBench();
  if (process.env['BENCH_MODELS_PART'] !== 'encoder')
    await decoderBench((process.env['BENCH_MODELS_VARIANT'] as 'q4' | 'q4f16' | undefined) ?? 'q4f16');
}
