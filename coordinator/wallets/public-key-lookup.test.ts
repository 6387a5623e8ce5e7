import { randomBytes } from 'node:crypto';
import { beginCell, internal, storeStateInit, toNano, type Address, type StateInit } from '@ton/core';
import { keyPairFromSeed, type KeyPair } from '@ton/crypto';
import { WalletContractV1R3, WalletContractV2R2, WalletContractV3R1 } from '@ton/ton';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SandboxChain } from '../payouts/sandbox-chain.ts';
import { startCoordinator } from '../testing.ts';
import { PublicKeyMismatchError, PublicKeyUnavailableError, StateInitMismatchError, TonProofSignatureError } from './errors.ts';
import { createProofPayloads } from './proof-payloads.ts';
import { askForPublicKey, PublicKeyLookupFailedError, PublicKeyLookupTimeoutError, type PublicKeyLookup } from './public-key-lookup.ts';
import { signTonProof } from './test-wallet.ts';
import { verifyTonProof, type TonProofInput, type TonProofOptions } from './ton-proof.ts';

const DOMAIN = 'spinneret.test';
const DEVICE = randomBytes(32).toString('base64url');

// Wallet codes the stateInit path does not know: v1R3 and v2R2 have get_public_key, v3R1 has not.
const KINDS = { v1R3: WalletContractV1R3, v2R2: WalletContractV2R2, v3R1: WalletContractV3R1 } as const;
type Kind = keyof typeof KINDS;

interface Deployed {
  keys: KeyPair;
  address: Address;
  init: StateInit;
}

let chain: SandboxChain;
beforeAll(async () => {
  chain = await SandboxChain.create();
});

/** A wallet of `kind` on the sandbox; deployed by its first transfer unless `deploy` is false. */
async function wallet(kind: Kind, deploy = true): Promise<Deployed> {
  const keys = keyPairFromSeed(randomBytes(32));
  const contract = KINDS[kind].create({ workchain: 0, publicKey: keys.publicKey });
  if (deploy) {
    await chain.fund(contract.address, toNano('2'));
    const opened = chain.blockchain.openContract(contract);
    await opened.sendTransfer({
      seqno: 0,
      secretKey: keys.secretKey,
      messages: [internal({ to: contract.address, value: toNano('0.01'), bounce: false })],
    });
    expect((await chain.blockchain.getContract(contract.address)).accountState?.type).toBe('active');
  }
  return { keys, address: contract.address, init: contract.init };
}

function bocOf(init: StateInit): string {
  return beginCell().store(storeStateInit(init)).endCell().toBoc().toString('base64');
}

/** A proof request for `w` signed by `signer` (default: its own key), and the verifier's options. */
function request(
  w: Deployed,
  opts: { signer?: KeyPair; stateInit?: StateInit | null; lookup?: PublicKeyLookup; reportedKey?: Buffer } = {},
) {
  const payloads = createProofPayloads();
  const { payload } = payloads.issuePayload(DEVICE);
  const timestamp = Math.floor(Date.now() / 1000);
  const stateInit = opts.stateInit === undefined ? w.init : opts.stateInit;
  const input: TonProofInput = {
    address: w.address.toRawString(),
    network: '-3',
    ...(opts.reportedKey !== undefined && { publicKey: opts.reportedKey.toString('hex') }),
    proof: {
      timestamp,
      domain: { lengthBytes: Buffer.byteLength(DOMAIN), value: DOMAIN },
      signature: signTonProof((opts.signer ?? w.keys).secretKey, w.address, DOMAIN, timestamp, payload),
      payload,
      ...(stateInit !== null && { stateInit: bocOf(stateInit) }),
    },
  };
  const options: TonProofOptions = {
    allowedDomains: [DOMAIN],
    payloads,
    expectedDeviceKey: DEVICE,
    publicKeys: opts.lookup ?? chain.publicKeys(),
  };
  return { input, options };
}

/** Counts the lookups that reach the sandbox. */
function counting(): PublicKeyLookup & { asked: number } {
  const inner = chain.publicKeys();
  const lookup = {
    asked: 0,
    chainName: inner.chainName,
    getPublicKey: (a: Address) => (lookup.asked++, inner.getPublicKey(a)),
  };
  return lookup;
}

describe('ton_proof through get_public_key on the sandbox chain', () => {
  it.each<Kind>(['v1R3', 'v2R2'])('accepts a deployed %s wallet, whose stateInit the verifier does not know', async (kind) => {
    const w = await wallet(kind);
    const lookup = counting();
    const { input, options } = request(w, { lookup, reportedKey: w.keys.publicKey });
    const verified = await verifyTonProof(input, options);
    expect(verified.address.equals(w.address)).toBe(true);
    expect(verified.publicKey.equals(w.keys.publicKey)).toBe(true);
    expect(lookup.asked).toBe(1);
  });

  it('accepts a deployed wallet that sent no stateInit', async () => {
    const w = await wallet('v2R2');
    const { input, options } = request(w, { stateInit: null });
    expect((await verifyTonProof(input, options)).publicKey.equals(w.keys.publicKey)).toBe(true);
  });

  it('refuses a deployed wallet without get_public_key, saying so', async () => {
    const w = await wallet('v3R1');
    const { input, options } = request(w);
    const err = await verifyTonProof(input, options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublicKeyUnavailableError);
    expect((err as Error).message).toMatch(/has no get_public_key get-method \(exit code \d+\)/);
  });

  it('refuses a proof signed by another key than the one on chain', async () => {
    const w = await wallet('v2R2');
    const other = keyPairFromSeed(randomBytes(32));
    await expect(verifyTonProof(...args(request(w, { signer: other })))).rejects.toThrow(TonProofSignatureError);
    // The wallet app reports the key it signed with; the chain holds another.
    await expect(verifyTonProof(...args(request(w, { signer: other, reportedKey: other.publicKey })))).rejects.toThrow(
      PublicKeyMismatchError,
    );
  });

  it('refuses a stateInit that does not hash to the address without asking the chain', async () => {
    const w = await wallet('v2R2');
    const stranger = await wallet('v2R2', false);
    const lookup = counting();
    await expect(verifyTonProof(...args(request(w, { stateInit: stranger.init, lookup })))).rejects.toThrow(StateInitMismatchError);
    expect(lookup.asked).toBe(0);
  });

  it('refuses a wallet of unknown code that is not deployed, telling how to fix it', async () => {
    const w = await wallet('v2R2', false);
    const err = await verifyTonProof(...args(request(w))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublicKeyUnavailableError);
    expect((err as Error).message).toContain('not deployed on the local sandbox chain: send one transaction from it first');
  });

  it('fails a lookup that hangs with a timeout error, and one whose endpoint fails with its own', async () => {
    const w = await wallet('v2R2');
    const hanging: PublicKeyLookup = { chainName: 'a silent endpoint', getPublicKey: () => new Promise(() => {}) };
    const started = Date.now();
    const slow = request(w, { lookup: hanging });
    const err = await verifyTonProof(slow.input, { ...slow.options, lookupTimeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublicKeyLookupTimeoutError);
    expect((err as Error).message).toMatch(/took longer than 100 ms\. Try connecting again/);
    expect(Date.now() - started).toBeLessThan(2_000);
    // The payload was not used up: the same proof passes once the chain answers.
    expect((await verifyTonProof(slow.input, { ...slow.options, publicKeys: chain.publicKeys() })).address.equals(w.address)).toBe(true);

    const broken: PublicKeyLookup = { chainName: 'a broken endpoint', getPublicKey: () => Promise.reject(new Error('HTTP 502')) };
    const failed = await askForPublicKey(broken, w.address).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(PublicKeyLookupFailedError);
    expect((failed as Error).message).toMatch(/from a broken endpoint\. Try connecting again/);
    expect(((failed as Error).cause as Error).message).toBe('HTTP 502');
  });
});

describe('POST /v1/wallet/proof with the chain lookup wired in', () => {
  let started: Awaited<ReturnType<typeof startCoordinator>> | null = null;
  afterEach(async () => {
    await started?.coordinator.close();
    started = null;
  });

  async function prove(lookup: PublicKeyLookup, w: Deployed): Promise<Response> {
    started = await startCoordinator({ walletPublicKeys: lookup });
    const s = started;
    const post = (path: string, body: unknown) =>
      fetch(s.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const deviceKey = randomBytes(32).toString('base64url');
    const { payload } = (await (await post('/v1/wallet/payload', { deviceKey })).json()) as { payload: string };
    const timestamp = Math.floor(s.clock.now() / 1000);
    const domain = '127.0.0.1:5173';
    return post('/v1/wallet/proof', {
      deviceKey,
      address: w.address.toRawString(),
      network: '-3',
      proof: {
        timestamp,
        domain: { lengthBytes: domain.length, value: domain },
        signature: signTonProof(w.keys.secretKey, w.address, domain, timestamp, payload),
        payload,
        stateInit: bocOf(w.init),
      },
    });
  }

  it('issues a session for a v2R2 wallet, and answers 503 when the chain does not answer', async () => {
    const w = await wallet('v2R2');
    const ok = await prove(chain.publicKeys(), w);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { wallet: string }).wallet).toBe(w.address.toRawString());
    await started?.coordinator.close();

    const failing: PublicKeyLookup = { chainName: 'a broken endpoint', getPublicKey: () => Promise.reject(new Error('ECONNRESET')) };
    const res = await prove(failing, w);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { reason: string } }).error.reason).toBe('public-key-lookup-failed');
  });
});

function args(r: { input: TonProofInput; options: TonProofOptions }): [TonProofInput, TonProofOptions] {
  return [r.input, r.options];
}
