/**
 * Wallet sessions: the opaque token a device gets once its wallet proved control of an
 * address (`POST /v1/wallet/proof`), which the device's worker then sends in `hello.session`.
 * Kept in memory: a coordinator restart asks devices to reconnect their wallet.
 *
 * Two scopes: a `device` session is what a contributor's worker sends in its hello; an `owner`
 * session (asked for with `scope: "owner"`, the fleet page) is the only credential of the fleet
 * routes, lives 8 hours by default and is revoked by signing out. Neither works as the other.
 *
 * The owner checks are async: replicas keep owner sessions in the database
 * (coordinator/cluster/wallet-sessions.ts), so a sign-out on one replica holds on every other.
 */
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../clock.ts';
import { type SessionBinding, type SessionResolver, UNKNOWN_SESSION } from '../sessions/bindings.ts';

export type WalletSessionScope = 'device' | 'owner';

/** What a token stands for. */
export interface WalletSession {
  scope: WalletSessionScope;
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
  readonly #ttlMs: Record<WalletSessionScope, number>;
  readonly #byToken = new Map<string, WalletSession>();

  /** `ttlMs`: how long a device token stays valid, default 24 hours; `ownerTtlMs`: an owner token, default 8 hours. */
  constructor(options: { clock?: Clock; ttlMs?: number; ownerTtlMs?: number } = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#ttlMs = { device: options.ttlMs ?? 24 * 60 * 60_000, owner: options.ownerTtlMs ?? 8 * 60 * 60_000 };
  }

  issue(wallet: string, deviceKey: string, scope: WalletSessionScope = 'device'): { token: string; expiresAt: number } {
    const now = this.#clock.now();
    this.#forget(now);
    const token = randomBytes(32).toString('base64url');
    const expiresAt = now + this.#ttlMs[scope];
    this.#byToken.set(token, { scope, wallet, deviceKey, expiresAt });
    return { token, expiresAt };
  }

  /** {@link issue}, once the session is kept wherever it must be for every replica to accept it (here: at once). */
  async open(wallet: string, deviceKey: string, scope: WalletSessionScope = 'device'): Promise<{ token: string; expiresAt: number }> {
    return this.issue(wallet, deviceKey, scope);
  }

  /** The live device session `token` when it was issued to `deviceKey` (a hello); an owner session never. */
  find(token: string, deviceKey: string): WalletSession | null {
    const session = this.#live(token);
    return session === null || session.scope !== 'device' || session.deviceKey !== deviceKey ? null : session;
  }

  /** The live owner session behind `token` (the fleet routes' Bearer); a device session never. */
  async owner(token: string): Promise<WalletSession | null> {
    const session = this.#live(token);
    return session === null || session.scope !== 'owner' ? null : session;
  }

  /** Signs an owner session out: its token works nowhere afterwards. True when it was live. */
  async signOut(token: string): Promise<boolean> {
    const session = this.#live(token);
    return session !== null && session.scope === 'owner' && this.#byToken.delete(token);
  }

  #live(token: string): WalletSession | null {
    const session = this.#byToken.get(token);
    return session === undefined || this.#clock.now() >= session.expiresAt ? null : session;
  }

  async resolve(token: string, deviceKey: string): Promise<SessionBinding> {
    const session = this.find(token, deviceKey);
    return session === null ? UNKNOWN_SESSION : { ok: true, wallet: session.wallet };
  }

  #forget(now: number): void {
    // Two lifetimes: insertion order is not expiry order, so look at every entry (cheap next to a proof check).
    for (const [token, session] of this.#byToken) if (session.expiresAt <= now) this.#byToken.delete(token);
  }
}
