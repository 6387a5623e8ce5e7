/** A clock for tests: time moves, and timers fire, only when the test calls {@link ManualClock.advance}. */
import type { Clock } from './connection.ts';

export class ManualClock implements Clock {
  t: number;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  #id = 0;

  constructor(start = 1_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): number {
    this.#timers.set(++this.#id, { at: this.t + ms, fn });
    return this.#id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Timers not fired or cleared yet. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time on by `ms`, firing due timers in order (a timer set by one that fires may fire too). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, timer]) => timer.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = end;
  }
}
