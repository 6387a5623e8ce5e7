import { randomBytes } from 'node:crypto';
import { beginCell, contractAddress, storeStateInit, type Address, type StateInit } from '@ton/core';
import { keyPairFromSeed, type KeyPair } from '@ton/crypto';
import { WalletContractV3R2, WalletContractV4, WalletContractV5R1 } from '@ton/ton';
import { describe, expect, it } from 'vitest';
import { signTonProof } from './test-wallet.ts';
import {
  PayloadDeviceMismatchError,
  PayloadExpiredError,
  PayloadReplayedError,
  PayloadUnknownError,
  PublicKeyMismatchError,
  PublicKeyUnavailableError,
  StateInitMismatchError,
  TonProofDomainError,
  TonProofExpiredError,
  TonProofFromFutureError,
  TonProofMalformedError,
  TonProofSignatureError,
  WalletAuthError,
} from './errors.ts';
import { createProofPayloads, deviceTag } from './proof-payloads.ts';
import type { PublicKeyLookup } from './public-key-lookup.ts';
import { publicKeyFromStateInit, verifyTonProof, type TonProofInput, type TonProofOptions } from './ton-proof.ts';

const DOMAIN = 'spinneret.test';
const DEVICE = randomBytes(32).toString('base64url');
const OTHER_DEVICE = randomBytes(32).toString('base64url');

function fakeClock(start = Date.UTC(2025, 0, 1)) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

type WalletKind = 'v3R2' | 'v4R2' | 'v5R1';

function makeWallet(kind: WalletKind, keys: KeyPair): { address: Address; init: StateInit } {
  const args = { workchain: 0, publicKey: keys.publicKey };
  const wallet =
    kind === 'v3R2' ? WalletContractV3R2.create(args) : kind === 'v4R2' ? WalletContractV4.create(args) : WalletContractV5R1.create(args);
  return { address: wallet.address, init: wallet.init };
}

function bocOf(init: StateInit): string {
  return beginCell().store(storeStateInit(init)).endCell().toBoc().toString('base64');
}

/** Signs the way a TON Connect wallet does (the test wallet's signer, written apart from the verifier). */
function walletSign(keys: KeyPair, address: Address, domain: string, timestamp: number, payload: string): string {
  return signTonProof(keys.secretKey, address, domain, timestamp, payload);
}

function setup(kind: WalletKind = 'v4R2') {
  const clock = fakeClock();
  const payloads = createProofPayloads({ clock });
  const keys = keyPairFromSeed(randomBytes(32));
  const { address, init } = makeWallet(kind, keys);
  const { payload } = payloads.issuePayload(DEVICE);
  const timestamp = Math.floor(clock.now() / 1000);
  const input: TonProofInput = {
    address: address.toRawString(),
    network: '-239',
    publicKey: keys.publicKey.toString('hex'),
    proof: {
      timestamp,
      domain: { lengthBytes: Buffer.byteLength(DOMAIN), value: DOMAIN },
      signature: walletSign(keys, address, DOMAIN, timestamp, payload),
      payload,
      stateInit: bocOf(init),
    },
  };
  const options: TonProofOptions = { allowedDomains: [DOMAIN], clock, payloads, expectedDeviceKey: DEVICE };
  const resign = (p: TonProofInput['proof']) => ({ ...p, signature: walletSign(keys, address, p.domain.value, p.timestamp, p.payload) });
  return { clock, payloads, keys, address, init, input, options, resign };
}

describe('verifyTonProof accepts real wallet proofs', () => {
  it.each<WalletKind>(['v3R2', 'v4R2', 'v5R1'])('%s', async (kind) => {
    const { input, options, address, keys } = setup(kind);
    const wallet = await verifyTonProof(input, options);
    expect(wallet.address.equals(address)).toBe(true);
    expect(wallet.publicKey.equals(keys.publicKey)).toBe(true);
  });

  it('accepts the user-friendly address form', async () => {
    const { input, options, address } = setup('v5R1');
    const wallet = await verifyTonProof({ ...input, address: address.toString({ bounceable: false }) }, options);
    expect(wallet.address.equals(address)).toBe(true);
  });

  it('binds the payload to the device key', () => {
    const { input } = setup();
    expect(Buffer.from(input.proof.payload, 'base64url').subarray(32).equals(deviceTag(DEVICE))).toBe(true);
  });
});

describe('verifyTonProof refuses', () => {
  it('a domain not allowed', async () => {
    const { input, options, resign } = setup();
    const domain = { lengthBytes: 8, value: 'evil.com' };
    await expect(verifyTonProof({ ...input, proof: resign({ ...input.proof, domain }) }, options)).rejects.toThrow(TonProofDomainError);
  });

  it('a domain whose length field lies', async () => {
    const { input, options } = setup();
    const domain = { ...input.proof.domain, lengthBytes: 3 };
    await expect(verifyTonProof({ ...input, proof: { ...input.proof, domain } }, options)).rejects.toThrow(TonProofMalformedError);
  });

  it('a timestamp older than maxAgeSeconds', async () => {
    const { input, options, resign } = setup();
    const proof = resign({ ...input.proof, timestamp: input.proof.timestamp - 901 });
    await expect(verifyTonProof({ ...input, proof }, options)).rejects.toThrow(TonProofExpiredError);
    // Just inside the window it passes, so the refusal above is about age alone.
    await expect(verifyTonProof({ ...input, proof: resign({ ...proof, timestamp: proof.timestamp + 2 }) }, options)).resolves.toBeDefined();
  });

  it('a timestamp more than 60 s in the future', async () => {
    const { input, options, resign } = setup();
    const proof = resign({ ...input.proof, timestamp: input.proof.timestamp + 61 });
    await expect(verifyTonProof({ ...input, proof }, options)).rejects.toThrow(TonProofFromFutureError);
  });

  it('a replayed payload', async () => {
    const { input, options } = setup();
    await verifyTonProof(input, options);
    await expect(verifyTonProof(input, options)).rejects.toThrow(PayloadReplayedError);
  });

  it('a payload never issued', async () => {
    const { input, options, resign } = setup();
    const payload = Buffer.concat([randomBytes(32), deviceTag(DEVICE)]).toString('base64url');
    await expect(verifyTonProof({ ...input, proof: resign({ ...input.proof, payload }) }, options)).rejects.toThrow(PayloadUnknownError);
  });

  it('an expired payload', async () => {
    const { input, options, clock, resign } = setup();
    clock.advance(15 * 60_000);
    const proof = resign({ ...input.proof, timestamp: Math.floor(clock.now() / 1000) });
    await expect(verifyTonProof({ ...input, proof }, options)).rejects.toThrow(PayloadExpiredError);
  });

  it('a payload issued to another device', async () => {
    const { input, options } = setup();
    await expect(verifyTonProof(input, { ...options, expectedDeviceKey: OTHER_DEVICE })).rejects.toThrow(PayloadDeviceMismatchError);
  });

  it('a tampered signature, and leaves the payload usable', async () => {
    const { input, options } = setup();
    const bad = Buffer.from(input.proof.signature, 'base64');
    bad[0] = (bad[0] ?? 0) ^ 1;
    const proof = { ...input.proof, signature: bad.toString('base64') };
    await expect(verifyTonProof({ ...input, proof }, options)).rejects.toThrow(TonProofSignatureError);
    await expect(verifyTonProof(input, options)).resolves.toBeDefined();
  });

  it('a signature by another key over the same message', async () => {
    const { input, options, address } = setup();
    const other = keyPairFromSeed(randomBytes(32));
    const p = input.proof;
    const proof = { ...p, signature: walletSign(other, address, p.domain.value, p.timestamp, p.payload) };
    await expect(verifyTonProof({ ...input, proof }, options)).rejects.toThrow(TonProofSignatureError);
  });

  it('an address that does not match its stateInit', async () => {
    const { input, options, address } = setup('v4R2');
    // An attacker claims the victim's address but ships its own wallet and signs with its own key.
    const attacker = keyPairFromSeed(randomBytes(32));
    const p = input.proof;
    const proof = {
      ...p,
      stateInit: bocOf(makeWallet('v4R2', attacker).init),
      signature: walletSign(attacker, address, DOMAIN, p.timestamp, p.payload),
    };
    await expect(verifyTonProof({ address: input.address, network: input.network, proof }, options)).rejects.toThrow(
      StateInitMismatchError,
    );
  });

  it('a reported public key that is not the contract key', async () => {
    const { input, options } = setup();
    const publicKey = randomBytes(32).toString('hex');
    await expect(verifyTonProof({ ...input, publicKey }, options)).rejects.toThrow(PublicKeyMismatchError);
  });

  describe('an unknown wallet code', () => {
    function unknownWallet(keys: KeyPair) {
      const init: StateInit = {
        code: beginCell().storeUint(0xdeadbeef, 32).endCell(),
        data: beginCell().storeUint(0, 64).storeBuffer(keys.publicKey).endCell(),
      };
      return { init, address: contractAddress(0, init) };
    }

    it('without a chain lookup', async () => {
      const { input, options, keys } = setup();
      const { init, address } = unknownWallet(keys);
      const base = { ...input, address: address.toRawString(), proof: { ...input.proof, stateInit: bocOf(init) } };
      const proof = { ...base.proof, signature: walletSign(keys, address, DOMAIN, base.proof.timestamp, base.proof.payload) };
      await expect(verifyTonProof({ ...base, proof }, options)).rejects.toThrow(PublicKeyUnavailableError);
    });

    it('is accepted with a chain lookup that returns its key, refused when it finds none', async () => {
      const { input, options, keys } = setup();
      const { init, address } = unknownWallet(keys);
      const p = input.proof;
      const proof = { ...p, stateInit: bocOf(init), signature: walletSign(keys, address, DOMAIN, p.timestamp, p.payload) };
      const asked: string[] = [];
      const none: PublicKeyLookup = {
        chainName: 'a test chain',
        getPublicKey: async (a: Address) => (asked.push(a.toRawString()), { kind: 'none', why: 'not deployed' }),
      };
      const request = { ...input, address: address.toRawString(), proof };
      await expect(verifyTonProof(request, { ...options, publicKeys: none })).rejects.toThrow(/not deployed/);
      const found: PublicKeyLookup = { chainName: 'a test chain', getPublicKey: async () => ({ kind: 'key', publicKey: keys.publicKey }) };
      const wallet = await verifyTonProof(request, { ...options, publicKeys: found });
      expect(wallet.publicKey.equals(keys.publicKey)).toBe(true);
      expect(asked).toEqual([address.toRawString()]);
    });
  });

  it('an address on a workchain that does not exist, even with a matching stateInit and signature', async () => {
    const { input, options, keys, init } = setup();
    const address = contractAddress(7, init);
    const p = input.proof;
    const proof = { ...p, signature: walletSign(keys, address, DOMAIN, p.timestamp, p.payload) };
    await expect(verifyTonProof({ ...input, address: address.toRawString(), proof }, options)).rejects.toThrow(/workchain 7/);
  });

  it('a stateInit that is not a BoC', async () => {
    const { input, options } = setup();
    const proof = { ...input.proof, stateInit: Buffer.from('not a boc').toString('base64') };
    await expect(verifyTonProof({ ...input, proof }, options)).rejects.toThrow(TonProofMalformedError);
  });

  it('with errors that carry their reason on the wire', async () => {
    const { input, options } = setup();
    const err = await verifyTonProof(input, { ...options, allowedDomains: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WalletAuthError);
    expect((err as WalletAuthError).toJSON()).toMatchObject({ code: 'INVALID_INPUT', details: { reason: 'domain-not-allowed' } });
  });
});

describe('createProofPayloads', () => {
  it('issues distinct payloads that expire after 15 minutes by default', () => {
    const clock = fakeClock();
    const payloads = createProofPayloads({ clock });
    const a = payloads.issuePayload(DEVICE);
    const b = payloads.issuePayload(DEVICE);
    expect(a.payload).not.toBe(b.payload);
    expect(a.expiresAt - clock.now()).toBe(15 * 60_000);
    clock.advance(15 * 60_000 - 1);
    expect(() => payloads.check(a.payload, DEVICE)).not.toThrow();
    clock.advance(1);
    expect(() => payloads.check(a.payload, DEVICE)).toThrow(PayloadExpiredError);
  });

  it('forgets payloads long after they expired', () => {
    const clock = fakeClock();
    const payloads = createProofPayloads({ clock, ttlMs: 1000 });
    const old = payloads.issuePayload(DEVICE);
    clock.advance(2000);
    payloads.issuePayload(DEVICE);
    expect(() => payloads.check(old.payload, DEVICE)).toThrow(PayloadUnknownError);
  });

  it('lets only one of two racing proofs consume a payload', () => {
    const payloads = createProofPayloads({ clock: fakeClock() });
    const { payload } = payloads.issuePayload(DEVICE);
    payloads.check(payload, DEVICE);
    payloads.check(payload, DEVICE);
    payloads.consume(payload, DEVICE);
    expect(() => payloads.consume(payload, DEVICE)).toThrow(PayloadReplayedError);
  });
});

describe('publicKeyFromStateInit', () => {
  it.each<WalletKind>(['v3R2', 'v4R2', 'v5R1'])('reads the key of a %s wallet', (kind) => {
    const keys = keyPairFromSeed(Buffer.alloc(32, 7));
    expect(publicKeyFromStateInit(makeWallet(kind, keys).init)?.equals(keys.publicKey)).toBe(true);
  });

  it('returns null for other code, or a data cell too short', () => {
    const keys = keyPairFromSeed(Buffer.alloc(32, 7));
    const { init } = makeWallet('v4R2', keys);
    expect(publicKeyFromStateInit({ code: beginCell().endCell(), data: init.data })).toBeNull();
    expect(publicKeyFromStateInit({ code: init.code, data: beginCell().storeUint(0, 64).endCell() })).toBeNull();
  });
});
