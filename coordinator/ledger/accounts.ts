/**
 * Account names. Amounts are signed nanoTON, debit positive, credit negative, so the
 * accounts owed to someone (contributor pending/settled/in-flight, `fees:network`) carry
 * negative sums, and those that hold or are owed value (requester, `chain-fees`) positive.
 */

/** A requester (API key): debited the gross of each job, refunded by a void. */
export const requesterAccount = (apiKeyId: string): string => `requester:${apiKeyId}`;
/** Owed to a contributor, inside the verification window. */
export const pendingAccount = (wallet: string): string => `contributor:${wallet}:pending`;
/** Owed to a contributor, past the window, payable. */
export const settledAccount = (wallet: string): string => `contributor:${wallet}:settled`;
/** Owed to a contributor, in a payout sent but not yet confirmed on chain. */
export const inFlightAccount = (wallet: string): string => `contributor:${wallet}:in-flight`;
/** The network's commission. */
export const FEES_NETWORK = 'fees:network';
/** The TON wallet that pays contributors; credited by each confirmed payout and its fee. */
export const HOT_WALLET = 'hot-wallet';
/** Chain fees the network paid for payouts. */
export const CHAIN_FEES = 'chain-fees';

/** Prefix of every contributor account, for checks over all of them. */
export const CONTRIBUTOR_PREFIX = 'contributor:';

/** Transaction (and entry) kinds. */
export type TxnKind = 'job.credit' | 'job.settle' | 'job.void' | 'payout.intent' | 'payout.confirm' | 'payout.fail';

/** Idempotency keys, one per event that moves money. */
export const keys = {
  credit: (jobId: string) => `job:${jobId}:credit`,
  settle: (jobId: string) => `job:${jobId}:settle`,
  void: (jobId: string) => `job:${jobId}:void`,
  intent: (payoutId: string) => `payout:${payoutId}:intent`,
  confirm: (payoutId: string) => `payout:${payoutId}:confirm`,
  fail: (payoutId: string) => `payout:${payoutId}:fail`,
};
