/**
 * A loaded ONNX model and everything that runs it: the tokenizer, the chat template
 * (@huggingface/jinja, through protocol/prompt.ts), the facts read from the model's hub files
 * (protocol/hub-config.ts), pooling and the decoder loop. The engine imports this module on the
 * first model it loads, so none of it is in the worker a page starts on mount (scripts/budget.ts).
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { EngineError, InvalidInputError, toSpinneretError } from '../../../protocol/errors.ts';
import {
  type ChatRequest,
  type EmbedRequest,
  type GenerateRequest,
  type InferRequest,
  type JobRequest,
  type JobResult,
  type ScoreRequest,
  type Tensor,
  wireKindOf,
} from '../../../protocol/jobs.ts';
import type { DecoderSpec, OnnxModel } from '../../../protocol/manifest.ts';
import { embeddingInputText, promptTokenIds, stopIndex } from '../../../protocol/prompt.ts';
import { ranksWithin } from '../../../protocol/teacher-forced.ts';
import type { LoadedModel, RunOptions } from '../types.ts';
import { OrtDecoder } from './decoder.ts';
import { generate } from './generate.ts';
import { checkInferInputs } from './infer.ts';
import { runSpecs, type RunSpecs } from './facts.ts';
import { float32Tensor, int64Tensor, readFloat32, sessionInputs, type OrtModule, type OrtSession, type OrtTensor } from './ort.ts';
import { clsPool, l2Normalize, meanPool } from './pooling.ts';
import type { BackendChoice } from './select.ts';

/**
 * The loaded model for a created session: reads the model's facts from its files and the
 * session's inputs (refusing a manifest that disagrees), builds the tokenizer. Releases the
 * session when any of that fails.
 */
export async function openLoadedModel(
  ort: OrtModule,
  model: OnnxModel,
  files: ReadonlyMap<string, Uint8Array>,
  session: OrtSession,
  choice: BackendChoice,
): Promise<LoadedModel> {
  let specs: RunSpecs;
  try {
    specs = runSpecs(model, files, sessionInputs(session));
  } catch (err) {
    await session.release();
    throw err;
  }
  const file = (name: string | undefined): Uint8Array | undefined => (name === undefined ? undefined : files.get(name));
  const tokenizer = makeTokenizer(file(model.onnx.tokenizer), file(model.onnx.tokenizerConfig));
  return new LoadedOnnxModel(ort, model, specs, session, tokenizer, choice);
}

function makeTokenizer(json: Uint8Array | undefined, config: Uint8Array | undefined): Tokenizer | null {
  if (json === undefined) return null;
  const decode = (bytes: Uint8Array): object => JSON.parse(new TextDecoder().decode(bytes)) as object;
  return new Tokenizer(decode(json), config === undefined ? {} : decode(config));
}

class LoadedOnnxModel implements LoadedModel {
  readonly modelId: string;
  readonly backend: string;
  readonly fallbackReason: string | undefined;
  readonly #ort: OrtModule;
  readonly #model: OnnxModel;
  readonly #specs: RunSpecs;
  readonly #session: OrtSession;
  readonly #tokenizer: Tokenizer | null;
  /** One run at a time per session: ORT sessions are not re-entrant. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(ort: OrtModule, model: OnnxModel, specs: RunSpecs, session: OrtSession, tokenizer: Tokenizer | null, choice: BackendChoice) {
    this.modelId = model.id;
    this.#specs = specs;
    this.backend = choice.backend;
    this.fallbackReason = choice.fallbackReason;
    this.#ort = ort;
    this.#model = model;
    this.#session = session;
    this.#tokenizer = tokenizer;
  }

  memoryBytes(): number {
    return this.backend === 'webgpu' ? this.#model.vramBytes : this.#model.files.reduce((sum, f) => sum + f.size, 0);
  }

  run(request: JobRequest, options: RunOptions = {}): Promise<JobResult> {
    if (!this.#model.kinds.includes(wireKindOf(request))) {
      return Promise.reject(
        new InvalidInputError(
          `Model "${this.modelId}" does not take "${wireKindOf(request)}" jobs; it takes ${this.#model.kinds.join(', ')}.`,
        ),
      );
    }
    const next = this.#queue.then(() => this.#dispatch(request, options));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async unload(): Promise<void> {
    await this.#queue;
    await this.#session.release();
  }

  async #dispatch(request: JobRequest, options: RunOptions): Promise<JobResult> {
    try {
      switch (request.kind) {
        case 'embed':
          return await this.#embed(request);
        case 'generate':
          return await this.#generate(request, options);
        case 'chat':
          return await this.#chat(request, options);
        case 'infer':
          return await this.#infer(request);
        case 'score':
          return await this.#score(request);
      }
    } catch (err) {
      throw toSpinneretError(err, `Running a ${request.kind} job on "${this.modelId}"`);
    }
  }

  #needTokenizer(): Tokenizer {
    if (this.#tokenizer === null) throw new EngineError(`Model "${this.modelId}" has no tokenizer.`);
    return this.#tokenizer;
  }

  async #embed(request: EmbedRequest): Promise<JobResult> {
    const spec = this.#specs.embedding;
    if (spec === undefined) throw new EngineError(`Model "${this.modelId}" has no embedding section.`);
    const tokenizer = this.#needTokenizer();
    const encoded = request.inputs.map((text) => tokenizer.encode(embeddingInputText(spec, text, request.inputType)).ids);
    encoded.forEach((ids, i) => {
      if (ids.length > spec.maxTokens) {
        throw new InvalidInputError(
          `Input ${i} is ${ids.length} tokens; model "${this.modelId}" takes at most ${spec.maxTokens}. Split the text into shorter pieces.`,
          { input: i, tokens: ids.length, maxTokens: spec.maxTokens },
        );
      }
    });
    const batch = encoded.length;
    const seq = Math.max(...encoded.map((ids) => ids.length));
    const ids = new Array<number>(batch * seq).fill(0);
    const mask = new Array<number>(batch * seq).fill(0);
    encoded.forEach((row, b) => row.forEach((id, s) => ((ids[b * seq + s] = id), (mask[b * seq + s] = 1))));
    const ort = this.#ort;
    const feeds: Record<string, OrtTensor> = {
      input_ids: int64Tensor(ort, ids, [batch, seq]),
      attention_mask: int64Tensor(ort, mask, [batch, seq]),
    };
    if (spec.tokenTypeIds) feeds['token_type_ids'] = int64Tensor(ort, new Array<number>(batch * seq).fill(0), [batch, seq]);
    const out = await this.#session.run(feeds);
    const hidden = out[spec.output];
    if (hidden === undefined) throw new EngineError(`Model "${this.modelId}" has no output "${spec.output}".`);
    const states = await readFloat32(hidden);
    const pooled = spec.pooling === 'cls' ? clsPool(states, batch, seq, spec.dim) : meanPool(states, mask, batch, seq, spec.dim);
    const embeddings = pooled.map((v) => Array.from(spec.normalize ? l2Normalize(v) : v));
    return { kind: 'embed', embeddings, usage: { promptTokens: mask.reduce((a, b) => a + b, 0), completionTokens: 0 } };
  }

  async #generate(request: GenerateRequest, options: RunOptions): Promise<JobResult> {
    const prompt = this.#promptOf(request);
    const { tokens, finishReason } = await this.#decode(prompt, request, options);
    const text = this.#textOf(tokens, request.stop);
    return {
      kind: 'generate',
      tokens,
      ...(text !== undefined ? { text } : {}),
      finishReason,
      usage: { promptTokens: prompt.length, completionTokens: tokens.length },
    };
  }

  async #chat(request: ChatRequest, options: RunOptions): Promise<JobResult> {
    const tokenizer = this.#needTokenizer();
    const prompt = this.#promptOf(request);
    const { tokens, finishReason } = await this.#decode(prompt, request, options);
    return {
      kind: 'chat',
      text: this.#textOf(tokens, request.stop) ?? tokenizer.decode(tokens, { skip_special_tokens: true }),
      tokens,
      finishReason,
      usage: { promptTokens: prompt.length, completionTokens: tokens.length },
    };
  }

  /** The text of `tokens`, cut before the first stop sequence. */
  #textOf(tokens: readonly number[], stop: readonly string[] | undefined): string | undefined {
    // A run that stopped at once has no text (the tokenizer refuses to decode nothing).
    if (tokens.length === 0) return this.#tokenizer === null ? undefined : '';
    const text = this.#tokenizer?.decode([...tokens], { skip_special_tokens: true });
    if (text === undefined) return undefined;
    const at = stopIndex(text, stop);
    return at < 0 ? text : text.slice(0, at);
  }

  /** The prompt's token ids, exactly as a run of the request feeds them. */
  #promptOf(request: GenerateRequest | ChatRequest): readonly number[] {
    return promptTokenIds(this.#tokenizer, this.#decoderSpec(), request);
  }

  /**
   * One teacher-forced pass over prompt + output: the logits at each output position (and at
   * the end, when the checked run stopped) are ranked, and a position agrees when its token is
   * among the top k. The decoder returns logits for every position of the pass.
   */
  async #score(request: ScoreRequest): Promise<JobResult> {
    const spec = this.#decoderSpec();
    const prompt = this.#promptOf(request.target);
    const sequence = [...prompt, ...request.output];
    if (sequence.length > spec.maxContext) {
      throw new InvalidInputError(`The prompt and output are ${sequence.length} tokens; this model's context holds ${spec.maxContext}.`);
    }
    const bad = sequence.find((id) => id >= spec.vocabSize);
    if (bad !== undefined) throw new InvalidInputError(`Token id ${bad} is outside the vocabulary of "${this.modelId}".`);
    const decoder = new OrtDecoder(this.#ort, this.#session, spec);
    const { logits, cache } = await decoder.all(sequence);
    decoder.release(cache);
    // Position p's logits predict the token at p + 1; at the end of a run that stopped, any end token will do.
    const expected: { at: number; tokens: readonly number[] }[] = request.output.map((token, i) => ({
      at: prompt.length - 1 + i,
      tokens: [token],
    }));
    if (request.stopped) expected.push({ at: sequence.length - 1, tokens: spec.eosTokenIds });
    let inTopK = 0;
    for (const { at, tokens } of expected) {
      const row = logits.subarray(at * spec.vocabSize, (at + 1) * spec.vocabSize);
      if (tokens.some((t) => ranksWithin(row, t, request.topK, request.margin ?? 0))) inTopK++;
    }
    return { kind: 'score', positions: expected.length, inTopK, usage: { promptTokens: sequence.length, completionTokens: 0 } };
  }

  #decoderSpec(): DecoderSpec {
    const spec = this.#specs.decoder;
    if (spec === undefined) throw new EngineError(`Model "${this.modelId}" has no decoder section.`);
    return spec;
  }

  async #decode(prompt: readonly number[], request: GenerateRequest | ChatRequest, options: RunOptions) {
    const spec = this.#decoderSpec();
    const bad = prompt.find((id) => id >= spec.vocabSize);
    if (bad !== undefined) {
      throw new InvalidInputError(`Token id ${bad} is outside the vocabulary of "${this.modelId}" (${spec.vocabSize} tokens).`);
    }
    const decoder = new OrtDecoder(this.#ort, this.#session, spec);
    const tokenizer = this.#tokenizer;
    const stop = request.stop ?? [];
    if (stop.length > 0 && tokenizer === null) {
      throw new InvalidInputError(`Model "${this.modelId}" has no tokenizer, so it cannot watch for stop sequences.`);
    }
    // Text is streamed only where no stop sequence can still begin, so nothing sent is taken back.
    const hold = stop.reduce((n, s) => Math.max(n, s.length - 1), 0);
    let sent = 0;
    let stopped = false;
    const emitted: number[] = [];
    const generation = await generate(decoder, prompt, {
      maxTokens: request.maxTokens,
      maxContext: spec.maxContext,
      eosTokenIds: spec.eosTokenIds,
      sampling: request.sampling,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(stop.length > 0 ? { stopAfter: () => stopped } : {}),
      onToken: (token, index) => {
        emitted.push(token);
        if (options.onChunk === undefined && stop.length === 0) return;
        // Decode the whole text so far: a token's text can depend on its neighbours.
        const text = tokenizer?.decode(emitted, { skip_special_tokens: true }) ?? '';
        const at = stopIndex(text, stop);
        stopped = at >= 0;
        const end = stopped ? at : Math.max(sent, text.length - hold);
        options.onChunk?.({ index, tokens: [token], text: text.slice(sent, end) });
        sent = end;
      },
    });
    if (!stopped && hold > 0 && options.onChunk !== undefined && emitted.length > 0) {
      // The end came without a stop sequence: send the text held back for one.
      const text = tokenizer?.decode(emitted, { skip_special_tokens: true }) ?? '';
      if (text.length > sent) options.onChunk({ index: emitted.length - 1, tokens: [], text: text.slice(sent) });
    }
    return generation;
  }

  async #infer(request: InferRequest): Promise<JobResult> {
    const specs = this.#model.onnx.inputs ?? [];
    checkInferInputs(this.modelId, specs, request.inputs);
    const ort = this.#ort;
    const feeds: Record<string, OrtTensor> = {};
    for (const spec of specs) {
      const t = request.inputs[spec.name];
      if (t === undefined) continue;
      feeds[spec.name] =
        t.type === 'float32'
          ? float32Tensor(ort, t.data, t.dims)
          : t.type === 'int32'
            ? new ort.Tensor('int32', Int32Array.from(t.data), t.dims)
            : int64Tensor(ort, t.data, t.dims);
    }
    const out = await this.#session.run(feeds);
    const outputs: Record<string, Tensor> = {};
    for (const name of this.#model.onnx.outputs ?? Object.keys(out)) {
      const tensor = out[name];
      if (tensor === undefined) throw new EngineError(`Model "${this.modelId}" has no output "${name}".`);
      outputs[name] = { type: 'float32', dims: [...tensor.dims], data: Array.from(await readFloat32(tensor)) };
    }
    return { kind: 'infer', outputs, usage: { promptTokens: 0, completionTokens: 0 } };
  }
}

/** Indices of the `k` largest values, largest first (ties: lower index first). */
export function topK(values: Float32Array, k: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const x = values[i] ?? Number.NEGATIVE_INFINITY;
    if (best.length === k && x <= (values[best[k - 1] ?? 0] ?? Number.NEGATIVE_INFINITY)) continue;
    let at = best.length;
    while (at > 0 && (values[best[at - 1] ?? 0] ?? Number.NEGATIVE_INFINITY) < x) at--;
    best.splice(at, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}
