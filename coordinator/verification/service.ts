/**
 * Verified work in the running coordinator: after each requester job it asks the policy
 * whether to send the contributor a canary and whether to replicate the job (relay-checks.ts),
 * runs canaries itself (canary-checks.ts), takes replication verdicts (verdicts.ts) and job
 * reports (job-reports.ts) from the requester, and turns judgements into ledger effects
 * (settle, void, hold), quarantines and persisted decision records (judgement-writer.ts). It
 * also signs a receipt for every credited job (receipt-signer.ts).
 */
import type { VerificationReport } from '../../protocol/answers.ts';
import type { CompareOptions } from '../../protocol/compare.ts';
import type { JobReport, Verdict } from '../../protocol/wire.ts';
import type { Clock } from '../clock.ts';
import type { Verdict as LedgerVerdict } from '../earnings/service.ts';
import type { Job } from '../jobs/job.ts';
import type { Refusal, Relay, RelayChecks } from '../leases/relay.ts';
import type { CanarySource } from './canaries.ts';
import { CanaryChecks } from './canary-checks.ts';
import { CanaryMoments } from './canary-shapes.ts';
import { type JobReportOutcome, takeJobReport } from './job-reports.ts';
import { JudgementWriter, WALLET_PREFIX } from './judgement-writer.ts';
import type { VerificationPolicy } from './policy.ts';
import type { ReceiptInput, SignedReceipt } from './receipts.ts';
import { ReceiptSigner } from './receipt-signer.ts';
import { type DecisionCounts, RelayCheckHooks } from './relay-checks.ts';
import { RequesterStanding } from './requesters.ts';
import { ReputationStore } from './reputation-store.ts';
import { restoreState } from './restore.ts';
import { type LiftRow, type QuarantineRow, SharedQuarantines } from './shared-quarantines.ts';
import type { SqlDb } from '../store/sql.ts';
import { takeVerdict, type VerdictOutcome } from './verdicts.ts';
import { VerificationStore } from './verification-store.ts';
import { WorkQueue } from './work-queue.ts';

/** Settings of {@link createVerification}. */
export interface VerificationOptions {
  readonly db: SqlDb;
  readonly policy: VerificationPolicy;
  readonly canaries: CanarySource;
  readonly clock: Clock;
  /** How long a replicated job waits for its replica and the requester's verdict before it counts as unchecked, ms. */
  readonly verdictWindowMs: number;
  readonly compare?: CompareOptions;
  /** The receipt signing key; default: the one stored in the database, made on first start. */
  readonly receiptKey?: CryptoKeyPair;
  /**
   * The key the stored receipt key is sealed under (verification/receipt-key.ts); null or
   * absent: stored as it is (a plain key is sealed as soon as a KEK is given).
   */
  readonly receiptKek?: Uint8Array | null;
  /** Where unexpected failures go; default console.error. */
  readonly log?: (message: string, err?: unknown) => void;
  /**
   * How long the credit of a job run by a device on probation is held before it may settle,
   * ms: a new identity's work stays voidable while its first checks come in. Default 0 (off).
   */
  readonly probationWindowMs?: number;
  /** How requesters' reports are weighed; default: a 24-hour window with the defaults of {@link RequesterStanding}. */
  readonly standing?: RequesterStanding;
  /** Canaries go out at a random moment up to this long after the job that drew them, ms (canary-shapes.ts); default 0: at once. */
  readonly canaryDelayMs?: number;
  /** Floats in [0, 1) for the canaries' moments; default Math.random. */
  readonly random?: () => number;
  /**
   * Most nanoTON of unchecked requester-job credit a device on probation may have settle;
   * credits beyond it are held until it leaves probation (or voided if its wallet is
   * quarantined). Default {@link DEFAULT_PROBATION_CREDIT_CAP}; null: no cap.
   */
  readonly probationCreditCap?: bigint | null;
}

/** The default probation credit cap: 1 TON. */
export const DEFAULT_PROBATION_CREDIT_CAP = 1_000_000_000n;

/** A contributor's verification page (`GET /v1/contributors/:id/verification`). */
export type { VerificationReport } from '../../protocol/answers.ts';
export type { DecisionCounts } from './relay-checks.ts';
export type { JobReportOutcome } from './job-reports.ts';
export type { VerdictOutcome } from './verdicts.ts';

export interface Verification {
  /** For the relay (`createCoordinator({ verification })`). */
  readonly relayChecks: RelayChecks;
  /** Connects to the coordinator's relay; canaries and replicas need it. */
  attach(relay: Relay): void;
  /** Loads the receipt key and restores quarantines and counts; call once before serving. */
  start(): Promise<void>;
  /** The earnings service's question at the end of a credit's window. */
  isVerified(jobId: string): Promise<LedgerVerdict>;
  /** Takes back a credit at once (the earnings service); set by the money wiring. */
  setVoider(voider: (jobId: string, reason: string) => Promise<void>): void;
  /** Signs and stores a receipt for a credited job. */
  receipt(input: ReceiptInput): Promise<SignedReceipt>;
  /** Places a free re-run of a delivered job (the billing side's `createRerun`); set by the money wiring. */
  setRerunner(rerunner: (jobId: string) => Promise<Job | Refusal>): void;
  /** A requester's report on its delivered job `jobId` (did it open, what usage it held), posted by the SDK of the job's own key. */
  jobReport(jobId: string, apiKeyId: string, report: JobReport): Promise<JobReportOutcome>;
  /** How requesters' reports are weighed. */
  readonly standing: RequesterStanding;
  /** A requester's verdict on its job `jobId`, posted by the SDK of the job's own key. */
  verdict(jobId: string, apiKeyId: string, verdict: Verdict): Promise<VerdictOutcome>;
  report(contributorId: string): Promise<VerificationReport>;
  receipts(contributorId: string, limit: number): Promise<{ publicKey: string; receipts: SignedReceipt[] }>;
  readonly counts: DecisionCounts;
  /** Resolves when the work started so far is written. */
  idle(): Promise<void>;
  /**
   * Reads the quarantines (of devices and wallets), benches and lifts in the database into the
   * policy, so ones another replica wrote shut devices out (or let them back) here too
   * (coordinator/cluster/policy-sync.ts): the rows of `ids` when a word named them, else the rows
   * changed since the last read (at start: those in force).
   */
  refreshShared(ids?: readonly string[]): Promise<void>;
  /** Called once this replica has written a quarantine, a bench or a lift to the database, with the ids concerned. */
  onShared(listener: (ids: string[]) => void): void;
  /** The quarantines in force and the latest lifts (the operator's list). */
  quarantines(): Promise<{ quarantines: QuarantineRow[]; lifts: LiftRow[] }>;
  /**
   * Lifts a quarantine in force (an operator's call, `by` and `reason` recorded) on every
   * replica; null when there is none. Credits it voided stay voided.
   */
  liftQuarantine(id: string, by: string, reason: string): Promise<LiftRow | null>;
}

/** Builds the verification service over the coordinator's database. */
export function createVerification(options: VerificationOptions): Verification {
  const { policy, canaries, clock } = options;
  const log = options.log ?? ((message: string, err?: unknown) => console.error(`[verification] ${message}`, err ?? ''));
  const store = new VerificationStore(options.db);
  const reputation = new ReputationStore(options.db);
  const cap = options.probationCreditCap === undefined ? DEFAULT_PROBATION_CREDIT_CAP : options.probationCreditCap;
  const standing = options.standing ?? new RequesterStanding({ windowMs: 24 * 3_600_000, clock });
  const queue = new WorkQueue(log);
  const signer = new ReceiptSigner(options.db, store, options.receiptKey, options.receiptKek ?? null);
  let relay: Relay | null = null;
  let rerunner: ((jobId: string) => Promise<Job | Refusal>) | null = null;
  const shared = new SharedQuarantines({ db: options.db, policy, clock });
  const writer = new JudgementWriter({ policy, store, reputation, clock, verdictWindowMs: options.verdictWindowMs, relay: () => relay });
  const hooks: RelayCheckHooks = new RelayCheckHooks({
    policy,
    canaries,
    canaryChecks: new CanaryChecks({
      canaries,
      moments: new CanaryMoments(options.canaryDelayMs ?? 0, options.random ?? Math.random),
      store,
      clock,
      compare: options.compare,
      queue,
      writer,
      relay: () => relay,
      onSent: () => hooks.counts.canarySent++,
    }),
    standing,
    store,
    reputation,
    clock,
    queue,
    verdictWindowMs: options.verdictWindowMs,
    probationWindowMs: options.probationWindowMs ?? 0,
    cap,
    relay: () => relay,
    log,
  });
  const apply = writer.apply.bind(writer);
  const walletsOf = writer.walletsOf.bind(writer);
  const settled = (): Promise<void> => queue.settled();

  return {
    relayChecks: hooks,
    counts: hooks.counts,
    attach(r) {
      relay = r;
    },
    async start() {
      const now = clock.now();
      await signer.load(now);
      await restoreState({ store, reputation }, policy, standing, now);
    },
    async isVerified(jobId) {
      const row = await store.job(jobId);
      if (row === null) return 'ok';
      if (row.status === 'void') return 'void';
      if (row.status === 'settle') return 'ok';
      const wallets = await walletsOf([row.contributorId]);
      // The database too: another replica may have quarantined the device or its wallet a moment ago.
      const shutOut =
        policy.isQuarantined(row.contributorId) ||
        wallets.some((w) => policy.isWalletQuarantined(w)) ||
        (await store.anyQuarantined([row.contributorId, ...wallets.map((w) => `${WALLET_PREFIX}${w}`)], clock.now()));
      if (shutOut) {
        await store.setStatus(row.primaryJobId, row.contributorId, 'void', null, clock.now());
        return 'void';
      }
      if (row.status === 'awaiting' && row.awaitingUntil !== null && clock.now() < row.awaitingUntil) return 'hold';
      // Unchecked work of a new identity settles only up to the probation credit cap.
      if (cap !== null && policy.onProbation(row.contributorId) && (await reputation.beyondCap(jobId, cap))) return 'hold';
      return 'ok';
    },
    setVoider(v) {
      writer.setVoider(v);
    },
    setRerunner(r) {
      rerunner = r;
    },
    jobReport: (jobId, apiKeyId, body) =>
      takeJobReport({ store, clock, standing, settled, apply, rerunner: () => rerunner }, jobId, apiKeyId, body),
    standing,
    async receipt(input) {
      const signed = await signer.sign(input);
      if (hooks.takeProbationJob(input.jobId))
        await reputation.addProbationCredit(input.jobId, input.contributorId, input.amountNano, input.at);
      return signed;
    },
    verdict: (jobId, apiKeyId, body) =>
      takeVerdict({ store, clock, standing, relay: () => relay, settled, apply, walletsOf }, jobId, apiKeyId, body),
    async report(contributorId) {
      const [k, records] = await Promise.all([store.kindCounts(contributorId), store.records(contributorId, 50)]);
      const rep = policy.reputation(contributorId);
      const checked = (k['replica-agree'] ?? 0) + (k['replica-disagree'] ?? 0);
      return {
        reputation: { score: rep.score, clean: rep.clean, failed: rep.failed },
        quarantined: rep.quarantined,
        canaries: { passed: k['canary-pass'] ?? 0, failed: k['canary-fail'] ?? 0 },
        replication: { checked, agreed: k['replica-agree'] ?? 0, rate: policy.contributorRate(contributorId) },
        records: records.map((r) => ({ at: r.at, jobId: r.jobId ?? null, kind: r.kind, reason: r.reason })),
      };
    },
    async receipts(contributorId, limit) {
      return { publicKey: signer.publicKey(), receipts: await store.receipts(contributorId, limit) };
    },
    idle: () => queue.idle(),
    refreshShared: (ids) => shared.refresh(ids),
    onShared(listener) {
      writer.onShared(listener);
    },
    quarantines: () => shared.list(),
    async liftQuarantine(id, by, reason) {
      const lifted = await shared.lift(id, by, reason);
      if (lifted === null) return null;
      if (lifted.record !== undefined) await store.addRecords([lifted.record]);
      writer.shared([id]);
      return lifted.lift;
    },
  };
}
