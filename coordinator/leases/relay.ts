/**
 * The relay: every job in flight, the leases that carry them to contributors, and the
 * waiting queue. It owns the job state machine (docs/protocol.md):
 *
 *   waiting ──assign──▶ queued ──payload──▶ leased ──final──▶ done
 *      ▲                  │                   │
 *      └──── re-queue (attempt + 1) ◀─────────┘  expiry, fail, disconnect
 *
 * A job is assigned (and a slot reserved) before its payload exists, because the requester seals the payload to that
 * one contributor's key. All in-flight state is in memory; the store gets the metadata on every change.
 */
import { clampUsage, type BillingEnvelope } from '../../protocol/billing.ts';
import { engineClassOf } from '../../protocol/engine-class.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { CoordinatorMessage, Sealed, WireError } from '../../protocol/wire.ts';
import { base64urlBytes } from '../../protocol/envelope.ts';
import { randomId } from '../ids.ts';
import { Job } from '../jobs/job.ts';
import { JobTable } from '../jobs/job-table.ts';
import type { FinalState } from '../metrics/metrics.ts';
import { canRun, type ContributorView, type JobView, modelAvailability, noContributorError } from '../scheduler/scheduler.ts';
import { FreeSlotIndex } from '../scheduler/free-slots.ts';
import type { ConnectedContributor } from './contributor.ts';
import { type CheckJobSpec, checkJobPlan, type EngineClassOf, hasPeer, hooksFor, type JobMeta, JobRulesBook, meta } from './check-jobs.ts';
import { type Hold, HoldBook } from './holds.ts';
import { judgeResult, LeaseBook, type Lease, type LeaseOutcome } from './lease-book.ts';
import { jobDone, payloadRefusal, type Refusal, refusal, type RelayOptions, type ResultMessage } from './relay-types.ts';
import { deliverWhenRecorded, MAX_STORED_RESULT_BYTES, RECORD_WAIT_MS } from './delivery.ts';
import { ChunkLimits, RestartedJobs } from './result-limits.ts';

export type { CheckJobSpec, EngineClassOf, JobRole, RelayChecks } from './check-jobs.ts';
export type { CheckJobBill, RelayBilling } from './billing.ts';
export type { JobDone, Refusal, RelayOptions } from './relay-types.ts';
export type { Hold } from './holds.ts';

const NO_ONE: ReadonlySet<string> = new Set();

export class Relay {
  readonly #o: RelayOptions;
  readonly #contributors = new Map<string, ConnectedContributor>();
  /** Contributors with a free slot, per model, in placement order. */
  readonly #free = new FreeSlotIndex<ConnectedContributor>();
  readonly #jobs = new JobTable();
  /** Jobs waiting for a contributor, oldest first (re-queued jobs wait again from now). */
  readonly #waiting = new Map<string, Job>();
  readonly #leases: LeaseBook;
  /** Slots reserved ahead of need for a requester's next jobs. */
  readonly #holds = new HoldBook();
  /**
   * Contributors whose slots come from their own `lease` offers: only these take holds (a
   * stand-in for another replica's contributor gets its slots lent one waiting job at a time).
   */
  readonly #offered = new WeakSet<ContributorView>();
  readonly #holdMs: number;
  /** Role and placement rules of jobs that are not plain requester jobs, or that allow replicas. */
  readonly #meta = new JobRulesBook();
  #draining = false;
  readonly #limits: ChunkLimits;
  readonly #classOf: EngineClassOf;
  readonly #restarted = new RestartedJobs();

  constructor(options: RelayOptions) {
    this.#o = options;
    this.#leases = new LeaseBook(options.clock);
    this.#holdMs = options.assignAheadMs ?? Math.min(options.leaseMs, 10_000);
    this.#limits = new ChunkLimits(options);
    this.#classOf = options.engineClass ?? ((_c, model) => engineClassOf(model, undefined, { features: [] }));
  }

  /** The engine class of `model` on `contributor`, derived from the manifest. */
  engineClassOf(contributor: ContributorView, model: string): string {
    return this.#classOf(contributor, model);
  }

  join(contributor: ConnectedContributor): void {
    this.#contributors.set(contributor.id, contributor);
    contributor.onChange = (c) => this.#free.touch(c);
    this.#free.touch(contributor);
  }

  /** The contributor is gone (socket closed, silent, or replaced): its jobs are re-queued. */
  leave(contributor: ConnectedContributor, why: string): void {
    if (this.#contributors.get(contributor.id) === contributor) this.#contributors.delete(contributor.id);
    contributor.onChange = null;
    this.#free.remove(contributor);
    this.#holds.lose(contributor, this.#o.clock.now());
    for (const leaseId of [...contributor.leases]) {
      const lease = this.#leases.active(leaseId);
      if (lease !== undefined) this.#retry(lease, 'dropped', { code: 'LEASE_EXPIRED', message: `the contributor left (${why})` });
    }
    this.schedule();
  }

  /**
   * The worker's `lease {slots}`: it can start `slots` more jobs now. Assignments it has not
   * seen a job frame for yet are invisible to it, so they still take from that count, and so do
   * the slots held ahead of need on it. Held slots beyond what it offers now (it paused, or its
   * GPU gave up) lapse as when it leaves: their jobs wait for attempt 2, sealed again.
   */
  offer(contributor: ConnectedContributor, slots: number): void {
    let unseen = 0;
    for (const id of contributor.leases) if (this.#leases.active(id)?.phase === 'reserved') unseen++;
    this.#holds.lapse(contributor, Math.max(0, slots - unseen), this.#o.clock.now());
    contributor.openSlots = slots - unseen - this.#holds.on(contributor).size;
    this.#offered.add(contributor);
    this.schedule();
  }

  get contributors(): ReadonlyMap<string, ConnectedContributor> {
    return this.#contributors;
  }

  /** Jobs waiting for a contributor, oldest first (replicas look for one on another replica for them). */
  waitingJobs(): IterableIterator<Job> {
    return this.#waiting.values();
  }

  /** The one contributor a check job must run on (a canary's), if any. */
  targetOf(jobId: string): string | undefined {
    return this.#meta.get(jobId)?.target;
  }

  /**
   * A requester's job. `id` is the one its reservation was made under (the requester routes
   * reserve before the job exists); `envelope` bounds what it is billed.
   */
  createJob(
    apiKeyId: string,
    model: string,
    kind: JobKind,
    options: { envelope: BillingEnvelope; replicas?: boolean; id?: string; hold?: Hold },
  ): Job | Refusal {
    const m = options.replicas === true ? meta('job', { replicas: true }) : undefined;
    return this.#create(options.id ?? options.hold?.id ?? randomId(), apiKeyId, model, kind, options.envelope, m, options.hold);
  }

  /**
   * Reserves up to `count` free slots for `model` and `kind` for the key's next jobs, in
   * placement order, each with the id its job will have (docs/protocol.md, "Sealing ahead of
   * need"). Only idle capacity: none while a job of the model waits for a contributor, or the coordinator drains.
   */
  hold(apiKeyId: string, model: string, kind: JobKind, count: number): { holds: Hold[]; expiresInMs: number } {
    const expiresInMs = this.#holdMs;
    if (this.#draining) return { holds: [], expiresInMs };
    for (const job of this.#waiting.values()) if (job.model === model) return { holds: [], expiresInMs };
    const now = this.#o.clock.now();
    const base = hooksFor(this.#o.hooks, this.#o.checks, undefined, this.#classOf);
    const hooks = { ...base, eligible: (c: ContributorView, j: JobView) => this.#offered.has(c) && (base.eligible?.(c, j) ?? true) };
    const choose = (id: string) => this.#free.choose({ id, apiKeyId, model, kind, attempt: 1, triedBy: NO_ONE }, hooks);
    const holds = this.#holds.reserve(count, { apiKeyId, model, kind, expiresAt: now + expiresInMs }, randomId, choose, now);
    return { holds, expiresInMs };
  }

  /**
   * Takes the key's hold `id` for its job: a live one stops expiring until {@link createJob}
   * or {@link releaseHold} ends it; one that expired or whose contributor left is returned
   * `lapsed` (its job falls back to normal placement). Refused when the key has no such hold,
   * or it was used.
   */
  claimHold(id: string, apiKeyId: string): { hold: Hold; lapsed: boolean } | Refusal {
    return this.#holds.claim(id, apiKeyId);
  }

  /** Ends a hold whose job will not be created (refused, or the requester gave it up): its slot goes back. */
  releaseHold(hold: Hold): void {
    if (this.#holds.giveBack(hold, this.#o.clock.now())) this.schedule();
  }

  /** Unused holds (slots reserved ahead of need) now. */
  get heldCount(): number {
    return this.#holds.liveCount;
  }

  /** Unused holds of one API key, on all its channels. */
  heldFor(apiKeyId: string): number {
    return this.#holds.of(apiKeyId);
  }

  /**
   * A check job (canary, replica, tie-break, re-run) with its placement rules; a replica is
   * announced on the primary's stream. It is paid from the network's check budget: when the
   * budget cannot cover its envelope it is not created (402).
   */
  createCheckJob(spec: CheckJobSpec): Job | Refusal {
    const primary = spec.primaryJobId;
    const envelope =
      spec.billing ?? (primary === undefined ? undefined : (this.#jobs.get(primary)?.envelope ?? this.#o.billing?.envelopeOf(primary)));
    if (envelope === undefined) {
      return refusal(409, 'CONFLICT', 'A check job needs a billing envelope: give one, or the id of a job this coordinator still holds.');
    }
    const id = randomId();
    const { meta: m, bill } = checkJobPlan(spec, id, envelope);
    if (this.#o.billing !== undefined && !this.#o.billing.reserveCheck(bill)) {
      return refusal(402, 'PAYMENT_REQUIRED', "The network's check budget cannot cover this check now; it was not created.");
    }
    const job = this.#create(id, spec.apiKeyId, spec.model, spec.kind, envelope, m);
    if (!(job instanceof Job)) this.#o.billing?.ended(id, job.error.message);
    if (job instanceof Job) {
      this.#meta.checkAdded(spec.apiKeyId);
      if (spec.role === 'replica') spec.announceOn?.emit({ type: 'replica-assigned', jobId: job.id, role: 'replica' });
    }
    return job;
  }

  /** Whether any connected contributor other than `exclude` could run a check job of this model, kind and engine class. */
  hasPeer(model: string, kind: JobKind, engineClass: string, exclude: readonly string[], excludeWallets: readonly string[] = []): boolean {
    return (
      hasPeer(this.#contributors.values(), this.#o.checks, { model, kind, engineClass, exclude, excludeWallets }, this.#classOf) ||
      this.remotePeer?.(model, kind, engineClass) === true
    );
  }

  /**
   * Replicas (coordinator/cluster/routing.ts): whether another replica has a contributor that
   * serves `model`, `kind` and `engineClass`, for checks no contributor here can take (they then
   * wait for a slot that replica lends).
   */
  remotePeer: ((model: string, kind: JobKind, engineClass: string) => boolean) | null = null;

  /**
   * Replicas: whether a contributor of another replica ran this replica's jobs lately (and its
   * replica has not said it left), so a canary for it may wait for a slot that replica lends.
   */
  remoteContributor: ((contributorId: string) => boolean) | null = null;

  /** Whether a check aimed at `contributorId` can reach it: connected here, or (replicas) to another replica. */
  reaches(contributorId: string): boolean {
    return this.#contributors.has(contributorId) || this.remoteContributor?.(contributorId) === true;
  }

  /** The devices and the wallets whose devices must not run `jobId` (a check's primary's), besides its earlier attempts'. */
  excludedFrom(jobId: string): { contributors: string[]; wallets: string[] } {
    const m = this.#meta.get(jobId);
    return { contributors: [...(m?.exclude ?? [])], wallets: [...(m?.excludeWallets ?? [])] };
  }

  /** Any job this coordinator holds, whoever owns it. */
  jobById(id: string): Job | undefined {
    return this.#jobs.get(id);
  }

  #create(
    id: string,
    apiKeyId: string,
    model: string,
    kind: JobKind,
    envelope: BillingEnvelope,
    m: JobMeta | undefined,
    hold?: Hold,
  ): Job | Refusal {
    if (this.#jobs.get(id) !== undefined) return refusal(409, 'CONFLICT', `Job ${id} exists already.`);
    if (this.#draining) return refusal(503, 'DRAINING', 'The coordinator is shutting down; submit the job again in a minute.');
    if (this.queuedCount >= this.#o.maxQueued) {
      return refusal(503, 'QUOTA', `The network has ${this.#o.maxQueued} jobs queued, its limit; try again shortly.`);
    }
    const job = new Job({ id, apiKeyId, model, kind, envelope, now: this.#o.clock.now() });
    if (m !== undefined) this.#meta.set(job.id, m);
    this.#jobs.add(job);
    if (hold !== undefined && this.#placeHeld(job, hold)) return job;
    this.#waiting.set(job.id, job);
    this.#put(job);
    this.schedule();
    return job;
  }

  /**
   * Assigns a job created on a hold to the hold's contributor and returns true; or, when the
   * contributor left, the hold lapsed or the contributor no longer fits the job, spends
   * attempt 1 (the payload was sealed for that contributor alone) so that the job waits for
   * attempt 2 and its requester seals again for whoever gets it.
   */
  #placeHeld(job: Job, hold: Hold): boolean {
    const now = this.#o.clock.now();
    if (hold.state === 'claimed') {
      this.#holds.giveBack(hold, now);
      const hooks = hooksFor(this.#o.hooks, this.#o.checks, this.#meta.get(job.id), this.#classOf);
      if (!this.#draining && canRun(hold.holder, job) && (hooks.eligible?.(hold.holder, job) ?? true)) {
        this.#assign(job, hold.holder);
        return true;
      }
    }
    // Not excluded from attempt 2: a contributor whose hold only expired may well run it, sealed anew.
    job.requeue(now);
    return false;
  }

  /** A job in flight or recently finished, if the key owns it. */
  job(id: string, apiKeyId: string): Job | undefined {
    const job = this.#jobs.get(id);
    return job?.apiKeyId === apiKeyId ? job : undefined;
  }

  /** Unfinished jobs of one API key. */
  inFlightFor(apiKeyId: string): number {
    return this.#jobs.unfinishedFor(apiKeyId) - this.#meta.checksOf(apiKeyId);
  }

  /** Sends the payload, sealed for the current attempt's contributor, on its reserved slot. */
  submitPayload(job: Job, attempt: number, sealed: Sealed): Refusal | null {
    const lease = job.leaseId === null ? undefined : this.#leases.active(job.leaseId);
    const refused = payloadRefusal(job, attempt, lease);
    if (refused !== null || lease === undefined) return refused;
    const started = performance.now();
    const allowance = modelAvailability(lease.holder, job.model) === 'loaded' ? 0 : this.#o.loadAllowanceMs;
    this.#leases.start(lease, this.#o.clock.now() + this.#o.leaseMs + allowance);
    job.state = 'leased';
    job.payloadBytes = base64urlBytes(sealed.ct) + base64urlBytes(sealed.enc ?? '');
    lease.holder.send({
      v: 1,
      type: 'job',
      jobId: job.id,
      leaseId: lease.id,
      model: job.model,
      kind: job.kind,
      attempt: job.attempt,
      deadline: lease.expiresAt,
      sealed,
    });
    this.#o.metrics.dispatchLatency((performance.now() - started) / 1000);
    this.#put(job);
    return null;
  }

  cancel(job: Job): Refusal | null {
    if (job.state === 'cancelled') return null;
    if (job.finished) return refusal(409, 'CONFLICT', `The job is already ${job.state}.`);
    const lease = job.leaseId === null ? undefined : this.#leases.active(job.leaseId);
    if (lease !== undefined) this.#release(lease, 'cancelled', 'cancelled by the requester');
    this.#finish(job, 'cancelled', { code: 'ABORTED', message: 'The requester cancelled the job.' });
    this.schedule();
    return null;
  }

  /** Ends an unfinished job as failed with `error` (e.g. its payload broke its billing envelope). */
  refuse(job: Job, error: WireError): void {
    if (job.finished) return;
    const lease = job.leaseId === null ? undefined : this.#leases.active(job.leaseId);
    if (lease !== undefined) this.#release(lease, 'failed', error.message.slice(0, 200));
    this.#finish(job, 'failed', error);
    this.schedule();
  }

  /**
   * Jobs the recovery at start ended with `RESTARTED`: for a lease's time, a result that
   * their contributor sends for them is refused with that code (docs/protocol.md,
   * "Surviving faults"), not as an unknown job.
   */
  markRestarted(jobs: ReadonlyArray<{ id: string; contributorId: string | null }>): void {
    this.#restarted.mark(jobs, this.#o.clock.now());
  }

  /** Handles a `chunk` or `fail` from a contributor and returns the answer to send back. */
  result(contributor: ConnectedContributor, message: ResultMessage): CoordinatorMessage {
    const { jobId } = message;
    const lease = this.#leases.get(message.leaseId);
    const restarted = lease === undefined ? this.#restarted.refusalFor(jobId, contributor.id) : undefined;
    if (restarted !== undefined) return restarted;
    const seq = message.type === 'chunk' ? message.seq : (lease?.nextSeq ?? 0);
    const verdict = judgeResult(lease, contributor.id, message, this.#o.clock.now());
    const job = this.#jobs.get(jobId);
    const refuse = (error: WireError): CoordinatorMessage => ({ v: 1, type: 'error', error, fatal: false, jobId });
    if (verdict.action === 'duplicate') {
      this.#o.metrics.duplicateResult();
      return { v: 1, type: 'ack', jobId, seq, status: 'duplicate' };
    }
    if (verdict.action === 'refuse') {
      if (verdict.expire === true && lease !== undefined) this.#expire(lease);
      return refuse(verdict.error);
    }
    if (lease === undefined || job === undefined) return refuse({ code: 'NOT_FOUND', message: `No job ${jobId}.` });
    if (message.type === 'fail') {
      // Bad input fails everywhere; anything else may be this device's fault.
      if (message.error.code === 'INVALID_INPUT') {
        // It fails the job for the requester, so it costs the device: a false claim lowers its record.
        this.#o.checks?.onFault?.(contributor.id, job.model, 'invalid-input');
        this.#leases.end(lease, 'failed');
        this.#finish(job, 'failed', message.error);
      } else {
        this.#retry(lease, 'failed', message.error);
      }
      return { v: 1, type: 'ack', jobId, seq, status: 'accepted' };
    }
    const overflow = this.#limits.admit(lease, job, message.sealed, message.final);
    if (overflow !== null) {
      this.#release(lease, 'failed', overflow.release);
      this.#finish(job, 'failed', overflow.finish);
      return refuse(overflow.refuse);
    }
    const { sealed, final, usage } = message;
    const m = this.#meta.get(job.id);
    const role = m?.role ?? 'job';
    if (final && role === 'job') this.#o.checks?.beforeFinal?.(job, contributor, m?.replicas === true);
    const event = { type: 'chunk' as const, attempt: job.attempt, seq, final, sealed };
    // A requester's answer goes out once the store has the job as done (then a restart charges it).
    if (final && role === 'job') job.holdDelivery();
    job.emit(usage === undefined ? event : { ...event, usage });
    if (final) {
      this.#leases.end(lease, 'done');
      const claimed = { promptTokens: usage?.promptTokens ?? 0, completionTokens: usage?.completionTokens ?? 0 };
      const billed = clampUsage(claimed, job.envelope);
      job.promptTokens = billed.promptTokens;
      job.completionTokens = billed.completionTokens;
      const contributorId = job.contributorId;
      this.#finish(job, 'done', null);
      if (job.deliveryHeld) deliverWhenRecorded(job, this.#o.store, this.#o.metrics, this.#o.recordWaitMs ?? RECORD_WAIT_MS);
      if (contributorId !== null) {
        const done = jobDone(job, contributorId, m, job.engineClass ?? this.#classOf(contributor, job.model), billed, claimed);
        this.#o.checks?.onDone?.(done);
        this.#o.onJobDone?.(done);
      }
    }
    return { v: 1, type: 'ack', jobId, seq, status: 'accepted' };
  }

  /** Expires leases, unanswered assignments and jobs that waited too long; forgets old logs. */
  sweep(): void {
    const now = this.#o.clock.now();
    for (const lease of this.#leases.overdue(now)) {
      if (lease.phase === 'running') {
        this.#expire(lease);
        continue;
      }
      const job = this.#jobs.get(lease.jobId);
      this.#release(lease, 'expired', 'no payload');
      if (job !== undefined) {
        const seconds = Math.round(this.#o.leaseMs / 1000);
        this.#finish(job, 'failed', {
          code: 'LEASE_EXPIRED',
          message: `No sealed payload arrived within ${seconds} s of the assignment; submit the job again.`,
        });
      }
    }
    for (const job of this.#waiting.values()) {
      if (now - job.waitingSince <= this.#o.maxWaitMs) break;
      this.#finish(job, 'failed', noContributorError(this.#contributors.values(), job, this.#o.maxWaitMs));
    }
    this.#holds.expireOverdue(now);
    this.#holds.forget(now - Math.max(this.#o.retainMs, this.#o.leaseMs));
    this.#jobs.forget(now - this.#o.retainMs);
    this.#restarted.forget(now, this.#o.leaseMs + this.#o.loadAllowanceMs);
    this.#leases.forget(now - Math.max(this.#o.retainMs, this.#o.leaseMs));
    this.schedule();
  }

  /** Assigns waiting jobs, oldest first, to contributors with open slots. */
  schedule(): void {
    if (this.#draining || this.#waiting.size === 0) return;
    for (const job of this.#waiting.values()) {
      if (this.#free.freeCount === 0) return;
      const chosen = this.#free.choose(job, hooksFor(this.#o.hooks, this.#o.checks, this.#meta.get(job.id), this.#classOf));
      if (chosen !== undefined) this.#assign(job, chosen);
    }
  }

  #assign(job: Job, contributor: ConnectedContributor): void {
    const now = this.#o.clock.now();
    const lease = this.#leases.reserve({
      id: randomId(12),
      jobId: job.id,
      attempt: job.attempt,
      holder: contributor,
      expiresAt: now + this.#o.leaseMs,
    });
    contributor.openSlots--;
    contributor.lastAssignedAt = now;
    this.#waiting.delete(job.id);
    job.state = 'queued';
    job.contributorId = contributor.id;
    job.engineClass = this.#classOf(contributor, job.model);
    job.leaseId = lease.id;
    job.emit({ type: 'assigned', assignment: { attempt: job.attempt, contributorId: contributor.id, hpkeKey: contributor.hpkeKey } });
    this.#put(job);
  }

  /** Stops assigning; fails jobs that have not started, so their requesters hear at once. */
  startDrain(): void {
    this.#draining = true;
    this.#holds.dropUnclaimed(this.#o.clock.now());
    for (const job of this.#jobs.unfinished()) if (job.state !== 'leased') this.#stop(job);
  }

  /** Fails every unfinished job (telling workers to stop). */
  stopAll(): void {
    this.#draining = true;
    this.#holds.dropUnclaimed(this.#o.clock.now());
    for (const job of this.#jobs.unfinished()) this.#stop(job);
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Jobs waiting for a contributor or for their payload. */
  get queuedCount(): number {
    return this.#leases.reservedCount + this.#waiting.size;
  }

  get runningCount(): number {
    return this.#leases.runningCount;
  }

  #stop(job: Job): void {
    const lease = job.leaseId === null ? undefined : this.#leases.active(job.leaseId);
    if (lease !== undefined) this.#release(lease, 'cancelled', 'the coordinator is shutting down');
    this.#finish(job, 'failed', { code: 'DRAINING', message: 'The coordinator is shutting down; submit the job again.' });
  }

  #expire(lease: Lease): void {
    this.#o.metrics.leaseExpired();
    const expired = this.#jobs.get(lease.jobId);
    if (expired !== undefined) this.#o.checks?.onFault?.(lease.holder.id, expired.model, 'lease-expired');
    lease.holder.send({ v: 1, type: 'cancel', jobId: lease.jobId, leaseId: lease.id, reason: 'lease expired' });
    const seconds = Math.round(this.#o.leaseMs / 1000);
    this.#retry(lease, 'expired', { code: 'LEASE_EXPIRED', message: `the lease expired after ${seconds} s` });
  }

  /** Ends a lease the worker did not finish: a running job is cancelled, an unused slot given back. */
  #release(lease: Lease, outcome: LeaseOutcome, reason: string): void {
    if (lease.phase === 'running') lease.holder.send({ v: 1, type: 'cancel', jobId: lease.jobId, leaseId: lease.id, reason });
    else lease.holder.openSlots++;
    this.#leases.end(lease, outcome);
  }

  /** Ends the attempt; the job waits for another contributor, or fails when out of attempts. */
  #retry(lease: Lease, outcome: LeaseOutcome, reason: WireError): void {
    this.#leases.end(lease, outcome);
    const job = this.#jobs.get(lease.jobId);
    if (job === undefined || job.finished) return;
    job.triedBy.add(lease.holder.id);
    if (this.#draining) return this.#stop(job);
    // A targeted job has nobody else to go to.
    const gone = `The contributor it was meant for did not finish it (${reason.message}).`;
    if (this.#meta.get(job.id)?.target !== undefined) return this.#finish(job, 'failed', { code: reason.code, message: gone });
    if (job.attempt >= this.#o.maxAttempts) {
      const message = `Attempt ${job.attempt} of ${this.#o.maxAttempts} failed (${reason.code}: ${reason.message}); no attempts are left. Submit the job again.`;
      return this.#finish(job, 'failed', { code: reason.code, message });
    }
    job.requeue(this.#o.clock.now());
    this.#waiting.set(job.id, job);
    this.#put(job);
    this.schedule();
  }

  #finish(job: Job, state: FinalState, error: WireError | null): void {
    const now = this.#o.clock.now();
    this.#waiting.delete(job.id);
    job.state = state;
    job.finishedAt = now;
    job.error = error;
    job.leaseId = null;
    if (error !== null) job.emit({ type: 'failed', error });
    job.end();
    this.#jobs.finished(job, now);
    if (state !== 'done') this.#o.billing?.ended(job.id, error === null ? `the job ended ${state}` : `${error.code}: ${error.message}`);
    const m = this.#meta.finished(job.id, job.apiKeyId);
    if (m !== undefined && m.role !== 'job' && state !== 'done') this.#o.checks?.onCheckEnded?.(job.id, m.role, m.primaryJobId);
    this.#o.metrics.jobFinished(state, (now - job.createdAt) / 1000);
    // A held answer is written with the record, for a requester whose stream a crash cuts off.
    const keep = job.deliveryHeld && job.resultBytes <= (this.#o.maxStoredResultBytes ?? MAX_STORED_RESULT_BYTES);
    this.#put(job, now, keep);
  }

  #put(job: Job, now = this.#o.clock.now(), result = false): void {
    job.updatedAt = now;
    this.#o.store.putJob(job.toRecord({ result }));
  }
}
