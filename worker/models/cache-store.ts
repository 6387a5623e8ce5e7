/**
 * The ModelStore on the Cache API: downloads with progress, checks size and SHA-256
 * before anything is used, keeps verified copies across reloads, evicts on request.
 */
import { AbortedError, IntegrityError, ModelUnreachableError, StorageError, SpinneretError } from '../../protocol/errors.ts';
import type { ModelFile } from '../../protocol/manifest.ts';
import type { GetFileOptions, ModelStore } from './store.ts';

/** The slice of the Cache API the store uses (a test double implements it in Node). */
export interface CacheLike {
  match(request: string): Promise<Response | undefined>;
  put(request: string, response: Response): Promise<void>;
  delete(request: string): Promise<boolean>;
}

export interface CacheStoreOptions {
  /** Opens the cache; defaults to `caches.open('spinneret-models-v1')`. */
  openCache?: () => Promise<CacheLike>;
  fetch?: typeof fetch;
  /** Smallest progress step reported, bytes. */
  progressStepBytes?: number;
  /** Told when a verified file could not be cached (storage full or denied); the file is still used. */
  onStorageError?: (error: StorageError) => void;
}

/** Header that records the verified hash next to a cached file. */
const HASH_HEADER = 'x-spinneret-sha256';

export class CacheModelStore implements ModelStore {
  readonly #openCache: () => Promise<CacheLike>;
  readonly #fetch: typeof fetch;
  readonly #step: number;
  readonly #onStorageError: (error: StorageError) => void;
  #cache: Promise<CacheLike | null> | null = null;
  /** Downloads in flight, so two loads of one file share one download. */
  readonly #inflight = new Map<string, Promise<Uint8Array>>();

  constructor(options: CacheStoreOptions = {}) {
    this.#openCache = options.openCache ?? (() => caches.open('spinneret-models-v1'));
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#step = options.progressStepBytes ?? 256 * 1024;
    this.#onStorageError = options.onStorageError ?? (() => undefined);
  }

  async getFile(file: ModelFile, options: GetFileOptions = {}): Promise<Uint8Array> {
    const cached = await this.#readCached(file);
    if (cached !== null) {
      options.onProgress?.({ url: file.url, loadedBytes: file.size, totalBytes: file.size });
      return cached;
    }
    const key = cacheKey(file);
    let pending = this.#inflight.get(key);
    if (pending === undefined) {
      pending = this.#download(file, options).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    return pending;
  }

  async has(file: ModelFile): Promise<boolean> {
    const cache = await this.#cacheOrNull();
    const hit = await cache?.match(cacheKey(file));
    return hit !== undefined && hit.headers.get(HASH_HEADER) === file.sha256;
  }

  async evict(files: readonly ModelFile[]): Promise<number> {
    const cache = await this.#cacheOrNull();
    if (cache === null) return 0;
    let freed = 0;
    for (const file of files) {
      if (await cache.delete(cacheKey(file))) freed += file.size;
    }
    return freed;
  }

  async #readCached(file: ModelFile): Promise<Uint8Array | null> {
    const cache = await this.#cacheOrNull();
    const hit = await cache?.match(cacheKey(file));
    if (hit === undefined || cache === null) return null;
    // The hash was checked before the copy was stored; a copy stored under another hash is stale.
    if (hit.headers.get(HASH_HEADER) !== file.sha256) {
      await cache.delete(cacheKey(file));
      return null;
    }
    const bytes = new Uint8Array(await hit.arrayBuffer());
    if (bytes.byteLength !== file.size) {
      await cache.delete(cacheKey(file));
      return null;
    }
    return bytes;
  }

  async #download(file: ModelFile, options: GetFileOptions): Promise<Uint8Array> {
    const { signal, onProgress } = options;
    if (signal?.aborted) throw new AbortedError(`Download of ${file.url}`);
    let response: Response;
    try {
      response = await this.#fetch(file.url, { signal: signal ?? null, cache: 'no-store' });
    } catch (err) {
      if (signal?.aborted) throw new AbortedError(`Download of ${file.url}`);
      throw new ModelUnreachableError(file.url, err instanceof Error ? err.message : String(err));
    }
    if (!response.ok) throw new ModelUnreachableError(file.url, `HTTP ${response.status} ${response.statusText}`.trim());

    const bytes = await readBody(response, file, signal, this.#step, onProgress);
    const actual = await sha256Hex(bytes);
    // Discard on mismatch: the bytes go nowhere, neither to the engine nor to the cache.
    if (actual !== file.sha256) throw new IntegrityError(file.url, file.sha256, actual);
    await this.#store(file, bytes);
    return bytes;
  }

  async #store(file: ModelFile, bytes: Uint8Array): Promise<void> {
    const cache = await this.#cacheOrNull();
    if (cache === null) return;
    try {
      await cache.put(
        cacheKey(file),
        new Response(bytes.slice().buffer, {
          headers: { [HASH_HEADER]: file.sha256, 'content-length': String(bytes.byteLength) },
        }),
      );
    } catch (err) {
      // The model still runs from memory; it is downloaded again next time.
      const full = err instanceof DOMException && err.name === 'QuotaExceededError';
      this.#onStorageError(
        new StorageError(
          full
            ? `Browser storage is full, so ${file.url} was not cached and will be downloaded again next time. Evict models you no longer serve, or allow more storage for this site.`
            : `The browser refused to cache ${file.url} (${err instanceof Error ? err.message : String(err)}); it will be downloaded again next time.`,
          { url: file.url },
        ),
      );
    }
  }

  #cacheOrNull(): Promise<CacheLike | null> {
    this.#cache ??= this.#openCache().catch(() => null);
    return this.#cache;
  }
}

async function readBody(
  response: Response,
  file: ModelFile,
  signal: AbortSignal | undefined,
  step: number,
  onProgress: GetFileOptions['onProgress'],
): Promise<Uint8Array> {
  const reader = response.body?.getReader();
  if (reader === undefined) throw new ModelUnreachableError(file.url, 'empty response');
  // Preallocate from the manifest's size; a longer body is an integrity failure, not a resize.
  const out = new Uint8Array(file.size);
  let loaded = 0;
  let reported = 0;
  try {
    for (;;) {
      if (signal?.aborted) throw new AbortedError(`Download of ${file.url}`);
      const { done, value } = await reader.read();
      if (done) break;
      if (loaded + value.byteLength > file.size) {
        throw new IntegrityError(file.url, file.sha256, `longer than the ${file.size} bytes listed`);
      }
      out.set(value, loaded);
      loaded += value.byteLength;
      if (loaded - reported >= step) {
        reported = loaded;
        onProgress?.({ url: file.url, loadedBytes: loaded, totalBytes: file.size });
      }
    }
  } catch (err) {
    await reader.cancel().catch(() => undefined);
    if (err instanceof SpinneretError) throw err;
    if (signal?.aborted) throw new AbortedError(`Download of ${file.url}`);
    throw new ModelUnreachableError(file.url, err instanceof Error ? err.message : String(err));
  }
  if (loaded !== file.size) {
    throw new IntegrityError(file.url, file.sha256, `${loaded} bytes instead of the ${file.size} listed`);
  }
  onProgress?.({ url: file.url, loadedBytes: loaded, totalBytes: file.size });
  return out;
}

function cacheKey(file: ModelFile): string {
  return file.url;
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}
