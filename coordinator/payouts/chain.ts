/**
 * The chain as the payout runner sees it: the hot wallet's seqno, balances, sending one
 * signed external message, and reading back what the hot wallet actually sent. Two
 * implementations: `SandboxChain` (in-process, tests and local runs) and `TonClientChain`
 * (testnet/mainnet over toncenter's HTTP API).
 */
import type { Address, Cell, Transaction } from '@ton/core';
import { WalletContractV5R1 } from '@ton/ton';

/** Prefix of the text comment that carries a payout id in each transfer. */
export const PAYOUT_COMMENT_PREFIX = 'spinneret:payout:';

/** One outgoing transfer of the hot wallet that carries a payout id. */
export interface ChainTransfer {
  readonly payoutId: string;
  /** Destination, raw form (`0:<hex>`). */
  readonly to: string;
  /** nanoTON sent. */
  readonly amount: bigint;
}

/** One transaction of the hot wallet triggered by our signed external message. */
export interface HotWalletTx {
  /** The wallet seqno the external message was signed for. */
  readonly seqno: number;
  /** Transaction hash, hex. */
  readonly hash: string;
  /** Logical time. */
  readonly lt: bigint;
  /** nanoTON the hot wallet paid on top of the amounts: tx fees plus forward fees. */
  readonly fee: bigint;
  /** True when the compute or action phase failed (the seqno is used, nothing was sent). */
  readonly aborted: boolean;
  readonly transfers: readonly ChainTransfer[];
}

/** A chain endpoint. Every call may be slow or hang; callers bound it with a timeout. */
export interface Chain {
  /** The wallet's seqno; 0 while it is not deployed. */
  getSeqno(wallet: Address): Promise<number>;
  /** nanoTON balance (0 for an unknown account). */
  getBalance(address: Address): Promise<bigint>;
  /** Logical time of the account's last transaction (0n: none). */
  getLastLt(address: Address): Promise<bigint>;
  /** Hands one serialized external message (a whole `Message` cell) to the network. */
  send(external: Cell): Promise<void>;
  /** The hot wallet's transactions after `sinceLt` (exclusive), oldest first. */
  findTransfers(hotWallet: Address, sinceLt?: bigint): Promise<HotWalletTx[]>;
}

/** The payout id in a transfer comment, or null when the comment is not ours. */
export function payoutIdFromComment(text: string): string | null {
  return text.startsWith(PAYOUT_COMMENT_PREFIX) ? text.slice(PAYOUT_COMMENT_PREFIX.length) : null;
}

/**
 * Reads a hot-wallet transaction produced by a signed V5R1 external message, or null for
 * any other transaction (incoming funds, bounces). The V5R1 signed body is
 * `op:32 wallet_id:32 valid_until:32 seqno:32 actions... signature:512`.
 */
export function parseHotWalletTx(tx: Transaction): HotWalletTx | null {
  const inMessage = tx.inMessage;
  if (!inMessage || inMessage.info.type !== 'external-in') return null;
  const body = inMessage.body.beginParse();
  if (body.remainingBits < 128) return null;
  if (body.loadUint(32) !== WalletContractV5R1.OpCodes.auth_signed_external) return null;
  body.skip(64);
  const seqno = body.loadUint(32);
  let fee = tx.totalFees.coins;
  const transfers: ChainTransfer[] = [];
  for (const message of tx.outMessages.values()) {
    if (message.info.type !== 'internal') continue;
    fee += message.info.forwardFee;
    const payoutId = readPayoutId(message.body);
    if (payoutId === null) continue;
    transfers.push({ payoutId, to: message.info.dest.toRawString(), amount: message.info.value.coins });
  }
  const description = tx.description;
  const aborted = description.type === 'generic' && description.aborted;
  return { seqno, hash: tx.hash().toString('hex'), lt: tx.lt, fee, aborted, transfers };
}

function readPayoutId(body: Cell): string | null {
  const slice = body.beginParse();
  if (slice.remainingBits < 32 || slice.loadUint(32) !== 0) return null;
  try {
    return payoutIdFromComment(slice.loadStringTail());
  } catch {
    return null;
  }
}
