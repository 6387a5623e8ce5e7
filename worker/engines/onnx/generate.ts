/**
 * The autoregressive loop over a decoder with a key/value cache, independent of where the
 * tensors live: the ONNX session implements {@link DecoderStep}, and so does a JS reference.
 */
import { AbortedError, InvalidInputError } from '../../../protocol/errors.ts';
import type { FinishReason, Sampling } from '../../../protocol/jobs.ts';
import { createSampler } from './sampling.ts';

/** One forward pass: new tokens in, logits of the last position and the grown cache out. */
export interface DecoderStep<Cache> {
  /**
   * @param tokens the new tokens (the whole prompt first, then one token per step)
   * @param pastLength tokens already in `cache` (0 on the first call)
   * @param cache the cache from the previous step, or null on the first call
   * @returns the logits at the last new position (length = vocabulary) and the new cache
   */
  step(tokens: readonly number[], pastLength: number, cache: Cache | null): Promise<{ logits: Float32Array; cache: Cache }>;
  /** Frees a cache that is no longer needed (GPU buffers). */
  release(cache: Cache): void;
}

export interface GenerateOptions {
  maxTokens: number;
  /** Longest sequence, prompt included. */
  maxContext: number;
  eosTokenIds: readonly number[];
  sampling: Sampling;
  signal?: AbortSignal;
  /** Called with each new token as soon as it is chosen. */
  onToken?: (token: number, index: number) => void;
  /** Checked after each token: true ends the generation with `stop` (a stop sequence was written). */
  stopAfter?: (tokens: readonly number[]) => boolean;
}

export interface Generation {
  tokens: number[];
  finishReason: FinishReason;
}

export async function generate<Cache>(
  decoder: DecoderStep<Cache>,
  prompt: readonly number[],
  options: GenerateOptions,
): Promise<Generation> {
  if (prompt.length === 0) throw new InvalidInputError('The prompt is empty. Send at least one token.');
  if (prompt.length >= options.maxContext) {
    throw new InvalidInputError(
      `The prompt is ${prompt.length} tokens; this model's context holds ${options.maxContext}, so nothing can be generated. Shorten the prompt.`,
      { promptTokens: prompt.length, maxContext: options.maxContext },
    );
  }
  const budget = Math.min(options.maxTokens, options.maxContext - prompt.length);
  const sample = createSampler(options.sampling);
  const eos = new Set(options.eosTokenIds);
  const tokens: number[] = [];
  let cache: Cache | null = null;
  let pending: readonly number[] = prompt;
  let pastLength = 0;
  try {
    while (tokens.length < budget) {
      if (options.signal?.aborted) throw new AbortedError('Generation');
      const out: { logits: Float32Array; cache: Cache } = await decoder.step(pending, pastLength, cache);
      if (cache !== null) decoder.release(cache);
      cache = out.cache;
      pastLength += pending.length;
      const token = sample(out.logits);
      if (eos.has(token)) return { tokens, finishReason: 'stop' };
      tokens.push(token);
      options.onToken?.(token, tokens.length - 1);
      if (options.stopAfter?.(tokens) === true) return { tokens, finishReason: 'stop' };
      pending = [token];
    }
    return { tokens, finishReason: 'length' };
  } finally {
    if (cache !== null) decoder.release(cache);
  }
}
