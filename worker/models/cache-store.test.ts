import { describe, expect, it } from 'vitest';
import { AbortedError, IntegrityError, ModelUnreachableError } from '../../protocol/errors.ts';
import type { ModelFile } from '../../protocol/manifest.ts';
import { CacheModelStore, sha256Hex, type CacheLike } from './cache-store.ts';

/** The Cache API's behaviour that the store relies on, in memory (the real one runs in the e2e tests). */
class MemoryCache implements CacheLike {
  readonly entries = new Map<string, { body: ArrayBuffer; headers: Headers }>();
  async match(key: string) {
    const hit = this.entries.get(key);
    return hit === undefined ? undefined : new Response(hit.body.slice(0), { headers: hit.headers });
  }
  async put(key: string, response: Response) {
    this.entries.set(key, { body: await response.arrayBuffer(), headers: response.headers });
  }
  async delete(key: string) {
    return this.entries.delete(key);
  }
}

const bytes = new TextEncoder().encode('weights '.repeat(1000));

async function fileFor(data: Uint8Array, url = 'https://host.test/m/model.onnx'): Promise<ModelFile> {
  return { name: 'model.onnx', url, size: data.byteLength, sha256: await sha256Hex(data) };
}

function serving(body: Uint8Array | null, counter = { calls: 0 }): typeof fetch {
  return async () => {
    counter.calls++;
    if (body === null) throw new TypeError('Failed to fetch');
    return new Response(body.slice());
  };
}

describe('CacheModelStore', () => {
  it('downloads with progress, verifies, caches, and serves the next request from the cache', async () => {
    const cache = new MemoryCache();
    const counter = { calls: 0 };
    const store = new CacheModelStore({ openCache: async () => cache, fetch: serving(bytes, counter), progressStepBytes: 1024 });
    const file = await fileFor(bytes);
    const seen: number[] = [];
    const first = await store.getFile(file, { onProgress: (p) => seen.push(p.loadedBytes) });
    expect(first).toEqual(bytes);
    expect(seen.at(-1)).toBe(bytes.byteLength);
    expect(await store.has(file)).toBe(true);
    expect(await store.getFile(file)).toEqual(bytes);
    expect(counter.calls).toBe(1);
  });

  it('discards a file whose SHA-256 differs and caches nothing', async () => {
    const cache = new MemoryCache();
    const corrupted = bytes.slice();
    corrupted[10] = (corrupted[10] ?? 0) ^ 0xff;
    const store = new CacheModelStore({ openCache: async () => cache, fetch: serving(corrupted) });
    const file = await fileFor(bytes);
    await expect(store.getFile(file)).rejects.toBeInstanceOf(IntegrityError);
    expect(cache.entries.size).toBe(0);
    expect(await store.has(file)).toBe(false);
  });

  it('refuses a body longer or shorter than the manifest says', async () => {
    const file = await fileFor(bytes);
    const longer = new CacheModelStore({ openCache: async () => new MemoryCache(), fetch: serving(new Uint8Array([...bytes, 1])) });
    await expect(longer.getFile(file)).rejects.toThrow(/longer than/);
    const shorter = new CacheModelStore({ openCache: async () => new MemoryCache(), fetch: serving(bytes.slice(1)) });
    await expect(shorter.getFile(file)).rejects.toThrow(/instead of/);
  });

  it('reports an unreachable host or an HTTP error as ModelUnreachableError', async () => {
    const file = await fileFor(bytes);
    const down = new CacheModelStore({ openCache: async () => new MemoryCache(), fetch: serving(null) });
    await expect(down.getFile(file)).rejects.toBeInstanceOf(ModelUnreachableError);
    const missing = new CacheModelStore({
      openCache: async () => new MemoryCache(),
      fetch: async () => new Response('no', { status: 404 }),
    });
    await expect(missing.getFile(file)).rejects.toThrow(/HTTP 404/);
  });

  it('drops a cached copy stored under another hash and downloads again', async () => {
    const cache = new MemoryCache();
    const counter = { calls: 0 };
    const store = new CacheModelStore({ openCache: async () => cache, fetch: serving(bytes, counter) });
    const file = await fileFor(bytes);
    await cache.put(file.url, new Response(bytes.slice(), { headers: { 'x-spinneret-sha256': 'f'.repeat(64) } }));
    expect(await store.getFile(file)).toEqual(bytes);
    expect(counter.calls).toBe(1);
  });

  it('shares one download between concurrent requests, and evicts', async () => {
    const cache = new MemoryCache();
    const counter = { calls: 0 };
    const store = new CacheModelStore({ openCache: async () => cache, fetch: serving(bytes, counter) });
    const file = await fileFor(bytes);
    await Promise.all([store.getFile(file), store.getFile(file), store.getFile(file)]);
    expect(counter.calls).toBe(1);
    expect(await store.evict([file])).toBe(bytes.byteLength);
    expect(await store.has(file)).toBe(false);
  });

  it('stops on abort', async () => {
    const store = new CacheModelStore({ openCache: async () => new MemoryCache(), fetch: serving(bytes) });
    const controller = new AbortController();
    controller.abort();
    await expect(store.getFile(await fileFor(bytes), { signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
  });

  it('still returns verified bytes when no cache can be opened (storage denied)', async () => {
    const store = new CacheModelStore({
      openCache: () => Promise.reject(new DOMException('denied', 'SecurityError')),
      fetch: serving(bytes),
    });
    expect(await store.getFile(await fileFor(bytes))).toEqual(bytes);
  });
});

describe('CacheModelStore when storage is full', () => {
  it('returns the verified bytes and reports a StorageError instead of failing the load', async () => {
    const full: CacheLike = {
      match: async () => undefined,
      put: async () => {
        throw new DOMException('quota', 'QuotaExceededError');
      },
      delete: async () => false,
    };
    const reported: string[] = [];
    const store = new CacheModelStore({ openCache: async () => full, fetch: serving(bytes), onStorageError: (e) => reported.push(e.code) });
    expect(await store.getFile(await fileFor(bytes))).toEqual(bytes);
    expect(reported).toEqual(['STORAGE']);
  });
});
