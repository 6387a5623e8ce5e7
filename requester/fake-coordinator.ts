/**
 * Test double of the coordinator's requester API (docs/protocol.md) on a real socket. It
 * plays the contributors too: each holds an X25519 key, opens the payload with openJob and
 * seals the result with a ResultSealer to the result key it found inside. Tests only.
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import type { AddressInfo } from 'node:net';
import {
  createResultSealer,
  exportPublicKey,
  fromB64url,
  generateHpkeKeyPair,
  openJob,
  toB64url,
  type JobPayload,
  type ResultPiece,
} from '../protocol/envelope.ts';
import type { JobRequest } from '../protocol/jobs.ts';
import type { JobKind } from '../protocol/manifest.ts';
import type { JobEvent, WireError } from '../protocol/wire.ts';

export interface FakeCoordinatorOptions {
  /** The one API key accepted; default `test-key`. */
  apiKey?: string;
  /** Put the first assignment in the POST answer (default) or only in the event stream. */
  inline?: boolean;
  /** Attempts whose contributor drops after one delta; the fake then assigns the next attempt. */
  dropAttempts?: number[];
  /** What the contributor answers (a real engine may answer asynchronously); default echoes the last message in three pieces. */
  answer?: (request: JobRequest) => ResultPiece[] | Promise<ResultPiece[]>;
  /** What `GET /v1/models` lists; default `tiny-chat` (chat) and `tiny-embed` (embed). */
  models?: { id: string; kinds: JobKind[] }[];
  /** Contributors never answer (for cancellation tests). */
  hold?: boolean;
  /** The job fails with this instead of answering. */
  fail?: WireError;
  /** Flip a byte of the chunk with this seq. */
  tamperSeq?: number;
}

interface FakeJob {
  id: string;
  model: string;
  kind: JobKind;
  attempt: number;
  contributors: CryptoKeyPair[];
  log: string[];
  ended: boolean;
  listeners: Set<() => void>;
}

export interface FakeCoordinator {
  url: string;
  /** Every request the requester sent: method, path and body text. */
  requests: Array<{ method: string; path: string; body: string }>;
  /** Ids of jobs the requester cancelled with DELETE. */
  deletes: string[];
  /** Payloads the contributors opened, in order. */
  opened: JobPayload[];
  /** Resolves when a contributor has opened `count` payloads. */
  payloadsOpened(count: number): Promise<void>;
  close(): Promise<void>;
}

export function defaultAnswer(request: JobRequest): ResultPiece[] {
  if (request.kind === 'embed') {
    const embeddings = request.inputs.map((text) => [text.length, 0.5, -1]);
    return [
      {
        type: 'result',
        result: { kind: 'embed', embeddings, usage: { promptTokens: request.inputs.join(' ').split(' ').length, completionTokens: 0 } },
      },
    ];
  }
  const last = request.kind === 'chat' ? (request.messages.at(-1)?.content ?? '') : request.kind;
  const words = ['You', ' said:', ` ${last}`];
  const text = words.join('');
  const result: ResultPiece = {
    type: 'result',
    result: { kind: 'chat', text, finishReason: 'stop', usage: { promptTokens: 5, completionTokens: words.length } },
  };
  return [...words.map((w, i): ResultPiece => ({ type: 'delta', text: w, tokens: [i + 1] })), result];
}

export async function startFakeCoordinator(options: FakeCoordinatorOptions = {}): Promise<FakeCoordinator> {
  const apiKey = options.apiKey ?? 'test-key';
  const answer = options.answer ?? defaultAnswer;
  const jobs = new Map<string, FakeJob>();
  const fake: Omit<FakeCoordinator, 'url' | 'close'> & { waiters: Array<() => void> } = {
    requests: [],
    deletes: [],
    opened: [],
    waiters: [],
    payloadsOpened: (count) =>
      new Promise((resolve) => {
        const check = (): void => (fake.opened.length >= count ? resolve() : void fake.waiters.push(check));
        check();
      }),
  };
  let nextId = 1;

  const push = (job: FakeJob, event: JobEvent, end = false): void => {
    job.log.push(JSON.stringify(event));
    job.ended ||= end;
    for (const listener of job.listeners) listener();
  };
  const assign = async (job: FakeJob): Promise<JobEvent & { type: 'assigned' }> => {
    const keys = await generateHpkeKeyPair();
    job.contributors.push(keys);
    job.attempt = job.contributors.length;
    return {
      type: 'assigned',
      assignment: { attempt: job.attempt, contributorId: `contributor${job.attempt}`, hpkeKey: await exportPublicKey(keys.publicKey) },
    };
  };
  const contribute = async (job: FakeJob, attempt: number, sealed: { enc?: string; ct: string }): Promise<void> => {
    const keys = job.contributors[attempt - 1];
    if (keys === undefined) throw new Error(`no contributor for attempt ${attempt}`);
    const payload = await openJob(keys, sealed, { jobId: job.id, attempt, model: job.model, kind: job.kind });
    fake.opened.push(payload);
    for (const waiter of fake.waiters.splice(0)) waiter();
    if (options.hold === true) return;
    if (options.fail !== undefined) return push(job, { type: 'failed', error: options.fail }, true);
    const sealer = await createResultSealer(payload.resultKey, job.id);
    const pieces = await answer(payload.request);
    const send = async (piece: ResultPiece, final: boolean): Promise<void> => {
      const chunk = await sealer.seal(piece, final);
      if (chunk.seq === options.tamperSeq) chunk.sealed.ct = flipFirstByte(chunk.sealed.ct);
      const usage = piece.type === 'result' ? piece.result.usage : undefined;
      push(job, { type: 'chunk', attempt, seq: chunk.seq, final, sealed: chunk.sealed, ...(usage ? { usage } : {}) }, final);
      await new Promise((resolve) => setTimeout(resolve, 2));
    };
    if (options.dropAttempts?.includes(attempt) === true) {
      // Drops after its first delta (if any); its late chunk after the re-assignment must be ignored.
      if (pieces[0]?.type === 'delta') await send(pieces[0], false);
      push(job, await assign(job));
      await send({ type: 'delta', text: ' LATE', tokens: [99] }, false);
      return;
    }
    for (const [i, piece] of pieces.entries()) await send(piece, i === pieces.length - 1);
  };

  const app = new Hono();
  app.use('*', async (c, next) => {
    fake.requests.push({ method: c.req.method, path: c.req.path, body: await c.req.raw.clone().text() });
    if (c.req.header('authorization') !== `Bearer ${apiKey}`)
      return c.json({ error: { code: 'UNAUTHORIZED', message: 'unknown API key' } }, 401);
    return next();
  });
  app.get('/v1/models', (c) =>
    c.json({
      models: options.models ?? [
        { id: 'tiny-chat', kinds: ['chat'] },
        { id: 'tiny-embed', kinds: ['embed'] },
      ],
    }),
  );
  // No catalog: the SDK declares envelopes without a tokenizer (every payload byte a token).
  app.get('/v1/models/:id', (c) => c.json({ id: c.req.param('id'), model: null, limits: {} }));
  app.post('/v1/jobs', async (c) => {
    const body = await c.req.json<{ model: string; kind: JobKind }>();
    const job: FakeJob = {
      id: `job${nextId++}`,
      model: body.model,
      kind: body.kind,
      attempt: 0,
      contributors: [],
      log: [],
      ended: false,
      listeners: new Set(),
    };
    jobs.set(job.id, job);
    const assigned = await assign(job);
    if (options.inline === false) {
      push(job, assigned);
      return c.json({ jobId: job.id, assignment: null }, 201);
    }
    return c.json({ jobId: job.id, assignment: assigned.assignment }, 201);
  });
  app.put('/v1/jobs/:id/payload', async (c) => {
    const job = jobs.get(c.req.param('id'));
    if (job === undefined) return c.json({ error: { code: 'NOT_FOUND', message: 'no such job' } }, 404);
    const body = await c.req.json<{ attempt: number; sealed: { enc?: string; ct: string } }>();
    if (body.attempt !== job.attempt) return c.json({ error: { code: 'CONFLICT', message: 'old attempt' } }, 409);
    void contribute(job, body.attempt, body.sealed).catch((err: unknown) => {
      push(job, { type: 'failed', error: { code: 'OPEN_FAILED', message: String(err) } }, true);
    });
    return c.body(null, 202);
  });
  app.get('/v1/jobs/:id/events', (c) => {
    const job = jobs.get(c.req.param('id'));
    if (job === undefined) return c.json({ error: { code: 'NOT_FOUND', message: 'no such job' } }, 404);
    let flush = (): void => undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        let sent = 0;
        let closed = false;
        flush = () => {
          if (closed) return;
          while (sent < job.log.length) controller.enqueue(new TextEncoder().encode(`${job.log[sent++]}\n`));
          if (job.ended) {
            closed = true;
            job.listeners.delete(flush);
            controller.close();
          }
        };
        job.listeners.add(flush);
        flush();
      },
      cancel() {
        job.listeners.delete(flush);
      },
    });
    return new Response(stream, { headers: { 'content-type': 'application/x-ndjson' } });
  });
  app.delete('/v1/jobs/:id', (c) => {
    const job = jobs.get(c.req.param('id'));
    fake.deletes.push(c.req.param('id'));
    if (job !== undefined) push(job, { type: 'failed', error: { code: 'ABORTED', message: 'cancelled by the requester' } }, true);
    return c.body(null, 204);
  });

  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    ...fake,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const job of jobs.values()) push(job, { type: 'failed', error: { code: 'DRAINING', message: 'closing' } }, true);
        server.close(() => resolve());
        // An aborted event stream can leave its socket open; don't wait for it.
        if ('closeAllConnections' in server) server.closeAllConnections();
      }),
  };
}

function flipFirstByte(b64: string): string {
  const bytes = fromB64url(b64);
  bytes[0] = (bytes[0] ?? 0) ^ 0xff;
  return toB64url(bytes);
}
