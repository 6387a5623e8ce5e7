/**
 * The receipt signing key at rest: its PKCS#8 bytes are sealed with AES-256-GCM under a key
 * encryption key (KEK) that lives outside the database, from `SPINNERET_RECEIPT_KEK`
 * (32 bytes, base64url or hex) or the file `SPINNERET_RECEIPT_KEK_FILE` names. A database
 * dump alone then cannot sign receipts.
 */
import { readFileSync } from 'node:fs';

/** Prefix of a sealed key in `verification_keys.private_pkcs8`. */
const SEALED = 'kek1:';

/** The KEK is missing, malformed, or does not open the stored key. */
export class ReceiptKeyError extends Error {
  override readonly name = 'ReceiptKeyError';
}

/** Reads the KEK from the environment or its file; null when neither is set. */
export function receiptKekFromEnv(env: Record<string, string | undefined> = process.env): Uint8Array | null {
  const file = env['SPINNERET_RECEIPT_KEK_FILE'];
  const text = env['SPINNERET_RECEIPT_KEK'] ?? (file === undefined || file === '' ? undefined : readKekFile(file));
  if (text === undefined || text === '') return null;
  return parseKek(text.trim());
}

function readKekFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ReceiptKeyError(`SPINNERET_RECEIPT_KEK_FILE names ${path}, which cannot be read (${String(err)}).`);
  }
}

/** 32 bytes as 64 hex digits or 43 base64url characters. */
export function parseKek(text: string): Uint8Array {
  const bytes = /^[0-9a-fA-F]{64}$/.test(text)
    ? Buffer.from(text, 'hex')
    : /^[A-Za-z0-9_-]{43}$/.test(text)
      ? Buffer.from(text, 'base64url')
      : null;
  if (bytes === null || bytes.length !== 32) {
    throw new ReceiptKeyError(
      'The receipt KEK must be 32 bytes written as 64 hex digits or 43 base64url characters; make one with `openssl rand -hex 32`.',
    );
  }
  return new Uint8Array(bytes);
}

async function aesKey(kek: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', new Uint8Array(kek), { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

/** Whether a stored private key is sealed. */
export function isSealed(stored: string): boolean {
  return stored.startsWith(SEALED);
}

/** Seals PKCS#8 (base64url) under `kek`; the public key is the additional data, so a sealed key cannot be swapped. */
export async function sealKey(pkcs8: string, publicRaw: string, kek: Uint8Array): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(publicRaw) },
    await aesKey(kek),
    Buffer.from(pkcs8, 'base64url'),
  );
  return `${SEALED}${Buffer.from(iv).toString('base64url')}.${Buffer.from(ct).toString('base64url')}`;
}

/** Opens a stored private key: sealed ones need `kek`, plain ones (from before) are returned as they are. */
export async function openKey(stored: string, publicRaw: string, kek: Uint8Array | null): Promise<string> {
  if (!isSealed(stored)) return stored;
  if (kek === null) {
    throw new ReceiptKeyError(
      'The receipt signing key is stored encrypted; set SPINNERET_RECEIPT_KEK or SPINNERET_RECEIPT_KEK_FILE to the key it was sealed with.',
    );
  }
  const [iv, ct] = stored.slice(SEALED.length).split('.');
  try {
    const plain = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: Buffer.from(iv ?? '', 'base64url'), additionalData: new TextEncoder().encode(publicRaw) },
      await aesKey(kek),
      Buffer.from(ct ?? '', 'base64url'),
    );
    return Buffer.from(plain).toString('base64url');
  } catch {
    throw new ReceiptKeyError('The receipt KEK does not open the stored receipt signing key; set the KEK it was sealed with.');
  }
}
