/** The coordinator's HTTP error body and JSON body reading, shared by every route group. */
import { timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import * as v from 'valibot';
import { findUnsafeText, printable, UNSAFE_TEXT_MESSAGE, unsafeRequestTarget } from '../protocol/text.ts';
import type { PaymentRequired, WireError } from '../protocol/wire.ts';

/**
 * `{error: {code, message}}` with the status: the one error body every route answers with,
 * for a handler outside Hono's error handling (a forwarded request's own answer); routes throw
 * a {@link Problem} instead.
 */
export function problem<C extends Context>(c: C, status: ContentfulStatusCode, code: WireError['code'], message: string): Response {
  return c.json({ error: { code, message } }, status);
}

/** What goes with some refusals besides `{error: {code, message}}`. */
export interface ProblemOptions {
  /** With a 429: when to try again, seconds (the `Retry-After` header). */
  retryAfterS?: number;
  /** Fields beside `code` and `message` in the error (a wallet refusal's `reason`). */
  details?: Record<string, string>;
  /** With a 402: the body sent instead (the price, the balance, where to deposit). */
  payment?: PaymentRequired;
  /** Headers of the answer (a 401's `WWW-Authenticate`). */
  headers?: Record<string, string>;
}

/**
 * An expected refusal: thrown by a route, a middleware or a helper they call, and answered as
 * `{error: {code, message}}` with its status by Hono (its error handler renders any
 * `HTTPException`); the requester channel catches the same error and sends it as an `error`
 * frame with the status.
 */
export class Problem extends HTTPException {
  override readonly status: ContentfulStatusCode;
  readonly code: WireError['code'];
  readonly retryAfterS: number | undefined;
  readonly details: Record<string, string> | undefined;
  readonly payment: PaymentRequired | undefined;
  readonly #headers: Record<string, string>;

  constructor(status: ContentfulStatusCode, code: WireError['code'], message: string, options: ProblemOptions = {}) {
    super(status, { message });
    this.name = 'Problem';
    this.status = status;
    this.code = code;
    this.retryAfterS = options.retryAfterS;
    this.details = options.details;
    this.payment = options.payment;
    this.#headers = options.headers ?? {};
  }

  /** The wire error, as the channel sends it. */
  get error(): WireError {
    return { code: this.code, message: this.message };
  }

  override getResponse(): Response {
    const headers = new Headers({ ...this.#headers, 'Content-Type': 'application/json' });
    if (this.retryAfterS !== undefined) headers.set('Retry-After', String(this.retryAfterS));
    const body = this.payment ?? { error: { code: this.code, message: this.message, ...this.details } };
    return new Response(JSON.stringify(body), { status: this.status, headers });
  }
}

/** Parses and validates a JSON body, or throws the 400 {@link Problem}. */
export async function readBody<T>(c: Context, schema: v.GenericSchema<unknown, T>): Promise<T> {
  let data: unknown;
  try {
    data = JSON.parse(await c.req.text());
  } catch {
    throw new Problem(400, 'BAD_MESSAGE', 'The body is not JSON.');
  }
  // Before any schema: the store refuses NUL, and nothing stored or shown should hold the rest.
  const unsafe = findUnsafeText(data);
  if (unsafe !== null) throw new Problem(400, 'BAD_MESSAGE', `Invalid body at ${printable(unsafe.slice(0, 200))}: ${UNSAFE_TEXT_MESSAGE}.`);
  const result = v.safeParse(schema, data);
  if (!result.success) throw new Problem(400, 'BAD_MESSAGE', `Invalid body: ${printable(v.summarize(result.issues).slice(0, 1000))}`);
  return result.output;
}

/** A body limit whose refusal is the 413 {@link Problem}. */
export function bodyLimitOf(maxSize: number, message = `The body exceeds ${maxSize} bytes, the limit.`): MiddlewareHandler {
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new Problem(413, 'BAD_MESSAGE', message);
    },
  });
}

/** Lets through only a request with `Authorization: Bearer <token>` (the operator token); else 401. */
export function operatorAuth(token: string): MiddlewareHandler {
  const expected = Buffer.from(token, 'utf8');
  return async (c, next) => {
    const given = Buffer.from(bearer(c.req.header('authorization')) ?? '', 'utf8');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new Problem(401, 'UNAUTHORIZED', 'Send `Authorization: Bearer <SPINNERET_OPERATOR_TOKEN>`.');
    }
    await next();
  };
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearer(authorization: string | undefined): string | null {
  return /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1] ?? null;
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
  if (why !== null) throw new Problem(400, 'BAD_MESSAGE', `Bad request target: ${why}.`);
  await next();
};

/**
 * A {@link Problem} (or any Hono `HTTPException`) as the answer, with the headers set so far
 * (CORS, the request id): what an app's `onError` sends for an expected refusal.
 */
export function problemAnswer(err: HTTPException, c: Context): Response {
  const res = err.getResponse();
  return c.newResponse(res.body, res);
}
