/**
 * Verified work in the running coordinator: after each requester job it asks the policy
 * whether to send the contributor a canary and whether to replicate the job, runs canaries
 * itself, takes replication verdicts from the requester, and turns judgements into ledger
 * effects (settle, void, hold), quarantines and persisted decision records. It also signs
 * a receipt for every credited job.
 */
import type { CompareOptions } from '../../protocol/compare.ts';
import type { JobResult, Usage } from '../../protocol/jobs.ts';
import type { JobReport, JobReportAnswer, Verdict } from '../../protocol/wire.ts';
import type { Clock } from '../deps.ts';
import type { Verdict as LedgerVerdict } from '../earnings/service.ts';
import { Job } from '../jobs/job.ts';
import type { ConnectedContributor } from '../leases/contributor.ts';
import type { Refusal, Relay, RelayChecks } from '../leases/relay.ts';
import { RequesterStanding } from './requesters.ts';
import type { SqlDb } from '../store/sql.ts';
import type { Canary, CanarySource } from './canaries.ts';
import { type CanaryOutcome, canaryEnvelope, sendCanary } from './canary-runner.ts';
import { CanaryMoments } from './canary-shapes.ts';
import { judge, type Judgement } from './outcome.ts';
import type { VerificationPolicy } from './policy.ts';
import { issueReceipt, type ReceiptInput, type SignedReceipt } from './receipts.ts';
import { isSealed, openKey, sealKey } from './receipt-key.ts';
import { type JobRow, replaceKey, VerificationStore } from './verification-store.ts';
import { takeVerdict, type VerdictOutcome } from './verdicts.ts';
import { ReputationStore } from './reputation-store.ts';

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

/** How often the policy said yes, for checking the rates. */
export interface DecisionCounts {
  /** Requester jobs the policy decided on. */
  readonly decided: number;
  readonly canaryDrawn: number;
  readonly canarySent: number;
  readonly replicaDrawn: number;
  readonly replicaSent: number;
}

/** A contributor's verification page (`GET /v1/contributors/:id/verification`). */
export interface VerificationReport {
  readonly reputation: { readonly score: number; readonly clean: number; readonly failed: number };
  readonly quarantined: boolean;
  readonly canaries: { readonly passed: number; readonly failed: number };
  readonly replication: { readonly checked: number; readonly agreed: number; readonly rate: number };
  readonly records: readonly { readonly at: number; readonly jobId: string | null; readonly kind: string; readonly reason: string }[];
}

/** The answer to a job report, or why it was refused. */
export type JobReportOutcome =
  | { readonly ok: true; readonly answer: JobReportAnswer }
  | { readonly ok: false; readonly status: 404 | 409; readonly code: 'NOT_FOUND' | 'CONFLICT'; readonly message: string };

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
}

const KEY_NAME = 'receipts';
/** Wallet quarantines share the quarantine table with devices, under this prefix. */
const WALLET_PREFIX = 'wallet:';

/** Builds the verification service over the coordinator's database. */
export function createVerification(options: VerificationOptions): Verification {
  const { policy, canaries, clock } = options;
  const log = options.log ?? ((message: string, err?: unknown) => console.error(`[verification] ${message}`, err ?? ''));
  const store = new VerificationStore(options.db);
  const reputation = new ReputationStore(options.db);
  const cap = options.probationCreditCap === undefined ? DEFAULT_PROBATION_CREDIT_CAP : options.probationCreditCap;
  /** Requester jobs run on probation whose credit has not been signed yet (bounded: cleared when it grows past 100 000). */
  const probationJobs = new Set<string>();
  const counts = { decided: 0, canaryDrawn: 0, canarySent: 0, replicaDrawn: 0, replicaSent: 0 };
  /** Canaries in flight: job id → what it must answer. */
  const expected = new Map<string, { contributorId: string; canary: NonNullable<ReturnType<CanarySource['next']>> }>();
  /** Replicas announced but not yet finished: primary job id → replica job id. */
  const replicaOf = new Map<string, string>();
  let relay: Relay | null = null;
  let voider: ((jobId: string, reason: string) => Promise<void>) | null = null;
  let rerunner: ((jobId: string) => Promise<Job | Refusal>) | null = null;
  const standing = options.standing ?? new RequesterStanding({ windowMs: 24 * 3_600_000, clock });
  let keys: { pair: CryptoKeyPair; raw: string } | null = null;
  let work: Promise<void> = Promise.resolve();
  const moments = new CanaryMoments(options.canaryDelayMs ?? 0, options.random ?? Math.random);

  /** Runs `fn` after the work before it; failures are logged, never thrown into the relay. */
  const enqueue = (what: string, fn: () => Promise<void>): void => {
    work = work.then(fn).catch((err: unknown) => log(`${what} failed`, err));
  };

  /** The wallet a device earns for: the live connection's binding, else the stored one. */
  const walletsOf = async (ids: readonly string[]): Promise<string[]> => {
    const live = ids.flatMap((id) => {
      const w = relay?.contributors.get(id)?.wallet;
      return w === undefined || w === null ? [] : [w];
    });
    const stored = await store.wallets(ids);
    return [...new Set([...live, ...stored.values()])];
  };

  const voidCredit = async (jobId: string, reason: string): Promise<void> => {
    if (voider !== null) await voider(jobId, reason);
  };

  /** Writes a judgement's findings, records and quarantines, and voids what it voids. */
  const apply = async (judgement: Judgement, context: { model: string; engineClass: string }, primaryJobId: string): Promise<void> => {
    const effects = policy.apply(judgement, context);
    const now = clock.now();
    await store.addRecords(effects.records);
    for (const b of effects.benched) {
      relay?.contributors.get(b.contributorId)?.send({ v: 1, type: 'self-test', model: b.model, reason: b.reason });
      await reputation.bench(b.contributorId, b.model, policy.benchedUntil(b.contributorId, b.model) ?? now);
    }
    for (const f of judgement.findings) {
      const status = f.ledger === 'void' ? 'void' : f.ledger === 'hold' ? 'awaiting' : 'settle';
      const ids = await store.setStatus(
        primaryJobId,
        f.contributorId,
        status,
        status === 'awaiting' ? now + options.verdictWindowMs : null,
        now,
      );
      if (f.ledger === 'void') for (const id of ids) await voidCredit(id, f.reason);
    }
    for (const contributorId of effects.quarantined) {
      const until = policy.quarantinedUntil(contributorId);
      const kept = until === null || until === Number.POSITIVE_INFINITY ? null : until;
      await store.quarantine(contributorId, kept, now);
      // The quarantine is the wallet's: a new key under it, or another of its devices, gets no job either.
      const devices = [contributorId];
      for (const wallet of await walletsOf([contributorId])) {
        policy.quarantineWallet(wallet, until ?? Number.POSITIVE_INFINITY);
        await store.quarantine(`${WALLET_PREFIX}${wallet}`, kept, now);
        devices.push(...(await store.devicesOf(wallet)).filter((id) => id !== contributorId));
      }
      for (const device of devices) {
        for (const jobId of await store.voidUnjudged(device, now)) {
          await voidCredit(
            jobId,
            `Job ${jobId} was never checked and your wallet was quarantined for failed checks, so its credit is voided.`,
          );
        }
      }
    }
  };

  const onCanary = (outcome: CanaryOutcome): void => {
    const sent = expected.get(outcome.jobId);
    expected.delete(outcome.jobId);
    if (sent === undefined) return;
    enqueue('judging a canary', async () => {
      const row = await store.job(outcome.jobId);
      const context = { model: sent.canary.request.model, engineClass: row?.engineClass ?? '' };
      if (outcome.result === null) {
        if (outcome.cause === 'network') {
          // The coordinator stopped it: nothing to judge.
          await store.uncheck(outcome.jobId, clock.now());
          return;
        }
        // Garbage is never paid: an unopenable, failed or abandoned canary is a failed check.
        await apply(failedCanary(outcome.jobId, sent.contributorId, `it came to nothing: ${outcome.why}`), context, outcome.jobId);
        return;
      }
      const inflated = inflatedUsage(outcome.usage, trueUsage(sent.canary, outcome.result));
      if (inflated !== null) {
        await apply(failedCanary(outcome.jobId, sent.contributorId, inflated), context, outcome.jobId);
        return;
      }
      const judgement = judge(
        {
          jobId: outcome.jobId,
          check: 'canary',
          primary: { contributorId: sent.contributorId, result: outcome.result },
          expected: sent.canary.expected,
        },
        options.compare,
      );
      await apply(judgement, context, outcome.jobId);
    });
  };

  /** After a requester job: a canary for its contributor, a replica on another, as the policy draws. */
  const decideChecks = (job: Job, contributor: ConnectedContributor, replicas: boolean): void => {
    if (relay === null) return;
    // The class fixed when the job was assigned, from the manifest: the device's own word plays no part.
    const engineClass = job.engineClass ?? relay.engineClassOf(contributor, job.model);
    // A device whose usage claims many distinct requesters dispute is checked as a new one is.
    const decision = policy.decide(job, { id: contributor.id, engineClass, suspect: standing.isSuspect(contributor.id) });
    counts.decided++;
    canaries.observe?.(job.model, job.kind, job.envelope);
    if (decision.canary) {
      counts.canaryDrawn++;
      // At a random moment, not right after the job: its timing must not give it away.
      moments.at(() => {
        const canary = relay?.reaches(contributor.id) === true ? canaries.next(job.model, job.kind, engineClass) : null;
        const id = canary === null || relay === null ? null : sendCanary(relay, contributor.id, canary, onCanary);
        if (canary !== null && id !== null) {
          counts.canarySent++;
          expected.set(id, { contributorId: contributor.id, canary });
        }
      });
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
    replicaOf.set(job.id, replica.id);
  };

  const relayChecks: RelayChecks = {
    eligible: (contributor, model) => !policy.isShutOut(contributor.id, contributor.wallet) && !policy.isBenched(contributor.id, model),
    // More failed checks and faults than clean ones: placed after every other device.
    demote: (contributor) => policy.reputation(contributor.id).score < 0.5,
    onFault: (contributorId) => {
      policy.fault(contributorId);
      enqueue('recording a fault', () => reputation.addFault(contributorId, clock.now()));
    },
    beforeFinal(job, contributor, replicas) {
      try {
        decideChecks(job, contributor, replicas);
      } catch (err) {
        // The requester's result must go out whatever happens to its checks.
        log(`deciding the checks of job ${job.id} failed`, err);
      }
    },
    onDone(done) {
      const replicaJobId = done.role === 'job' ? replicaOf.get(done.jobId) : undefined;
      replicaOf.delete(done.jobId);
      const now = clock.now();
      const primaryJobId = done.role === 'job' || done.role === 'canary' ? done.jobId : (done.primaryJobId ?? done.jobId);
      // A new device's credits wait longer: a quarantine in that time still voids them.
      const probation = done.role === 'job' && (options.probationWindowMs ?? 0) > 0 && policy.onProbation(done.contributorId);
      if (done.role === 'job' && cap !== null && policy.onProbation(done.contributorId)) {
        if (probationJobs.size >= 100_000) probationJobs.clear();
        probationJobs.add(done.jobId);
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
        awaitingUntil: awaiting ? now + Math.max(options.verdictWindowMs, probation ? (options.probationWindowMs ?? 0) : 0) : null,
        claimed: done.claimed,
      };
      enqueue('recording a finished job', () => store.insertJob(row, now));
    },
    onCheckEnded(jobId, role, primaryJobId) {
      if (role === 'canary' || primaryJobId === undefined) return;
      // The replica or tie-break never ran: the primary's credit stops waiting for it.
      enqueue('ending a check', () => store.uncheck(primaryJobId, clock.now()));
      void jobId;
    },
  };

  async function jobReport(jobId: string, apiKeyId: string, body: JobReport): Promise<JobReportOutcome> {
    await work;
    const primary = await store.job(jobId);
    if (primary === null || primary.role !== 'job' || primary.apiKeyId !== apiKeyId) {
      return {
        ok: false,
        status: 404,
        code: 'NOT_FOUND',
        message: `No delivered job ${jobId} of this API key; report only jobs this key ran.`,
      };
    }
    const now = clock.now();
    const claimed = primary.claimed ?? null;
    const received = body.usage;
    const disputed =
      body.opened &&
      received !== undefined &&
      claimed !== null &&
      (claimed.promptTokens > received.promptTokens || claimed.completionTokens > received.completionTokens);
    const flagged = standing.isFlagged(apiKeyId);
    const taken = await store.addReport(
      { jobId, apiKeyId, contributorId: primary.contributorId, outcome: body.opened ? 'ok' : 'unopenable', disputed, counted: !flagged },
      now,
    );
    if (!taken) return { ok: false, status: 409, code: 'CONFLICT', message: `Job ${jobId} was reported already; one report per job.` };
    standing.note(apiKeyId, !body.opened || disputed, now);
    if (disputed) {
      // No amount changes (the bill was clamped to the envelope); the dispute is kept against both parties.
      standing.dispute(primary.contributorId, apiKeyId, now);
      await store.addRecords([
        {
          at: now,
          contributorId: primary.contributorId,
          jobId,
          kind: 'usage-disputed',
          reason: `The requester of job ${jobId} received a result of ${received?.promptTokens ?? 0} + ${received?.completionTokens ?? 0} tokens where you claimed ${claimed?.promptTokens ?? 0} + ${claimed?.completionTokens ?? 0}. Devices many requesters dispute are checked more often.`,
        },
      ]);
    }
    if (body.opened) return { ok: true, answer: { rerun: null, message: disputed ? 'The usage dispute is recorded.' : 'Recorded.' } };
    if (flagged) {
      return {
        ok: true,
        answer: {
          rerun: null,
          message: "This key's reports are far more negative than the network's, so they void no credit and earn no re-run for now.",
        },
      };
    }
    const why = body.reason === undefined ? '' : ` (${body.reason.slice(0, 200)})`;
    await apply(
      {
        jobId,
        check: 'none',
        findings: [
          {
            contributorId: primary.contributorId,
            kind: 'undeliverable',
            standing: 'failed',
            ledger: 'void',
            reason: `The requester of job ${jobId} could not open your result${why}, so it is not paid and the job runs again elsewhere.`,
          },
        ],
        needsTieBreak: false,
      },
      { model: primary.model, engineClass: primary.engineClass },
      jobId,
    );
    const rerun = rerunner === null ? null : await rerunner(jobId);
    if (rerun instanceof Job) return { ok: true, answer: { rerun: { jobId: rerun.id }, message: 'A free re-run is under way.' } };
    const message = `The credit is voided, but no re-run could be placed: ${rerun === null ? 'the coordinator places no re-runs' : rerun.error.message}`;
    return { ok: true, answer: { rerun: null, message: message.slice(0, 500) } };
  }

  return {
    relayChecks,
    counts,
    attach(r) {
      relay = r;
    },
    async start() {
      const now = clock.now();
      if (options.receiptKey !== undefined) {
        const raw = new Uint8Array(await crypto.subtle.exportKey('raw', options.receiptKey.publicKey));
        keys = { pair: options.receiptKey, raw: Buffer.from(raw).toString('base64url') };
      } else {
        const kek = options.receiptKek ?? null;
        const stored = await store.key(
          KEY_NAME,
          async () => {
            const made = await freshKey();
            return kek === null ? made : { pkcs8: await sealKey(made.pkcs8, made.raw, kek), raw: made.raw };
          },
          now,
        );
        const pkcs8 = await openKey(stored.pkcs8, stored.raw, kek);
        // A key stored plain before a KEK was set is sealed now.
        if (kek !== null && !isSealed(stored.pkcs8)) await replaceKey(options.db, KEY_NAME, await sealKey(pkcs8, stored.raw, kek));
        const privateKey = await crypto.subtle.importKey('pkcs8', Buffer.from(pkcs8, 'base64url'), { name: 'Ed25519' }, false, ['sign']);
        const publicKey = await crypto.subtle.importKey('raw', Buffer.from(stored.raw, 'base64url'), { name: 'Ed25519' }, true, ['verify']);
        keys = { pair: { privateKey, publicKey }, raw: stored.raw };
      }
      for (const r of await store.reportsSince(now - standing.windowMs)) {
        standing.note(r.apiKeyId, r.outcome !== 'ok' || r.disputed, r.at);
        if (r.disputed) standing.dispute(r.contributorId, r.apiKeyId, r.at);
      }
      const quarantines = await store.quarantines(now);
      for (const [key, until] of quarantines) {
        if (key.startsWith(WALLET_PREFIX)) policy.quarantineWallet(key.slice(WALLET_PREFIX.length), until ?? Number.POSITIVE_INFINITY);
      }
      const saved = await reputation.load();
      const devices = [...(await store.contributors()), ...quarantines.keys(), ...saved.faults.keys(), ...saved.benched.keys()].filter(
        (id) => !id.startsWith(WALLET_PREFIX),
      );
      for (const contributorId of new Set(devices)) {
        const k = await store.kindCounts(contributorId);
        const until = quarantines.get(contributorId);
        policy.restore(contributorId, {
          clean: (k['canary-pass'] ?? 0) + (k['replica-agree'] ?? 0) + (k['tie-break-pass'] ?? 0),
          failed: (k['canary-fail'] ?? 0) + (k['tie-break-fail'] ?? 0),
          quarantinedUntil: until === undefined ? null : (until ?? Number.POSITIVE_INFINITY),
          faults: saved.faults.get(contributorId) ?? 0,
          benched: saved.benched.get(contributorId) ?? new Map<string, number>(),
        });
      }
    },
    async isVerified(jobId) {
      const row = await store.job(jobId);
      if (row === null) return 'ok';
      if (row.status === 'void') return 'void';
      if (row.status === 'settle') return 'ok';
      const wallets = await walletsOf([row.contributorId]);
      if (policy.isQuarantined(row.contributorId) || wallets.some((w) => policy.isWalletQuarantined(w))) {
        await store.setStatus(row.primaryJobId, row.contributorId, 'void', null, clock.now());
        return 'void';
      }
      if (row.status === 'awaiting' && row.awaitingUntil !== null && clock.now() < row.awaitingUntil) return 'hold';
      // Unchecked work of a new identity settles only up to the probation credit cap.
      if (cap !== null && policy.onProbation(row.contributorId) && (await reputation.beyondCap(jobId, cap))) return 'hold';
      return 'ok';
    },
    setVoider(v) {
      voider = v;
    },
    setRerunner(r) {
      rerunner = r;
    },
    jobReport,
    standing,
    async receipt(input) {
      if (keys === null) throw new Error('Verification is not started; call start() before crediting jobs.');
      const signed = await issueReceipt(input, keys.pair.privateKey);
      await store.addReceipt(signed);
      if (probationJobs.delete(input.jobId))
        await reputation.addProbationCredit(input.jobId, input.contributorId, input.amountNano, input.at);
      return signed;
    },
    verdict: (jobId, apiKeyId, body) =>
      takeVerdict({ store, clock, standing, relay: () => relay, settled: () => work, apply, walletsOf }, jobId, apiKeyId, body),
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
      if (keys === null) throw new Error('Verification is not started; call start() first.');
      return { publicKey: keys.raw, receipts: await store.receipts(contributorId, limit) };
    },
    idle: async () => {
      for (let last = work; ; last = work) {
        await last;
        if (last === work) return;
      }
    },
  };
}

async function freshKey(): Promise<{ pkcs8: string; raw: string }> {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  return { pkcs8: Buffer.from(pkcs8).toString('base64url'), raw: Buffer.from(raw).toString('base64url') };
}

/** A canary judged failed without comparing results: it came to nothing, or its usage claim was inflated. */
function failedCanary(jobId: string, contributorId: string, why: string): Judgement {
  return {
    jobId,
    check: 'canary',
    findings: [
      {
        contributorId,
        kind: 'canary-fail',
        standing: 'failed',
        ledger: 'void',
        reason: `Job ${jobId} had a known answer and ${why}. A check that comes to nothing is a failed check and is not paid.`,
      },
    ],
    needsTieBreak: false,
  };
}

/**
 * The most a canary's run may claim: the known prompt tokens, and as output the known answer's
 * tokens, or for generation as many as the result holds (an honest run may stop elsewhere),
 * for chat at most the request's `maxTokens`.
 */
function trueUsage(canary: Canary, result: JobResult): Usage {
  const { promptTokens, completionTokens } = canary.expected.usage;
  if (result.kind === 'generate') return { promptTokens, completionTokens: Math.max(completionTokens, result.tokens.length) };
  if (result.kind === 'chat') return { promptTokens, completionTokens: Math.max(completionTokens, canaryEnvelope(canary).maxOutputTokens) };
  return { promptTokens, completionTokens };
}

/**
 * Why a canary's claimed usage is inflated, or null when it is not: the coordinator knows the
 * true usage of its known answers, so any claim above it is a lie about the work.
 */
export function inflatedUsage(claimed: Usage | undefined, truth: Usage): string | null {
  if (claimed === undefined) return null;
  if (claimed.promptTokens <= truth.promptTokens && claimed.completionTokens <= truth.completionTokens) return null;
  return (
    `you claimed ${claimed.promptTokens} + ${claimed.completionTokens} tokens where the job takes ` +
    `${truth.promptTokens} + ${truth.completionTokens}; a usage claim above the work done is a failed check`
  );
}
