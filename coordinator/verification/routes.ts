/**
 * Verification's HTTP routes, mounted under `/v1`:
 *
 * - `GET /contributors/:id/receipts?limit=50` → `{ publicKey, receipts }` (public, CORS);
 * - `GET /contributors/:id/verification` → {@link VerificationReport} (public, CORS);
 * - `POST /jobs/:id/verdict` → {@link VerdictAnswer}: the requester's comparison of a
 *   replicated job, with its API key (only the job's own key, once per stage);
 * - `POST /jobs/:id/report` → `JobReportAnswer`: whether the job's result opened and the usage
 *   it held, with its API key (only the job's own key, once per job).
 */
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { JobReport, Verdict } from '../../protocol/wire.ts';

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;
import { problem, readBody } from '../http.ts';
import type { ApiKeys } from '../requesters/keys.ts';
import type { Verification } from './service.ts';

const MAX_LIMIT = 200;
const DEFAULT_LIMIT = 50;
const MAX_VERDICT_BODY = 4096;

/** The public routes: a contributor's receipts and verification record. */
export function verificationRoutes(verification: Verification): Hono {
  const app = new Hono();
  // The dashboard is on another origin than the coordinator; receipts and records are public data.
  app.use('/contributors/*', cors({ origin: '*', allowMethods: ['GET'] }));
  app.get('/contributors/:id/receipts', async (c) => {
    const raw = c.req.query('limit');
    const limit = raw === undefined ? DEFAULT_LIMIT : Number(raw);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      return problem(c, 400, 'BAD_MESSAGE', `limit must be an integer from 1 to ${MAX_LIMIT}; got "${raw ?? ''}".`);
    }
    return c.json(await verification.receipts(c.req.param('id'), limit));
  });
  app.get('/contributors/:id/verification', async (c) => c.json(await verification.report(c.req.param('id'))));
  return app;
}

const verdictBodyLimit = bodyLimit({
  maxSize: MAX_VERDICT_BODY,
  onError: (c) => problem(c, 413, 'BAD_MESSAGE', `The body exceeds ${MAX_VERDICT_BODY} bytes, the limit.`),
});

/** The API key named by the request's bearer token, or null. */
async function requesterKey(c: Context, keys: ApiKeys): ReturnType<ApiKeys['find']> {
  const secret = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
  return secret === undefined ? null : await keys.find(secret);
}

function unauthorized(c: Context): Response {
  c.header('WWW-Authenticate', 'Bearer');
  return problem(c, 401, 'UNAUTHORIZED', 'Send `Authorization: Bearer <api key>` of the key that created the job.');
}

/** `POST /jobs/:id/verdict` and `POST /jobs/:id/report`, authenticated like the requester API. */
export function verdictRoutes(verification: Verification, keys: ApiKeys): Hono {
  const app = new Hono();
  app.post('/jobs/:id/verdict', verdictBodyLimit, async (c) => {
    const key = await requesterKey(c, keys);
    if (key === null) return unauthorized(c);
    const body = await readBody(c, Verdict);
    if (!body.ok) return body.response;
    const outcome = await verification.verdict(c.req.param('id'), key.id, body.value);
    if (!outcome.ok) return problem(c, outcome.status, outcome.code, outcome.message);
    return c.json(outcome.answer);
  });
  app.post('/jobs/:id/report', verdictBodyLimit, async (c) => {
    const key = await requesterKey(c, keys);
    if (key === null) return unauthorized(c);
    const id = c.req.param('id');
    if (!JOB_ID.test(id)) return problem(c, 400, 'BAD_MESSAGE', 'A job id is 1–64 base64url characters.');
    const body = await readBody(c, JobReport);
    if (!body.ok) return body.response;
    const outcome = await verification.jobReport(id, key.id, body.value);
    if (!outcome.ok) return problem(c, outcome.status, outcome.code, outcome.message);
    return c.json(outcome.answer);
  });
  return app;
}
