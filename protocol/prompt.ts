/**
 * How a generation request becomes the token ids a decoder is fed. One implementation for
 * every party that must agree on it: the worker's engine (to run), the coordinator's
 * reference runtime (known answers) and the requester SDK (the billing envelope's count).
 */
import type { Tokenizer } from '@huggingface/tokenizers';
import { EngineError } from './errors.ts';
import type { ChatMessage, ChatRequest, GenerateRequest } from './jobs.ts';
import type { DecoderSpec } from './manifest.ts';

/** The text a chat model is prompted with for `messages`, ending where the assistant's reply starts. */
export function chatPromptText(spec: DecoderSpec, messages: readonly ChatMessage[]): string {
  const template = spec.chatTemplate;
  return (
    messages.map((m) => template.message.replaceAll('{role}', m.role).replaceAll('{content}', m.content)).join('') +
    template.assistantPrefix
  );
}

/** The prompt's token ids, exactly as a run of `request` feeds them to the decoder. */
export function promptTokenIds(tokenizer: Tokenizer | null, spec: DecoderSpec, request: GenerateRequest | ChatRequest): number[] {
  if (request.kind === 'generate' && typeof request.prompt !== 'string') return [...request.prompt];
  if (tokenizer === null) throw new EngineError(`Model "${request.model}" has no tokenizer, so a text prompt cannot be tokenized.`);
  const text = request.kind === 'generate' ? (request.prompt as string) : chatPromptText(spec, request.messages);
  return tokenizer.encode(text).ids;
}
