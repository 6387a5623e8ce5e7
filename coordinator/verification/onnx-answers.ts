/**
 * Known answers for ONNX generation models, computed by the coordinator itself: the worker's
 * own onnx engine on onnxruntime-node (CPU), loaded from the files the manifest lists, each
 * fetched from the model host and checked against its pinned SHA-256 before use. Prompts are
 * sentences drawn with a CSPRNG from a word corpus; answers are greedy (`temperature` 0), so
 * any honest engine class reproduces them within the token-agreement tolerance.
 * Results are cached per model build (its files' hashes) for the life of the process.
 */
import { createHash, randomInt } from 'node:crypto';
import { Tokenizer } from '@huggingface/tokenizers';
import * as ortNode from 'onnxruntime-node';
import type { JobRequest } from '../../protocol/jobs.ts';
import { type ModelEntry, type ModelFile, type OnnxModel, parseManifest } from '../../protocol/manifest.ts';
import { OnnxEngine } from '../../worker/engines/onnx/engine.ts';
import type { OrtModule } from '../../worker/engines/onnx/ort.ts';
import type { EngineContext } from '../../worker/engines/types.ts';
import type { KnownAnswer } from './canaries.ts';
import { readWords } from './known-answers.ts';

/** A model file whose bytes do not hash to the manifest's pin: nothing is computed from it. */
export class ModelFileMismatchError extends Error {
  override readonly name = 'ModelFileMismatchError';
}

export interface OnnxAnswerOptions {
  manifestUrl: string;
  /** Known answers per model. */
  count: number;
  /** Tokens each canary generates at most. Default 16. */
  maxTokens?: number;
  /** Models whose files add up to more are left to replicas (computing on the CPU at start must stay quick). Default 64 MiB. */
  maxModelBytes?: number;
  /** Integers in [0, n): a CSPRNG by default. */
  randomInt?: (n: number) => number;
}

// onnxruntime-node implements onnxruntime-web's API; its CPU provider runs the same graphs.
const ort = {
  ...ortNode,
  InferenceSession: {
    create: (bytes: Uint8Array, options: object) => ortNode.InferenceSession.create(bytes, { ...options, executionProviders: ['cpu'] }),
  },
} as unknown as OrtModule;

const cache = new Map<string, Promise<KnownAnswer[]>>();

/** `count` known `generate` answers for each ONNX decoder model of the manifest (those within `maxModelBytes`). */
export async function onnxGenerateKnownAnswers(options: OnnxAnswerOptions): Promise<KnownAnswer[]> {
  const res = await fetch(options.manifestUrl);
  if (!res.ok) throw new Error(`The manifest at ${options.manifestUrl} answered ${res.status}; known answers need it.`);
  const manifest = parseManifest(await res.json());
  const maxBytes = options.maxModelBytes ?? 64 * 1024 * 1024;
  const decoders = manifest.models.filter(
    (m: ModelEntry): m is OnnxModel =>
      m.engine === 'onnx' &&
      m.onnx.decoder !== undefined &&
      m.onnx.tokenizer !== undefined &&
      m.files.reduce((n, f) => n + f.size, 0) <= maxBytes,
  );
  const all: KnownAnswer[] = [];
  for (const model of decoders) {
    const key = `${model.id}:${model.files.map((f) => f.sha256).join(',')}:${options.count}:${options.maxTokens ?? 16}`;
    let answers = cache.get(key);
    if (answers === undefined) {
      answers = computeAnswers(model, options);
      cache.set(key, answers);
      answers.catch(() => cache.delete(key));
    }
    all.push(...(await answers));
  }
  return all;
}

async function computeAnswers(model: OnnxModel, options: OnnxAnswerOptions): Promise<KnownAnswer[]> {
  const bytes = new Map<string, Uint8Array>();
  for (const file of model.files) bytes.set(file.name, await fetchPinned(file));
  const json = (name: string | undefined): object => {
    const b = name === undefined ? undefined : bytes.get(name);
    return b === undefined ? {} : (JSON.parse(new TextDecoder().decode(b)) as object);
  };
  const tokenizer = new Tokenizer(json(model.onnx.tokenizer), json(model.onnx.tokenizerConfig));
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
  const loaded = await new OnnxEngine(ctx, { loadOrt: async () => ort }).load(model);
  const draw = options.randomInt ?? ((n: number) => randomInt(n));
  const words = readWords().filter((w) => /^[a-z]+$/.test(w));
  const answers: KnownAnswer[] = [];
  try {
    for (let i = 0; i < options.count; i++) {
      const n = 3 + draw(7);
      const text = Array.from({ length: n }, () => words[draw(words.length)] ?? 'the').join(' ');
      const request: JobRequest = {
        kind: 'generate',
        model: model.id,
        prompt: tokenizer.encode(text).ids,
        maxTokens: options.maxTokens ?? 16,
        sampling: { temperature: 0, topP: 1, seed: 0 },
      };
      const expected = await loaded.run(request);
      if (expected.kind !== 'generate') throw new Error(`${model.id} answered a generate job with ${expected.kind}`);
      answers.push({ request, expected });
    }
  } finally {
    await loaded.unload();
  }
  return answers;
}

async function fetchPinned(file: ModelFile): Promise<Uint8Array> {
  const res = await fetch(file.url);
  if (!res.ok) throw new Error(`${file.url} answered ${res.status}; known answers need the model's files.`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const hash = createHash('sha256').update(bytes).digest('hex');
  if (hash !== file.sha256)
    throw new ModelFileMismatchError(
      `${file.url} hashes to ${hash}, not the manifest's ${file.sha256}; fix the model host or the manifest.`,
    );
  return bytes;
}
