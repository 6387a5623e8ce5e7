/**
 * Job requests and results as the engines see them (after the sealed envelope is opened).
 * Validated at runtime wherever they cross a trust boundary.
 */
import * as v from 'valibot';
import { InvalidInputError } from './errors.ts';
import { type JobKind, TensorType } from './manifest.ts';
import { SafeLine } from './text.ts';

const ModelId = v.pipe(SafeLine(128), v.minLength(1));
const Tokens = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(32768));

export const Sampling = v.strictObject({
  /** 0 means greedy (argmax). */
  temperature: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(4)), 0),
  /** Nucleus mass in (0, 1]; 1 disables top-p. */
  topP: v.optional(v.pipe(v.number(), v.gtValue(0), v.maxValue(1)), 1),
  /** Seed of the sampler's PRNG; the same seed gives the same tokens. */
  seed: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0)), 0),
});
export type Sampling = v.InferOutput<typeof Sampling>;

export const Tensor = v.strictObject({
  type: TensorType,
  dims: v.array(v.pipe(v.number(), v.integer(), v.minValue(0))),
  /** Row-major values; int64 values are plain numbers (safe integers). */
  data: v.array(v.number()),
});
export type Tensor = v.InferOutput<typeof Tensor>;

export const ChatMessage = v.strictObject({
  role: v.picklist(['system', 'user', 'assistant']),
  content: v.pipe(v.string(), v.maxLength(200_000)),
});
export type ChatMessage = v.InferOutput<typeof ChatMessage>;

export const EmbedRequest = v.strictObject({
  kind: v.literal('embed'),
  model: ModelId,
  inputs: v.pipe(v.array(v.pipe(v.string(), v.maxLength(100_000))), v.minLength(1), v.maxLength(256)),
  /** What the inputs are for models whose card asks for a prefix per role (e5: `query` or `passage`). */
  inputType: v.optional(v.pipe(v.string(), v.regex(/^[a-z_]{1,32}$/, 'an input type is 1–32 lowercase letters or "_"'))),
});
/** Up to 4 texts of 1–64 characters; generation ends before the first one it would write. */
const Stop = v.optional(v.pipe(v.array(v.pipe(v.string(), v.minLength(1), v.maxLength(64))), v.maxLength(4)));
export const GenerateRequest = v.strictObject({
  kind: v.literal('generate'),
  model: ModelId,
  /** Prompt as text (tokenized by the model's tokenizer) or as token ids. */
  prompt: v.union([v.pipe(v.string(), v.minLength(1)), v.pipe(v.array(v.pipe(v.number(), v.integer(), v.minValue(0))), v.minLength(1))]),
  maxTokens: Tokens,
  sampling: v.optional(Sampling, {}),
  stop: Stop,
});
export const InferRequest = v.strictObject({
  kind: v.literal('infer'),
  model: ModelId,
  inputs: v.record(v.string(), Tensor),
});
export const ChatRequest = v.strictObject({
  kind: v.literal('chat'),
  model: ModelId,
  messages: v.pipe(v.array(ChatMessage), v.minLength(1)),
  maxTokens: Tokens,
  sampling: v.optional(Sampling, {}),
  stop: Stop,
});

/**
 * A teacher-forced check of a generation (docs/protocol.md, "Verified work"): the checker
 * renders and tokenizes `target`'s prompt exactly as for a run, appends `output`, runs the
 * whole sequence in one forward pass, and counts the output positions whose token is among
 * its own `topK` most likely. It travels inside a job of the target's kind, so a contributor
 * cannot tell a check from paid work before opening it.
 */
export const ScoreRequest = v.strictObject({
  kind: v.literal('score'),
  model: ModelId,
  target: v.variant('kind', [GenerateRequest, ChatRequest]),
  /** The checked run's token ids, its end-of-sequence token left out. */
  output: v.pipe(v.array(v.pipe(v.number(), v.integer(), v.minValue(0))), v.maxLength(32768)),
  /** The checked run stopped on an end-of-sequence token: one more position is scored, where an end token must rank. */
  stopped: v.boolean(),
  /** How many of the checker's most likely tokens count as agreeing. */
  topK: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(64)),
  /** A token outside the top k still counts when its logit is within this of the k-th best (near ties). Default 0. */
  margin: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(8))),
});

export const JobRequest = v.variant('kind', [EmbedRequest, GenerateRequest, InferRequest, ChatRequest, ScoreRequest]);
export type JobRequest = v.InferOutput<typeof JobRequest>;
export type EmbedRequest = v.InferOutput<typeof EmbedRequest>;
export type GenerateRequest = v.InferOutput<typeof GenerateRequest>;
export type InferRequest = v.InferOutput<typeof InferRequest>;
export type ChatRequest = v.InferOutput<typeof ChatRequest>;
export type ScoreRequest = v.InferOutput<typeof ScoreRequest>;

/** The job kind a request runs as on the wire and in consent: a score runs as its target's kind. */
export function wireKindOf(request: JobRequest): JobKind {
  return request.kind === 'score' ? request.target.kind : request.kind;
}

const Count = v.pipe(v.number(), v.integer(), v.minValue(0));

/** Work done, the unit prices are per. */
export const Usage = v.object({ promptTokens: Count, completionTokens: Count });
export type Usage = v.InferOutput<typeof Usage>;

export const FinishReason = v.picklist(['stop', 'length']);
export type FinishReason = v.InferOutput<typeof FinishReason>;

/** A job's result, as the requester opens it from the final sealed chunk. */
export const JobResult = v.variant('kind', [
  v.object({ kind: v.literal('embed'), embeddings: v.array(v.array(v.number())), usage: Usage }),
  v.object({ kind: v.literal('generate'), tokens: v.array(Count), text: v.optional(v.string()), finishReason: FinishReason, usage: Usage }),
  v.object({ kind: v.literal('infer'), outputs: v.record(v.string(), Tensor), usage: Usage }),
  /** `tokens`: the generated token ids, where the engine exposes them (onnx does, web-llm does not). */
  v.object({ kind: v.literal('chat'), text: v.string(), tokens: v.optional(v.array(Count)), finishReason: FinishReason, usage: Usage }),
  /** Of `positions` scored output positions, `inTopK` held a token among the checker's top k. */
  v.object({ kind: v.literal('score'), positions: Count, inTopK: Count, usage: Usage }),
]);
export type JobResult = v.InferOutput<typeof JobResult>;

/** One streamed piece of a `generate` or `chat` job. */
export interface StreamChunk {
  /** Index of the chunk, from 0. */
  index: number;
  /** Token ids produced in this chunk (empty for engines that only expose text). */
  tokens: number[];
  /** Text produced in this chunk. */
  text: string;
}

/** Validates a job request; throws {@link InvalidInputError} saying what is wrong. */
export function parseJobRequest(data: unknown): JobRequest {
  const result = v.safeParse(JobRequest, data);
  if (!result.success) {
    throw new InvalidInputError(`The job is malformed: ${v.summarize(result.issues)}. Fix the request and send it again.`, {
      issues: result.issues.map((i) => ({ path: v.getDotPath(i), message: i.message })),
    });
  }
  return result.output;
}
