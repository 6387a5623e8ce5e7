/**
 * Model manifests: the JSON documents that list which models a worker may run, where
 * their files live and what each file's SHA-256 must be. Data, never code.
 */
import * as v from 'valibot';
import { ManifestError, ModelUnreachableError, SpinneretError, UnknownModelError } from './errors.ts';

const Id = v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'an id is 1–128 letters, digits, ".", "_" or "-"'));
const Sha256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'sha256 is 64 lowercase hex digits'));
const Bytes = v.pipe(v.number(), v.integer(), v.minValue(0));
const Count = v.pipe(v.number(), v.integer(), v.minValue(1));
/** A file name inside a model's folder: relative, no `..`, no leading slash. */
const FileName = v.pipe(
  v.string(),
  v.regex(/^(?!\/)(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9._\-/]+$/, 'a file name is a relative path without ".."'),
);

export const JobKind = v.picklist(['embed', 'generate', 'infer', 'chat']);
/** What a model can be asked to do: `embed` texts, `generate` from a prompt, `infer` raw tensors, `chat` messages. */
export type JobKind = v.InferOutput<typeof JobKind>;

export const OnnxBackend = v.picklist(['webgpu', 'wasm']);
export type OnnxBackend = v.InferOutput<typeof OnnxBackend>;

export const ModelFile = v.strictObject({
  /** Path of the file inside the model, as the engine asks for it (e.g. `model.onnx`). */
  name: FileName,
  /** Absolute URL, or relative to the manifest's own URL. */
  url: v.pipe(v.string(), v.minLength(1)),
  /** Size in bytes. */
  size: Bytes,
  /** Lowercase hex SHA-256 of the file's bytes; checked before the file is used. */
  sha256: Sha256,
});
export type ModelFile = v.InferOutput<typeof ModelFile>;

export const TensorType = v.picklist(['float32', 'int64', 'int32']);
export type TensorType = v.InferOutput<typeof TensorType>;

export const TensorSpec = v.strictObject({
  name: v.string(),
  type: TensorType,
  /** Dimensions; a string is a free (symbolic) dimension such as `"batch"`. */
  shape: v.array(v.union([Count, v.string()])),
});
export type TensorSpec = v.InferOutput<typeof TensorSpec>;

const Common = {
  id: Id,
  /** Human-readable name for the dashboard. */
  name: v.string(),
  description: v.optional(v.string()),
  license: v.optional(v.string()),
  kinds: v.pipe(v.array(JobKind), v.minLength(1)),
  /** Every file the engine loads, each checked against its SHA-256. */
  files: v.array(ModelFile),
  /** Estimated GPU memory while loaded, bytes. */
  vramBytes: Bytes,
  /** Largest single GPU buffer the model allocates, bytes (checked against the adapter's limits). */
  maxBufferBytes: v.optional(Bytes),
  /** WebGPU features the model cannot run without (e.g. `shader-f16`). */
  requiredFeatures: v.optional(v.array(v.string()), []),
};

export const EmbeddingSpec = v.strictObject({
  /** Size of each embedding vector. */
  dim: Count,
  /** Longest input in tokens; longer inputs are refused, not cut. */
  maxTokens: Count,
  /** Mean of the token states, or the first (CLS) token's state, as the pooling config says. */
  pooling: v.picklist(['mean', 'cls']),
  /** L2-normalize each vector. */
  normalize: v.boolean(),
  /** Name of the `[batch, seq, dim]` output to pool. */
  output: v.optional(v.string(), 'last_hidden_state'),
  /** Whether the graph takes a `token_type_ids` input (BERT-style encoders). */
  tokenTypeIds: v.optional(v.boolean(), false),
  /**
   * Text put before each input by role, as the model card requires (e5: `query: `, `passage: `);
   * `default` is used for inputs that name no role.
   */
  prefixes: v.optional(v.record(v.pipe(v.string(), v.regex(/^[a-z_]{1,32}$/)), v.pipe(v.string(), v.maxLength(256))), {}),
});
export type EmbeddingSpec = v.InferOutput<typeof EmbeddingSpec>;

export const DecoderSpec = v.strictObject({
  numLayers: Count,
  numKvHeads: Count,
  headDim: Count,
  vocabSize: Count,
  /** Longest sequence (prompt + generated) in tokens. */
  maxContext: Count,
  /** Every id generation stops on (config.json's and generation_config.json's). */
  eosTokenIds: v.pipe(v.array(v.pipe(v.number(), v.integer(), v.minValue(0))), v.minLength(1)),
  /** Whether the graph takes `position_ids`. */
  positionIds: v.optional(v.boolean(), true),
  /** Element type of the graph's `past_key_values.*` inputs (an empty past is made in this type). */
  cacheType: v.optional(v.picklist(['float32', 'float16']), 'float32'),
  /** The model's own Jinja chat template (tokenizer_config.json's `chat_template`). */
  chatTemplate: v.optional(v.pipe(v.string(), v.maxLength(64 * 1024))),
  /** Special tokens the template may refer to (`bos_token`, `eos_token`, …). */
  specialTokens: v.optional(v.record(v.string(), v.string()), {}),
});
export type DecoderSpec = v.InferOutput<typeof DecoderSpec>;

/** Precision of a published ONNX export's files (`onnx/model.onnx`, `model_fp16.onnx`, `model_q4f16.onnx`, …). */
export const OnnxVariant = v.picklist(['fp32', 'fp16', 'int8', 'q4', 'q4f16']);
export type OnnxVariant = v.InferOutput<typeof OnnxVariant>;

/** Where a model's files come from: a hub repository at a fixed revision, in one variant. */
export const HubSource = v.strictObject({
  /** `owner/name` on the hub (e.g. `onnx-community/Qwen2.5-0.5B-Instruct`). */
  repository: v.pipe(
    v.string(),
    v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/, 'a repository is owner/name'),
  ),
  /** A commit hash or branch name. */
  revision: v.pipe(v.string(), v.regex(/^[A-Za-z0-9._-]{1,64}$/, 'a revision is a commit hash or branch name')),
  variant: OnnxVariant,
});
export type HubSource = v.InferOutput<typeof HubSource>;

export const OnnxModel = v.strictObject({
  ...Common,
  engine: v.literal('onnx'),
  /** The hub repository, revision and variant the files are published as. */
  hub: v.optional(HubSource),
  onnx: v.strictObject({
    /** File name of the ONNX graph among `files`. */
    model: FileName,
    /** File name of a Hugging Face `tokenizer.json` among `files`. */
    tokenizer: v.optional(FileName),
    /** File name of `tokenizer_config.json` among `files`. */
    tokenizerConfig: v.optional(FileName),
    /** The hub files the model's facts are read from (protocol/hub-config.ts), by role. */
    config: v.optional(FileName),
    generationConfig: v.optional(FileName),
    modules: v.optional(FileName),
    pooling: v.optional(FileName),
    sentenceBertConfig: v.optional(FileName),
    /** Backends in order of preference; a model without `wasm` has no CPU fallback. */
    backends: v.pipe(v.array(OnnxBackend), v.minLength(1)),
    embedding: v.optional(EmbeddingSpec),
    decoder: v.optional(DecoderSpec),
    /** Inputs of an `infer` model; jobs are checked against them. */
    inputs: v.optional(v.array(TensorSpec)),
    /** Outputs an `infer` job returns. */
    outputs: v.optional(v.array(v.string())),
  }),
});
export type OnnxModel = v.InferOutput<typeof OnnxModel>;

export const WebLlmQuantization = v.picklist(['q4f16_1', 'q4f32_1']);
export type WebLlmQuantization = v.InferOutput<typeof WebLlmQuantization>;

export const WebLlmBuild = v.strictObject({
  quantization: WebLlmQuantization,
  /** MLC model id as web-llm knows it (e.g. `SmolLM2-360M-Instruct-q4f32_1-MLC`). */
  modelId: v.string(),
  /** Base URL of the weights (web-llm fetches `<model>/resolve/main/...`). */
  model: v.pipe(v.string(), v.minLength(1)),
  /** URL of the compiled model library (.wasm). */
  modelLib: v.pipe(v.string(), v.minLength(1)),
  /** GPU memory while loaded, bytes. */
  vramBytes: Bytes,
  requiredFeatures: v.optional(v.array(v.string()), []),
  /** Context window in tokens. */
  contextWindow: v.optional(Count),
  /** Files of this build with known SHA-256 (checked when web-llm fetches them). */
  files: v.optional(v.array(ModelFile), []),
});
export type WebLlmBuild = v.InferOutput<typeof WebLlmBuild>;

export const WebLlmModel = v.strictObject({
  ...Common,
  engine: v.literal('webllm'),
  webllm: v.strictObject({
    builds: v.pipe(v.array(WebLlmBuild), v.minLength(1)),
  }),
});
export type WebLlmModel = v.InferOutput<typeof WebLlmModel>;

export const ModelEntry = v.variant('engine', [OnnxModel, WebLlmModel]);
export type ModelEntry = v.InferOutput<typeof ModelEntry>;
export type EngineKind = ModelEntry['engine'];

export const Manifest = v.strictObject({
  version: v.literal(1),
  models: v.array(ModelEntry),
});
export type Manifest = v.InferOutput<typeof Manifest>;

/**
 * Validates a manifest and resolves relative file URLs against `baseUrl`.
 * Throws {@link ManifestError} with every problem listed.
 */
export function parseManifest(data: unknown, baseUrl?: string): Manifest {
  const result = v.safeParse(Manifest, data);
  if (!result.success) {
    throw new ManifestError(`The model manifest is invalid: ${v.summarize(result.issues)}. Fix the manifest file and reload.`, {
      issues: result.issues.map((i) => ({ path: v.getDotPath(i), message: i.message })),
    });
  }
  const manifest = result.output;
  const seen = new Set<string>();
  for (const model of manifest.models) {
    if (seen.has(model.id)) throw new ManifestError(`Model id "${model.id}" appears twice in the manifest. Ids must be unique.`);
    seen.add(model.id);
    checkReferences(model);
    if (baseUrl !== undefined) resolveUrls(model, baseUrl);
  }
  return manifest;
}

function checkReferences(model: ModelEntry): void {
  if (model.engine !== 'onnx') return;
  const names = new Set(model.files.map((f) => f.name));
  const spec = model.onnx;
  for (const [role, name] of [
    ['model', spec.model],
    ['tokenizer', spec.tokenizer],
    ['tokenizerConfig', spec.tokenizerConfig],
    ['config', spec.config],
    ['generationConfig', spec.generationConfig],
    ['modules', spec.modules],
    ['pooling', spec.pooling],
    ['sentenceBertConfig', spec.sentenceBertConfig],
  ] as const) {
    if (name !== undefined && !names.has(name)) {
      throw new ManifestError(`Model "${model.id}" names ${role} file "${name}", which is not among its files.`);
    }
  }
  const needs: Record<string, boolean> = {
    embed: spec.embedding !== undefined && spec.tokenizer !== undefined,
    generate: spec.decoder !== undefined,
    chat: spec.decoder?.chatTemplate !== undefined && spec.tokenizer !== undefined,
    infer: spec.inputs !== undefined,
  };
  for (const kind of model.kinds) {
    if (!needs[kind]) throw new ManifestError(`Model "${model.id}" offers "${kind}" jobs but lacks the section they need.`);
  }
}

function resolveUrls(model: ModelEntry, baseUrl: string): void {
  for (const file of model.files) file.url = new URL(file.url, baseUrl).href;
  if (model.engine === 'webllm') {
    for (const build of model.webllm.builds) {
      build.model = new URL(build.model, baseUrl).href;
      build.modelLib = new URL(build.modelLib, baseUrl).href;
      for (const file of build.files) file.url = new URL(file.url, baseUrl).href;
    }
  }
}

/** Finds a model by id or throws {@link UnknownModelError}. */
export function findModel(manifest: Manifest, id: string): ModelEntry {
  const model = manifest.models.find((m) => m.id === id);
  if (model === undefined)
    throw new UnknownModelError(
      id,
      manifest.models.map((m) => m.id),
    );
  return model;
}

/** Downloads and validates the manifest at `url`; an unreachable host is {@link ModelUnreachableError}. */
export async function fetchManifest(url: string, fetchImpl: typeof fetch = fetch): Promise<Manifest> {
  let data: unknown;
  try {
    const response = await fetchImpl(url, { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    data = await response.json();
  } catch (err) {
    if (err instanceof SpinneretError) throw err;
    throw new ModelUnreachableError(url, err instanceof Error ? err.message : String(err));
  }
  return parseManifest(data, url);
}
