/**
 * What this device will earn: before it works, a range from what the network publishes (recent
 * demand per model and prices, `GET /v1/network` and `/v1/prices`) and the device's benchmark;
 * once it works, the rate measured from its signed receipts. The estimate's assumptions:
 * - this device would get an equal share of each model's recent demand (jobs per minute ÷ the
 *   contributors serving it), from half to one and a half times that share;
 * - it cannot do more jobs than its speed allows: a model needs about 2 floating-point
 *   operations per parameter per token, parameters counted from the download size (half a
 *   byte each for 4-bit web-llm builds, four bytes for ONNX float32 models), and 10–50 % of
 *   the benchmark's speed reaches a real model;
 * - prices and the commission are today's.
 * It is a rough figure for a person, rounded to two significant digits; amounts owed are never
 * computed from it.
 */
import type { PriceListView } from '../protocol/answers.ts';
import type { NetworkInfo } from '../protocol/network.ts';
import type { SeenReceipt } from './history.ts';

/** What the estimate needs to know of a model. */
export interface EstimateModel {
  id: string;
  engine: string;
  sizeBytes: number;
  /** False when this device cannot run it. */
  servable: boolean;
}

export interface EstimateInput {
  /** Matmul speed measured by the benchmark, GFLOP/s. */
  gflops: number;
  models: readonly EstimateModel[];
  prices: PriceListView;
  network: NetworkInfo;
  /** This device is among the contributors the demand figures count (it is contributing). */
  counted: boolean;
}

/** nanoTON per hour of contributing. */
export interface Estimate {
  /** The low and high ends, two significant digits. */
  low: bigint;
  high: bigint;
  /** The middle case, unrounded: what a measured rate is compared with. */
  mid: bigint;
  /** What holds the middle case back: the network's demand, or this device's speed. */
  limit: 'demand' | 'speed';
  /** Models with demand that this device can serve. */
  models: string[];
  /** Models with jobs waiting whose size is not known yet (none of their jobs has finished): not in the figures. */
  unknownSize: string[];
}

/** Share of the benchmark's speed that reaches a real model: low, middle, high. */
export const EFFICIENCY = [0.1, 0.3, 0.5] as const;
/** This device's share of a model's demand, against an equal share: low, middle, high. */
export const SHARE = [0.5, 1, 1.5] as const;

const BYTES_PER_PARAM: Record<string, number> = { webllm: 0.5, onnx: 4 };

/** nanoTON a job pays its contributor, after commission, for the mean tokens of the model's demand. */
function payPerJob(price: PriceListView['models'][string], prompt: number, completion: number, commissionBps: number): number {
  const gross =
    price.kind === 'chat'
      ? (prompt * Number(price.promptPer1k) + completion * Number(price.completionPer1k)) / 1000
      : ((prompt + completion) * Number(price.inputPer1k)) / 1000;
  return (gross * (10_000 - commissionBps)) / 10_000;
}

function round2(nano: number): bigint {
  if (!(nano > 0)) return 0n;
  const digits = Math.floor(Math.log10(nano)) + 1;
  const scale = 10 ** Math.max(0, digits - 2);
  return BigInt(Math.round(nano / scale)) * BigInt(scale);
}

/** The range this device may earn per hour of contributing; null when it can serve no priced model. */
export function estimateEarnings(input: EstimateInput): Estimate | null {
  const { gflops, prices, network } = input;
  if (!(gflops > 0)) return null;
  const cases = [0, 1, 2].map((i) => ({ nanoPerMinute: 0, busy: 0, efficiency: EFFICIENCY[i] ?? 0.3, share: SHARE[i] ?? 1 }));
  const earning: string[] = [];
  const unknownSize: string[] = [];
  let servable = 0;
  let speedBound = false;
  for (const model of input.models) {
    const price = prices.models[model.id];
    if (!model.servable || price === undefined || model.sizeBytes <= 0) continue;
    servable++;
    const demand = network.demand[model.id];
    if (demand === undefined || demand.jobsPerMinute <= 0) continue;
    // What a job pays follows from its tokens, known once some of the model's jobs have finished.
    if (demand.promptTokensPerJob + demand.completionTokensPerJob <= 0) {
      unknownSize.push(model.id);
      continue;
    }
    earning.push(model.id);
    const tokensPerJob = demand.promptTokensPerJob + demand.completionTokensPerJob;
    const params = model.sizeBytes / (BYTES_PER_PARAM[model.engine] ?? 2);
    const pay = payPerJob(price, demand.promptTokensPerJob, demand.completionTokensPerJob, prices.commissionBps);
    const others = Math.max(1, demand.contributors + (input.counted ? 0 : 1));
    for (const [i, c] of cases.entries()) {
      const capacity = ((gflops * 1e9 * c.efficiency) / (2 * params) / tokensPerJob) * 60; // jobs per minute
      const share = (demand.jobsPerMinute / others) * c.share;
      const jobs = Math.min(capacity, share);
      if (i === 1 && capacity < share) speedBound = true;
      c.nanoPerMinute += jobs * pay;
      c.busy += jobs / capacity;
    }
  }
  if (servable === 0) return null;
  // One device runs one job at a time: more work than fits in a minute is not earned.
  const perHour = cases.map((c) => (c.nanoPerMinute / Math.max(1, c.busy)) * 60);
  const [low = 0, mid = 0, high = 0] = perHour;
  return {
    low: round2(low),
    high: round2(high),
    mid: BigInt(Math.round(mid)),
    limit: speedBound ? 'speed' : 'demand',
    models: earning,
    unknownSize,
  };
}

export interface MeasuredRate {
  /** nanoTON per hour at the pace of the receipts counted. */
  nanoPerHour: bigint;
  /** Receipts counted. */
  jobs: number;
  /** The span measured, ms. */
  spanMs: number;
}

/** The measure needs this many receipts and this long a span before it says anything. */
export const MEASURE_MIN_JOBS = 3;
export const MEASURE_MIN_MS = 60_000;

/**
 * The rate this device earned over the last `windowMs` of the run that started at `since`
 * (ms since the epoch), from its signed receipts; null until enough is measured.
 */
export function measuredRate(receipts: readonly SeenReceipt[], since: number, now: number, windowMs = 10 * 60_000): MeasuredRate | null {
  const from = Math.max(since, now - windowMs);
  const counted = receipts.filter((r) => r.at >= from && r.at <= now);
  const spanMs = now - from;
  if (counted.length < MEASURE_MIN_JOBS || spanMs < MEASURE_MIN_MS) return null;
  const total = counted.reduce((sum, r) => sum + BigInt(r.amountNano), 0n);
  return { nanoPerHour: (total * 3_600_000n) / BigInt(spanMs), jobs: counted.length, spanMs };
}
