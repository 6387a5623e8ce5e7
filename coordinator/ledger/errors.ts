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
  | 'INVALID_AMOUNT';

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

/** settleJob/voidJob for a job that was never credited. */
export class UnknownJobError extends LedgerError {
  constructor(readonly jobId: string) {
    super('UNKNOWN_JOB', `job ${jobId} has no credit in the ledger; call creditJob first`);
  }
}

/** Settling a voided job, or voiding a settled one. */
export class JobStateError extends LedgerError {
  constructor(
    readonly jobId: string,
    readonly state: 'settled' | 'voided',
  ) {
    super('JOB_STATE', `job ${jobId} is already ${state}; a job is either settled or voided, never both`);
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
