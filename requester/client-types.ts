/**
 * The requester SDK's options and answers (requester/client.ts re-exports them).
 */
import type { CompareOptions } from '../protocol/compare.ts';
import type { JobKind } from '../protocol/manifest.ts';
import type { DepositInstructions } from '../protocol/wire.ts';
import type { RetryPolicy } from './retry.ts';

export interface RequesterClientOptions {
  /** Base URL of the coordinator, e.g. `https://coordinator.example` (no trailing `/v1`). */
  coordinatorUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey: string;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /**
   * Run jobs over the requester channel (one WebSocket for every job, `/v1/requester`) when the
   * coordinator has one, else over HTTP. Default: false (HTTP). A broken channel is followed
   * again on a new channel or over HTTP, as a broken HTTP stream is.
   */
  channel?: boolean;
  /**
   * On the requester channel, assignments to keep in hand per model and kind (0 to 64; default
   * 0: none): contributor slots the coordinator reserves for this client's next jobs, so a
   * job's payload is sealed at once and sent with the job in one message (docs/protocol.md,
   * "Sealing ahead of need"). Unused ones go back after a few seconds.
   */
  assignAhead?: number;
  /**
   * Check replicas when the coordinator asks (default true): it may run a job again on
   * another contributor; this client seals the same request for it, compares both results
   * and posts the verdict. Your result never waits for the check.
   */
  checkReplicas?: boolean;
  /** Told of each finished replica check (or one that could not finish). */
  onCheck?: (check: ReplicaCheck) => void;
  /** Tolerances for comparing results; the defaults of protocol/compare.ts. */
  compare?: CompareOptions;
  /**
   * While the coordinator is unreachable: how often and how long creating a job is tried again
   * (capped exponential backoff with full jitter), and a broken event stream reopened
   * (default 8 tries within 30 s, backoff 200 ms doubling up to 5 s). Then RetriesExhaustedError.
   */
  retry?: Partial<RetryPolicy>;
  /**
   * Times a job the coordinator ended by restarting or shutting down (`RESTARTED`, `DRAINING`;
   * released, never charged) is run again as a new job (default 3). Then JobInterruptedError.
   */
  maxReruns?: number;
}

/** What came of a replica check of one job. */
export interface ReplicaCheck {
  jobId: string;
  replicaJobId: string;
  /** Null when the check could not finish (`error` says why). */
  agree: boolean | null;
  reason: string;
  /** The third run when the first two disagreed and the coordinator found a tie-breaker. */
  tieBreak?: { jobId: string; withPrimary: boolean; withReplica: boolean };
  error?: string;
}

export interface RunOptions {
  /** Aborting cancels the job at the coordinator (DELETE) and rejects with AbortedError. */
  signal?: AbortSignal;
  /** Streamed text and tokens of `chat`/`generate` jobs, in order, each piece once (also across re-assignments). */
  onDelta?: (piece: { text: string; tokens: number[] }) => void;
}

/** An API key's money (`GET /v1/account`): nanoTON, and where to deposit more. */
export interface AccountBalance {
  keyId: string;
  /** Deposited and not held for a job. */
  available: bigint;
  /** Held for jobs in flight (each job's maximum price until its result settles it). */
  reserved: bigint;
  /** Send TON to `address` with `memo` as the text comment to fund this key. */
  deposit: DepositInstructions;
}

/** A model that connected contributors can serve. */
export interface ModelListing {
  id: string;
  /** Job kinds it serves. */
  kinds: JobKind[];
}
