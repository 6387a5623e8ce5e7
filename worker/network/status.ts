/** What a {@link Contributor} reports about itself, for the page. Plain data: it crosses the worker boundary. */
import type { JobKind } from '../../protocol/manifest.ts';

/**
 * `idle`: not started (or stopped); `connecting`: opening the socket or in the handshake, or
 * waiting to retry; `connected`: slots open, no job; `working`: running a job; `paused`:
 * connected but taking no jobs (no slots, no consent, draining or stopping); `error`: the last
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
}
