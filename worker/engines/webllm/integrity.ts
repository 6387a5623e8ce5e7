/**
 * Integrity of the files web-llm loads.
 *
 * web-llm 0.2.86 reads every model file through its Cache API backend: `Cache.add(url)` on a
 * miss, then `cache.match(url)`. `Cache.add` fetches inside the browser, past any wrapper
 * around `globalThis.fetch`, so a fetch wrapper would never see those bytes. Instead, before
 * `reload()`, each file the build lists is made present and verified *in web-llm's own
 * cache*: a cached copy is hashed and dropped on mismatch; a missing one comes from
 * `ModelStore.getFile` (which downloads and checks the SHA-256) and is `put` under the URL
 * web-llm will ask for, so web-llm finds it and downloads nothing. On top of that, the chat
 * config, model library and tokenizer go to web-llm as SRI hashes (`ModelRecord.integrity`),
 * which web-llm checks after every read, including the model library it fetches past the
 * cache when its URL contains "localhost".
 */
import { AbortedError, ManifestError } from '../../../protocol/errors.ts';
import type { ModelFile, WebLlmBuild } from '../../../protocol/manifest.ts';
import type { ModelStore } from '../../models/store.ts';
import { sha256Hex } from './hash.ts';
import { webLlmUrls } from './select.ts';

/** The cache names web-llm 0.2.86 uses (`createArtifactCache` scopes in `reloadInternal`). */
export type WebLlmCacheScope = 'webllm/config' | 'webllm/wasm' | 'webllm/model';

export interface SeedEntry {
  file: ModelFile;
  /** Absolute URL, the cache key web-llm uses. */
  url: string;
  scope: WebLlmCacheScope;
}

/**
 * Where web-llm reads each listed file from. The tensor-cache index comes first so its shard
 * list is checked before any shard is downloaded. Files web-llm reads past its cache (the
 * model library on a localhost URL) or never reads are left out.
 */
export function planSeeding(build: WebLlmBuild, baseUrl?: string): SeedEntry[] {
  const urls = webLlmUrls(build, baseUrl);
  const entries: SeedEntry[] = [];
  for (const file of build.files) {
    const url = new URL(file.url, baseUrl).href;
    if (url === urls.config) entries.push({ file, url, scope: 'webllm/config' });
    else if (url === urls.modelLib) {
      // web-llm's `fetchWasmSource`: a URL containing "localhost" is fetched, never cached.
      if (!url.includes('localhost')) entries.push({ file, url, scope: 'webllm/wasm' });
    } else if (url.startsWith(urls.modelUrl)) entries.push({ file, url, scope: 'webllm/model' });
  }
  const rank = (e: SeedEntry): number => (e.url === urls.tensorCache ? 0 : 1);
  return entries.sort((a, b) => rank(a) - rank(b));
}

/** The parts of `CacheStorage` used here; `globalThis.caches` satisfies it. */
export interface CachesLike {
  open(name: string): Promise<{
    match(url: string): Promise<Response | undefined>;
    put(url: string, response: Response): Promise<void>;
    delete(url: string): Promise<boolean>;
  }>;
}

export interface SeedProgress {
  phase: 'download' | 'verify';
  /** Bytes of all listed files handled so far, and their total. */
  loadedBytes: number;
  totalBytes: number;
  url: string;
}

export interface SeedOptions {
  caches: CachesLike;
  store: ModelStore;
  signal?: AbortSignal;
  onProgress?: (progress: SeedProgress) => void;
  /** Keep the store's copy after seeding (default false: one copy on disk, in web-llm's cache). */
  keepStoreCopy?: boolean;
}

/**
 * Makes every planned file present in web-llm's cache with the listed SHA-256.
 * @throws IntegrityError, ModelUnreachableError, AbortedError (from the store);
 *   ManifestError when the tensor-cache index names a shard the build does not list.
 */
export async function seedWebLlmCache(build: WebLlmBuild, plan: readonly SeedEntry[], options: SeedOptions): Promise<void> {
  const totalBytes = plan.reduce((sum, e) => sum + e.file.size, 0);
  let doneBytes = 0;
  const listed = new Set(plan.map((e) => e.url));
  for (const entry of plan) {
    if (options.signal?.aborted === true) throw new AbortedError('Checking the model files');
    const cache = await options.caches.open(entry.scope);
    let bytes = await verifiedCachedCopy(cache, entry);
    if (bytes !== undefined) {
      options.onProgress?.({ phase: 'verify', loadedBytes: doneBytes + entry.file.size, totalBytes, url: entry.url });
    } else {
      const base = doneBytes;
      bytes = await options.store.getFile(entry.file, {
        ...(options.signal !== undefined && { signal: options.signal }),
        onProgress: (p) => options.onProgress?.({ phase: 'download', loadedBytes: base + p.loadedBytes, totalBytes, url: entry.url }),
      });
      await cache.put(
        entry.url,
        new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'content-length': String(bytes.byteLength) } }),
      );
      if (options.keepStoreCopy !== true) await options.store.evict([entry.file]);
    }
    doneBytes += entry.file.size;
    if (entry.url.endsWith('/tensor-cache.json')) checkShardsListed(build, entry.url, bytes, listed);
  }
}

async function verifiedCachedCopy(cache: Awaited<ReturnType<CachesLike['open']>>, entry: SeedEntry): Promise<Uint8Array | undefined> {
  const hit = await cache.match(entry.url);
  if (hit === undefined) return undefined;
  const bytes = new Uint8Array(await hit.arrayBuffer());
  if ((await sha256Hex(bytes)) === entry.file.sha256) return bytes;
  // A stale or damaged copy: web-llm would load it as is, so drop it and download again.
  await cache.delete(entry.url);
  return undefined;
}

/** Every shard the (verified) tensor-cache index names must be listed, or it would load unchecked. */
function checkShardsListed(build: WebLlmBuild, indexUrl: string, bytes: Uint8Array, listed: ReadonlySet<string>): void {
  let records: unknown;
  try {
    records = (JSON.parse(new TextDecoder().decode(bytes)) as { records?: unknown }).records;
  } catch {
    throw new ManifestError(
      `The tensor-cache.json of "${build.modelId}" (${indexUrl}) is not JSON. The build's files are wrong; fix the manifest.`,
    );
  }
  if (!Array.isArray(records)) return;
  const unlisted: string[] = [];
  for (const record of records) {
    const dataPath = (record as { dataPath?: unknown }).dataPath;
    if (typeof dataPath !== 'string') continue;
    const url = new URL(dataPath, indexUrl).href;
    if (!listed.has(url)) unlisted.push(dataPath);
  }
  if (unlisted.length > 0) {
    throw new ManifestError(
      `Build "${build.modelId}" lists tensor-cache.json but not its weight shard(s) ${unlisted.join(', ')}, so they would load unchecked. ` +
        'List every shard with its SHA-256 in the manifest.',
      { modelId: build.modelId, unlisted },
    );
  }
}
