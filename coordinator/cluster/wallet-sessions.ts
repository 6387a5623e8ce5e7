/**
 * Wallet sessions every replica accepts: a device proves its wallet on one replica
 * (`POST /v1/wallet/proof`) and its worker's `hello` may reach another. Each token is kept in
 * this replica's memory as before and its SHA-256 in `wallet_sessions` (migration 009); a
 * `hello` with a token this replica did not issue is looked up there.
 *
 * Owner sessions (the fleet page's Bearer) stay per replica: their checks are synchronous, so
 * the fleet page must keep to the replica it signed in on (docs/operating.md, "Replicas").
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../deps.ts';
import { type SessionBinding, UNKNOWN_SESSION } from '../sessions/bindings.ts';
import type { SqlDb } from '../store/sql.ts';
import { toInt } from '../store/sql.ts';
import { WalletSessions, type WalletSessionScope } from '../wallets/wallet-sessions.ts';

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
    const write = this.#db
      .query(
        `INSERT INTO wallet_sessions (token_hash, scope, wallet, device_key, expires_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (token_hash) DO NOTHING`,
        [hash(issued.token), scope, wallet, deviceKey, issued.expiresAt],
      )
      .then(
        () => undefined,
        (err: unknown) => this.#log('storing a wallet session failed (it works on this replica only)', err),
      );
    this.#writes.add(write);
    void write.finally(() => this.#writes.delete(write));
    return issued;
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
