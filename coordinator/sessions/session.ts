/**
 * One contributor's WebSocket: challenge, hello, then the worker's offers and results
 * (docs/protocol.md). Frames are handled one at a time, in order, and a bad one never
 * escapes as an exception: it is answered with a typed error and counted.
 */
import type * as v from 'valibot';
import { type WebSocket, type RawData } from 'ws';
import {
  type Capabilities,
  ContributorMessage,
  type CoordinatorMessage,
  type Hello,
  MAX_MESSAGE_BYTES,
  parseFrame,
  type Parsed,
  PROTOCOL_VERSION,
  type WireError,
} from '../../protocol/wire.ts';
import { type Clock } from '../clock.ts';
import { errorText, type Logger } from '../log.ts';
import { ConnectedContributor } from '../leases/contributor.ts';
import type { Relay } from '../leases/relay.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Store } from '../store/types.ts';
import type { SessionBinding, SessionResolver } from './bindings.ts';
import { contributorIdOf, type NonceBook, usableHpkeKey, verifyHello } from './hello.ts';

/**
 * The relay as a session sees it: the relay itself, or the replicas' routing in front of it
 * (coordinator/cluster/), which answers a result for another replica's lease later, on the
 * worker's socket, so `result` may return nothing.
 */
export type RelayPort = Pick<Relay, 'offer' | 'join' | 'leave' | 'schedule' | 'contributors'> & {
  result(contributor: ConnectedContributor, message: Parameters<Relay['result']>[1]): CoordinatorMessage | undefined;
};

/** What a session needs from the coordinator around it. */
export interface SessionHost {
  relay: RelayPort;
  store: Store;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  nonces: NonceBook;
  heartbeatMs: number;
  /** Resolves `hello.session` to the wallet the device earns for; without it the token is ignored. */
  walletSessions?: SessionResolver;
  /** Most devices of one wallet connected at once; a further one is refused at `hello`. Default: no limit. */
  maxDevicesPerWallet?: number;
  /** Told of each welcomed contributor (the fleet re-sends its owner's remote pause); must not throw. */
  welcomed?: (contributor: ConnectedContributor) => void;
  /** Makes `session` the one for its contributor id; an older one is dropped. */
  claim(session: ContributorSession): void;
  /** The session's socket closed. */
  closed(session: ContributorSession): void;
  /** Bytes queued to the peer beyond which it is dropped as too slow. */
  sendBufferBytes: number;
  /** Takes a place for a connection earning for `wallet`; false when the wallet holds its limit. */
  takeWallet(wallet: string): boolean;
  releaseWallet(wallet: string): void;
}

/** WebSocket close codes: policy violation (fatal errors), going away, normal. */
export const CLOSE_POLICY = 1008;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_NORMAL = 1000;
/** Try again later: a limit was reached, or the peer read too slowly. */
export const CLOSE_TRY_AGAIN_LATER = 1013;

export class ContributorSession {
  readonly #ws: WebSocket;
  readonly #host: SessionHost;
  readonly #nonce: string;
  #phase: 'challenged' | 'verifying' | 'ready' | 'closed' = 'challenged';
  #queue: Promise<void> = Promise.resolve();
  /** Set once welcomed; null again once it left. */
  contributor: ConnectedContributor | null = null;
  /** The contributor id, from the welcome on (kept after the socket closed). */
  contributorId: string | null = null;
  /** When the worker last sent anything, ms. */
  lastSeen: number;
  /** The wallet whose connection place this session holds. */
  #wallet: string | null = null;
  /** Writes a frame; by default at once, from the gateway batched per event-loop turn (edges/batched-writes.ts). */
  readonly #write: (send: () => void) => void;

  constructor(ws: WebSocket, host: SessionHost, write: (send: () => void) => void = (send) => send()) {
    this.#ws = ws;
    this.#write = write;
    this.#host = host;
    const now = host.clock.now();
    this.lastSeen = now;
    this.#nonce = host.nonces.issue(now);
    ws.on('message', (data, isBinary) => {
      this.lastSeen = host.clock.now();
      this.#queue = this.#queue.then(() => this.#handle(data, isBinary)).catch((err: unknown) => this.#unexpected(err));
    });
    ws.on('close', () => {
      this.#releaseWallet();
      this.#phase = 'closed';
      this.#leave('disconnected');
      host.closed(this);
    });
    // A reset connection is normal for browser tabs; 'close' follows and cleans up.
    ws.on('error', () => {});
    this.send({ v: PROTOCOL_VERSION, type: 'challenge', nonce: this.#nonce, serverTime: now });
  }

  /** Sends a message if the socket is open; errors sent are counted by code. */
  send(message: CoordinatorMessage): void {
    if (message.type === 'error') this.#host.metrics.protocolError(message.error.code);
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    if (this.#ws.bufferedAmount > this.#host.sendBufferBytes) {
      // A peer that does not read is dropped, not buffered for without end; its jobs go elsewhere.
      this.#host.metrics.protocolError('SLOW_PEER');
      this.terminate('too slow: its send buffer is full');
      return;
    }
    try {
      const frame = JSON.stringify(message);
      this.#write(() => this.#ws.send(frame));
    } catch (err) {
      this.#unexpected(err);
    }
  }

  /** Re-queues its jobs and closes the socket. */
  close(code: number, reason: string): void {
    this.#releaseWallet();
    this.#phase = 'closed';
    this.#leave(reason);
    this.#ws.close(code, reason.slice(0, 120));
  }

  /** Closes at once, without the closing handshake (for sockets that stopped answering). */
  terminate(reason: string): void {
    this.#releaseWallet();
    this.#phase = 'closed';
    this.#leave(reason);
    this.#ws.terminate();
  }

  get welcomed(): boolean {
    return this.contributor !== null && this.#phase === 'ready';
  }

  async #handle(data: RawData, isBinary: boolean): Promise<void> {
    if (this.#phase === 'closed') return;
    const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength;
    const parsed: Parsed<ContributorMessage> = isBinary
      ? { ok: false, error: { code: 'BAD_MESSAGE', message: 'Binary frames are not part of the protocol; send JSON text.' } }
      : size > MAX_MESSAGE_BYTES
        ? { ok: false, error: { code: 'BAD_MESSAGE', message: `Message of ${size} bytes exceeds the ${MAX_MESSAGE_BYTES}-byte limit.` } }
        : parseFrame(ContributorMessage, rawText(data));
    if (this.#phase === 'challenged') {
      if (!parsed.ok) return this.#fatal(parsed.error);
      if (parsed.value.type !== 'hello')
        return this.#fatal({ code: 'UNAUTHORIZED', message: 'Send `hello` first, answering the challenge.' });
      return this.#hello(parsed.value);
    }
    if (!parsed.ok) {
      if (parsed.error.code === 'PROTOCOL_VERSION') return this.#fatal(parsed.error);
      return this.send({ v: PROTOCOL_VERSION, type: 'error', error: parsed.error, fatal: false });
    }
    const contributor = this.contributor;
    if (contributor === null) return;
    const message = parsed.value;
    switch (message.type) {
      case 'hello':
        return this.send({
          v: PROTOCOL_VERSION,
          type: 'error',
          error: { code: 'BAD_MESSAGE', message: 'Already welcomed; `hello` is sent once per connection.' },
          fatal: false,
        });
      case 'capabilities':
        return this.#capabilities(contributor, message);
      case 'lease':
        return this.#host.relay.offer(contributor, message.slots);
      case 'chunk':
      case 'fail': {
        const answer = this.#host.relay.result(contributor, message);
        return answer === undefined ? undefined : this.send(answer);
      }
      case 'ping':
        return this.send({ v: PROTOCOL_VERSION, type: 'pong', t: message.t });
      case 'status':
        contributor.status = {
          visibility: message.visibility,
          pausedBy: message.pausedBy,
          pace: message.pace,
          label: message.label,
          at: this.#host.clock.now(),
        };
        return;
    }
  }

  async #hello(hello: v.InferOutput<typeof Hello>): Promise<void> {
    const host = this.#host;
    this.#phase = 'verifying';
    // Consumed before the signature check: a failed hello burns the nonce too.
    const fresh = hello.nonce === this.#nonce && host.nonces.consume(hello.nonce, host.clock.now());
    if (!fresh)
      return this.#fatal({
        code: 'UNAUTHORIZED',
        message: 'The hello answers no open challenge of this connection (replayed, expired or foreign nonce); reconnect.',
      });
    if (!(await verifyHello(hello))) {
      return this.#fatal({
        code: 'UNAUTHORIZED',
        message: 'The hello signature does not verify against the identity key; sign helloMessage(nonce, identityKey, hpkeKey).',
      });
    }
    if (!(await usableHpkeKey(hello.hpkeKey))) {
      return this.#fatal({
        code: 'UNAUTHORIZED',
        message: 'The hpkeKey is not a usable X25519 public key (a low-order point or malformed); generate a fresh key pair and reconnect.',
      });
    }
    const id = contributorIdOf(hello.identityKey);
    const now = host.clock.now();
    // A bad wallet token is not fatal: the device still contributes, without (a new) wallet.
    let binding: SessionBinding | undefined;
    let wallet: string | null | undefined;
    try {
      binding =
        hello.session === undefined || host.walletSessions === undefined
          ? undefined
          : await host.walletSessions.resolve(hello.session, hello.identityKey);
      const known = await host.store.getContributor(id);
      const kept = known?.wallet ?? null;
      // An ended enrollment stops the device earning for that owner from this connection on.
      wallet = binding?.ok ? binding.wallet : binding?.endedWallet !== undefined && binding.endedWallet === kept ? null : kept;
      if (wallet !== null) {
        if (!host.takeWallet(wallet)) {
          return this.#fatal(
            { code: 'QUOTA', message: 'Too many devices are connected for this wallet; reconnect later or raise the limit.' },
            CLOSE_TRY_AGAIN_LATER,
          );
        }
        this.#wallet = wallet;
      }
      await host.store.upsertContributor({
        id,
        identityKey: hello.identityKey,
        hpkeKey: hello.hpkeKey,
        wallet,
        firstSeen: known?.firstSeen ?? now,
        lastSeen: now,
      });
    } catch (err) {
      host.logger.error('could not record a contributor', { contributorId: id, error: errorText(err) });
      return this.#fatal({ code: 'STORAGE', message: 'The coordinator could not record this contributor; reconnect in a minute.' });
    }
    if (this.#phase !== 'verifying') return;
    const limit = host.maxDevicesPerWallet;
    if (limit !== undefined && wallet != null) {
      let devices = 0;
      for (const c of host.relay.contributors.values()) if (c.wallet === wallet && c.id !== id) devices++;
      if (devices >= limit) {
        return this.#fatal({
          code: 'QUOTA',
          message: `This wallet already has ${devices} devices connected, its limit of ${limit}; disconnect one before connecting another.`,
        });
      }
    }
    this.contributor = new ConnectedContributor({
      id,
      hpkeKey: hello.hpkeKey,
      wallet: wallet ?? null,
      send: (message) => this.send(message),
    });
    this.contributorId = id;
    this.#phase = 'ready';
    host.claim(this);
    host.relay.join(this.contributor);
    this.send({
      v: PROTOCOL_VERSION,
      type: 'welcome',
      contributorId: id,
      heartbeatMs: host.heartbeatMs,
      maxMessageBytes: MAX_MESSAGE_BYTES,
    });
    if (binding !== undefined && !binding.ok) {
      this.send({ v: PROTOCOL_VERSION, type: 'error', error: { code: 'UNAUTHORIZED', message: binding.message }, fatal: false });
    }
    host.welcomed?.(this.contributor);
  }

  #capabilities(contributor: ConnectedContributor, message: v.InferOutput<typeof Capabilities>): void {
    contributor.capabilities = message;
    this.#host.relay.schedule();
  }

  #fatal(error: WireError, code = CLOSE_POLICY): void {
    this.send({ v: PROTOCOL_VERSION, type: 'error', error, fatal: true });
    this.close(code, error.code);
  }

  #releaseWallet(): void {
    if (this.#wallet !== null) this.#host.releaseWallet(this.#wallet);
    this.#wallet = null;
  }

  #leave(why: string): void {
    const contributor = this.contributor;
    if (contributor === null) return;
    this.contributor = null;
    this.#host.relay.leave(contributor, why);
  }

  #unexpected(err: unknown): void {
    this.#host.logger.error('contributor message handler failed', { contributorId: this.contributor?.id, error: errorText(err) });
    this.send({
      v: PROTOCOL_VERSION,
      type: 'error',
      error: { code: 'INTERNAL', message: 'The coordinator failed on this message; it was dropped.' },
      fatal: false,
    });
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
