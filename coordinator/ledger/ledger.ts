/**
 * The money ledger: every movement of nanoTON is one balanced, idempotent transaction in
 * `ledger_entries`; balances are sums over entries, never stored. See accounts.ts for the
 * accounts and the sign convention.
 */
import type { Usage } from '../../protocol/jobs.ts';
import type { SqlClient, SqlDb } from '../store/sql.ts';
import {
  CHAIN_FEES,
  FEES_NETWORK,
  HOT_WALLET,
  inFlightAccount,
  keys,
  pendingAccount,
  requesterAccount,
  settledAccount,
} from './accounts.ts';
import { checkBooks, walletBalances, type BookCheck, type ContributorBalances } from './books.ts';
import {
  InsufficientSettledError,
  InvalidAmountError,
  JobStateError,
  UnknownJobError,
  PayoutStateError,
  UnknownPayoutError,
} from './errors.ts';
import { defaultPrices, price, type PriceList } from './prices.ts';
import { postTxn, readTxn, replayOf, type LedgerTxn, type TxnSpec } from './txn.ts';

/** Options for {@link Ledger}. */
export interface LedgerOptions {
  /** Clock for `created_at`, ms since epoch. Default Date.now. */
  now?: () => number;
  /** Default: the bundled prices.json. */
  prices?: PriceList;
}

/** A finished job to credit. */
export interface CreditJobInput {
  jobId: string;
  /** The requester's API key id. */
  requester: string;
  /** The TON address the contributor is paid to. */
  contributorWallet: string;
  model: string;
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

const PENDING = /^contributor:(.*):pending$/;
const IN_FLIGHT = /^contributor:(.*):in-flight$/;

/** Double-entry, append-only, idempotent ledger over the store's database. */
export class Ledger {
  private readonly now: () => number;
  private readonly prices: PriceList;

  constructor(
    private readonly db: SqlDb,
    options: LedgerOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.prices = options.prices ?? defaultPrices();
  }

  /**
   * Charges the requester the job's gross and owes the contributor its share (pending) and
   * the network its commission. Replaying the same job returns the first credit.
   */
  async creditJob(input: CreditJobInput): Promise<LedgerTxn> {
    const { gross, commission, contributorShare } = price(input.model, input.usage, this.prices);
    const spec: TxnSpec = {
      idempotencyKey: keys.credit(input.jobId),
      kind: 'job.credit',
      ref: input.jobId,
      entries: [
        { account: requesterAccount(input.requester), amount: gross },
        { account: pendingAccount(input.contributorWallet), amount: -contributorShare },
        { account: FEES_NETWORK, amount: -commission },
      ],
    };
    return this.db.transaction((tx) => postTxn(tx, spec, this.now()));
  }

  /** Moves the job's share from pending to settled. The caller checks the verification window. */
  async settleJob(jobId: string): Promise<LedgerTxn> {
    return this.db.transaction(async (tx) => {
      const credit = await this.lockJob(tx, jobId);
      const entries = credit.entries.flatMap((e) => {
        const wallet = PENDING.exec(e.account)?.[1];
        return wallet === undefined
          ? []
          : [
              { account: e.account, amount: -e.amount },
              { account: settledAccount(wallet), amount: e.amount },
            ];
      });
      const spec: TxnSpec = { idempotencyKey: keys.settle(jobId), kind: 'job.settle', ref: jobId, entries };
      const existing = await readTxn(tx, spec.idempotencyKey);
      if (existing !== undefined) return replayOf(existing, spec);
      if (await readTxn(tx, keys.void(jobId))) throw new JobStateError(jobId, 'voided');
      return postTxn(tx, spec, this.now());
    });
  }

  /** Reverses the job's credit: the requester is refunded, nobody is owed anything. */
  async voidJob(jobId: string, reason: string): Promise<LedgerTxn> {
    return this.db.transaction(async (tx) => {
      const credit = await this.lockJob(tx, jobId);
      const entries = credit.entries.map((e) => ({ account: e.account, amount: -e.amount }));
      const spec: TxnSpec = { idempotencyKey: keys.void(jobId), kind: 'job.void', ref: jobId, note: reason, entries };
      const existing = await readTxn(tx, spec.idempotencyKey);
      if (existing !== undefined) return replayOf(existing, spec);
      if (await readTxn(tx, keys.settle(jobId))) throw new JobStateError(jobId, 'settled');
      return postTxn(tx, spec, this.now());
    });
  }

  /** Moves `amount` from the wallet's settled balance to in-flight, before the chain transfer is sent. */
  async recordPayoutIntent(input: PayoutIntentInput): Promise<LedgerTxn> {
    if (input.amount <= 0n) throw new InvalidAmountError(`a payout amount must be positive, got ${input.amount}`);
    const spec: TxnSpec = {
      idempotencyKey: keys.intent(input.payoutId),
      kind: 'payout.intent',
      ref: input.payoutId,
      entries: [
        { account: settledAccount(input.wallet), amount: input.amount },
        { account: inFlightAccount(input.wallet), amount: -input.amount },
      ],
    };
    return this.db.transaction(async (tx) => {
      // One payout decision per wallet at a time, so two intents cannot both spend one balance.
      await tx.query(`SELECT pg_advisory_xact_lock(hashtext('spinneret.ledger.wallet'), hashtext($1))`, [input.wallet]);
      const existing = await readTxn(tx, spec.idempotencyKey);
      if (existing !== undefined) return replayOf(existing, spec);
      const { settled } = await walletBalances(tx, input.wallet);
      if (settled < input.amount) throw new InsufficientSettledError(input.wallet, input.amount, settled);
      return postTxn(tx, spec, this.now());
    });
  }

  /** The payout landed: in-flight is paid out of the hot wallet, and the chain fee is booked. */
  async confirmPayout(input: PayoutConfirmInput): Promise<LedgerTxn> {
    if (input.fee < 0n) throw new InvalidAmountError(`a chain fee cannot be negative, got ${input.fee}`);
    return this.db.transaction(async (tx) => {
      const { inFlight, amount } = await this.lockPayout(tx, input.payoutId);
      const spec: TxnSpec = {
        idempotencyKey: keys.confirm(input.payoutId),
        kind: 'payout.confirm',
        ref: input.payoutId,
        note: input.txHash,
        noteMatters: true,
        entries: [
          { account: inFlight, amount },
          { account: HOT_WALLET, amount: -amount },
          { account: CHAIN_FEES, amount: input.fee },
          { account: HOT_WALLET, amount: -input.fee },
        ],
      };
      const existing = await readTxn(tx, spec.idempotencyKey);
      if (existing !== undefined) return replayOf(existing, spec);
      if (await readTxn(tx, keys.fail(input.payoutId))) throw new PayoutStateError(input.payoutId, 'failed');
      return postTxn(tx, spec, this.now());
    });
  }

  /** The payout did not happen: in-flight goes back to settled. */
  async failPayout(payoutId: string): Promise<LedgerTxn> {
    return this.db.transaction(async (tx) => {
      const { inFlight, wallet, amount } = await this.lockPayout(tx, payoutId);
      const spec: TxnSpec = {
        idempotencyKey: keys.fail(payoutId),
        kind: 'payout.fail',
        ref: payoutId,
        entries: [
          { account: inFlight, amount },
          { account: settledAccount(wallet), amount: -amount },
        ],
      };
      const existing = await readTxn(tx, spec.idempotencyKey);
      if (existing !== undefined) return replayOf(existing, spec);
      if (await readTxn(tx, keys.confirm(payoutId))) throw new PayoutStateError(payoutId, 'confirmed');
      return postTxn(tx, spec, this.now());
    });
  }

  /** What the wallet is owed and was paid, in positive nanoTON. */
  async balances(wallet: string): Promise<ContributorBalances> {
    return walletBalances(this.db, wallet);
  }

  /** The signed sum of one account (debit positive). */
  async accountBalance(account: string): Promise<bigint> {
    const { rows } = await this.db.query<{ total: string }>(
      'SELECT coalesce(sum(amount), 0)::text AS total FROM ledger_entries WHERE account = $1',
      [account],
    );
    return BigInt(rows[0]?.total ?? '0');
  }

  /** Audits the whole ledger; see {@link checkBooks}. */
  async checkBooks(): Promise<BookCheck> {
    return checkBooks(this.db);
  }

  /** The job's credit, its row locked so settle and void of one job run one after the other. */
  private async lockJob(tx: SqlClient, jobId: string): Promise<LedgerTxn> {
    const credit = await readTxn(tx, keys.credit(jobId), true);
    if (credit === undefined) throw new UnknownJobError(jobId);
    return credit;
  }

  /** The payout's intent, locked likewise, with its wallet and amount. */
  private async lockPayout(tx: SqlClient, payoutId: string): Promise<{ inFlight: string; wallet: string; amount: bigint }> {
    const intent = await readTxn(tx, keys.intent(payoutId), true);
    if (intent === undefined) throw new UnknownPayoutError(payoutId);
    for (const e of intent.entries) {
      const wallet = IN_FLIGHT.exec(e.account)?.[1];
      if (wallet !== undefined) return { inFlight: e.account, wallet, amount: -e.amount };
    }
    throw new Error(`internal: payout ${payoutId}'s intent has no in-flight entry`);
  }
}
