/**
 * The worker's own onnx engine on onnxruntime-node (CPU), loaded from a manifest entry's files
 * fetched from the model host, each checked against its pinned SHA-256 before use. The
 * operator computes the coordinator's known answers with it (onnx-answers.ts); tests run contributor devices on it.
 */
import { createHash } from 'node:crypto';
import * as ortNode from 'onnxruntime-node';
import { type ModelEntry, type ModelFile, type OnnxModel, parseManifest } from '../../protocol/manifest.ts';
import type { KnownAnswer } from '../../coordinator/verification/canaries.ts';
import { OnnxEngine } from '../../worker/engines/onnx/engine.ts';
import type { OrtModule } from '../../worker/engines/onnx/ort.ts';
import type { EngineContext, LoadedModel } from '../../worker/engines/types.ts';

/** A model file whose bytes do not hash to the manifest's pin: nothing is computed from it. */
export class ModelFileMismatchError extends Error {
  override readonly name = 'ModelFileMismatchError';
}

// onnxruntime-node implements onnxruntime-web's API; its CPU provider runs the same graphs.
export const nodeOrt = {
  ...ortNode,
  InferenceSession: {
    create: (bytes: Uint8Array, options: object) => ortNode.InferenceSession.create(bytes, { ...options, executionProviders: ['cpu'] }),
  },
} as unknown as OrtModule;

/** `model`'s files, fetched and checked against their pins, by file name. */
export async function fetchModelFiles(model: OnnxModel): Promise<Map<string, Uint8Array>> {
  const bytes = new Map<string, Uint8Array>();
  for (const file of model.files) bytes.set(file.name, await fetchPinned(file));
  return bytes;
}

/** `model` loaded in the onnx engine on onnxruntime-node from `bytes` ({@link fetchModelFiles}). */
export async function loadOnnxNode(model: OnnxModel, bytes: ReadonlyMap<string, Uint8Array>): Promise<LoadedModel> {
  const ctx: EngineContext = {
    store: {
      getFile: async (file) => {
        const b = bytes.get(file.name);
        if (b === undefined) throw new Error(`${model.id} lists no file ${file.name}`);
        return b;
      },
      has: async () => true,
      evict: async () => 0,
    },
    gpu: () => null,
    device: async () => null,
  };
  // The CPU session runs every graph the manifest lists, WebGPU-only ones (tiny-q4's 4-bit kernel) too.
  const cpu: OnnxModel = { ...model, onnx: { ...model.onnx, backends: ['wasm'] } };
  return await new OnnxEngine(ctx, { loadOrt: async () => nodeOrt }).load(cpu);
}

/**
 * Known answers for each model of the manifest at `manifestUrl` that `pick` takes and whose files
 * add up to at most `maxModelBytes` (default 64 MiB: computing on the CPU at start must stay
 * quick), computed once per `cache` key (`key` adds the settings to the model's build, its
 * files' hashes); a failed computation is forgotten, so the next call tries again.
 */
export async function knownAnswersPerModel(
  options: { manifestUrl: string; maxModelBytes?: number },
  pick: (m: ModelEntry) => m is OnnxModel,
  cache: Map<string, Promise<KnownAnswer[]>>,
  key: string,
  compute: (model: OnnxModel) => Promise<KnownAnswer[]>,
): Promise<KnownAnswer[]> {
  const res = await fetchOnceMore(options.manifestUrl);
  if (!res.ok) throw new Error(`The manifest at ${options.manifestUrl} answered ${res.status}; known answers need it.`);
  const manifest = parseManifest(await res.json());
  const maxBytes = options.maxModelBytes ?? 64 * 1024 * 1024;
  const models = manifest.models.filter((m): m is OnnxModel => pick(m) && m.files.reduce((n, f) => n + f.size, 0) <= maxBytes);
  const all: KnownAnswer[] = [];
  for (const model of models) {
    const k = `${model.id}:${model.files.map((f) => f.sha256).join(',')}:${key}`;
    let answers = cache.get(k);
    if (answers === undefined) {
      answers = compute(model);
      cache.set(k, answers);
      answers.catch(() => cache.delete(k));
    }
    all.push(...(await answers));
  }
  return all;
}

/**
 * `fetch`, tried once more after a network error (a model host that just restarted, or a
 * kept-alive connection it closed); an HTTP answer is returned as it is.
 */
export async function fetchOnceMore(url: string): Promise<Response> {
  try {
    return await fetch(url);
  } catch {
    await new Promise((resolve) => setTimeout(resolve, 200));
    return await fetch(url);
  }
}

async function fetchPinned(file: ModelFile): Promise<Uint8Array> {
  const res = await fetchOnceMore(file.url);
  if (!res.ok) throw new Error(`${file.url} answered ${res.status}; the model's files are needed.`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const hash = createHash('sha256').update(bytes).digest('hex');
  if (hash !== file.sha256)
    throw new ModelFileMismatchError(
      `${file.url} hashes to ${hash}, not the manifest's ${file.sha256}; fix the model host or the manifest.`,
    );
  return bytes;
}
