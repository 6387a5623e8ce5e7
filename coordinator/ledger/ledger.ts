/**
 * The money ledger: every movement of nanoTON is one balanced, idempotent transaction in
 * `ledger_entries`; balances are sums over entries, never stored. See accounts.ts for the
 * accounts, the sign convention and the life of a job's money.
 */
import type { SqlDb } from '../store/sql.ts';
import {
  BUDGET_AVAILABLE,
  CHAIN_DEPOSITS,
  CHAIN_FEES,
  FEES_NETWORK,
  HOT_WALLET,
  inFlightAccount,
  keys,
  type Payer,
  payerAccounts,
  PENALTIES,
  pendingAccount,
  settledAccount,
  UNCLAIMED,
  UNMATCHED_DEPOSITS,
  availableAccount,
} from './accounts.ts';
import { checkBooks, walletBalances, type BookCheck, type ContributorBalances } from './books.ts';
import {
  BudgetLimitError,
  InsufficientFundsError,
  InsufficientSettledError,
  InvalidAmountError,
  JobStateError,
  UnknownDepositError,
  PayoutStateError,
} from './errors.ts';
import { defaultPrices, divRoundHalfUp, price, type PriceList } from './prices.ts';
import type {
  ChargeJobInput,
  DepositInput,
  LedgerOptions,
  PayerBalances,
  PayoutConfirmInput,
  PayoutIntentInput,
  ReserveInput,
} from './inputs.ts';
import { lockAccount, lockJob, lockPayout, lockReservation, PENDING, sumOf } from './locks.ts';
import { postTxn, readTxn, replayOf, type LedgerTxn, type TxnSpec } from './txn.ts';

export type {
  ChargeJobInput,
  DepositInput,
  DepositTarget,
  LedgerOptions,
  PayerBalances,
  PayoutConfirmInput,
  PayoutIntentInput,
  ReserveInput,
} from './inputs.ts';

/** Double-entry, append-only, idempotent ledger over the store's database. */
export class Ledger {
  private readonly now: () => number;
  readonly prices: PriceList;

  constructor(
    private readonly db: SqlDb,
    options: LedgerOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.prices = options.prices ?? defaultPrices();
  }

  /** Books a transfer seen on the deposit address, once per chain transaction. */
  async deposit(input: DepositInput): Promise<LedgerTxn> {
    if (input.amount <= 0n) throw new InvalidAmountError(`a deposit must be positive, got ${input.amount}`);
    const target =
      input.to.kind === 'requester'
        ? availableAccount(input.to.apiKeyId)
        : input.to.kind === 'budget'
          ? BUDGET_AVAILABLE
          : UNMATCHED_DEPOSITS;
    const spec: TxnSpec = {
      idempotencyKey: keys.deposit(input.lt, input.hash),
      kind: 'deposit',
      ref: `${input.lt}:${input.hash}`,
      note: input.note.slice(0, 500),
      entries: [
        { account: CHAIN_DEPOSITS, amount: input.amount },
        { account: target, amount: -input.amount },
      ],
    };
    return this.db.transaction((tx) => postTxn(tx, spec, this.now()));
  }

  /** Gives an unmatched deposit to the API key its sender meant (the operator's call). */
  async assignDeposit(depositKey: string, apiKeyId: string): Promise<LedgerTxn> {
    return this.db.transaction(async (tx) => {
      const deposit = await readTxn(tx, depositKey, true);
      const held = deposit?.kind === 'deposit' ? deposit.entries.find((e) => e.account === UNMATCHED_DEPOSITS) : undefined;
      if (deposit === undefined || held === undefined) throw new UnknownDepositError(depositKey);
      const spec: TxnSpec = {
        idempotencyKey: keys.assign(depositKey),
        kind: 'deposit.assign',
        ref: deposit.ref,
        entries: [
          { account: UNMATCHED_DEPOSITS, amount: -held.amount },
          { account: availableAccount(apiKeyId), amount: held.amount },
        ],
      };
      return postTxn(tx, spec, this.now());
    });
  }

  /** Moves `amount` of the network's commission into the check budget (the operator's call). */
  async fundBudgetFromFees(fundingId: string, amount: bigint): Promise<LedgerTxn> {
    if (amount <= 0n) throw new InvalidAmountError(`a budget funding must be positive, got ${amount}`);
    const spec: TxnSpec = {
      idempotencyKey: keys.fund(fundingId),
      kind: 'budget.fund',
      ref: fundingId,
      entries: [
        { account: FEES_NETWORK, amount },
        { account: BUDGET_AVAILABLE, amount: -amount },
      ],
    };
    return this.db.transaction(async (tx) => {
      await lockAccount(tx, FEES_NETWORK);
      const existing = await readTxn(tx, spec.idempotencyKey);
      if (existing !== undefined) return replayOf(existing, spec);
      const fees = -(await sumOf(tx, FEES_NETWORK));
      if (fees < amount) throw new InsufficientFundsError(FEES_NETWORK, amount, fees);
      return postTxn(tx, spec, this.now());
    });
  }

  /**
   * Holds a job's maximum price: the payer's available balance goes to reserved, or nothing
   * happens and {@link InsufficientFundsError} says how much is short. One reservation per
   * job, whatever its attempts; a replay returns the first.
   */
  async reserve(input: ReserveInput): Promise<LedgerTxn> {
    if (input.amount < 0n) throw new InvalidAmountError(`a reservation cannot be negative, got ${input.amount}`);
    const { available, reserved } = payerAccounts(input.payer);
    const spec: TxnSpec = {
      idempotencyKey: keys.reserve(input.jobId),
      kind: 'job.reserve',
      ref: input.jobId,
      note: input.payer.kind === 'budget' ? 'payer=budget' : `payer=requester:${input.payer.apiKeyId}`,
      noteMatters: true,
      entries: [
        { account: available, amount: input.amount },
        { account: reserved, amount: -input.amount },
      ],
    };
    return this.db.transaction(async (tx) => {
      // One reservation decision per payer at a time, so two jobs cannot both spend one balance.
      await lockAccount(tx, available);
      const existing = await readTxn(tx, spec.idempotencyKey);
      if (existing !== undefined) return replayOf(existing, spec);
      if (input.amount > 0n) {
        const have = -(await sumOf(tx, available));
        if (have < input.amount) throw new InsufficientFundsError(available, input.amount, have);
        if (input.limit !== undefined) {
          const held = -(await sumOf(tx, reserved));
          if (held + input.amount > input.limit) throw new BudgetLimitError(input.amount, held, input.limit);
        }
      }
      return postTxn(tx, spec, this.now());
    });
  }

  /**
   * Charges a finished job its price for the billed usage out of its reservation: the
   * contributor's share to its pending balance (or `network:unclaimed` without a wallet), the
   * commission to `fees:network`, the rest of the reservation back to the payer. Replaying
   * the same charge returns the first.
   */
  async chargeJob(input: ChargeJobInput): Promise<LedgerTxn> {
    const listed = price(input.model, input.usage, this.prices);
    return this.db.transaction(async (tx) => {
      const { payer, amount: held } = await lockReservation(tx, input.jobId);
      // Prices are fixed while a job runs, so the clamped usage never costs more than its envelope; the cap is a guard.
      const gross = listed.gross <= held ? listed.gross : held;
      const commission = gross === listed.gross ? listed.commission : divRoundHalfUp(gross * BigInt(this.prices.commissionBps), 10_000n);
      const { available, reserved } = payerAccounts(payer);
      const spec: TxnSpec = {
        idempotencyKey: keys.credit(input.jobId),
        kind: 'job.credit',
        ref: input.jobId,
        entries: [
          { account: reserved, amount: held },
          {
            account: input.contributorWallet === null ? UNCLAIMED : pendingAccount(input.contributorWallet),
            amount: -(gross - commission),
          },
          { account: FEES_NETWORK, amount: -commission },
          { account: available, amount: -(held - gross) },
        ],
      };
      const existing = await readTxn(tx, spec.idempotencyKey);
      if (existing !== undefined) return replayOf(existing, spec);
      if (await readTxn(tx, keys.release(input.jobId))) throw new JobStateError(input.jobId, 'released');
      return postTxn(tx, spec, this.now());
    });
  }

  /** Gives a job's whole reservation back: it failed, was cancelled, expired or never ran. */
  async releaseJob(jobId: string, reason: string): Promise<LedgerTxn> {
    return this.db.transaction(async (tx) => {
      const { payer, amount } = await lockReservation(tx, jobId);
      const { available, reserved } = payerAccounts(payer);
      const spec: TxnSpec = {
        idempotencyKey: keys.release(jobId),
        kind: 'job.release',
        ref: jobId,
        note: reason.slice(0, 500),
        entries: [
          { account: reserved, amount },
          { account: available, amount: -amount },
        ],
      };
      const existing = await readTxn(tx, spec.idempotencyKey);
      if (existing !== undefined) return replayOf(existing, spec);
      if (await readTxn(tx, keys.credit(jobId))) throw new JobStateError(jobId, 'charged');
      return postTxn(tx, spec, this.now());
    });
  }

  /** Moves the job's share from pending to settled. The caller checks the verification window. */
  async settleJob(jobId: string): Promise<LedgerTxn> {
    return this.db.transaction(async (tx) => {
      const credit = await lockJob(tx, jobId);
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

  /**
   * Takes the contributor's pending share into `network:penalties`: the job failed a check or
   * was disputed. The requester's charge stands; nobody is refunded.
   */
  async voidJob(jobId: string, reason: string): Promise<LedgerTxn> {
    return this.db.transaction(async (tx) => {
      const credit = await lockJob(tx, jobId);
      const entries = credit.entries.flatMap((e) =>
        PENDING.test(e.account)
          ? [
              { account: e.account, amount: -e.amount },
              { account: PENALTIES, amount: e.amount },
            ]
          : [],
      );
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
      const { inFlight, amount } = await lockPayout(tx, input.payoutId);
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
      const { inFlight, wallet, amount } = await lockPayout(tx, payoutId);
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

  /** What a requester (or the check budget) holds, in positive nanoTON. */
  async payerBalances(payer: Payer): Promise<PayerBalances> {
    const { available, reserved } = payerAccounts(payer);
    const [a, r] = await Promise.all([sumOf(this.db, available), sumOf(this.db, reserved)]);
    return { available: -a, reserved: -r };
  }

  /** The signed sum of one account (debit positive). */
  async accountBalance(account: string): Promise<bigint> {
    return sumOf(this.db, account);
  }

  /** Audits the whole ledger; see {@link checkBooks}. */
  async checkBooks(): Promise<BookCheck> {
    return checkBooks(this.db);
  }
}
