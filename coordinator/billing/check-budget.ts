/**
 * The network's check budget as billing decides on it. A check is decided synchronously (a
 * replica must be announced before the primary's final chunk), from the budget's last-read
 * balances minus reservations decided but not yet written. Every budget write goes through one
 * queue, so the view never counts a reservation twice.
 */
import type { Payer } from '../ledger/accounts.ts';
import type { Ledger, PayerBalances } from '../ledger/ledger.ts';

export class CheckBudget {
  readonly payer: Payer = { kind: 'budget' };
  readonly #ledger: Ledger;
  /** Most nanoTON reserved for checks in flight at once. */
  readonly #limit: bigint;
  #view: PayerBalances | null = null;
  /** nanoTON per check decided but not yet written. */
  readonly #undecided = new Map<string, bigint>();
  #queue: Promise<void> = Promise.resolve();

  constructor(ledger: Ledger, limit: bigint) {
    this.#ledger = ledger;
    this.#limit = limit;
  }

  /** Runs `fn` after every budget write before it; its failure rejects the result, never the queue. */
  enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Resolves once every budget write queued so far is done. */
  settled(): Promise<void> {
    return this.#queue;
  }

  /** Reads the budget's balances again. */
  async refresh(): Promise<void> {
    this.#view = await this.#ledger.payerBalances(this.payer);
  }

  /** Whether `amount` fits the budget and its limit now; if so it counts as decided for `jobId` until {@link written}. */
  decide(jobId: string, amount: bigint): boolean {
    const view = this.#view;
    const pending = [...this.#undecided.values()].reduce((a, b) => a + b, 0n);
    if (view === null || view.available - pending < amount || view.reserved + pending + amount > this.#limit) return false;
    this.#undecided.set(jobId, amount);
    return true;
  }

  /** Whether `jobId`'s reservation is decided but not yet written. */
  pending(jobId: string): boolean {
    return this.#undecided.has(jobId);
  }

  /** `jobId`'s reservation is written (or refused): the balances read since count it. */
  written(jobId: string): void {
    this.#undecided.delete(jobId);
  }
}
