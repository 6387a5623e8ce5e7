/**
 * Verifies a TON Connect `ton_proof`: the wallet at `address` signed our payload for our
 * domain, recently.
 *
 * Layout (TON Connect spec, "Address proof signature"): message = "ton-proof-item-v2/" ‖
 * workchain int32 BE ‖ address hash ‖ domain length uint32 LE ‖ domain ‖ timestamp uint64 LE
 * ‖ payload; the wallet signs sha256(0xffff ‖ "ton-connect" ‖ sha256(message)) with Ed25519.
 */
import { createHash } from 'node:crypto';
import { Address, Cell, contractAddress, loadStateInit, type StateInit } from '@ton/core';
import { signVerify } from '@ton/crypto';
import { WalletContractV3R2, WalletContractV4, WalletContractV5R1 } from '@ton/ton';
import { systemClock, type Clock } from '../clock.ts';
import {
  PublicKeyMismatchError,
  PublicKeyUnavailableError,
  StateInitMismatchError,
  TonProofDomainError,
  TonProofExpiredError,
  TonProofFromFutureError,
  TonProofMalformedError,
  TonProofSignatureError,
} from './errors.ts';
import type { ProofPayloads } from './proof-payloads.ts';
import { askForPublicKey, PUBLIC_KEY_LOOKUP_TIMEOUT_MS, type PublicKeyLookup } from './public-key-lookup.ts';

/** What TON Connect's `connect` event carries for the account and its `ton_proof` item. */
export interface TonProofInput {
  /** Raw ("0:hex") or user-friendly form. */
  address: string;
  /** TON Connect CHAIN: '-239' mainnet, '-3' testnet. */
  network: '-239' | '-3';
  /** The public key the wallet reports (hex); when given it must match the contract's. */
  publicKey?: string;
  proof: {
    /** Seconds since the epoch, as the wallet signed it. */
    timestamp: number;
    domain: { lengthBytes: number; value: string };
    /** base64 Ed25519 signature (64 bytes). */
    signature: string;
    payload: string;
    /** base64 BoC of the wallet's StateInit (`account.walletStateInit`). */
    stateInit?: string;
  };
}

/** Options of {@link verifyTonProof}. */
export interface TonProofOptions {
  /** Hosts (with port where not default) that proofs may name, e.g. "spinneret.example" or "localhost:5173". */
  allowedDomains: readonly string[];
  /** Oldest proof accepted, in seconds (default 900). */
  maxAgeSeconds?: number;
  clock?: Clock;
  payloads: ProofPayloads;
  /** The device key (base64url) of the session asking; the payload must have been issued to it. */
  expectedDeviceKey: string;
  /**
   * Asks the chain for the key of a wallet whose stateInit is not a v3R2, v4R2 or v5R1 wallet
   * (or that sent none). Without it such wallets are refused.
   */
  publicKeys?: PublicKeyLookup;
  /** Limit for one chain lookup, ms (default {@link PUBLIC_KEY_LOOKUP_TIMEOUT_MS}). */
  lookupTimeoutMs?: number;
}

/** A wallet that proved control of `address`. */
export interface VerifiedWallet {
  address: Address;
  /** The wallet's Ed25519 public key, 32 bytes. */
  publicKey: Buffer;
}

const FUTURE_SKEW_SECONDS = 60;
const PROOF_PREFIX = Buffer.from('ton-proof-item-v2/');
const CONNECT_PREFIX = Buffer.concat([Buffer.from([0xff, 0xff]), Buffer.from('ton-connect')]);

/** Wallet codes whose data cell we can read the public key from, and the key's bit offset there. */
const KNOWN_WALLETS: ReadonlyArray<{ name: string; codeHash: Buffer; keyOffsetBits: number }> = (() => {
  const key = Buffer.alloc(32);
  return [
    // seqno:uint32 subwallet:uint32 public_key:bits256
    { name: 'v3R2', codeHash: WalletContractV3R2.create({ workchain: 0, publicKey: key }).init.code.hash(), keyOffsetBits: 64 },
    // seqno:uint32 subwallet:uint32 public_key:bits256 plugins:dict
    { name: 'v4R2', codeHash: WalletContractV4.create({ workchain: 0, publicKey: key }).init.code.hash(), keyOffsetBits: 64 },
    // is_signature_allowed:bool seqno:uint32 wallet_id:int32 public_key:bits256 extensions:dict
    { name: 'v5R1', codeHash: WalletContractV5R1.create({ workchain: 0, publicKey: key }).init.code.hash(), keyOffsetBits: 65 },
  ];
})();

/**
 * Checks a `ton_proof` and uses up its payload. Resolves with the wallet, or rejects with one
 * {@link WalletAuthError} subclass per reason (see `errors.ts`; a chain lookup that times out
 * or fails rejects with a `PublicKeyLookupError`).
 */
export async function verifyTonProof(input: TonProofInput, options: TonProofOptions): Promise<VerifiedWallet> {
  const { proof } = input;
  const clock = options.clock ?? systemClock;
  const maxAgeSeconds = options.maxAgeSeconds ?? 900;

  const domain = Buffer.from(proof.domain.value, 'utf8');
  if (domain.length !== proof.domain.lengthBytes) throw new TonProofMalformedError('domain length');
  if (!options.allowedDomains.includes(proof.domain.value)) throw new TonProofDomainError(proof.domain.value);

  if (!Number.isSafeInteger(proof.timestamp) || proof.timestamp < 0) throw new TonProofMalformedError('timestamp');
  const nowSeconds = Math.floor(clock.now() / 1000);
  if (proof.timestamp > nowSeconds + FUTURE_SKEW_SECONDS) throw new TonProofFromFutureError(proof.timestamp - nowSeconds);
  if (nowSeconds - proof.timestamp > maxAgeSeconds) throw new TonProofExpiredError(nowSeconds - proof.timestamp, maxAgeSeconds);

  await options.payloads.check(proof.payload, options.expectedDeviceKey);

  const address = parseAddress(input.address);
  const shown = address.toRawString();
  const signature = Buffer.from(proof.signature, 'base64');
  if (signature.length !== 64) throw new TonProofMalformedError('signature length');

  let publicKey: Buffer | null = null;
  if (proof.stateInit !== undefined) {
    const init = parseStateInit(proof.stateInit);
    if (!contractAddress(address.workChain, init).equals(address)) throw new StateInitMismatchError(shown);
    publicKey = publicKeyFromStateInit(init);
  }
  if (publicKey === null) {
    if (options.publicKeys === undefined) {
      throw new PublicKeyUnavailableError(shown, proof.stateInit === undefined ? 'no stateInit sent' : 'unknown wallet contract');
    }
    // With a stateInit, it hashes to the address (checked above), so the chain runs that very code.
    const answer = await askForPublicKey(options.publicKeys, address, options.lookupTimeoutMs ?? PUBLIC_KEY_LOOKUP_TIMEOUT_MS);
    if (answer.kind === 'none') throw new PublicKeyUnavailableError(shown, answer.why);
    publicKey = answer.publicKey;
  }
  if (input.publicKey !== undefined && input.publicKey.toLowerCase() !== publicKey.toString('hex')) {
    throw new PublicKeyMismatchError(shown);
  }

  const signed = signedHash(address, domain, proof.timestamp, proof.payload);
  if (!signVerify(signed, signature, publicKey)) throw new TonProofSignatureError(shown);

  // Checked again here: another proof with the same payload may have won while we awaited the chain.
  await options.payloads.consume(proof.payload, options.expectedDeviceKey);
  return { address, publicKey };
}

/**
 * The public key of a v3R2, v4R2 or v5R1 wallet, read from its data cell; null for other
 * contracts (or a data cell too short to hold a key).
 */
export function publicKeyFromStateInit(init: StateInit): Buffer | null {
  if (!init.code || !init.data) return null;
  const codeHash = init.code.hash();
  const wallet = KNOWN_WALLETS.find((w) => w.codeHash.equals(codeHash));
  if (wallet === undefined) return null;
  const slice = init.data.beginParse();
  if (slice.remainingBits < wallet.keyOffsetBits + 256) return null;
  slice.skip(wallet.keyOffsetBits);
  return slice.loadBuffer(32);
}

function signedHash(address: Address, domain: Buffer, timestamp: number, payload: string): Buffer {
  const workchain = Buffer.alloc(4);
  workchain.writeInt32BE(address.workChain);
  const domainLength = Buffer.alloc(4);
  domainLength.writeUInt32LE(domain.length);
  const time = Buffer.alloc(8);
  time.writeBigUInt64LE(BigInt(timestamp));
  const message = Buffer.concat([PROOF_PREFIX, workchain, address.hash, domainLength, domain, time, Buffer.from(payload, 'utf8')]);
  return sha256(Buffer.concat([CONNECT_PREFIX, sha256(message)]));
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** The claimed address; only basechain (0) and masterchain (-1) exist, and payouts go to nothing else. */
function parseAddress(text: string): Address {
  let address: Address;
  try {
    address = Address.parse(text);
  } catch {
    throw new TonProofMalformedError('address');
  }
  if (address.workChain !== 0 && address.workChain !== -1) throw new TonProofMalformedError(`address on workchain ${address.workChain}`);
  return address;
}

function parseStateInit(base64: string): StateInit {
  try {
    const cells = Cell.fromBoc(Buffer.from(base64, 'base64'));
    const root = cells[0];
    if (root === undefined) throw new Error('empty BoC');
    return loadStateInit(root.beginParse());
  } catch {
    throw new TonProofMalformedError('stateInit');
  }
}
