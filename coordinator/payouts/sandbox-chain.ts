/**
 * `Chain` on an in-process `@ton/sandbox` blockchain: the default for local runs and tests.
 * Messages execute synchronously inside `send`, so the seqno has advanced when it returns.
 */
import { Blockchain, GetMethodError } from '@ton/sandbox';
import { type Address, type Cell } from '@ton/core';
import { noGetPublicKey, notActive, publicKeyFromStack, type PublicKeyLookup } from '../wallets/public-key-lookup.ts';
import { parseHotWalletTx, type Chain, type HotWalletTx } from './chain.ts';

/** Options for {@link SandboxChain.create}. */
export interface SandboxChainOptions {
  /** Accounts to fund at creation (non-bounceable transfers from a sandbox treasury). */
  readonly fund?: readonly { readonly address: Address; readonly amount: bigint }[];
}

/** A `Chain` backed by a fresh in-process sandbox blockchain. */
export class SandboxChain implements Chain {
  private constructor(readonly blockchain: Blockchain) {}

  /** Creates a fresh blockchain and funds the given accounts (e.g. the hot wallet). */
  static async create(options: SandboxChainOptions = {}): Promise<SandboxChain> {
    const chain = new SandboxChain(await Blockchain.create());
    for (const { address, amount } of options.fund ?? []) await chain.fund(address, amount);
    return chain;
  }

  /** Sends `amount` nanoTON to `address` from the sandbox treasury (test money). */
  async fund(address: Address, amount: bigint): Promise<void> {
    const treasury = await this.blockchain.treasury('spinneret-faucet', { balance: amount + 10n ** 12n });
    await treasury.send({ to: address, value: amount, bounce: false });
  }

  async getSeqno(wallet: Address): Promise<number> {
    const contract = await this.blockchain.getContract(wallet);
    if (contract.accountState?.type !== 'active') return 0;
    const result = await this.blockchain.runGetMethod(wallet, 'seqno');
    return result.stackReader.readNumber();
  }

  async getBalance(address: Address): Promise<bigint> {
    return (await this.blockchain.getContract(address)).balance;
  }

  async getLastLt(address: Address): Promise<bigint> {
    return (await this.blockchain.getContract(address)).lastTransactionLt;
  }

  async send(external: Cell): Promise<void> {
    await this.blockchain.sendMessage(external);
  }

  /** Runs wallets' `get_public_key` on this chain, for `ton_proof`s of wallets the verifier does not know. */
  publicKeys(chainName = 'the local sandbox chain'): PublicKeyLookup {
    const { blockchain } = this;
    return {
      chainName,
      async getPublicKey(address) {
        const contract = await blockchain.getContract(address);
        const state = contract.accountState?.type ?? 'uninit';
        if (state !== 'active') return notActive(state, chainName);
        try {
          return publicKeyFromStack((await blockchain.runGetMethod(address, 'get_public_key')).stackReader);
        } catch (err) {
          if (err instanceof GetMethodError) return noGetPublicKey(err.exitCode);
          throw err;
        }
      },
    };
  }

  async findTransfers(hotWallet: Address, sinceLt = 0n): Promise<HotWalletTx[]> {
    // getTransactions reverses the sandbox's own array in place, so its order is not
    // stable between calls: sort here.
    const transactions = await this.blockchain.getTransactions(hotWallet);
    return transactions
      .filter((tx) => tx.lt > sinceLt)
      .sort((a, b) => (a.lt < b.lt ? -1 : a.lt > b.lt ? 1 : 0))
      .map(parseHotWalletTx)
      .filter((tx): tx is HotWalletTx => tx !== null);
  }
}
