/**
 * `GET /v1/network`: what the network publishes so that a contributor can estimate what a
 * device will earn before it works: recent demand per model, and the payout rules. The
 * coordinator answers it (coordinator/network/), the dashboard reads it (web/estimate.ts).
 */
import * as v from 'valibot';

const ModelId = v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a model id'));
const Ms = v.pipe(v.number(), v.integer(), v.minValue(0));
const Rate = v.pipe(v.number(), v.minValue(0), v.maxValue(1e9));

/** Recent demand for one model, over {@link NetworkInfo}'s `windowMs`. */
export const ModelDemand = v.strictObject({
  /** Jobs finished per minute, by all contributors together. */
  jobsPerMinute: Rate,
  /** Mean prompt (input) tokens billed per job. */
  promptTokensPerJob: Rate,
  /** Mean completion (output) tokens billed per job; 0 for embeddings. */
  completionTokensPerJob: Rate,
  /** Contributors that finished at least one job of this model in the window. */
  contributors: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(10_000_000)),
});
export type ModelDemand = v.InferOutput<typeof ModelDemand>;

/** How credits become payments. */
export const PayoutRules = v.strictObject({
  /** Smallest settled balance that is paid, nanoTON as a decimal string. */
  thresholdNano: v.pipe(v.string(), v.regex(/^(0|[1-9]\d{0,30})$/, 'whole nanoTON as a decimal string')),
  /** How long a credit waits for verification before it settles, ms. */
  verificationWindowMs: Ms,
  /** Payout rounds run this often, ms. */
  intervalMs: Ms,
  /** When the next payout round is due, ms since the epoch. */
  nextAt: Ms,
  /** The chain payouts are sent on. */
  chain: v.picklist(['sandbox', 'testnet', 'mainnet']),
});
export type PayoutRules = v.InferOutput<typeof PayoutRules>;

/** The answer of `GET /v1/network`. */
export const NetworkInfo = v.strictObject({
  /** When it was computed, ms since the epoch. */
  at: Ms,
  /** The span demand is measured over, ms (shorter while the coordinator has run for less). */
  windowMs: Ms,
  demand: v.pipe(
    v.record(ModelId, ModelDemand),
    v.check((r) => Object.keys(r).length <= 1000, 'at most 1000 models'),
  ),
  /** Null when this network pays nothing (no payout chain configured). */
  payouts: v.nullable(PayoutRules),
});
export type NetworkInfo = v.InferOutput<typeof NetworkInfo>;
