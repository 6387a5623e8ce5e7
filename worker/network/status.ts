/** What a {@link Contributor} reports about itself, for the page. Plain data: it crosses the worker boundary. */
import type { JobKind } from '../../protocol/manifest.ts';
import type { PauseRule } from '../../protocol/wire.ts';
import type { JobSpan, Pace } from '../controls/pace.ts';
import type { UnusableRule } from '../controls/rules.ts';
import type { GpuRetired } from '../runtime.ts';

/**
 * `idle`: not started (or stopped); `connecting`: opening the socket or in the handshake, or
 * waiting to retry; `connected`: slots open, no job; `working`: running a job; `paused`:
 * connected but taking no jobs (a rule in `pausedBy`, no slots, draining or stopping); `error`: the last
 * attempt failed or was refused, retrying.
 */
export type ContributorState = 'idle' | 'connecting' | 'connected' | 'working' | 'paused' | 'error';

export interface ContributorStatus {
  state: ContributorState;
  /** The last error, in words; null when none since the contributor was made. */
  lastError: string | null;
  /** Given by the coordinator in `welcome`; null before the first one. */
  contributorId: string | null;
  jobsDone: number;
  jobsFailed: number;
  /** Jobs ended without an answer: cancelled, past their deadline, or cut off by a lost connection. */
  jobsStopped: number;
  running: number;
  slots: number;
  consent: JobKind[];
  /** When the last job ended, ms since the epoch. */
  lastJobAt: number | null;
  /** Connection attempts since the last stable connection. */
  reconnectAttempts: number;
  /** When the next connection attempt is due, ms since the epoch; null unless waiting for one. */
  nextAttemptAt: number | null;
  /** The owner's rule (or the remote pause) that stops new jobs now; null when none does. A running job still finishes. */
  pausedBy: PauseRule | null;
  /** When a time-based pause (duty-cycle rest, schedule) ends, ms since the epoch; null otherwise. */
  resumeAt: number | null;
  /** Rules that are set but cannot work in this browser, and why: they do not pause anything. */
  unusable: UnusableRule[];
  /** The last `message` from the fleet owner, and when it came (ms since the epoch). */
  ownerMessage: { text: string; at: number } | null;
  /** Whether the page is visible, as the page last said. */
  visibility: 'visible' | 'hidden';
  /** Measured over the last five minutes (undefined in the first second): what `status` tells the coordinator. */
  pace: Pace | undefined;
  /** The last jobs' runs (local ms since the epoch), oldest first. */
  recentJobs: JobSpan[];
  /** GPU device losses the runtime recovered from, and the last one; shown, never hidden. */
  device: {
    losses: number;
    lastLoss: { at: number; message: string } | null;
    /** The GPU was lost too often and this tab no longer uses it (reload the tab); absent or null while it works. */
    retired?: GpuRetired | null;
  };
  /** Models being loaded for a job now (downloaded, checked, compiled). */
  loading: string[];
}

/** A GPU device loss the runtime recovered from, as `Runtime#onDeviceLost` reports it. */
export interface DeviceLossReport {
  deviceLosses: number;
  lastDeviceLoss: { at: number; message: string } | null;
  /** Set once the runtime gave up on the GPU (see `RuntimeStatus.gpuRetired`). */
  gpuRetired?: GpuRetired | null;
}
