/**
 * `ton_proof` payloads every replica checks (docs/operating.md, "Replicas"): the contributor page
 * asks one replica for a payload and its wallet's proof may reach another. Each payload is a row
 * of `proof_payloads` (migration 010) keyed by its SHA-256, committed before the payload is
 * handed out; a proof uses it up with one conditional update, so it is single use across
 * replicas. The limits of the in-memory issuer hold across replicas too: unused, unexpired
 * payloads per caller address (kept as a hash), counted under a per-address transaction lock,
 * and payloads kept in all.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { SqlDb } from '../store/sql.ts';
import { toInt } from '../store/sql.ts';
import { PayloadDeviceMismatchError, PayloadExpiredError, PayloadReplayedError, PayloadUnknownError } from '../wallets/errors.ts';
import {
  deviceTag,
  type IssuedPayload,
  PayloadLimitError,
  type ProofPayloads,
  type ProofPayloadsOptions,
} from '../wallets/proof-payloads.ts';

const hash = (text: string): string => createHash('sha256').update(text).digest('base64url');
const NONCE_BYTES = 32;

export class SharedProofPayloads implements ProofPayloads {
  readonly #db: SqlDb;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #perIp: number;
  readonly #total: number;

  constructor(options: ProofPayloadsOptions & { db: SqlDb; clock: Clock }) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs ?? 15 * 60_000;
    this.#perIp = options.perIp ?? 32;
    this.#total = options.total ?? 100_000;
  }

  async issuePayload(deviceKey: string, holder = 'unknown'): Promise<IssuedPayload> {
    const now = this.#clock.now();
    const holderHash = hash(holder);
    const payload = Buffer.concat([randomBytes(NONCE_BYTES), deviceTag(deviceKey)]).toString('base64url');
    const expiresAt = now + this.#ttlMs;
    await this.#db.transaction(async (tx) => {
      // One caller's requests on several replicas at once are counted one after another.
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))', ['spinneret.proof-payloads', holderHash]);
      const held = await tx.query<{ n: unknown }>(
        'SELECT count(*) AS n FROM proof_payloads WHERE holder_hash = $1 AND NOT used AND expires_at > $2',
        [holderHash, now],
      );
      if (toInt(held.rows[0]?.n ?? 0) >= this.#perIp) throw new PayloadLimitError('holder');
      // Kept one more ttl after expiry (as in memory), so a late proof reads "expired", not "unknown".
      const kept = await tx.query<{ n: unknown }>('SELECT count(*) AS n FROM proof_payloads WHERE expires_at > $1', [now - this.#ttlMs]);
      if (toInt(kept.rows[0]?.n ?? 0) >= this.#total) throw new PayloadLimitError('total');
      await tx.query('INSERT INTO proof_payloads (payload_hash, device_key, holder_hash, expires_at) VALUES ($1, $2, $3, $4)', [
        hash(payload),
        deviceKey,
        holderHash,
        expiresAt,
      ]);
    });
    return { payload, expiresAt };
  }

  async check(payload: string, deviceKey: string): Promise<void> {
    if (payload.length > 200) throw new PayloadUnknownError();
    const { rows } = await this.#db.query<{ device_key: string; expires_at: unknown; used: boolean }>(
      'SELECT device_key, expires_at, used FROM proof_payloads WHERE payload_hash = $1',
      [hash(payload)],
    );
    const row = rows[0];
    if (row === undefined) throw new PayloadUnknownError();
    if (row.used) throw new PayloadReplayedError();
    if (this.#clock.now() >= toInt(row.expires_at)) throw new PayloadExpiredError();
    if (row.device_key !== deviceKey) throw new PayloadDeviceMismatchError();
  }

  async consume(payload: string, deviceKey: string): Promise<void> {
    if (payload.length > 200) throw new PayloadUnknownError();
    const { rows } = await this.#db.query(
      'UPDATE proof_payloads SET used = true WHERE payload_hash = $1 AND NOT used AND device_key = $2 AND expires_at > $3 RETURNING 1',
      [hash(payload), deviceKey, this.#clock.now()],
    );
    if (rows.length > 0) return;
    await this.check(payload, deviceKey);
    // It passed the check a moment ago, so another replica used it in between.
    throw new PayloadReplayedError();
  }

  /** Deletes payloads a proof can no longer use (the singleton's chore); how many. */
  async forgetExpired(): Promise<number> {
    const { rows } = await this.#db.query<{ n: unknown }>(
      'WITH gone AS (DELETE FROM proof_payloads WHERE expires_at <= $1 RETURNING 1) SELECT count(*) AS n FROM gone',
      [this.#clock.now() - this.#ttlMs],
    );
    return toInt(rows[0]?.n ?? 0);
  }
}
