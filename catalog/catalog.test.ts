import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelVersion, prebuiltAppConfig } from '@mlc-ai/web-llm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError } from '../protocol/errors.ts';
import { standinModels, STANDIN_IDS } from '../modelhost/models/index.ts';
import { sha256Hex, startModelHost, type ModelHost } from '../modelhost/server.ts';
import { type Catalog, filesOf, mirror, nanoTonPer1k, parseCatalog, pin, readCatalog, readMirror, status, type Pins } from './catalog.ts';

let host: ModelHost;
beforeAll(async () => {
  host = await startModelHost({ port: 0, standins: standinModels() });
}, 60_000);
afterAll(() => host.close());

/** A catalog of the stand-ins, as the local model host publishes them in the hub layout. */
function standinCatalog(): Catalog {
  const real = readCatalog();
  return parseCatalog({
    ...real,
    hub: host.url,
    models: [
      {
        id: 'minilm',
        kind: 'embed',
        repository: `spinneret-test/${STANDIN_IDS.encoder}`,
        revision: 'main',
        variant: 'fp32',
        license: 'MIT',
        files: ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model.onnx', 'modules.json', '1_Pooling/config.json'],
        approxBytes: 1,
        vramBytes: 1,
        price: { usdPer1MInput: 0.02, source: 'openai-embeddings', rule: 'test' },
      },
    ],
  });
}

describe('catalog of real models', () => {
  it('lists the six models with cited prices, web-llm builds for the chat models, and nothing pinned yet', () => {
    const catalog = readCatalog();
    expect(catalog.models.map((m) => m.id)).toEqual([
      'all-MiniLM-L6-v2',
      'bge-small-en-v1.5',
      'multilingual-e5-small',
      'Qwen2.5-0.5B-Instruct',
      'Llama-3.2-1B-Instruct',
      'SmolLM2-360M-Instruct',
    ]);
    for (const m of catalog.models.filter((m) => m.kind === 'chat')) {
      expect(m.webllm?.map((b) => b.quantization).sort()).toEqual(['q4f16_1', 'q4f32_1']);
      expect(m.files).toContain('generation_config.json');
    }
    expect(catalog.models.find((m) => m.id === 'multilingual-e5-small')?.prefixes).toMatchObject({
      query: 'query: ',
      passage: 'passage: ',
    });
    const pins = JSON.parse(readFileSync(new URL('./pins.json', import.meta.url), 'utf8')) as Pins;
    expect(status(catalog, pins).every((s) => s.pinned === 0)).toBe(true);
    // $0.02 per 1M tokens at $3 per TON: 6,667 nanoTON per 1,000 tokens.
    expect(nanoTonPer1k(0.02, 3)).toBe(6667n);
  });

  it('each chat model has a q4 fallback in the same repository: the shared hub files with its own graph', () => {
    const catalog = readCatalog();
    for (const m of catalog.models.filter((m) => m.kind === 'chat')) {
      expect(m.fallback).toEqual({ variant: 'q4', files: ['onnx/model_q4.onnx'] });
      const names = (part: 'all' | 'primary' | 'fallback'): string[] => filesOf(m, part).map((f) => f.file);
      expect(names('primary')).toEqual(m.files);
      expect(names('fallback')).toEqual([...m.files.filter((f) => f !== 'onnx/model_q4f16.onnx'), 'onnx/model_q4.onnx']);
      expect(names('all')).toEqual([...m.files, 'onnx/model_q4.onnx']);
      expect(new Set(filesOf(m).map((f) => f.repository))).toEqual(new Set([m.repository]));
    }
    const embed = catalog.models[0]!;
    expect(() => filesOf(embed, 'fallback')).toThrow(/has no fallback build/);
  });

  it("web-llm builds are web-llm's own prebuilt records, field for field, from the installed web-llm", () => {
    const catalog = readCatalog();
    expect(catalog.webllm.modelVersion).toBe(modelVersion);
    const MiB = 1024 * 1024;
    let builds = 0;
    for (const m of catalog.models) {
      for (const b of m.webllm ?? []) {
        const record = prebuiltAppConfig.model_list.find((r) => r.model_id === b.modelId);
        if (record === undefined) throw new Error(`web-llm ${modelVersion} has no prebuilt ${b.modelId}`);
        expect(record.model).toBe(`${catalog.hub}/${b.repository}`);
        expect(b.modelId).toContain(b.quantization);
        expect(b.modelLib).toBe(record.model_lib);
        // vram_required_MB is MiB (worker/engines/webllm/select.ts converts back the same way).
        expect(b.vramBytes).toBe(Math.round((record.vram_required_MB ?? NaN) * MiB));
        expect(b.lowResource).toBe(record.low_resource_required ?? false);
        expect(b.contextWindow).toBe(record.overrides?.context_window_size);
        expect(b.requiredFeatures ?? []).toEqual(record.required_features ?? []);
        builds++;
      }
    }
    expect(builds).toBe(6);
  });

  it('refuses a price that cites no listed source', () => {
    const catalog = readCatalog();
    const bad = { ...catalog, models: [{ ...catalog.models[0], price: { usdPer1MInput: 1, source: 'a friend', rule: 'x' } }] };
    expect(() => parseCatalog(bad)).toThrow(/"a friend"/);
  });
});

describe('pin and mirror against the local model host', () => {
  it('pins each file with the SHA-256 the host serves, then mirrors them in the hub layout', async () => {
    const catalog = standinCatalog();
    const pins: Pins = {};
    expect(await pin(catalog, pins)).toEqual({ pinned: 6, unchanged: 0 });
    const built = standinModels().find((m) => m.id === STANDIN_IDS.encoder);
    for (const f of filesOf(catalog.models[0]!)) {
      const bytes = built?.files.get(f.file);
      expect(pins[f.key]).toEqual({ size: bytes?.length, sha256: sha256Hex(bytes ?? new Uint8Array()) });
    }
    expect(await pin(catalog, pins)).toEqual({ pinned: 0, unchanged: 6 });

    const dir = mkdtempSync(join(tmpdir(), 'spinneret-mirror-'));
    try {
      expect(await mirror(catalog, pins, dir)).toBe(6);
      const mirrored = readMirror(dir);
      const config = mirrored.get(`spinneret-test/${STANDIN_IDS.encoder}/resolve/main/config.json`);
      expect(config).toEqual(built?.files.get('config.json'));
      // The model host serves the mirror at the same paths the hub uses.
      const served = await startModelHost({ port: 0, extraFiles: mirrored });
      try {
        const res = await fetch(`${served.url}/spinneret-test/${STANDIN_IDS.encoder}/resolve/main/onnx/model.onnx`);
        expect(sha256Hex(new Uint8Array(await res.arrayBuffer()))).toBe(
          pins[`spinneret-test/${STANDIN_IDS.encoder}@main/onnx/model.onnx`]?.sha256,
        );
      } finally {
        await served.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a file whose hash changed since it was pinned, in pin and in mirror', async () => {
    const catalog = standinCatalog();
    const pins: Pins = {};
    await pin(catalog, pins);
    const key = `${STANDIN_IDS.encoder}/onnx/model.onnx`;
    host.corrupt.add(key);
    try {
      await expect(pin(catalog, pins)).rejects.toBeInstanceOf(IntegrityError);
      const dir = mkdtempSync(join(tmpdir(), 'spinneret-mirror-'));
      try {
        await expect(mirror(catalog, pins, dir)).rejects.toBeInstanceOf(IntegrityError);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      host.corrupt.delete(key);
    }
  });

  it('names the missing hub file, and refuses to mirror what is not pinned', async () => {
    const catalog = standinCatalog();
    const missing = parseCatalog({ ...catalog, models: [{ ...catalog.models[0], files: ['config.json', 'onnx/model_q4f16.onnx'] }] });
    await expect(pin(missing, {})).rejects.toThrow(
      /no file "onnx\/model_q4f16.onnx" in spinneret-test\/standin-minilm-l6-tiny at revision main/,
    );
    await expect(mirror(catalog, {}, tmpdir())).rejects.toThrow(/"config.json" of minilm is not pinned yet/);
  });
});
