/**
 * What this device might earn, before anything large is downloaded: from the measured matmul
 * speed and the network's price list. An estimate, with its assumptions stated:
 * - a model needs about 2 floating-point operations per parameter per token;
 * - its parameter count follows from its download size: half a byte per parameter for web-llm
 *   builds (4-bit), four bytes for ONNX models (32-bit floats);
 * - only {@link EFFICIENCY} of the benchmark's speed reaches a real model;
 * - the device is busy {@link BUSY_SHARE} of the day (real demand varies, often lower).
 */

/** The price list as `GET /v1/prices` answers it (nanoTON as decimal strings). */
export interface PriceListView {
  commissionBps: number;
  models: Record<string, { kind: 'chat'; promptPer1k: string; completionPer1k: string } | { kind: 'embed'; inputPer1k: string }>;
}

/** What the estimate needs to know of a model. */
export interface EstimateModel {
  id: string;
  engine: string;
  sizeBytes: number;
  /** False when this device cannot run it. */
  servable: boolean;
}

export interface Estimate {
  modelId: string;
  /** Tokens per second this device might produce or read with that model. */
  tokensPerSecond: number;
  /** nanoTON owed to this device per hour of work, after the network's commission. */
  perBusyHour: bigint;
  /** nanoTON per day at {@link BUSY_SHARE} of the day busy. */
  perDay: bigint;
}

export const EFFICIENCY = 0.3;
export const BUSY_SHARE = 0.25;

const BYTES_PER_PARAM: Record<string, number> = { webllm: 0.5, onnx: 4 };

/** The best-paying model this device can serve that has a price; null when none has. */
export function estimateEarnings(gflops: number, models: readonly EstimateModel[], prices: PriceListView): Estimate | null {
  let best: Estimate | null = null;
  for (const model of models) {
    const price = prices.models[model.id];
    if (!model.servable || price === undefined || model.sizeBytes <= 0 || !(gflops > 0)) continue;
    const params = model.sizeBytes / (BYTES_PER_PARAM[model.engine] ?? 2);
    const tokensPerSecond = (gflops * 1e9 * EFFICIENCY) / (2 * params);
    const per1k = BigInt(price.kind === 'chat' ? price.completionPer1k : price.inputPer1k);
    const tokensPerHour = BigInt(Math.floor(tokensPerSecond * 3600));
    const gross = (tokensPerHour * per1k) / 1000n;
    const perBusyHour = (gross * BigInt(10_000 - prices.commissionBps)) / 10_000n;
    const perDay = (perBusyHour * BigInt(Math.round(24 * BUSY_SHARE * 100))) / 100n;
    if (best === null || perBusyHour > best.perBusyHour) best = { modelId: model.id, tokensPerSecond, perBusyHour, perDay };
  }
  return best;
}
