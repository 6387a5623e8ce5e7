/**
 * The SDK's side of the requester channel (protocol/requester-channel.ts): one WebSocket to
 * `/v1/requester` carrying every job of this client. A job's creation is answered on it and
 * the job's events follow by themselves, so a job costs one round trip instead of three HTTP
 * requests and a stream. Refusals come back as the same typed errors as over HTTP (the
 * coordinator sends the HTTP status with each).
 *
 * With assignments ahead of need (`assignAhead` > 0, docs/protocol.md "Sealing ahead of
 * need"), `create` takes an assignment the channel handed out before and answers at once;
 * the payload sealed for it then goes up with the job in one `submit` message.
 */
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import {
  type ChannelErrorMessage,
  ChannelMessage,
  type ChannelRequest,
  MAX_ASSIGN_BATCH,
  REQUESTER_CHANNEL_PATH,
} from '../protocol/requester-channel.ts';
import {
  type Assignment,
  type CreateJob,
  type JobEvent,
  type JobReport,
  type JobReportAnswer,
  parseFrame,
  PROTOCOL_VERSION,
  type SubmitPayload,
} from '../protocol/wire.ts';
import { AssignmentPool } from './assignments.ts';
import { CoordinatorError, httpError, networkError } from './errors.ts';
import type { JobLine } from './http-line.ts';
import { NOT_SENT } from './retry.ts';
import { NotCreated } from './stream.ts';

type Created = { jobId: string; assignment: Assignment | null };

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
  what: string;
}

/** A job's events as they arrive, read once by an async iterator. */
class EventQueue {
  readonly #items: JobEvent[] = [];
  #error: unknown = null;
  #ended = false;
  #wake: (() => void) | null = null;

  push(event: JobEvent): void {
    this.#items.push(event);
    this.#notify();
  }

  fail(error: unknown): void {
    this.#error ??= error;
    this.#notify();
  }

  end(): void {
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async *read(signal?: AbortSignal): AsyncGenerator<JobEvent> {
    const onAbort = (): void => this.fail(signal?.reason ?? new DOMException('aborted', 'AbortError'));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const next = this.#items.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (this.#error !== null)
          throw this.#error instanceof Error ? this.#error : new Error('The requester channel failed.', { cause: this.#error });
        if (this.#ended) return;
        await new Promise<void>((resolve) => (this.#wake = resolve));
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

export class ChannelLine implements JobLine {
  readonly #ws: WebSocket;
  readonly #url: string;
  readonly #socket: { ref(): void; unref(): void } | null;
  readonly #creates = new Map<string, Pending<Created>>();
  readonly #reports = new Map<string, Pending<JobReportAnswer | null>>();
  readonly #queues = new Map<string, EventQueue>();
  readonly #pool: AssignmentPool;
  /** `assign` asks in flight, by ref. */
  readonly #assigning = new Map<string, { model: string; kind: CreateJob['kind'] }>();
  /** Jobs on an assignment ahead of need, answered by `create` but not sent yet: sent with their payload. */
  readonly #unsent = new Map<string, { job: CreateJob; idempotencyKey: string | undefined }>();
  /** Jobs sent with `submit` and not heard of since: a refusal naming one ends it (it is no superseded payload). */
  readonly #unconfirmed = new Set<string>();
  #nextRef = 0;
  #closedWith: Error | null = null;

  private constructor(ws: WebSocket, url: string, socket: { ref(): void; unref(): void } | null, assignAhead: number) {
    this.#ws = ws;
    this.#pool = new AssignmentPool(Math.max(0, Math.min(assignAhead, MAX_ASSIGN_BATCH)));
    this.#url = url;
    this.#socket = socket;
    // Text frames arrive as one Buffer (ws's default binary type).
    ws.on('message', (data) => this.#receive((data as Buffer).toString('utf8')));
    ws.on('close', (code, reason) => this.#closed(`the requester channel closed (${code} ${reason.toString() || 'no reason'})`));
    ws.on('error', (err) => this.#closed(err.message));
    this.#idle();
  }

  /**
   * Opens the channel; rejects when the coordinator has none (or refuses the key), so the caller
   * can fall back to HTTP. `assignAhead`: assignments to keep in hand per model and kind (0: none, at most 64).
   */
  static open(coordinatorUrl: string, apiKey: string, timeoutMs = 10_000, assignAhead = 0): Promise<ChannelLine> {
    const url = coordinatorUrl.replace(/^http/, 'ws') + REQUESTER_CHANNEL_PATH;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${apiKey}` }, handshakeTimeout: timeoutMs });
      let socket: { ref(): void; unref(): void } | null = null;
      const fail = (error: Error): void => {
        ws.removeAllListeners();
        ws.on('error', () => undefined);
        ws.terminate();
        reject(error);
      };
      ws.once('upgrade', (response: IncomingMessage) => (socket = response.socket));
      ws.once('unexpected-response', (_request, response: IncomingMessage) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          const answer = new Response(body, { status: response.statusCode ?? 502 });
          void httpError(answer, 'opening the requester channel', coordinatorUrl).then(fail);
        });
      });
      ws.once('error', (err) => fail(networkError(err, coordinatorUrl, 'opening the requester channel')));
      ws.once('message', (data) => {
        const first = parseFrame(ChannelMessage, (data as Buffer).toString('utf8'));
        if (!first.ok || first.value.type !== 'ready')
          return fail(new CoordinatorError('The requester channel did not start with `ready`.', 0));
        ws.removeAllListeners();
        resolve(new ChannelLine(ws, coordinatorUrl, socket, assignAhead));
      });
    });
  }

  /** True until the socket closed: a closed channel is replaced by a new one (or HTTP). */
  get usable(): boolean {
    return this.#closedWith === null;
  }

  close(): void {
    this.#ws.close(1000, 'done');
  }

  async create(body: CreateJob, signal?: AbortSignal, idempotencyKey?: string): Promise<Created> {
    const held = this.#closedWith === null ? this.#pool.take(body.model, body.kind) : undefined;
    if (held !== undefined) {
      const { jobId, ...assignment } = held;
      this.#unsent.set(jobId, { job: body, idempotencyKey });
      this.#queue(jobId);
      this.#topUp(body.model, body.kind);
      return { jobId, assignment };
    }
    const ref = this.#ref();
    const created = await this.#ask(
      this.#creates,
      ref,
      { v: PROTOCOL_VERSION, type: 'create', ref, job: body, ...(idempotencyKey !== undefined && { idempotencyKey }) },
      'creating the job',
      signal,
    );
    // Asked after the job has its slot, so the batch comes from capacity left idle.
    this.#topUp(body.model, body.kind);
    return created;
  }

  /** Asks for a batch of assignments when the pool for this model and kind runs low. */
  #topUp(model: string, kind: CreateJob['kind']): void {
    const count = this.#pool.toAsk(model, kind);
    if (count <= 0) return;
    const ref = this.#ref();
    this.#assigning.set(ref, { model, kind });
    this.#send({ v: PROTOCOL_VERSION, type: 'assign', ref, model, kind, count: Math.min(count, MAX_ASSIGN_BATCH) });
  }

  async events(jobId: string, signal?: AbortSignal): Promise<AsyncIterable<JobEvent>> {
    let queue = this.#queues.get(jobId);
    if (queue === undefined) {
      // Not created here (a replica, a re-run): ask for its events.
      queue = this.#queue(jobId);
      this.#send({ v: PROTOCOL_VERSION, type: 'follow', jobId });
    }
    return this.#read(jobId, queue, signal);
  }

  async *#read(jobId: string, queue: EventQueue, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    try {
      yield* queue.read(signal);
    } finally {
      this.#queues.delete(jobId);
      this.#unsent.delete(jobId);
      this.#unconfirmed.delete(jobId);
      this.#idle();
    }
  }

  async submit(jobId: string, body: SubmitPayload): Promise<void> {
    const unsent = this.#unsent.get(jobId);
    if (unsent !== undefined && body.attempt === 1) {
      this.#unsent.delete(jobId);
      this.#unconfirmed.add(jobId);
      const { job, idempotencyKey } = unsent;
      const key = idempotencyKey === undefined ? {} : { idempotencyKey };
      return this.#send({ v: PROTOCOL_VERSION, type: 'submit', ref: this.#ref(), jobId, job, sealed: body.sealed, ...key });
    }
    this.#send({ v: PROTOCOL_VERSION, type: 'payload', jobId, attempt: body.attempt, sealed: body.sealed });
  }

  report(jobId: string, report: JobReport): Promise<JobReportAnswer | null> {
    const ref = this.#ref();
    return this.#ask(this.#reports, ref, { v: PROTOCOL_VERSION, type: 'report', ref, jobId, report }, 'reporting the result');
  }

  async cancel(jobId: string): Promise<void> {
    // A job never sent does not exist at the coordinator: its assignment expires there.
    if (this.#unsent.delete(jobId)) return;
    if (this.usable) this.#send({ v: PROTOCOL_VERSION, type: 'cancel', jobId });
  }

  #ask<T>(map: Map<string, Pending<T>>, ref: string, message: ChannelRequest, what: string, signal?: AbortSignal): Promise<T> {
    // Never written: the coordinator cannot have acted on it, so creating the job may be tried again.
    if (this.#closedWith !== null || this.#ws.readyState !== WebSocket.OPEN) {
      const notSent = Object.assign(new Error(`the requester channel closed before the request was sent`, { cause: this.#closedWith }), {
        code: NOT_SENT,
      });
      return Promise.reject(networkError(notSent, this.#url, what));
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        map.delete(ref);
        reject(networkError(signal?.reason ?? new DOMException('aborted', 'AbortError'), this.#url, what));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = (): void => {
        signal?.removeEventListener('abort', onAbort);
        map.delete(ref);
        this.#idle();
      };
      map.set(ref, {
        what,
        resolve: (value) => {
          done();
          resolve(value);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      });
      this.#busy();
      this.#send(message);
    });
  }

  #receive(text: string): void {
    const parsed = parseFrame(ChannelMessage, text);
    if (!parsed.ok) {
      this.#closed(`the coordinator sent a malformed channel message: ${parsed.error.message}`);
      this.#ws.close(1008, 'malformed message');
      return;
    }
    const m = parsed.value;
    switch (m.type) {
      case 'created': {
        const pending = this.#creates.get(m.ref);
        if (pending === undefined) return this.#send({ v: PROTOCOL_VERSION, type: 'cancel', jobId: m.jobId }); // its caller gave up
        // Its events may follow at once: queue them before the caller asks.
        this.#queue(m.jobId);
        pending.resolve({ jobId: m.jobId, assignment: m.assignment });
        return;
      }
      case 'assignments': {
        const asked = this.#assigning.get(m.ref);
        this.#assigning.delete(m.ref);
        if (asked !== undefined) this.#pool.answered(asked.model, asked.kind, m.assignments, m.expiresInMs);
        return;
      }
      case 'event': {
        this.#unconfirmed.delete(m.jobId);
        const queue = this.#queues.get(m.jobId);
        if (queue === undefined) return;
        queue.push(m.event);
        if (m.event.type === 'failed' || (m.event.type === 'chunk' && m.event.final)) queue.end();
        return;
      }
      case 'reported':
        return this.#reports.get(m.ref)?.resolve(m.answer);
      case 'error':
        return this.#refused(m);
      default:
        return; // `ready` again, `cancelled`: nothing waits for them
    }
  }

  #refused(m: ChannelErrorMessage): void {
    const ref = m.ref;
    const asked = ref === undefined ? undefined : this.#assigning.get(ref);
    if (ref !== undefined && asked !== undefined) {
      // No assignments now (the key's limit is reached): jobs are created one by one meanwhile.
      this.#assigning.delete(ref);
      return this.#pool.answered(asked.model, asked.kind, [], 0);
    }
    // A refused `submit` ends its job as a refused `create` does.
    const refusedSubmit = m.jobId !== undefined && this.#unconfirmed.delete(m.jobId);
    const report = ref === undefined ? undefined : this.#reports.get(ref);
    // As over HTTP: a report the coordinator takes none of is no error.
    if (report !== undefined && (m.status === 404 || m.status === 409)) return report.resolve(null);
    const pending = report ?? (ref === undefined ? undefined : this.#creates.get(ref));
    const queue = m.jobId === undefined ? undefined : this.#queues.get(m.jobId);
    // A payload for a superseded attempt: its next `assigned` event follows.
    if (!refusedSubmit && pending === undefined && queue !== undefined && m.status === 409 && m.error.code === 'CONFLICT') return;
    const what = pending?.what ?? (m.jobId === undefined ? 'a request on the requester channel' : `job ${m.jobId}`);
    const body = m.payment === undefined ? { error: m.error } : { error: m.error, payment: m.payment };
    const headers = m.retryAfterS === undefined ? undefined : { 'retry-after': String(m.retryAfterS) };
    const answer = new Response(JSON.stringify(body), { status: m.status, ...(headers !== undefined && { headers }) });
    void httpError(answer, what, this.#url).then((error) => {
      if (pending !== undefined) pending.reject(error);
      // A `submit` the coordinator could not take now (draining, its database down): the job was never created,
      // so it is created again, not followed as a broken stream.
      else if (refusedSubmit && m.status >= 500) queue?.fail(new NotCreated(error));
      else queue?.fail(error);
    });
  }

  #queue(jobId: string): EventQueue {
    let queue = this.#queues.get(jobId);
    if (queue === undefined) this.#queues.set(jobId, (queue = new EventQueue()));
    this.#busy();
    return queue;
  }

  #ref(): string {
    return (this.#nextRef++).toString(36);
  }

  #send(message: ChannelRequest): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(message));
  }

  #closed(why: string): void {
    if (this.#closedWith !== null) return;
    this.#closedWith = new Error(why);
    const error = networkError(this.#closedWith, this.#url, 'waiting on the requester channel');
    for (const pending of [...this.#creates.values(), ...this.#reports.values()]) pending.reject(error);
    for (const queue of this.#queues.values()) queue.fail(error);
    this.#queues.clear();
    this.#pool.clear();
    this.#unsent.clear();
  }

  /** The socket keeps the process alive only while something waits on it. */
  #busy(): void {
    this.#socket?.ref();
  }

  #idle(): void {
    if (this.#creates.size === 0 && this.#reports.size === 0 && this.#queues.size === 0 && this.#assigning.size === 0)
      this.#socket?.unref();
  }
}
