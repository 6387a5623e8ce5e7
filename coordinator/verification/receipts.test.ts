import { describe, expect, it } from 'vitest';
import { canonicalJson, issueReceipt, verifyReceipt } from './receipts.ts';

const input = {
  jobId: 'job-1',
  contributorId: 'c1',
  wallet: 'UQA-wallet',
  model: 'm',
  usage: { promptTokens: 10, completionTokens: 5 },
  amountNano: 123_456_789_012_345_678n,
  at: 1_700_000_000_000,
};

async function keys(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
}

describe('receipts', () => {
  it('writes canonical JSON with sorted keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 'x' }], c: null }, u: undefined })).toBe(
      '{"a":{"c":null,"d":[2,{"e":"x","f":1}]},"b":1}',
    );
    expect(() => canonicalJson({ n: 1n })).toThrow(/bigint/);
    expect(() => canonicalJson(Number.NaN)).toThrow(TypeError);
  });

  it('signs a receipt that verifies with the CryptoKey and with the raw public key', async () => {
    const pair = await keys();
    const { receipt, signature } = await issueReceipt(input, pair.privateKey);
    expect(receipt.amountNano).toBe('123456789012345678');
    expect(await verifyReceipt(receipt, signature, pair.publicKey)).toBe(true);
    const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
    expect(await verifyReceipt(receipt, signature, raw)).toBe(true);
    // A JSON round trip (key order may change in transit) still verifies.
    expect(await verifyReceipt(JSON.parse(JSON.stringify(receipt)) as typeof receipt, signature, pair.publicKey)).toBe(true);
  });

  it('rejects a changed receipt, another key, and malformed signatures', async () => {
    const pair = await keys();
    const { receipt, signature } = await issueReceipt(input, pair.privateKey);
    expect(await verifyReceipt({ ...receipt, amountNano: '123456789012345679' }, signature, pair.publicKey)).toBe(false);
    expect(await verifyReceipt(receipt, signature, (await keys()).publicKey)).toBe(false);
    expect(await verifyReceipt(receipt, 'AAAA', pair.publicKey)).toBe(false);
    expect(await verifyReceipt(receipt, signature, new Uint8Array(5))).toBe(false);
    await expect(issueReceipt({ ...input, amountNano: -1n }, pair.privateKey)).rejects.toThrow(RangeError);
  });
});
