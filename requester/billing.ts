/**
 * The SDK's side of billing (docs/protocol.md, "Billing envelopes"): the envelope each job
 * declares, counted with the model's own tokenizer, fetched once per model from the URLs the
 * coordinator's catalog lists and checked against their SHA-256, and the prompt rendered by
 * the one rendering the engines use (protocol/prompt.ts).
 */
import type { Tokenizer } from '@huggingface/tokenizers';
import * as v from 'valibot';
import { type BillingEnvelope, minInputTokens } from '../protocol/billing.ts';
import { type JobRequest, wireKindOf } from '../protocol/jobs.ts';
import { embeddingInputText, promptTokenIds } from '../protocol/prompt.ts';
import { fetchVerified, makeTokenizer, tokenizerFiles } from '../protocol/tokenizer-files.ts';
import { ModelFacts } from '../protocol/wire.ts';
import { CoordinatorError } from './errors.ts';

/** Largest number an envelope carries (protocol/billing.ts). */
const MAX_TOKENS = 1_000_000;

/** Reads one coordinator route (`GET`), throwing the SDK's typed errors. */
export type Get = (path: string, what: string) => Promise<Response>;

/**
 * Counts billing envelopes for one coordinator. Model facts and tokenizers are kept for the
 * life of the client; a failed fetch is not kept, so the next job tries again.
 */
export class EnvelopeCounter {
  readonly #get: Get;
  readonly #fetch: typeof fetch;
  readonly #facts = new Map<string, Promise<ModelFacts>>();
  /** By the SHA-256 of `tokenizer.json`: models sharing a tokenizer share one copy. */
  readonly #tokenizers = new Map<string, Promise<Tokenizer>>();

  constructor(get: Get, fetchImpl: typeof fetch) {
    this.#get = get;
    this.#fetch = fetchImpl;
  }

  /**
   * The envelope of `request`, whose sealed payload's plaintext is `plaintextBytes` long:
   * input tokens as the model's tokenizer counts them (at least the floor the coordinator's
   * byte bound sets, so an honest request is never refused), output tokens up to `maxTokens`.
   */
  async envelope(request: JobRequest, plaintextBytes: number): Promise<BillingEnvelope> {
    const facts = await this.facts(request.model);
    const limits = facts.limits[wireKindOf(request)];
    const maxOutputTokens = request.kind === 'chat' || request.kind === 'generate' ? request.maxTokens : 0;
    const counted = await this.#count(request, facts, plaintextBytes, limits?.maxTokens ?? null, maxOutputTokens);
    const floor = minInputTokens(plaintextBytes, limits?.maxBytesPerToken ?? null);
    return { inputTokens: Math.min(MAX_TOKENS, Math.max(counted, floor)), maxOutputTokens };
  }

  /** What the coordinator says about a model (`GET /v1/models/:id`). */
  facts(model: string): Promise<ModelFacts> {
    let found = this.#facts.get(model);
    if (found === undefined) {
      found = this.#get(`/v1/models/${encodeURIComponent(model)}`, `reading model ${model}`).then(async (response) => {
        const parsed = v.safeParse(ModelFacts, await response.json().catch(() => null));
        if (!parsed.success) {
          throw new CoordinatorError(
            `The coordinator's facts about model ${model} are malformed: ${v.summarize(parsed.issues)}`,
            response.status,
          );
        }
        return parsed.output;
      });
      found.catch(() => this.#facts.delete(model));
      this.#facts.set(model, found);
    }
    return found;
  }

  async #count(
    request: JobRequest,
    facts: ModelFacts,
    plaintextBytes: number,
    maxTokens: number | null,
    maxOutput: number,
  ): Promise<number> {
    if (request.kind === 'infer') return 0;
    if (request.kind === 'generate' && typeof request.prompt !== 'string') return request.prompt.length;
    const model = facts.model;
    const tokenizer = model === null ? null : await this.#tokenizer(model);
    if (model === null || tokenizer === null) {
      // No tokenizer to count with (a web-llm model, or one the coordinator does not list):
      // every byte of the payload as a token is more than any tokenizer makes of it.
      const room = maxTokens === null ? MAX_TOKENS : Math.max(0, maxTokens - maxOutput);
      return Math.min(plaintextBytes, room);
    }
    if (request.kind === 'embed') {
      const spec = model.engine === 'onnx' ? model.onnx.embedding : undefined;
      const text = (t: string): string => (spec === undefined ? t : embeddingInputText(spec, t, request.inputType));
      return request.inputs.reduce((n, t) => n + tokenizer.encode(text(t)).ids.length, 0);
    }
    if (model.engine !== 'onnx' || model.onnx.decoder === undefined) return Math.min(plaintextBytes, MAX_TOKENS);
    const decoder = model.onnx.decoder;
    if (request.kind === 'score') return promptTokenIds(tokenizer, decoder, request.target).length + request.output.length;
    return promptTokenIds(tokenizer, decoder, request).length;
  }

  async #tokenizer(model: NonNullable<ModelFacts['model']>): Promise<Tokenizer | null> {
    const files = tokenizerFiles(model);
    if (files === null) return null;
    let found = this.#tokenizers.get(files.json.sha256);
    if (found === undefined) {
      const fetchImpl = this.#fetch;
      found = (async () => {
        const [json, config] = await Promise.all([
          fetchVerified(files.json, fetchImpl),
          files.config === undefined ? Promise.resolve(undefined) : fetchVerified(files.config, fetchImpl),
        ]);
        const tokenizer = makeTokenizer(json, config);
        // Building a real tokenizer holds the event loop for seconds (11 MB for Qwen). Let the
        // timers that came due meanwhile run (idle keep-alive sockets expire) before the job
        // is posted, or the post may go out on a socket the coordinator has just closed.
        for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 0));
        return tokenizer;
      })();
      found.catch(() => this.#tokenizers.delete(files.json.sha256));
      this.#tokenizers.set(files.json.sha256, found);
    }
    return found;
  }
}
