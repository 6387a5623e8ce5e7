/**
 * Job calls on any replica (docs/operating.md, "Replicas"). A job lives in the replica that
 * created it (its owner): its sealed payload, its leases and its requester's event stream are in
 * that process's memory. A requester's call on the job (`PUT …/payload`, `GET …/events`,
 * `DELETE /v1/jobs/:id`, `POST …/report`, `POST …/verdict`) that reaches another replica — a load
 * balancer without sticky sessions — is passed to the owner over NATS and answered as if made
 * there: the owner runs it through its own routes (authentication, limits, refusals included)
 * and sends back the status, the headers and the body; an event stream's body follows as
 * ordered `part`s until its end, and the requester going away stops it on the owner.
 *
 * - The owner is found from the job's row (`jobs.replica_id`, the replica that created it) and
 *   confirmed by asking that one replica whether it still holds the job (`holds`); only a job
 *   whose row is not written yet (store writes are batched) is looked for by asking every live
 *   peer. The owner is then kept for the job's later calls. A job no peer holds is answered here,
 *   from the database, exactly as before (a finished job's record; a refusal for one whose
 *   replica stopped).
 * - The owner gone mid-call: a typed 503 `UNAVAILABLE`; mid-stream: a last `failed` event with
 *   `RESTARTED` (the singleton holder fails its unfinished jobs the same way).
 * - Bodies are checked with valibot on both sides and kept under the server's `max_payload`.
 */
import type { MiddlewareHandler } from 'hono';
import * as v from 'valibot';
import { Call, CallAnswer, Holds, HoldsAnswer, Part, Stop } from '../../protocol/cluster.ts';
import type { JobEvent } from '../../protocol/wire.ts';
import { randomId } from '../ids.ts';
import { errorText, type Logger } from '../log.ts';
import { problem } from '../http.ts';
import { MAX_PAYLOAD_BODY } from '../requesters/routes.ts';
import { type Bus, subjects } from './bus.ts';

/** The calls that name one job; `POST /v1/jobs` (create) is always answered where it lands. */
const JOB_CALL = /^\/v1\/jobs\/([A-Za-z0-9_-]{1,64})(?:\/(payload|events|report|verdict))?$/;
const METHODS: Record<string, ReadonlySet<string>> = {
  '': new Set(['DELETE']),
  payload: new Set(['PUT']),
  events: new Set(['GET']),
  report: new Set(['POST']),
  verdict: new Set(['POST']),
};
const CALL_HEADERS = ['authorization', 'content-type', 'x-request-id'] as const;
const ANSWER_HEADERS = ['content-type', 'cache-control', 'retry-after', 'www-authenticate'] as const;
/** Room in a NATS message for the JSON around a call's body or a part's text, bytes. */
const ENVELOPE_BYTES = 4096;
/** Owners remembered per job, for a job's later calls. */
const OWNERS_KEPT = 10_000;

/** What a forwarded request carries in `c.env`: the owner answers it itself, never passes it on. */
const FORWARDED = Object.freeze({ forwarded: true });

export interface ForwardingOptions {
  replicaId: string;
  bus: Bus;
  /** Subject prefix of this deployment (`spinneret.<schema>`). */
  prefix: string;
  logger: Logger;
  /** The live peers (not this replica). */
  peers: () => string[];
  /** How long a call waits for the owner's answer, ms. Default 15 000. */
  callTimeoutMs?: number;
  /** How long the owner lookup waits for each peer, ms. Default 2 000. */
  holdsTimeoutMs?: number;
  /** The replica recorded as the job's creator (`jobs.replica_id`), or null when no row is written yet. Default: none (ask every peer). */
  recordedOwner?: (jobId: string) => Promise<string | null>;
  /**
   * A done job's stored answer (its sealed result chunks), or null: a stream whose owner is lost
   * ends with it rather than `RESTARTED` when the owner wrote the job as done before it died.
   * Default: none.
   */
  recordedResult?: (jobId: string) => Promise<JobEvent[] | null>;
  /** Bytes of a forwarded stream queued to a requester that does not read before it is dropped. Default 16 MiB. */
  streamBufferBytes?: number;
}

/** Counts for tests and `/metrics`. */
export interface ForwardingCounts {
  /** Calls this replica passed to an owner. */
  forwarded: number;
  /** Calls this replica answered for another. */
  served: number;
  /** Streams ended because their owner was lost. */
  ownerLost: number;
  /** `holds` questions sent to find owners (one per lookup when the job's row names it; one per live peer otherwise). */
  holdsAsked: number;
}

interface Sink {
  owner: string;
  jobId: string;
  next: number;
  controller: ReadableStreamDefaultController<Uint8Array>;
  open: boolean;
}

export class JobForwarding {
  readonly #o: Required<ForwardingOptions>;
  readonly #s: ReturnType<typeof subjects>;
  #holds: (jobId: string) => boolean = () => false;
  #dispatch: ((request: Request, env: object) => Response | Promise<Response>) | null = null;
  /** Caller side: streams of forwarded answers, by stream id. */
  readonly #sinks = new Map<string, Sink>();
  /** Owner side: readers of answers streamed to other replicas, by `<from>/<stream>`. */
  readonly #pumps = new Map<string, { from: string; reader: ReadableStreamDefaultReader<Uint8Array> }>();
  readonly #owners = new Map<string, string>();
  readonly counts: ForwardingCounts = { forwarded: 0, served: 0, ownerLost: 0, holdsAsked: 0 };

  constructor(options: ForwardingOptions) {
    this.#o = {
      callTimeoutMs: 15_000,
      holdsTimeoutMs: 2_000,
      streamBufferBytes: 16 * 1024 * 1024,
      recordedOwner: () => Promise.resolve(null),
      recordedResult: () => Promise.resolve(null),
      ...options,
    };
    this.#s = subjects(options.prefix);
  }

  /**
   * For `createCoordinator({ forwarding })`: `holds` says whether this replica holds a job,
   * `dispatch` answers a request through this replica's routes. Returns the middleware to put in
   * front of the job routes.
   */
  attach(holds: (jobId: string) => boolean, dispatch: (request: Request, env: object) => Response | Promise<Response>): MiddlewareHandler {
    this.#holds = holds;
    this.#dispatch = dispatch;
    return async (c, next) => {
      // Without a key the answer is this replica's 401: no need to ask the others who holds the job.
      if (c.env === FORWARDED || c.req.header('authorization') === undefined) return next();
      const match = JOB_CALL.exec(c.req.path);
      const jobId = match?.[1];
      if (match === null || jobId === undefined || !METHODS[match[2] ?? '']?.has(c.req.method) || holds(jobId)) return next();
      const owner = await this.ownerOf(jobId);
      if (owner === null) return next();
      return this.#forward(c.req.raw, c.req.path, owner, jobId, (status, code, message) => problem(c, status, code, message));
    };
  }

  /** Subscribes to the calls, streams and owner lookups of this replica. */
  start(): void {
    const { bus, replicaId: me } = this.#o;
    bus.subscribe(this.#s.holds(me), Holds, (m, reply) => reply({ holds: this.#holds(m.jobId) }));
    bus.subscribe(this.#s.call(me), Call, (m, reply) => void this.#serve(m, reply));
    bus.subscribe(this.#s.part(me), Part, (m) => this.#part(m));
    bus.subscribe(this.#s.stop(me), Stop, (m) => void this.#pumps.get(`${m.from}/${m.stream}`)?.reader.cancel('the requester went away'));
  }

  /** `replica` died or restarted: its streams here end with `RESTARTED`, and what it was reading from here stops. */
  lost(replica: string): void {
    for (const [stream, sink] of this.#sinks) {
      if (sink.owner !== replica) continue;
      this.#sinks.delete(stream);
      this.counts.ownerLost++;
      void this.#endLost(sink, replica);
    }
    for (const pump of this.#pumps.values()) if (pump.from === replica) void pump.reader.cancel('the caller replica stopped');
    for (const [jobId, owner] of this.#owners) if (owner === replica) this.#owners.delete(jobId);
  }

  /** The live peer that holds `jobId`, or null. */
  async ownerOf(jobId: string): Promise<string | null> {
    const peers = this.#o.peers();
    const known = this.#owners.get(jobId);
    if (known !== undefined && peers.includes(known)) return known;
    const recorded = await this.#o.recordedOwner(jobId).catch(() => null);
    // The row names the job's creator: only it can hold the job (a job never moves to another replica).
    const asked = recorded === null ? peers : peers.includes(recorded) ? [recorded] : [];
    const answers = await Promise.all(
      asked.map(async (peer) => {
        this.counts.holdsAsked++;
        const raw = await this.#o.bus.request(this.#s.holds(peer), { jobId }, this.#o.holdsTimeoutMs).catch(() => null);
        const parsed = v.safeParse(HoldsAnswer, raw);
        return parsed.success && parsed.output.holds ? peer : null;
      }),
    );
    const owner = answers.find((a) => a !== null) ?? null;
    if (owner !== null) {
      this.#owners.set(jobId, owner);
      if (this.#owners.size > OWNERS_KEPT) {
        const oldest = this.#owners.keys().next();
        if (oldest.done !== true) this.#owners.delete(oldest.value);
      }
    }
    return owner;
  }

  // ---- the replica the requester called ----

  async #forward(
    request: Request,
    path: string,
    owner: string,
    jobId: string,
    refuse: (status: 400 | 413 | 503, code: 'BAD_MESSAGE' | 'UNAVAILABLE', message: string) => Response,
  ): Promise<Response> {
    const { bus, replicaId: me } = this.#o;
    const room = bus.maxPayload - ENVELOPE_BYTES;
    let body: string | undefined;
    if (request.method === 'PUT' || request.method === 'POST') {
      const read = await readCapped(request, Math.min(MAX_PAYLOAD_BODY, room));
      if (read === null) {
        return refuse(
          413,
          'BAD_MESSAGE',
          `The body is larger than this coordinator can pass to the replica that holds job ${jobId} (${Math.min(MAX_PAYLOAD_BODY, room)} bytes; the operator can raise NATS max_payload).`,
        );
      }
      body = read;
    }
    const headers: v.InferOutput<typeof Call>['headers'] = {};
    for (const name of CALL_HEADERS) {
      const value = request.headers.get(name);
      if (value !== null) headers[name] = value.slice(0, 4096);
    }
    const stream = randomId(12);
    let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
    const readable = new ReadableStream<Uint8Array>(
      {
        start: (ctl) => {
          controller = ctl;
        },
        cancel: () => {
          if (this.#sinks.delete(stream)) bus.publish(this.#s.stop(owner), { from: me, stream });
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: this.#o.streamBufferBytes }),
    );
    if (controller === undefined) throw new Error('a ReadableStream did not start');
    // Open before the call: the owner's first parts may arrive before its answer.
    this.#sinks.set(stream, { owner, jobId, next: 0, controller, open: true });
    const method = request.method as v.InferOutput<typeof Call>['method'];
    this.counts.forwarded++;
    let raw: unknown;
    try {
      raw = await bus.request(
        this.#s.call(owner),
        { from: me, stream, method, path, headers, ...(body !== undefined && { body }) },
        this.#o.callTimeoutMs,
      );
    } catch (err) {
      this.#sinks.delete(stream);
      this.#owners.delete(jobId);
      return refuse(
        503,
        'UNAVAILABLE',
        `The coordinator replica ${owner} that holds job ${jobId} did not answer (${errorText(err).slice(0, 200)}); try again shortly. If that replica stopped, the job fails RESTARTED: run it again.`,
      );
    }
    const answer = v.safeParse(CallAnswer, raw);
    if (!answer.success) {
      this.#sinks.delete(stream);
      this.#o.logger.error('a replica answered a forwarded call with a malformed body', {
        replica: owner,
        issues: v.summarize(answer.issues),
      });
      return refuse(503, 'UNAVAILABLE', `The coordinator replica ${owner} that holds job ${jobId} answered malformed; try again.`);
    }
    const { status, headers: answerHeaders, streamed } = answer.output;
    const out = new Headers();
    for (const [name, value] of Object.entries(answerHeaders)) if (value !== undefined) out.set(name, value);
    if (!streamed) {
      this.#sinks.delete(stream);
      return new Response(status === 204 || status === 304 ? null : (answer.output.body ?? ''), { status, headers: out });
    }
    return new Response(readable, { status, headers: out });
  }

  #part(m: v.InferOutput<typeof Part>): void {
    const sink = this.#sinks.get(m.stream);
    if (sink === undefined) return;
    if (m.seq !== sink.next) {
      this.#sinks.delete(m.stream);
      this.#o.bus.publish(this.#s.stop(sink.owner), { from: this.#o.replicaId, stream: m.stream });
      sink.open = false;
      sink.controller.error(new Error(`a forwarded event stream lost part ${sink.next} (got ${m.seq})`));
      return;
    }
    sink.next++;
    if (m.text !== undefined && m.text !== '') {
      try {
        sink.controller.enqueue(new TextEncoder().encode(m.text));
      } catch {
        // The requester went away between two parts (cancel has told the owner).
        this.#sinks.delete(m.stream);
        return;
      }
      // A reader that does not read is dropped, not buffered for without end (as on the owner).
      if ((sink.controller.desiredSize ?? 0) < 0) {
        this.#sinks.delete(m.stream);
        this.#o.bus.publish(this.#s.stop(sink.owner), { from: this.#o.replicaId, stream: m.stream });
        sink.open = false;
        sink.controller.error(new Error('event-stream reader too slow'));
        return;
      }
    }
    if (m.end === true) {
      this.#sinks.delete(m.stream);
      if (m.error === undefined) this.#end(sink);
      else {
        sink.open = false;
        sink.controller.error(new Error(m.error));
      }
    }
  }

  /**
   * Ends a stream whose owner is gone: with the job's stored answer when the owner wrote it as
   * done (it sends a final chunk only after that), else with `RESTARTED` (the job is run again).
   */
  async #endLost(sink: Sink, replica: string): Promise<void> {
    const stored = await this.#o.recordedResult(sink.jobId).catch(() => null);
    const events: JobEvent[] = stored ?? [
      {
        type: 'failed',
        error: { code: 'RESTARTED', message: `The coordinator replica ${replica} that held this job stopped; run it again.` },
      },
    ];
    this.#end(sink, new TextEncoder().encode(events.map((e) => JSON.stringify(e) + '\n').join('')));
  }

  #end(sink: Sink, last?: Uint8Array): void {
    if (!sink.open) return;
    sink.open = false;
    try {
      if (last !== undefined) sink.controller.enqueue(last);
      sink.controller.close();
    } catch {
      // Already cancelled by the requester.
    }
  }

  // ---- the owner ----

  async #serve(m: v.InferOutput<typeof Call>, reply: (answer: unknown) => void): Promise<void> {
    let replied = false;
    const answer = (a: v.InferOutput<typeof CallAnswer>): void => {
      if (replied) return;
      replied = true;
      reply(a);
    };
    try {
      const dispatch = this.#dispatch;
      if (dispatch === null) throw new Error('forwarding is not attached to the routes');
      this.counts.served++;
      const headers = new Headers();
      for (const [name, value] of Object.entries(m.headers)) if (value !== undefined) headers.set(name, value);
      const request = new Request(`http://replica${m.path}`, {
        method: m.method,
        headers,
        ...(m.body !== undefined && { body: m.body }),
      });
      const response = await dispatch(request, FORWARDED);
      const out: v.InferOutput<typeof CallAnswer>['headers'] = {};
      for (const name of ANSWER_HEADERS) {
        const value = response.headers.get(name);
        if (value !== null) out[name] = value.slice(0, 4096);
      }
      const streamed = response.body !== null && (out['content-type'] ?? '').startsWith('application/x-ndjson');
      if (!streamed || response.body === null) {
        const text = await response.text();
        answer({ status: response.status, headers: out, body: text.slice(0, this.#o.bus.maxPayload - ENVELOPE_BYTES), streamed: false });
        return;
      }
      answer({ status: response.status, headers: out, streamed: true });
      await this.#pump(m.from, m.stream, response.body.getReader());
    } catch (err) {
      this.#o.logger.error('answering a forwarded job call failed', { from: m.from, path: m.path, error: errorText(err) });
      answer({
        status: 500,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ error: { code: 'INTERNAL', message: 'The coordinator failed on this request; try again.' } }),
        streamed: false,
      });
    }
  }

  /** Sends the stream's text to `from` as ordered parts, each under the server's `max_payload`, then its end. */
  async #pump(from: string, stream: string, reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    const key = `${from}/${stream}`;
    this.#pumps.set(key, { from, reader });
    const subject = this.#s.part(from);
    const room = Math.max(1024, Math.floor((this.#o.bus.maxPayload - ENVELOPE_BYTES) / 2)); // JSON may escape a character into two
    const decoder = new TextDecoder();
    let seq = 0;
    const send = (part: Omit<v.InferOutput<typeof Part>, 'stream' | 'seq'>): boolean =>
      this.#o.bus.publish(subject, { stream, seq: seq++, ...part });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const text = decoder.decode(value, { stream: true });
        for (const piece of slices(text, room)) {
          if (!send({ text: piece })) {
            await reader.cancel('the replicas’ message bus refused a part');
            send({ end: true, error: 'A part of the event stream could not pass between the coordinator replicas.' });
            return;
          }
        }
      }
      send({ end: true });
    } catch (err) {
      send({ end: true, error: `The event stream broke on the job's replica: ${errorText(err).slice(0, 300)}` });
    } finally {
      this.#pumps.delete(key);
    }
  }
}

/** `text` in pieces of at most `room` UTF-16 units, never splitting a surrogate pair. */
function slices(text: string, room: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < text.length;) {
    let end = Math.min(text.length, at + room);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    out.push(text.slice(at, end));
    at = end;
  }
  return out;
}

/** The request's body as text, or null when it is longer than `max` bytes. */
async function readCapped(request: Request, max: number): Promise<string | null> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) return null;
  if (request.body === null) return '';
  const reader = request.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      return null;
    }
    parts.push(value);
  }
  return Buffer.concat(parts).toString('utf8');
}
