/**
 * Model facts read from the files a model's publisher ships on a hub, in the layout the
 * Hugging Face hub, transformers.js and sentence-transformers use:
 *
 * - `config.json`: architecture, layers, heads, KV heads, head size, vocabulary, context, eos;
 * - `generation_config.json`: the end-of-sequence ids generation stops on (often several);
 * - `tokenizer_config.json`: the Jinja `chat_template`, special tokens, `model_max_length`;
 * - `modules.json`, `1_Pooling/config.json`, `sentence_bert_config.json`,
 *   `config_sentence_transformers.json` (sentence-transformers): pooling, normalization,
 *   the longest input, prompts (query/passage prefixes);
 * - the ONNX graph's declared inputs: `token_type_ids`, `position_ids`, the cache's type.
 *
 * Runtime-neutral (no Node, no browser APIs): the model host and the catalog derive manifest
 * entries with it, and the worker's engine checks what it loads against the same rules.
 */
import { ManifestError } from './errors.ts';

/** A graph input as the runtime declares it (`session.inputMetadata`, or the ONNX file's graph). */
export interface GraphInput {
  name: string;
  /** ONNX element type as onnxruntime names it: `float32`, `float16`, `int64`, … */
  type: string;
}

/** The hub files a model's facts are read from, already parsed from JSON; absent files are undefined. */
export interface HubFiles {
  config: unknown;
  generationConfig?: unknown;
  tokenizerConfig?: unknown;
  /** sentence-transformers `modules.json`. */
  modules?: unknown;
  /** The pooling module's `config.json` (usually `1_Pooling/config.json`). */
  pooling?: unknown;
  /** sentence-transformers `sentence_bert_config.json`. */
  sentenceBertConfig?: unknown;
  /** sentence-transformers `config_sentence_transformers.json` (holds `prompts`). */
  sentenceTransformersConfig?: unknown;
  /** Inputs the ONNX graph declares. */
  graphInputs?: readonly GraphInput[];
}

export type Pooling = 'mean' | 'cls';

/** What an encoder's files say. */
export interface EncoderFacts {
  family: string;
  dim: number;
  numLayers: number;
  numHeads: number;
  vocabSize: number;
  /** Longest input in tokens, special tokens included. */
  maxTokens: number;
  pooling: Pooling;
  normalize: boolean;
  /** Whether the graph takes `token_type_ids`. */
  tokenTypeIds: boolean;
  /** Text put before each input, by role (sentence-transformers `prompts`), e.g. e5's `query: `. */
  prefixes: Record<string, string>;
}

/** What a decoder's files say. */
export interface DecoderFacts {
  family: string;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxContext: number;
  /** Every id generation stops on: config.json's and generation_config.json's, in that order, without repeats. */
  eosTokenIds: number[];
  bosTokenId: number | null;
  /** Whether the graph takes `position_ids` (absent in the graph: decided by the family's export). */
  positionIds: boolean;
  /** Element type of `past_key_values.*` as the graph declares it. */
  cacheType: 'float32' | 'float16';
  /** The Jinja chat template, when the tokenizer config has one. */
  chatTemplate: string | null;
  /** Special tokens the template may use (`bos_token`, `eos_token`, …), as strings. */
  specialTokens: Record<string, string>;
}

type Json = Record<string, unknown>;

function object(value: unknown, what: string): Json {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ManifestError(`${what} is not a JSON object. Check that the file is the one the model's publisher ships.`);
  }
  return value as Json;
}

function optionalObject(value: unknown, what: string): Json | undefined {
  return value === undefined ? undefined : object(value, what);
}

function count(config: Json, keys: readonly string[], what: string): number {
  for (const key of keys) {
    const value = config[key];
    if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
  }
  throw new ManifestError(`${what} lacks ${keys.join(' / ')} (a positive integer). The model's config.json must say it.`);
}

function maybeCount(config: Json | undefined, key: string): number | undefined {
  const value = config?.[key];
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}

function ids(value: unknown): number[] {
  const list = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  return list.filter((x): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0);
}

/** `model_max_length` values above this are the "no limit" sentinel transformers writes (1e30). */
const NO_LIMIT = 1 << 30;

/** The model family (`model_type`), lowercased; `bert`, `xlm-roberta`, `qwen2`, `llama`, `phi3`, … */
export function modelFamily(config: unknown): string {
  const type = object(config, 'config.json')['model_type'];
  if (typeof type !== 'string' || type.length === 0) throw new ManifestError('config.json lacks "model_type".');
  return type.toLowerCase();
}

/** Families whose ONNX exports are encoders (sentence embeddings). */
const ENCODER_FAMILIES = new Set(['bert', 'xlm-roberta', 'roberta', 'mpnet', 'distilbert', 'nomic_bert', 'modernbert']);

export function isEncoderFamily(config: unknown): boolean {
  return ENCODER_FAMILIES.has(modelFamily(config));
}

/** Reads an encoder's facts. */
export function encoderFacts(files: HubFiles): EncoderFacts {
  const config = object(files.config, 'config.json');
  const family = modelFamily(config);
  const dim = count(config, ['hidden_size', 'dim', 'd_model'], 'config.json');
  const pooling = poolingOf(files);
  const inputs = files.graphInputs;
  return {
    family,
    dim: maybeCount(optionalObject(files.pooling, 'The pooling config'), 'word_embedding_dimension') ?? dim,
    numLayers: count(config, ['num_hidden_layers', 'n_layers'], 'config.json'),
    numHeads: count(config, ['num_attention_heads', 'n_heads'], 'config.json'),
    vocabSize: count(config, ['vocab_size'], 'config.json'),
    maxTokens: encoderMaxTokens(family, config, files),
    pooling: pooling.pooling,
    normalize: pooling.normalize,
    // Without the graph's inputs, BERT-style configs with a token-type table take them.
    tokenTypeIds: inputs !== undefined ? inputs.some((i) => i.name === 'token_type_ids') : (maybeCount(config, 'type_vocab_size') ?? 0) > 1,
    prefixes: prefixesOf(files),
  };
}

function encoderMaxTokens(family: string, config: Json, files: HubFiles): number {
  const limits: number[] = [];
  const st = maybeCount(optionalObject(files.sentenceBertConfig, 'sentence_bert_config.json'), 'max_seq_length');
  if (st !== undefined) limits.push(st);
  const tok = maybeCount(optionalObject(files.tokenizerConfig, 'tokenizer_config.json'), 'model_max_length');
  if (tok !== undefined && tok < NO_LIMIT) limits.push(tok);
  const positions = maybeCount(config, 'max_position_embeddings');
  if (positions !== undefined) {
    // RoBERTa and XLM-R number positions from padding_idx + 1: two rows are never used by text.
    const offset = family === 'xlm-roberta' || family === 'roberta' ? (maybeCount(config, 'pad_token_id') ?? 1) + 1 : 0;
    limits.push(positions - offset);
  }
  if (limits.length === 0)
    throw new ManifestError('No file says the longest input (max_seq_length, model_max_length or max_position_embeddings).');
  return Math.min(...limits);
}

/**
 * Pooling and normalization as sentence-transformers would apply them: the pooling module's
 * config decides mean or CLS, and a `Normalize` module in `modules.json` turns L2 normalization
 * on. Without `modules.json` (a bare transformers export) the default is mean pooling and
 * normalized vectors, which is what the OpenAI embeddings API returns.
 */
export function poolingOf(files: Pick<HubFiles, 'modules' | 'pooling'>): { pooling: Pooling; normalize: boolean } {
  if (files.modules === undefined) {
    const pooling = optionalObject(files.pooling, 'The pooling config');
    return { pooling: pooling?.['pooling_mode_cls_token'] === true ? 'cls' : 'mean', normalize: true };
  }
  if (!Array.isArray(files.modules)) throw new ManifestError('modules.json is not a list of modules.');
  const types = files.modules.map((m) => {
    const type = object(m, 'A modules.json entry')['type'];
    return typeof type === 'string' ? type : '';
  });
  const hasPooling = types.some((t) => t.endsWith('.Pooling'));
  if (hasPooling && files.pooling === undefined) {
    throw new ManifestError('modules.json lists a Pooling module, but its config (1_Pooling/config.json) is missing from the files.');
  }
  const pooling = optionalObject(files.pooling, 'The pooling config');
  let mode: Pooling = 'mean';
  if (pooling !== undefined) {
    const modeName = pooling['pooling_mode'];
    if (pooling['pooling_mode_cls_token'] === true || modeName === 'cls') mode = 'cls';
    else if (pooling['pooling_mode_mean_tokens'] === true || modeName === 'mean') mode = 'mean';
    else {
      const on = Object.entries(pooling)
        .filter(([k, v]) => k.startsWith('pooling_mode') && v === true)
        .map(([k]) => k);
      throw new ManifestError(`The pooling config asks for ${on.join(', ') || 'no pooling'}; only mean and CLS pooling are supported.`);
    }
  }
  return { pooling: mode, normalize: types.some((t) => t.endsWith('.Normalize')) };
}

/** sentence-transformers `prompts` (e.g. `{query: "query: ", passage: "passage: "}`). */
function prefixesOf(files: HubFiles): Record<string, string> {
  const prompts = optionalObject(files.sentenceTransformersConfig, 'config_sentence_transformers.json')?.['prompts'];
  if (prompts === undefined || prompts === null) return {};
  const found: Record<string, string> = {};
  for (const [role, text] of Object.entries(object(prompts, 'The "prompts" of config_sentence_transformers.json'))) {
    if (typeof text === 'string' && text.length > 0) found[role] = text;
  }
  return found;
}

/** Reads a decoder's facts. */
export function decoderFacts(files: HubFiles): DecoderFacts {
  const config = object(files.config, 'config.json');
  const family = modelFamily(config);
  const generation = optionalObject(files.generationConfig, 'generation_config.json');
  const tokenizer = optionalObject(files.tokenizerConfig, 'tokenizer_config.json');
  const numHeads = count(config, ['num_attention_heads', 'n_head'], 'config.json');
  const hidden = count(config, ['hidden_size', 'n_embd'], 'config.json');
  const headDim = maybeCount(config, 'head_dim') ?? hidden / numHeads;
  if (!Number.isInteger(headDim)) throw new ManifestError(`config.json's hidden_size ${hidden} does not split into ${numHeads} heads.`);
  const eos = [...new Set([...ids(config['eos_token_id']), ...ids(generation?.['eos_token_id'])])];
  if (eos.length === 0) throw new ManifestError('Neither config.json nor generation_config.json names an eos_token_id.');
  const positions = count(config, ['max_position_embeddings', 'n_positions'], 'config.json');
  const tokLimit = maybeCount(tokenizer, 'model_max_length');
  const inputs = files.graphInputs;
  const past = inputs?.find((i) => i.name.startsWith('past_key_values.'));
  if (past !== undefined && past.type !== 'float32' && past.type !== 'float16') {
    throw new ManifestError(`The graph's cache input "${past.name}" is ${past.type}; only float32 and float16 caches are supported.`);
  }
  const bos = ids(generation?.['bos_token_id'] ?? config['bos_token_id'])[0] ?? null;
  return {
    family,
    numLayers: count(config, ['num_hidden_layers', 'n_layer'], 'config.json'),
    numHeads,
    numKvHeads: maybeCount(config, 'num_key_value_heads') ?? numHeads,
    headDim,
    vocabSize: count(config, ['vocab_size'], 'config.json'),
    maxContext: tokLimit !== undefined && tokLimit < positions ? tokLimit : positions,
    eosTokenIds: eos,
    bosTokenId: bos,
    positionIds: inputs !== undefined ? inputs.some((i) => i.name === 'position_ids') : true,
    cacheType: past?.type === 'float16' ? 'float16' : 'float32',
    chatTemplate: chatTemplateOf(tokenizer),
    specialTokens: specialTokensOf(tokenizer),
  };
}

/** The default chat template of a tokenizer config (a string, or the `default` of a named list). */
function chatTemplateOf(tokenizer: Json | undefined): string | null {
  const template = tokenizer?.['chat_template'];
  if (typeof template === 'string') return template;
  if (Array.isArray(template)) {
    for (const entry of template) {
      const e = entry as { name?: unknown; template?: unknown };
      if (e.name === 'default' && typeof e.template === 'string') return e.template;
    }
  }
  return null;
}

/** `bos_token`, `eos_token`, … as strings (a token may be written as `{content: "..."}`). */
function specialTokensOf(tokenizer: Json | undefined): Record<string, string> {
  const found: Record<string, string> = {};
  for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
    const value = tokenizer?.[key];
    const text = typeof value === 'string' ? value : (value as { content?: unknown } | null | undefined)?.content;
    if (typeof text === 'string') found[key] = text;
  }
  return found;
}

/** The file roles a manifest entry names, and the `HubFiles` field each fills. */
const FILE_ROLES = [
  ['config', 'config'],
  ['generationConfig', 'generationConfig'],
  ['tokenizerConfig', 'tokenizerConfig'],
  ['modules', 'modules'],
  ['pooling', 'pooling'],
  ['sentenceBertConfig', 'sentenceBertConfig'],
] as const;

/** The names of a model's hub files by role, as an `onnx` manifest section lists them. */
export interface HubFileNames {
  config?: string | undefined;
  generationConfig?: string | undefined;
  tokenizerConfig?: string | undefined;
  modules?: string | undefined;
  pooling?: string | undefined;
  sentenceBertConfig?: string | undefined;
}

/**
 * Gathers a model's hub files by role from `read` (file name → bytes, undefined when the
 * model has no such file). A role the entry names but `read` cannot give is an error that
 * names the file.
 */
export function readHubFiles(
  names: HubFileNames,
  read: (name: string) => Uint8Array | undefined,
  graphInputs?: readonly GraphInput[],
): HubFiles {
  if (names.config === undefined) throw new ManifestError('The model names no config.json, so its facts cannot be read.');
  const parsed: Record<string, unknown> = {};
  for (const [role, field] of FILE_ROLES) {
    const name = names[role];
    if (name === undefined) continue;
    const bytes = read(name);
    if (bytes === undefined) throw new ManifestError(`The model's hub file "${name}" (${role}) is missing.`);
    try {
      parsed[field] = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    } catch (err) {
      throw new ManifestError(`The model's hub file "${name}" is not valid JSON: ${err instanceof Error ? err.message : String(err)}.`);
    }
  }
  return { ...(parsed as unknown as HubFiles), ...(graphInputs !== undefined ? { graphInputs } : {}) };
}

/** The manifest's `embedding` section for an encoder's facts; `prefixes` adds the model card's rules. */
export function embeddingSection(facts: EncoderFacts, prefixes: Record<string, string> = {}) {
  return {
    dim: facts.dim,
    maxTokens: facts.maxTokens,
    pooling: facts.pooling,
    normalize: facts.normalize,
    output: 'last_hidden_state',
    tokenTypeIds: facts.tokenTypeIds,
    prefixes: { ...facts.prefixes, ...prefixes },
  };
}

/** The manifest's `decoder` section for a decoder's facts; `maxContext` may only shorten the model's own. */
export function decoderSection(facts: DecoderFacts, maxContext?: number) {
  return {
    numLayers: facts.numLayers,
    numKvHeads: facts.numKvHeads,
    headDim: facts.headDim,
    vocabSize: facts.vocabSize,
    maxContext: maxContext === undefined ? facts.maxContext : Math.min(maxContext, facts.maxContext),
    eosTokenIds: facts.eosTokenIds,
    positionIds: facts.positionIds,
    cacheType: facts.cacheType,
    ...(facts.chatTemplate !== null ? { chatTemplate: facts.chatTemplate } : {}),
    specialTokens: facts.specialTokens,
  };
}
