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
import type { OnnxModel } from '../../protocol/manifest.ts';
import { promptTokenIds } from '../../protocol/prompt.ts';
import type { KnownAnswer } from '../../coordinator/verification/canaries.ts';
import { readWords } from './tiny-embed.ts';
import { MarginProbe } from './margins.ts';
import { fetchModelFiles, knownAnswersPerModel, loadOnnxNode, ModelFileMismatchError } from './onnx-node.ts';

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
  /** Least gap between the best and the runner-up logit at every decided position; closer prompts are dropped. Default 0.05. */
  minMargin?: number;
}

/** A greedy choice closer than this to its runner-up could go the other way on another backend. */
export const DEFAULT_MIN_MARGIN = 0.05;

const cache = new Map<string, Promise<KnownAnswer[]>>();

/** `count` known `generate` answers, and as many `chat` ones where it has a chat template, for each ONNX decoder model of the manifest (those within `maxModelBytes`). */
export async function onnxGenerateKnownAnswers(options: OnnxAnswerOptions): Promise<KnownAnswer[]> {
  return await knownAnswersPerModel(
    options,
    (m): m is OnnxModel => m.engine === 'onnx' && m.onnx.decoder !== undefined && m.onnx.tokenizer !== undefined,
    cache,
    `${options.count}:${options.maxTokens ?? 16}:${options.minMargin ?? DEFAULT_MIN_MARGIN}`,
    (model) => computeAnswers(model, options),
  );
}

async function computeAnswers(model: OnnxModel, options: OnnxAnswerOptions): Promise<KnownAnswer[]> {
  const bytes = await fetchModelFiles(model);
  const json = (name: string | undefined): object => {
    const b = name === undefined ? undefined : bytes.get(name);
    return b === undefined ? {} : (JSON.parse(new TextDecoder().decode(b)) as object);
  };
  const tokenizer = new Tokenizer(json(model.onnx.tokenizer), json(model.onnx.tokenizerConfig));
  const spec = model.onnx.decoder;
  if (spec === undefined || !bytes.has(model.onnx.model)) return [];
  const loaded = await loadOnnxNode(model, bytes);
  const margins = await MarginProbe.open(model, spec, bytes);
  const draw = options.randomInt ?? ((n: number) => randomInt(n));
  const words = readWords().filter((w) => /^[a-z]+$/.test(w));
  const minMargin = options.minMargin ?? DEFAULT_MIN_MARGIN;
  // Chat canaries too, for decoders with a chat template: a device cannot skip them by kind.
  const kinds: ('generate' | 'chat')[] = spec.chatTemplate === undefined ? ['generate'] : ['generate', 'chat'];
  const answers: KnownAnswer[] = [];
  try {
    for (const kind of kinds) {
      let kept = 0;
      // Prompts whose greedy run nearly ties somewhere are dropped: an honest device of another backend could flip them.
      for (let tries = 0; kept < options.count && tries < options.count * 8; tries++) {
        // 2–16 words: canaries are matched to the sizes of real jobs (canary-shapes.ts).
        const n = 2 + draw(15);
        const text = Array.from({ length: n }, () => words[draw(words.length)] ?? 'the').join(' ');
        const sampling = { temperature: 0, topP: 1, seed: 0 };
        const maxTokens = options.maxTokens ?? 16;
        const request: JobRequest =
          kind === 'generate'
            ? { kind, model: model.id, prompt: tokenizer.encode(text).ids, maxTokens, sampling }
            : { kind, model: model.id, messages: [{ role: 'user', content: text }], maxTokens, sampling };
        const expected = await loaded.run(request);
        if (expected.kind !== kind || expected.tokens === undefined)
          throw new Error(`${model.id} answered a ${kind} job with ${expected.kind}`);
        // A run that stops at once checks little beyond its end token.
        if (expected.tokens.length === 0) continue;
        const prompt = promptTokenIds(tokenizer, spec, request);
        if ((await margins.smallest(prompt, expected.tokens, expected.finishReason === 'stop')) < minMargin) continue;
        answers.push({ request, expected });
        kept++;
      }
    }
  } finally {
    await loaded.unload();
    await margins.close();
  }
  return answers;
}
