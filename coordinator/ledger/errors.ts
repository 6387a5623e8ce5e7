/**
 * Typed ledger errors: one subclass per failure a caller handles differently, each message
 * saying what to do next. The coordinator maps them to HTTP answers; none is a crash.
 */

/** Stable codes, one per subclass. */
export type LedgerErrorCode =
  | 'IDEMPOTENCY_CONFLICT'
  | 'UNKNOWN_JOB'
  | 'JOB_STATE'
  | 'UNKNOWN_PAYOUT'
  | 'PAYOUT_STATE'
  | 'INSUFFICIENT_SETTLED'
  | 'UNKNOWN_PRICE'
  | 'INVALID_AMOUNT'
  | 'INSUFFICIENT_FUNDS'
  | 'BUDGET_LIMIT'
  | 'UNKNOWN_RESERVATION'
  | 'UNKNOWN_DEPOSIT';

/** Base of every ledger error. */
export class LedgerError extends Error {
  readonly code: LedgerErrorCode;

  constructor(code: LedgerErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The idempotency key was used before with different accounts, amounts or note. */
export class IdempotencyConflictError extends LedgerError {
  constructor(readonly key: string) {
    super(
      'IDEMPOTENCY_CONFLICT',
      `ledger transaction ${key} was already recorded with different entries; a replay must repeat the original request exactly`,
    );
  }
}

/** settleJob/voidJob for a job that was never charged. */
export class UnknownJobError extends LedgerError {
  constructor(readonly jobId: string) {
    super('UNKNOWN_JOB', `job ${jobId} has no charge in the ledger; call chargeJob first`);
  }
}

/** Settling a voided job or voiding a settled one; charging a released reservation or releasing a charged one. */
export class JobStateError extends LedgerError {
  constructor(
    readonly jobId: string,
    readonly state: 'settled' | 'voided' | 'charged' | 'released',
  ) {
    super(
      'JOB_STATE',
      state === 'settled' || state === 'voided'
        ? `job ${jobId} is already ${state}; a job is either settled or voided, never both`
        : `job ${jobId}'s reservation is already ${state}; a job is either charged or released, never both`,
    );
  }
}

/** chargeJob/releaseJob for a job that reserved nothing. */
export class UnknownReservationError extends LedgerError {
  constructor(readonly jobId: string) {
    super('UNKNOWN_RESERVATION', `job ${jobId} has no reservation in the ledger; reserve its maximum price before it runs`);
  }
}

/** A reservation larger than the payer's available balance. */
export class InsufficientFundsError extends LedgerError {
  constructor(
    /** `requester:<key>:available` or the budget's account. */
    readonly account: string,
    readonly required: bigint,
    readonly available: bigint,
  ) {
    super(
      'INSUFFICIENT_FUNDS',
      `${account} holds ${available} nanoTON, less than the ${required} this job may cost; deposit at least ${required - available} nanoTON more`,
    );
  }

  /** nanoTON missing. */
  get shortfall(): bigint {
    return this.required - this.available;
  }
}

/** A check the network budget's limit on checks in flight cannot take. */
export class BudgetLimitError extends LedgerError {
  constructor(
    readonly required: bigint,
    readonly reserved: bigint,
    readonly limit: bigint,
  ) {
    super(
      'BUDGET_LIMIT',
      `the check budget has ${reserved} nanoTON reserved for checks in flight; ${required} more would pass its limit of ${limit}; raise the limit or wait for checks to finish`,
    );
  }
}

/** Assigning a deposit that was never booked, or was not booked as unmatched. */
export class UnknownDepositError extends LedgerError {
  constructor(readonly depositKey: string) {
    super('UNKNOWN_DEPOSIT', `no unmatched deposit ${depositKey} in the ledger; list them with the operator route first`);
  }
}

/** confirmPayout/failPayout for a payout without a recorded intent. */
export class UnknownPayoutError extends LedgerError {
  constructor(readonly payoutId: string) {
    super('UNKNOWN_PAYOUT', `payout ${payoutId} has no intent in the ledger; call recordPayoutIntent first`);
  }
}

/** Confirming a failed payout, or failing a confirmed one. */
export class PayoutStateError extends LedgerError {
  constructor(
    readonly payoutId: string,
    readonly state: 'confirmed' | 'failed',
  ) {
    super('PAYOUT_STATE', `payout ${payoutId} is already ${state}; start a new payout id to retry`);
  }
}

/** A payout larger than the wallet's settled balance. */
export class InsufficientSettledError extends LedgerError {
  constructor(
    readonly wallet: string,
    readonly requested: bigint,
    readonly available: bigint,
  ) {
    super(
      'INSUFFICIENT_SETTLED',
      `wallet ${wallet} has ${available} nanoTON settled, less than the ${requested} asked for; pay out at most the settled balance`,
    );
  }
}

/** No price for the model in the price list. */
export class UnknownPriceError extends LedgerError {
  constructor(readonly model: string) {
    super('UNKNOWN_PRICE', `model ${model} has no price; add it to coordinator/ledger/prices.json before accepting its jobs`);
  }
}

/** A negative, fractional or otherwise unusable amount or usage count. */
export class InvalidAmountError extends LedgerError {
  constructor(message: string) {
    super('INVALID_AMOUNT', message);
  }
}
