/**
 * Contributor authentication: the challenge nonce and the `hello` that signs it
 * (docs/protocol.md, steps 1–3).
 */
import { createHash } from 'node:crypto';
import { helloMessage } from '../../protocol/wire.ts';
import { randomId } from '../ids.ts';

/** How long a challenge nonce can be answered, ms. */
export const NONCE_TTL_MS = 60_000;

/** Issued challenge nonces: each can be used once, within {@link NONCE_TTL_MS}. */
export class NonceBook {
  readonly #expiry = new Map<string, number>();

  issue(now: number): string {
    const nonce = randomId(32);
    this.#expiry.set(nonce, now + NONCE_TTL_MS);
    return nonce;
  }

  /** True once per issued, unexpired nonce; false for unknown, expired or used ones. */
  consume(nonce: string, now: number): boolean {
    const expiresAt = this.#expiry.get(nonce);
    this.#expiry.delete(nonce);
    return expiresAt !== undefined && now <= expiresAt;
  }

  /** Forgets expired nonces. */
  sweep(now: number): void {
    for (const [nonce, expiresAt] of this.#expiry) if (now > expiresAt) this.#expiry.delete(nonce);
  }
}

/** The contributor id of an identity key: base64url SHA-256 of its raw bytes, first 22 characters. */
export function contributorIdOf(identityKey: string): string {
  return createHash('sha256').update(Buffer.from(identityKey, 'base64url')).digest('base64url').slice(0, 22);
}

/** Checks the Ed25519 signature over {@link helloMessage}; false for any malformed key or signature. */
export async function verifyHello(hello: { nonce: string; identityKey: string; hpkeKey: string; signature: string }): Promise<boolean> {
  const key = new Uint8Array(Buffer.from(hello.identityKey, 'base64url'));
  const signature = new Uint8Array(Buffer.from(hello.signature, 'base64url'));
  if (key.length !== 32 || signature.length !== 64) return false;
  try {
    const publicKey = await crypto.subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
    return await crypto.subtle.verify(
      { name: 'Ed25519' },
      publicKey,
      signature,
      new Uint8Array(helloMessage(hello.nonce, hello.identityKey, hello.hpkeKey)),
    );
  } catch {
    return false;
  }
}

/**
 * Whether `hpkeKey` is an X25519 public key a job can be sealed to: 32 bytes that give a
 * non-zero shared secret. A low-order point gives the all-zero secret (RFC 7748 §6.1), so a
 * payload sealed to it could be read by anyone; such a key, or a malformed one, is refused
 * at `hello` instead of costing a requester its job.
 */
export async function usableHpkeKey(hpkeKey: string): Promise<boolean> {
  const raw = new Uint8Array(Buffer.from(hpkeKey, 'base64url'));
  if (raw.length !== 32) return false;
  try {
    const pub = await crypto.subtle.importKey('raw', raw, { name: 'X25519' }, false, []);
    const ours = await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
    const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: pub }, ours.privateKey, 256));
    return shared.some((b) => b !== 0);
  } catch {
    // Node refuses a low-order point outright.
    return false;
  }
}
