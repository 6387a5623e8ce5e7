/**
 * Who gets checked, how often, and who is shut out. Canaries go out at a fixed rate; the
 * replication rate is adaptive per (contributor, model, engine class), as in BOINC: it falls
 * geometrically with each clean check toward a floor and jumps back to the base rate, or
 * higher, after a failure. Failures within a window quarantine a contributor. Every decision
 * is kept with its reason for the contributor's dashboard.
 */
import type { JobKind } from '../../protocol/manifest.ts';
import type { Clock } from '../clock.ts';
import type { ContributorView, JobView, SchedulerHooks } from '../scheduler/scheduler.ts';
import type { FindingKind, Judgement } from './outcome.ts';

/** Tuning of {@link VerificationPolicy}. Rates are probabilities in [0, 1]. */
export interface VerificationConfig {
  /** Chance that a job slot also carries a known-answer job. */
  readonly canaryRate: number;
  /** Replication rate of a new (contributor, model, engine class) record, and the least it returns to after a failure. */
  readonly baseReplicationRate: number;
  /** The floor a clean record decays toward. */
  readonly minReplicationRate: number;
  /** Factor in (0, 1] the rate is multiplied by per clean check. */
  readonly decayPerCleanJob: number;
  /** Factor (≥ 1) the rate is multiplied by per failure or suspicion, never ending below the base rate. */
  readonly failureBoost: number;
  /** Failures within {@link windowMs} that quarantine a contributor. */
  readonly quarantineAfter: number;
  /** Window for counting failures, ms. */
  readonly windowMs: number;
  /** How long a quarantine lasts, ms; undefined: until {@link VerificationPolicy.release}. */
  readonly quarantineMs?: number;
  /** Floats in [0, 1); seed it (protocol/random.ts) for tests. */
  readonly random: () => number;
  readonly clock: Clock;
  /** Most records kept per contributor for {@link VerificationPolicy.history}; default 1000. */
  readonly historyLimit?: number;
  /**
   * Broken is not fraud: a device's first failed check on a model moves it off that model for
   * {@link benchMs} and asks it to run its self-test, without counting toward quarantine (the
   * credit is voided all the same). Later failures count. Default false.
   */
  readonly benchFirstFailure?: boolean;
  /** How long a first failure keeps a device off the model, ms; default 10 min. */
  readonly benchMs?: number;
  /** Clean checks a new device needs before it leaves probation; default 0 (no probation). */
  readonly probationChecks?: number;
  /** Canary rate while on probation; default {@link canaryRate}. */
  readonly probationCanaryRate?: number;
}

/** What to do with a new job. */
export interface Decision {
  /** Also send this contributor one known-answer job of the same model and kind. */
  readonly canary: boolean;
  /** Also run this job on a second contributor of the same engine class. */
  readonly replicate: boolean;
  /** The replication rate the decision was drawn with. */
  readonly replicationRate: number;
}

/** One entry of a contributor's record. */
export interface DecisionRecord {
  /** ms since epoch. */
  readonly at: number;
  readonly contributorId: string;
  /** Undefined for quarantine and release, which concern no single job. */
  readonly jobId: string | undefined;
  readonly kind: FindingKind | 'quarantined' | 'released' | 'benched' | 'usage-disputed';
  /** Words a contributor can read. */
  readonly reason: string;
}

/** A credit the ledger must void. */
export interface VoidOrder {
  readonly jobId: string;
  readonly contributorId: string;
  readonly reason: string;
}

/** What {@link VerificationPolicy.apply} changed. */
export interface PolicyEffects {
  readonly records: readonly DecisionRecord[];
  /** Contributors quarantined by this judgement. */
  readonly quarantined: readonly string[];
  /** Pending credits to void beyond the judgement's own `void` findings (a quarantined contributor's unverified work). */
  readonly voids: readonly VoidOrder[];
  /** Devices moved off a model after a first failure: ask each to run its self-test. */
  readonly benched: readonly { readonly contributorId: string; readonly model: string; readonly reason: string }[];
}

/** Beta(clean + 1, failed + 1) mean: 0.5 with no record, toward 1 with clean checks, toward 0 with failures. */
export interface Reputation {
  readonly score: number;
  readonly clean: number;
  readonly failed: number;
  readonly quarantined: boolean;
}

interface ContributorState {
  clean: number;
  failed: number;
  failuresAt: number[];
  quarantinedUntil: number | null;
  /** Unverified or held credits: job id → why it is pending. */
  pending: Map<string, 'unverified' | 'held'>;
  history: DecisionRecord[];
  /** Models whose first failure was forgiven (benched, not counted). */
  forgiven: Set<string>;
  /** Models the device is off until the time given, ms. */
  benched: Map<string, number>;
  /** Jobs it failed blaming the input, and leases it let expire: no failed check, but a worse record. */
  faults: number;
}

/** Adaptive canaries, replication, reputation and quarantine. Synchronous, so its hooks fit the scheduling pass. */
export class VerificationPolicy {
  readonly #config: VerificationConfig;
  readonly #rates = new Map<string, number>();
  readonly #contributors = new Map<string, ContributorState>();
  /** Quarantined wallets: wallet → until (Infinity: until released). A new key under such a wallet gets no job either. */
  readonly #wallets = new Map<string, number>();

  constructor(config: VerificationConfig) {
    const { canaryRate, baseReplicationRate, minReplicationRate, decayPerCleanJob, failureBoost } = config;
    for (const [name, value] of Object.entries({ canaryRate, baseReplicationRate, minReplicationRate, decayPerCleanJob })) {
      if (!(value >= 0 && value <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${value}.`);
    }
    if (minReplicationRate > baseReplicationRate) throw new RangeError('minReplicationRate must not exceed baseReplicationRate.');
    if (!(failureBoost >= 1)) throw new RangeError(`failureBoost must be at least 1, got ${failureBoost}.`);
    if (!(config.quarantineAfter >= 1)) throw new RangeError('quarantineAfter must be at least 1.');
    this.#config = config;
  }

  /** Whether a new job for `contributor` also gets a canary and a replica. Draws two numbers, always. */
  decide(
    job: { readonly id: string; readonly model: string; readonly kind: JobKind },
    contributor: { readonly id: string; readonly engineClass: string; readonly suspect?: boolean },
  ): Decision {
    const replicationRate = this.replicationRate(contributor.id, job.model, contributor.engineClass);
    const rate =
      contributor.suspect === true
        ? Math.max(this.#config.canaryRate, this.#config.probationCanaryRate ?? this.#config.canaryRate)
        : this.canaryRate(contributor.id);
    const canary = this.#config.random() < rate;
    const replicate = this.#config.random() < replicationRate;
    return { canary, replicate, replicationRate };
  }

  /** The canary rate of a device now: higher while it is on probation (fewer clean checks than `probationChecks`). */
  canaryRate(contributorId: string): number {
    const { canaryRate, probationCanaryRate } = this.#config;
    // Probation never checks less than the normal rate.
    return this.onProbation(contributorId) ? Math.max(canaryRate, probationCanaryRate ?? canaryRate) : canaryRate;
  }

  /** Whether a device is new: fewer clean checks than `probationChecks`. */
  onProbation(contributorId: string): boolean {
    return (this.#contributors.get(contributorId)?.clean ?? 0) < (this.#config.probationChecks ?? 0);
  }

  /** Whether the device is off `model` after a first failure (it should run its self-test). */
  isBenched(contributorId: string, model: string): boolean {
    const until = this.#contributors.get(contributorId)?.benched.get(model);
    if (until === undefined) return false;
    if (this.#config.clock.now() < until) return true;
    this.#contributors.get(contributorId)?.benched.delete(model);
    return false;
  }

  /** The replication rate of a (contributor, model, engine class) record now. */
  replicationRate(contributorId: string, model: string, engineClass: string): number {
    return this.#rates.get(rateKey(contributorId, model, engineClass)) ?? this.#config.baseReplicationRate;
  }

  /**
   * Records a judgement of a job on `model` run by contributors of `engineClass`: updates rates,
   * reputation and quarantine, and says which further credits to void.
   */
  apply(judgement: Judgement, context: { readonly model: string; readonly engineClass: string }): PolicyEffects {
    const { baseReplicationRate: base, minReplicationRate: floor, decayPerCleanJob, failureBoost } = this.#config;
    const at = this.#config.clock.now();
    const records: DecisionRecord[] = [];
    const quarantined: string[] = [];
    const voids: VoidOrder[] = [];
    const benched: { contributorId: string; model: string; reason: string }[] = [];
    for (const f of judgement.findings) {
      const state = this.#state(f.contributorId);
      const key = rateKey(f.contributorId, context.model, context.engineClass);
      const rate = this.#rates.get(key) ?? base;
      records.push(this.#record(state, { at, contributorId: f.contributorId, jobId: judgement.jobId, kind: f.kind, reason: f.reason }));
      state.pending.delete(judgement.jobId);
      if (f.ledger === 'hold') state.pending.set(judgement.jobId, 'held');
      else if (f.ledger === 'settle' && f.standing === 'unchecked') state.pending.set(judgement.jobId, 'unverified');
      if (f.standing === 'clean') {
        state.clean++;
        this.#rates.set(key, Math.max(floor, rate * decayPerCleanJob));
      } else if (f.standing === 'suspect' || f.standing === 'failed') {
        this.#rates.set(key, Math.min(1, Math.max(base, rate * failureBoost)));
      }
      if (f.standing !== 'failed') continue;
      if (this.#config.benchFirstFailure === true && !state.forgiven.has(context.model)) {
        // Broken is not fraud: the first failure on a model benches the device there and asks for its self-test.
        state.forgiven.add(context.model);
        state.benched.set(context.model, at + (this.#config.benchMs ?? 600_000));
        const reason =
          `Your result for job ${judgement.jobId} failed its check, so this device gets no "${context.model}" jobs for a while. ` +
          'Run its self-test; this first failure does not count toward quarantine, further ones do.';
        records.push(this.#record(state, { at, contributorId: f.contributorId, jobId: judgement.jobId, kind: 'benched', reason }));
        benched.push({ contributorId: f.contributorId, model: context.model, reason });
        continue;
      }
      state.failed++;
      state.failuresAt.push(at);
      state.failuresAt = state.failuresAt.filter((t) => t > at - this.#config.windowMs);
      if (state.quarantinedUntil === null && state.failuresAt.length >= this.#config.quarantineAfter) {
        quarantined.push(f.contributorId);
        const { record, orders } = this.#quarantine(state, f.contributorId, at);
        records.push(record);
        voids.push(...orders);
      }
    }
    return { records, quarantined, voids, benched };
  }

  /** The device failed a job blaming its input, or let a lease expire: its reputation, and so its placement, drops. */
  fault(contributorId: string): void {
    this.#state(contributorId).faults++;
  }

  /** The ledger settled the job's credit: it is no longer voided by a later quarantine. */
  settled(jobId: string, contributorId: string): void {
    this.#contributors.get(contributorId)?.pending.delete(jobId);
  }

  /** Whether the contributor is shut out now (a timed quarantine that ran out is released here). */
  isQuarantined(contributorId: string): boolean {
    const state = this.#contributors.get(contributorId);
    if (state?.quarantinedUntil === null || state === undefined) return false;
    if (this.#config.clock.now() < state.quarantinedUntil) return true;
    this.release(contributorId, 'The quarantine period ended. Your work is checked more often for a while.');
    return false;
  }

  /** Shuts out every device of `wallet` until `until` (ms; Infinity: until released). */
  quarantineWallet(wallet: string, until: number): void {
    this.#wallets.set(wallet, Math.max(until, this.#wallets.get(wallet) ?? 0));
  }

  /** Whether `wallet` is shut out now (a quarantine that ran out is forgotten here). */
  isWalletQuarantined(wallet: string): boolean {
    const until = this.#wallets.get(wallet);
    if (until === undefined) return false;
    if (this.#config.clock.now() < until) return true;
    this.#wallets.delete(wallet);
    return false;
  }

  /** Ends a wallet's quarantine (an operator's call). */
  releaseWallet(wallet: string): void {
    this.#wallets.delete(wallet);
  }

  /** Whether a device may get jobs: neither it nor its wallet is quarantined. */
  isShutOut(contributorId: string, wallet: string | null | undefined): boolean {
    return this.isQuarantined(contributorId) || (wallet != null && this.isWalletQuarantined(wallet));
  }

  /** Ends a quarantine (an operator's call, or its period ran out); failures in the window are forgiven, rates stay high. */
  release(contributorId: string, reason: string): DecisionRecord | undefined {
    const state = this.#contributors.get(contributorId);
    if (state === undefined || state.quarantinedUntil === null) return undefined;
    state.quarantinedUntil = null;
    state.failuresAt = [];
    return this.#record(state, { at: this.#config.clock.now(), contributorId, jobId: undefined, kind: 'released', reason });
  }

  /** Puts back a contributor's counts and quarantine as the store kept them (after a restart). */
  restore(
    contributorId: string,
    saved: {
      clean: number;
      failed: number;
      quarantinedUntil: number | null;
      faults?: number;
      /** Models a first failure benched it off (forgiven once), and when each bench ends, ms. */
      benched?: ReadonlyMap<string, number>;
    },
  ): void {
    const state = this.#state(contributorId);
    state.clean = saved.clean;
    state.failed = saved.failed;
    state.quarantinedUntil = saved.quarantinedUntil;
    state.faults = saved.faults ?? state.faults;
    for (const [model, until] of saved.benched ?? []) {
      state.forgiven.add(model);
      state.benched.set(model, until);
    }
  }

  /**
   * A quarantine another replica wrote (read back from the database): the device gets no job
   * here either. Credits are not voided here: the replica that quarantined it voided them in the
   * database. A later end (or none) wins over an earlier one.
   */
  shareQuarantine(contributorId: string, until: number): void {
    const state = this.#state(contributorId);
    if (state.quarantinedUntil === null || state.quarantinedUntil < until) state.quarantinedUntil = until;
  }

  /** A bench another replica wrote: the device is off `model` until `until` here too (its first failure is spent). */
  shareBench(contributorId: string, model: string, until: number): void {
    const state = this.#state(contributorId);
    state.forgiven.add(model);
    state.benched.set(model, Math.max(until, state.benched.get(model) ?? 0));
  }

  /** When the device's bench off `model` ends, ms; null when it is not benched there. */
  benchedUntil(contributorId: string, model: string): number | null {
    return this.#contributors.get(contributorId)?.benched.get(model) ?? null;
  }

  /** When the contributor's quarantine ends (ms; Infinity: until released), or null when it is not quarantined. */
  quarantinedUntil(contributorId: string): number | null {
    return this.isQuarantined(contributorId) ? (this.#contributors.get(contributorId)?.quarantinedUntil ?? null) : null;
  }

  /** The highest replication rate over the contributor's (model, engine class) records; the base rate without any. */
  contributorRate(contributorId: string): number {
    const prefix = JSON.stringify([contributorId]).slice(0, -1) + ',';
    let highest = -1;
    for (const [key, rate] of this.#rates) if (key.startsWith(prefix)) highest = Math.max(highest, rate);
    return highest < 0 ? this.#config.baseReplicationRate : highest;
  }

  /** Reputation of a contributor over all its models. */
  reputation(contributorId: string): Reputation {
    const s = this.#contributors.get(contributorId);
    const clean = s?.clean ?? 0;
    const failed = s?.failed ?? 0;
    const faults = s?.faults ?? 0;
    return { score: (clean + 1) / (clean + failed + faults + 2), clean, failed, quarantined: this.isQuarantined(contributorId) };
  }

  /** The contributor's decisions, oldest first (at most `historyLimit`). */
  history(contributorId: string): readonly DecisionRecord[] {
    return [...(this.#contributors.get(contributorId)?.history ?? [])];
  }

  /** Scheduler hooks: a quarantined contributor is not eligible for any job. */
  schedulerHooks(): SchedulerHooks {
    return { eligible: (contributor: ContributorView, _job: JobView) => !this.isShutOut(contributor.id, contributor.wallet) };
  }

  #quarantine(state: ContributorState, contributorId: string, at: number): { record: DecisionRecord; orders: VoidOrder[] } {
    const { quarantineAfter, windowMs, quarantineMs } = this.#config;
    state.quarantinedUntil = quarantineMs === undefined ? Number.POSITIVE_INFINITY : at + quarantineMs;
    const orders: VoidOrder[] = [...state.pending].map(([jobId, why]) => ({
      jobId,
      contributorId,
      reason:
        why === 'held'
          ? `Job ${jobId} was awaiting a third run when you were quarantined; its credit is voided.`
          : `Job ${jobId} was never checked and you were quarantined for failed checks, so its credit is voided.`,
    }));
    state.pending.clear();
    const hours = windowMs / 3_600_000;
    const until = quarantineMs === undefined ? 'until an operator releases you' : `for ${Math.round(quarantineMs / 60_000)} minutes`;
    const reason =
      `${quarantineAfter} of your results failed checks within ${hours} hours, so you get no jobs ${until}. ` +
      `${orders.length} unverified credit(s) are voided; credits for checked work stand.`;
    return { record: this.#record(state, { at, contributorId, jobId: undefined, kind: 'quarantined', reason }), orders };
  }

  #record(state: ContributorState, record: DecisionRecord): DecisionRecord {
    state.history.push(record);
    const limit = this.#config.historyLimit ?? 1000;
    if (state.history.length > limit) state.history.splice(0, state.history.length - limit);
    return record;
  }

  #state(contributorId: string): ContributorState {
    let state = this.#contributors.get(contributorId);
    if (state === undefined) {
      state = {
        clean: 0,
        failed: 0,
        failuresAt: [],
        quarantinedUntil: null,
        pending: new Map(),
        history: [],
        forgiven: new Set(),
        benched: new Map(),
        faults: 0,
      };
      this.#contributors.set(contributorId, state);
    }
    return state;
  }
}

function rateKey(contributorId: string, model: string, engineClass: string): string {
  return JSON.stringify([contributorId, model, engineClass]);
}
