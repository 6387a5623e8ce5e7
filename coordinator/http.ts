/** The coordinator's HTTP error body and JSON body reading, shared by every route group. */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import * as v from 'valibot';
import type { WireError } from '../protocol/wire.ts';

/** `{error: {code, message}}` with the status: the one error shape every route answers with. */
export function problem(c: Context, status: ContentfulStatusCode, code: WireError['code'], message: string): Response {
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
  const result = v.safeParse(schema, data);
  if (result.success) return { ok: true, value: result.output };
  return { ok: false, response: problem(c, 400, 'BAD_MESSAGE', `Invalid body: ${v.summarize(result.issues).slice(0, 1000)}`) };
}
