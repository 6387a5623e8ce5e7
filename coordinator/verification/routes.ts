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
import { cors } from 'hono/cors';
import { JobReport, Verdict } from '../../protocol/wire.ts';

import { bearer, bodyLimitOf, Problem, readBody } from '../http.ts';
import type { ApiKeyRecord } from '../store/types.ts';
import type { ApiKeys } from '../requesters/keys.ts';
import type { Verification } from './service.ts';

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;
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
      throw new Problem(400, 'BAD_MESSAGE', `limit must be an integer from 1 to ${MAX_LIMIT}; got "${raw ?? ''}".`);
    }
    return c.json(await verification.receipts(c.req.param('id'), limit));
  });
  app.get('/contributors/:id/verification', async (c) => c.json(await verification.report(c.req.param('id'))));
  return app;
}

const verdictBodyLimit = bodyLimitOf(MAX_VERDICT_BODY);

/** The API key named by the request's bearer token, or throws the 401. */
async function requesterKey(c: Context, keys: ApiKeys): Promise<ApiKeyRecord> {
  const secret = bearer(c.req.header('authorization'));
  const key = secret === null ? null : await keys.find(secret);
  if (key !== null) return key;
  throw new Problem(401, 'UNAUTHORIZED', 'Send `Authorization: Bearer <api key>` of the key that created the job.', {
    headers: { 'WWW-Authenticate': 'Bearer' },
  });
}

/** A refused verdict or report as the error to throw. */
function refusal(outcome: Pick<Problem, 'status' | 'code' | 'message'>): Problem {
  return new Problem(outcome.status, outcome.code, outcome.message);
}

/** `POST /jobs/:id/verdict` and `POST /jobs/:id/report`, authenticated like the requester API. */
export function verdictRoutes(verification: Verification, keys: ApiKeys): Hono {
  const app = new Hono();
  app.post('/jobs/:id/verdict', verdictBodyLimit, async (c) => {
    const key = await requesterKey(c, keys);
    const outcome = await verification.verdict(c.req.param('id'), key.id, await readBody(c, Verdict));
    if (!outcome.ok) throw refusal(outcome);
    return c.json(outcome.answer);
  });
  app.post('/jobs/:id/report', verdictBodyLimit, async (c) => {
    const key = await requesterKey(c, keys);
    const id = c.req.param('id');
    if (!JOB_ID.test(id)) throw new Problem(400, 'BAD_MESSAGE', 'A job id is 1–64 base64url characters.');
    const outcome = await verification.jobReport(id, key.id, await readBody(c, JobReport));
    if (!outcome.ok) throw refusal(outcome);
    return c.json(outcome.answer);
  });
  return app;
}
