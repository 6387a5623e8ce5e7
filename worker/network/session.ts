/**
 * What the contributor knows about one socket to the coordinator, from open to close: where
 * the handshake is, the coordinator's clock, and the timers that notice a stalled handshake
 * or a link gone silent.
 */
import type { Clock, CloseInfo } from './connection.ts';

export interface SessionEvents {
  /** No `welcome` within the handshake timeout. */
  onStalled(): void;
  /** Time to send a ping; `t` is local ms since the epoch. */
  onPing(t: number): void;
  /** Nothing heard for three heartbeats. */
  onSilent(): void;
}

/** One socket's session. Call {@link end} when the socket closes. */
export class Session {
  welcomed = false;
  /** Coordinator time minus local time, ms (from the challenge). */
  clockOffset = 0;
  /** The coordinator is shutting down: take no more jobs. */
  draining = false;
  /** The coordinator sent a fatal error; its words are the last error. */
  refused = false;
  readonly #clock: Clock;
  readonly #events: SessionEvents;
  #lastHeard: number;
  #timer: unknown;
  #ended = false;

  constructor(clock: Clock, handshakeTimeoutMs: number, events: SessionEvents) {
    this.#clock = clock;
    this.#events = events;
    this.#lastHeard = clock.now();
    // A handshake that stalls (a welcome this worker cannot read, say) would otherwise leave it connected and idle for good.
    this.#timer = clock.setTimeout(() => this.welcomed || this.#ended || events.onStalled(), handshakeTimeoutMs);
  }

  /** A message arrived. */
  heard(): void {
    this.#lastHeard = this.#clock.now();
  }

  /** Maps the coordinator's time (ms since the epoch) to local time. */
  toLocal(coordinatorTime: number): number {
    return coordinatorTime - this.clockOffset;
  }

  /** The handshake is done: ping every `heartbeatMs / 2` (none when 0). */
  welcome(heartbeatMs: number): void {
    this.welcomed = true;
    this.#clock.clearTimeout(this.#timer);
    if (heartbeatMs <= 0) return;
    const tick = (): void => {
      if (this.#ended) return;
      const now = this.#clock.now();
      // Pongs answer pings, so silence for several beats means a dead link the socket has not noticed.
      if (now - this.#lastHeard > 3 * heartbeatMs) return this.#events.onSilent();
      this.#events.onPing(now);
      this.#timer = this.#clock.setTimeout(tick, heartbeatMs / 2);
    };
    this.#timer = this.#clock.setTimeout(tick, heartbeatMs / 2);
  }

  end(): void {
    this.#ended = true;
    this.#clock.clearTimeout(this.#timer);
  }
}

/**
 * What a socket's close means for the owner: whether the worker is failing, and the error to
 * show (none: the last one stands). `renewing`: closed on purpose to say hello with a new
 * session, not a failure; `failing`: whether it was failing before.
 */
export function closeOutcome(
  info: CloseInfo,
  session: Session | null,
  renewing: boolean,
  failing: boolean,
): { failing: boolean; lastError?: string } {
  if (renewing) return { failing };
  if (session?.refused) return { failing: true };
  if (session === null || !session.welcomed) {
    const reason = info.reason ? `: ${info.reason}` : '';
    return { failing: true, lastError: `Could not connect to the coordinator (close code ${info.code}${reason}).` };
  }
  if (!session.draining && !failing)
    return { failing, lastError: `The connection to the coordinator closed (code ${info.code}); reconnecting.` };
  return { failing };
}
