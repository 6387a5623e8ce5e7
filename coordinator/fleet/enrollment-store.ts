/**
 * {@link EnrollmentStore} on the coordinator's database (migration 005_fleet), so tokens and
 * the devices bound to them survive a restart. Runs unchanged on PGlite and PostgreSQL.
 */
import { toInt, toIntOrNull, type SqlDb } from '../store/sql.ts';
import type { EnrollmentScope, EnrollmentStore, EnrollmentToken } from '../wallets/enrollment.ts';

interface TokenRow {
  id: string;
  owner: string;
  label: string;
  scope: EnrollmentScope;
  created_at: unknown;
  expires_at: unknown;
  max_devices: unknown;
  revoked_at: unknown;
  devices: string[] | null;
}

const SELECT_TOKENS = `SELECT t.id, t.owner, t.label, t.scope, t.created_at, t.expires_at, t.max_devices, t.revoked_at,
  (SELECT array_agg(d.device_key ORDER BY d.bound_at, d.device_key) FROM enrollment_devices d WHERE d.token_id = t.id) AS devices
FROM enrollment_tokens t`;

function tokenFromRow(row: TokenRow): EnrollmentToken {
  return {
    id: row.id,
    owner: row.owner,
    label: row.label,
    scope: row.scope,
    createdAt: toInt(row.created_at),
    expiresAt: toInt(row.expires_at),
    maxDevices: toInt(row.max_devices),
    revokedAt: toIntOrNull(row.revoked_at),
    devices: row.devices ?? [],
  };
}

export class SqlEnrollmentStore implements EnrollmentStore {
  readonly #db: SqlDb;
  readonly #now: () => number;

  constructor(db: SqlDb, now: () => number = Date.now) {
    this.#db = db;
    this.#now = now;
  }

  async insert(token: EnrollmentToken, secretHash: string): Promise<void> {
    await this.#db.query(
      `INSERT INTO enrollment_tokens (id, owner, label, scope, secret_sha256, created_at, expires_at, max_devices, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [token.id, token.owner, token.label, token.scope, secretHash, token.createdAt, token.expiresAt, token.maxDevices, token.revokedAt],
    );
  }

  async findBySecretHash(secretHash: string): Promise<EnrollmentToken | null> {
    const { rows } = await this.#db.query<TokenRow>(`${SELECT_TOKENS} WHERE t.secret_sha256 = $1`, [secretHash]);
    return rows[0] === undefined ? null : tokenFromRow(rows[0]);
  }

  async findById(id: string): Promise<EnrollmentToken | null> {
    const { rows } = await this.#db.query<TokenRow>(`${SELECT_TOKENS} WHERE t.id = $1`, [id]);
    return rows[0] === undefined ? null : tokenFromRow(rows[0]);
  }

  bindDevice(id: string, deviceKey: string): Promise<boolean> {
    // The token row's lock serialises devices redeeming the same token at once.
    return this.#db.transaction(async (tx) => {
      const token = await tx.query<{ max_devices: unknown }>('SELECT max_devices FROM enrollment_tokens WHERE id = $1 FOR UPDATE', [id]);
      const max = token.rows[0]?.max_devices;
      if (max === undefined) return false;
      const bound = await tx.query<{ device_key: string }>('SELECT device_key FROM enrollment_devices WHERE token_id = $1', [id]);
      if (bound.rows.some((r) => r.device_key === deviceKey)) return true;
      if (bound.rows.length >= toInt(max)) return false;
      await tx.query('INSERT INTO enrollment_devices (token_id, device_key, bound_at) VALUES ($1, $2, $3)', [id, deviceKey, this.#now()]);
      return true;
    });
  }

  async revoke(id: string, owner: string, at: number): Promise<boolean> {
    const { rows } = await this.#db.query<{ id: string }>(
      'UPDATE enrollment_tokens SET revoked_at = $3 WHERE id = $1 AND owner = $2 AND revoked_at IS NULL RETURNING id',
      [id, owner, at],
    );
    return rows.length > 0;
  }

  async listByOwner(owner: string): Promise<EnrollmentToken[]> {
    const { rows } = await this.#db.query<TokenRow>(`${SELECT_TOKENS} WHERE t.owner = $1 ORDER BY t.created_at, t.id`, [owner]);
    return rows.map(tokenFromRow);
  }
}
