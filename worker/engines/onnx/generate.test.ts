import { describe, expect, it } from 'vitest';
import { AbortedError, InvalidInputError } from '../../../protocol/errors.ts';
import { generate, type DecoderStep } from './generate.ts';

const VOCAB = 17;

/** Next token is a fixed function of the whole sequence: (sum of tokens × 7 + length) mod VOCAB. */
function nextOf(sequence: readonly number[]): number {
  return (sequence.reduce((a, b) => a + b, 0) * 7 + sequence.length) % VOCAB;
}

function oneHot(token: number): Float32Array {
  const logits = new Float32Array(VOCAB).fill(-1);
  logits[token] = 1;
  return logits;
}

/** A decoder whose "cache" is the sequence so far; checks that the loop feeds it consistently. */
class HistoryDecoder implements DecoderStep<number[]> {
  live = new Set<number[]>();
  calls: { tokens: number[]; pastLength: number }[] = [];
  async step(tokens: readonly number[], pastLength: number, cache: number[] | null) {
    expect(pastLength).toBe(cache?.length ?? 0);
    if (cache !== null) expect(this.live.has(cache)).toBe(true);
    this.calls.push({ tokens: [...tokens], pastLength });
    const sequence = [...(cache ?? []), ...tokens];
    this.live.add(sequence);
    return { logits: oneHot(nextOf(sequence)), cache: sequence };
  }
  release(cache: number[]) {
    expect(this.live.delete(cache)).toBe(true);
  }
}

/** The reference: recompute from the whole sequence each step, no cache. */
function reference(prompt: number[], maxTokens: number, eos: number[]): number[] {
  const sequence = [...prompt];
  const out: number[] = [];
  while (out.length < maxTokens) {
    const token = nextOf(sequence);
    if (eos.includes(token)) break;
    out.push(token);
    sequence.push(token);
  }
  return out;
}

const greedy = { temperature: 0, topP: 1, seed: 0 };

describe('generate', () => {
  it('feeds the prompt once, then one token per step, and matches a no-cache recompute', async () => {
    const decoder = new HistoryDecoder();
    const prompt = [3, 1, 4, 1, 5];
    const streamed: number[] = [];
    const out = await generate(decoder, prompt, {
      maxTokens: 12,
      maxContext: 64,
      eosTokenIds: [],
      sampling: greedy,
      onToken: (t) => streamed.push(t),
    });
    expect(out.tokens).toEqual(reference(prompt, 12, []));
    expect(out.finishReason).toBe('length');
    expect(streamed).toEqual(out.tokens);
    expect(decoder.calls[0]).toEqual({ tokens: prompt, pastLength: 0 });
    expect(decoder.calls.slice(1).every((c) => c.tokens.length === 1)).toBe(true);
    expect(decoder.live.size).toBe(0);
  });

  it('stops at an end token without emitting it', async () => {
    const prompt = [2, 7];
    const full = reference(prompt, 20, []);
    const eos = full[4]!;
    const out = await generate(new HistoryDecoder(), prompt, { maxTokens: 20, maxContext: 64, eosTokenIds: [eos], sampling: greedy });
    expect(out.tokens).toEqual(reference(prompt, 20, [eos]));
    expect(out.tokens).not.toContain(eos);
    expect(out.finishReason).toBe('stop');
  });

  it('stops at whichever of several end tokens comes first (config and generation config each name one)', async () => {
    const prompt = [2, 7];
    const full = reference(prompt, 20, []);
    const [early, late] = [full[3]!, full[6]!];
    const out = await generate(new HistoryDecoder(), prompt, {
      maxTokens: 20,
      maxContext: 64,
      eosTokenIds: [late, early],
      sampling: greedy,
    });
    expect(out.tokens).toEqual(full.slice(0, full.indexOf(early)));
    expect(out.finishReason).toBe('stop');
  });

  it('ends with stop when a stop sequence is written, keeping the token that wrote it', async () => {
    const prompt = [2, 7];
    const full = reference(prompt, 20, []);
    const out = await generate(new HistoryDecoder(), prompt, {
      maxTokens: 20,
      maxContext: 64,
      eosTokenIds: [],
      sampling: greedy,
      stopAfter: (tokens) => tokens.length === 5,
    });
    expect(out).toEqual({ tokens: full.slice(0, 5), finishReason: 'stop' });
  });

  it('stops at the context limit', async () => {
    const out = await generate(new HistoryDecoder(), [1, 2, 3], { maxTokens: 100, maxContext: 8, eosTokenIds: [], sampling: greedy });
    expect(out.tokens).toHaveLength(5);
  });

  it('refuses empty or too-long prompts with InvalidInputError', async () => {
    const options = { maxTokens: 4, maxContext: 4, eosTokenIds: [], sampling: greedy };
    await expect(generate(new HistoryDecoder(), [], options)).rejects.toBeInstanceOf(InvalidInputError);
    await expect(generate(new HistoryDecoder(), [1, 2, 3, 4], options)).rejects.toThrow(/Shorten the prompt/);
  });

  it('stops on abort and frees the cache', async () => {
    const controller = new AbortController();
    const decoder = new HistoryDecoder();
    const run = generate(decoder, [1], {
      maxTokens: 50,
      maxContext: 64,
      eosTokenIds: [],
      sampling: greedy,
      signal: controller.signal,
      onToken: (_t, i) => i === 2 && controller.abort(),
    });
    await expect(run).rejects.toBeInstanceOf(AbortedError);
    expect(decoder.live.size).toBe(0);
  });

  it('samples reproducibly with a seed', async () => {
    const sampling = { temperature: 1, topP: 0.9, seed: 1234 };
    const options = { maxTokens: 10, maxContext: 64, eosTokenIds: [], sampling };
    const a = await generate(new HistoryDecoder(), [5], options);
    const b = await generate(new HistoryDecoder(), [5], options);
    expect(a.tokens).toEqual(b.tokens);
  });
});
