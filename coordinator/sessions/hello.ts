/**
 * Contributor authentication: the challenge nonce and the `hello` that signs it
 * (docs/protocol.md, steps 1–3).
 */
import { createHash } from 'node:crypto';
import { helloMessage } from '../../protocol/wire.ts';
import { randomId } from '../deps.ts';

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
