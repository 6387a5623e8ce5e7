/**
 * Enrollment tokens: an owner whose wallet has proven itself lets kiosk or lab machines
 * contribute for that wallet without a wallet prompt on each machine.
 *
 * The secret is shown once; only its SHA-256 is stored. Storage sits behind
 * {@link EnrollmentStore} so the SQL store can implement it; {@link MemoryEnrollmentStore} is
 * the in-memory one for tests and single-process runs.
 */
import { randomBytes } from 'node:crypto';
import { Address } from '@ton/core';
import type { EnrollmentScope } from '../../protocol/answers.ts';
import { InvalidInputError } from '../../protocol/errors.ts';
import { systemClock, type Clock } from '../clock.ts';
import { randomId, sha256Hex } from '../ids.ts';
import {
  EnrollmentDeviceLimitError,
  EnrollmentScopeError,
  EnrollmentTokenExpiredError,
  EnrollmentTokenRevokedError,
  EnrollmentTokenUnknownError,
} from './errors.ts';

/**
 * What a token allows: `contribute` enrolls machines that earn for the owner and obey the
 * owner's remote controls; `monitor` only reads the owner's fleet (a lab's status screen).
 */
export type { EnrollmentScope };

/** A token as stored, without its secret. */
export interface EnrollmentToken {
  id: string;
  /** Owner wallet, raw form ("0:hex"). */
  owner: string;
  /** The owner's name for it, e.g. "Lab 3". */
  label: string;
  scope: EnrollmentScope;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Milliseconds since the epoch; refused from this moment on. */
  expiresAt: number;
  /** How many distinct device keys may redeem it (default 1). */
  maxDevices: number;
  /** Milliseconds since the epoch, or null while in force. */
  revokedAt: number | null;
  /** Device keys (base64url) bound so far, in order of first use. */
  devices: readonly string[];
}

/** Where tokens live. Every method must be atomic on its own (a SQL store: one statement each). */
export interface EnrollmentStore {
  insert(token: EnrollmentToken, secretHash: string): Promise<void>;
  findBySecretHash(secretHash: string): Promise<EnrollmentToken | null>;
  /** Adds `deviceKey` unless the token already holds `maxDevices` devices; true when bound (or already bound). */
  bindDevice(id: string, deviceKey: string): Promise<boolean>;
  /** Sets `revokedAt` if `owner` owns token `id` and it is not revoked yet; true when it did. */
  revoke(id: string, owner: string, at: number): Promise<boolean>;
  listByOwner(owner: string): Promise<EnrollmentToken[]>;
}

/** What {@link Enrollment.issueToken} takes. */
export interface IssueTokenRequest {
  /** A wallet that has just passed {@link verifyTonProof}. */
  owner: Address;
  label: string;
  scope: EnrollmentScope;
  /** Milliseconds since the epoch; must be in the future. */
  expiresAt: number;
  /** Default 1. */
  maxDevices?: number;
}

/** A device's enrollment: whose wallet it earns for. */
export interface Redemption {
  owner: Address;
  tokenId: string;
  /** The token's label. */
  label: string;
  scope: EnrollmentScope;
}

/** Issues, redeems, revokes and lists enrollment tokens. */
export interface Enrollment {
  /** Returns the secret to show the owner once, and the token's id for revoking it. */
  issueToken(request: IssueTokenRequest): Promise<{ id: string; secret: string }>;
  /**
   * The owner the device earns for; binds `deviceKey` to the token on its first use. `scope`
   * is what the caller needs, default `contribute`.
   */
  redeem(secret: string, deviceKey: string, scope?: EnrollmentScope): Promise<Redemption>;
  /** The live token behind `secret` for a read-only use (no device bound); throws like {@link redeem}. */
  check(secret: string, scope: EnrollmentScope): Promise<EnrollmentToken>;
  /** Revokes token `id` of `owner`; false when the owner has no such token in force. */
  revoke(id: string, owner: Address): Promise<boolean>;
  listByOwner(owner: Address): Promise<EnrollmentToken[]>;
}

/** Options of {@link createEnrollment}. */
export interface EnrollmentOptions {
  store?: EnrollmentStore;
  clock?: Clock;
}

const MAX_LABEL_LENGTH = 100;

/** The enrollment service over `store` (in memory by default). */
export function createEnrollment(options: EnrollmentOptions = {}): Enrollment {
  const store = options.store ?? new MemoryEnrollmentStore();
  const clock = options.clock ?? systemClock;

  return {
    async issueToken(request) {
      const now = clock.now();
      const maxDevices = request.maxDevices ?? 1;
      if (!Number.isSafeInteger(maxDevices) || maxDevices < 1)
        throw new InvalidInputError('maxDevices must be a whole number of at least 1.');
      if (!(request.expiresAt > now)) throw new InvalidInputError('The enrollment token must expire in the future.');
      if (request.label.length > MAX_LABEL_LENGTH) throw new InvalidInputError(`The label is longer than ${MAX_LABEL_LENGTH} characters.`);
      const secret = randomBytes(32).toString('base64url');
      const token: EnrollmentToken = {
        id: randomId(),
        owner: request.owner.toRawString(),
        label: request.label,
        scope: request.scope,
        createdAt: now,
        expiresAt: request.expiresAt,
        maxDevices,
        revokedAt: null,
        devices: [],
      };
      await store.insert(token, sha256Hex(secret));
      return { id: token.id, secret };
    },

    async redeem(secret, deviceKey, scope = 'contribute') {
      const token = await store.findBySecretHash(sha256Hex(secret));
      if (token === null) throw new EnrollmentTokenUnknownError();
      if (token.revokedAt !== null) throw new EnrollmentTokenRevokedError(token.id);
      if (token.scope !== scope) throw new EnrollmentScopeError(token.id, token.scope, scope);
      if (clock.now() >= token.expiresAt) throw new EnrollmentTokenExpiredError(token.id);
      if (!(await store.bindDevice(token.id, deviceKey))) throw new EnrollmentDeviceLimitError(token.id, token.maxDevices);
      return { owner: Address.parseRaw(token.owner), tokenId: token.id, label: token.label, scope: token.scope };
    },

    async check(secret, scope) {
      const token = await store.findBySecretHash(sha256Hex(secret));
      if (token === null) throw new EnrollmentTokenUnknownError();
      if (token.revokedAt !== null) throw new EnrollmentTokenRevokedError(token.id);
      if (token.scope !== scope) throw new EnrollmentScopeError(token.id, token.scope, scope);
      if (clock.now() >= token.expiresAt) throw new EnrollmentTokenExpiredError(token.id);
      return token;
    },

    revoke(id, owner) {
      return store.revoke(id, owner.toRawString(), clock.now());
    },

    listByOwner(owner) {
      return store.listByOwner(owner.toRawString());
    },
  };
}

/** {@link EnrollmentStore} in a Map; lost on restart. */
export class MemoryEnrollmentStore implements EnrollmentStore {
  private readonly byId = new Map<string, EnrollmentToken>();
  private readonly idBySecretHash = new Map<string, string>();

  async insert(token: EnrollmentToken, secretHash: string): Promise<void> {
    this.byId.set(token.id, { ...token, devices: [...token.devices] });
    this.idBySecretHash.set(secretHash, token.id);
  }

  async findBySecretHash(secretHash: string): Promise<EnrollmentToken | null> {
    const id = this.idBySecretHash.get(secretHash);
    return id === undefined ? null : this.copy(id);
  }

  async bindDevice(id: string, deviceKey: string): Promise<boolean> {
    const token = this.byId.get(id);
    if (token === undefined) return false;
    if (token.devices.includes(deviceKey)) return true;
    if (token.devices.length >= token.maxDevices) return false;
    this.byId.set(id, { ...token, devices: [...token.devices, deviceKey] });
    return true;
  }

  async revoke(id: string, owner: string, at: number): Promise<boolean> {
    const token = this.byId.get(id);
    if (token === undefined || token.owner !== owner || token.revokedAt !== null) return false;
    this.byId.set(id, { ...token, revokedAt: at });
    return true;
  }

  async listByOwner(owner: string): Promise<EnrollmentToken[]> {
    return [...this.byId.values()].filter((t) => t.owner === owner).map((t) => ({ ...t, devices: [...t.devices] }));
  }

  private copy(id: string): EnrollmentToken | null {
    const token = this.byId.get(id);
    return token === undefined ? null : { ...token, devices: [...token.devices] };
  }
}
