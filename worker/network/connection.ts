/**
 * One WebSocket to the coordinator that comes back after it drops: exponential backoff with
 * full jitter, reset once a connection has stayed up for a while. Frames are parsed against
 * the coordinator's schema; nothing thrown by a handler escapes an event callback.
 */
import { CoordinatorMessage, parseFrame, type ContributorMessage, type WireError } from '../../protocol/wire.ts';

/** The part of the WebSocket API used here; the browser's WebSocket and `ws` both fit. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: 'open' | 'error', listener: () => void): void;
}

export type SocketConstructor = new (url: string) => SocketLike;

/** Time and timers, injectable for tests. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** `Date.now` and the global timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

export interface BackoffOptions {
  /** Upper bound of the first retry's delay, ms. */
  baseMs: number;
  /** Largest upper bound, ms. */
  capMs: number;
  /** A connection open this long resets the backoff, ms. */
  stableMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, capMs: 30_000, stableMs: 10_000 };

/** Full jitter: uniform in [0, min(cap, base·2^attempt)), `attempt` counting from 0. */
export function backoffDelay(attempt: number, random: () => number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Why the socket closed, and when the next try is. */
export interface CloseInfo {
  code: number;
  reason: string;
  /** Delay before the next connection attempt, ms; null when the connection was stopped. */
  retryInMs: number | null;
  /** Attempts since the last stable connection, this one included. */
  attempts: number;
}

export interface ConnectionEvents {
  onOpen(): void;
  onMessage(message: CoordinatorMessage): void;
  /** A frame that failed to parse (malformed, wrong version, binary). */
  onInvalid(error: WireError): void;
  onClose(info: CloseInfo): void;
  /** A handler above threw; the connection carries on. */
  onError?(error: unknown): void;
}

/** Options left out or undefined take their defaults. */
export interface ConnectionOptions {
  url: string;
  /** The global `WebSocket` by default. */
  webSocket?: SocketConstructor | undefined;
  clock?: Clock | undefined;
  /** Uniform in [0, 1); `Math.random` by default. */
  random?: (() => number) | undefined;
  backoff?: Partial<BackoffOptions> | undefined;
}

/** What {@link Connection.send} did with a message. */
export type SendResult = 'sent' | 'closed' | 'too-large';

const OPEN = 1;

/** A reconnecting WebSocket client for the contributor protocol. */
export class Connection {
  readonly #url: string;
  readonly #WebSocket: SocketConstructor;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #backoff: BackoffOptions;
  readonly #events: ConnectionEvents;
  #socket: SocketLike | null = null;
  #running = false;
  #attempts = 0;
  #retryTimer: unknown = null;
  #stableTimer: unknown = null;
  #nextDelay: number | null = null;
  /** Largest frame the coordinator accepts, bytes (from `welcome`). */
  maxMessageBytes = Number.POSITIVE_INFINITY;

  constructor(options: ConnectionOptions, events: ConnectionEvents) {
    this.#url = options.url;
    this.#WebSocket = options.webSocket ?? globalThis.WebSocket;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#events = events;
  }

  /** Connection attempts since the last stable connection. */
  get attempts(): number {
    return this.#attempts;
  }

  get open(): boolean {
    return this.#socket?.readyState === OPEN;
  }

  /** Connects, and keeps reconnecting until {@link stop}. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#connect();
  }

  /** Closes the socket for good. No `onClose` follows. */
  stop(code = 1000, reason = 'contributor stopped'): void {
    this.#running = false;
    this.#clock.clearTimeout(this.#retryTimer);
    this.#clock.clearTimeout(this.#stableTimer);
    const socket = this.#socket;
    this.#socket = null;
    this.#safely(() => socket?.close(code, reason));
  }

  /** Drops the current socket; the usual reconnect follows (for a peer that went silent). */
  reconnect(reason: string): void {
    this.#safely(() => this.#socket?.close(4000, reason));
  }

  /** The next reconnect waits exactly `ms` instead of the backoff (a draining coordinator says when to come back). */
  delayNextConnect(ms: number): void {
    this.#nextDelay = ms;
  }

  send(message: ContributorMessage): SendResult {
    const socket = this.#socket;
    if (socket === null || socket.readyState !== OPEN) return 'closed';
    const frame = JSON.stringify(message);
    // A UTF-16 unit is 1–3 bytes in UTF-8, so most frames are sized without encoding them.
    if (frame.length > this.maxMessageBytes) return 'too-large';
    if (frame.length * 3 > this.maxMessageBytes && new TextEncoder().encode(frame).length > this.maxMessageBytes) return 'too-large';
    try {
      socket.send(frame);
      return 'sent';
    } catch {
      return 'closed';
    }
  }

  #connect(): void {
    this.#retryTimer = null;
    if (!this.#running) return;
    let socket: SocketLike;
    try {
      socket = new this.#WebSocket(this.#url);
    } catch (err) {
      this.#safely(() => this.#events.onError?.(err));
      this.#closed(null, 1006, err instanceof Error ? err.message : String(err));
      return;
    }
    this.#socket = socket;
    socket.addEventListener('open', () => {
      if (socket !== this.#socket) return;
      this.#stableTimer = this.#clock.setTimeout(() => (this.#attempts = 0), this.#backoff.stableMs);
      this.#safely(() => this.#events.onOpen());
    });
    socket.addEventListener('message', (event) => {
      if (socket !== this.#socket) return;
      if (typeof event.data !== 'string') {
        this.#safely(() => this.#events.onInvalid({ code: 'BAD_MESSAGE', message: 'Binary frames are not part of the protocol.' }));
        return;
      }
      const parsed = parseFrame(CoordinatorMessage, event.data);
      this.#safely(() => (parsed.ok ? this.#events.onMessage(parsed.value) : this.#events.onInvalid(parsed.error)));
    });
    // Browsers fire `error` without details and then `close`; the close does the work.
    socket.addEventListener('error', () => undefined);
    socket.addEventListener('close', (event) => this.#closed(socket, event.code, event.reason));
  }

  #closed(socket: SocketLike | null, code: number, reason: string): void {
    if (socket !== this.#socket || !this.#running) return;
    this.#socket = null;
    this.#clock.clearTimeout(this.#stableTimer);
    // A close the coordinator announced (drain) is not a failure: it does not grow the backoff.
    const retryInMs = this.#nextDelay ?? backoffDelay(this.#attempts++, this.#random, this.#backoff);
    this.#nextDelay = null;
    this.#retryTimer = this.#clock.setTimeout(() => this.#connect(), retryInMs);
    this.#safely(() => this.#events.onClose({ code, reason, retryInMs, attempts: this.#attempts }));
  }

  #safely(body: () => void): void {
    try {
      body();
    } catch (err) {
      try {
        this.#events.onError?.(err);
      } catch {
        // A throwing error handler has nowhere left to report to.
      }
    }
  }
}
