/**
 * Test support (not used by the app): the money side of a test network on the sandbox chain,
 * paying out from 1 nanoTON, with no settlement, payout or deposit round firing by itself
 * during a test (a test runs each round; `money.fund` books its own deposit).
 */
import { startMoney, type Money, type MoneyOptions } from '../coordinator/earnings/local.ts';
import type { SqlStore } from '../coordinator/store/sql-store.ts';

const HOUR = 3_600_000;

/** `startMoney` with the test settings above; `options` adds to or overrides them. */
export function startTestMoney(store: SqlStore, options: Partial<Omit<MoneyOptions, 'store'>> = {}): Promise<Money> {
  return startMoney({
    store,
    threshold: 1n,
    windowMs: HOUR,
    payoutIntervalMs: HOUR,
    settleIntervalMs: HOUR,
    depositIntervalMs: HOUR,
    env: {},
    ...options,
  });
}
