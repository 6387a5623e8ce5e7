/**
 * The OpenAI API shapes the gateway speaks: request bodies (validated, then turned into
 * Spinneret JobRequests) and the error body `{error: {message, type, param, code}}` with the
 * HTTP status an OpenAI client expects for each typed error.
 */
import * as v from 'valibot';
import { InvalidInputError, SealError, SpinneretError, UnknownModelError } from '../protocol/errors.ts';
import { parseJobRequest, type ChatRequest, type EmbedRequest, type GenerateRequest } from '../protocol/jobs.ts';
import { ApiKeyRefusedError, CoordinatorUnavailableError, PaymentRequiredError, QuotaExceededError } from './errors.ts';

/** Completion length when the request sets neither `max_tokens` nor `max_completion_tokens`. */
export const DEFAULT_MAX_TOKENS = 1024;

const OptionalInt = v.optional(v.nullable(v.pipe(v.number(), v.integer())));
const OptionalNumber = v.optional(v.nullable(v.number()));
const TextPart = v.looseObject({ type: v.literal('text'), text: v.string() });
const Message = v.looseObject({
  // `developer` is the newer name of `system`.
  role: v.picklist(
    ['system', 'developer', 'user', 'assistant'],
    'role must be system, developer, user or assistant (tools are not supported)',
  ),
  content: v.union([v.string(), v.array(TextPart)], 'content must be a string or an array of text parts'),
});

export const ChatBody = v.looseObject({
  model: v.pipe(v.string(), v.minLength(1)),
  messages: v.pipe(v.array(Message), v.minLength(1, 'messages must not be empty')),
  max_tokens: OptionalInt,
  max_completion_tokens: OptionalInt,
  temperature: OptionalNumber,
  top_p: OptionalNumber,
  seed: OptionalInt,
  n: v.optional(v.nullable(v.literal(1, 'n must be 1'))),
  stream: v.optional(v.nullable(v.boolean())),
  stream_options: v.optional(v.nullable(v.looseObject({ include_usage: v.optional(v.nullable(v.boolean())) }))),
  stop: v.optional(v.nullable(v.union([v.string(), v.array(v.string())], 'stop must be a string or an array of strings'))),
});
export type ChatBody = v.InferOutput<typeof ChatBody>;

/** `POST /v1/completions`: raw generation from a prompt (text, or token ids). */
export const CompletionBody = v.looseObject({
  model: v.pipe(v.string(), v.minLength(1)),
  prompt: v.union(
    [v.string(), v.pipe(v.array(v.string()), v.length(1, 'send one prompt per request')), v.array(v.pipe(v.number(), v.integer()))],
    'prompt must be a string, an array of one string, or an array of token ids',
  ),
  max_tokens: OptionalInt,
  temperature: OptionalNumber,
  top_p: OptionalNumber,
  seed: OptionalInt,
  n: v.optional(v.nullable(v.literal(1, 'n must be 1'))),
  echo: v.optional(v.nullable(v.literal(false, 'echo is not supported'))),
  stream: v.optional(v.nullable(v.boolean())),
  stream_options: v.optional(v.nullable(v.looseObject({ include_usage: v.optional(v.nullable(v.boolean())) }))),
  stop: v.optional(v.nullable(v.union([v.string(), v.array(v.string())], 'stop must be a string or an array of strings'))),
});
export type CompletionBody = v.InferOutput<typeof CompletionBody>;

export const EmbeddingsBody = v.looseObject({
  model: v.pipe(v.string(), v.minLength(1)),
  input: v.union([v.string(), v.array(v.string())], 'input must be a string or an array of strings (token arrays are not supported)'),
  encoding_format: v.optional(v.nullable(v.picklist(['float', 'base64']))),
  /** What the inputs are for models whose card asks for prefixes (e5: `query`, `passage`), as other embedding APIs name it. */
  input_type: v.optional(v.nullable(v.string())),
});
export type EmbeddingsBody = v.InferOutput<typeof EmbeddingsBody>;

/** Parameters we cannot honour: refused rather than silently ignored, since ignoring them changes the answer. */
const UNSUPPORTED: Record<string, (value: unknown) => boolean> = {
  tools: (x) => Array.isArray(x) && x.length > 0,
  functions: (x) => Array.isArray(x) && x.length > 0,
  tool_choice: (x) => x !== 'none',
  function_call: (x) => x !== 'none',
  logprobs: (x) => x === true,
  response_format: (x) => typeof x === 'object' && x !== null && (x as { type?: unknown }).type !== 'text',
  dimensions: () => true,
};

/** Validates a body against `schema`; throws InvalidInputError with the valibot summary. */
export function parseBody<T>(schema: v.GenericSchema<unknown, T>, body: unknown): T {
  const result = v.safeParse(schema, body);
  if (!result.success) throw new InvalidInputError(`Invalid request: ${v.summarize(result.issues)}`);
  if (typeof body === 'object' && body !== null) {
    for (const [key, value] of Object.entries(body)) {
      if (value !== null && value !== undefined && UNSUPPORTED[key]?.(value) === true) {
        throw new InvalidInputError(`Invalid request: "${key}" is not supported by this gateway. Remove it and send the request again.`);
      }
    }
  }
  return result.output;
}

/**
 * A chat body as a Spinneret chat job. Without `temperature` the job is greedy (0), not
 * OpenAI's default of 1: answers from different contributors then agree, which re-assignment
 * and redundancy checks rely on.
 */
export function toChatRequest(body: ChatBody, defaultMaxTokens: number): ChatRequest {
  const messages = body.messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
  }));
  const sampling: Record<string, number> = {};
  if (body.temperature != null) sampling.temperature = body.temperature;
  if (body.top_p != null) sampling.topP = body.top_p;
  if (body.seed != null) sampling.seed = body.seed;
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? defaultMaxTokens;
  const stop = stopList(body.stop);
  return parseJobRequest({ kind: 'chat', model: body.model, messages, maxTokens, sampling, ...(stop ? { stop } : {}) }) as ChatRequest;
}

function stopList(stop: string | string[] | null | undefined): string[] | undefined {
  if (stop === null || stop === undefined) return undefined;
  const list = typeof stop === 'string' ? [stop] : stop;
  return list.length === 0 ? undefined : list;
}

/** A completions body as a Spinneret generate job (greedy without `temperature`, as for chat). */
export function toGenerateRequest(body: CompletionBody, defaultMaxTokens: number): GenerateRequest {
  const prompt = Array.isArray(body.prompt) && typeof body.prompt[0] === 'string' ? body.prompt[0] : body.prompt;
  const sampling: Record<string, number> = {};
  if (body.temperature != null) sampling.temperature = body.temperature;
  if (body.top_p != null) sampling.topP = body.top_p;
  if (body.seed != null) sampling.seed = body.seed;
  const stop = stopList(body.stop);
  return parseJobRequest({
    kind: 'generate',
    model: body.model,
    prompt,
    maxTokens: body.max_tokens ?? defaultMaxTokens,
    sampling,
    ...(stop ? { stop } : {}),
  }) as GenerateRequest;
}

export function toEmbedRequest(body: EmbeddingsBody): EmbedRequest {
  const inputs = typeof body.input === 'string' ? [body.input] : body.input;
  if (inputs.some((s) => s === '')) throw new InvalidInputError('Invalid request: input must not contain empty strings.');
  const inputType = body.input_type ?? undefined;
  return parseJobRequest({ kind: 'embed', model: body.model, inputs, ...(inputType !== undefined ? { inputType } : {}) }) as EmbedRequest;
}

/** Little-endian float32 bytes in standard base64, as OpenAI's `encoding_format: "base64"`. */
export function float32Base64(values: number[]): string {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((x, i) => view.setFloat32(i * 4, x, true));
  const bytes = new Uint8Array(view.buffer);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** An OpenAI error body and its status. */
export interface OpenAIError {
  status: 400 | 401 | 402 | 403 | 404 | 413 | 415 | 429 | 500 | 502 | 503;
  body: { error: { message: string; type: string; param: string | null; code: string | null } };
}

export function openAIError(status: OpenAIError['status'], message: string, type: string, code: string | null): OpenAIError {
  return { status, body: { error: { message, type, param: null, code } } };
}

/** The OpenAI-style answer for anything thrown while serving a request. */
export function toOpenAIError(err: unknown): OpenAIError {
  if (err instanceof UnknownModelError) return openAIError(404, err.message, 'invalid_request_error', 'model_not_found');
  if (err instanceof InvalidInputError) return openAIError(400, err.message, 'invalid_request_error', 'invalid_request');
  if (err instanceof ApiKeyRefusedError) {
    const message = `The Spinneret coordinator refused this gateway's API key (configured where the gateway starts, not in your OpenAI client). ${err.message}`;
    return openAIError(401, message, 'authentication_error', 'coordinator_api_key_refused');
  }
  if (err instanceof PaymentRequiredError) {
    // 402, not OpenAI's 429 `insufficient_quota`: OpenAI clients retry a 429, and waiting does not fund a key.
    const message = `The Spinneret key this gateway uses has too little TON for the job. ${err.message}`;
    return openAIError(402, message, 'insufficient_quota', 'insufficient_quota');
  }
  if (err instanceof QuotaExceededError) return openAIError(429, err.message, 'rate_limit_error', 'rate_limit_exceeded');
  if (err instanceof CoordinatorUnavailableError) return openAIError(503, err.message, 'api_error', 'coordinator_unavailable');
  if (err instanceof SealError) return openAIError(502, err.message, 'api_error', 'seal');
  if (err instanceof SpinneretError) return openAIError(502, err.message, 'api_error', err.code.toLowerCase());
  return openAIError(500, 'The gateway failed unexpectedly; see its log.', 'api_error', 'internal_error');
}
