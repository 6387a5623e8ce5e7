/**
 * The contributor endpoint, `GET /v1/contributor`: accepts WebSocket upgrades, keeps one
 * session per contributor identity (a newer connection replaces an older one), drops
 * silent sockets, and tells workers when the coordinator drains.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { MAX_MESSAGE_BYTES, PROTOCOL_VERSION } from '../../protocol/wire.ts';
import type { ConnectedContributor } from '../leases/contributor.ts';
import { Counter } from '../edges/limits.ts';
import { batchedWrites } from '../edges/batched-writes.ts';
import { CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_TRY_AGAIN_LATER, ContributorSession, type SessionHost } from './session.ts';

/** The path contributor workers connect to. */
export const CONTRIBUTOR_PATH = '/v1/contributor';

export class ContributorGateway {
  // Frames up to twice the protocol limit reach the session, which refuses the oversized
  // ones with a typed error and keeps the connection; beyond that `ws` closes it (1009).
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 2 * MAX_MESSAGE_BYTES });
  readonly #sessions = new Set<ContributorSession>();
  readonly #byContributor = new Map<string, ContributorSession>();
  readonly #host: SessionHost;
  readonly #perIp = new Counter();
  readonly #perWallet = new Counter();
  readonly #ipOf = new WeakMap<ContributorSession, string>();
  readonly #connectionsPerIp: number;
  #draining = false;

  constructor(
    host: Omit<SessionHost, 'claim' | 'closed' | 'takeWallet' | 'releaseWallet'> & {
      connectionsPerIp: number;
      connectionsPerWallet: number;
    },
  ) {
    const { connectionsPerIp, connectionsPerWallet, ...rest } = host;
    this.#connectionsPerIp = connectionsPerIp;
    this.#host = {
      ...rest,
      claim: (session) => this.#claim(session),
      closed: (session) => this.#closed(session),
      takeWallet: (wallet) => this.#perWallet.take(wallet, connectionsPerWallet),
      releaseWallet: (wallet) => this.#perWallet.release(wallet),
    };
  }

  /** Refuses a socket with a typed error and a close code. */
  #refuse(ws: WebSocket, code: 'DRAINING' | 'QUOTA', message: string): void {
    this.#host.metrics.protocolError(code);
    ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type: 'error', error: { code, message }, fatal: true }));
    ws.close(CLOSE_TRY_AGAIN_LATER, code === 'DRAINING' ? 'draining' : 'too many connections');
  }

  /** Takes an HTTP upgrade for {@link CONTRIBUTOR_PATH}; returns false (and leaves the socket alone) for any other path. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (path !== CONTRIBUTOR_PATH) return false;
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      if (this.#draining) return this.#refuse(ws, 'DRAINING', 'The coordinator is shutting down; reconnect later.');
      const ip = request.socket.remoteAddress ?? 'unknown';
      if (!this.#perIp.take(ip, this.#connectionsPerIp)) {
        return this.#refuse(ws, 'QUOTA', `Too many connections from ${ip} (${this.#connectionsPerIp}); reconnect later.`);
      }
      // Job frames for one device within a turn (several waiting jobs assigned at once) leave in one write.
      const session = new ContributorSession(ws, this.#host, batchedWrites(socket));
      this.#ipOf.set(session, ip);
      this.#sessions.add(session);
    });
    return true;
  }

  /** Drops sockets silent for more than two heartbeat intervals; their jobs are re-queued. */
  sweep(now: number): void {
    this.#host.nonces.sweep(now);
    for (const session of this.#sessions) {
      if (now - session.lastSeen > 2 * this.#host.heartbeatMs) {
        this.#sessions.delete(session);
        session.terminate('went silent');
      }
    }
  }

  /** Sends `drain` to every worker and refuses new connections. */
  drain(reconnectAfterMs: number): void {
    this.#draining = true;
    for (const session of this.#sessions) session.send({ v: PROTOCOL_VERSION, type: 'drain', reconnectAfterMs });
  }

  /** Closes every socket (going away). */
  closeAll(): void {
    this.#draining = true;
    for (const session of this.#sessions) session.close(CLOSE_GOING_AWAY, 'the coordinator is shutting down');
    this.#sessions.clear();
    this.#byContributor.clear();
    this.#wss.close();
  }

  /** The welcomed, connected contributor with this id, if any. */
  find(contributorId: string): ConnectedContributor | undefined {
    const session = this.#byContributor.get(contributorId);
    return session?.welcomed === true ? (session.contributor ?? undefined) : undefined;
  }

  /** Welcomed sessions. */
  get connected(): number {
    return this.#byContributor.size;
  }

  #claim(session: ContributorSession): void {
    const id = session.contributorId;
    if (id === null) return;
    const older = this.#byContributor.get(id);
    this.#byContributor.set(id, session);
    if (older !== undefined && older !== session) {
      this.#sessions.delete(older);
      older.close(CLOSE_NORMAL, 'replaced by a newer connection');
    }
  }

  #closed(session: ContributorSession): void {
    const ip = this.#ipOf.get(session);
    if (ip !== undefined) this.#perIp.release(ip);
    this.#ipOf.delete(session);
    this.#sessions.delete(session);
    const id = session.contributorId;
    if (id !== null && this.#byContributor.get(id) === session) this.#byContributor.delete(id);
  }
}
