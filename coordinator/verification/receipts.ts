/**
 * Signed receipts for credited jobs: the coordinator's Ed25519 signature (WebCrypto) over the
 * receipt's canonical JSON (keys sorted, no spaces), after a domain tag so the signature can
 * never be replayed as another kind of message.
 */
import type { Receipt } from '../../protocol/answers.ts';
import type { Usage } from '../../protocol/jobs.ts';

const DOMAIN = 'spinneret-receipt-v1\n';

/** What the coordinator attests it credited (its schema is the one pages check receipts against). */
export type { Receipt };

/** A receipt and its signature, base64url (64 bytes). */
export interface SignedReceipt {
  readonly receipt: Receipt;
  readonly signature: string;
}

/** What {@link issueReceipt} needs. */
export interface ReceiptInput {
  readonly jobId: string;
  readonly contributorId: string;
  readonly wallet: string;
  readonly model: string;
  readonly usage: Usage;
  readonly amountNano: bigint;
  readonly at: number;
}

/** JSON with object keys sorted at every depth; throws on values JSON cannot carry exactly. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: ${value} has no JSON form.`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new TypeError(`canonicalJson: a ${typeof value} has no JSON form; convert it (bigint to a string) first.`);
}

/** The bytes a receipt's signature covers. */
export function receiptBytes(receipt: Receipt): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(DOMAIN + canonicalJson(receipt));
}

/** Signs a receipt with the coordinator's Ed25519 private key. */
export async function issueReceipt(input: ReceiptInput, privateKey: CryptoKey): Promise<SignedReceipt> {
  if (input.amountNano < 0n) throw new RangeError('amountNano must not be negative.');
  const receipt: Receipt = {
    v: 1,
    jobId: input.jobId,
    contributorId: input.contributorId,
    wallet: input.wallet,
    model: input.model,
    usage: { promptTokens: input.usage.promptTokens, completionTokens: input.usage.completionTokens },
    amountNano: input.amountNano.toString(),
    at: input.at,
  };
  const signature = await crypto.subtle.sign({ name: 'Ed25519' }, privateKey, receiptBytes(receipt));
  return { receipt, signature: Buffer.from(signature).toString('base64url') };
}

/**
 * True when `signature` (base64url) is the coordinator's over `receipt`. `publicKey` is a
 * CryptoKey or the raw 32 bytes. False for any malformed key or signature.
 */
export async function verifyReceipt(receipt: Receipt, signature: string, publicKey: CryptoKey | Uint8Array): Promise<boolean> {
  const sig = new Uint8Array(Buffer.from(signature, 'base64url'));
  if (sig.length !== 64) return false;
  try {
    const key =
      publicKey instanceof Uint8Array
        ? await crypto.subtle.importKey('raw', new Uint8Array(publicKey), { name: 'Ed25519' }, false, ['verify'])
        : publicKey;
    return await crypto.subtle.verify({ name: 'Ed25519' }, key, sig, receiptBytes(receipt));
  } catch {
    return false;
  }
}
