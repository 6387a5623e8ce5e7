/**
 * What the catalog generates, against the local model host (no hub can be reached here): the
 * manifest entries made from a pinned mirror equal the entries the model host builds for the
 * same stand-ins from the builder's own figures, a host serving that mirror lists them, and the
 * onnx engine loads and runs one; the price entries are the catalog's cited prices.
 */
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError } from '../protocol/errors.ts';
import { parseManifest, type OnnxModel } from '../protocol/manifest.ts';
import { parsePriceList } from '../coordinator/ledger/prices.ts';
import { STANDIN_IDS, standinModels, testModels } from '../modelhost/models/index.ts';
import { buildManifest, sha256Hex, startModelHost, type ModelHost } from '../modelhost/server.ts';
import { OnnxEngine } from '../worker/engines/onnx/engine.ts';
import type { OrtModule } from '../worker/engines/onnx/ort.ts';
import {
  type Catalog,
  MIRROR_ENTRIES,
  mirror,
  nanoTonPer1k,
  parseCatalog,
  pin,
  readCatalog,
  readMirror,
  readMirrorEntries,
  type Pins,
} from './catalog.ts';
import { toAppConfig } from '../worker/engines/webllm/select.ts';
import { modelVersion, prebuiltAppConfig } from '@mlc-ai/web-llm';
import { fallbackId, manifestEntries, mergePrices, mirrorPath, priceEntries, servedIds, webllmEntries } from './entries.ts';

// onnxruntime-node implements onnxruntime-web's API; its CPU provider stands in for WASM.
const ort = {
  ...ortNode,
  InferenceSession: {
    create: (bytes: Uint8Array, options: object) => ortNode.InferenceSession.create(bytes, { ...options, executionProviders: ['cpu'] }),
  },
} as unknown as OrtModule;

let host: ModelHost;
let dir: string;
let pins: Pins;
/** The q4 stand-in's graph, published next to the q4f16 one as onnx-community publishes both variants in one repository. */
function q4Graph(): Uint8Array {
  const graph = standinModels()
    .find((m) => m.id === STANDIN_IDS.decoderQ4)
    ?.files.get('onnx/model_q4.onnx');
  if (graph === undefined) throw new Error('no q4 stand-in graph');
  return graph;
}

beforeAll(async () => {
  host = await startModelHost({
    port: 0,
    standins: standinModels(),
    extraFiles: new Map([[mirrorPath(`spinneret-test/${STANDIN_IDS.decoderQ4f16}`, 'main', 'onnx/model_q4.onnx'), q4Graph()]]),
  });
  dir = mkdtempSync(join(tmpdir(), 'spinneret-entries-'));
  pins = {};
  await pin(standinCatalog(), pins);
  await mirror(standinCatalog(), pins, dir);
}, 120_000);
afterAll(async () => {
  await host.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The tiny MiniLM-shaped encoder and q4f16 Qwen-shaped decoder, catalogued as the hub layout publishes them. */
function standinCatalog(): Catalog {
  const real = readCatalog();
  const model = { revision: 'main', license: 'MIT', approxBytes: 1, vramBytes: 1 };
  return parseCatalog({
    ...real,
    hub: host.url,
    models: [
      {
        ...model,
        id: 'minilm-standin',
        kind: 'embed',
        repository: `spinneret-test/${STANDIN_IDS.encoder}`,
        variant: 'fp32',
        files: ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model.onnx'],
        sentenceTransformers: {
          repository: `spinneret-test/${STANDIN_IDS.encoder}`,
          files: ['modules.json', '1_Pooling/config.json', 'sentence_bert_config.json'],
        },
        price: { usdPer1MInput: 0.02, source: 'openai-embeddings', rule: 'test' },
      },
      {
        ...model,
        id: 'qwen-standin',
        kind: 'chat',
        repository: `spinneret-test/${STANDIN_IDS.decoderQ4f16}`,
        variant: 'q4f16',
        files: ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model_q4f16.onnx'],
        fallback: { variant: 'q4', files: ['onnx/model_q4.onnx'] },
        price: { usdPer1MInput: 0.1, usdPer1MOutput: 0.1, source: 'together-serverless', rule: 'test' },
      },
    ],
  });
}

/** The model host's own entry for a stand-in, built from the builder's figures. */
function hostEntry(id: string): OnnxModel {
  const manifest = parseManifest(JSON.parse(JSON.stringify(buildManifest('http://host.invalid', testModels(), () => [], standinModels()))));
  const entry = manifest.models.find((m) => m.id === id);
  if (entry?.engine !== 'onnx') throw new Error(`no entry ${id}`);
  return entry;
}

describe('manifest entries from a pinned mirror', () => {
  it('carry the hub source, every file with its size and SHA-256, and the facts the host derives for the same files', () => {
    const [minilm, qwen] = manifestEntries(standinCatalog(), pins, dir);
    for (const [made, id] of [
      [minilm, STANDIN_IDS.encoder],
      [qwen, STANDIN_IDS.decoderQ4f16],
    ] as const) {
      const own = hostEntry(id);
      expect(made?.hub).toEqual(own.hub);
      expect(made?.onnx).toEqual({ ...own.onnx });
      expect(made?.kinds).toEqual(own.kinds);
      expect(made?.requiredFeatures).toEqual(own.requiredFeatures);
      // The largest initializer read back from the graph's bytes equals the builder's count.
      expect(made?.maxBufferBytes).toBe(own.maxBufferBytes);
      const byName = new Map(own.files.map((f) => [f.name, f]));
      expect(made?.files.map((f) => f.name).sort()).toEqual([...byName.keys()].sort());
      for (const f of made?.files ?? []) {
        expect({ size: f.size, sha256: f.sha256 }).toEqual({ size: byName.get(f.name)?.size, sha256: byName.get(f.name)?.sha256 });
        expect(f.url).toBe(mirrorPath(made?.hub?.repository ?? '', 'main', f.name));
      }
    }
    expect(qwen?.onnx.decoder?.cacheType).toBe('float16');
    expect(qwen?.onnx.decoder?.eosTokenIds).toEqual([151645, 151643]);
    expect(
      manifestEntries(standinCatalog(), pins, dir, { ids: ['qwen-standin'], baseUrl: 'https://models.example/' })[0]?.files[0]?.url,
    ).toBe(`https://models.example/spinneret-test/${STANDIN_IDS.decoderQ4f16}/resolve/main/config.json`);
  });

  it('make the q4 fallback an entry of its own: the shared hub files with the q4 graph, fp32 caches, no shader-f16', async () => {
    const entries = manifestEntries(standinCatalog(), pins, dir, { ids: ['qwen-standin'] });
    expect(entries.map((e) => e.id)).toEqual(['qwen-standin', 'qwen-standin-q4']);
    const [primary, fallback] = entries;
    const own = hostEntry(STANDIN_IDS.decoderQ4);
    expect(fallback?.hub).toEqual({ repository: `spinneret-test/${STANDIN_IDS.decoderQ4f16}`, revision: 'main', variant: 'q4' });
    expect(fallback?.requiredFeatures).toEqual([]);
    expect(primary?.requiredFeatures).toEqual(['shader-f16']);
    // The facts read from the q4f16 repository's hub files and the q4 graph equal the q4 stand-in's own.
    expect(fallback?.onnx).toEqual(own.onnx);
    expect(fallback?.onnx.decoder?.cacheType).toBe('float32');
    expect(fallback?.maxBufferBytes).toBe(own.maxBufferBytes);
    expect(fallback?.files.map((f) => f.name)).toEqual([
      'config.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'onnx/model_q4.onnx',
    ]);
    expect(fallback?.files.find((f) => f.name === 'onnx/model_q4.onnx')?.sha256).toBe(sha256Hex(q4Graph()));
    expect(primary?.files.some((f) => f.name === 'onnx/model_q4.onnx')).toBe(false);

    // The engine runs it from the mirror as it runs the q4 stand-in (same graph, same template).
    const mirrored = readMirror(dir);
    const store = (read: (url: string, name: string) => Uint8Array | undefined) => ({
      getFile: async (file: { url: string; name: string }) => {
        const bytes = read(file.url, file.name);
        if (bytes === undefined) throw new Error(`no ${file.url}`);
        return bytes;
      },
      has: async () => true,
      evict: async () => 0,
    });
    const q4 = standinModels().find((m) => m.id === STANDIN_IDS.decoderQ4);
    const run = async (entry: OnnxModel, read: (url: string, name: string) => Uint8Array | undefined) => {
      const loaded = await new OnnxEngine(
        { store: store(read), gpu: () => null, device: async () => null },
        { loadOrt: async () => ort },
      ).load(entry);
      try {
        return await loaded.run({
          kind: 'chat',
          model: entry.id,
          messages: [{ role: 'user', content: 'hi' }],
          maxTokens: 6,
          sampling: { temperature: 0, topP: 1, seed: 0 },
        });
      } finally {
        await loaded.unload();
      }
    };
    if (fallback === undefined) throw new Error('no fallback entry');
    const fromMirror = await run(fallback, (url) => mirrored.get(url));
    const fromHost = await run(own, (_url, name) => q4?.files.get(name));
    expect(fromMirror).toEqual(fromHost);
    expect(fallbackId(standinCatalog().models[1]!)).toBe('qwen-standin-q4');
  }, 60_000);

  it('are listed by a model host serving the mirror, and the onnx engine loads and runs one from it', async () => {
    writeFileSync(join(dir, MIRROR_ENTRIES), JSON.stringify(manifestEntries(standinCatalog(), pins, dir)));
    const served = await startModelHost({
      port: 0,
      models: testModels(),
      extraFiles: readMirror(dir),
      extraEntries: (base) => readMirrorEntries(dir, base),
    });
    try {
      expect(readMirror(dir).has(MIRROR_ENTRIES)).toBe(false);
      const manifest = parseManifest(await (await fetch(served.manifestUrl)).json(), served.manifestUrl);
      const listed = manifest.models.find((m) => m.id === 'minilm-standin');
      if (listed?.engine !== 'onnx') throw new Error('the host does not list the generated entry');
      // The store's boundary: fetch from the host and check the entry's hash (the Cache API store is tested in worker/models).
      const engine = new OnnxEngine(
        {
          store: {
            getFile: async (file) => {
              const bytes = new Uint8Array(await (await fetch(file.url)).arrayBuffer());
              if (sha256Hex(bytes) !== file.sha256) throw new IntegrityError(file.url, file.sha256, sha256Hex(bytes));
              return bytes;
            },
            has: async () => true,
            evict: async () => 0,
          },
          gpu: () => null,
          device: async () => null,
        },
        { loadOrt: async () => ort },
      );
      const loaded = await engine.load(listed);
      const inputs = ['a generated entry', 'served from a mirror'];
      const own = await new OnnxEngine(
        {
          store: {
            getFile: async (file) =>
              standinModels()
                .find((m) => m.id === STANDIN_IDS.encoder)
                ?.files.get(file.name) ?? new Uint8Array(),
            has: async () => true,
            evict: async () => 0,
          },
          gpu: () => null,
          device: async () => null,
        },
        { loadOrt: async () => ort },
      ).load(hostEntry(STANDIN_IDS.encoder));
      const a = await loaded.run({ kind: 'embed', model: listed.id, inputs });
      const b = await own.run({ kind: 'embed', model: STANDIN_IDS.encoder, inputs });
      expect(a).toEqual(b);
      await loaded.unload();
      await own.unload();
    } finally {
      await served.close();
      unlinkSync(join(dir, MIRROR_ENTRIES));
    }
  }, 60_000);

  it('refuses a mirrored file whose bytes changed, and names a file the mirror lacks', () => {
    const catalog = standinCatalog();
    const tokenizer = join(dir, mirrorPath(`spinneret-test/${STANDIN_IDS.encoder}`, 'main', 'tokenizer_config.json'));
    const original = readMirror(dir).get(mirrorPath(`spinneret-test/${STANDIN_IDS.encoder}`, 'main', 'tokenizer_config.json'));
    if (original === undefined) throw new Error('not mirrored');
    try {
      writeFileSync(tokenizer, new Uint8Array([...original, 0x20]));
      expect(() => manifestEntries(catalog, pins, dir, { ids: ['minilm-standin'] })).toThrow(IntegrityError);
      unlinkSync(tokenizer);
      expect(() => manifestEntries(catalog, pins, dir, { ids: ['minilm-standin'] })).toThrow(
        /The mirror has no "tokenizer_config.json" of minilm-standin/,
      );
    } finally {
      writeFileSync(tokenizer, original);
    }
    expect(() => manifestEntries(catalog, {}, dir)).toThrow(/"config.json" of minilm-standin is not pinned yet/);
    expect(() => manifestEntries(catalog, pins, dir, { ids: ['nope'] })).toThrow(/no model "nope"/);
  });
});

describe('web-llm entries from the catalog', () => {
  it("hold both MLC builds of each chat model, and become web-llm's own prebuilt records in the engine's app config", () => {
    const catalog = readCatalog();
    const entries = webllmEntries(catalog);
    expect(entries.map((e) => e.id)).toEqual(['Qwen2.5-0.5B-Instruct-MLC', 'Llama-3.2-1B-Instruct-MLC', 'SmolLM2-360M-Instruct-MLC']);
    const manifest = parseManifest({ version: 1, models: entries });
    for (const entry of manifest.models) {
      if (entry.engine !== 'webllm') throw new Error(`${entry.id} is not a web-llm entry`);
      expect(entry.kinds).toEqual(['chat']);
      expect(entry.webllm.builds.map((b) => b.quantization)).toEqual(['q4f16_1', 'q4f32_1']);
      expect(entry.vramBytes).toBe(Math.min(...entry.webllm.builds.map((b) => b.vramBytes)));
      for (const build of entry.webllm.builds) {
        const prebuilt = prebuiltAppConfig.model_list.find((r) => r.model_id === build.modelId);
        const [record] = toAppConfig(build).model_list;
        expect(record?.model).toBe(`${prebuilt?.model ?? ''}/resolve/main/`);
        expect(record?.model_lib).toBe(prebuilt?.model_lib);
        expect(Math.abs((record?.vram_required_MB ?? NaN) - (prebuilt?.vram_required_MB ?? NaN))).toBeLessThan(1e-5);
        expect(record?.overrides?.context_window_size).toBe(prebuilt?.overrides?.context_window_size);
        // The engine adds shader-f16 for every q4f16_1 build; web-llm states it for some.
        expect(record?.required_features).toEqual(build.quantization === 'q4f16_1' ? ['shader-f16'] : []);
        expect(prebuilt?.required_features ?? []).toEqual(build.requiredFeatures);
      }
      expect(entry.description).toContain(modelVersion);
    }
    expect(webllmEntries(catalog, { ids: ['all-MiniLM-L6-v2'] })).toEqual([]);
  });
});

describe('price entries from the catalog', () => {
  it("the coordinator's bundled prices.json holds every id the catalog serves at its catalog price, as `prices --merge` writes it", () => {
    const bundled = JSON.parse(readFileSync(new URL('../coordinator/ledger/prices.json', import.meta.url), 'utf8')) as {
      commissionBps: number;
      models: Record<string, unknown>;
    };
    const catalog = readCatalog();
    const expected = priceEntries(catalog);
    for (const [id, p] of Object.entries(expected)) expect(bundled.models[id], id).toEqual(p);
    // Merging again changes nothing: regenerate with
    // npm run catalog -- prices --merge coordinator/ledger/prices.json --out coordinator/ledger/prices.json
    expect(mergePrices(bundled, catalog)).toEqual(bundled);
    // The rest are test prices: the test models', and the model id the job store's fixtures use.
    expect(
      Object.keys(bundled.models)
        .filter((id) => !(id in expected))
        .sort(),
    ).toEqual(['qwen2.5-0.5b', 'tiny-decoder', 'tiny-embed']);
    expect(parsePriceList(bundled).models['all-MiniLM-L6-v2']).toEqual({ kind: 'embed', unit: 'tokens', inputPer1k: 6667n });
  });

  it('are each model’s cited USD price at the catalog’s rate, and merging keeps the test models’ test prices', () => {
    const catalog = readCatalog();
    const prices = priceEntries(catalog);
    expect(Object.keys(prices)).toEqual(catalog.models.flatMap(servedIds));
    // A model costs the same in every build it is served as.
    expect(prices['Qwen2.5-0.5B-Instruct-q4']).toEqual(prices['Qwen2.5-0.5B-Instruct']);
    expect(prices['Qwen2.5-0.5B-Instruct-MLC']).toEqual(prices['Qwen2.5-0.5B-Instruct']);
    expect(prices['all-MiniLM-L6-v2-q4']).toBeUndefined();
    // $0.02 per 1M at $3/TON = 6,667 nanoTON per 1k; DeepInfra's Llama-3.2-1B $0.005 / $0.01 = 1,667 / 3,333.
    expect(prices['all-MiniLM-L6-v2']).toEqual({ kind: 'embed', unit: 'tokens', inputPer1k: '6667' });
    expect(prices['Llama-3.2-1B-Instruct']).toEqual({ kind: 'chat', unit: 'tokens', promptPer1k: '1667', completionPer1k: '3333' });
    for (const m of catalog.models) {
      const p = prices[m.id];
      expect(p?.kind === 'embed' ? p.inputPer1k : p?.promptPer1k).toBe(
        nanoTonPer1k(m.price.usdPer1MInput, catalog.prices.usdPerTon).toString(),
      );
    }
    const current = {
      commissionBps: 1000,
      models: {
        'tiny-embed': { kind: 'embed', unit: 'tokens', inputPer1k: '1000000' },
        'all-MiniLM-L6-v2': { kind: 'embed', unit: 'tokens', inputPer1k: '200' },
      },
    };
    const merged = parsePriceList(mergePrices(current, catalog));
    expect(merged.commissionBps).toBe(1000);
    expect(merged.models['tiny-embed']).toEqual({ kind: 'embed', unit: 'tokens', inputPer1k: 1_000_000n });
    expect(merged.models['all-MiniLM-L6-v2']).toEqual({ kind: 'embed', unit: 'tokens', inputPer1k: 6667n });
    expect(merged.models['Qwen2.5-0.5B-Instruct']).toEqual({
      kind: 'chat',
      unit: 'tokens',
      promptPer1k: 33_333n,
      completionPer1k: 33_333n,
    });
    expect(() => mergePrices({ models: {} }, catalog)).toThrow(/price list to merge into is invalid/);
  });
});
