/**
 * The requester API (docs/protocol.md): create a job, submit its sealed payload, follow
 * its events as NDJSON, cancel it, list models. Every route needs `Authorization: Bearer
 * <api key>`; a job is visible only to the key that created it. Refusals are thrown as
 * {@link Problem}s, answered as JSON `{error: {code, message}}`.
 */
import { Hono } from 'hono';
import * as v from 'valibot';
import { bearer, bodyLimitOf, Problem, readBody } from '../http.ts';
import type { ModelFacts, JobEvent } from '../../protocol/wire.ts';
import { CreateJob, MAX_MESSAGE_BYTES, SubmitPayload } from '../../protocol/wire.ts';
import { IdempotencyKey } from '../../protocol/requester-channel.ts';
import { Job } from '../jobs/job.ts';
import type { ApiKeyRecord, JobRecord } from '../store/types.ts';
import { recordedEvents, RequesterActions, type RequesterDeps } from './actions.ts';

export type { RequesterDeps } from './actions.ts';

/** Room left in a contributor frame for the `job` fields around the sealed payload, bytes. */
const JOB_FRAME_OVERHEAD = 4096;
/** Largest `PUT …/payload` body, bytes: the payload must fit in one job frame. */
export const MAX_PAYLOAD_BODY = MAX_MESSAGE_BYTES - JOB_FRAME_OVERHEAD;
export const MAX_CREATE_BODY = 16 * 1024;

type Env = { Variables: { apiKey: ApiKeyRecord } };

const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The `/v1` requester routes, on `actions` (shared with the requester channel). */
export function requesterRoutes(deps: RequesterDeps | RequesterActions): Hono<Env> {
  const actions = deps instanceof RequesterActions ? deps : new RequesterActions(deps);
  const { relay, billing, catalog } = actions.deps;
  const app = new Hono<Env>();
  const streamBuffer = actions.deps.eventStreamBufferBytes ?? 16 * 1024 * 1024;

  app.use('*', async (c, next) => {
    c.set('apiKey', await actions.authenticate(bearer(c.req.header('authorization'))));
    await next();
  });

  app.post('/jobs', bodyLimitOf(MAX_CREATE_BODY), async (c) => {
    const body = await readBody(c, CreateJob);
    const idempotencyKey = c.req.header('idempotency-key');
    if (idempotencyKey !== undefined && !v.is(IdempotencyKey, idempotencyKey)) {
      throw new Problem(400, 'BAD_MESSAGE', 'The Idempotency-Key header is 16–64 base64url characters; send a new random one per job.');
    }
    const { job, assignment, repeated } = await actions.createJob(c.get('apiKey'), body, undefined, idempotencyKey);
    // A repeat under the same idempotency key answers 200 with the job the first one created.
    return c.json({ jobId: job.id, assignment }, repeated === true ? 200 : 201);
  });

  app.put('/jobs/:id/payload', bodyLimitOf(MAX_PAYLOAD_BODY), async (c) => {
    const job = await actions.liveJob(c.get('apiKey'), c.req.param('id'));
    return c.json(await actions.submitTo(job, await readBody(c, SubmitPayload)), 202);
  });

  app.get('/jobs/:id/events', async (c) => {
    const { job, release } = await actions.follow(c.get('apiKey'), c.req.param('id'));
    return ndjson(job, streamBuffer, release);
  });

  app.delete('/jobs/:id', async (c) => c.json(await actions.cancel(c.get('apiKey'), c.req.param('id'))));

  app.get('/account', async (c) => {
    if (billing === undefined) throw new Problem(404, 'NOT_FOUND', 'This coordinator takes no payments: its jobs are free.');
    return c.json(await billing.account(c.get('apiKey')));
  });

  app.get('/models/:id', async (c) => {
    const id = c.req.param('id');
    if (!MODEL_ID.test(id)) throw new Problem(400, 'BAD_MESSAGE', 'A model id is 1–128 letters, digits, ".", "_" or "-".');
    const model = catalog?.get(id) ?? null;
    const limits: ModelFacts['limits'] = {};
    if (catalog !== undefined) for (const kind of model?.kinds ?? []) limits[kind] = await catalog.limits(id, kind);
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
          for (const event of recordedEvents(job)) controller.enqueue(line(event));
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
  // cut off after it was sent is tried again only under its idempotency key.
  return new Response(body, { headers: { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store', Connection: 'close' } });
}
