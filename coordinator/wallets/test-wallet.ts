/**
 * A TON wallet for tests: a v4R2 contract from a fixed seed that signs `ton_proof`s the way a
 * TON Connect wallet does (spec "Address proof signature"), written apart from the verifier.
 * Used by the route tests and, through `page.exposeFunction`, by the browser's test wallet.
 */
import { createHash } from 'node:crypto';
import { type Address, beginCell, storeStateInit } from '@ton/core';
import { keyPairFromSeed, sign } from '@ton/crypto';
import { WalletContractV4 } from '@ton/ton';

/** What a wallet's `connect` reply carries, plus a signer for its `ton_proof`. */
export interface TestWallet {
  /** Raw form, "0:hex". */
  address: string;
  /** User-friendly, non-bounceable, testnet form (what the page shows for network -3). */
  friendlyTestnet: string;
  /** Hex, 32 bytes. */
  publicKey: string;
  /** base64 BoC of the StateInit. */
  stateInit: string;
  /** base64 Ed25519 signature of the proof message for `domain`, `timestamp` (s) and `payload`. */
  signProof(domain: string, timestamp: number, payload: string): string;
}

const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

/**
 * Signs a `ton_proof` the way a TON Connect wallet does: Ed25519 over
 * sha256(0xffff ‖ "ton-connect" ‖ sha256("ton-proof-item-v2/" ‖ workchain int32 BE ‖ address
 * hash ‖ domain length uint32 LE ‖ domain ‖ timestamp uint64 LE ‖ payload)), base64.
 */
export function signTonProof(secretKey: Buffer, address: Address, domain: string, timestamp: number, payload: string): string {
  const d = Buffer.from(domain);
  const head = Buffer.alloc(4 + 32 + 4);
  head.writeInt32BE(address.workChain, 0);
  address.hash.copy(head, 4);
  head.writeUInt32LE(d.length, 36);
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64LE(BigInt(timestamp));
  const message = Buffer.concat([Buffer.from('ton-proof-item-v2/'), head, d, ts, Buffer.from(payload)]);
  const full = Buffer.concat([Buffer.from('ffff', 'hex'), Buffer.from('ton-connect'), sha256(message)]);
  return sign(sha256(full), secretKey).toString('base64');
}

/** The wallet made from a 32-byte seed derived from `label`. */
export function testWallet(label = 'spinneret test wallet'): TestWallet {
  const keys = keyPairFromSeed(sha256(Buffer.from(label)));
  const contract = WalletContractV4.create({ workchain: 0, publicKey: keys.publicKey });
  const address = contract.address;
  return {
    address: address.toRawString(),
    friendlyTestnet: address.toString({ bounceable: false, testOnly: true }),
    publicKey: keys.publicKey.toString('hex'),
    stateInit: beginCell().store(storeStateInit(contract.init)).endCell().toBoc().toString('base64'),
    signProof: (domain, timestamp, payload) => signTonProof(keys.secretKey, address, domain, timestamp, payload),
  };
}

/**
 * A `POST /v1/wallet/proof` body: `wallet`'s `ton_proof` of `payload` for `domain` at
 * `timestamp` (s), for the device `deviceKey`. `signedDomain`: the domain the signature is
 * made for, when it is not `domain` (a tampered proof).
 */
export function proofBody(
  wallet: TestWallet,
  o: { deviceKey: string; payload: string; domain: string; timestamp: number; signedDomain?: string },
): Record<string, unknown> {
  return {
    deviceKey: o.deviceKey,
    address: wallet.address,
    network: '-3',
    publicKey: wallet.publicKey,
    proof: {
      timestamp: o.timestamp,
      domain: { lengthBytes: Buffer.byteLength(o.domain), value: o.domain },
      signature: wallet.signProof(o.signedDomain ?? o.domain, o.timestamp, o.payload),
      payload: o.payload,
      stateInit: wallet.stateInit,
    },
  };
}
