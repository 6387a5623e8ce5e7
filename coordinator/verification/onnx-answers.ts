/**
 * Known answers for ONNX generation models, computed by the coordinator itself: the worker's
 * own onnx engine on onnxruntime-node (CPU), loaded from the files the manifest lists, each
 * fetched from the model host and checked against its pinned SHA-256 before use. Prompts are
 * sentences drawn with a CSPRNG from a word corpus; answers are greedy (`temperature` 0), so
 * any honest engine class reproduces them within the token-agreement tolerance.
 * Results are cached per model build (its files' hashes) for the life of the process.
 */
import { randomInt } from 'node:crypto';
import { Tokenizer } from '@huggingface/tokenizers';
import type { JobRequest } from '../../protocol/jobs.ts';
import { type ModelEntry, type OnnxModel, parseManifest } from '../../protocol/manifest.ts';
import type { KnownAnswer } from './canaries.ts';
import { readWords } from './known-answers.ts';
import { fetchModelFiles, loadOnnxNode, ModelFileMismatchError } from './onnx-node.ts';

export { ModelFileMismatchError };

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
  const bytes = await fetchModelFiles(model);
  const json = (name: string | undefined): object => {
    const b = name === undefined ? undefined : bytes.get(name);
    return b === undefined ? {} : (JSON.parse(new TextDecoder().decode(b)) as object);
  };
  const tokenizer = new Tokenizer(json(model.onnx.tokenizer), json(model.onnx.tokenizerConfig));
  const loaded = await loadOnnxNode(model, bytes);
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
