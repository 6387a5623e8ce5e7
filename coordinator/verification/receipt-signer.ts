/**
 * The receipt signing key of a running coordinator: given, or loaded from its database (made
 * on first start, sealed under the KEK when one is set), and the receipts it signs.
 */
import { issueReceipt, type ReceiptInput, type SignedReceipt } from './receipts.ts';
import { isSealed, openKey, sealKey } from './receipt-key.ts';
import type { SqlDb } from '../store/sql.ts';
import { replaceKey, type VerificationStore } from './verification-store.ts';

const KEY_NAME = 'receipts';

export class ReceiptSigner {
  #keys: { pair: CryptoKeyPair; raw: string } | null = null;
  readonly #db: SqlDb;
  readonly #store: VerificationStore;
  readonly #given: CryptoKeyPair | undefined;
  readonly #kek: Uint8Array | null;

  /** `given`: the key to use instead of the stored one; `kek`: what the stored key is sealed under (null: stored plain). */
  constructor(db: SqlDb, store: VerificationStore, given: CryptoKeyPair | undefined, kek: Uint8Array | null) {
    this.#db = db;
    this.#store = store;
    this.#given = given;
    this.#kek = kek;
  }

  /** Loads (or makes and stores) the key; call once before signing. */
  async load(now: number): Promise<void> {
    if (this.#given !== undefined) {
      const raw = new Uint8Array(await crypto.subtle.exportKey('raw', this.#given.publicKey));
      this.#keys = { pair: this.#given, raw: Buffer.from(raw).toString('base64url') };
      return;
    }
    const kek = this.#kek;
    const stored = await this.#store.key(
      KEY_NAME,
      async () => {
        const made = await freshKey();
        return kek === null ? made : { pkcs8: await sealKey(made.pkcs8, made.raw, kek), raw: made.raw };
      },
      now,
    );
    const pkcs8 = await openKey(stored.pkcs8, stored.raw, kek);
    // A key stored plain before a KEK was set is sealed now.
    if (kek !== null && !isSealed(stored.pkcs8)) await replaceKey(this.#db, KEY_NAME, await sealKey(pkcs8, stored.raw, kek));
    const privateKey = await crypto.subtle.importKey('pkcs8', Buffer.from(pkcs8, 'base64url'), { name: 'Ed25519' }, false, ['sign']);
    const publicKey = await crypto.subtle.importKey('raw', Buffer.from(stored.raw, 'base64url'), { name: 'Ed25519' }, true, ['verify']);
    this.#keys = { pair: { privateKey, publicKey }, raw: stored.raw };
  }

  /** Signs and stores a receipt. */
  async sign(input: ReceiptInput): Promise<SignedReceipt> {
    if (this.#keys === null) throw new Error('Verification is not started; call start() before crediting jobs.');
    const signed = await issueReceipt(input, this.#keys.pair.privateKey);
    await this.#store.addReceipt(signed);
    return signed;
  }

  /** The public key receipts verify with, raw Ed25519 in base64url. */
  publicKey(): string {
    if (this.#keys === null) throw new Error('Verification is not started; call start() first.');
    return this.#keys.raw;
  }
}

async function freshKey(): Promise<{ pkcs8: string; raw: string }> {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  return { pkcs8: Buffer.from(pkcs8).toString('base64url'), raw: Buffer.from(raw).toString('base64url') };
}
