/**
 * What the ledger's operations take and give (coordinator/ledger/ledger.ts).
 */
import type { Usage } from '../../protocol/jobs.ts';
import type { Payer } from './accounts.ts';
import type { PriceList } from './prices.ts';

/** Options for {@link Ledger}. */
export interface LedgerOptions {
  /** Clock for `created_at`, ms since epoch. Default Date.now. */
  now?: () => number;
  /** Default: the bundled prices.json. */
  prices?: PriceList;
}

/** Where a deposit is booked. */
export type DepositTarget =
  { readonly kind: 'requester'; readonly apiKeyId: string } | { readonly kind: 'budget' } | { readonly kind: 'unmatched' };

/** A transfer that arrived on the deposit address. */
export interface DepositInput {
  /** Logical time of the chain transaction. */
  lt: bigint;
  /** Hash of the chain transaction, hex. */
  hash: string;
  /** nanoTON received, > 0. */
  amount: bigint;
  to: DepositTarget;
  /** What the operator sees: sender and comment. */
  note: string;
}

/** A job's maximum price, held before it runs. */
export interface ReserveInput {
  jobId: string;
  payer: Payer;
  /** nanoTON, ≥ 0. */
  amount: bigint;
  /** For the budget: most nanoTON it may have reserved at once; a reservation past it is refused. */
  limit?: bigint;
}

/** A finished job to charge. */
export interface ChargeJobInput {
  jobId: string;
  /** The TON address the contributor is paid to; null: no wallet, its share goes to `network:unclaimed`. */
  contributorWallet: string | null;
  model: string;
  /** The billed usage: the contributor's report clamped to the envelope. */
  usage: Usage;
}

/** A payout about to be sent. */
export interface PayoutIntentInput {
  payoutId: string;
  wallet: string;
  /** nanoTON, > 0, at most the wallet's settled balance. */
  amount: bigint;
}

/** A payout seen on chain. */
export interface PayoutConfirmInput {
  payoutId: string;
  txHash: string;
  /** Chain fee paid by the hot wallet, nanoTON, ≥ 0. */
  fee: bigint;
}

/** A payer's balances, positive nanoTON. */
export interface PayerBalances {
  /** Deposited (or funded) and not reserved. */
  available: bigint;
  /** Held for jobs in flight. */
  reserved: bigint;
}
