/**
 * What the catalog generates for a network that serves its models: the model host's manifest
 * entries (hub repository, revision and variant, each file with its size and SHA-256, and the
 * facts read from the model's own files by protocol/hub-config.ts), built from a mirror folder
 * written by `npm run catalog -- mirror`; and the coordinator's price entries, from the
 * catalog's cited USD prices at its USD/TON rate (coordinator/ledger/prices.json's shape).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import { IntegrityError, ManifestError } from '../protocol/errors.ts';
import { OnnxModel, WebLlmModel } from '../protocol/manifest.ts';
import { estimateVram, withHubFacts } from '../modelhost/models/layers.ts';
import { largestInitializerBytes } from '../modelhost/models/onnx-graph.ts';
import { PriceListSchema } from '../coordinator/ledger/prices.ts';
import { filesOf, nanoTonPer1k, type Catalog, type CatalogModel, type Pins } from './catalog.ts';

/** The hub files by role, as published: the export's own, then the sentence-transformers repository's. */
const ROLES = {
  config: 'config.json',
  generationConfig: 'generation_config.json',
  tokenizer: 'tokenizer.json',
  tokenizerConfig: 'tokenizer_config.json',
  modules: 'modules.json',
  pooling: '1_Pooling/config.json',
  sentenceBertConfig: 'sentence_bert_config.json',
} as const;

/** Where a mirrored file lies under the mirror folder and under the model host: the hub's own path. */
export function mirrorPath(repository: string, revision: string, file: string): string {
  return `${repository}/resolve/${revision}/${file}`;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

function selectedModels(catalog: Catalog, ids: readonly string[] | undefined): CatalogModel[] {
  const models = ids === undefined || ids.length === 0 ? catalog.models : catalog.models.filter((m) => ids.includes(m.id));
  const missing = (ids ?? []).filter((id) => !catalog.models.some((m) => m.id === id));
  if (missing.length > 0) throw new ManifestError(`The catalog has no model ${missing.map((id) => `"${id}"`).join(', ')}.`);
  return models;
}

/** The id of a catalog model's fallback entry (`Qwen2.5-0.5B-Instruct-q4`). */
export const fallbackId = (model: CatalogModel): string => `${model.id}-${model.fallback?.variant ?? ''}`;

/** The id of a catalog model's web-llm entry, which holds both of its MLC builds (`Qwen2.5-0.5B-Instruct-MLC`). */
export const webllmId = (model: CatalogModel): string => `${model.id}-MLC`;

/**
 * The model host's manifest entries for the onnx builds of `catalog`'s models (all, or
 * `ids`), read from the mirror folder `dir`: each model's primary variant under its own id,
 * and its `fallback` build (q4, for devices without shader-f16) under {@link fallbackId}.
 * Every file must be pinned and its mirrored bytes must match the pin (else
 * {@link IntegrityError}); a file the mirror lacks is an error that names it. File URLs are
 * relative to the manifest (the host serves the mirror at the hub's paths), or under
 * `baseUrl` when given.
 */
export function manifestEntries(
  catalog: Catalog,
  pins: Pins,
  dir: string,
  options: { ids?: readonly string[]; baseUrl?: string } = {},
): OnnxModel[] {
  return selectedModels(catalog, options.ids).flatMap((model) => [
    entryOf(model, pins, dir, options.baseUrl, 'primary'),
    ...(model.fallback === undefined ? [] : [entryOf(model, pins, dir, options.baseUrl, 'fallback')]),
  ]);
}

/**
 * A web-llm manifest entry for each catalog model with prebuilt MLC builds (all, or `ids`):
 * both builds under {@link webllmId} (the engine takes q4f16_1 where the device has
 * shader-f16, else q4f32_1), each with web-llm's own figures from the catalog. web-llm fetches
 * the weights from the hub and the model library from web-llm's library host at run time:
 * these builds are neither pinned nor mirrored, so their entries list no file hashes.
 */
export function webllmEntries(catalog: Catalog, options: { ids?: readonly string[] } = {}): WebLlmModel[] {
  const hub = catalog.hub.replace(/\/+$/, '');
  return selectedModels(catalog, options.ids).flatMap((model): WebLlmModel[] => {
    const builds = model.webllm ?? [];
    if (builds.length === 0) return [];
    const entry = v.safeParse(WebLlmModel, {
      id: webllmId(model),
      name: `${model.id} (web-llm)`,
      description: `web-llm's prebuilt MLC builds of ${model.id} (${builds.map((b) => b.modelId).join(', ')}), as web-llm ${catalog.webllm.modelVersion} states them.`,
      license: model.license,
      kinds: ['chat'],
      engine: 'webllm',
      files: [],
      // The least any build needs: the engine picks the build that fits the device.
      vramBytes: Math.min(...builds.map((b) => b.vramBytes)),
      requiredFeatures: [],
      webllm: {
        builds: builds.map((b) => ({
          quantization: b.quantization,
          modelId: b.modelId,
          model: `${hub}/${b.repository}`,
          modelLib: b.modelLib,
          vramBytes: b.vramBytes,
          requiredFeatures: b.requiredFeatures ?? [],
          contextWindow: b.contextWindow,
          files: [],
        })),
      },
    });
    if (!entry.success) throw new ManifestError(`The web-llm entry made for ${model.id} is invalid: ${v.summarize(entry.issues)}.`);
    return [entry.output];
  });
}

function entryOf(model: CatalogModel, pins: Pins, dir: string, baseUrl: string | undefined, part: 'primary' | 'fallback'): OnnxModel {
  const files = new Map<string, Uint8Array>();
  const listed: OnnxModel['files'] = [];
  for (const f of filesOf(model, part)) {
    const pinned = pins[f.key];
    if (pinned === undefined)
      throw new ManifestError(`"${f.file}" of ${model.id} is not pinned yet. Run: npm run catalog -- pin ${model.id}`);
    if (files.has(f.file)) throw new ManifestError(`${model.id} lists "${f.file}" twice (in ${f.repository} and another repository).`);
    const path = mirrorPath(f.repository, f.revision, f.file);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(join(dir, path)));
    } catch {
      throw new ManifestError(
        `The mirror has no "${f.file}" of ${model.id} (${path} under ${dir}). Run: npm run catalog -- mirror --out ${dir} ${model.id}`,
      );
    }
    const found = sha256(bytes);
    if (found !== pinned.sha256 || bytes.length !== pinned.size) throw new IntegrityError(join(dir, path), pinned.sha256, found);
    files.set(f.file, bytes);
    const url = baseUrl === undefined ? path : `${baseUrl.replace(/\/+$/, '')}/${path}`;
    listed.push({ name: f.file, url, size: pinned.size, sha256: pinned.sha256 });
  }
  const variant = part === 'fallback' ? (model.fallback?.variant ?? model.variant) : model.variant;
  const graph = [...files.keys()].find((name) => name.startsWith('onnx/') && name.endsWith('.onnx'));
  if (graph === undefined)
    throw new ManifestError(`${model.id} lists no onnx/*.onnx graph file${part === 'fallback' ? ' for its fallback' : ''}.`);
  const role = (name: string): string | undefined => (files.has(name) ? name : undefined);
  const names = Object.fromEntries(
    Object.entries(ROLES)
      .map(([key, name]) => [key, role(name)] as const)
      .filter(([, name]) => name !== undefined),
  );
  const graphBytes = files.get(graph) ?? new Uint8Array();
  const fp16 = variant === 'fp16' || variant === 'q4f16';
  const draft = withHubFacts(
    {
      id: part === 'fallback' ? fallbackId(model) : model.id,
      name: part === 'fallback' ? `${model.id} (${variant})` : model.id,
      description:
        part === 'fallback'
          ? `${model.repository} (${variant}, for devices without shader-f16) at revision ${model.revision}.`
          : `${model.repository} (${variant}) at revision ${model.revision}.`,
      license: model.license,
      kinds: model.kind === 'embed' ? ['embed'] : ['generate', 'chat'],
      engine: 'onnx',
      // The catalog's figure, or twice the weights where the catalog's is smaller.
      vramBytes: Math.max(model.vramBytes, estimateVram(graphBytes.length, 0)),
      maxBufferBytes: largestInitializerBytes(graphBytes),
      requiredFeatures: fp16 ? ['shader-f16'] : [],
      hub: { repository: model.repository, revision: model.revision, variant },
      onnx: { model: graph, ...names, backends: ['webgpu', 'wasm'] },
    },
    files,
    model.prefixes ?? {},
  );
  const entry = v.safeParse(OnnxModel, { ...draft, files: listed });
  if (!entry.success) throw new ManifestError(`The entry made for ${model.id} is invalid: ${v.summarize(entry.issues)}.`);
  return entry.output;
}

/** One model's price as coordinator/ledger/prices.json writes it (nanoTON per 1,000 tokens, decimal strings). */
export type PriceEntry =
  { kind: 'chat'; unit: 'tokens'; promptPer1k: string; completionPer1k: string } | { kind: 'embed'; unit: 'tokens'; inputPer1k: string };

/** Every manifest id a catalog model is served under: its own, its fallback build's and its web-llm entry's. */
export function servedIds(model: CatalogModel): string[] {
  return [model.id, ...(model.fallback ? [fallbackId(model)] : []), ...((model.webllm ?? []).length > 0 ? [webllmId(model)] : [])];
}

/**
 * The coordinator's price entry for each id a catalog model is served under (the same model
 * costs the same in every build), from its cited USD price at the catalog's USD/TON rate.
 */
export function priceEntries(catalog: Catalog): Record<string, PriceEntry> {
  const rate = catalog.prices.usdPerTon;
  const nano = (usd: number): string => nanoTonPer1k(usd, rate).toString();
  return Object.fromEntries(
    catalog.models.flatMap((m) => {
      const price: PriceEntry =
        m.kind === 'embed'
          ? { kind: 'embed', unit: 'tokens', inputPer1k: nano(m.price.usdPer1MInput) }
          : {
              kind: 'chat',
              unit: 'tokens',
              promptPer1k: nano(m.price.usdPer1MInput),
              completionPer1k: nano(m.price.usdPer1MOutput ?? m.price.usdPer1MInput),
            };
      return servedIds(m).map((id): [string, PriceEntry] => [id, price]);
    }),
  );
}

/**
 * `prices` (a parsed prices.json) with the catalog's models set to their catalog prices;
 * every other model (the test models, with their test prices) kept as it is. The result is
 * checked against the coordinator's own schema.
 */
export function mergePrices(prices: unknown, catalog: Catalog): { commissionBps: number; models: Record<string, unknown> } {
  const base = v.safeParse(v.object({ commissionBps: v.number(), models: v.record(v.string(), v.unknown()) }), prices);
  if (!base.success) throw new ManifestError(`The price list to merge into is invalid: ${v.summarize(base.issues)}.`);
  const merged = { commissionBps: base.output.commissionBps, models: { ...base.output.models, ...priceEntries(catalog) } };
  const checked = v.safeParse(PriceListSchema, merged);
  if (!checked.success) throw new ManifestError(`The merged price list is invalid: ${v.summarize(checked.issues)}.`);
  return merged;
}
