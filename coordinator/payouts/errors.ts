/** Errors of the payout slice, one class per failure a caller handles differently. */

/** Base class of payout errors. */
export class PayoutError extends Error {
  override readonly name: string = 'PayoutError';
}

/** The hot wallet key is missing or malformed. Fix the configuration and restart. */
export class HotWalletConfigError extends PayoutError {
  override readonly name = 'HotWalletConfigError';
}

/** A contributor's payout address does not parse or names no workchain; its balance stays settled. */
export class InvalidPayoutAddressError extends PayoutError {
  override readonly name = 'InvalidPayoutAddressError';
  constructor(
    readonly wallet: string,
    reason: string,
    /** Settled nanoTON kept for it (0 when unknown). */
    readonly amount: bigint = 0n,
  ) {
    super(
      `payout address ${JSON.stringify(wallet)} cannot be paid (${reason}); nothing is sent and its balance stays settled: ` +
        'wallets enter the ledger only through a verified ton_proof, so find how this one did and correct it',
    );
  }
}

/** The hot wallet cannot cover a batch; nothing was sent. Top it up. */
export class InsufficientHotWalletBalanceError extends PayoutError {
  override readonly name = 'InsufficientHotWalletBalanceError';
  constructor(
    /** nanoTON the batch needs, fees included. */
    readonly needed: bigint,
    /** nanoTON the hot wallet holds. */
    readonly available: bigint,
  ) {
    super(`hot wallet holds ${available} nanoTON but the next batch needs ${needed}; top up the hot wallet`);
  }
}

/** A chain call did not answer in time (after retries). */
export class ChainTimeoutError extends PayoutError {
  override readonly name = 'ChainTimeoutError';
}
