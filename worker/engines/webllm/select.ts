/**
 * Which web-llm build a device can run, and the web-llm `AppConfig` that loads it.
 * Pure: no browser globals, so every rule is unit-tested in Node.
 */
import type { AppConfig, ModelIntegrity, ModelRecord } from '@mlc-ai/web-llm';
import { FeatureMissingError, ModelTooLargeError, WebGPUUnavailableError } from '../../../protocol/errors.ts';
import type { WebLlmBuild, WebLlmModel, WebLlmQuantization } from '../../../protocol/manifest.ts';
import type { GpuInfo } from '../../gpu/types.ts';
import { sriFromHex } from './hash.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * The limits web-llm 0.2.86 asks `requestDevice` for (`detectGPUDevice` in its tvmjs
 * runtime). It asks for 1 GiB buffers and bindings when the adapter allows them, else falls
 * back to 256 MiB (`maxBufferSize`) and 128 MiB (`maxStorageBufferBindingSize`), and fails
 * below those floors. So a model whose largest buffer is 512 MiB gets a 128 MiB binding
 * limit on an adapter that offers 768 MiB: the fallback is a fixed value, not the adapter's.
 */
export const WEBLLM_DEVICE_LIMITS = {
  maxBufferSize: { wanted: GiB, floor: 256 * MiB },
  maxStorageBufferBindingSize: { wanted: GiB, floor: 128 * MiB },
  /** Bytes; a hard minimum, no fallback. */
  maxComputeWorkgroupStorageSize: 32 * 1024,
  /** A hard minimum, no fallback. */
  maxStorageBuffersPerShaderStage: 10,
} as const;

/** The buffer limits of the device web-llm will create on this adapter, bytes. */
export interface WebLlmDeviceLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

/**
 * The limits web-llm's own device will have on this adapter; throws
 * {@link WebGPUUnavailableError} when the adapter is below web-llm's floors.
 */
export function webLlmDeviceLimits(gpu: GpuInfo): WebLlmDeviceLimits {
  const l = gpu.limits;
  const W = WEBLLM_DEVICE_LIMITS;
  const short: string[] = [];
  if (l.maxBufferSize < W.maxBufferSize.floor) short.push(`maxBufferSize ${l.maxBufferSize} < ${W.maxBufferSize.floor}`);
  if (l.maxStorageBufferBindingSize < W.maxStorageBufferBindingSize.floor) {
    short.push(`maxStorageBufferBindingSize ${l.maxStorageBufferBindingSize} < ${W.maxStorageBufferBindingSize.floor}`);
  }
  if (l.maxComputeWorkgroupStorageSize < W.maxComputeWorkgroupStorageSize) {
    short.push(`maxComputeWorkgroupStorageSize ${l.maxComputeWorkgroupStorageSize} < ${W.maxComputeWorkgroupStorageSize}`);
  }
  if (l.maxStorageBuffersPerShaderStage < W.maxStorageBuffersPerShaderStage) {
    short.push(`maxStorageBuffersPerShaderStage ${l.maxStorageBuffersPerShaderStage} < ${W.maxStorageBuffersPerShaderStage}`);
  }
  if (short.length > 0) throw new WebGPUUnavailableError(`the adapter's limits are below what web-llm needs: ${short.join('; ')}`);
  return {
    maxBufferSize: l.maxBufferSize >= W.maxBufferSize.wanted ? W.maxBufferSize.wanted : W.maxBufferSize.floor,
    maxStorageBufferBindingSize:
      l.maxStorageBufferBindingSize >= W.maxStorageBufferBindingSize.wanted
        ? W.maxStorageBufferBindingSize.wanted
        : W.maxStorageBufferBindingSize.floor,
  };
}

/** Features a build cannot run without: its own, the model's, and `shader-f16` for q4f16. */
export function buildFeatures(build: WebLlmBuild, modelFeatures: readonly string[] = []): string[] {
  const implied = build.quantization === 'q4f16_1' ? ['shader-f16'] : [];
  return [...new Set([...modelFeatures, ...build.requiredFeatures, ...implied])].sort();
}

/**
 * Picks the build to load: `q4f16_1` where the adapter has `shader-f16`, else `q4f32_1`;
 * within a quantization the manifest's order; a preferred build over the VRAM budget gives
 * way to a usable one that fits.
 *
 * @param vramBudgetBytes GPU memory the model may use, bytes (`Infinity` for no cap).
 * @throws WebGPUUnavailableError without a GPU (web-llm has no CPU path) or when the
 *   adapter's limits are below web-llm's floors.
 * @throws FeatureMissingError when every build needs a feature the adapter lacks.
 * @throws ModelTooLargeError when the model's largest buffer exceeds the device web-llm
 *   creates, or no usable build fits the budget.
 */
export function selectBuild(model: WebLlmModel, gpu: GpuInfo | null, vramBudgetBytes: number): WebLlmBuild {
  if (gpu === null) throw new WebGPUUnavailableError(`no WebGPU adapter, and web-llm model "${model.id}" cannot run on the CPU`);
  const limits = webLlmDeviceLimits(gpu);
  const have = new Set(gpu.features);
  const usable: WebLlmBuild[] = [];
  let fewestMissing: string[] | undefined;
  for (const build of model.webllm.builds) {
    const missing = buildFeatures(build, model.requiredFeatures).filter((f) => !have.has(f));
    if (missing.length === 0) usable.push(build);
    else if (fewestMissing === undefined || missing.length < fewestMissing.length) fewestMissing = missing;
  }
  if (usable.length === 0) throw new FeatureMissingError(model.id, fewestMissing ?? []);

  if (model.maxBufferBytes !== undefined) {
    const allowed = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
    if (model.maxBufferBytes > allowed) {
      throw new ModelTooLargeError(
        model.id,
        model.maxBufferBytes,
        allowed,
        'a single GPU buffer (maxStorageBufferBindingSize of the device web-llm creates)',
      );
    }
  }

  const first: WebLlmQuantization = have.has('shader-f16') ? 'q4f16_1' : 'q4f32_1';
  const ordered = [...usable.filter((b) => b.quantization === first), ...usable.filter((b) => b.quantization !== first)];
  const fits = ordered.find((b) => b.vramBytes <= vramBudgetBytes);
  if (fits !== undefined) return fits;
  const smallest = Math.min(...ordered.map((b) => b.vramBytes));
  throw new ModelTooLargeError(model.id, smallest, vramBudgetBytes, 'GPU memory');
}

/**
 * web-llm's model URL: `ModelRecord.model` with `/resolve/main/` appended unless it names a
 * branch (web-llm's `cleanModelUrl`). Files are fetched relative to it.
 */
export function webLlmModelUrl(model: string, baseUrl?: string): string {
  let url = new URL(model, baseUrl).href;
  if (!url.endsWith('/')) url += '/';
  if (!/.+\/resolve\/.+\//.test(url)) url += 'resolve/main/';
  return url;
}

/** The URLs web-llm fetches for a build (besides the weight shards named in the tensor cache). */
export interface WebLlmUrls {
  modelUrl: string;
  config: string;
  modelLib: string;
  tokenizerJson: string;
  tokenizerModel: string;
  tensorCache: string;
}

export function webLlmUrls(build: WebLlmBuild, baseUrl?: string): WebLlmUrls {
  const modelUrl = webLlmModelUrl(build.model, baseUrl);
  return {
    modelUrl,
    config: new URL('mlc-chat-config.json', modelUrl).href,
    modelLib: new URL(build.modelLib, baseUrl).href,
    tokenizerJson: new URL('tokenizer.json', modelUrl).href,
    tokenizerModel: new URL('tokenizer.model', modelUrl).href,
    tensorCache: new URL('tensor-cache.json', modelUrl).href,
  };
}

export interface AppConfigOptions {
  /** Resolves relative URLs in the build (the worker's `location.href`). */
  baseUrl?: string;
  /** The model's own required features, added to the build's. */
  modelFeatures?: readonly string[];
  /** The model's largest buffer, bytes (web-llm's `buffer_size_required_bytes`). */
  maxBufferBytes?: number;
}

/**
 * web-llm's `AppConfig` with one `ModelRecord` for `build`. Files the build lists for the
 * chat config, model library and tokenizer become SRI hashes web-llm itself checks after
 * every read, cached or not (see `integrity.ts` for the weights).
 */
export function toAppConfig(build: WebLlmBuild, options: AppConfigOptions = {}): AppConfig {
  const urls = webLlmUrls(build, options.baseUrl);
  const record: ModelRecord = {
    model: urls.modelUrl,
    model_id: build.modelId,
    model_lib: urls.modelLib,
    vram_required_MB: build.vramBytes / MiB,
    required_features: buildFeatures(build, options.modelFeatures),
  };
  if (build.contextWindow !== undefined) record.overrides = { context_window_size: build.contextWindow };
  if (options.maxBufferBytes !== undefined) record.buffer_size_required_bytes = options.maxBufferBytes;
  const integrity = integrityFor(build, urls, options.baseUrl);
  if (integrity !== undefined) record.integrity = integrity;
  // The Cache API backend: `integrity.ts` verifies and seeds exactly this cache.
  return { model_list: [record], cacheBackend: 'cache' };
}

function integrityFor(build: WebLlmBuild, urls: WebLlmUrls, baseUrl: string | undefined): ModelIntegrity | undefined {
  const integrity: ModelIntegrity = { onFailure: 'error' };
  let any = false;
  for (const file of build.files) {
    const url = new URL(file.url, baseUrl).href;
    const sri = sriFromHex(file.sha256);
    if (url === urls.config) integrity.config = sri;
    else if (url === urls.modelLib) integrity.model_lib = sri;
    else if (url === urls.tokenizerJson) integrity.tokenizer = { ...integrity.tokenizer, 'tokenizer.json': sri };
    else if (url === urls.tokenizerModel) integrity.tokenizer = { ...integrity.tokenizer, 'tokenizer.model': sri };
    else continue;
    any = true;
  }
  return any ? integrity : undefined;
}
