/** The coordinator's HTTP error body and JSON body reading, shared by every route group. */
import type { Context, MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import * as v from 'valibot';
import { findUnsafeText, printable, UNSAFE_TEXT_MESSAGE, unsafeRequestTarget } from '../protocol/text.ts';
import type { WireError } from '../protocol/wire.ts';

/** `{error: {code, message}}` with the status: the one error shape every route answers with. */
export function problem<C extends Context>(c: C, status: ContentfulStatusCode, code: WireError['code'], message: string): Response {
  return c.json({ error: { code, message } }, status);
}

/** Parses and validates a JSON body; a refusal comes back as the 400 response to send. */
export async function readBody<T>(
  c: Context,
  schema: v.GenericSchema<unknown, T>,
): Promise<{ ok: true; value: T } | { ok: false; response: Response }> {
  let data: unknown;
  try {
    data = JSON.parse(await c.req.text());
  } catch {
    return { ok: false, response: problem(c, 400, 'BAD_MESSAGE', 'The body is not JSON.') };
  }
  // Before any schema: the store refuses NUL, and nothing stored or shown should hold the rest.
  const unsafe = findUnsafeText(data);
  if (unsafe !== null)
    return {
      ok: false,
      response: problem(c, 400, 'BAD_MESSAGE', `Invalid body at ${printable(unsafe.slice(0, 200))}: ${UNSAFE_TEXT_MESSAGE}.`),
    };
  const result = v.safeParse(schema, data);
  if (result.success) return { ok: true, value: result.output };
  return { ok: false, response: problem(c, 400, 'BAD_MESSAGE', `Invalid body: ${printable(v.summarize(result.issues).slice(0, 1000))}`) };
}

/** The caller's IP address (the socket's peer), for per-address limits; `unknown` off a socket. */
export function clientAddress(c: Context): string {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return env?.incoming?.socket?.remoteAddress ?? 'unknown';
}

/**
 * Refuses, with a typed 400, a request whose path or query is bad percent-encoding, holds NUL,
 * control characters or lone surrogates, or has an over-long segment: before any route reads an
 * id from it.
 */
export const requestTargetGuard: MiddlewareHandler = async (c, next) => {
  const url = c.req.url;
  const start = url.indexOf('/', url.indexOf('//') + 2);
  const q = url.indexOf('?', start);
  const rawPath = q < 0 ? url.slice(start) : url.slice(start, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  const why = unsafeRequestTarget(rawPath, rawQuery);
  if (why !== null) return problem(c, 400, 'BAD_MESSAGE', `Bad request target: ${why}.`);
  await next();
};
