import { describe, expect, it } from 'vitest';
import { clampUsage, envelopeProblem, minInputTokens, PAYLOAD_OVERHEAD_BYTES } from './billing.ts';

describe('billing envelopes', () => {
  it('clamps a reported usage to the envelope, and leaves one within it alone', () => {
    const envelope = { inputTokens: 40, maxOutputTokens: 16 };
    expect(clampUsage({ promptTokens: 1_000_000, completionTokens: 1_000_000 }, envelope)).toEqual({
      promptTokens: 40,
      completionTokens: 16,
    });
    expect(clampUsage({ promptTokens: 12, completionTokens: 3 }, envelope)).toEqual({ promptTokens: 12, completionTokens: 3 });
    expect(clampUsage({ promptTokens: 41, completionTokens: 0 }, { inputTokens: 40, maxOutputTokens: 0 })).toEqual({
      promptTokens: 40,
      completionTokens: 0,
    });
  });

  it('sets no byte floor without tokenizer facts, and one token per maxBytesPerToken beyond the overhead', () => {
    expect(minInputTokens(1_000_000, null)).toBe(0);
    expect(minInputTokens(PAYLOAD_OVERHEAD_BYTES, 10)).toBe(0);
    expect(minInputTokens(PAYLOAD_OVERHEAD_BYTES + 1, 10)).toBe(1);
    expect(minInputTokens(PAYLOAD_OVERHEAD_BYTES + 100, 10)).toBe(10);
    expect(minInputTokens(PAYLOAD_OVERHEAD_BYTES + 101, 10)).toBe(11);
  });

  it('says what is wrong with an envelope: past the context, output where none is made, fewer tokens than the bytes hold', () => {
    const limits = { maxTokens: 512, maxOutputTokens: null, maxBytesPerToken: 8 };
    expect(envelopeProblem({ inputTokens: 500, maxOutputTokens: 12 }, limits)).toBeNull();
    expect(envelopeProblem({ inputTokens: 500, maxOutputTokens: 13 }, limits)).toMatch(/more than the model's 512/);
    expect(
      envelopeProblem({ inputTokens: 3, maxOutputTokens: 1 }, { maxTokens: null, maxOutputTokens: 0, maxBytesPerToken: null }),
    ).toMatch(/produce at most 0/);
    expect(envelopeProblem({ inputTokens: 99, maxOutputTokens: 0 }, limits, PAYLOAD_OVERHEAD_BYTES + 800)).toMatch(/hold at least 100/);
    expect(envelopeProblem({ inputTokens: 100, maxOutputTokens: 0 }, limits, PAYLOAD_OVERHEAD_BYTES + 800)).toBeNull();
  });
});
