/**
 * Verification's hooks in the relay's job flow: which devices may take a job and in what
 * order, the checks each requester job draws (a canary for its device, a replica on another),
 * and the record of every finished job, held while a check, a verdict or probation is due.
 */
import type { Clock } from '../clock.ts';
import { Job } from '../jobs/job.ts';
import type { ConnectedContributor } from '../leases/contributor.ts';
import type { Relay, RelayChecks } from '../leases/relay.ts';
import type { CanaryChecks } from './canary-checks.ts';
import type { CanarySource } from './canaries.ts';
import type { VerificationPolicy } from './policy.ts';
import type { RequesterStanding } from './requesters.ts';
import type { ReputationStore } from './reputation-store.ts';
import type { JobRow, VerificationStore } from './verification-store.ts';
import type { WorkQueue } from './work-queue.ts';

/** How often the policy said yes, for checking the rates. */
export interface DecisionCounts {
  /** Requester jobs the policy decided on. */
  readonly decided: number;
  readonly canaryDrawn: number;
  readonly canarySent: number;
  readonly replicaDrawn: number;
  readonly replicaSent: number;
}

export interface RelayCheckHooksOptions {
  readonly policy: VerificationPolicy;
  readonly canaries: CanarySource;
  readonly canaryChecks: CanaryChecks;
  readonly standing: RequesterStanding;
  readonly store: VerificationStore;
  readonly reputation: ReputationStore;
  readonly clock: Clock;
  readonly queue: WorkQueue;
  /** How long a replicated job waits for its replica and the requester's verdict, ms. */
  readonly verdictWindowMs: number;
  /** How long a device on probation has its credits held, ms (0: off). */
  readonly probationWindowMs: number;
  /** The probation credit cap (null: none): jobs run on probation are noted for it. */
  readonly cap: bigint | null;
  /** The coordinator's relay, once attached. */
  readonly relay: () => Relay | null;
  /** Where unexpected failures go. */
  readonly log: (message: string, err?: unknown) => void;
}

export class RelayCheckHooks implements RelayChecks {
  readonly counts = { decided: 0, canaryDrawn: 0, canarySent: 0, replicaDrawn: 0, replicaSent: 0 };
  readonly #o: RelayCheckHooksOptions;
  /** Replicas announced but not yet finished: primary job id → replica job id. */
  readonly #replicaOf = new Map<string, string>();
  /** Requester jobs run on probation whose credit has not been signed yet (bounded: cleared when it grows past 100 000). */
  readonly #probationJobs = new Set<string>();

  constructor(options: RelayCheckHooksOptions) {
    this.#o = options;
  }

  /** Whether `jobId` ran on probation with its credit not signed yet; forgets it. */
  takeProbationJob(jobId: string): boolean {
    return this.#probationJobs.delete(jobId);
  }

  eligible: NonNullable<RelayChecks['eligible']> = (contributor, model) =>
    !this.#o.policy.isShutOut(contributor.id, contributor.wallet) && !this.#o.policy.isBenched(contributor.id, model);

  // More failed checks and faults than clean ones: placed after every other device.
  demote: NonNullable<RelayChecks['demote']> = (contributor) => this.#o.policy.reputation(contributor.id).score < 0.5;

  onFault: NonNullable<RelayChecks['onFault']> = (contributorId) => {
    this.#o.policy.fault(contributorId);
    this.#o.queue.enqueue('recording a fault', () => this.#o.reputation.addFault(contributorId, this.#o.clock.now()));
  };

  beforeFinal: NonNullable<RelayChecks['beforeFinal']> = (job, contributor, replicas) => {
    try {
      this.#decide(job, contributor, replicas);
    } catch (err) {
      // The requester's result must go out whatever happens to its checks.
      this.#o.log(`deciding the checks of job ${job.id} failed`, err);
    }
  };

  onDone: NonNullable<RelayChecks['onDone']> = (done) => {
    const { policy, clock, cap } = this.#o;
    const replicaJobId = done.role === 'job' ? this.#replicaOf.get(done.jobId) : undefined;
    this.#replicaOf.delete(done.jobId);
    const now = clock.now();
    const primaryJobId = done.role === 'job' || done.role === 'canary' ? done.jobId : (done.primaryJobId ?? done.jobId);
    // A new device's credits wait longer: a quarantine in that time still voids them.
    const probation = done.role === 'job' && this.#o.probationWindowMs > 0 && policy.onProbation(done.contributorId);
    if (done.role === 'job' && cap !== null && policy.onProbation(done.contributorId)) {
      if (this.#probationJobs.size >= 100_000) this.#probationJobs.clear();
      this.#probationJobs.add(done.jobId);
    }
    const awaiting = replicaJobId !== undefined || done.role !== 'job' || probation;
    const row: JobRow = {
      jobId: done.jobId,
      contributorId: done.contributorId,
      role: done.role,
      primaryJobId,
      apiKeyId: done.apiKeyId,
      model: done.model,
      kind: done.kind,
      engineClass: done.engineClass,
      status: awaiting ? 'awaiting' : 'unchecked',
      replicaJobId: replicaJobId ?? null,
      tieBreakJobId: null,
      replicaVerdictAt: null,
      tieBreakVerdictAt: null,
      awaitingUntil: awaiting ? now + Math.max(this.#o.verdictWindowMs, probation ? this.#o.probationWindowMs : 0) : null,
      claimed: done.claimed,
    };
    this.#o.queue.enqueue('recording a finished job', () => this.#o.store.insertJob(row, now));
  };

  onCheckEnded: NonNullable<RelayChecks['onCheckEnded']> = (_jobId, role, primaryJobId) => {
    if (role === 'canary' || primaryJobId === undefined) return;
    // The replica or tie-break never ran: the primary's credit stops waiting for it.
    this.#o.queue.enqueue('ending a check', () => this.#o.store.uncheck(primaryJobId, this.#o.clock.now()));
  };

  /** After a requester job: a canary for its contributor, a replica on another, as the policy draws. */
  #decide(job: Job, contributor: ConnectedContributor, replicas: boolean): void {
    const relay = this.#o.relay();
    if (relay === null) return;
    const { policy, canaries } = this.#o;
    const counts = this.counts;
    // The class fixed when the job was assigned, from the manifest: the device's own word plays no part.
    const engineClass = job.engineClass ?? relay.engineClassOf(contributor, job.model);
    // A device whose usage claims many distinct requesters dispute is checked as a new one is.
    const decision = policy.decide(job, { id: contributor.id, engineClass, suspect: this.#o.standing.isSuspect(contributor.id) });
    counts.decided++;
    canaries.observe?.(job.model, job.kind, job.envelope);
    if (decision.canary) {
      counts.canaryDrawn++;
      this.#o.canaryChecks.schedule(contributor.id, job.model, job.kind, engineClass);
    }
    if (!decision.replicate) return;
    counts.replicaDrawn++;
    const exclude = [contributor.id, ...job.triedBy];
    const excludeWallets = contributor.wallet === null ? [] : [contributor.wallet];
    if (!replicas || !relay.hasPeer(job.model, job.kind, engineClass, exclude, excludeWallets)) return;
    const replica = relay.createCheckJob({
      role: 'replica',
      apiKeyId: job.apiKeyId,
      model: job.model,
      kind: job.kind,
      engineClass,
      exclude,
      excludeWallets,
      primaryJobId: job.id,
      announceOn: job,
    });
    if (!(replica instanceof Job)) return;
    counts.replicaSent++;
    this.#replicaOf.set(job.id, replica.id);
  }
}
