/**
 * Simulated contributor workers for the dispatch benchmark: one `ws` client each, with its
 * own Ed25519 identity made with WebCrypto, a real signed `hello`, `capabilities` listing
 * one model, and `lease {slots}`. Their job is empty: on `job` a worker sends at once one
 * final `chunk` carrying an opaque blob as large as the payload, then leases the slot again.
 *
 * The job frame's payload is the requester's blob, whose first bytes carry the time the
 * requester sent the `PUT`; the worker records payload-sent → job-frame-received.
 *
 * After {@link ContributorPool.failOver}, a worker whose socket drops comes back on one of the
 * given coordinators (a load balancer's survivors) with the same identity, after the real
 * worker's first reconnect delay (worker/network/connection.ts, full jitter under 500 ms).
 */
import WebSocket, { type RawData } from 'ws';
import { type CoordinatorMessage, helloMessage, PROTOCOL_VERSION } from '../../protocol/wire.ts';
import { backoffDelay } from '../../worker/network/connection.ts';
import { epochMs, filler, pool, readStamp, Samples, withTimeout } from './stats.ts';

export interface ContributorPoolOptions {
  /** The coordinator's base URL (http://127.0.0.1:port). */
  url: string;
  count: number;
  /** Slots each worker offers. */
  slots: number;
  model: string;
  /** Size of the result blob each worker sends back, bytes. */
  resultBytes: number;
  /** Handshakes in progress at once. Default 64. */
  connectParallel?: number;
  /** How often each worker pings, ms. Default 5 000 (the coordinator's default heartbeat is 15 000). */
  pingEveryMs?: number;
  /** Where to record each worker's hello → welcome time, ms (the connections benchmark). */
  helloMs?: Samples;
  /** How long each handshake step may take, ms. Default 10 000. */
  stepTimeoutMs?: number;
}

/** What the workers saw while recording. */
export interface Recording {
  /** Payload `PUT` sent (requester clock) → job frame received (this process), ms. */
  dispatch: Samples;
  /** Jobs received while recording. */
  jobs: number;
}

const b64 = (bytes: ArrayBuffer | Uint8Array): string =>
  Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString('base64url');

function text(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

/** What the workers that lost their coordinator after {@link ContributorPool.failOver} did, ms after its `since`. */
export interface FailoverReport {
  /** Workers whose socket dropped. */
  dropped: number;
  /** When each noticed its socket closed. */
  closedMs: number[];
  /** When each was welcomed again, capabilities and lease taken, on a survivor. */
  backMs: number[];
  /** When each received its first job there. */
  servingMs: number[];
  /** Reconnect attempts that failed (each is tried again). */
  failedAttempts: number;
}

/** A worker's key pair and what its hello says. */
interface Identity {
  privateKey: CryptoKey;
  identityKey: string;
  hpkeKey: string;
}

/** One simulated worker. */
class Contributor {
  ws: WebSocket;
  contributorId = '';
  /** Welcomed, capabilities and lease taken: the pool's pings go to it from now on. */
  ready = false;
  /** After a fail-over: when its socket closed, it was back, and it got its first job there (epoch ms). */
  lost: { closedAt: number; backAt?: number; servingAt?: number } | null = null;
  /** Coming back after a drop: closes of the sockets it tries meanwhile are its own retries' business. */
  reconnecting = false;
  #waiting: { type: CoordinatorMessage['type']; resolve: (m: CoordinatorMessage) => void } | null = null;

  constructor(
    url: string,
    private readonly pool: ContributorPool,
    readonly identity: Identity,
  ) {
    this.ws = this.open(url);
  }

  /** A new socket to `url`, replacing the current one. */
  open(url: string): WebSocket {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/contributor`, { perMessageDeflate: false });
    this.ws = ws;
    ws.on('message', (data) => this.#onMessage(data));
    ws.on('error', () => {});
    ws.on('close', () => {
      if (this.ws === ws) this.pool.onClose(this);
    });
    return ws;
  }

  /** Resolves with the next message of `type` (only one wait at a time; used during the handshake). */
  next(type: CoordinatorMessage['type'], timeoutMs: number): Promise<CoordinatorMessage> {
    const promise = new Promise<CoordinatorMessage>((resolve) => {
      this.#waiting = { type, resolve };
    });
    return withTimeout(promise, timeoutMs, `waiting for ${type}`);
  }

  send(message: unknown): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  #onMessage(data: RawData): void {
    const receivedAt = epochMs();
    const message = JSON.parse(text(data)) as CoordinatorMessage;
    if (message.type === 'job') return this.pool.onJob(this, message, receivedAt);
    if (message.type === 'ack') return;
    if (message.type === 'error') this.pool.count(`error ${message.error.code}`);
    else if (message.type === 'cancel' || message.type === 'drain') this.pool.count(message.type);
    const waiting = this.#waiting;
    if (waiting !== null && waiting.type === message.type) {
      this.#waiting = null;
      waiting.resolve(message);
    }
  }
}

/** N connected, welcomed workers offering slots; see the module comment. */
export class ContributorPool {
  readonly #o: Required<Omit<ContributorPoolOptions, 'helloMs'>> & Pick<ContributorPoolOptions, 'helloMs'>;
  readonly #workers: Contributor[] = [];
  readonly #resultCt: string;
  readonly #resultEnc: string;
  #recording: (Recording & { offsetMs: number; from: number; to: number }) | null = null;
  #ping: NodeJS.Timeout | undefined;
  #closing = false;
  #failover: { urls: readonly string[]; since: number; next: number; failedAttempts: number } | null = null;
  /** Jobs received since connecting. */
  jobs = 0;
  /** Unusual messages by kind (`error CODE`, `cancel`, `drain`). */
  readonly unusual = new Map<string, number>();

  private constructor(options: ContributorPoolOptions) {
    this.#o = { connectParallel: 64, pingEveryMs: 5_000, stepTimeoutMs: 10_000, ...options };
    this.#resultCt = filler(options.resultBytes).subarray(0, options.resultBytes).toString('base64url');
    this.#resultEnc = b64(crypto.getRandomValues(new Uint8Array(32)));
  }

  /** Connects `count` workers (each: key, hello, welcome, capabilities, lease, ping/pong), at most `connectParallel` at once. */
  static async connect(options: ContributorPoolOptions): Promise<ContributorPool> {
    const pool = new ContributorPool(options);
    // Pings start with the first welcome: connecting thousands takes longer than the heartbeat allows.
    pool.#ping = setInterval(() => {
      for (const w of pool.#workers) if (w.ready) w.send({ v: PROTOCOL_VERSION, type: 'ping', t: Date.now() });
    }, pool.#o.pingEveryMs);
    pool.#ping.unref();
    try {
      await pool.#connectAll();
    } catch (err) {
      clearInterval(pool.#ping);
      throw err;
    }
    return pool;
  }

  get size(): number {
    return this.#workers.length;
  }

  /**
   * Records dispatch latencies of job frames received from `from` to `to` (epoch ms, this
   * process's clock); `offsetMs` is the requester's clock minus this process's.
   */
  record(offsetMs: number, from: number, to: number): void {
    this.#recording = { dispatch: new Samples(), jobs: 0, offsetMs, from, to };
  }

  /** Stops recording and returns what was recorded. */
  stop(): Recording {
    const recording = this.#recording ?? { dispatch: new Samples(), jobs: 0 };
    this.#recording = null;
    return recording;
  }

  count(what: string): void {
    this.unusual.set(what, (this.unusual.get(what) ?? 0) + 1);
  }

  /**
   * From now on a worker whose socket drops reconnects to one of `urls` (round robin), as the
   * real worker does behind a load balancer; {@link failoverReport} says how long it took,
   * counted from `since` (epoch ms).
   */
  failOver(urls: readonly string[], since: number): void {
    this.#failover = { urls, since, next: 0, failedAttempts: 0 };
  }

  failoverReport(): FailoverReport {
    const since = this.#failover?.since ?? 0;
    const lost = this.#workers.flatMap((w) => (w.lost === null ? [] : [w.lost]));
    const after = (times: (number | undefined)[]): number[] => times.flatMap((t) => (t === undefined ? [] : [t - since]));
    return {
      dropped: lost.length,
      closedMs: after(lost.map((l) => l.closedAt)),
      backMs: after(lost.map((l) => l.backAt)),
      servingMs: after(lost.map((l) => l.servingAt)),
      failedAttempts: this.#failover?.failedAttempts ?? 0,
    };
  }

  /** @internal A worker's socket closed: after {@link failOver}, it comes back on a survivor. */
  onClose(worker: Contributor): void {
    worker.ready = false;
    const failover = this.#failover;
    if (this.#closing || failover === null || worker.reconnecting) return;
    worker.reconnecting = true;
    worker.lost ??= { closedAt: epochMs() };
    const retry = (attempt: number): void => {
      setTimeout(
        () => {
          if (this.#closing) return;
          const url = failover.urls[failover.next++ % failover.urls.length] ?? '';
          worker.open(url);
          this.#handshake(worker).then(
            () => {
              worker.reconnecting = false;
              if (worker.lost !== null) worker.lost.backAt ??= epochMs();
            },
            () => {
              failover.failedAttempts++;
              if (attempt < 20) retry(attempt + 1);
            },
          );
        },
        backoffDelay(attempt, Math.random),
      );
    };
    retry(0);
  }

  /** @internal A job frame arrived: answer with one final chunk at once, then lease the slot again. */
  onJob(worker: Contributor, job: Extract<CoordinatorMessage, { type: 'job' }>, receivedAt: number): void {
    this.jobs++;
    if (worker.lost?.backAt !== undefined) worker.lost.servingAt ??= receivedAt;
    const recording = this.#recording;
    if (recording !== null && receivedAt >= recording.from && receivedAt < recording.to) {
      recording.jobs++;
      const sentAt = readStamp(job.sealed.ct) - recording.offsetMs;
      if (Number.isFinite(sentAt)) recording.dispatch.add(receivedAt - sentAt);
    }
    worker.send({
      v: PROTOCOL_VERSION,
      type: 'chunk',
      jobId: job.jobId,
      leaseId: job.leaseId,
      seq: 0,
      final: true,
      sealed: { enc: this.#resultEnc, ct: this.#resultCt },
      usage: { promptTokens: 1, completionTokens: 1 },
    });
    worker.send({ v: PROTOCOL_VERSION, type: 'lease', slots: this.#o.slots });
  }

  /** Closes every socket and waits (bounded) for the closes. */
  async close(timeoutMs = 5_000): Promise<void> {
    this.#closing = true;
    clearInterval(this.#ping);
    const closed = this.#workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.ws.readyState === WebSocket.CLOSED) return resolve();
          w.ws.once('close', () => resolve());
          w.ws.close();
        }),
    );
    await withTimeout(Promise.all(closed), timeoutMs, 'closing contributor sockets').catch(() => {
      for (const w of this.#workers) w.ws.terminate();
    });
    this.#workers.length = 0;
  }

  async #connectAll(): Promise<void> {
    const { url, count, connectParallel } = this.#o;
    await pool(count, connectParallel, async () => {
      const identity = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
      const identityKey = b64(await crypto.subtle.exportKey('raw', identity.publicKey));
      const hpkeKey = b64(crypto.getRandomValues(new Uint8Array(32)));
      const worker = new Contributor(url, this, { privateKey: identity.privateKey, identityKey, hpkeKey });
      this.#workers.push(worker);
      await this.#handshake(worker);
    });
  }

  /** On the worker's new socket: challenge, signed hello, welcome, capabilities, lease, and a pong that says they were taken. */
  async #handshake(worker: Contributor): Promise<void> {
    const { model, slots, stepTimeoutMs } = this.#o;
    const { ws, identity } = worker;
    const challenge = worker.next('challenge', stepTimeoutMs);
    challenge.catch(() => undefined); // awaited below, unless opening the socket fails first
    await withTimeout(
      new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject)),
      stepTimeoutMs,
      'opening a contributor socket',
    );
    const c = await challenge;
    if (c.type !== 'challenge') throw new Error('expected a challenge');
    const signed = helloMessage(c.nonce, identity.identityKey, identity.hpkeKey);
    const signature = b64(await crypto.subtle.sign({ name: 'Ed25519' }, identity.privateKey, new Uint8Array(signed)));
    const welcome = worker.next('welcome', stepTimeoutMs);
    const helloAt = performance.now();
    worker.send({
      v: PROTOCOL_VERSION,
      type: 'hello',
      identityKey: identity.identityKey,
      hpkeKey: identity.hpkeKey,
      nonce: c.nonce,
      signature,
      client: { name: 'bench-dispatch', version: '0' },
    });
    const w = await welcome;
    this.#o.helloMs?.add(performance.now() - helloAt);
    if (w.type !== 'welcome') throw new Error('expected a welcome');
    worker.contributorId = w.contributorId;
    const pong = worker.next('pong', stepTimeoutMs);
    worker.send({
      v: PROTOCOL_VERSION,
      type: 'capabilities',
      adapter: null,
      models: [{ id: model, state: 'loaded' }],
      consent: ['chat'],
      engineClass: 'bench',
    });
    worker.send({ v: PROTOCOL_VERSION, type: 'lease', slots });
    // Frames are handled in order: the pong means capabilities and lease were taken.
    worker.send({ v: PROTOCOL_VERSION, type: 'ping', t: 0 });
    await pong;
    worker.ready = true;
  }
}
