/**
 * The catalog of real public models (catalog.json) and its pins (pins.json): which files of
 * which hub repository, at which revision and variant, and — once pinned — each file's size
 * and SHA-256. `pin` downloads each file once and records its hash; `mirror` copies pinned
 * files into a folder in the hub layout (`<owner>/<name>/resolve/<revision>/<file>`) that the
 * model host serves, for operators who do not want to depend on a hub at run time.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import * as v from 'valibot';
import { IntegrityError, ManifestError, ModelUnreachableError } from '../protocol/errors.ts';
import { HubSource, ModelEntry } from '../protocol/manifest.ts';

const FileName = v.pipe(
  v.string(),
  v.regex(/^(?!\/)(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9._\-/]+$/, 'a file name is a relative path without ".."'),
);
const Usd = v.pipe(v.number(), v.minValue(0));
const Bytes = v.pipe(v.number(), v.integer(), v.minValue(1));

const CatalogModel = v.strictObject({
  id: v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/)),
  kind: v.picklist(['embed', 'chat']),
  repository: HubSource.entries.repository,
  revision: HubSource.entries.revision,
  variant: HubSource.entries.variant,
  license: v.string(),
  files: v.pipe(v.array(FileName), v.minLength(1)),
  /** sentence-transformers files published in the original repository (pooling, normalization). */
  sentenceTransformers: v.optional(v.strictObject({ repository: HubSource.entries.repository, files: v.array(FileName) })),
  /** Download size before pinning, bytes (approximate; pins.json holds the exact sizes). */
  approxBytes: Bytes,
  /** GPU memory while loaded, bytes. */
  vramBytes: Bytes,
  /** The model card's input prefixes (e5: query/passage). */
  prefixes: v.optional(v.record(v.string(), v.string())),
  /**
   * A build for devices without shader-f16, published in the same repository: its graph
   * `files` replace the primary variant's graph; the other hub files are shared.
   */
  fallback: v.optional(v.strictObject({ variant: HubSource.entries.variant, files: v.pipe(v.array(FileName), v.minLength(1)) })),
  /**
   * web-llm's prebuilt MLC builds of the model, as `prebuiltAppConfig` of the web-llm version
   * named in `webllm.modelVersion` states them (catalog.test.ts compares every field).
   */
  webllm: v.optional(
    v.array(
      v.strictObject({
        quantization: v.picklist(['q4f16_1', 'q4f32_1']),
        /** web-llm's `model_id`. */
        modelId: v.string(),
        /** The hub repository of the weights (web-llm's `model` is `<hub>/<repository>`). */
        repository: HubSource.entries.repository,
        /** web-llm's `model_lib`: the compiled WebGPU library. */
        modelLib: v.pipe(v.string(), v.url()),
        /** web-llm's `vram_required_MB` (MiB) in bytes, rounded. */
        vramBytes: Bytes,
        /** web-llm's `low_resource_required`: meant to fit devices with little GPU memory. */
        lowResource: v.boolean(),
        /** web-llm's `overrides.context_window_size`, tokens. */
        contextWindow: v.pipe(v.number(), v.integer(), v.minValue(1)),
        /** web-llm's `required_features`, where it states any. */
        requiredFeatures: v.optional(v.array(v.string())),
      }),
    ),
  ),
  price: v.strictObject({
    usdPer1MInput: Usd,
    usdPer1MOutput: v.optional(Usd),
    /** Key of `prices.sources`. */
    source: v.string(),
    rule: v.string(),
  }),
});
export type CatalogModel = v.InferOutput<typeof CatalogModel>;

export const Catalog = v.strictObject({
  version: v.literal(1),
  /** Hub base URL; files are at `<hub>/<repository>/resolve/<revision>/<file>`. */
  hub: v.pipe(v.string(), v.url()),
  prices: v.strictObject({
    usdPerTon: v.pipe(v.number(), v.gtValue(0)),
    asOf: v.string(),
    sources: v.record(v.string(), v.string()),
    note: v.string(),
  }),
  /** Where the `webllm` builds' figures were read: web-llm's `modelVersion` (its model library folder). */
  webllm: v.strictObject({ package: v.literal('@mlc-ai/web-llm'), modelVersion: v.string() }),
  models: v.array(CatalogModel),
});
export type Catalog = v.InferOutput<typeof Catalog>;

/** `<repository>@<revision>/<file>` → its pinned size and SHA-256. */
export const Pins = v.record(
  v.string(),
  v.strictObject({ size: v.pipe(v.number(), v.integer(), v.minValue(0)), sha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)) }),
);
export type Pins = v.InferOutput<typeof Pins>;

export function parseCatalog(data: unknown): Catalog {
  const result = v.safeParse(Catalog, data);
  if (!result.success) throw new ManifestError(`The catalog is invalid: ${v.summarize(result.issues)}. Fix catalog.json.`);
  const catalog = result.output;
  for (const model of catalog.models) {
    if (catalog.prices.sources[model.price.source] === undefined) {
      throw new ManifestError(
        `Catalog model "${model.id}" cites price source "${model.price.source}", which prices.sources does not list.`,
      );
    }
    if (model.kind === 'chat' && model.price.usdPer1MOutput === undefined)
      throw new ManifestError(`Chat model "${model.id}" needs usdPer1MOutput.`);
  }
  return catalog;
}

export function readCatalog(path = new URL('./catalog.json', import.meta.url)): Catalog {
  return parseCatalog(JSON.parse(readFileSync(path, 'utf8')) as unknown);
}

export function readPins(path: string | URL): Pins {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  const result = v.safeParse(Pins, JSON.parse(text) as unknown);
  if (!result.success) throw new ManifestError(`The pins file is invalid: ${v.summarize(result.issues)}.`);
  return result.output;
}

/** One file of a catalog model, with where it is published. */
export interface CatalogFile {
  repository: string;
  revision: string;
  file: string;
  /** The key in pins.json. */
  key: string;
}

/** A graph file or its external data: what a variant has of its own. */
const isGraphFile = (name: string): boolean => /\.onnx(_data(_\d+)?)?$/.test(name);

/**
 * The files a model needs, the export's own, then the sentence-transformers repository's:
 * of its primary variant, of its `fallback` (the shared hub files with the fallback's graph
 * instead of the primary's), or of both (`all`: what pinning and mirroring fetch).
 */
export function filesOf(model: CatalogModel, part: 'all' | 'primary' | 'fallback' = 'all'): CatalogFile[] {
  const of = (repository: string, file: string): CatalogFile => ({
    repository,
    revision: model.revision,
    file,
    key: `${repository}@${model.revision}/${file}`,
  });
  const fallback = model.fallback?.files ?? [];
  if (part === 'fallback' && model.fallback === undefined) throw new ManifestError(`Catalog model "${model.id}" has no fallback build.`);
  const own =
    part === 'primary'
      ? model.files
      : part === 'fallback'
        ? [...model.files.filter((f) => !isGraphFile(f)), ...fallback]
        : [...model.files, ...fallback.filter((f) => !model.files.includes(f))];
  return [
    ...own.map((f) => of(model.repository, f)),
    ...(model.sentenceTransformers?.files ?? []).map((f) => of(model.sentenceTransformers?.repository ?? model.repository, f)),
  ];
}

export function fileUrl(hub: string, f: CatalogFile): string {
  return `${hub.replace(/\/+$/, '')}/${f.repository}/resolve/${f.revision}/${f.file}`;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

async function download(url: string, f: CatalogFile, fetchImpl: typeof fetch): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetchImpl(url);
  } catch (err) {
    throw new ModelUnreachableError(url, err instanceof Error ? err.message : String(err));
  }
  if (response.status === 404) {
    throw new ManifestError(
      `The hub has no file "${f.file}" in ${f.repository} at revision ${f.revision} (${url} answered 404). Fix the catalog's file list.`,
    );
  }
  if (!response.ok) throw new ModelUnreachableError(url, `HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

export interface PinResult {
  pinned: number;
  unchanged: number;
}

/**
 * Downloads each file of `models` once and records its size and SHA-256 in `pins`. A file
 * already pinned whose bytes now hash differently is refused with {@link IntegrityError}:
 * a published file changed under the same revision, and nothing is re-pinned silently.
 */
export async function pin(
  catalog: Catalog,
  pins: Pins,
  options: { hub?: string; ids?: readonly string[]; fetch?: typeof fetch } = {},
): Promise<PinResult> {
  const hub = options.hub ?? catalog.hub;
  const fetchImpl = options.fetch ?? fetch;
  const result: PinResult = { pinned: 0, unchanged: 0 };
  for (const model of selected(catalog, options.ids)) {
    for (const f of filesOf(model)) {
      const url = fileUrl(hub, f);
      const bytes = await download(url, f, fetchImpl);
      const found = { size: bytes.length, sha256: sha256(bytes) };
      const known = pins[f.key];
      if (known !== undefined) {
        if (known.sha256 !== found.sha256) throw new IntegrityError(url, known.sha256, found.sha256);
        result.unchanged++;
        continue;
      }
      pins[f.key] = found;
      result.pinned++;
    }
  }
  return result;
}

/**
 * Copies every pinned file of `models` into `dir` in the hub layout, each checked against its
 * pin; a model with unpinned files is refused (run `pin` first).
 */
export async function mirror(
  catalog: Catalog,
  pins: Pins,
  dir: string,
  options: { hub?: string; ids?: readonly string[]; fetch?: typeof fetch } = {},
): Promise<number> {
  const hub = options.hub ?? catalog.hub;
  const fetchImpl = options.fetch ?? fetch;
  let written = 0;
  for (const model of selected(catalog, options.ids)) {
    for (const f of filesOf(model)) {
      const known = pins[f.key];
      if (known === undefined)
        throw new ManifestError(`"${f.file}" of ${model.id} is not pinned yet. Run: npm run catalog -- pin ${model.id}`);
      const url = fileUrl(hub, f);
      const bytes = await download(url, f, fetchImpl);
      const found = sha256(bytes);
      if (found !== known.sha256 || bytes.length !== known.size) throw new IntegrityError(url, known.sha256, found);
      const path = join(dir, f.repository, 'resolve', f.revision, f.file);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, bytes);
      written++;
    }
  }
  return written;
}

/**
 * The manifest entries a mirror folder holds (written by `npm run catalog -- entries`), with
 * relative file URLs resolved under `baseUrl`, where the model host serves the mirror; none
 * when the folder has no entries file.
 */
export function readMirrorEntries(dir: string, baseUrl: string): ModelEntry[] {
  let text: string;
  try {
    text = readFileSync(join(dir, MIRROR_ENTRIES), 'utf8');
  } catch {
    return [];
  }
  const base = `${baseUrl.replace(/\/+$/, '')}/`;
  const result = v.safeParse(v.array(ModelEntry), JSON.parse(text) as unknown);
  if (!result.success) throw new ManifestError(`${join(dir, MIRROR_ENTRIES)} is invalid: ${v.summarize(result.issues)}.`);
  return result.output.map((entry) => ({ ...entry, files: entry.files.map((f) => ({ ...f, url: new URL(f.url, base).href })) }));
}

/** Per model: how many of its files are pinned. */
export function status(catalog: Catalog, pins: Pins): { id: string; files: number; pinned: number }[] {
  return catalog.models.map((model) => {
    const files = filesOf(model);
    return { id: model.id, files: files.length, pinned: files.filter((f) => pins[f.key] !== undefined).length };
  });
}

/** nanoTON per 1,000 tokens for a USD price per 1M tokens, at the catalog's rate. */
export function nanoTonPer1k(usdPer1M: number, usdPerTon: number): bigint {
  return BigInt(Math.round(((usdPer1M / 1000) * 1e9) / usdPerTon));
}

/** The file in a mirror folder that holds its manifest entries (`npm run catalog -- entries`); not served as a file. */
export const MIRROR_ENTRIES = 'manifest-entries.json';

/** A mirror folder as the model host's extra files: URL path → bytes. */
export function readMirror(dir: string): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const walk = (at: string): void => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (at === dir && name === MIRROR_ENTRIES) continue;
      else files.set(relative(dir, path).split('\\').join('/'), new Uint8Array(readFileSync(path)));
    }
  };
  walk(dir);
  return files;
}

function selected(catalog: Catalog, ids: readonly string[] | undefined): CatalogModel[] {
  if (ids === undefined || ids.length === 0) return catalog.models;
  return ids.map((id) => {
    const found = catalog.models.find((m) => m.id === id);
    if (found === undefined)
      throw new ManifestError(`The catalog has no model "${id}". It lists: ${catalog.models.map((m) => m.id).join(', ')}.`);
    return found;
  });
}
