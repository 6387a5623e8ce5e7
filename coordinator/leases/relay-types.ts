/**
 * The relay's shapes: its options, what it reports of a finished job, and a refused requester action.
 */
import type * as v from 'valibot';
import type { BillingEnvelope } from '../../protocol/billing.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { Chunk, Fail, WireError } from '../../protocol/wire.ts';
import type { Clock } from '../clock.ts';
import type { Job } from '../jobs/job.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { SchedulerHooks } from '../scheduler/scheduler.ts';
import type { Store } from '../store/types.ts';
import type { RelayBilling } from './billing.ts';
import type { EngineClassOf, JobMeta, JobRole, RelayChecks } from './check-jobs.ts';
import type { Lease } from './lease-book.ts';

export interface RelayOptions {
  store: Store;
  clock: Clock;
  metrics: Metrics;
  hooks: SchedulerHooks;
  /** How long a contributor has for a job, and a requester for its payload, ms. */
  leaseMs: number;
  /** Extra time on a job's lease when its model is not in the contributor's memory yet (download, compile), ms. */
  loadAllowanceMs: number;
  /** Attempts per job, counting re-assignments. */
  maxAttempts: number;
  /** How long a slot reserved ahead of need (`assign` on the requester channel) stays unused before it goes back, ms. Default min(leaseMs, 10 s). */
  assignAheadMs?: number;
  /** How long a job may wait for a contributor before it fails, ms. */
  maxWaitMs: number;
  /** Most jobs waiting or queued at once; more are refused. */
  maxQueued: number;
  /** How long a finished job's event log stays for late subscribers, ms. */
  retainMs: number;
  /** Largest sealed result per job, bytes. */
  maxResultBytes: number;
  /** Result chunks one lease may send (default 100,000). */
  chunksPerLease?: number;
  /** Empty, non-final result chunks one lease may send (default 256). */
  emptyChunksPerLease?: number;
  /**
   * How long a requester's final result waits for its job's done record to be written before it
   * goes out anyway (the database is slow or down), ms. Default 10,000.
   */
  recordWaitMs?: number;
  /**
   * Largest sealed result written with a done job's record, so that a requester cut off by a
   * crash reads it after the restart, bytes; a larger one is not kept. Default 4 MiB.
   */
  maxStoredResultBytes?: number;
  /** Told of each job that ends with a final result (for the ledger); must not throw. */
  onJobDone?: (done: JobDone) => void;
  /** Verification's view into the job flow; must not throw. */
  checks?: RelayChecks;
  /** The money side's view: check jobs reserve from the network budget, jobs that end without a result release. */
  billing?: RelayBilling;
  /** The engine class of a model on a device, from the catalog; default `model:<id>` for every device. */
  engineClass?: EngineClassOf;
}

/** A job that ended with a final result: what money and trust need, and nothing sealed. */
export interface JobDone {
  jobId: string;
  apiKeyId: string;
  contributorId: string;
  /** `job` is billed to its requester; checks are paid by the network. */
  role: JobRole;
  /** The requester job a replica or tie-break checks. */
  primaryJobId?: string;
  /** The engine class of the job's model on the device, fixed when the job was assigned (never the device's word). */
  engineClass: string;
  model: string;
  kind: JobKind;
  /** What is billed and credited: `claimed` clamped to `envelope` (docs/protocol.md, "Billing envelopes"). */
  usage: { promptTokens: number; completionTokens: number };
  /** What the contributor reported in its final chunk (its word; canaries check it against the known usage). */
  claimed: { promptTokens: number; completionTokens: number };
  /** What the job's requester (or the coordinator, for a check) agreed to pay for. */
  envelope: BillingEnvelope;
}

/** A refused requester action: the HTTP status and the error body. */
export interface Refusal {
  status: 402 | 404 | 409 | 413 | 503;
  error: WireError;
}

export type ResultMessage = v.InferOutput<typeof Chunk> | v.InferOutput<typeof Fail>;

export function refusal(status: Refusal['status'], code: WireError['code'], message: string): Refusal {
  return { status, error: { code, message } };
}

/** Why a payload for `attempt` cannot go on `lease` (the job's active lease, if any), or null when it can. */
export function payloadRefusal(job: Job, attempt: number, lease: Lease | undefined): Refusal | null {
  if (job.finished) return refusal(409, 'CONFLICT', `The job is ${job.state}; it takes no payload.`);
  if (attempt !== job.attempt) {
    return refusal(
      409,
      'CONFLICT',
      `The payload is sealed for attempt ${attempt}, but the job is on attempt ${job.attempt}; seal it for the latest \`assigned\` event.`,
    );
  }
  if (job.state === 'waiting' || lease === undefined) {
    return refusal(409, 'CONFLICT', 'No contributor is assigned yet; wait for the `assigned` event and seal the payload for it.');
  }
  if (lease.phase === 'running') return refusal(409, 'CONFLICT', `The payload of attempt ${attempt} was already submitted.`);
  return null;
}

/** What the relay reports of a job that ended with a final result. */
export function jobDone(
  job: Job,
  contributorId: string,
  m: JobMeta | undefined,
  engineClass: string,
  usage: JobDone['usage'],
  claimed: JobDone['claimed'],
): JobDone {
  return {
    jobId: job.id,
    apiKeyId: job.apiKeyId,
    contributorId,
    role: m?.role ?? 'job',
    ...(m?.primaryJobId === undefined ? {} : { primaryJobId: m.primaryJobId }),
    engineClass,
    model: job.model,
    kind: job.kind,
    usage,
    claimed,
    envelope: job.envelope,
  };
}
