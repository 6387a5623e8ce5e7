/**
 * A requester's final result and its record (docs/protocol.md, "Surviving faults"): the relay
 * holds a done job's final chunk back until the store has written the job as done, with its
 * sealed answer, so a crash can leave neither an answer that was sent and never billed nor
 * one that was billed and can never be read.
 */
import type { Job } from '../jobs/job.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Store } from '../store/types.ts';

/** Default `RelayOptions.recordWaitMs`. */
export const RECORD_WAIT_MS = 10_000;
/** Default `RelayOptions.maxStoredResultBytes`: 4 MiB. */
export const MAX_STORED_RESULT_BYTES = 4 * 1024 * 1024;

/**
 * Releases a done job's held answer once its record is written. If the database cannot take
 * it (down, or slower than `waitMs`) the answer goes out anyway, counted: the requester is not
 * kept waiting on an outage, and the charge is retried (earnings/local.ts).
 */
export function deliverWhenRecorded(job: Job, store: Store, metrics: Metrics, waitMs: number): void {
  let released = false;
  const release = (unrecorded: 'database' | 'timeout' | null): void => {
    if (released) return;
    released = true;
    clearTimeout(timer);
    if (unrecorded !== null) metrics.deliveredUnrecorded(unrecorded);
    job.releaseDelivery();
  };
  const timer = setTimeout(() => release('timeout'), waitMs);
  timer.unref?.();
  store.written().then(
    () => release(null),
    () => release('database'),
  );
}
