/**
 * What the dashboard knows, in one place: the worker's and the network's latest answers. Views
 * subscribe and draw their part; the pollers in dashboard.ts update it. Plain data only.
 */
import type { EarningsSummary, PriceListView } from '../protocol/answers.ts';
import type { NetworkInfo } from '../protocol/network.ts';
import type { Controls } from '../worker/controls/rules.ts';
import type { GpuInfo } from '../worker/gpu/types.ts';
import type { ContributorStatus } from '../worker/network/status.ts';
import type { ModelSummary, RuntimeStatus } from '../worker/runtime.ts';

export interface PageState {
  /** The contributor's latest status; null before the worker reports. */
  status: ContributorStatus | null;
  /** When this page saw contributing start (ms since the epoch); null while not contributing. */
  runStartedAt: number | null;
  runtime: RuntimeStatus | null;
  gpu: GpuInfo | null;
  /** Matmul speed from the benchmark, GFLOP/s; null until measured. */
  gflops: number | null;
  models: ModelSummary[];
  prices: PriceListView | null;
  /** Demand and payout rules; null until read, or when the coordinator does not publish them. */
  network: NetworkInfo | null;
  /** The proven wallet's balances; null without a wallet. */
  earnings: EarningsSummary | null;
  controls: Controls | null;
  /** Bumped every few seconds, so that times ("3 s ago") and the chart's axis move on. */
  now: number;
}

export interface Store<T> {
  get(): Readonly<T>;
  set(change: Partial<T>): void;
  /** Calls `listener` now and after every change; returns the unsubscribe function. */
  subscribe(listener: (state: Readonly<T>) => void): () => void;
}

export function createStore<T extends object>(initial: T): Store<T> {
  let state = initial;
  const listeners = new Set<(state: Readonly<T>) => void>();
  return {
    get: () => state,
    set(change) {
      state = { ...state, ...change };
      for (const listener of listeners) listener(state);
    },
    subscribe(listener) {
      listeners.add(listener);
      listener(state);
      return () => listeners.delete(listener);
    },
  };
}

export const initialPageState = (): PageState => ({
  status: null,
  runStartedAt: null,
  runtime: null,
  gpu: null,
  gflops: null,
  models: [],
  prices: null,
  network: null,
  earnings: null,
  controls: null,
  now: Date.now(),
});
