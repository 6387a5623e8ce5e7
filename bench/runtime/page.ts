/**
 * Runs in the browser: times the same work through the raw onnxruntime-web baseline and
 * through Spinneret's whole worker path (comlink → runtime → manifest → cache → engine),
 * interleaved so that drift hits both alike. Reports medians, milliseconds.
 */
import { wrap } from 'comlink';
import { Tokenizer } from '@huggingface/tokenizers';
import { parseManifest, findModel } from '../../protocol/manifest.ts';
import { startWorker } from '../../web/bridge.ts';
import type { RawApi } from './raw-worker.ts';

export interface RuntimeBenchConfig {
  manifestUrl: string;
  /** Timed repetitions per measurement (after warm-up). */
  iterations: number;
  texts: string[];
  prompt: number[];
  maxTokens: number;
}

export interface Measurement {
  name: string;
  backend: 'webgpu' | 'wasm';
  rawMs: number;
  /** Inside the worker, around the engine's run (tokenize, session, pool, decode). */
  engineMs: number;
  /** At the page, around the comlink call: everything. */
  workerMs: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
};

async function run(config: RuntimeBenchConfig): Promise<Measurement[]> {
  const response = await fetch(config.manifestUrl);
  const manifest = parseManifest(await response.json(), config.manifestUrl);
  const embed = findModel(manifest, 'tiny-embed');
  const decoder = findModel(manifest, 'tiny-decoder');
  if (embed.engine !== 'onnx' || decoder.engine !== 'onnx' || decoder.onnx.decoder === undefined) throw new Error('unexpected manifest');
  const fileUrl = (m: typeof embed, name: string | undefined): string => m.files.find((f) => f.name === name)?.url ?? '';
  const tokenizerFile = fileUrl(embed, embed.onnx.tokenizer);
  const tokenizer = new Tokenizer((await (await fetch(tokenizerFile)).json()) as object, {});
  const encoded = config.texts.map((t) => tokenizer.encode(t).ids);
  const seq = Math.max(...encoded.map((e) => e.length));
  const ids = encoded.flatMap((e) => [...e, ...new Array<number>(seq - e.length).fill(0)]);
  const mask = encoded.flatMap((e) => [...e.map(() => 1), ...new Array<number>(seq - e.length).fill(0)]);
  const shape = decoder.onnx.decoder;
  const presents = Array.from({ length: shape.numLayers }, (_, l) => [`present.${l}.key`, `present.${l}.value`]).flat();

  const results: Measurement[] = [];
  for (const backend of ['webgpu', 'wasm'] as const) {
    const raw = wrap<RawApi>(new Worker(new URL('./raw-worker.ts', import.meta.url), { type: 'module' }));
    await raw.open('embed', fileUrl(embed, embed.onnx.model), backend);
    await raw.open('decoder', fileUrl(decoder, decoder.onnx.model), backend, presents);
    const bridge = startWorker();
    await bridge.api.init({ manifestUrl: config.manifestUrl, backend });
    const embedJob = { kind: 'embed', model: 'tiny-embed', inputs: config.texts };
    const genJob = {
      kind: 'generate',
      model: 'tiny-decoder',
      prompt: config.prompt,
      maxTokens: config.maxTokens,
      sampling: { temperature: 0 },
    };

    // Warm-up: downloads, session creation and shader compilation are not what is measured.
    for (let i = 0; i < 2; i++) {
      await raw.embed('embed', ids, mask, config.texts.length, seq);
      await bridge.api.run(embedJob);
      await raw.generate('decoder', config.prompt, config.maxTokens, shape);
      await bridge.api.run(genJob);
    }
    // The transport alone: a call that does no work, page → worker → page.
    const ping: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t = performance.now();
      await bridge.api.status();
      ping.push(performance.now() - t);
    }
    results.push({ name: 'comlink round trip (no work)', backend, rawMs: 0, engineMs: 0, workerMs: median(ping) });
    const e = { raw: [] as number[], engine: [] as number[], worker: [] as number[] };
    const g = { raw: [] as number[], engine: [] as number[], worker: [] as number[] };
    for (let i = 0; i < config.iterations; i++) {
      e.raw.push(await raw.embed('embed', ids, mask, config.texts.length, seq));
      let t = performance.now();
      e.engine.push((await bridge.api.run(embedJob)).ms);
      e.worker.push(performance.now() - t);
      const r = await raw.generate('decoder', config.prompt, config.maxTokens, shape);
      g.raw.push(r.ms);
      t = performance.now();
      const out = await bridge.api.run(genJob);
      g.worker.push(performance.now() - t);
      g.engine.push(out.ms);
      if (out.result.kind !== 'generate' || out.result.tokens.join() !== r.tokens.slice(0, out.result.tokens.length).join()) {
        throw new Error('the worker path and the raw loop generated different tokens');
      }
    }
    results.push({
      name: `embedding (tiny-embed, ${config.texts.length} texts)`,
      backend,
      rawMs: median(e.raw),
      engineMs: median(e.engine),
      workerMs: median(e.worker),
    });
    results.push({
      name: `greedy decode (tiny-decoder, ${config.maxTokens} tokens)`,
      backend,
      rawMs: median(g.raw),
      engineMs: median(g.engine),
      workerMs: median(g.worker),
    });
    bridge.terminate();
  }
  return results;
}

declare global {
  interface Window {
    runtimeBench?: (config: RuntimeBenchConfig) => Promise<Measurement[]>;
  }
}

window.runtimeBench = run;
document.getElementById('state')?.replaceChildren('ready');
