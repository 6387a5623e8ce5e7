/**
 * Wallet sessions: the opaque token a device gets once its wallet proved control of an
 * address (`POST /v1/wallet/proof`), which the device's worker then sends in `hello.session`.
 * Kept in memory: a coordinator restart asks devices to reconnect their wallet.
 */
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../deps.ts';
import { type SessionBinding, type SessionResolver, UNKNOWN_SESSION } from '../sessions/bindings.ts';

/** What a token stands for. */
export interface WalletSession {
  /** The wallet's raw address, "0:hex". */
  wallet: string;
  /** The device's Ed25519 identity key (base64url) the proof's payload was issued to. */
  deviceKey: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

/** What the contributor sessions need: the wallet behind a token, for one device. */
export interface WalletSessionLookup {
  /** The session for `token` when it is live and was issued to `deviceKey`; null otherwise. */
  find(token: string, deviceKey: string): WalletSession | null;
}

export class WalletSessions implements WalletSessionLookup, SessionResolver {
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #byToken = new Map<string, WalletSession>();

  /** `ttlMs`: how long a token stays valid, default 24 hours. */
  constructor(options: { clock?: Clock; ttlMs?: number } = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#ttlMs = options.ttlMs ?? 24 * 60 * 60_000;
  }

  issue(wallet: string, deviceKey: string): { token: string; expiresAt: number } {
    const now = this.#clock.now();
    this.#forget(now);
    const token = randomBytes(32).toString('base64url');
    const expiresAt = now + this.#ttlMs;
    this.#byToken.set(token, { wallet, deviceKey, expiresAt });
    return { token, expiresAt };
  }

  find(token: string, deviceKey: string): WalletSession | null {
    const session = this.#byToken.get(token);
    if (session === undefined || session.deviceKey !== deviceKey || this.#clock.now() >= session.expiresAt) return null;
    return session;
  }

  /** The live session behind `token`, whatever device holds it (an owner's Bearer token). */
  findByToken(token: string): WalletSession | null {
    const session = this.#byToken.get(token);
    return session === undefined || this.#clock.now() >= session.expiresAt ? null : session;
  }

  async resolve(token: string, deviceKey: string): Promise<SessionBinding> {
    const session = this.find(token, deviceKey);
    return session === null ? UNKNOWN_SESSION : { ok: true, wallet: session.wallet };
  }

  #forget(now: number): void {
    // Insertion order is expiry order (fixed ttl).
    for (const [token, session] of this.#byToken) {
      if (session.expiresAt > now) break;
      this.#byToken.delete(token);
    }
  }
}
