/**
 * The requester channel, `GET /v1/requester` (protocol/requester-channel.ts): one WebSocket
 * carrying many jobs. The upgrade is refused with the HTTP route's 401 without a valid API
 * key; each message then goes through {@link RequesterActions}, the code the HTTP routes run,
 * so quotas, envelopes, billing, the relay's refusals and the event-stream limits are the
 * same. A job created on the socket is followed on it without asking; its events come down
 * tagged with its id until its last one.
 */
import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import {
  type ChannelErrorMessage,
  type ChannelMessage,
  ChannelRequest,
  MAX_HELD_ASSIGNMENTS,
  REQUESTER_CHANNEL_PATH,
} from '../../protocol/requester-channel.ts';
import { findUnsafeText, printable, UNSAFE_TEXT_MESSAGE } from '../../protocol/text.ts';
import { parseFrame, PROTOCOL_VERSION, type JobEvent } from '../../protocol/wire.ts';
import { errorText, type Logger } from '../log.ts';
import { batchedWrites } from '../edges/batched-writes.ts';
import { Counter } from '../edges/limits.ts';
import { Job } from '../jobs/job.ts';
import type { Hold } from '../leases/relay.ts';
import type { Verification } from '../verification/service.ts';
import type { ApiKeyRecord } from '../store/types.ts';
import { recordedEvents, type RequesterActions, type Subscription } from './actions.ts';
import { bearer, Problem } from '../http.ts';
import { MAX_CREATE_BODY, MAX_PAYLOAD_BODY } from './routes.ts';

/** Room for the message fields around a payload or a create body, bytes. */
const FRAME_OVERHEAD = 1024;
/** The largest message the channel takes: a `submit`, a job's creation and a payload as large as `PUT …/payload` takes, with its fields. */
export const MAX_CHANNEL_MESSAGE = MAX_PAYLOAD_BODY + MAX_CREATE_BODY + FRAME_OVERHEAD;
/** The largest `create` message: the route's body limit with room for the message fields. */
const CREATE_LIMIT = MAX_CREATE_BODY + FRAME_OVERHEAD;
const CLOSE_POLICY = 1008;
const CLOSE_GOING_AWAY = 1001;

export interface ChannelOptions {
  actions: RequesterActions;
  logger: Logger;
  /** Verified work: `report` messages go to it; without it they are refused with 404, as the route is not served. */
  verification?: Verification;
  /** Channels open at once per API key; one more is refused at the upgrade with 429. */
  channelsPerKey: number;
  /** Bytes queued to a socket that does not read before it is dropped (the event-stream limit). */
  sendBufferBytes: number;
}

export class RequesterChannels {
  // Frames up to twice the limit reach the handler, which refuses them with a typed error and keeps the socket.
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 2 * MAX_CHANNEL_MESSAGE });
  readonly #o: ChannelOptions;
  readonly #perKey = new Counter();
  readonly #open = new Set<ChannelSession>();
  #draining = false;

  constructor(options: ChannelOptions) {
    this.#o = options;
  }

  /** Takes an upgrade for {@link REQUESTER_CHANNEL_PATH}; false (the socket left alone) for any other path. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (new URL(request.url ?? '/', 'http://localhost').pathname !== REQUESTER_CHANNEL_PATH) return false;
    void this.#accept(request, socket, head).catch((err: unknown) => {
      this.#o.logger.error('requester channel upgrade failed', { error: errorText(err) });
      socket.destroy();
    });
    return true;
  }

  async #accept(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (this.#draining) return reject(socket, new Problem(503, 'DRAINING', 'The coordinator is shutting down; reconnect later.'));
    let key: ApiKeyRecord;
    try {
      key = await this.#o.actions.authenticate(bearer(request.headers.authorization));
    } catch (err) {
      if (err instanceof Problem) return reject(socket, err);
      throw err;
    }
    if (!this.#perKey.take(key.id, this.#o.channelsPerKey)) {
      return reject(
        socket,
        new Problem(429, 'QUOTA', `This API key has ${this.#o.channelsPerKey} channels open, the limit; close one first.`),
      );
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      const session = new ChannelSession(ws, key, this.#o, batchedWrites(socket));
      this.#open.add(session);
      ws.on('close', () => {
        this.#open.delete(session);
        this.#perKey.release(key.id);
        session.closed();
      });
    });
  }

  /** Refuses new channels and closes the open ones (their jobs carry on; a requester follows them again over HTTP). */
  closeAll(): void {
    this.#draining = true;
    for (const session of this.#open) session.close(CLOSE_GOING_AWAY, 'the coordinator is shutting down');
  }

  get open(): number {
    return this.#open.size;
  }
}

/** One requester's socket: the jobs it follows and the messages it sends. */
class ChannelSession {
  readonly #ws: WebSocket;
  readonly #key: ApiKeyRecord;
  readonly #o: ChannelOptions;
  readonly #write: (send: () => void) => void;
  /** Followed jobs and how to stop following each. */
  readonly #following = new Map<string, () => void>();
  /** Assignments handed out ahead of need on this socket and not used by it yet, by job id. */
  readonly #held = new Map<string, Hold>();

  constructor(ws: WebSocket, key: ApiKeyRecord, options: ChannelOptions, write: (send: () => void) => void) {
    this.#ws = ws;
    this.#write = write;
    this.#key = key;
    this.#o = options;
    // Messages run side by side, as HTTP requests do; a payload cannot overtake its job's creation,
    // because the requester sends it only after `created` names the job.
    ws.on('message', (data: RawData, isBinary: boolean) => {
      this.#handle(data, isBinary).catch((err: unknown) => {
        this.#o.logger.error('requester channel message failed', { error: errorText(err) });
        const error = { code: 'INTERNAL' as const, message: 'The coordinator failed on this message; try again.' };
        this.#send({ v: PROTOCOL_VERSION, type: 'error', status: 500, error });
      });
    });
    ws.on('error', () => ws.terminate());
    this.#send({ v: PROTOCOL_VERSION, type: 'ready', maxMessageBytes: MAX_CHANNEL_MESSAGE });
  }

  close(code: number, reason: string): void {
    this.#ws.close(code, reason);
  }

  /** The socket closed: stop following every job (the jobs carry on). */
  closed(): void {
    for (const stop of this.#following.values()) stop();
    this.#following.clear();
    this.#o.actions.releaseHolds(this.#held.values());
    this.#held.clear();
  }

  /** Answers one message; every refusal is a {@link Problem}, sent as an `error` frame naming the message. */
  async #handle(data: RawData, isBinary: boolean): Promise<void> {
    const text = isBinary ? null : rawText(data);
    try {
      await this.#act(this.#valid(text), text?.length ?? 0);
    } catch (err) {
      if (!(err instanceof Problem)) throw err;
      // The message's `ref` and `jobId` when usable, valid or not (never its `type`: the frame's is `error`).
      const { ref, jobId } = text === null ? {} : tags(text);
      this.#refused(err, { ...(ref !== undefined && { ref }), ...(jobId !== undefined && { jobId }) });
    }
  }

  /** The message, checked as the routes check a body: its size, its schema, then its text. */
  #valid(text: string | null): ChannelRequest {
    if (text === null) throw new Problem(400, 'BAD_MESSAGE', 'Send JSON text messages.');
    if (text.length > MAX_CHANNEL_MESSAGE) {
      throw new Problem(413, 'BAD_MESSAGE', `The message of ${text.length} bytes exceeds ${MAX_CHANNEL_MESSAGE} bytes, the limit.`);
    }
    const parsed = parseFrame(ChannelRequest, text);
    if (!parsed.ok) {
      // Refused by size first, as the route's body limit does.
      if (tags(text).type === 'create' && text.length > CREATE_LIMIT) throw tooLarge('create');
      throw new Problem(400, parsed.error.code, parsed.error.message);
    }
    const unsafe = findUnsafeText(parsed.value);
    if (unsafe !== null)
      throw new Problem(400, 'BAD_MESSAGE', `Invalid message at ${printable(unsafe.slice(0, 200))}: ${UNSAFE_TEXT_MESSAGE}.`);
    return parsed.value;
  }

  /** Does what a valid message asks; a refusal is thrown as the route's {@link Problem}. */
  async #act(m: ChannelRequest, length: number): Promise<void> {
    const { actions } = this.#o;
    switch (m.type) {
      case 'create': {
        if (length > CREATE_LIMIT) throw tooLarge('create');
        const { job, assignment } = await actions.createJob(this.#key, m.job, undefined, m.idempotencyKey);
        this.#send({ v: PROTOCOL_VERSION, type: 'created', ref: m.ref, jobId: job.id, assignment });
        // Its events follow on this socket; the `assigned` already in `created` is not sent twice.
        return this.#follow(job.id, assignment === null ? 0 : 1);
      }
      case 'assign': {
        // Holds that expired, or whose contributor left, no longer count against the channel.
        for (const [id, hold] of this.#held) if (hold.state !== 'held') this.#held.delete(id);
        const { holds, expiresInMs } = actions.holdSlots(this.#key, m.model, m.kind, m.count, this.#held.size, MAX_HELD_ASSIGNMENTS);
        for (const hold of holds) this.#held.set(hold.id, hold);
        const assignments = holds.map((h) => ({ jobId: h.id, attempt: 1, contributorId: h.holder.id, hpkeKey: h.holder.hpkeKey }));
        return this.#send({ v: PROTOCOL_VERSION, type: 'assignments', ref: m.ref, model: m.model, kind: m.kind, expiresInMs, assignments });
      }
      case 'submit': {
        if (JSON.stringify(m.job).length > MAX_CREATE_BODY) throw tooLarge('create');
        // The body `PUT …/payload` would get: `{"attempt":1,"sealed":{"enc":"…","ct":"…"}}`.
        if (m.sealed.ct.length + (m.sealed.enc?.length ?? 0) + 40 > MAX_PAYLOAD_BODY) {
          throw new Problem(413, 'BAD_MESSAGE', `A payload over ${MAX_PAYLOAD_BODY} bytes is refused, as the route's body limit.`);
        }
        this.#held.delete(m.jobId);
        const { pinned } = await actions.submitHeld(this.#key, m.jobId, m.job, m.sealed, m.idempotencyKey);
        // Attempt 1's `assigned` is the assignment the payload was sealed for: not sent again.
        return this.#follow(m.jobId, pinned ? 1 : 0);
      }
      case 'payload':
        await actions.submitPayload(this.#key, m.jobId, { attempt: m.attempt, sealed: m.sealed });
        return;
      case 'follow':
        return this.#follow(m.jobId, 0);
      case 'cancel': {
        const { state } = await actions.cancel(this.#key, m.jobId);
        return this.#send({ v: PROTOCOL_VERSION, type: 'cancelled', jobId: m.jobId, state });
      }
      case 'report': {
        const verification = this.#o.verification;
        if (verification === undefined) throw new Problem(404, 'NOT_FOUND', 'This coordinator takes no job reports.');
        const outcome = await verification.jobReport(m.jobId, this.#key.id, m.report);
        if (!outcome.ok) throw new Problem(outcome.status, outcome.code, outcome.message);
        return this.#send({ v: PROTOCOL_VERSION, type: 'reported', ref: m.ref, jobId: m.jobId, answer: outcome.answer });
      }
    }
  }

  /** Sends the job's events (after the first `skip` assignment ones) until its last; the same slots as an event stream. */
  async #follow(jobId: string, skip: number): Promise<void> {
    if (this.#following.has(jobId)) return;
    let followed: Subscription;
    try {
      followed = await this.#o.actions.follow(this.#key, jobId);
    } catch (err) {
      // After a `create` or `submit` too, the refusal names the job, not the message.
      if (err instanceof Problem) return this.#refused(err, { jobId });
      throw err;
    }
    const { job, release } = followed;
    if (!(job instanceof Job)) {
      release();
      for (const event of recordedEvents(job)) this.#event(jobId, event);
      return;
    }
    let skipped = 0;
    let unsubscribe = (): void => {};
    const stop = (): void => {
      unsubscribe();
      release();
      this.#following.delete(jobId);
    };
    this.#following.set(jobId, stop);
    unsubscribe = job.subscribe({
      event: (event) => {
        if (event.type === 'assigned' && skipped < skip) {
          skipped++;
          return;
        }
        this.#event(jobId, event);
      },
      end: stop,
    });
    if (!this.#following.has(jobId)) unsubscribe(); // it ended while subscribing
  }

  #event(jobId: string, event: JobEvent): void {
    this.#send({ v: PROTOCOL_VERSION, type: 'event', jobId, event });
  }

  #refused(r: Problem, where: { ref?: string; jobId?: string }): void {
    this.#refuse({
      status: r.status,
      error: r.error,
      ...where,
      ...(r.retryAfterS !== undefined && { retryAfterS: r.retryAfterS }),
      ...(r.payment !== undefined && { payment: r.payment.payment }),
    });
  }

  #refuse(e: Omit<ChannelErrorMessage, 'v' | 'type'>): void {
    this.#send({ v: PROTOCOL_VERSION, type: 'error', ...e });
  }

  #send(message: ChannelMessage): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    // A requester that does not read is dropped, not buffered for without end (as a slow event-stream reader).
    if (this.#ws.bufferedAmount > this.#o.sendBufferBytes) {
      this.#ws.close(CLOSE_POLICY, 'reader too slow');
      return;
    }
    const frame = JSON.stringify(message);
    // Frames of one turn (a creation and its assignment, events of many jobs) leave in one write.
    this.#write(() => this.#ws.send(frame));
  }
}

function rawText(data: RawData): string | null {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return data instanceof ArrayBuffer ? Buffer.from(data).toString('utf8') : data.toString('utf8');
}

/** The `type`, `ref` and `jobId` of a message that failed validation, when they are usable, so the refusal can name it. */
function tags(text: string): { type?: string; ref?: string; jobId?: string } {
  try {
    const data = JSON.parse(text) as { type?: unknown; ref?: unknown; jobId?: unknown } | null;
    const ok = (x: unknown): x is string => typeof x === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(x);
    if (data === null || typeof data !== 'object') return {};
    return {
      ...(ok(data.type) && { type: data.type }),
      ...(ok(data.ref) && { ref: data.ref }),
      ...(ok(data.jobId) && { jobId: data.jobId }),
    };
  } catch {
    return {};
  }
}

function tooLarge(what: string): Problem {
  return new Problem(413, 'BAD_MESSAGE', `A ${what} message over ${CREATE_LIMIT} bytes is refused, as the route's body limit.`);
}

/** Answers an upgrade with the HTTP route's refusal and closes the socket. */
function reject(socket: Duplex, refusal: Problem): void {
  const { status } = refusal;
  const body = JSON.stringify({ error: refusal.error });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `${status === 401 ? 'WWW-Authenticate: Bearer\r\n' : ''}Connection: close\r\n\r\n${body}`,
  );
}
