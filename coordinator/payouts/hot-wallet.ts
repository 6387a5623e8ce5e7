/**
 * The network's hot wallet: a WalletContractV5R1 whose key comes from the environment or a
 * secret file. The secret key stays in a private field and is never logged or returned.
 */
import { readFile } from 'node:fs/promises';
import { beginCell, external, internal, SendMode, storeMessage, type Address, type Cell } from '@ton/core';
import { mnemonicToPrivateKey, mnemonicValidate } from '@ton/crypto';
import { WalletContractV5R1 } from '@ton/ton';
import { PAYOUT_COMMENT_PREFIX } from './chain.ts';
import { HotWalletConfigError } from './errors.ts';

/** Env var holding the 24-word mnemonic, space-separated. */
export const MNEMONIC_ENV = 'SPINNERET_HOT_WALLET_MNEMONIC';
/** Env var holding the path of a file with the mnemonic (preferred in production). */
export const MNEMONIC_FILE_ENV = 'SPINNERET_HOT_WALLET_MNEMONIC_FILE';

/** Most transfers one V5R1 external message carries. */
export const MAX_TRANSFERS_PER_MESSAGE = 255;

/** One transfer to sign. */
export interface Transfer {
  readonly payoutId: string;
  readonly to: Address;
  /** nanoTON. */
  readonly amount: bigint;
}

/** The hot wallet: its address and the ability to sign batches, not its key. */
export class HotWallet {
  readonly contract: WalletContractV5R1;
  readonly #secretKey: Buffer;

  /** Prefer {@link loadHotWallet} or {@link HotWallet.fromMnemonic}. */
  constructor(publicKey: Buffer, secretKey: Buffer) {
    this.contract = WalletContractV5R1.create({ workchain: 0, publicKey });
    this.#secretKey = secretKey;
  }

  /** Derives the key pair from a mnemonic; throws without echoing the words. */
  static async fromMnemonic(words: readonly string[]): Promise<HotWallet> {
    if (!(await mnemonicValidate([...words]))) {
      throw new HotWalletConfigError('the hot wallet mnemonic is not a valid TON mnemonic');
    }
    const keys = await mnemonicToPrivateKey([...words]);
    return new HotWallet(keys.publicKey, keys.secretKey);
  }

  get address(): Address {
    return this.contract.address;
  }

  /**
   * Signs one external message sending `transfers` as non-bounceable messages with the
   * payout id in the comment. `expiresAt` (ms since epoch) becomes the wallet's
   * `valid_until`. Includes the wallet's StateInit while it is undeployed (seqno 0).
   *
   * Non-bounceable whatever form the address was given in: a contributor's wallet is often
   * not deployed yet, and a bounceable transfer to it would come back to the hot wallet
   * while the payout, already sent, counts as paid. Non-bounceable, the money waits on
   * the contributor's address until their wallet deploys.
   */
  signBatch(args: { seqno: number; expiresAt: number; transfers: readonly Transfer[] }): Cell {
    if (args.transfers.length > MAX_TRANSFERS_PER_MESSAGE) {
      throw new RangeError(`a V5R1 message carries at most ${MAX_TRANSFERS_PER_MESSAGE} transfers`);
    }
    const body = this.contract.createTransfer({
      seqno: args.seqno,
      secretKey: this.#secretKey,
      timeout: Math.floor(args.expiresAt / 1000),
      // IGNORE_ERRORS: one unpayable transfer is skipped (and reconciled as failed) rather
      // than failing the whole batch.
      sendMode: SendMode.PAY_GAS_SEPARATELY | SendMode.IGNORE_ERRORS,
      messages: args.transfers.map((t) => internal({ to: t.to, value: t.amount, bounce: false, body: PAYOUT_COMMENT_PREFIX + t.payoutId })),
    });
    const message = external({
      to: this.address,
      ...(args.seqno === 0 ? { init: this.contract.init } : {}),
      body,
    });
    return beginCell().store(storeMessage(message)).endCell();
  }

  /** Never reveals the key, whatever logs it. */
  toJSON(): { address: string } {
    return { address: this.address.toString() };
  }
}

/** Where {@link loadHotWallet} looks. Defaults: `process.env` and the file system. */
export interface HotWalletSource {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly readText?: (path: string) => Promise<string>;
}

/** Loads the hot wallet from `SPINNERET_HOT_WALLET_MNEMONIC` or `..._MNEMONIC_FILE`. */
export async function loadHotWallet(source: HotWalletSource = {}): Promise<HotWallet> {
  const env = source.env ?? process.env;
  const readText = source.readText ?? ((path: string) => readFile(path, 'utf8'));
  let text = env[MNEMONIC_ENV];
  const path = env[MNEMONIC_FILE_ENV];
  if (text === undefined && path !== undefined) {
    try {
      text = await readText(path);
    } catch (err) {
      throw new HotWalletConfigError(`cannot read the hot wallet secret file ${path}: ${String(err)}`);
    }
  }
  if (text === undefined) {
    throw new HotWalletConfigError(`set ${MNEMONIC_ENV} or ${MNEMONIC_FILE_ENV} to configure the hot wallet`);
  }
  return HotWallet.fromMnemonic(text.trim().split(/\s+/));
}
