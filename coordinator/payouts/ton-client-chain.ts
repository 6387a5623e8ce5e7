/**
 * `Chain` on testnet or mainnet through `@ton/ton`'s `TonClient` (toncenter HTTP API v2),
 * chosen by configuration. The tests check its requests against a local stand-in for the
 * endpoint (`ton-client-chain.test.ts`), not against testnet: `findTransfers` is unchecked.
 */
import { TonClient } from '@ton/ton';
import { type Address, type Cell } from '@ton/core';
import { parseHotWalletTx, type Chain, type HotWalletTx } from './chain.ts';

/** How to reach a TON HTTP API endpoint. */
export interface TonClientChainOptions {
  /** e.g. `https://testnet.toncenter.com/api/v2/jsonRPC`. */
  readonly endpoint: string;
  /** toncenter API key; without one the endpoint rate-limits to about 1 request/s. */
  readonly apiKey?: string;
  /** Per-request HTTP timeout, ms. */
  readonly timeoutMs?: number;
}

/** Transactions fetched per page while walking back to `sinceLt`. */
const PAGE = 100;

/** A `Chain` backed by a toncenter-compatible HTTP endpoint. */
export class TonClientChain implements Chain {
  readonly client: TonClient;

  constructor(options: TonClientChainOptions) {
    this.client = new TonClient({
      endpoint: options.endpoint,
      ...(options.apiKey !== undefined && { apiKey: options.apiKey }),
      timeout: options.timeoutMs ?? 10_000,
    });
  }

  async getSeqno(wallet: Address): Promise<number> {
    const state = await this.client.getContractState(wallet);
    if (state.state !== 'active') return 0;
    const result = await this.client.runMethod(wallet, 'seqno');
    return result.stack.readNumber();
  }

  async getBalance(address: Address): Promise<bigint> {
    return this.client.getBalance(address);
  }

  async getLastLt(address: Address): Promise<bigint> {
    const state = await this.client.getContractState(address);
    return state.lastTransaction === null ? 0n : BigInt(state.lastTransaction.lt);
  }

  async send(external: Cell): Promise<void> {
    await this.client.sendFile(external.toBoc());
  }

  async findTransfers(hotWallet: Address, sinceLt = 0n): Promise<HotWalletTx[]> {
    const found: HotWalletTx[] = [];
    let cursor: { lt: string; hash: string } | undefined;
    for (;;) {
      const page = await this.client.getTransactions(hotWallet, {
        limit: PAGE,
        ...(cursor === undefined ? {} : { lt: cursor.lt, hash: cursor.hash, inclusive: false }),
        to_lt: sinceLt.toString(),
        archival: true,
      });
      for (const tx of page) {
        if (tx.lt <= sinceLt) continue;
        const parsed = parseHotWalletTx(tx);
        if (parsed !== null) found.push(parsed);
      }
      const last = page.at(-1);
      if (page.length < PAGE || last === undefined) break;
      cursor = { lt: last.lt.toString(), hash: last.hash().toString('base64') };
    }
    return found.sort((a, b) => (a.lt < b.lt ? -1 : a.lt > b.lt ? 1 : 0));
  }
}
