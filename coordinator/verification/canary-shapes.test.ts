/**
 * Canaries shaped like real jobs and sent at random moments: the shape of a canary (input
 * tokens, output budget) copies a recent real job of its model, and a cut generation answer
 * is what the float64 reference of the tiny decoder gives for that budget.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DECODER_TEST_PROMPTS, decoderTokenizer, referenceGreedy } from '../../modelhost/reference.ts';
import { testModels } from '../../modelhost/models/index.ts';
import type { JobResult } from '../../protocol/jobs.ts';
import { seededRandom } from '../../protocol/random.ts';
import type { KnownAnswer } from './canaries.ts';
import { CanaryMoments, JobShapes, ShapedCanaries, withOutputBudget } from './canary-shapes.ts';

const EOS = testModels().decoder.entry.onnx.decoder?.eosTokenIds ?? [];
const greedyAnswer = (prompt: number[], maxTokens: number): KnownAnswer => {
  const g = referenceGreedy(prompt, maxTokens, EOS);
  return {
    request: { kind: 'generate', model: 'tiny-decoder', prompt, maxTokens, sampling: { temperature: 0, topP: 1, seed: 0 } },
    expected: {
      kind: 'generate',
      tokens: g.tokens,
      finishReason: g.finishReason,
      usage: { promptTokens: prompt.length, completionTokens: g.tokens.length },
    },
  };
};
const prompts = DECODER_TEST_PROMPTS.map((p) => decoderTokenizer().encode(p).ids);

afterEach(() => {
  vi.useRealTimers();
});

describe('job shapes', () => {
  it('keep the last envelopes of each model and kind, and draw only from them', () => {
    const shapes = new JobShapes(seededRandom(1), 3);
    expect(shapes.draw('m', 'generate')).toBeNull();
    for (let i = 1; i <= 5; i++) shapes.note('m', 'generate', { inputTokens: i, maxOutputTokens: 10 * i });
    shapes.note('m', 'chat', { inputTokens: 99, maxOutputTokens: 1 });
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(shapes.draw('m', 'generate')?.inputTokens ?? -1);
    expect([...seen].sort()).toEqual([3, 4, 5]);
    expect(shapes.draw('m', 'chat')).toEqual({ inputTokens: 99, maxOutputTokens: 1 });
  });
});

describe('a known answer asked with a real job’s output budget', () => {
  it('is the reference’s own run for that budget, cut or unchanged, for budgets below, at and above its own', () => {
    let cut = 0;
    for (const prompt of prompts.slice(0, 4)) {
      const answer = greedyAnswer(prompt, 16);
      for (const m of [1, 3, 9, 16, 20]) {
        const shaped = withOutputBudget(answer, m);
        const reference = referenceGreedy(prompt, m, EOS);
        if (shaped === null) {
          // Only a run that hit its own budget cannot say what a larger budget gives.
          expect(answer.expected.kind === 'generate' && answer.expected.finishReason).toBe('length');
          expect(m).toBeGreaterThan(16);
          continue;
        }
        expect(shaped.request).toMatchObject({ maxTokens: m });
        const expected = shaped.expected as Extract<JobResult, { kind: 'generate' }>;
        expect(expected.tokens).toEqual(reference.tokens);
        expect(expected.usage.completionTokens).toBe(reference.tokens.length);
        if (expected.tokens.length < (answer.expected as typeof expected).tokens.length) cut++;
      }
    }
    expect(cut).toBeGreaterThan(0);
  }, 120_000);

  it('is not given for a chat answer whose text would have to be cut', () => {
    const chat: KnownAnswer = {
      request: {
        kind: 'chat',
        model: 'tiny-decoder',
        messages: [{ role: 'user', content: 'hi' }],
        maxTokens: 16,
        sampling: { temperature: 0, topP: 1, seed: 0 },
      },
      expected: { kind: 'chat', text: 'abcd', tokens: [5, 6, 7, 8], finishReason: 'stop', usage: { promptTokens: 5, completionTokens: 4 } },
    };
    expect(withOutputBudget(chat, 3)).toBeNull();
    expect(withOutputBudget(chat, 4)?.expected).toMatchObject({ text: 'abcd', finishReason: 'length' });
    expect(withOutputBudget(chat, 40)?.request).toMatchObject({ maxTokens: 40 });
  });
});

describe('shaped canaries', () => {
  it('copy a recent real job: the nearest input size, and its output budget', () => {
    const answers = Array.from({ length: 12 }, (_, i) =>
      greedyAnswer(decoderTokenizer().encode('the model runs '.repeat(i + 1).trim()).ids, 16),
    );
    const canaries = new ShapedCanaries(answers, seededRandom(3));
    // Before any real job: any answer, as drawn.
    expect(canaries.next('tiny-decoder', 'generate')).not.toBeNull();
    const sizes = answers.map((a) => a.expected.usage.promptTokens);
    const target = sizes[7] ?? 0;
    canaries.observe('tiny-decoder', 'generate', { inputTokens: target, maxOutputTokens: 5 });
    for (let i = 0; i < 30; i++) {
      const c = canaries.next('tiny-decoder', 'generate');
      if (c === null || c.request.kind !== 'generate') throw new Error('no canary');
      expect(c.request.maxTokens).toBe(5);
      // Among the three answers nearest in size.
      const nearest = [...sizes].sort((a, b) => Math.abs(a - target) - Math.abs(b - target)).slice(0, 3);
      expect(nearest).toContain(c.expected.usage.promptTokens);
      expect(c.expected.usage.completionTokens).toBeLessThanOrEqual(5);
    }
    expect(canaries.next('tiny-decoder', 'chat')).toBeNull();
  });
});

describe('canary moments', () => {
  it('send at once with no delay set, and otherwise at a random moment within it', () => {
    vi.useFakeTimers();
    const sent: number[] = [];
    new CanaryMoments(0, () => 0.5).at(() => sent.push(Date.now()));
    expect(sent).toHaveLength(1);
    const moments = new CanaryMoments(60_000, seededRandom(9));
    const start = Date.now();
    for (let i = 0; i < 20; i++) moments.at(() => sent.push(Date.now() - start));
    expect(sent).toHaveLength(1);
    expect(moments.waiting).toBe(20);
    vi.advanceTimersByTime(60_000);
    const delays = sent.slice(1);
    expect(delays).toHaveLength(20);
    expect(Math.max(...delays)).toBeLessThan(60_000);
    // Spread over the window, not bunched at its start.
    expect(new Set(delays.map((d) => Math.floor(d / 10_000))).size).toBeGreaterThan(3);
    moments.at(() => sent.push(-1));
    moments.stop();
    vi.advanceTimersByTime(60_000);
    expect(sent).not.toContain(-1);
  });
});
