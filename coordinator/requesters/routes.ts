/**
 * The requester API (docs/protocol.md): create a job, submit its sealed payload, follow
 * its events as NDJSON, cancel it, list models. Every route needs `Authorization: Bearer
 * <api key>`; a job is visible only to the key that created it. Errors are JSON
 * `{error: {code, message}}`.
 */
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import * as v from 'valibot';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { problem, readBody } from '../http.ts';
import type { ModelFacts, JobEvent } from '../../protocol/wire.ts';
import { CreateJob, MAX_MESSAGE_BYTES, SubmitPayload } from '../../protocol/wire.ts';
import { IdempotencyKey } from '../../protocol/requester-channel.ts';
import { Job } from '../jobs/job.ts';
import type { ApiKeyRecord, JobRecord } from '../store/types.ts';
import { type Outcome, recordedError, type Refused, RequesterActions, type RequesterDeps } from './actions.ts';

export type { RequesterDeps } from './actions.ts';

/** Room left in a contributor frame for the `job` fields around the sealed payload, bytes. */
const JOB_FRAME_OVERHEAD = 4096;
/** Largest `PUT …/payload` body, bytes: the payload must fit in one job frame. */
export const MAX_PAYLOAD_BODY = MAX_MESSAGE_BYTES - JOB_FRAME_OVERHEAD;
export const MAX_CREATE_BODY = 16 * 1024;

type Env = { Variables: { apiKey: ApiKeyRecord } };

const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The refusal as the HTTP answer. */
function refusal<C extends Context>(c: C, r: Refused): Response {
  if (r.retryAfterS !== undefined) c.header('Retry-After', String(r.retryAfterS));
  if (r.payment !== undefined) return c.json(r.payment, 402);
  if (r.status === 401) c.header('WWW-Authenticate', 'Bearer');
  return problem(c, r.status as ContentfulStatusCode, r.error.code, r.error.message);
}

function answer<T>(c: Context, outcome: Outcome<T>, status: 200 | 201 | 202, body: (value: T) => unknown): Response {
  return outcome.ok ? c.json(body(outcome.value) as object, status) : refusal(c, outcome);
}

/** The `/v1` requester routes, on `actions` (shared with the requester channel). */
export function requesterRoutes(deps: RequesterDeps | RequesterActions): Hono<Env> {
  const actions = deps instanceof RequesterActions ? deps : new RequesterActions(deps);
  const { relay, billing, catalog } = actions.deps;
  const app = new Hono<Env>();
  const streamBuffer = actions.deps.eventStreamBufferBytes ?? 16 * 1024 * 1024;

  app.use('*', async (c, next) => {
    const secret = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
    const key = await actions.authenticate(secret);
    if (!key.ok) return refusal(c, key);
    c.set('apiKey', key.value);
    await next();
  });

  app.post('/jobs', limit(MAX_CREATE_BODY), async (c) => {
    const body = await readBody(c, CreateJob);
    if (!body.ok) return body.response;
    const idempotencyKey = c.req.header('idempotency-key');
    if (idempotencyKey !== undefined && !v.is(IdempotencyKey, idempotencyKey)) {
      return problem(c, 400, 'BAD_MESSAGE', 'The Idempotency-Key header is 16–64 base64url characters; send a new random one per job.');
    }
    const created = await actions.createJob(c.get('apiKey'), body.value, undefined, idempotencyKey);
    // A repeat under the same idempotency key answers 200 with the job the first one created.
    const status = created.ok && created.value.repeated === true ? 200 : 201;
    return answer(c, created, status, ({ job, assignment }) => ({ jobId: job.id, assignment }));
  });

  app.put('/jobs/:id/payload', limit(MAX_PAYLOAD_BODY), async (c) => {
    const job = await actions.liveJob(c.get('apiKey'), c.req.param('id'));
    if (!job.ok) return refusal(c, job);
    const body = await readBody(c, SubmitPayload);
    if (!body.ok) return body.response;
    return answer(c, await actions.submitTo(job.value, body.value), 202, (value) => value);
  });

  app.get('/jobs/:id/events', async (c) => {
    const followed = await actions.follow(c.get('apiKey'), c.req.param('id'));
    if (!followed.ok) return refusal(c, followed);
    const { value } = followed;
    return ndjson(value.job, streamBuffer, () => value.release());
  });

  app.delete('/jobs/:id', async (c) => answer(c, await actions.cancel(c.get('apiKey'), c.req.param('id')), 200, (value) => value));

  app.get('/account', async (c) => {
    if (billing === undefined) return problem(c, 404, 'NOT_FOUND', 'This coordinator takes no payments: its jobs are free.');
    return c.json(await billing.account(c.get('apiKey')));
  });

  app.get('/models/:id', async (c) => {
    const id = c.req.param('id');
    if (!MODEL_ID.test(id)) return problem(c, 400, 'BAD_MESSAGE', 'A model id is 1–128 letters, digits, ".", "_" or "-".');
    const model = catalog?.get(id) ?? null;
    const limits: ModelFacts['limits'] = {};
    for (const kind of model?.kinds ?? []) limits[kind] = await catalog?.limits(id, kind);
    return c.json({ id, model, limits } satisfies ModelFacts);
  });

  app.get('/models', (c) => {
    const models = new Map<string, { kinds: Set<string>; contributors: number; loaded: number }>();
    for (const contributor of relay.contributors.values()) {
      for (const model of contributor.capabilities?.models ?? []) {
        const entry = models.get(model.id) ?? { kinds: new Set<string>(), contributors: 0, loaded: 0 };
        for (const kind of contributor.capabilities?.consent ?? []) entry.kinds.add(kind);
        entry.contributors++;
        if (model.state === 'loaded') entry.loaded++;
        models.set(model.id, entry);
      }
    }
    return c.json({
      models: [...models].map(([id, m]) => ({ id, kinds: [...m.kinds].sort(), contributors: m.contributors, loaded: m.loaded })),
    });
  });

  return app;
}

/** The job's events as newline-delimited JSON: those so far, then each as it happens, until the last. */
function ndjson(job: Job | JobRecord, maxQueuedBytes: number, ended: () => void): Response {
  const encoder = new TextEncoder();
  const line = (event: JobEvent): Uint8Array => encoder.encode(JSON.stringify(event) + '\n');
  let unsubscribe = (): void => {};
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        if (!(job instanceof Job)) {
          controller.enqueue(line({ type: 'failed', error: recordedError(job.error) }));
          controller.close();
          ended();
          return;
        }
        let open = true;
        unsubscribe = job.subscribe({
          event: (event) => {
            if (!open) return;
            try {
              controller.enqueue(line(event));
              // A reader that does not read is dropped, not buffered for without end.
              if ((controller.desiredSize ?? 0) < 0) {
                open = false;
                controller.error(new Error('event-stream reader too slow'));
                unsubscribe();
                ended();
              }
            } catch {
              // The client went away between the event and its delivery.
              open = false;
              ended();
            }
          },
          end: () => {
            if (open) controller.close();
            open = false;
            ended();
          },
        });
      },
      cancel() {
        unsubscribe();
        ended();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: maxQueuedBytes }),
  );
  // The connection ends with the stream: a client acting on the last event (a re-run after
  // `DRAINING`) would otherwise send on it just as a closing server drops it, and a job creation
  // cut off after it was sent cannot be tried again.
  return new Response(body, { headers: { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store', Connection: 'close' } });
}

function limit(maxSize: number) {
  return bodyLimit({ maxSize, onError: (c) => problem(c, 413, 'BAD_MESSAGE', `The body exceeds ${maxSize} bytes, the limit.`) });
}
