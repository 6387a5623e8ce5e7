/**
 * The gateway's streamed answers: a chat or completion job as OpenAI server-sent events, and
 * the usage object of a result.
 */
import type { Context } from 'hono';
import { InvalidInputError } from '../protocol/errors.ts';
import type { JobRequest, JobResult } from '../protocol/jobs.ts';
import type { RunOptions } from './client.ts';
import { toOpenAIError, type OpenAIError } from './openai.ts';

type Piece = { type: 'delta'; text: string } | { type: 'result'; result: JobResult } | { type: 'error'; error: unknown };

export function usageObject(result: JobResult): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const { promptTokens, completionTokens } = result.usage;
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/**
 * Streams a chat job as `chat.completion.chunk` server-sent events. The status is chosen
 * when the first piece arrives, so a job that fails before any text gets a real HTTP error.
 */
export async function streamChat(
  request: JobRequest,
  meta: { id: string; created: number; model: string },
  includeUsage: boolean,
  run: (request: JobRequest, c: Context, onDelta?: RunOptions['onDelta']) => Promise<JobResult>,
  c: Context,
  fail: (c: Context, err: unknown) => Response,
  format: 'chat' | 'text' = 'chat',
): Promise<Response> {
  const pieces: Piece[] = [];
  let wake: (() => void) | null = null;
  const push = (piece: Piece): void => {
    pieces.push(piece);
    wake?.();
  };
  const next = async (): Promise<Piece> => {
    while (pieces.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return pieces.shift() as Piece;
  };
  run(request, c, (d) => d.text !== '' && push({ type: 'delta', text: d.text })).then(
    (result) => push({ type: 'result', result }),
    (error: unknown) => push({ type: 'error', error }),
  );

  const first = await next();
  if (first.type === 'error') return fail(c, first.error);
  const encoder = new TextEncoder();
  const event = (data: unknown): Uint8Array => encoder.encode(`data: ${JSON.stringify(data)}\n\n`);
  const object = format === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  // Chat chunks carry a `delta`; completion chunks carry the `text` piece itself.
  const chunk = (delta: Record<string, string>, finish: string | null, usage?: unknown): Uint8Array =>
    event({
      ...meta,
      object,
      choices: [
        format === 'chat'
          ? { index: 0, delta, finish_reason: finish, logprobs: null }
          : { index: 0, text: delta['content'] ?? '', finish_reason: finish, logprobs: null },
      ],
      ...(usage === undefined ? {} : { usage }),
    });
  let streamed = '';
  let piece: Piece | null = first;

  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      if (format === 'chat') controller.enqueue(chunk({ role: 'assistant', content: '' }, null, includeUsage ? null : undefined));
    },
    async pull(controller) {
      const current = piece ?? (await next());
      piece = null;
      if (current.type === 'delta') {
        streamed += current.text;
        controller.enqueue(chunk({ content: current.text }, null, includeUsage ? null : undefined));
      } else if (current.type === 'error') {
        // Mid-stream the status is already sent; OpenAI clients raise an `error` event as an APIError.
        controller.enqueue(event(toOpenAIError(current.error).body satisfies OpenAIError['body']));
        controller.close();
      } else if (current.result.kind !== (format === 'chat' ? 'chat' : 'generate')) {
        controller.enqueue(event(toOpenAIError(new InvalidInputError(`Model answered with a ${current.result.kind} result.`)).body));
        controller.close();
      } else {
        const { finishReason } = current.result;
        const text = current.result.kind === 'chat' || current.result.kind === 'generate' ? (current.result.text ?? '') : '';
        // Engines that stream less than the whole text: send the rest before finishing.
        if (text.length > streamed.length && text.startsWith(streamed))
          controller.enqueue(chunk({ content: text.slice(streamed.length) }, null, includeUsage ? null : undefined));
        const usage = usageObject(current.result);
        controller.enqueue(chunk({}, finishReason, includeUsage ? null : usage));
        if (includeUsage) controller.enqueue(event({ ...meta, object, choices: [], usage }));
        controller.enqueue(encoder.encode('data: [DONE]\n\n'));
        controller.close();
      }
    },
  });
  return new Response(stream, {
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' },
  });
}
