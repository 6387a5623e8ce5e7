/**
 * The nonces the coordinator hands out as TON Connect `ton_proof` payloads.
 *
 * A payload is base64url(32 random bytes ‖ first 16 bytes of sha256(device key)), so the
 * wallet's signature covers the device it enrolls. The coordinator also remembers each
 * payload (in memory), which makes it single use and lets it tell "expired" and "replayed"
 * apart from "never issued".
 */
import { createHash, randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../clock.ts';
import { PayloadDeviceMismatchError, PayloadExpiredError, PayloadReplayedError, PayloadUnknownError } from './errors.ts';

/** A payload to put in the TON Connect `tonProof` request. */
export interface IssuedPayload {
  /** base64url, 64 characters. */
  payload: string;
  /** Milliseconds since the epoch; a proof must be verified before this. */
  expiresAt: number;
}

/**
 * Issues payloads and checks them off; what {@link verifyTonProof} needs. This process's own
 * ({@link createProofPayloads}) answers at once; replicas' (coordinator/cluster/proof-payloads.ts)
 * from the database, so a payload issued by one is checked by any.
 */
export interface ProofPayloads {
  /**
   * A fresh payload bound to `deviceKey` (the device's Ed25519 public key, base64url), asked for
   * by `holder` (the caller's IP address). Throws {@link PayloadLimitError} when the holder, or
   * everyone together, already holds the limit of unused payloads.
   */
  issuePayload(deviceKey: string, holder?: string): IssuedPayload | Promise<IssuedPayload>;
  /** Throws the payload's refusal, without using it up. */
  check(payload: string, deviceKey: string): void | Promise<void>;
  /** Like {@link check}, then marks the payload used; call only once the whole proof verified. */
  consume(payload: string, deviceKey: string): void | Promise<void>;
}

/** The in-memory payloads: every answer at once. */
export interface MemoryProofPayloads extends ProofPayloads {
  issuePayload(deviceKey: string, holder?: string): IssuedPayload;
  check(payload: string, deviceKey: string): void;
  consume(payload: string, deviceKey: string): void;
}

/** Options of {@link createProofPayloads}. */
export interface ProofPayloadsOptions {
  clock?: Clock;
  /** How long a payload stays valid, in milliseconds (default 15 minutes). */
  ttlMs?: number;
  /** Unused, unexpired payloads one holder may have at once (default 32). */
  perIp?: number;
  /** Payloads kept in all (default 100,000). */
  total?: number;
}

/** Too many payloads asked for and not used: by this caller, or by everyone. */
export class PayloadLimitError extends Error {
  constructor(readonly scope: 'holder' | 'total') {
    super(
      scope === 'holder'
        ? 'Too many unused ton_proof payloads for this address; use one, or wait for them to expire.'
        : 'Too many ton_proof payloads are outstanding; try again in a few minutes.',
    );
    this.name = 'PayloadLimitError';
  }
}

interface Entry {
  deviceKey: string;
  expiresAt: number;
  used: boolean;
  holder: string;
}

const NONCE_BYTES = 32;
const DEVICE_TAG_BYTES = 16;

/** The in-memory payload issuer. One per coordinator process. */
export function createProofPayloads(options: ProofPayloadsOptions = {}): MemoryProofPayloads {
  const clock = options.clock ?? systemClock;
  const ttlMs = options.ttlMs ?? 15 * 60_000;
  // Insertion order is expiry order (fixed ttl), so forgetting stops at the first live entry.
  const entries = new Map<string, Entry>();
  const perIp = options.perIp ?? 32;
  const total = options.total ?? 100_000;
  /** Each holder's payloads, pruned of used and expired ones when it asks again. */
  const byHolder = new Map<string, Set<string>>();

  function forgetOld(now: number): void {
    for (const [payload, entry] of entries) {
      // Kept one more ttl after expiry so a late proof reads "expired", not "unknown".
      if (entry.expiresAt + ttlMs > now) break;
      entries.delete(payload);
      const held = byHolder.get(entry.holder);
      held?.delete(payload);
      if (held?.size === 0) byHolder.delete(entry.holder);
    }
  }

  /** Unused, unexpired payloads of `holder` (pruning the rest from its set). */
  function live(holder: string, now: number): Set<string> {
    const held = byHolder.get(holder) ?? new Set<string>();
    for (const payload of held) {
      const entry = entries.get(payload);
      if (entry === undefined || entry.used || entry.expiresAt <= now) held.delete(payload);
    }
    byHolder.set(holder, held);
    return held;
  }

  function find(payload: string, deviceKey: string): Entry {
    const entry = entries.get(payload);
    if (entry === undefined) throw new PayloadUnknownError();
    if (entry.used) throw new PayloadReplayedError();
    if (clock.now() >= entry.expiresAt) throw new PayloadExpiredError();
    if (entry.deviceKey !== deviceKey) throw new PayloadDeviceMismatchError();
    return entry;
  }

  return {
    issuePayload(deviceKey, holder = 'unknown') {
      const now = clock.now();
      forgetOld(now);
      const held = live(holder, now);
      if (held.size >= perIp) throw new PayloadLimitError('holder');
      if (entries.size >= total) throw new PayloadLimitError('total');
      const bytes = Buffer.concat([randomBytes(NONCE_BYTES), deviceTag(deviceKey)]);
      const payload = bytes.toString('base64url');
      const expiresAt = now + ttlMs;
      entries.set(payload, { deviceKey, expiresAt, used: false, holder });
      held.add(payload);
      return { payload, expiresAt };
    },
    check(payload, deviceKey) {
      find(payload, deviceKey);
    },
    consume(payload, deviceKey) {
      find(payload, deviceKey).used = true;
    },
  };
}

/** The part of a payload that names the device: the first 16 bytes of sha256(device key). */
export function deviceTag(deviceKey: string): Buffer {
  return createHash('sha256').update(deviceKey).digest().subarray(0, DEVICE_TAG_BYTES);
}
