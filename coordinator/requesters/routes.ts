/**
 * The requester API (docs/protocol.md): create a job, submit its sealed payload, follow
 * its events as NDJSON, cancel it, list models. Every route needs `Authorization: Bearer
 * <api key>`; a job is visible only to the key that created it. Errors are JSON
 * `{error: {code, message}}`.
 */
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import * as v from 'valibot';
import { envelopeProblem, SEAL_TAG_BYTES } from '../../protocol/billing.ts';
import { problem, readBody } from '../http.ts';
import type { Billing } from '../billing/service.ts';
import { base64urlBytes, randomId } from '../deps.ts';
import type { ModelCatalog } from '../models/catalog.ts';
import {
  CreateJob,
  type ModelFacts,
  type JobEvent,
  MAX_MESSAGE_BYTES,
  SubmitPayload,
  type WireError,
  WireError as WireErrorSchema,
} from '../../protocol/wire.ts';
import { Job } from '../jobs/job.ts';
import type { Relay } from '../leases/relay.ts';
import type { ApiKeyRecord, JobRecord, JobState, Store } from '../store/types.ts';
import type { ApiKeys, Quotas } from './keys.ts';
import { Counter } from '../edges/limits.ts';

/** Room left in a contributor frame for the `job` fields around the sealed payload, bytes. */
const JOB_FRAME_OVERHEAD = 4096;
/** Largest `PUT …/payload` body, bytes: the payload must fit in one job frame. */
export const MAX_PAYLOAD_BODY = MAX_MESSAGE_BYTES - JOB_FRAME_OVERHEAD;
const MAX_CREATE_BODY = 16 * 1024;
const FINAL: ReadonlySet<JobState> = new Set(['done', 'failed', 'cancelled']);

type Env = { Variables: { apiKey: ApiKeyRecord } };

export interface RequesterDeps {
  relay: Relay;
  store: Store;
  keys: ApiKeys;
  quotas: Quotas;
  /** Prepaid jobs: reservations, 402s and `GET /v1/account`; without it jobs are free. */
  billing?: Billing;
  /** Model facts for envelope checks and `GET /v1/models/:id`; without it envelopes are only clamped. */
  catalog?: ModelCatalog;
  /** Event streams open at once per job (default 8) and per API key (default 1,000); more get 429. */
  subscribersPerJob?: number;
  subscribersPerKey?: number;
  /** Bytes queued to an event-stream reader that does not read before it is dropped (default 16 MiB). */
  eventStreamBufferBytes?: number;
}

const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The `/v1` requester routes. */
export function requesterRoutes(deps: RequesterDeps): Hono<Env> {
  const { relay, store, keys, quotas, billing, catalog } = deps;
  const app = new Hono<Env>();
  const perJob = new Counter();
  const perKey = new Counter();
  const maxPerJob = deps.subscribersPerJob ?? 8;
  const maxPerKey = deps.subscribersPerKey ?? 1_000;
  const streamBuffer = deps.eventStreamBufferBytes ?? 16 * 1024 * 1024;

  app.use('*', async (c, next) => {
    const secret = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
    const key = secret === undefined ? null : await keys.find(secret);
    if (key === null) {
      c.header('WWW-Authenticate', 'Bearer');
      return problem(
        c,
        401,
        'UNAUTHORIZED',
        secret === undefined ? 'Send `Authorization: Bearer <api key>`.' : 'The API key is unknown or revoked.',
      );
    }
    c.set('apiKey', key);
    await next();
  });

  app.post('/jobs', limit(MAX_CREATE_BODY), async (c) => {
    const body = await readBody(c, CreateJob);
    if (!body.ok) return body.response;
    const key = c.get('apiKey');
    const refused = quotas.check(key, relay.inFlightFor(key.id));
    if (refused !== null) {
      c.header('Retry-After', String(refused.retryAfterS));
      return problem(c, 429, 'QUOTA', refused.message);
    }
    const { model, kind, billing: envelope } = body.value;
    if (catalog !== undefined) {
      const wrong = envelopeProblem(envelope, await catalog.limits(model, kind));
      if (wrong !== null) return problem(c, 422, 'ENVELOPE', wrong);
    }
    const id = randomId();
    if (billing !== undefined) {
      const reserved = await billing.reserveJob(key, id, model, kind, envelope);
      if (!reserved.ok) return c.json(reserved.body, 402);
    }
    const job = relay.createJob(key.id, model, kind, { envelope, replicas: body.value.replicas === true, id });
    if (!(job instanceof Job)) {
      await billing?.release(id, `not created: ${job.error.message}`);
      return c.json({ error: job.error }, job.status);
    }
    quotas.record(key.id);
    return c.json({ jobId: job.id, assignment: job.assignment }, 201);
  });

  app.put('/jobs/:id/payload', limit(MAX_PAYLOAD_BODY), async (c) => {
    const job = await liveJob(c, relay, store);
    if (job instanceof Response) return job;
    const body = await readBody(c, SubmitPayload);
    if (!body.ok) return body.response;
    if (catalog !== undefined && !job.finished) {
      const plaintext = base64urlBytes(body.value.sealed.ct) - SEAL_TAG_BYTES;
      const wrong = envelopeProblem(job.envelope, await catalog.limits(job.model, job.kind), plaintext);
      if (wrong !== null) {
        // The envelope cannot change after creation: the job ends, and its reservation goes back.
        relay.refuse(job, { code: 'ENVELOPE', message: wrong });
        return problem(c, 422, 'ENVELOPE', wrong);
      }
    }
    const refused = relay.submitPayload(job, body.value.attempt, body.value.sealed);
    if (refused !== null) return c.json({ error: refused.error }, refused.status);
    return c.json({ jobId: job.id, attempt: job.attempt }, 202);
  });

  app.get('/jobs/:id/events', async (c) => {
    const found = await findJob(c, relay, store);
    if (found instanceof Response) return found;
    if (found instanceof Job) {
      const keyId = c.get('apiKey').id;
      if (!perKey.take(keyId, maxPerKey)) {
        return problem(c, 429, 'QUOTA', `This API key has ${maxPerKey} event streams open, the limit; close one first.`);
      }
      if (!perJob.take(found.id, maxPerJob)) {
        perKey.release(keyId);
        return problem(c, 429, 'QUOTA', `Job ${found.id} has ${maxPerJob} event streams open, the limit; close one first.`);
      }
      let released = false;
      return ndjson(found, streamBuffer, () => {
        if (released) return;
        released = true;
        perKey.release(keyId);
        perJob.release(found.id);
      });
    }
    if (found.state === 'failed' || found.state === 'cancelled') return ndjson(found, streamBuffer, () => {});
    if (found.state === 'done') {
      return problem(
        c,
        410,
        'NOT_FOUND',
        'The job is done and its result is no longer held: the coordinator keeps results only briefly after the last chunk.',
      );
    }
    return problem(c, 409, 'CONFLICT', `The job is ${found.state} on another coordinator, or from before a restart.`);
  });

  app.delete('/jobs/:id', async (c) => {
    const job = await liveJob(c, relay, store);
    if (job instanceof Response) return job;
    const refused = relay.cancel(job);
    if (refused !== null) return c.json({ error: refused.error }, refused.status);
    return c.json({ jobId: job.id, state: job.state });
  });

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

/** A job of the calling key: live, or the record of one this coordinator no longer holds. */
async function findJob(c: Context<Env>, relay: Relay, store: Store): Promise<Job | JobRecord | Response> {
  const id = c.req.param('id') ?? '';
  const key = c.get('apiKey');
  const job = relay.job(id, key.id);
  if (job !== undefined) return job;
  const record = await store.getJob(id);
  if (record === null || record.apiKeyId !== key.id) return problem(c, 404, 'NOT_FOUND', `No job ${id} for this API key.`);
  return record;
}

/** A live job of the calling key, or the error response. */
async function liveJob(c: Context<Env>, relay: Relay, store: Store): Promise<Job | Response> {
  const found = await findJob(c, relay, store);
  if (found instanceof Response || found instanceof Job) return found;
  return problem(
    c,
    409,
    'CONFLICT',
    `The job is ${found.state}${FINAL.has(found.state) ? '' : ' on another coordinator, or from before a restart'}.`,
  );
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
  return new Response(body, { headers: { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store' } });
}

/** Splits the store's `code: message` error back into a wire error. */
function recordedError(text: string | null): WireError {
  const at = text?.indexOf(': ') ?? -1;
  const parsed = v.safeParse(WireErrorSchema, { code: text?.slice(0, at), message: text?.slice(at + 2) });
  return at > 0 && parsed.success ? parsed.output : { code: 'INTERNAL', message: text ?? 'The job failed.' };
}

function limit(maxSize: number) {
  return bodyLimit({ maxSize, onError: (c) => problem(c, 413, 'BAD_MESSAGE', `The body exceeds ${maxSize} bytes, the limit.`) });
}
