/**
 * Runs in the browser: the stand-ins shaped like published models, timed through a raw
 * onnxruntime-web session (bench/runtime/raw-worker.ts: `session.run` and the read-back only,
 * token ids made beforehand) and through Spinneret's whole worker path (comlink → runtime →
 * manifest → cache → engine: tokenizing, feeds, pooling, the decode loop), in the same page.
 * One session at a time: each case times the raw worker, ends it, then times Spinneret's
 * worker and ends it (two WASM copies of the 0.9 GB decoder crashed the renderer here), so
 * drift between the two phases is not cancelled out. Medians, milliseconds.
 */
import { wrap } from 'comlink';
import { Tokenizer } from '@huggingface/tokenizers';
import { findModel, parseManifest, type OnnxModel } from '../../protocol/manifest.ts';
import { startWorker } from '../../web/bridge.ts';
import type { RawApi } from '../runtime/raw-worker.ts';

export interface StandinCase {
  model: string;
  backend: 'webgpu' | 'wasm';
  /** Embedding batches to time (sentences per job). */
  batches?: number[];
  /** Greedy generation: prompt length (token ids) and tokens decoded after the first. */
  generate?: { promptTokens: number; decodeTokens: number };
}

export interface StandinsBenchConfig {
  manifestUrl: string;
  iterations: number;
  cases: StandinCase[];
}

export interface StandinMeasurement {
  model: string;
  backend: 'webgpu' | 'wasm';
  /** `embed, batch 16`, `prefill, 64 tokens`, `decode, 16 tokens`. */
  work: string;
  /** Sentences or tokens the timed work makes. */
  count: number;
  rawMs: number;
  /** Inside the worker, around the engine's run. */
  engineMs: number;
  /** At the page, around the comlink call: everything. */
  workerMs: number;
  /** What the manifest says the model needs on the GPU, bytes. */
  vramBytes: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
};

const sentence = (i: number): string => `sentence ${i}: the quick brown fox jumps over the lazy dog while the models run in the browser`;

async function json(url: string): Promise<object> {
  return (await (await fetch(url)).json()) as object;
}

interface Samples {
  raw: number[];
  engine: number[];
  worker: number[];
}

/** The timed work of one case, run on one side at a time. */
interface Side {
  embed(batch: number): Promise<{ raw?: number; engine?: number; worker?: number }>;
  generate(maxTokens: number): Promise<{ ms: number; engine?: number; tokens: number[] }>;
}

async function runCase(config: StandinsBenchConfig, c: StandinCase, entry: OnnxModel): Promise<StandinMeasurement[]> {
  const fileUrl = (name: string | undefined): string => entry.files.find((f) => f.name === name)?.url ?? '';
  const decoder = entry.onnx.decoder;
  const spec = entry.onnx.embedding;
  const prompt = Array.from({ length: c.generate?.promptTokens ?? 0 }, (_, i) => 1000 + i * 37);
  const inputs = new Map<number, { texts: string[]; ids: number[]; mask: number[]; seq: number }>();
  if (spec !== undefined && (c.batches ?? []).length > 0) {
    const tokenizer = new Tokenizer(await json(fileUrl(entry.onnx.tokenizer)), await json(fileUrl(entry.onnx.tokenizerConfig)));
    for (const batch of c.batches ?? []) {
      const texts = Array.from({ length: batch }, (_, i) => sentence(i));
      const encoded = texts.map((t) => tokenizer.encode(t).ids);
      const seq = Math.max(...encoded.map((e) => e.length));
      const ids = encoded.flatMap((e) => [...e, ...new Array<number>(seq - e.length).fill(0)]);
      const mask = encoded.flatMap((e) => [...e.map(() => 1), ...new Array<number>(seq - e.length).fill(0)]);
      inputs.set(batch, { texts, ids, mask, seq });
    }
  }
  const embedSamples = new Map<number, Samples>((c.batches ?? []).map((b) => [b, { raw: [], engine: [], worker: [] }]));
  const first: Samples = { raw: [], engine: [], worker: [] };
  const all: Samples = { raw: [], engine: [], worker: [] };
  const tokens: { raw?: number[]; worker?: number[] } = {};

  /** Warm-up once, then `iterations` timed runs of everything this case measures, on one side. */
  const measure = async (side: Side, key: 'raw' | 'worker'): Promise<void> => {
    for (let i = -1; i < config.iterations; i++) {
      for (const batch of c.batches ?? []) {
        const t = await side.embed(batch);
        const s = embedSamples.get(batch);
        if (i < 0 || s === undefined) continue;
        if (t.raw !== undefined) s.raw.push(t.raw);
        if (t.engine !== undefined) s.engine.push(t.engine);
        if (t.worker !== undefined) s.worker.push(t.worker);
      }
      if (c.generate !== undefined) {
        const one = await side.generate(1);
        const whole = await side.generate(1 + c.generate.decodeTokens);
        tokens[key] = whole.tokens;
        if (i < 0) continue;
        first[key].push(one.ms);
        all[key].push(whole.ms);
        if (one.engine !== undefined && whole.engine !== undefined) {
          first.engine.push(one.engine);
          all.engine.push(whole.engine);
        }
      }
    }
  };

  // The raw session first, then Spinneret's worker: one model's session at a time, since two
  // WASM copies of a 0.9 GB decoder (and their downloads) do not fit one renderer here.
  const rawWorker = new Worker(new URL('../runtime/raw-worker.ts', import.meta.url), { type: 'module' });
  const raw = wrap<RawApi>(rawWorker);
  try {
    const presents = Array.from({ length: decoder?.numLayers ?? 0 }, (_, l) => [`present.${l}.key`, `present.${l}.value`]).flat();
    await raw.open(c.model, fileUrl(entry.onnx.model), c.backend, presents);
    await measure(
      {
        embed: async (batch) => {
          const x = inputs.get(batch);
          if (x === undefined) throw new Error('no inputs');
          return { raw: await raw.embed(c.model, x.ids, x.mask, batch, x.seq, spec?.tokenTypeIds ?? false) };
        },
        generate: async (maxTokens) => {
          if (decoder === undefined) throw new Error(`${c.model} has no decoder section`);
          return raw.generate(c.model, prompt, maxTokens, decoder);
        },
      },
      'raw',
    );
  } finally {
    await raw.close().catch(() => undefined);
    rawWorker.terminate();
  }
  const bridge = startWorker();
  try {
    await bridge.api.init({ manifestUrl: config.manifestUrl, backend: c.backend });
    await measure(
      {
        embed: async (batch) => {
          const job = { kind: 'embed', model: c.model, inputs: inputs.get(batch)?.texts ?? [] };
          const t = performance.now();
          const engine = (await bridge.api.run(job)).ms;
          return { engine, worker: performance.now() - t };
        },
        generate: async (maxTokens) => {
          const job = { kind: 'generate', model: c.model, prompt, maxTokens, sampling: { temperature: 0 } };
          const t = performance.now();
          const out = await bridge.api.run(job);
          const ms = performance.now() - t;
          return { ms, engine: out.ms, tokens: out.result.kind === 'generate' ? out.result.tokens : [] };
        },
      },
      'worker',
    );
  } finally {
    bridge.terminate();
  }

  if (c.generate !== undefined && tokens.raw?.join() !== tokens.worker?.join()) {
    throw new Error(
      `${c.model}: the worker path and the raw loop generated different tokens (${tokens.worker?.join()} / ${tokens.raw?.join()})`,
    );
  }
  const row = (work: string, count: number, s: Samples): StandinMeasurement => ({
    model: c.model,
    backend: c.backend,
    work,
    count,
    rawMs: median(s.raw),
    engineMs: median(s.engine),
    workerMs: median(s.worker),
    vramBytes: entry.vramBytes,
  });
  const out: StandinMeasurement[] = [];
  for (const [batch, s] of embedSamples) out.push(row(`embed, batch ${batch}`, batch, s));
  if (c.generate !== undefined) {
    const decoded = Math.max(0, (tokens.worker?.length ?? 0) - 1);
    out.push(row(`prefill, ${c.generate.promptTokens} tokens`, c.generate.promptTokens, first));
    // Decode: median(prefill + decode) − median(prefill), on each side.
    const diff = (key: keyof Samples): number[] => [median(all[key]) - median(first[key])];
    out.push(row(`decode, ${decoded} tokens`, decoded, { raw: diff('raw'), engine: diff('engine'), worker: diff('worker') }));
  }
  for (const r of out) {
    console.info(
      `bench: ${r.model} ${r.backend} ${r.work}: raw ${r.rawMs.toFixed(1)} ms, engine ${r.engineMs.toFixed(1)} ms, worker path ${r.workerMs.toFixed(1)} ms, worker/raw ${(r.workerMs / r.rawMs).toFixed(3)}`,
    );
  }
  return out;
}

async function run(config: StandinsBenchConfig): Promise<StandinMeasurement[]> {
  const manifest = parseManifest(await json(config.manifestUrl), config.manifestUrl);
  const results: StandinMeasurement[] = [];
  for (const c of config.cases) {
    const entry = findModel(manifest, c.model);
    if (entry.engine !== 'onnx') throw new Error(`${c.model} is not an onnx model`);
    results.push(...(await runCase(config, c, entry)));
  }
  return results;
}

declare global {
  interface Window {
    standinsBench?: (config: StandinsBenchConfig) => Promise<StandinMeasurement[]>;
  }
}

window.standinsBench = run;
document.getElementById('state')?.replaceChildren('ready');
