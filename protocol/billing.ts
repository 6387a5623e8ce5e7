/**
 * The billing envelope (docs/protocol.md, "Billing envelopes"): what a requester agrees to pay
 * for, in tokens, sent in clear next to a sealed job. The coordinator checks it against the
 * sealed payload's size and the model's context, and bills the contributor's reported usage
 * clamped to it. One arithmetic for both ends, so an SDK never sends what the coordinator
 * would refuse.
 */
import * as v from 'valibot';
import type { Usage } from './jobs.ts';

const Tokens = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1_000_000));

/** What a requester agrees to pay for, in tokens of the model's own tokenizer. */
export const BillingEnvelope = v.strictObject({
  /** Input tokens: the prompt's (chat, generate) or the sum over all inputs (embed); 0 for infer. */
  inputTokens: Tokens,
  /** Most output tokens: the request's `maxTokens` (chat, generate); 0 for embed and infer. */
  maxOutputTokens: Tokens,
});
export type BillingEnvelope = v.InferOutput<typeof BillingEnvelope>;

/**
 * Bytes of the sealed payload's plaintext (`{"request": …, "resultKey": …}`) that stand for no
 * token: the JSON around the text, the model id, the kind, the sampling and the result key.
 */
export const PAYLOAD_OVERHEAD_BYTES = 1024;
/** Bytes AES-128-GCM adds to a plaintext (its tag). */
export const SEAL_TAG_BYTES = 16;

/** The model facts the byte bound and the context check need; `null` where the catalog has none. */
export interface EnvelopeLimits {
  /** Most tokens a job may declare in all (input + output); null: no limit known. */
  maxTokens: number | null;
  /** Most output tokens (0 for embed and infer, which produce none); null: no limit beyond `maxTokens`. */
  maxOutputTokens: number | null;
  /**
   * Most bytes of payload plaintext one token can stand for: the longest vocabulary entry of
   * the model's tokenizer with JSON escaping; null: no tokenizer facts, so no byte bound.
   */
  maxBytesPerToken: number | null;
}

/**
 * The fewest input tokens a payload of `plaintextBytes` can hold: any fewer declared means
 * the envelope under-states the work. Zero without tokenizer facts.
 */
export function minInputTokens(plaintextBytes: number, maxBytesPerToken: number | null): number {
  if (maxBytesPerToken === null) return 0;
  return Math.ceil(Math.max(0, plaintextBytes - PAYLOAD_OVERHEAD_BYTES) / maxBytesPerToken);
}

/** Why an envelope is refused, in words that say what to do; null when it is acceptable. */
export function envelopeProblem(envelope: BillingEnvelope, limits: EnvelopeLimits, plaintextBytes?: number): string | null {
  const total = envelope.inputTokens + envelope.maxOutputTokens;
  if (limits.maxOutputTokens !== null && envelope.maxOutputTokens > limits.maxOutputTokens) {
    return `The billing envelope declares ${envelope.maxOutputTokens} output tokens; jobs of this kind produce at most ${limits.maxOutputTokens}. Declare ${limits.maxOutputTokens}.`;
  }
  if (limits.maxTokens !== null && total > limits.maxTokens) {
    return `The billing envelope declares ${envelope.inputTokens} input + ${envelope.maxOutputTokens} output tokens, more than the model's ${limits.maxTokens}; shorten the prompt or lower maxTokens.`;
  }
  if (plaintextBytes !== undefined) {
    const least = minInputTokens(plaintextBytes, limits.maxBytesPerToken);
    if (envelope.inputTokens < least) {
      return `The billing envelope declares ${envelope.inputTokens} input tokens, but the sealed payload's ${plaintextBytes} bytes hold at least ${least} (at most ${limits.maxBytesPerToken} bytes per token beyond ${PAYLOAD_OVERHEAD_BYTES}); declare the tokens the model's tokenizer counts, as the SDK does.`;
    }
  }
  return null;
}

/** The usage that is billed and credited: the contributor's report, never beyond the envelope. */
export function clampUsage(claimed: Usage, envelope: BillingEnvelope): Usage {
  return {
    promptTokens: Math.min(claimed.promptTokens, envelope.inputTokens),
    completionTokens: Math.min(claimed.completionTokens, envelope.maxOutputTokens),
  };
}
