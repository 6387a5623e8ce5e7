/**
 * Check jobs in the relay: known-answer canaries sent to one contributor, and replica and
 * tie-break runs of a requester's job on other contributors of the same engine class.
 */
import type { BillingEnvelope } from '../../protocol/billing.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { Job } from '../jobs/job.ts';
import type { ContributorView, JobView, SchedulerHooks } from '../scheduler/scheduler.ts';
import type { ConnectedContributor } from './contributor.ts';
import type { CheckJobBill } from './billing.ts';
import type { JobDone } from './relay-types.ts';

/**
 * Why a job runs: a requester's `job`, or a check of one: a known-answer `canary` (the
 * coordinator is its requester), a `replica` / `tie-break` run of a requester's job, or a
 * free `rerun` of a delivered job whose result goes to the same requester. Every role but
 * `job` is paid from the network's check budget.
 */
export type JobRole = 'job' | 'canary' | 'replica' | 'tie-break' | 'rerun';

/** Hooks verification places in the job flow. */
export interface RelayChecks {
  /** An extra rule for every job of `model` (quarantine, a device benched off the model); default: all eligible. */
  eligible?(contributor: ContributorView, model: string): boolean;
  /**
   * A requester job's final chunk is about to be delivered: the last moment a replica can be
   * announced on its event stream. `replicas`: its requester asked to check replicas.
   */
  beforeFinal?(job: Job, contributor: ConnectedContributor, replicas: boolean): void;
  /** Whether a device's observed record is bad enough to place it after all others. */
  demote?(contributor: ContributorView): boolean;
  /** The device failed a job blaming its input, or let a lease expire: its record gets worse. */
  onFault?(contributorId: string, model: string, fault: 'invalid-input' | 'lease-expired'): void;
  /** Any job ended with a final result, before the ledger hears of it. */
  onDone?(done: JobDone): void;
  /** A check job ended without a result (no contributor took it, it failed, or it was cancelled). */
  onCheckEnded?(jobId: string, role: Exclude<JobRole, 'job'>, primaryJobId: string | undefined): void;
}

/** What {@link Relay.createCheckJob} makes. */
export interface CheckJobSpec {
  role: Exclude<JobRole, 'job'>;
  /** Who may read and feed it: the requester's key for replicas, an internal id for canaries. */
  apiKeyId: string;
  model: string;
  kind: JobKind;
  /** Only this contributor may run it (canaries). */
  target?: string;
  /** Only contributors of this engine class may run it (replicas compare within one class). */
  engineClass?: string;
  /** These contributors may not run it. */
  exclude?: readonly string[];
  /** Devices of these wallets may not run it (no one checks their own work under another key). */
  excludeWallets?: readonly string[];
  /** The requester job it checks. */
  primaryJobId?: string;
  /** The requester job's live object: a `replica` is announced on its event stream. */
  announceOn?: Job;
  /** What the check may cost, in tokens; default: the envelope of the live job `primaryJobId`. */
  billing?: BillingEnvelope;
}

export interface JobMeta {
  role: JobRole;
  replicas: boolean;
  target: string | undefined;
  engineClass: string | undefined;
  exclude: ReadonlySet<string>;
  excludeWallets: ReadonlySet<string>;
  primaryJobId: string | undefined;
}

/** Placement rules of the relay's jobs that have any, and each key's unfinished check jobs. */
export class JobRulesBook {
  readonly #meta = new Map<string, JobMeta>();
  /** Unfinished check jobs per API key: they do not count against the key's in-flight limit. */
  readonly #checksByKey = new Map<string, number>();

  get(jobId: string): JobMeta | undefined {
    return this.#meta.get(jobId);
  }

  set(jobId: string, m: JobMeta): void {
    this.#meta.set(jobId, m);
  }

  /** A check job of `apiKeyId` was created. */
  checkAdded(apiKeyId: string): void {
    this.#checksByKey.set(apiKeyId, (this.#checksByKey.get(apiKeyId) ?? 0) + 1);
  }

  /** Unfinished check jobs of `apiKeyId`. */
  checksOf(apiKeyId: string): number {
    return this.#checksByKey.get(apiKeyId) ?? 0;
  }

  /** Forgets a finished job's rules and returns them; a finished check job no longer counts for its key. */
  finished(jobId: string, apiKeyId: string): JobMeta | undefined {
    const m = this.#meta.get(jobId);
    if (m === undefined) return undefined;
    this.#meta.delete(jobId);
    if (m.role !== 'job') this.#checksByKey.set(apiKeyId, (this.#checksByKey.get(apiKeyId) ?? 1) - 1);
    return m;
  }
}

/** The engine class of a model on a device, derived from the manifest (protocol/engine-class.ts), never taken from the device. */
export type EngineClassOf = (contributor: ContributorView, model: string) => string;

export function meta(role: JobRole, rules: Partial<Omit<JobMeta, 'role'>>): JobMeta {
  return {
    role,
    replicas: rules.replicas ?? false,
    target: rules.target,
    engineClass: rules.engineClass,
    exclude: rules.exclude ?? new Set(),
    excludeWallets: rules.excludeWallets ?? new Set(),
    primaryJobId: rules.primaryJobId,
  };
}

/** A check job's placement rules and the bill it reserves under, for the id `id`. */
export function checkJobPlan(spec: CheckJobSpec, id: string, envelope: BillingEnvelope): { meta: JobMeta; bill: CheckJobBill } {
  const m = meta(spec.role, {
    target: spec.target,
    engineClass: spec.engineClass,
    exclude: new Set(spec.exclude ?? []),
    excludeWallets: new Set(spec.excludeWallets ?? []),
    primaryJobId: spec.primaryJobId,
  });
  const bill = {
    jobId: id,
    role: spec.role,
    apiKeyId: spec.apiKeyId,
    model: spec.model,
    kind: spec.kind,
    envelope,
    ...(spec.primaryJobId === undefined ? {} : { primaryJobId: spec.primaryJobId }),
  };
  return { meta: m, bill };
}

export function fits(m: JobMeta, c: ContributorView, model: string, classOf: EngineClassOf): boolean {
  if (m.target !== undefined && c.id !== m.target) return false;
  if (m.exclude.has(c.id)) return false;
  if (c.wallet != null && m.excludeWallets.has(c.wallet)) return false;
  return m.engineClass === undefined || classOf(c, model) === m.engineClass;
}

/** Whether a connected contributor outside `exclude` could run a check job of this model, kind and engine class. */
export function hasPeer(
  contributors: Iterable<ConnectedContributor>,
  checks: RelayChecks | undefined,
  want: { model: string; kind: JobKind; engineClass: string; exclude: readonly string[]; excludeWallets?: readonly string[] },
  classOf: EngineClassOf,
): boolean {
  for (const c of contributors) {
    const caps = c.capabilities;
    if (caps === null || want.exclude.includes(c.id)) continue;
    if (c.wallet !== null && want.excludeWallets?.includes(c.wallet) === true) continue;
    if (!caps.models.some((m) => m.id === want.model) || classOf(c, want.model) !== want.engineClass) continue;
    if (!caps.consent.includes(want.kind) || !caps.models.some((m) => m.id === want.model)) continue;
    if (checks?.eligible?.(c, want.model) === false) continue;
    return true;
  }
  return false;
}

/** The scheduler hooks with verification's rule and the job's placement rules on top. */
export function hooksFor(
  base: SchedulerHooks,
  checks: RelayChecks | undefined,
  m: JobMeta | undefined,
  classOf: EngineClassOf,
): SchedulerHooks {
  const scored = checks?.demote === undefined ? base : { ...base, demote: (c: ContributorView) => checks.demote?.(c) ?? false };
  if (checks?.eligible === undefined && (m === undefined || m.role === 'job')) return scored;
  return {
    ...scored,
    eligible: (c: ContributorView, j: JobView) =>
      (checks?.eligible?.(c, j.model) ?? true) && (m === undefined || fits(m, c, j.model, classOf)) && (base.eligible?.(c, j) ?? true),
  };
}
