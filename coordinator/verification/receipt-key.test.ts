import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openStore } from '../store/index.ts';
import { parseKek, receiptKekFromEnv, ReceiptKeyError } from './receipt-key.ts';
import { verifyReceipt } from './receipts.ts';
import { createVerification } from './service.ts';
import { VerificationPolicy } from './policy.ts';
import { KnownAnswerCanaries } from './canaries.ts';

const raw = (b64: string): Uint8Array => new Uint8Array(Buffer.from(b64, 'base64url'));
const KEK = parseKek('11'.repeat(32));
const OTHER = parseKek('22'.repeat(32));

async function start(db: Awaited<ReturnType<typeof openStore>>['db'], receiptKek: Uint8Array | null) {
  const clock = { now: () => 1_000 };
  const verification = createVerification({
    db,
    policy: new VerificationPolicy({
      canaryRate: 0,
      baseReplicationRate: 0,
      minReplicationRate: 0,
      decayPerCleanJob: 1,
      failureBoost: 1,
      quarantineAfter: 1,
      windowMs: 1,
      random: () => 0.5,
      clock,
    }),
    canaries: new KnownAnswerCanaries([], () => 0.5),
    clock,
    verdictWindowMs: 1,
    receiptKek,
  });
  await verification.start();
  return verification;
}

const RECEIPT = {
  jobId: 'job-1',
  contributorId: 'c1',
  wallet: '0:' + 'ab'.repeat(32),
  model: 'tiny-embed',
  usage: { promptTokens: 4, completionTokens: 0 },
  amountNano: 3600n,
  at: 1_000,
};

// PGlite takes a while to start on a busy machine; one store serves every test.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });
let store: Awaited<ReturnType<typeof openStore>>;
beforeAll(async () => {
  store = await openStore({ databaseUrl: '' });
});
afterAll(async () => {
  await store.close();
});

describe('the receipt key at rest', () => {
  it('is stored sealed under the KEK, signs after a restart, and will not open without it or with another', async () => {
    await store.db.query('DELETE FROM verification_keys');
    {
      const first = await start(store.db, KEK);
      const signed = await first.receipt(RECEIPT);
      const { rows } = await store.db.query<{ private_pkcs8: string }>(`SELECT private_pkcs8 FROM verification_keys`);
      expect(rows[0]?.private_pkcs8).toMatch(/^kek1:/);
      const again = await start(store.db, KEK);
      const { publicKey } = await again.receipts('c1', 1);
      expect(await verifyReceipt(signed.receipt, signed.signature, raw(publicKey))).toBe(true);
      const later = await again.receipt({ ...RECEIPT, jobId: 'job-2' });
      expect(await verifyReceipt(later.receipt, later.signature, raw(publicKey))).toBe(true);
      await expect(start(store.db, null)).rejects.toBeInstanceOf(ReceiptKeyError);
      await expect(start(store.db, OTHER)).rejects.toThrow(/does not open/);
    }
  });

  it('seals a key stored plain before a KEK was set', async () => {
    await store.db.query('DELETE FROM verification_keys');
    {
      await start(store.db, null);
      const plain = await store.db.query<{ private_pkcs8: string }>(`SELECT private_pkcs8 FROM verification_keys`);
      expect(plain.rows[0]?.private_pkcs8).not.toMatch(/^kek1:/);
      await start(store.db, KEK);
      const sealed = await store.db.query<{ private_pkcs8: string }>(`SELECT private_pkcs8 FROM verification_keys`);
      expect(sealed.rows[0]?.private_pkcs8).toMatch(/^kek1:/);
    }
  });

  it('reads the KEK from the environment, and refuses a malformed one with what to do', () => {
    expect(receiptKekFromEnv({})).toBeNull();
    expect(receiptKekFromEnv({ SPINNERET_RECEIPT_KEK: '11'.repeat(32) })).toEqual(KEK);
    expect(() => receiptKekFromEnv({ SPINNERET_RECEIPT_KEK: 'short' })).toThrow(/openssl rand -hex 32/);
    expect(() => receiptKekFromEnv({ SPINNERET_RECEIPT_KEK_FILE: '/no/such/file' })).toThrow(ReceiptKeyError);
  });
});
