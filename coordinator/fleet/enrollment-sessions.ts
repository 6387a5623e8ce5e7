/**
 * Enrollment sessions: what `POST /v1/enroll` gives a kiosk or lab machine, which its worker
 * sends in `hello.session` like a wallet session. Bound to (owner wallet, device key, label)
 * and kept in the database, so enrolled machines keep earning across coordinator restarts.
 * A revoked token ends its sessions at once: the devices stop earning for the owner, and
 * their next hello is told why.
 */
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../clock.ts';
import { sha256Hex } from '../ids.ts';
import type { SessionBinding, SessionResolver } from '../sessions/bindings.ts';
import { contributorIdOf } from '../sessions/hello.ts';
import { toInt, type SqlDb } from '../store/sql.ts';
import { UNKNOWN_SESSION } from '../sessions/bindings.ts';

/** How long an enrollment session lasts unless renewed by enrolling again, ms: 30 days. */
export const ENROLLMENT_SESSION_TTL_MS = 30 * 24 * 60 * 60_000;

/** What {@link EnrollmentSessions.issue} binds. */
export interface EnrolledDevice {
  tokenId: string;
  /** The device's Ed25519 identity key, base64url. */
  deviceKey: string;
  label: string;
}

export class EnrollmentSessions implements SessionResolver {
  readonly #db: SqlDb;
  readonly #clock: Clock;
  readonly #ttlMs: number;

  constructor(db: SqlDb, options: { clock?: Clock; ttlMs?: number } = {}) {
    this.#db = db;
    this.#clock = options.clock ?? systemClock;
    this.#ttlMs = options.ttlMs ?? ENROLLMENT_SESSION_TTL_MS;
  }

  /** A new session for the device (replacing its previous one); the token is returned once. */
  async issue(device: EnrolledDevice): Promise<{ session: string; expiresAt: number; contributorId: string }> {
    const session = randomBytes(32).toString('base64url');
    const now = this.#clock.now();
    const expiresAt = now + this.#ttlMs;
    const contributorId = contributorIdOf(device.deviceKey);
    await this.#db.query(
      `INSERT INTO enrollment_sessions (contributor_id, token_id, device_key, label, session_sha256, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (contributor_id) DO UPDATE SET token_id = EXCLUDED.token_id, device_key = EXCLUDED.device_key,
         label = EXCLUDED.label, session_sha256 = EXCLUDED.session_sha256, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at`,
      [contributorId, device.tokenId, device.deviceKey, device.label, sha256Hex(session), now, expiresAt],
    );
    return { session, expiresAt, contributorId };
  }

  async resolve(token: string, deviceKey: string): Promise<SessionBinding> {
    const { rows } = await this.#db.query<{ device_key: string; label: string; expires_at: unknown; owner: string; revoked_at: unknown }>(
      `SELECT s.device_key, s.label, s.expires_at, t.owner, t.revoked_at
       FROM enrollment_sessions s JOIN enrollment_tokens t ON t.id = s.token_id WHERE s.session_sha256 = $1`,
      [sha256Hex(token)],
    );
    const row = rows[0];
    if (row === undefined || row.device_key !== deviceKey) return UNKNOWN_SESSION;
    if (row.revoked_at !== null) {
      return {
        ok: false,
        reason: 'revoked',
        endedWallet: row.owner,
        message: 'The owner revoked this device’s enrollment; it no longer earns for them. Ask the owner for a new enrollment token.',
      };
    }
    if (this.#clock.now() >= toInt(row.expires_at)) {
      return {
        ok: false,
        reason: 'expired',
        endedWallet: row.owner,
        message:
          'This device’s enrollment session has expired; it no longer earns for its owner. Open the kiosk address again to re-enroll.',
      };
    }
    return { ok: true, wallet: row.owner, label: row.label };
  }

  /**
   * Ends the devices of a revoked token now: they stop earning for `owner` (their recorded
   * wallet is cleared). Returns their contributor ids.
   */
  async endToken(tokenId: string, owner: string): Promise<string[]> {
    const { rows } = await this.#db.query<{ id: string }>(
      `UPDATE contributors SET wallet = NULL
       WHERE wallet = $2 AND id IN (SELECT contributor_id FROM enrollment_sessions WHERE token_id = $1) RETURNING id`,
      [tokenId, owner],
    );
    return rows.map((r) => r.id);
  }
}
