/** `DepositChain` on the in-process @ton/sandbox blockchain, and its faucet for local deposits. */
import { type Address, comment, toNano } from '@ton/core';
import type { Blockchain } from '@ton/sandbox';
import { type DepositChain, type IncomingTransfer, parseIncoming } from './chain.ts';

export class SandboxDepositChain implements DepositChain {
  constructor(readonly blockchain: Blockchain) {}

  async incoming(address: Address, sinceLt: bigint): Promise<IncomingTransfer[]> {
    // The sandbox's getTransactions order is not stable between calls: sort.
    const transactions = await this.blockchain.getTransactions(address);
    return transactions
      .filter((tx) => tx.lt > sinceLt)
      .sort((a, b) => (a.lt < b.lt ? -1 : a.lt > b.lt ? 1 : 0))
      .map(parseIncoming)
      .filter((t): t is IncomingTransfer => t !== null);
  }

  async lastLt(address: Address): Promise<bigint> {
    return (await this.blockchain.getContract(address)).lastTransactionLt;
  }
}

/**
 * Test money on the sandbox chain: a real transfer from a sandbox wallet to the deposit
 * address with a text comment, which the watcher then books like any deposit.
 */
export class SandboxFaucet {
  constructor(
    readonly blockchain: Blockchain,
    readonly depositAddress: Address,
  ) {}

  /**
   * Sends `amount` nanoTON with `memo` as the comment, from the sandbox wallet named `from`
   * (made on first use with a billion test TON); `bounce` as a wallet would set it.
   */
  async send(memo: string | null, amount: bigint, options: { bounce?: boolean; from?: string } = {}): Promise<void> {
    const sender = await this.blockchain.treasury(options.from ?? 'spinneret-deposit-faucet', { balance: toNano('1000000000') });
    const balance = (await this.blockchain.getContract(sender.address)).balance;
    if (balance < amount + toNano('1')) throw new RangeError(`the faucet holds ${balance} nanoTON, too little to send ${amount}`);
    await sender.send({
      to: this.depositAddress,
      value: amount,
      bounce: options.bounce ?? false,
      ...(memo === null ? {} : { body: comment(memo) }),
    });
  }
}
