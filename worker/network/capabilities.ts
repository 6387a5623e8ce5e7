/**
 * The `capabilities` message: what this device can run, from the runtime's GPU probe and
 * model list, and what its owner consents to.
 */
import type * as v from 'valibot';
import type { JobKind } from '../../protocol/manifest.ts';
import { PROTOCOL_VERSION, type Capabilities } from '../../protocol/wire.ts';
import type { ModelSummary, RuntimeStatus } from '../runtime.ts';

/** The part of the runtime the capabilities come from; `Runtime` fits. */
export interface CapabilitySource {
  models(): Promise<
    Array<
      Pick<ModelSummary, 'id' | 'engine' | 'cached' | 'loadedOn' | 'plan' | 'blocked' | 'sizeBytes' | 'vramBytes'> &
        Partial<Pick<ModelSummary, 'runtimeBytes'>>
    >
  >;
  status(): Pick<RuntimeStatus, 'gpu'> & Partial<Pick<RuntimeStatus, 'gpuRetired'>>;
}

export type CapabilitiesMessage = v.InferOutput<typeof Capabilities>;

/** GFLOP/s and GB/s from the GPU benchmark. */
export interface BenchScore {
  gflops: number;
  gbps: number;
}

const MAX_MODELS = 256;
const MAX_FEATURES = 64;
const MAX_TEXT = 128;

/** The owner's caps on what a model may cost, bytes; null: no cap. */
export interface ModelCaps {
  maxDownloadBytes: number | null;
  maxVramBytes: number | null;
}

type CapSubject = Pick<ModelSummary, 'cached' | 'sizeBytes' | 'vramBytes' | 'plan'> & Partial<Pick<ModelSummary, 'runtimeBytes'>>;

/** Bytes a model's first job downloads: its files unless cached, and its engine's runtime unless in the browser already. */
export function downloadBytes(model: CapSubject): number {
  return (model.cached ? 0 : model.sizeBytes) + (model.runtimeBytes ?? 0);
}

/**
 * Whether the owner's caps allow a model: what its first job downloads (files not cached and the
 * engine runtime) and the GPU memory of the build that would run (or the manifest's figure).
 */
export function withinCaps(model: CapSubject, caps: ModelCaps): boolean {
  if (caps.maxDownloadBytes !== null && downloadBytes(model) > caps.maxDownloadBytes) return false;
  const vram = model.plan?.memoryBytes ?? model.vramBytes;
  return caps.maxVramBytes === null || model.plan?.backend === 'wasm' || vram <= caps.maxVramBytes;
}

export const NO_CAPS: ModelCaps = { maxDownloadBytes: null, maxVramBytes: null };

/** Builds the `capabilities` message. Models that cannot run here, or that the owner's caps rule out, are left out. */
export async function describeCapabilities(
  runtime: CapabilitySource,
  consent: readonly JobKind[],
  bench?: BenchScore,
  caps: ModelCaps = NO_CAPS,
): Promise<CapabilitiesMessage> {
  const gpu = runtime.status().gpu;
  const summaries = await runtime.models();
  const models: CapabilitiesMessage['models'] = [];
  const engines = new Set<string>();
  for (const model of summaries) {
    if (model.loadedOn === null && (model.plan === null || model.blocked !== null)) continue;
    if (!withinCaps(model, caps)) continue;
    const backend = model.loadedOn ?? model.plan?.backend ?? 'unknown';
    engines.add(backend.startsWith(`${model.engine}:`) ? backend : `${model.engine}:${backend}`);
    models.push({ id: model.id.slice(0, MAX_TEXT), state: model.loadedOn !== null ? 'loaded' : model.cached ? 'cached' : 'available' });
  }
  const device = gpu === null ? 'cpu' : `${gpu.vendor || 'unknown'}/${gpu.architecture || 'unknown'}`;
  return {
    v: PROTOCOL_VERSION,
    type: 'capabilities',
    adapter:
      gpu === null
        ? null
        : {
            vendor: gpu.vendor.slice(0, MAX_TEXT),
            architecture: gpu.architecture.slice(0, MAX_TEXT),
            isFallbackAdapter: gpu.isFallbackAdapter,
            features: gpu.features.slice(0, MAX_FEATURES).map((f) => f.slice(0, 64)),
          },
    ...(bench === undefined ? {} : { bench: { gflops: bench.gflops, gbps: bench.gbps } }),
    models: models.slice(0, MAX_MODELS),
    consent: [...new Set(consent)],
    engineClass: `${[...engines].sort().join('+') || 'none'}|${device}`.slice(0, MAX_TEXT),
  };
}
