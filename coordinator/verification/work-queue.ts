/**
 * The verification service's writes, one after another in the order the relay told of them:
 * the relay's hooks return at once, and a failure is logged, never thrown into the relay.
 */
export class WorkQueue {
  #tail: Promise<void> = Promise.resolve();
  readonly #log: (message: string, err?: unknown) => void;

  constructor(log: (message: string, err?: unknown) => void) {
    this.#log = log;
  }

  /** Runs `fn` after the work before it; `what` names it in the log if it fails. */
  enqueue(what: string, fn: () => Promise<void>): void {
    this.#tail = this.#tail.then(fn).catch((err: unknown) => this.#log(`${what} failed`, err));
  }

  /** Resolves when the work queued so far is written. */
  settled(): Promise<void> {
    return this.#tail;
  }

  /** Resolves when no work is left, including work queued while waiting. */
  async idle(): Promise<void> {
    for (let last = this.#tail; ; last = this.#tail) {
      await last;
      if (last === this.#tail) return;
    }
  }
}
