/**
 * `TonClientChain` and the `TonClient` key lookup against a local stand-in for toncenter's
 * JSON-RPC endpoint (API v2). The request shapes asserted here are the ones `@ton/ton`'s
 * `HttpApi.doCall` sends (POST `{id: '1', jsonrpc: '2.0', method, params}`, `X-API-Key`),
 * and the answers pass its response codecs (`addressInformation`, `callGetMethod`,
 * `bocResponse`); the values in them come from a wallet deployed on the sandbox chain.
 */
import { randomBytes } from 'node:crypto';
import { Address, beginCell, internal, toNano } from '@ton/core';
import { keyPairFromSeed } from '@ton/crypto';
import { WalletContractV2R2 } from '@ton/ton';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  askForPublicKey,
  PublicKeyLookupFailedError,
  PublicKeyLookupTimeoutError,
  tonClientPublicKeyLookup,
} from '../wallets/public-key-lookup.ts';
import { publicKeyLookupFor } from './config.ts';
import { SandboxChain } from './sandbox-chain.ts';
import { payoutFixture, randomRecipient } from './testing.ts';
import { type RpcCall, startTonCenterStandIn, type TonCenterStandIn, transactionsPage } from './toncenter-stand-in.ts';
import { TonClientChain } from './ton-client-chain.ts';

let standIn: TonCenterStandIn;
let endpoint: string;
let calls: RpcCall[];

beforeAll(async () => {
  standIn = await startTonCenterStandIn();
  endpoint = standIn.endpoint;
  calls = standIn.calls;
});
afterAll(async () => standIn.close());
beforeEach(() => {
  calls.length = 0;
  standIn.replies = {};
});

/** getAddressInformation's result for an account, as toncenter shapes it. */
function addressInformation(state: 'active' | 'uninitialized', balance: bigint, code = '', data = '') {
  return {
    '@type': 'raw.fullAccountState',
    balance: balance.toString(),
    state,
    code,
    data,
    last_transaction_id: {
      '@type': 'internal.transactionId',
      lt: state === 'active' ? '2000001' : '0',
      hash: Buffer.alloc(32).toString('base64'),
    },
    block_id: { '@type': 'ton.blockIdExt', workchain: -1, shard: '-9223372036854775808', seqno: 1, root_hash: '', file_hash: '' },
    sync_utime: Math.floor(Date.now() / 1000),
  };
}

/** A v2R2 wallet deployed on the sandbox, and what toncenter would answer about it. */
async function recordedWallet() {
  const chain = await SandboxChain.create();
  const keys = keyPairFromSeed(randomBytes(32));
  const contract = WalletContractV2R2.create({ workchain: 0, publicKey: keys.publicKey });
  await chain.fund(contract.address, toNano('2'));
  await chain.blockchain
    .openContract(contract)
    .sendTransfer({ seqno: 0, secretKey: keys.secretKey, messages: [internal({ to: contract.address, value: 1n, bounce: false })] });
  const account = await chain.blockchain.getContract(contract.address);
  const got = await chain.blockchain.runGetMethod(contract.address, 'get_public_key');
  const key = got.stackReader.readBigNumber();
  const init = account.accountState?.type === 'active' ? account.accountState.state : undefined;
  return {
    chain,
    keys,
    address: contract.address,
    info: addressInformation(
      'active',
      account.balance,
      init?.code?.toBoc().toString('base64') ?? '',
      init?.data?.toBoc().toString('base64') ?? '',
    ),
    // toncenter writes integers on the stack as ["num", "0x<hex>"].
    getPublicKey: { gas_used: Number(got.gasUsed), exit_code: got.exitCode, stack: [['num', `0x${key.toString(16)}`]] },
  };
}

describe('tonClientPublicKeyLookup over the toncenter JSON-RPC shapes', () => {
  let wallet: Awaited<ReturnType<typeof recordedWallet>>;
  beforeAll(async () => {
    wallet = await recordedWallet();
  });

  const lookup = (apiKey?: string) =>
    tonClientPublicKeyLookup(new TonClientChain({ endpoint, ...(apiKey !== undefined && { apiKey }), timeoutMs: 2_000 }).client, 'testnet');

  it('asks getAddressInformation then runGetMethod get_public_key, and reads the key', async () => {
    standIn.replies = { getAddressInformation: { result: wallet.info }, runGetMethod: { result: wallet.getPublicKey } };
    const answer = await askForPublicKey(lookup('secret-key'), wallet.address);
    expect(answer).toEqual({ kind: 'key', publicKey: wallet.keys.publicKey });
    expect(calls.map((c) => [c.method, c.params, c.apiKey])).toEqual([
      ['getAddressInformation', { address: wallet.address.toString() }, 'secret-key'],
      ['runGetMethod', { address: wallet.address.toString(), method: 'get_public_key', stack: [] }, 'secret-key'],
    ]);
    expect(calls[0]?.body).toMatchObject({ id: '1', jsonrpc: '2.0' });
  });

  it('answers none for an undeployed account without running the get-method, and for a missing method', async () => {
    standIn.replies = { getAddressInformation: { result: addressInformation('uninitialized', 0n) } };
    const undeployed = await askForPublicKey(lookup(), wallet.address);
    expect(undeployed).toMatchObject({ kind: 'none', why: expect.stringContaining('not deployed on testnet') });
    expect(calls.map((c) => c.method)).toEqual(['getAddressInformation']);

    standIn.replies = {
      getAddressInformation: { result: wallet.info },
      runGetMethod: { result: { gas_used: 0, exit_code: 11, stack: [] } },
    };
    expect(await askForPublicKey(lookup(), wallet.address)).toMatchObject({ kind: 'none', why: expect.stringContaining('exit code 11') });
  });

  it('fails with a typed error when the endpoint errs, and with a timeout when it hangs', async () => {
    standIn.replies = { getAddressInformation: { status: 500, body: { ok: false, error: 'LITE_SERVER_NETWORK' } } };
    await expect(askForPublicKey(lookup(), wallet.address)).rejects.toThrow(PublicKeyLookupFailedError);

    standIn.replies = { getAddressInformation: 'hang' };
    await expect(askForPublicKey(lookup(), wallet.address, 150)).rejects.toThrow(PublicKeyLookupTimeoutError);
  });

  it('is what publicKeyLookupFor gives for a TonClientChain, and the sandbox lookup for a SandboxChain', async () => {
    standIn.replies = { getAddressInformation: { result: wallet.info }, runGetMethod: { result: wallet.getPublicKey } };
    const overHttp = publicKeyLookupFor(new TonClientChain({ endpoint }), 'testnet');
    expect(await overHttp?.getPublicKey(wallet.address)).toEqual({ kind: 'key', publicKey: wallet.keys.publicKey });
    const onSandbox = publicKeyLookupFor(wallet.chain, 'the sandbox');
    expect(await onSandbox?.getPublicKey(wallet.address)).toEqual({ kind: 'key', publicKey: wallet.keys.publicKey });
  });
});

describe('TonClientChain over the toncenter JSON-RPC shapes', () => {
  const chain = () => new TonClientChain({ endpoint, timeoutMs: 2_000 });
  const address = (): Address => WalletContractV2R2.create({ workchain: 0, publicKey: Buffer.alloc(32, 1) }).address;

  it('reads the seqno with runGetMethod seqno only when the account is active, and the balance', async () => {
    standIn.replies = {
      getAddressInformation: { result: addressInformation('active', 1_234_567_890n) },
      runGetMethod: { result: { gas_used: 300, exit_code: 0, stack: [['num', '0x2a']] } },
    };
    expect(await chain().getSeqno(address())).toBe(42);
    expect(await chain().getBalance(address())).toBe(1_234_567_890n);
    expect(await chain().getLastLt(address())).toBe(2_000_001n);
    expect(calls.find((c) => c.method === 'runGetMethod')?.params).toEqual({ address: address().toString(), method: 'seqno', stack: [] });

    calls.length = 0;
    standIn.replies = { getAddressInformation: { result: addressInformation('uninitialized', 0n) } };
    expect(await chain().getSeqno(address())).toBe(0);
    expect(calls.map((c) => c.method)).toEqual(['getAddressInformation']);
  });

  it('sends the external message as a base64 BoC with sendBoc', async () => {
    standIn.replies = { sendBoc: { result: { '@type': 'ok' } } };
    const message = beginCell().storeUint(0xdeadbeef, 32).endCell();
    await chain().send(message);
    expect(calls.map((c) => [c.method, c.params])).toEqual([['sendBoc', { boc: message.toBoc().toString('base64') }]]);
  });

  it('walks getTransactions pages back to sinceLt and reads the batches the sandbox reads', async () => {
    const f = await payoutFixture();
    const to = Address.parse(randomRecipient());
    // 104 one-transfer batches plus the funding: two pages of 100.
    for (let seqno = 0; seqno < 104; seqno++) {
      const transfers = [{ payoutId: `p${seqno}`, to, amount: 1_000_000n }];
      await f.chain.send(f.wallet.signBatch({ seqno, expiresAt: Date.now() + 60_000, transfers }));
    }
    const newestFirst = [...(await f.chain.blockchain.getTransactions(f.wallet.address))].sort((a, b) => (a.lt < b.lt ? 1 : -1));
    expect(newestFirst).toHaveLength(105);
    standIn.replies = { getTransactions: (params) => ({ result: transactionsPage(newestFirst, params) }) };
    const http = new TonClientChain({ endpoint, timeoutMs: 5_000 });

    const found = await http.findTransfers(f.wallet.address);
    expect(found).toHaveLength(104);
    expect(found).toEqual(await f.chain.findTransfers(f.wallet.address));
    const pages = calls.filter((c) => c.method === 'getTransactions').map((c) => c.params);
    const hundredth = newestFirst[99];
    expect(pages).toEqual([
      { address: f.wallet.address.toString(), limit: 100, to_lt: '0', archival: true },
      {
        address: f.wallet.address.toString(),
        limit: 101,
        to_lt: '0',
        archival: true,
        lt: hundredth?.lt.toString(),
        hash: hundredth?.hash().toString('hex'),
      },
    ]);

    const since = newestFirst[50]?.lt ?? 0n;
    const recent = await http.findTransfers(f.wallet.address, since);
    expect(recent).toHaveLength(50);
    expect(recent).toEqual(await f.chain.findTransfers(f.wallet.address, since));
  }, 60_000);

  it('rejects when sendBoc is refused, so the runner retries and reconciles', async () => {
    standIn.replies = { sendBoc: { status: 500, body: { ok: false, error: 'cannot apply external message', code: 500 } } };
    await expect(chain().send(beginCell().endCell())).rejects.toThrow(/Received error|status code 500/);
  });
});
