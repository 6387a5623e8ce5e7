/**
 * Wallet and owner sessions every replica accepts (docs/operating.md, "Replicas"). Only each
 * token's SHA-256 is stored, in `wallet_sessions` (migration 009); `POST /v1/wallet/proof`
 * answers once the row is committed, so any replica knows the session from then on.
 *
 * - A device session (`hello.session`) is kept in this replica's memory too; a `hello` with a
 *   token this replica did not issue is looked up in the table. Device sessions are never
 *   revoked, so the memory copy cannot go stale.
 * - An owner session (the fleet routes' Bearer) is checked against the table on every call, on
 *   every replica, the one that issued it included: a sign-out deletes the row, so it is refused
 *   everywhere at once, and one past its expiry is refused by every replica's clock.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { type SessionBinding, UNKNOWN_SESSION } from '../sessions/bindings.ts';
import type { SqlDb } from '../store/sql.ts';
import { toInt } from '../store/sql.ts';
import { type WalletSession, WalletSessions, type WalletSessionScope } from '../wallets/wallet-sessions.ts';

const hash = (token: string): string => createHash('sha256').update(token).digest('base64url');

export class SharedWalletSessions extends WalletSessions {
  readonly #db: SqlDb;
  readonly #clock: Clock;
  readonly #log: (message: string, err: unknown) => void;
  /** Writes not yet committed: a `hello` on another replica right after the proof waits for them there, not here. */
  readonly #writes = new Set<Promise<void>>();

  constructor(options: { db: SqlDb; clock: Clock; log: (message: string, err: unknown) => void }) {
    super({ clock: options.clock });
    this.#db = options.db;
    this.#clock = options.clock;
    this.#log = options.log;
  }

  override issue(wallet: string, deviceKey: string, scope: WalletSessionScope = 'device'): { token: string; expiresAt: number } {
    const issued = super.issue(wallet, deviceKey, scope);
    void this.#store(issued, scope, wallet, deviceKey).catch(() => undefined);
    return issued;
  }

  /** Issues and waits for the row: an owner session that is not stored works nowhere, so that failure is the caller's. */
  override async open(
    wallet: string,
    deviceKey: string,
    scope: WalletSessionScope = 'device',
  ): Promise<{ token: string; expiresAt: number }> {
    const issued = super.issue(wallet, deviceKey, scope);
    const stored = this.#store(issued, scope, wallet, deviceKey);
    // A device session not stored still works on this replica (logged); an owner session would nowhere.
    if (scope === 'owner') await stored;
    else await stored.catch(() => undefined);
    return issued;
  }

  override async owner(token: string): Promise<WalletSession | null> {
    if (token.length > 256) return null;
    // This replica's own writes first (a session issued here a moment ago); other replicas' are committed before their answer.
    await this.idle();
    const { rows } = await this.#db.query<{ wallet: string; device_key: string; expires_at: unknown }>(
      `SELECT wallet, device_key, expires_at FROM wallet_sessions WHERE token_hash = $1 AND scope = 'owner'`,
      [hash(token)],
    );
    const row = rows[0];
    if (row === undefined) return null;
    const expiresAt = toInt(row.expires_at);
    return expiresAt <= this.#clock.now() ? null : { scope: 'owner', wallet: row.wallet, deviceKey: row.device_key, expiresAt };
  }

  override async signOut(token: string): Promise<boolean> {
    if (token.length > 256) return false;
    await this.idle();
    await super.signOut(token);
    const { rows } = await this.#db.query(
      `DELETE FROM wallet_sessions WHERE token_hash = $1 AND scope = 'owner' AND expires_at > $2 RETURNING 1`,
      [hash(token), this.#clock.now()],
    );
    return rows.length > 0;
  }

  override async resolve(token: string, deviceKey: string): Promise<SessionBinding> {
    const here = await super.resolve(token, deviceKey);
    if (here.ok || token.length > 256) return here;
    const { rows } = await this.#db.query<{ wallet: string; expires_at: unknown }>(
      `SELECT wallet, expires_at FROM wallet_sessions WHERE token_hash = $1 AND scope = 'device' AND device_key = $2`,
      [hash(token), deviceKey],
    );
    const row = rows[0];
    return row === undefined || toInt(row.expires_at) <= this.#clock.now() ? UNKNOWN_SESSION : { ok: true, wallet: row.wallet };
  }

  /** Writes the session's row; the write is also tracked by {@link idle} and its failure logged. */
  #store(issued: { token: string; expiresAt: number }, scope: WalletSessionScope, wallet: string, deviceKey: string): Promise<void> {
    const insert = this.#db
      .query(
        `INSERT INTO wallet_sessions (token_hash, scope, wallet, device_key, expires_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (token_hash) DO NOTHING`,
        [hash(issued.token), scope, wallet, deviceKey, issued.expiresAt],
      )
      .then(() => undefined);
    const failed =
      scope === 'owner'
        ? 'storing an owner session failed (its proof is refused)'
        : 'storing a wallet session failed (it works on this replica only)';
    const write = insert.catch((err: unknown) => this.#log(failed, err));
    this.#writes.add(write);
    void write.finally(() => this.#writes.delete(write));
    return insert;
  }

  /** Deletes expired rows (the singleton's chore); how many. */
  async forgetExpired(): Promise<number> {
    const { rows } = await this.#db.query<{ n: unknown }>(
      `WITH gone AS (DELETE FROM wallet_sessions WHERE expires_at <= $1 RETURNING 1) SELECT count(*) AS n FROM gone`,
      [this.#clock.now()],
    );
    return toInt(rows[0]?.n ?? 0);
  }

  /** Resolves when every session issued so far is stored. */
  async idle(): Promise<void> {
    await Promise.all([...this.#writes]);
  }
}
