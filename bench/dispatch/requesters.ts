/**
 * Simulated requesters for the dispatch benchmark: closed-loop lanes, each running one job
 * at a time through the requester API the way the SDK does (docs/protocol.md): `POST
 * /v1/jobs`, the NDJSON event stream, `PUT …/payload` for the assignment, and the events up
 * to the final chunk. Two transports carry the same requests:
 *
 * - {@link httpTransport}: real HTTP/1.1 over loopback with keep-alive sockets (`node:http`);
 * - {@link fetchTransport}: a `fetch`-shaped function, e.g. the coordinator's own
 *   `app.fetch` in its process (the same routes, without sockets or HTTP parsing).
 */
import http from 'node:http';
import { type Assignment, type JobEvent } from '../../protocol/wire.ts';
import { epochMs, filler, type LatencySummary, pool, Samples, sleep, stampedBlob, withTimeout } from './stats.ts';

/** Reads a job's NDJSON event stream. */
export interface EventStream {
  /** The next event; null at the end of the stream. Rejects after `timeoutMs`. */
  next(timeoutMs: number): Promise<JobEvent | null>;
  /** Stops reading (the rest of the stream is discarded). */
  cancel(): void;
}

/** How one requester lane reaches the coordinator. */
export interface LaneTransport {
  request(method: string, path: string, key: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  /** Opens `GET path` as an event stream (the request starts now; `next` waits for data). */
  events(path: string, key: string): EventStream;
}

/** How requests reach the coordinator: one {@link LaneTransport} per lane. */
export interface Transport {
  lane(i: number): LaneTransport;
  /** Opens the connections of lanes [0, lanes) ahead of a run. */
  prepare(lanes: number): Promise<void>;
  close(): void;
}

/** Splits NDJSON text into events and hands them to readers as they ask. */
class LineQueue implements EventStream {
  #buffer = '';
  readonly #events: JobEvent[] = [];
  #ended = false;
  #failed: Error | null = null;
  #wake: (() => void) | null = null;

  constructor(private readonly onCancel: () => void) {}

  push(text: string): void {
    this.#buffer += text;
    for (let nl = this.#buffer.indexOf('\n'); nl >= 0; nl = this.#buffer.indexOf('\n')) {
      this.#events.push(JSON.parse(this.#buffer.slice(0, nl)) as JobEvent);
      this.#buffer = this.#buffer.slice(nl + 1);
    }
    this.#notify();
  }

  end(error: Error | null = null): void {
    this.#ended = true;
    this.#failed = error;
    this.#notify();
  }

  async next(timeoutMs: number): Promise<JobEvent | null> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const event = this.#events.shift();
      if (event !== undefined) return event;
      if (this.#failed !== null) throw this.#failed;
      if (this.#ended) return null;
      const left = until - Date.now();
      if (left <= 0) throw new Error(`no event within ${timeoutMs} ms`);
      await withTimeout(
        new Promise<void>((resolve) => {
          this.#wake = resolve;
        }),
        left,
        'reading job events',
      ).catch(() => undefined);
    }
  }

  cancel(): void {
    this.onCancel();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

/** Keep-alive sockets per lane: a `POST` or `PUT`, the event stream, and the previous job's stream while it closes. */
const SOCKETS_PER_LANE = 3;
/** Client-side idle timeout of keep-alive sockets, ms: below Node's server default of 5 s. */
const IDLE_SOCKET_MS = 4_000;

/** A keep-alive socket the server closed just as it was reused: the request never reached it and may be sent again. */
function staleSocket(req: http.ClientRequest, err: unknown): boolean {
  return req.reusedSocket && err instanceof Error && 'code' in err && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
}

/**
 * HTTP/1.1 to `baseUrl` over keep-alive sockets: each lane has an agent of its own with
 * {@link SOCKETS_PER_LANE} sockets, opened by {@link Transport.prepare} before the run, so no
 * connection is opened while measuring (on some machines a fresh loopback connection waits
 * for a TCP retransmission, hundreds of milliseconds).
 */
export function httpTransport(baseUrl: string): Transport {
  const url = new URL(baseUrl);
  const agents: http.Agent[] = [];
  const agentOf = (i: number): http.Agent => {
    for (let a = agents.length; a <= i; a++) {
      // Idle sockets are dropped here before the server's keep-alive timeout (5 s) drops them.
      const options = { keepAlive: true, maxSockets: SOCKETS_PER_LANE, maxFreeSockets: SOCKETS_PER_LANE, scheduling: 'lifo' as const };
      agents.push(new http.Agent({ ...options, timeout: IDLE_SOCKET_MS }));
    }
    return agents[i] as http.Agent;
  };
  const lane = (i: number): LaneTransport => {
    const base = { host: url.hostname, port: Number(url.port), agent: agentOf(i) };
    return {
      request(method, path, key, body) {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const send = (retry: boolean): Promise<{ status: number; body: unknown }> =>
          new Promise((resolve, reject) => {
            const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${key}` };
            if (payload !== undefined) {
              headers['content-type'] = 'application/json';
              headers['content-length'] = Buffer.byteLength(payload);
            }
            const req = http.request({ ...base, method, path, headers }, (res) => {
              const parts: Buffer[] = [];
              res.on('data', (part: Buffer) => parts.push(part));
              res.on('end', () => {
                const text = Buffer.concat(parts).toString('utf8');
                try {
                  resolve({ status: res.statusCode ?? 0, body: text === '' ? null : (JSON.parse(text) as unknown) });
                } catch (err) {
                  reject(err instanceof Error ? err : new Error(String(err)));
                }
              });
              res.on('error', reject);
            });
            req.on('error', (err) => (retry && staleSocket(req, err) ? resolve(send(false)) : reject(err)));
            req.end(payload);
          });
        return send(true);
      },
      events(path, key) {
        let req: http.ClientRequest;
        const queue = new LineQueue(() => req.destroy());
        const open = (retry: boolean): void => {
          req = http.request({ ...base, method: 'GET', path, headers: { authorization: `Bearer ${key}` } });
          let responded = false;
          req.on('response', (res) => {
            responded = true;
            if (res.statusCode !== 200) {
              res.resume();
              queue.end(new Error(`events: HTTP ${res.statusCode ?? 0}`));
              return;
            }
            res.setEncoding('utf8');
            res.on('data', (text: string) => queue.push(text));
            res.on('end', () => queue.end());
            res.on('error', (err) => queue.end(err));
          });
          req.on('error', (err) => (retry && !responded && staleSocket(req, err) ? open(false) : queue.end(err)));
          req.end();
        };
        open(true);
        return queue;
      },
    };
  };
  return {
    lane,
    async prepare(lanes) {
      // A few lanes at a time, each opening all of its sockets at once (concurrent health checks).
      // Only a warm-up: a socket that fails to open here is opened again by the run.
      await pool(lanes, 8, async (i) => {
        const l = lane(i);
        const open = (): Promise<unknown> => withTimeout(l.request('GET', '/healthz', ''), 15_000, 'opening a socket').catch(() => null);
        await Promise.all(Array.from({ length: SOCKETS_PER_LANE }, open));
      });
    },
    close: () => {
      for (const agent of agents) agent.destroy();
    },
  };
}

/** Requests through a `fetch`-shaped function (for example `coordinator.app.fetch`), with no sockets. */
export function fetchTransport(
  fetchFn: (request: Request) => Response | Promise<Response>,
  baseUrl = 'http://coordinator.local',
): Transport {
  const call = async (method: string, path: string, key: string, body?: unknown): Promise<Response> => {
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetchFn(new Request(baseUrl + path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }));
  };
  const lane: LaneTransport = {
    async request(method, path, key, body) {
      const res = await call(method, path, key, body);
      const text = await res.text();
      return { status: res.status, body: text === '' ? null : (JSON.parse(text) as unknown) };
    },
    events(path, key) {
      let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
      let cancelled = false;
      const queue = new LineQueue(() => {
        cancelled = true;
        void reader?.cancel().catch(() => undefined);
      });
      void (async () => {
        const res = await call('GET', path, key);
        if (res.status !== 200 || res.body === null) {
          await res.body?.cancel();
          return queue.end(new Error(`events: HTTP ${res.status}`));
        }
        reader = res.body.getReader();
        if (cancelled) return void reader.cancel().catch(() => undefined);
        const decoder = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return queue.end();
          queue.push(decoder.decode(value, { stream: true }));
        }
      })().catch((err: unknown) => queue.end(err instanceof Error ? err : new Error(String(err))));
      return queue;
    },
  };
  return { lane: () => lane, prepare: async () => {}, close: () => {} };
}

export interface LoadOptions {
  transport: Transport;
  /** API key secrets; lane i uses keys[i % keys.length]. */
  keys: readonly string[];
  /** Jobs in flight at once (closed loop: each lane starts its next job when one ends). */
  lanes: number;
  model: string;
  /** Sealed payload size, bytes. */
  payloadBytes: number;
  /** When the warm-up starts, epoch ms of this process's clock; default now. */
  startAt?: number;
  warmupMs: number;
  windowMs: number;
  /** Hard cap on jobs started, all lanes together. */
  maxJobs: number;
  /** Longest wait for any one response or event, ms. */
  stepTimeoutMs?: number;
}

export interface LoadResult {
  lanes: number;
  windowMs: number;
  /** Jobs whose final chunk event arrived inside the window. */
  completed: number;
  jobsPerSecond: number;
  /** `POST` sent → final chunk event received, ms (jobs finished inside the window). */
  endToEnd: LatencySummary;
  /** `PUT …/payload` sent → its `202` received, ms. */
  putRoundTrip: LatencySummary;
  /** Jobs started in total, warm-up and drain included. */
  started: number;
  /** Jobs that did not end with a final chunk, by reason. */
  failures: Record<string, number>;
  /** Epoch ms of the window, this process's clock. */
  windowStart: number;
  windowEnd: number;
}

interface Created {
  jobId: string;
  assignment: Assignment | null;
}

/** Runs closed-loop requester lanes for warm-up + window (+ drain of jobs in flight) and measures the window. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const stepMs = o.stepTimeoutMs ?? 15_000;
  const blobFiller = filler(o.payloadBytes);
  const enc = filler(32).subarray(0, 32).toString('base64url');
  const windowStart = (o.startAt ?? epochMs()) + o.warmupMs;
  const windowEnd = windowStart + o.windowMs;
  const endToEnd = new Samples();
  const putRoundTrip = new Samples();
  const failures: Record<string, number> = {};
  const fail = (why: string): void => {
    failures[why] = (failures[why] ?? 0) + 1;
  };
  let started = 0;
  let completed = 0;

  const call = (transport: LaneTransport, method: string, path: string, key: string, body: unknown) =>
    withTimeout(transport.request(method, path, key, body), stepMs, `${method} ${path.replace(/\/jobs\/[^/]+/, '/jobs/:id')}`);
  const oneJob = async (transport: LaneTransport, key: string): Promise<void> => {
    const t0 = epochMs();
    const created = await call(transport, 'POST', '/v1/jobs', key, {
      model: o.model,
      kind: 'chat',
      sizeBytes: o.payloadBytes,
      billing: { inputTokens: 64, maxOutputTokens: 64 },
    });
    if (created.status !== 201) {
      fail(`create ${created.status} ${errorCode(created.body)}`);
      await sleep(5);
      return;
    }
    const { jobId, assignment } = created.body as Created;
    const events = transport.events(`/v1/jobs/${jobId}/events`, key);
    const puts: Promise<void>[] = [];
    let attempt = 0;
    let settled = false;
    const submit = (a: Assignment): void => {
      if (a.attempt <= attempt) return;
      attempt = a.attempt;
      const sentAt = epochMs();
      const sealed = { enc, ct: stampedBlob(o.payloadBytes, sentAt, blobFiller) };
      puts.push(
        call(transport, 'PUT', `/v1/jobs/${jobId}/payload`, key, { attempt: a.attempt, sealed }).then(
          (put) => {
            if (put.status === 202) putRoundTrip.add(epochMs() - sentAt);
            else fail(`payload ${put.status} ${errorCode(put.body)}`);
          },
          (err: unknown) => fail(`payload: ${err instanceof Error ? err.message.slice(0, 80) : String(err)}`),
        ),
      );
    };
    try {
      if (assignment !== null) submit(assignment);
      for (let i = 0; i < 64; i++) {
        const event = await events.next(stepMs);
        settled = event === null || event.type === 'failed' || (event.type === 'chunk' && event.final && event.attempt === attempt);
        if (event === null) return fail('events ended without a final chunk');
        if (event.type === 'failed') return fail(`failed ${event.error.code}`);
        if (event.type === 'assigned') submit(event.assignment);
        else if (settled) {
          const t1 = epochMs();
          if (t1 >= windowStart && t1 < windowEnd) {
            completed++;
            endToEnd.add(t1 - t0);
          }
          return;
        }
      }
      fail('too many events');
    } finally {
      // A stream that did not end by itself would hold its socket: drop it.
      if (!settled) events.cancel();
      await Promise.all(puts);
    }
  };

  const lane = async (i: number): Promise<void> => {
    const key = o.keys[i % o.keys.length] ?? '';
    const transport = o.transport.lane(i);
    while (epochMs() < windowEnd && started < o.maxJobs) {
      started++;
      await oneJob(transport, key).catch((err: unknown) => fail(`error ${err instanceof Error ? err.message.slice(0, 80) : String(err)}`));
    }
  };
  await Promise.all(Array.from({ length: o.lanes }, (_, i) => lane(i)));
  return {
    lanes: o.lanes,
    windowMs: o.windowMs,
    completed,
    jobsPerSecond: completed / (o.windowMs / 1000),
    endToEnd: endToEnd.summary(),
    putRoundTrip: putRoundTrip.summary(),
    started,
    failures,
    windowStart,
    windowEnd,
  };
}

function errorCode(body: unknown): string {
  if (typeof body === 'object' && body !== null && 'error' in body) {
    const error = body.error;
    if (typeof error === 'object' && error !== null && 'code' in error) return String(error.code);
  }
  return '';
}
