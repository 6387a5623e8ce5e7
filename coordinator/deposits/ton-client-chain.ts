/**
 * `DepositChain` on testnet or mainnet through @ton/ton's TonClient (toncenter HTTP API v2).
 * Tested against a local stand-in serving transactions recorded on the sandbox chain
 * (`ton-client-chain.test.ts`), not against a live network.
 */
import type { Address } from '@ton/core';
import type { TonClient } from '@ton/ton';
import { type DepositChain, type IncomingTransfer, parseIncoming } from './chain.ts';

/** Transactions fetched per page while walking back to `sinceLt`. */
const PAGE = 100;

export class TonClientDepositChain implements DepositChain {
  constructor(readonly client: TonClient) {}

  async incoming(address: Address, sinceLt: bigint): Promise<IncomingTransfer[]> {
    const found: IncomingTransfer[] = [];
    let cursor: { lt: string; hash: string } | undefined;
    for (;;) {
      const page = await this.client.getTransactions(address, {
        limit: PAGE,
        ...(cursor === undefined ? {} : { lt: cursor.lt, hash: cursor.hash, inclusive: false }),
        to_lt: sinceLt.toString(),
        archival: true,
      });
      for (const tx of page) {
        if (tx.lt <= sinceLt) continue;
        const transfer = parseIncoming(tx);
        if (transfer !== null) found.push(transfer);
      }
      const last = page.at(-1);
      if (page.length < PAGE || last === undefined) break;
      cursor = { lt: last.lt.toString(), hash: last.hash().toString('base64') };
    }
    return found.sort((a, b) => (a.lt < b.lt ? -1 : a.lt > b.lt ? 1 : 0));
  }

  async lastLt(address: Address): Promise<bigint> {
    const state = await this.client.getContractState(address);
    return state.lastTransaction === null ? 0n : BigInt(state.lastTransaction.lt);
  }
}
