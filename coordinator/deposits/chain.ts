/**
 * The deposit address's incoming transfers, as the deposit watcher reads them. Two
 * implementations: the in-process @ton/sandbox chain (local runs and tests) and toncenter's
 * HTTP API through @ton/ton's TonClient (testnet, mainnet).
 */
import type { Address, Cell, Transaction } from '@ton/core';

/** One transfer the deposit address received and kept. */
export interface IncomingTransfer {
  /** Logical time of the receiving transaction. */
  readonly lt: bigint;
  /** Hash of the receiving transaction, hex. */
  readonly hash: string;
  /** nanoTON credited to the deposit address. */
  readonly amount: bigint;
  /** Sender, raw form (`0:<hex>`). */
  readonly from: string;
  /** The text comment, or null when the body carries none. */
  readonly comment: string | null;
}

/** Reads a deposit address. Every call may be slow or fail; the watcher retries on its next tick. */
export interface DepositChain {
  /** Transfers received after `sinceLt` (exclusive), oldest first. */
  incoming(address: Address, sinceLt: bigint): Promise<IncomingTransfer[]>;
  /** Logical time of the address's last transaction (0n: none). */
  lastLt(address: Address): Promise<bigint>;
}

/**
 * The transfer a transaction of the deposit address received, or null when it kept nothing:
 * not an inbound internal message, a bounce of our own message, a transfer that bounced
 * back to its sender (its value was returned), or one that credited nothing. A non-bounceable
 * transfer whose compute phase failed still credited the address, so it is booked.
 */
export function parseIncoming(tx: Transaction): IncomingTransfer | null {
  const message = tx.inMessage;
  if (!message || message.info.type !== 'internal' || message.info.bounced) return null;
  const description = tx.description;
  if (description.type !== 'generic') return null;
  if (description.bouncePhase !== undefined && description.bouncePhase !== null) return null;
  const amount = description.creditPhase?.credit.coins ?? 0n;
  if (amount <= 0n) return null;
  return {
    lt: tx.lt,
    hash: tx.hash().toString('hex'),
    amount,
    from: message.info.src.toRawString(),
    comment: readComment(message.body),
  };
}

/** A text comment (op 0 and a UTF-8 string, possibly across cells), or null. */
export function readComment(body: Cell): string | null {
  const slice = body.beginParse();
  if (slice.remainingBits < 32 || slice.loadUint(32) !== 0) return null;
  try {
    return slice.loadStringTail();
  } catch {
    return null;
  }
}
