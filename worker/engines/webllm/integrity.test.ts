import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AbortedError, IntegrityError, ManifestError, ModelUnreachableError } from '../../../protocol/errors.ts';
import type { ModelFile, WebLlmBuild } from '../../../protocol/manifest.ts';
import type { GetFileOptions, ModelStore } from '../../models/store.ts';
import { FakeCacheStorage } from './fake-caches.ts';
import { hexFromSri, sriFromHex } from './hash.ts';
import { planSeeding, seedWebLlmCache, type SeedProgress } from './integrity.ts';

const BASE = 'https://models.example/org/Tiny-MLC/resolve/main/';
const LIB = 'https://libs.example/tiny-webgpu.wasm';
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A ModelStore over a map of URL → bytes that checks the SHA-256 like the real one. */
class MapStore implements ModelStore {
  readonly fetched: string[] = [];
  readonly evicted: string[] = [];
  constructor(readonly served: Map<string, Uint8Array>) {}
  async getFile(file: ModelFile, options: GetFileOptions = {}): Promise<Uint8Array> {
    this.fetched.push(file.url);
    const bytes = this.served.get(file.url);
    if (bytes === undefined) throw new ModelUnreachableError(file.url, 'HTTP 404');
    if (sha(bytes) !== file.sha256) throw new IntegrityError(file.url, file.sha256, sha(bytes));
    options.onProgress?.({ url: file.url, loadedBytes: bytes.length, totalBytes: bytes.length });
    return bytes;
  }
  async has(): Promise<boolean> {
    return false;
  }
  async evict(files: readonly ModelFile[]): Promise<number> {
    this.evicted.push(...files.map((f) => f.url));
    return 0;
  }
}

function fixture(shards: string[] = ['params_shard_0.bin']): { build: WebLlmBuild; served: Map<string, Uint8Array> } {
  const served = new Map<string, Uint8Array>([
    [`${BASE}mlc-chat-config.json`, text('{"tokenizer_files":["tokenizer.json"]}')],
    [LIB, new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])],
    [`${BASE}tokenizer.json`, text('{"model":{}}')],
    [`${BASE}tensor-cache.json`, text(JSON.stringify({ records: shards.map((dataPath) => ({ dataPath, records: [] })) }))],
    [`${BASE}params_shard_0.bin`, new Uint8Array(64).fill(7)],
  ]);
  const files: ModelFile[] = [...served].map(([url, bytes]) => ({
    name: url.split('/').pop() ?? url,
    url,
    size: bytes.length,
    sha256: sha(bytes),
  }));
  files.push({ name: 'README.md', url: 'https://elsewhere.example/README.md', size: 1, sha256: 'ee'.repeat(32) });
  const build: WebLlmBuild = {
    quantization: 'q4f32_1',
    modelId: 'Tiny-MLC',
    model: 'https://models.example/org/Tiny-MLC',
    modelLib: LIB,
    vramBytes: 1,
    requiredFeatures: [],
    files,
  };
  return { build, served };
}

describe('hash spellings', () => {
  it('converts between hex and SRI like node:crypto', () => {
    const bytes = text('hello');
    expect(sriFromHex(sha(bytes))).toBe(`sha256-${createHash('sha256').update(bytes).digest('base64')}`);
    expect(hexFromSri(sriFromHex(sha(bytes)))).toBe(sha(bytes));
  });
});

describe('planSeeding', () => {
  it('puts each file in the cache web-llm reads it from, tensor-cache index first, and skips what web-llm never reads', () => {
    const plan = planSeeding(fixture().build);
    expect(plan.map((e) => [e.scope, e.url.replace(BASE, '')])).toEqual([
      ['webllm/model', 'tensor-cache.json'],
      ['webllm/config', 'mlc-chat-config.json'],
      ['webllm/wasm', LIB],
      ['webllm/model', 'tokenizer.json'],
      ['webllm/model', 'params_shard_0.bin'],
    ]);
  });

  it("leaves a localhost model library to web-llm's SRI check: web-llm fetches it past the cache", () => {
    const { build } = fixture();
    const local = {
      ...build,
      modelLib: 'http://localhost:4100/lib.wasm',
      files: [...build.files, { name: 'lib', url: 'http://localhost:4100/lib.wasm', size: 1, sha256: 'aa'.repeat(32) }],
    };
    expect(planSeeding(local).some((e) => e.scope === 'webllm/wasm')).toBe(false);
  });
});

describe('seedWebLlmCache', () => {
  it("downloads through the store into web-llm's caches, keeping one copy", async () => {
    const { build, served } = fixture();
    const store = new MapStore(served);
    const caches = new FakeCacheStorage();
    const progress: SeedProgress[] = [];
    await seedWebLlmCache(build, planSeeding(build), { caches, store, onProgress: (p) => progress.push(p) });
    expect(caches.get('webllm/config', `${BASE}mlc-chat-config.json`)).toEqual(served.get(`${BASE}mlc-chat-config.json`));
    expect(caches.get('webllm/wasm', LIB)).toEqual(served.get(LIB));
    expect(caches.get('webllm/model', `${BASE}params_shard_0.bin`)).toEqual(served.get(`${BASE}params_shard_0.bin`));
    expect(store.fetched).toHaveLength(5);
    expect(store.evicted).toEqual(store.fetched);
    const total = [...served.values()].reduce((n, b) => n + b.length, 0);
    expect(progress.at(-1)).toMatchObject({ phase: 'download', loadedBytes: total, totalBytes: total });
  });

  it('verifies cached copies without downloading, and replaces a damaged one', async () => {
    const { build, served } = fixture();
    const caches = new FakeCacheStorage();
    await seedWebLlmCache(build, planSeeding(build), { caches, store: new MapStore(served) });
    (await caches.open('webllm/model')).entries.set(`${BASE}params_shard_0.bin`, new Uint8Array(64).fill(8));
    const again = new MapStore(served);
    const phases: string[] = [];
    await seedWebLlmCache(build, planSeeding(build), { caches, store: again, onProgress: (p) => phases.push(p.phase) });
    expect(again.fetched).toEqual([`${BASE}params_shard_0.bin`]);
    expect(caches.get('webllm/model', `${BASE}params_shard_0.bin`)).toEqual(served.get(`${BASE}params_shard_0.bin`));
    expect(phases.filter((p) => p === 'verify')).toHaveLength(4);
  });

  it('lets the store refuse a file with the wrong hash, and caches nothing of it', async () => {
    const { build, served } = fixture();
    served.set(LIB, new Uint8Array([1, 2, 3]));
    const caches = new FakeCacheStorage();
    await expect(seedWebLlmCache(build, planSeeding(build), { caches, store: new MapStore(served) })).rejects.toBeInstanceOf(
      IntegrityError,
    );
    expect(caches.get('webllm/wasm', LIB)).toBeUndefined();
  });

  it('refuses a tensor-cache index naming shards the build does not list, before downloading shards', async () => {
    const { build, served } = fixture(['params_shard_0.bin', 'params_shard_1.bin']);
    const store = new MapStore(served);
    const err = await seedWebLlmCache(build, planSeeding(build), { caches: new FakeCacheStorage(), store }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).details).toMatchObject({ unlisted: ['params_shard_1.bin'] });
    expect(store.fetched).toEqual([`${BASE}tensor-cache.json`]);
  });

  it('stops when aborted', async () => {
    const { build, served } = fixture();
    const controller = new AbortController();
    controller.abort();
    const store = new MapStore(served);
    await expect(
      seedWebLlmCache(build, planSeeding(build), { caches: new FakeCacheStorage(), store, signal: controller.signal }),
    ).rejects.toBeInstanceOf(AbortedError);
    expect(store.fetched).toEqual([]);
  });
});
