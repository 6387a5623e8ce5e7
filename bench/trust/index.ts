/**
 * `BENCH_ONLY=trust npm run bench`: checks no one can dodge, simulated. Honest devices and
 * cheaters (always wrong, 25 % wrong, garbage, usage inflaters, three colluding identities
 * of one wallet) serve requesters, two of which lie in their reports. Placement is the real
 * scheduler with verification's hooks; canaries, replicas, tie-breaks, re-runs, benching,
 * probation, wallet quarantine and requester flagging are the real policy, judge and
 * standing code. Money is counted per job: a credit settles 6 hours after its job unless a
 * check voided it first. Seeded; prints the figures docs/benchmarks.md quotes.
 */
import { compareResults } from '../../protocol/compare.ts';
import type { JobResult } from '../../protocol/jobs.ts';
import { seededRandom } from '../../protocol/random.ts';
import { DEFAULT_POLICY } from '../../operator/verification.ts';
import { judge, judgeReported, type Judgement } from '../../coordinator/verification/outcome.ts';
import { VerificationPolicy } from '../../coordinator/verification/policy.ts';
import { RequesterStanding } from '../../coordinator/verification/requesters.ts';
import { inflatedUsage } from '../../coordinator/verification/canary-checks.ts';
import { chooseContributor, type ContributorView, type JobView } from '../../coordinator/scheduler/scheduler.ts';
import { FakeClock } from '../../coordinator/testing.ts';

type Kind = 'honest' | 'always-wrong' | 'wrong-25%' | 'garbage' | 'usage-inflater' | 'colluder';

interface Device extends ContributorView {
  readonly kind: Kind;
  readonly wallet: string;
  lastAssignedAt: number;
  jobs: number;
  caughtAfter: number | null;
  openSlots: number;
  /** Busy with a job until then, ms. */
  busyUntil: number;
}

interface Credit {
  readonly jobId: string;
  readonly device: Device;
  readonly amount: bigint;
  readonly at: number;
  /** When it may settle, ms. */
  readonly due: number;
  /** The work was wrong or never done: paying it is the network's loss. */
  readonly bad: boolean;
  state: 'pending' | 'settled' | 'void';
}

const MODEL = 'tiny-embed';
const ENGINE = 'onnx:tiny-embed:pinned';
const DIM = 32;
const TOKENS = 8;
const PRICE = 1_000n * BigInt(TOKENS);
const SHARE = PRICE - PRICE / 10n;
const JOB_EVERY_MS = 10_000;
const SETTLE_AFTER_MS = Number(process.env['BENCH_TRUST_WINDOW_H'] ?? 24) * 3_600_000;
/** A device on probation has its credits held this long (`probationWindowMs`; BENCH_TRUST_HOLD=0: off, the default of a deployment). */
const PROBATION_WINDOW_MS = process.env['BENCH_TRUST_HOLD'] === '0' ? SETTLE_AFTER_MS : 2 * SETTLE_AFTER_MS;
/** Most credit a device on probation has settle (`verification.probationCreditCap`, default 1 TON); the rest waits for probation to end. */
const PROBATION_CAP = BigInt(process.env['BENCH_TRUST_CAP'] ?? '1000000000');
const JOBS = Number(process.env['BENCH_TRUST_JOBS'] ?? 12_000);
const SEEDS = Number(process.env['BENCH_TRUST_SEEDS'] ?? 5);
const HONEST = 30;
const REQUESTERS = 10;
const LIARS = 2;

/** Overrides of the default policy for experiments (`BENCH_TRUST_POLICY` as JSON). */
const TUNING = JSON.parse(process.env['BENCH_TRUST_POLICY'] ?? '{}') as Partial<typeof DEFAULT_POLICY>;

function unit(random: () => number): number[] {
  const v = Array.from({ length: DIM }, () => random() * 2 - 1);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

const embed = (v: number[], promptTokens = TOKENS): JobResult => ({
  kind: 'embed',
  embeddings: [v],
  usage: { promptTokens, completionTokens: 0 },
});

function device(id: string, kind: Kind, wallet: string): Device {
  return {
    id,
    kind,
    wallet,
    hpkeKey: 'k'.repeat(43),
    capabilities: {
      v: 1,
      type: 'capabilities',
      adapter: null,
      models: [{ id: MODEL, state: 'loaded' }],
      consent: ['embed'],
      engineClass: 'x',
    },
    openSlots: 1,
    inFlight: 0,
    lastAssignedAt: 0,
    jobs: 0,
    caughtAfter: null,
    busyUntil: 0,
  };
}

/** What a device returns for a job whose right answer is `truth`: a result, or null for garbage that does not open. */
function run(d: Device, truth: number[], random: () => number): { result: JobResult | null; claimed: number; bad: boolean } {
  const noisy = truth.map((x) => Math.fround(x + (random() - 0.5) * 1e-6));
  switch (d.kind) {
    case 'honest':
      return { result: embed(noisy), claimed: TOKENS, bad: false };
    case 'usage-inflater':
      return { result: embed(noisy), claimed: TOKENS * 3, bad: false };
    case 'always-wrong':
    case 'colluder':
      return { result: embed(unit(random)), claimed: TOKENS, bad: true };
    case 'wrong-25%': {
      const wrong = random() < 0.25;
      return { result: embed(wrong ? unit(random) : noisy), claimed: TOKENS, bad: wrong };
    }
    case 'garbage':
      return { result: null, claimed: TOKENS, bad: true };
  }
}

interface SeedFigures {
  paid: bigint;
  lost: bigint;
  honestQuarantined: number;
  requesterJobs: number;
  checkRuns: number;
  jobsAfterProbation: number;
  checksAfterProbation: number;
  byType: Record<'canary' | 'replica' | 'tie-break' | 'rerun', number>;
  /** Jobs each cheater that was never caught ran. */
  uncaughtJobs: Map<string, number[]>;
  caught: Map<Kind | 'lying requester', (number | null)[]>;
}

function simulate(seed: number): SeedFigures {
  const random = seededRandom(seed);
  const clock = new FakeClock();
  const policy = new VerificationPolicy({ ...DEFAULT_POLICY, ...TUNING, random: seededRandom(seed + 1), clock });
  const standing = new RequesterStanding({ windowMs: 24 * 3_600_000, clock });
  const devices: Device[] = [];
  for (let i = 0; i < HONEST; i++) devices.push(device(`honest-${i}`, 'honest', `w-honest-${i}`));
  for (const kind of ['always-wrong', 'wrong-25%', 'garbage', 'usage-inflater'] as const) {
    for (let i = 0; i < 2; i++) devices.push(device(`${kind}-${i}`, kind, `w-${kind}-${i}`));
  }
  // Three identities of one person: they would agree with each other if they could check each other.
  for (let i = 0; i < 3; i++) devices.push(device(`colluder-${i}`, 'colluder', 'w-colluders'));
  const requesters = Array.from({ length: REQUESTERS }, (_, i) => ({
    id: `r${i}`,
    liar: i < LIARS,
    reports: 0,
    flaggedAfter: null as number | null,
  }));
  const credits: Credit[] = [];
  const byJob = new Map<string, Credit>();
  const pendingOf = new Map<string, Set<Credit>>();
  const figures: SeedFigures = {
    paid: 0n,
    lost: 0n,
    honestQuarantined: 0,
    requesterJobs: 0,
    checkRuns: 0,
    jobsAfterProbation: 0,
    checksAfterProbation: 0,
    byType: { canary: 0, replica: 0, 'tie-break': 0, rerun: 0 },
    uncaughtJobs: new Map(),
    caught: new Map(),
  };

  const shutOut = (d: Device): boolean => policy.isShutOut(d.id, d.wallet) || policy.isBenched(d.id, MODEL);
  const hooks = {
    eligible: (c: ContributorView) => !shutOut(c as Device),
    demote: (c: ContributorView) => policy.reputation(c.id).score < 0.5,
  };
  const place = (jobId: string, exclude: readonly Device[], wallets: readonly string[]): Device | undefined => {
    const view: JobView = { id: jobId, apiKeyId: 'k', model: MODEL, kind: 'embed', attempt: 1, triedBy: new Set(exclude.map((d) => d.id)) };
    for (const d of devices) d.openSlots = clock.now() >= d.busyUntil ? 1 : 0;
    const pool = devices.filter((d) => !wallets.includes(d.wallet));
    const chosen = chooseContributor(pool, view, hooks);
    if (chosen !== undefined) {
      chosen.lastAssignedAt = clock.now();
      // A job keeps a device busy for 2–6 minutes: with a job every 10 s the network runs at about 70 % load.
      chosen.busyUntil = clock.now() + 120_000 + random() * 240_000;
      chosen.jobs++;
    }
    return chosen;
  };
  const credit = (jobId: string, d: Device, bad: boolean): void => {
    const wait = policy.onProbation(d.id) ? PROBATION_WINDOW_MS : SETTLE_AFTER_MS;
    const c: Credit = { jobId, device: d, amount: SHARE, at: clock.now(), due: clock.now() + wait, bad, state: 'pending' };
    credits.push(c);
    byJob.set(`${jobId}:${d.id}`, c);
    let set = pendingOf.get(d.id);
    if (set === undefined) pendingOf.set(d.id, (set = new Set()));
    set.add(c);
  };
  const voidCredit = (c: Credit | undefined): void => {
    if (c?.state !== 'pending') return;
    c.state = 'void';
    pendingOf.get(c.device.id)?.delete(c);
  };
  const apply = (judgement: Judgement): void => {
    const effects = policy.apply(judgement, { model: MODEL, engineClass: ENGINE });
    for (const f of judgement.findings) if (f.ledger === 'void') voidCredit(byJob.get(`${judgement.jobId}:${f.contributorId}`));
    for (const id of effects.quarantined) {
      const d = devices.find((x) => x.id === id);
      if (d === undefined) continue;
      policy.quarantineWallet(d.wallet, policy.quarantinedUntil(id) ?? Number.POSITIVE_INFINITY);
      for (const same of devices.filter((x) => x.wallet === d.wallet)) {
        same.caughtAfter ??= same.jobs;
        for (const c of [...(pendingOf.get(same.id) ?? [])]) voidCredit(c);
      }
    }
  };
  const settledOnProbation = new Map<string, bigint>();
  const settleDue = (): void => {
    for (const c of credits) {
      if (c.state !== 'pending' || c.due > clock.now()) continue;
      if (policy.onProbation(c.device.id)) {
        // The probation credit cap: unchecked credit of a new device beyond it waits (and is voided if it is caught).
        const settled = settledOnProbation.get(c.device.id) ?? 0n;
        if (settled + c.amount > PROBATION_CAP) continue;
        settledOnProbation.set(c.device.id, settled + c.amount);
      }
      c.state = 'settled';
      pendingOf.get(c.device.id)?.delete(c);
      policy.settled(c.jobId, c.device.id);
    }
  };

  for (let n = 0; n < JOBS; n++) {
    clock.advance(JOB_EVERY_MS);
    if (n % 100 === 0) settleDue();
    const jobId = `j${n}`;
    const requester = requesters[Math.floor(random() * requesters.length)] ?? requesters[0];
    if (requester === undefined) break;
    const primary = place(jobId, [], []);
    if (primary === undefined) continue;
    figures.requesterJobs++;
    const onProbation = policy.onProbation(primary.id);
    if (!onProbation) figures.jobsAfterProbation++;
    let checks = 0;
    const truth = unit(random);
    const out = run(primary, truth, random);
    credit(jobId, primary, out.bad);
    // The requester's report: honest ones say what happened; liars call half of all results garbage.
    const saysUnopenable = requester.liar ? random() < 0.5 : out.result === null;
    const flagged = standing.isFlagged(requester.id);
    const disputed = !saysUnopenable && out.claimed > TOKENS;
    standing.note(requester.id, saysUnopenable || disputed);
    requester.reports++;
    if (flagged) requester.flaggedAfter ??= requester.reports;
    if (disputed && !requester.liar) standing.dispute(primary.id, requester.id);
    if (saysUnopenable && !flagged) {
      apply({
        jobId,
        check: 'none',
        findings: [{ contributorId: primary.id, kind: 'undeliverable', standing: 'failed', ledger: 'void', reason: 'reported' }],
        needsTieBreak: false,
      });
      const rerunOn = place(`${jobId}-rerun`, [primary], [primary.wallet]);
      if (rerunOn !== undefined) {
        checks++;
        figures.byType.rerun++;
        credit(`${jobId}-rerun`, rerunOn, run(rerunOn, truth, random).bad);
      }
    }
    // The coordinator's checks on the primary.
    const decision = policy.decide(
      { id: jobId, model: MODEL, kind: 'embed' },
      { id: primary.id, engineClass: ENGINE, suspect: standing.isSuspect(primary.id) },
    );
    if (decision.canary && !shutOut(primary)) {
      checks++;
      figures.byType.canary++;
      const canaryId = `${jobId}-canary`;
      const known = unit(random);
      const answer = run(primary, known, random);
      credit(canaryId, primary, answer.bad);
      const inflated = inflatedUsage({ promptTokens: answer.claimed, completionTokens: 0 }, { promptTokens: TOKENS, completionTokens: 0 });
      const failed = (why: string): Judgement => ({
        jobId: canaryId,
        check: 'canary',
        findings: [{ contributorId: primary.id, kind: 'canary-fail', standing: 'failed', ledger: 'void', reason: why }],
        needsTieBreak: false,
      });
      if (answer.result === null) apply(failed('garbage'));
      else if (inflated !== null) apply(failed(inflated));
      else
        apply(
          judge({
            jobId: canaryId,
            check: 'canary',
            primary: { contributorId: primary.id, result: answer.result },
            expected: embed(known),
          }),
        );
    }
    if (decision.replicate && out.result !== null) {
      const replica = place(`${jobId}-replica`, [primary], [primary.wallet]);
      if (replica !== undefined) {
        checks++;
        figures.byType.replica++;
        const second = run(replica, truth, random);
        credit(jobId, replica, second.bad);
        const agreement =
          second.result === null ? { agree: false, score: 0, reason: 'unopenable' } : compareResults(out.result, second.result);
        const reported = requester.liar ? { agree: false, score: 0, reason: 'the liar says so' } : agreement;
        const flaggedNow = standing.isFlagged(requester.id);
        standing.note(requester.id, !reported.agree);
        // A flagged requester's verdict changes nothing: both credits settle unverified.
        if (!flaggedNow) {
          const verdict = judgeReported({ jobId, check: 'replica', primary: primary.id, replica: replica.id, agreement: reported });
          apply(verdict);
          const third = verdict.needsTieBreak ? place(`${jobId}-tie`, [primary, replica], [primary.wallet, replica.wallet]) : undefined;
          if (third !== undefined) {
            checks++;
            figures.byType['tie-break']++;
            const tie = run(third, truth, random);
            credit(jobId, third, tie.bad);
            const against = (r: JobResult | null) =>
              requester.liar || r === null || tie.result === null
                ? { agree: false, score: 0, reason: 'disagree' }
                : compareResults(tie.result, r);
            apply(
              judgeReported({
                jobId,
                check: 'tie-break',
                primary: primary.id,
                replica: replica.id,
                tieBreaker: third.id,
                withPrimary: against(out.result),
                withReplica: against(second.result),
              }),
            );
          }
        }
      }
    }
    figures.checkRuns += checks;
    if (!onProbation) figures.checksAfterProbation += checks;
  }
  clock.advance(PROBATION_WINDOW_MS + 1);
  settleDue();
  for (const c of credits) {
    if (c.state !== 'settled') continue;
    figures.paid += c.amount;
    if (c.bad) figures.lost += c.amount;
    if (c.bad && process.env['BENCH_TRUST_DEBUG'] !== undefined)
      console.log('lost', c.device.kind, c.jobId, policy.onProbation(c.device.id));
  }
  for (const d of devices) {
    if (d.kind === 'honest') {
      if (policy.isShutOut(d.id, d.wallet)) figures.honestQuarantined++;
      continue;
    }
    const list = figures.caught.get(d.kind) ?? [];
    list.push(d.caughtAfter);
    if (d.caughtAfter === null) figures.uncaughtJobs.set(d.kind, [...(figures.uncaughtJobs.get(d.kind) ?? []), d.jobs]);
    figures.caught.set(d.kind, list);
  }
  const liars = figures.caught.get('lying requester') ?? [];
  for (const r of requesters) if (r.liar) liars.push(r.flaggedAfter);
  figures.caught.set('lying requester', liars);
  return figures;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

export function runTrustBench(): void {
  const all: SeedFigures[] = [];
  const started = performance.now();
  for (let seed = 1; seed <= SEEDS; seed++) all.push(simulate(seed * 7919));
  const paid = all.reduce((s, f) => s + f.paid, 0n);
  const lost = all.reduce((s, f) => s + f.lost, 0n);
  const jobs = all.reduce((s, f) => s + f.requesterJobs, 0);
  const checks = all.reduce((s, f) => s + f.checkRuns, 0);
  const afterJobs = all.reduce((s, f) => s + f.jobsAfterProbation, 0);
  const afterChecks = all.reduce((s, f) => s + f.checksAfterProbation, 0);
  const honestQuarantined = all.reduce((s, f) => s + f.honestQuarantined, 0);
  const pct = (num: number, den: number): string => `${((num / den) * 100).toFixed(3)}%`;
  console.log(
    `\nTrust: ${SEEDS} seeded runs × ${JOBS} requester jobs (${HONEST} honest devices, 2 of each cheater type, 3 colluding identities of one wallet, ${LIARS} of ${REQUESTERS} requesters lying), ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  console.log(`requester jobs run                 ${jobs}`);
  console.log(
    `network loss (bad work paid/paid)  ${(Number((lost * 1_000_000n) / (paid === 0n ? 1n : paid)) / 10_000).toFixed(4)}%  (${lost} of ${paid} nanoTON; target ≤ 0.1%)`,
  );
  console.log(
    `probation                          ${process.env['BENCH_TRUST_HOLD'] === '0' ? 'no hold' : `credits held ${PROBATION_WINDOW_MS / 3_600_000} h`}, credit cap ${PROBATION_CAP} nanoTON (${PROBATION_CAP / SHARE} job shares)`,
  );
  console.log(`honest devices quarantined         ${honestQuarantined} of ${HONEST * SEEDS}  (target 0)`);
  console.log(
    `check runs / requester jobs        ${pct(checks, jobs)} overall, ${pct(afterChecks, afterJobs)} after probation  (target ≤ 10%)`,
  );
  const by = { canary: 0, replica: 0, 'tie-break': 0, rerun: 0 };
  for (const f of all) for (const k of Object.keys(by) as (keyof typeof by)[]) by[k] += f.byType[k];
  console.log(
    `  of which                         ${Object.entries<number>(by)
      .map(([k, v]) => `${k} ${pct(v, jobs)}`)
      .join(', ')}`,
  );
  console.log(`jobs run before caught (per cheater; median / max; never = not caught):`);
  const uncaught = (kind: string): string => {
    const ran = all.flatMap((f) => f.uncaughtJobs.get(kind) ?? []);
    return ran.length === 0 ? '' : `: placed last on its record, they ran at most ${Math.max(...ran)} jobs each`;
  };
  const kinds = new Map<string, (number | null)[]>();
  for (const f of all) for (const [k, v] of f.caught) kinds.set(k, [...(kinds.get(k) ?? []), ...v]);
  for (const [kind, values] of kinds) {
    const caught = values.filter((x): x is number => x !== null);
    const never = values.length - caught.length;
    const unit = kind === 'lying requester' ? 'reports' : 'jobs';
    console.log(
      `  ${kind.padEnd(18)} ${caught.length === 0 ? '-' : median(caught).toFixed(0)} / ${caught.length === 0 ? '-' : Math.max(...caught)} ${unit}${never > 0 ? `  (${never} of ${values.length} never caught${uncaught(kind)})` : ''}`,
    );
  }
}
