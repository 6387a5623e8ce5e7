/**
 * Prices per unit of work, from `prices.json` (data, validated on load): nanoTON per 1,000
 * tokens per model, and the network commission in basis points.
 */
import { readFileSync } from 'node:fs';
import * as v from 'valibot';
import type { Usage } from '../../protocol/jobs.ts';
import { InvalidAmountError, UnknownPriceError } from './errors.ts';

/** A non-negative integer count of nanoTON, written as a decimal string in JSON. */
const NanoTon = v.pipe(
  v.string(),
  v.regex(/^(0|[1-9]\d*)$/, 'a price is a decimal string of whole nanoTON'),
  v.transform((s) => BigInt(s)),
);

const ChatPrice = v.object({
  kind: v.literal('chat'),
  unit: v.literal('tokens'),
  /** nanoTON per 1,000 prompt tokens. */
  promptPer1k: NanoTon,
  /** nanoTON per 1,000 completion tokens. */
  completionPer1k: NanoTon,
});

const EmbedPrice = v.object({
  kind: v.literal('embed'),
  unit: v.literal('tokens'),
  /** nanoTON per 1,000 input tokens, summed over all inputs (completion tokens are free). */
  inputPer1k: NanoTon,
});

/** Schema of `prices.json`. */
export const PriceListSchema = v.object({
  /** Network commission in basis points of the gross (1000 = 10 %), 0…10000. */
  commissionBps: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(10_000)),
  models: v.record(v.string(), v.variant('kind', [ChatPrice, EmbedPrice])),
});

/** A validated price list; amounts are bigint nanoTON. */
export type PriceList = v.InferOutput<typeof PriceListSchema>;

/** What one job costs, in nanoTON. `commission + contributorShare === gross` always. */
export interface Price {
  /** Charged to the requester. */
  gross: bigint;
  /** Kept by the network (`fees:network`). */
  commission: bigint;
  /** Owed to the contributor. */
  contributorShare: bigint;
}

/** Validates a parsed price list; throws with the path of the first bad field. */
export function parsePriceList(json: unknown): PriceList {
  const result = v.safeParse(PriceListSchema, json);
  if (!result.success) {
    const issue = result.issues[0];
    throw new Error(`invalid price list at ${v.getDotPath(issue) ?? '(root)'}: ${issue.message}`);
  }
  return result.output;
}

let defaults: PriceList | undefined;

/** The bundled `prices.json`, read and validated once. */
export function defaultPrices(): PriceList {
  defaults ??= parsePriceList(JSON.parse(readFileSync(new URL('./prices.json', import.meta.url), 'utf8')));
  return defaults;
}

/** `n / d` rounded to the nearest integer, halves up; `n ≥ 0`, `d > 0`. */
export function divRoundHalfUp(n: bigint, d: bigint): bigint {
  return (2n * n + d) / (2n * d);
}

function count(name: string, value: number): bigint {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidAmountError(`usage.${name} must be a non-negative integer, got ${value}`);
  }
  return BigInt(value);
}

/**
 * The price of one job. The gross is rounded once (halves up) from the exact sum of its
 * parts; the commission is rounded (halves up) from the gross, and the contributor gets the
 * rest, so no nanoTON is created or lost.
 */
export function price(model: string, usage: Usage, prices: PriceList = defaultPrices()): Price {
  const entry = prices.models[model];
  if (entry === undefined) throw new UnknownPriceError(model);
  const prompt = count('promptTokens', usage.promptTokens);
  const completion = count('completionTokens', usage.completionTokens);
  const perThousand = entry.kind === 'chat' ? prompt * entry.promptPer1k + completion * entry.completionPer1k : prompt * entry.inputPer1k;
  const gross = divRoundHalfUp(perThousand, 1000n);
  const commission = divRoundHalfUp(gross * BigInt(prices.commissionBps), 10_000n);
  return { gross, commission, contributorShare: gross - commission };
}
