/**
 * Account names. Amounts are signed nanoTON, debit positive, credit negative, so the
 * accounts owed to someone (a requester's balances, contributor pending/settled/in-flight,
 * `fees:network`, the budget, penalties, unmatched deposits) carry negative sums, and those
 * that hold value (`chain:deposits`, `chain-fees`) positive.
 *
 * Money comes in only as deposits (`chain:deposits` is debited, a requester's `available`,
 * the check budget or `deposits:unmatched` credited), goes out only as payouts (`hot-wallet`
 * credited), and moves in between by jobs: reserve (available → reserved), charge (reserved →
 * contributor pending + `fees:network`, the rest back to available), release (reserved →
 * available), void (pending → `network:penalties`).
 */

/** What a requester (API key) deposited and has not reserved. */
export const availableAccount = (apiKeyId: string): string => `requester:${apiKeyId}:available`;
/** What a requester has reserved for jobs in flight. */
export const reservedAccount = (apiKeyId: string): string => `requester:${apiKeyId}:reserved`;
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
/** TON received on the deposit address, debited by each booked deposit. */
export const CHAIN_DEPOSITS = 'chain:deposits';
/** Deposits whose comment names no API key: held for the operator to return or assign. */
export const UNMATCHED_DEPOSITS = 'deposits:unmatched';
/** What the network set aside to pay for its checks (canaries, replicas, tie-breaks, re-runs). */
export const BUDGET_AVAILABLE = 'network:budget:available';
/** What the check budget has reserved for checks in flight. */
export const BUDGET_RESERVED = 'network:budget:reserved';
/** Voided contributor shares: work that failed its checks or was disputed. Never refunded. */
export const PENALTIES = 'network:penalties';
/** Shares of delivered jobs whose contributor had no payout wallet. */
export const UNCLAIMED = 'network:unclaimed';

/** Prefix of every contributor account, for checks over all of them. */
export const CONTRIBUTOR_PREFIX = 'contributor:';
/** Prefix of every requester account. */
export const REQUESTER_PREFIX = 'requester:';

/** Who pays for a job: a requester's API key, or the network's check budget. */
export type Payer = { readonly kind: 'requester'; readonly apiKeyId: string } | { readonly kind: 'budget' };

/** The available and reserved accounts of a payer. */
export function payerAccounts(payer: Payer): { available: string; reserved: string } {
  return payer.kind === 'budget'
    ? { available: BUDGET_AVAILABLE, reserved: BUDGET_RESERVED }
    : { available: availableAccount(payer.apiKeyId), reserved: reservedAccount(payer.apiKeyId) };
}

/** Transaction (and entry) kinds. */
export type TxnKind =
  | 'deposit'
  | 'deposit.assign'
  | 'budget.fund'
  | 'job.reserve'
  | 'job.credit'
  | 'job.release'
  | 'job.settle'
  | 'job.void'
  | 'payout.intent'
  | 'payout.confirm'
  | 'payout.fail';

/** Idempotency keys, one per event that moves money. */
export const keys = {
  /** A chain transaction is identified by its logical time and hash. */
  deposit: (lt: bigint, hash: string) => `deposit:${lt}:${hash}`,
  assign: (depositKey: string) => `${depositKey}:assign`,
  fund: (fundingId: string) => `budget:${fundingId}:fund`,
  reserve: (jobId: string) => `job:${jobId}:reserve`,
  credit: (jobId: string) => `job:${jobId}:credit`,
  release: (jobId: string) => `job:${jobId}:release`,
  settle: (jobId: string) => `job:${jobId}:settle`,
  void: (jobId: string) => `job:${jobId}:void`,
  intent: (payoutId: string) => `payout:${payoutId}:intent`,
  confirm: (payoutId: string) => `payout:${payoutId}:confirm`,
  fail: (payoutId: string) => `payout:${payoutId}:fail`,
};
