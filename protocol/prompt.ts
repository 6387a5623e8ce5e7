/**
 * How a generation request becomes the token ids a decoder is fed. One implementation for
 * every party that must agree on it: the worker's engine (to run), the coordinator's
 * reference runtime (known answers) and the requester SDK (the billing envelope's count).
 *
 * Chat messages are rendered with the model's own Jinja chat template (tokenizer_config.json's
 * `chat_template`) through @huggingface/jinja, as transformers' `apply_chat_template` does
 * with `add_generation_prompt=True`, and the text is tokenized without adding special tokens
 * again (the template writes them).
 */
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from '@huggingface/tokenizers';
import { EngineError, InvalidInputError } from './errors.ts';
import type { ChatMessage, ChatRequest, GenerateRequest } from './jobs.ts';
import type { DecoderSpec, EmbeddingSpec } from './manifest.ts';

/** The parts of a decoder's spec a prompt depends on. */
export type PromptSpec = Pick<DecoderSpec, 'chatTemplate' | 'specialTokens'>;

const compiled = new Map<string, Template>();

function template(source: string): Template {
  let found = compiled.get(source);
  if (found === undefined) {
    found = new Template(source);
    // Chat templates are few; keep the cache from growing without bound all the same.
    if (compiled.size >= 64) compiled.clear();
    compiled.set(source, found);
  }
  return found;
}

/** The text a chat model is prompted with for `messages`, ending where the assistant's reply starts. */
export function chatPromptText(spec: PromptSpec, messages: readonly ChatMessage[]): string {
  if (spec.chatTemplate === undefined) {
    throw new InvalidInputError(
      'This model has no chat template, so it takes no chat messages. Send a plain prompt (completions) instead.',
    );
  }
  try {
    return template(spec.chatTemplate).render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: true,
      ...(spec.specialTokens ?? {}),
    });
  } catch (err) {
    // A template may raise on purpose (e.g. "Conversation roles must alternate").
    throw new InvalidInputError(`The model's chat template refused these messages: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The prompt's token ids, exactly as a run of `request` feeds them to the decoder. */
export function promptTokenIds(tokenizer: Tokenizer | null, spec: PromptSpec, request: GenerateRequest | ChatRequest): number[] {
  if (request.kind === 'generate' && typeof request.prompt !== 'string') return [...request.prompt];
  if (tokenizer === null) throw new EngineError(`Model "${request.model}" has no tokenizer, so a text prompt cannot be tokenized.`);
  if (request.kind === 'generate') return tokenizer.encode(request.prompt as string).ids;
  return tokenizer.encode(chatPromptText(spec, request.messages), { add_special_tokens: false }).ids;
}

/**
 * The text an embedding model is given for one input: the model card's prefix for the input's
 * role (e5: `query: ` or `passage: `), or its `default`, before the text. Models without
 * prefixes take the text as it is; a role the model has no prefix for is refused.
 */
export function embeddingInputText(spec: Pick<EmbeddingSpec, 'prefixes'>, text: string, inputType: string | undefined): string {
  const prefixes = spec.prefixes ?? {};
  if (Object.keys(prefixes).length === 0) return text;
  if (inputType === undefined) return (prefixes['default'] ?? '') + text;
  const prefix = prefixes[inputType];
  if (prefix === undefined) {
    throw new InvalidInputError(
      `This model takes input types ${Object.keys(prefixes)
        .map((k) => `"${k}"`)
        .join(', ')}, not "${inputType}".`,
    );
  }
  return prefix + text;
}

/**
 * Where generated text ends for stop sequences: the index of the earliest stop text in
 * `text`, or -1. The text before it is what the requester gets.
 */
export function stopIndex(text: string, stop: readonly string[] | undefined): number {
  let at = -1;
  for (const s of stop ?? []) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}
