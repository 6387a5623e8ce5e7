/**
 * Requesters on the requester channel (`/v1/requester`, protocol/requester-channel.ts) for
 * the dispatch benchmark: the same closed-loop lanes as requesters.ts, multiplexed over a few
 * WebSockets, each job as the SDK runs it there: `create` → `created` (with the assignment)
 * → `payload` → the final chunk `event`. One round trip per job instead of three HTTP
 * requests and an NDJSON stream.
 *
 * With `assignAhead`, each socket keeps that many assignments in hand (`assign` →
 * `assignments`, asked for in batches when half are used), and a job is one message up:
 * `submit` with its payload sealed for an assignment already held → the final chunk `event`.
 */
import WebSocket from 'ws';
import { REQUESTER_CHANNEL_PATH, type ChannelMessage } from '../../protocol/requester-channel.ts';
import type { Assignment } from '../../protocol/wire.ts';
import type { HeldAssignment } from '../../protocol/requester-channel.ts';
import type { LoadResult } from './requesters.ts';
import { epochMs, filler, Samples, stampedBlob } from './stats.ts';

export interface ChannelLoadOptions {
  url: string;
  /** API key secrets; socket s uses keys[s % keys.length]. */
  keys: readonly string[];
  /** Sockets the lanes share (lane i on socket i % sockets). */
  sockets: number;
  lanes: number;
  model: string;
  payloadBytes: number;
  startAt?: number;
  warmupMs: number;
  windowMs: number;
  maxJobs: number;
  stepTimeoutMs?: number;
  /** Assignments each socket keeps in hand ahead of need (0 or absent: every job is created first). */
  assignAhead?: number;
  /**
   * Coordinators (replicas) the sockets are spread over, each with the model its lanes ask for
   * and its keys: socket s on endpoint s % endpoints.length. Absent: every socket on `url`,
   * asking for `model`, with `keys`.
   */
  endpoints?: readonly ChannelEndpoint[];
  /** Called with each job that got its result: its endpoint's index, when it was sent and answered (epoch ms). */
  onResult?: (endpoint: number, t0: number, t1: number) => void;
}

/** Where some of the channel load's sockets go. */
export interface ChannelEndpoint {
  url: string;
  model: string;
  keys: readonly string[];
}

/** What a lane waits for next on its socket. */
interface Waiter {
  created(jobId: string, assignment: Assignment | null): void;
  event(message: Extract<ChannelMessage, { type: 'event' }>): void;
  error(why: string): void;
}

/** One requester channel with the jobs waiting on it (also used by the connections benchmark's load phase). */
export class Socket {
  readonly #ws: WebSocket;
  /** By ref until `created`, then by job id. */
  readonly #byRef = new Map<string, Waiter>();
  readonly #byJob = new Map<string, Waiter>();
  #ref = 0;
  /** Assignments in hand, oldest first, with the local time after which they are not used. */
  readonly #held: { assignment: HeldAssignment; usableUntil: number }[] = [];
  #asking = false;
  #quietUntil = 0;
  #target = 0;
  #model = '';

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (data) => this.#receive(JSON.parse((data as Buffer).toString('utf8')) as ChannelMessage));
  }

  static open(url: string, key: string): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url.replace(/^http/, 'ws') + REQUESTER_CHANNEL_PATH, {
        headers: { authorization: `Bearer ${key}` },
        perMessageDeflate: false,
      });
      ws.once('message', () => resolve(new Socket(ws))); // `ready`
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`channel refused: HTTP ${res.statusCode ?? 0}`)));
    });
  }

  create(body: unknown, waiter: Waiter): void {
    const ref = (this.#ref++).toString(36);
    this.#byRef.set(ref, waiter);
    this.#ws.send(JSON.stringify({ v: 1, type: 'create', ref, job: body }));
  }

  /** Keep `target` assignments for `model` in hand from now on. */
  aheadOfNeed(model: string, target: number): void {
    this.#model = model;
    this.#target = target;
    this.#topUp();
  }

  /** An assignment in hand, or undefined (then ask for more). */
  take(): HeldAssignment | undefined {
    const now = epochMs();
    let next = this.#held.shift();
    while (next !== undefined && next.usableUntil <= now) next = this.#held.shift();
    this.#topUp();
    return next?.assignment;
  }

  /** The job on a held assignment, with its sealed payload, in one message. */
  submit(jobId: string, body: unknown, sealed: unknown, waiter: Waiter): void {
    this.#byJob.set(jobId, waiter);
    const ref = (this.#ref++).toString(36);
    this.#ws.send(JSON.stringify({ v: 1, type: 'submit', ref, jobId, job: body, sealed }));
  }

  #topUp(): void {
    if (this.#target === 0 || this.#asking || this.#held.length > this.#target / 2 || epochMs() < this.#quietUntil) return;
    this.#asking = true;
    const count = Math.min(64, this.#target - this.#held.length);
    this.#ws.send(JSON.stringify({ v: 1, type: 'assign', ref: 'assign', model: this.#model, kind: 'chat', count }));
  }

  send(message: unknown): void {
    this.#ws.send(JSON.stringify(message));
  }

  done(jobId: string): void {
    this.#byJob.delete(jobId);
  }

  close(): void {
    this.#ws.close();
  }

  #receive(m: ChannelMessage): void {
    if (m.type === 'created') {
      const waiter = this.#byRef.get(m.ref);
      this.#byRef.delete(m.ref);
      if (waiter === undefined) return;
      this.#byJob.set(m.jobId, waiter);
      waiter.created(m.jobId, m.assignment);
    } else if (m.type === 'assignments') {
      this.#asking = false;
      const usableUntil = epochMs() + m.expiresInMs * 0.8;
      for (const assignment of m.assignments) this.#held.push({ assignment, usableUntil });
      if (m.assignments.length === 0) this.#quietUntil = epochMs() + 100;
    } else if (m.type === 'error' && m.ref === 'assign') {
      this.#asking = false;
      this.#quietUntil = epochMs() + 100;
    } else if (m.type === 'event') {
      this.#byJob.get(m.jobId)?.event(m);
    } else if (m.type === 'error') {
      const waiter =
        (m.ref === undefined ? undefined : this.#byRef.get(m.ref)) ?? (m.jobId === undefined ? undefined : this.#byJob.get(m.jobId));
      if (m.ref !== undefined) this.#byRef.delete(m.ref);
      waiter?.error(`${m.status} ${m.error.code}`);
    }
  }
}

/** One job for {@link followJob}. */
export interface FollowedJob {
  /** The `create` body. */
  body: unknown;
  /** A payload sealed now, for each attempt. */
  seal: () => unknown;
  /** How long the job may take from its first message to its result, ms. */
  stepMs: number;
  /** An assignment held ahead of need: the job and its payload go up in one `submit`. */
  held?: HeldAssignment | undefined;
  /** Its final chunk arrived: `t0` when it was sent, `t1` now (epoch ms). */
  done(t0: number, t1: number): void;
  /** It failed, was refused, or had no result within `stepMs`. */
  fail(why: string): void;
}

/**
 * One job on `socket` as the SDK runs it on the channel (`create` → `created` → `payload`, or
 * one `submit` on a held assignment; the payload sealed again for each later attempt), followed
 * to its end. Resolves when it ended either way.
 */
export function followJob(socket: Socket, job: FollowedJob): Promise<void> {
  return new Promise((resolve) => {
    const t0 = epochMs();
    let attempt = 0;
    let jobId = '';
    const end = (why: string | null): void => {
      clearTimeout(timer);
      if (jobId !== '') socket.done(jobId);
      if (why !== null) job.fail(why);
      resolve();
    };
    const timer = setTimeout(() => end('no answer within the step timeout'), job.stepMs);
    const submit = (a: Assignment): void => {
      if (a.attempt <= attempt) return;
      attempt = a.attempt;
      socket.send({ v: 1, type: 'payload', jobId, attempt: a.attempt, sealed: job.seal() });
    };
    const waiter: Waiter = {
      created(id, assignment) {
        jobId = id;
        if (assignment !== null) submit(assignment);
      },
      event({ event }) {
        if (event.type === 'assigned') return submit(event.assignment);
        if (event.type === 'failed') return end(`failed ${event.error.code}`);
        if (event.type === 'chunk' && event.final && event.attempt === attempt) {
          job.done(t0, epochMs());
          end(null);
        }
      },
      error: (why) => end(why),
    };
    if (job.held === undefined) return socket.create(job.body, waiter);
    jobId = job.held.jobId;
    attempt = 1;
    socket.submit(jobId, job.body, job.seal(), waiter);
  });
}

/** Runs closed-loop lanes on the channel for warm-up + window and measures the window, as {@link runLoad} does over HTTP. */
export async function runChannelLoad(o: ChannelLoadOptions): Promise<LoadResult> {
  const stepMs = o.stepTimeoutMs ?? 15_000;
  const blobFiller = filler(o.payloadBytes);
  const enc = filler(32).subarray(0, 32).toString('base64url');
  const endpoints = o.endpoints ?? [{ url: o.url, model: o.model, keys: o.keys }];
  const endpointOf = (s: number): ChannelEndpoint => endpoints[s % endpoints.length] as ChannelEndpoint;
  const sockets = await Promise.all(
    Array.from({ length: o.sockets }, (_, s) => {
      const { url, keys } = endpointOf(s);
      return Socket.open(url, keys[Math.floor(s / endpoints.length) % keys.length] ?? '');
    }),
  );
  const ahead = o.assignAhead ?? 0;
  if (ahead > 0) sockets.forEach((socket, s) => socket.aheadOfNeed(endpointOf(s).model, ahead));
  const windowStart = (o.startAt ?? epochMs()) + o.warmupMs;
  const windowEnd = windowStart + o.windowMs;
  const endToEnd = new Samples();
  const failures: Record<string, number> = {};
  const fail = (why: string): void => {
    failures[why] = (failures[why] ?? 0) + 1;
  };
  let started = 0;
  let completed = 0;
  const bodies = endpoints.map(({ model }) => ({
    model,
    kind: 'chat',
    sizeBytes: o.payloadBytes,
    billing: { inputTokens: 64, maxOutputTokens: 64 },
  }));

  const oneJob = (socket: Socket, s: number): Promise<void> =>
    followJob(socket, {
      body: bodies[s % endpoints.length],
      seal: () => ({ enc, ct: stampedBlob(o.payloadBytes, epochMs(), blobFiller) }),
      stepMs,
      held: ahead > 0 ? socket.take() : undefined,
      done(t0, t1) {
        o.onResult?.(s % endpoints.length, t0, t1);
        if (t1 >= windowStart && t1 < windowEnd) {
          completed++;
          endToEnd.add(t1 - t0);
        }
      },
      fail,
    });

  const lane = async (i: number): Promise<void> => {
    const s = i % sockets.length;
    const socket = sockets[s] as Socket;
    while (epochMs() < windowEnd && started < o.maxJobs) {
      started++;
      await oneJob(socket, s);
    }
  };
  const wait = (o.startAt ?? epochMs()) - epochMs();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  await Promise.all(Array.from({ length: o.lanes }, (_, i) => lane(i)));
  for (const socket of sockets) socket.close();
  return {
    lanes: o.lanes,
    windowMs: o.windowMs,
    completed,
    jobsPerSecond: completed / (o.windowMs / 1000),
    endToEnd: endToEnd.summary(),
    putRoundTrip: new Samples().summary(),
    started,
    failures,
    windowStart,
    windowEnd,
  };
}
