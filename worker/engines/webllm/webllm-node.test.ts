/**
 * web-llm's real `MLCEngine.reload()` in Node against the `modelhost/mlc.ts` fixtures, served
 * over HTTP. The Cache API is a double that fails like Chromium's (fake-caches.ts); the model
 * store is the real one. Nothing here reaches a GPU: every fixture fails before web-llm asks
 * for an adapter, which is what the error paths need.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AbortedError,
  EngineError,
  FeatureMissingError,
  IntegrityError,
  ModelTooLargeError,
  ModelUnreachableError,
  SpinneretError,
} from '../../../protocol/errors.ts';
import type { WebLlmModel } from '../../../protocol/manifest.ts';
import { Manifest } from '../../../protocol/manifest.ts';
import { MLC_FIXTURE_EXPECTED, mlcFixtureFiles, mlcManifestEntries } from '../../../modelhost/mlc.ts';
import type { GpuInfo } from '../../gpu/types.ts';
import { CacheModelStore } from '../../models/cache-store.ts';
import { WebLlmEngine } from './engine.ts';
import { FakeCacheStorage } from './fake-caches.ts';
import * as v from 'valibot';

const MiB = 1024 * 1024;
const swiftshader: GpuInfo = {
  vendor: 'google',
  architecture: 'swiftshader',
  device: '',
  description: '',
  isFallbackAdapter: true,
  features: ['subgroups', 'timestamp-query'],
  limits: {
    maxBufferSize: 1024 * MiB,
    maxStorageBufferBindingSize: 1024 * MiB,
    maxComputeWorkgroupStorageSize: 32768,
    maxComputeInvocationsPerWorkgroup: 256,
    maxComputeWorkgroupSizeX: 256,
    maxStorageBuffersPerShaderStage: 10,
  },
};

let server: Server;
let base = '';
const requests: string[] = [];
const files = mlcFixtureFiles();

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push(path);
    if (path.startsWith('/hang/')) return; // never answers: for the abort test
    const bytes = files.get(path.replace(/^\/models\//, ''));
    if (bytes === undefined) return void res.writeHead(404).end('Not found');
    res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  vi.unstubAllGlobals();
});

let caches: FakeCacheStorage;
beforeEach(() => {
  requests.length = 0;
  caches = new FakeCacheStorage();
  vi.stubGlobal('caches', caches);
  // web-llm resolves model URLs against `location.origin` in a worker.
  vi.stubGlobal('location', { origin: 'http://127.0.0.1', href: 'http://127.0.0.1/' });
  // tvmjs's bundled Emscripten WASI shim takes its Node branch here and reads `__dirname`.
  vi.stubGlobal('__dirname', '/tmp');
});

function engine(options: { caches?: FakeCacheStorage } = {}): WebLlmEngine {
  const store = new CacheModelStore({ openCache: () => caches.open('spinneret-models-v1'), fetch: (i, init) => fetch(i, init) });
  return new WebLlmEngine({ store, gpu: () => swiftshader, device: async () => null }, { vramBudgetBytes: () => 4096 * MiB, ...options });
}

function entry(id: string): WebLlmModel {
  const found = mlcManifestEntries(base).find((m) => m.id === id);
  if (found === undefined) throw new Error(`no fixture ${id}`);
  return found;
}

async function loadError(model: WebLlmModel, e = engine(), signal?: AbortSignal): Promise<SpinneretError> {
  const err = await e.load(model, signal === undefined ? {} : { signal }).then(
    () => new Error('loaded'),
    (x: unknown) => x,
  );
  if (!(err instanceof SpinneretError)) throw err;
  return err;
}

describe('MLC fixtures', () => {
  it('form a valid manifest whose expected errors cover every entry', () => {
    const models = mlcManifestEntries(base);
    expect(v.safeParse(Manifest, { version: 1, models }).success).toBe(true);
    expect(models.map((m) => m.id).sort()).toEqual(Object.keys(MLC_FIXTURE_EXPECTED).sort());
  });
});

describe('real web-llm reload on the fixtures', () => {
  it('corrupt model library: verified files are seeded, web-llm downloads nothing, compile fails', async () => {
    const err = await loadError(entry('tiny-mlc-corrupt-lib'));
    expect(err).toBeInstanceOf(EngineError);
    expect(err.message).toContain(MLC_FIXTURE_EXPECTED['tiny-mlc-corrupt-lib']?.messageIncludes);
    expect(err.message).toMatch(/expected magic word|extends past end|WebAssembly/);
    expect(err.details).toMatchObject({ reason: 'corrupt-model-library', webllmError: 'CompileError' });
    const dir = '/models/spinneret-test/tiny-mlc-q4f32_1-MLC/resolve/main/';
    // The store's four downloads, then one probe of the library after the compile error.
    expect(requests).toEqual([
      `${dir}tensor-cache.json`,
      `${dir}mlc-chat-config.json`,
      `${dir}tiny-mlc-q4f32_1-webgpu.wasm`,
      `${dir}tokenizer.json`,
      `${dir}tiny-mlc-q4f32_1-webgpu.wasm`,
    ]);
    expect(caches.get('webllm/wasm', `${base.replace('/models', '')}${dir}tiny-mlc-q4f32_1-webgpu.wasm`)).toBeDefined();
    // Second load: everything verified from web-llm's cache; only the probe goes out.
    requests.length = 0;
    expect(await loadError(entry('tiny-mlc-corrupt-lib'))).toBeInstanceOf(EngineError);
    expect(requests).toEqual([`${dir}tiny-mlc-q4f32_1-webgpu.wasm`]);
  });

  it('unreachable host: web-llm fails on its first fetch, the error names the chat config URL', async () => {
    const err = await loadError(entry('tiny-mlc-unreachable'));
    expect(err).toBeInstanceOf(ModelUnreachableError);
    expect(err.message).toContain(MLC_FIXTURE_EXPECTED['tiny-mlc-unreachable']?.messageIncludes);
  });

  it('missing file: Cache.add "Request failed" becomes HTTP 404 on the file that is missing', async () => {
    const model = entry('tiny-mlc-unreachable');
    const build = { ...model.webllm.builds[0]!, model: `${base}/spinneret-test/absent-MLC` };
    const err = await loadError({ ...model, webllm: { builds: [build] } });
    expect(err).toBeInstanceOf(ModelUnreachableError);
    expect(err.details).toEqual({ url: `${base}/spinneret-test/absent-MLC/resolve/main/mlc-chat-config.json`, reason: 'HTTP 404' });
  });

  it('refuses f16-only, oversized and badly hashed fixtures with their typed errors', async () => {
    expect(await loadError(entry('tiny-mlc-f16-only'))).toBeInstanceOf(FeatureMissingError);
    expect(await loadError(entry('tiny-mlc-too-large'))).toBeInstanceOf(ModelTooLargeError);
    expect(await loadError(entry('tiny-mlc-buffer-too-large'))).toBeInstanceOf(ModelTooLargeError);
    expect(requests).toEqual([]);
    const bad = await loadError(entry('tiny-mlc-bad-hash'));
    expect(bad).toBeInstanceOf(IntegrityError);
    expect(bad.message).toContain('mlc-chat-config.json');
    expect(caches.get('webllm/config', `${base}/spinneret-test/tiny-mlc-q4f32_1-MLC/resolve/main/mlc-chat-config.json`)).toBeUndefined();
  });

  it("web-llm's own SRI check catches a tampered cached config that seeding did not see", async () => {
    const configUrl = `${base}/spinneret-test/tiny-mlc-q4f32_1-MLC/resolve/main/mlc-chat-config.json`;
    (await caches.open('webllm/config')).entries.set(configUrl, new TextEncoder().encode('{"tampered": true}'));
    // Seeding goes to another cache, so only ModelRecord.integrity stands between web-llm and the bytes.
    const err = await loadError(entry('tiny-mlc-corrupt-lib'), engine({ caches: new FakeCacheStorage() }));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.details).toMatchObject({ url: configUrl });
  });

  it('abort while web-llm waits on a download rejects at once with AbortedError', async () => {
    const model = entry('tiny-mlc-unreachable');
    const build = { ...model.webllm.builds[0]!, model: `${base.replace('/models', '/hang')}/x-MLC` };
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = Date.now();
    const err = await loadError({ ...model, webllm: { builds: [build] } }, engine(), controller.signal);
    expect(err).toBeInstanceOf(AbortedError);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(requests).toEqual(['/hang/x-MLC/resolve/main/mlc-chat-config.json']);
  });
});
