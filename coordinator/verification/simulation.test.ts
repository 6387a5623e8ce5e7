/**
 * Simulation: honest contributors with float noise and two cheaters (always wrong, and wrong
 * one time in ten) share embedding jobs scheduled by the real scheduler with the policy's
 * hooks. Seeded; each figure is printed and held to a stated bound.
 */
import { describe, expect, it } from 'vitest';
import type { JobResult } from '../../protocol/jobs.ts';
import { seededRandom } from '../../protocol/random.ts';
import { chooseContributor, type ContributorView, type JobView } from '../scheduler/scheduler.ts';
import { FakeClock } from '../testing.ts';
import { KnownAnswerCanaries } from './canaries.ts';
import { judge, type Judgement, type JudgeInput, type Run } from './outcome.ts';
import { VerificationPolicy, type VerificationConfig } from './policy.ts';

const MODEL = 'e5-small';
const ENGINE = 'onnx-webgpu-f32';
const DIM = 64;
const JOBS = 3000;
const JOB_EVERY_MS = 10_000;
/** The ledger settles a credit this long after it was made, unless voided first. */
const SETTLE_AFTER_MS = 6 * 3_600_000;

interface SimContributor extends ContributorView {
  lastAssignedAt: number;
  /** Chance that a result is a random unit vector instead of the right one. */
  readonly cheatRate: number;
}

function unit(random: () => number, dim = DIM): number[] {
  const v = Array.from({ length: dim }, () => random() * 2 - 1);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

function cosine(a: number[], b: number[]): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += (a[i] ?? 0) * (b[i] ?? 0);
  return d / (Math.hypot(...a) * Math.hypot(...b));
}

const embed = (v: number[]): JobResult => ({ kind: 'embed', embeddings: [v], usage: { promptTokens: 8, completionTokens: 0 } });

function contributor(id: string, cheatRate: number): SimContributor {
  return {
    id,
    cheatRate,
    hpkeKey: 'k'.repeat(43),
    capabilities: {
      v: 1,
      type: 'capabilities',
      adapter: null,
      models: [{ id: MODEL, state: 'loaded' }],
      consent: ['embed'],
      engineClass: ENGINE,
    },
    openSlots: 1,
    inFlight: 0,
    lastAssignedAt: 0,
  };
}

interface SimStats {
  jobs: number;
  decisions: number;
  canaries: number;
  replicas: number;
  expectedReplicas: number;
  replicaVariance: number;
  honestMinCosine: number;
  quarantined: Map<string, { networkJob: number; ownJobs: number }>;
  ownJobs: Map<string, number>;
  credits: Map<string, { contributorId: string; state: 'pending' | 'held' | 'settled' | 'void'; at: number; verified: boolean }>;
  tieBreaks: number;
}

function simulate(seed: number, config: Partial<VerificationConfig> = {}, cheaters = true): SimStats {
  const world = seededRandom(seed);
  const clock = new FakeClock();
  const policy = new VerificationPolicy({
    canaryRate: 0.02,
    baseReplicationRate: 0.2,
    minReplicationRate: 0.02,
    decayPerCleanJob: 0.9,
    failureBoost: 2,
    quarantineAfter: 3,
    windowMs: 24 * 3_600_000,
    random: seededRandom(seed + 1),
    clock,
    ...config,
  });
  const canaryData = Array.from({ length: 200 }, (_, i) => ({
    request: { kind: 'embed', model: MODEL, inputs: [`known answer ${i}`] },
    expected: embed(unit(world)),
  }));
  const canaries = new KnownAnswerCanaries(canaryData, seededRandom(seed + 2));
  const pool = ['h1', 'h2', 'h3', 'h4', 'h5'].map((id) => contributor(id, 0));
  if (cheaters) pool.push(contributor('cheat-100', 1), contributor('cheat-10', 0.1));
  const hooks = policy.schedulerHooks();
  const stats: SimStats = {
    jobs: 0,
    decisions: 0,
    canaries: 0,
    replicas: 0,
    expectedReplicas: 0,
    replicaVariance: 0,
    honestMinCosine: 1,
    quarantined: new Map(),
    ownJobs: new Map(),
    credits: new Map(),
    tieBreaks: 0,
  };

  let sequence = 0;
  const run = (c: SimContributor, truth: number[]): Run => {
    stats.ownJobs.set(c.id, (stats.ownJobs.get(c.id) ?? 0) + 1);
    // Later assignments within one tick rank later: the scheduler's round-robin sees them.
    c.lastAssignedAt = clock.now() + ++sequence / 1e6;
    if (world() < c.cheatRate) return { contributorId: c.id, result: embed(unit(world)) };
    // Float noise of an honest run: cosine to the truth ≥ 0.9999.
    const v = truth.map((x) => x + (world() * 2 - 1) * 0.002);
    if (c.cheatRate === 0) stats.honestMinCosine = Math.min(stats.honestMinCosine, cosine(v, truth));
    return { contributorId: c.id, result: embed(v) };
  };
  const assign = (view: JobView): SimContributor | undefined => chooseContributor(pool, view, hooks);
  const settle = (jobId: string, j: Judgement): void => {
    for (const f of j.findings) {
      const key = `${jobId}/${f.contributorId}`;
      const state = f.ledger === 'void' ? 'void' : f.ledger === 'hold' ? 'held' : 'pending';
      stats.credits.set(key, { contributorId: f.contributorId, state, at: clock.now(), verified: f.standing === 'clean' });
    }
    const effects = policy.apply(j, { model: MODEL, engineClass: ENGINE });
    for (const order of effects.voids) {
      const credit = stats.credits.get(`${order.jobId}/${order.contributorId}`);
      if (credit?.state === 'pending' || credit?.state === 'held') credit.state = 'void';
    }
    for (const id of effects.quarantined) stats.quarantined.set(id, { networkJob: stats.jobs, ownJobs: stats.ownJobs.get(id) ?? 0 });
  };

  for (let n = 0; n < JOBS; n++) {
    clock.advance(JOB_EVERY_MS);
    for (const [key, credit] of stats.credits) {
      if (credit.state === 'pending' && clock.now() - credit.at >= SETTLE_AFTER_MS) {
        credit.state = 'settled';
        const [jobId = ''] = key.split('/');
        policy.settled(jobId, credit.contributorId);
      }
    }
    const jobId = `job-${n}`;
    const view: JobView = { id: jobId, apiKeyId: 'key', model: MODEL, kind: 'embed', attempt: 1, triedBy: new Set() };
    const primary = assign(view);
    if (primary === undefined) continue;
    stats.jobs++;
    const decision = policy.decide({ id: jobId, model: MODEL, kind: 'embed' }, { id: primary.id, engineClass: ENGINE });
    stats.decisions++;
    stats.expectedReplicas += decision.replicationRate;
    stats.replicaVariance += decision.replicationRate * (1 - decision.replicationRate);
    if (decision.canary) {
      const canary = canaries.next(MODEL, 'embed', ENGINE);
      if (canary === null || canary.expected.kind !== 'embed') throw new Error('the canary set has embeddings for the model');
      stats.canaries++;
      const truth = canary.expected.embeddings[0] ?? [];
      settle(`canary-${n}`, judge({ jobId: `canary-${n}`, check: 'canary', primary: run(primary, truth), expected: canary.expected }));
    }
    const truth = unit(world);
    const first = run(primary, truth);
    const replicaOf = decision.replicate ? assign({ ...view, triedBy: new Set([primary.id]) }) : undefined;
    if (decision.replicate) stats.replicas++;
    let input: JudgeInput = { jobId, check: 'none', primary: first };
    if (replicaOf !== undefined) input = { jobId, check: 'replica', primary: first, replica: run(replicaOf, truth) };
    const verdict = judge(input);
    settle(jobId, verdict);
    if (verdict.needsTieBreak && input.check === 'replica') {
      const third = assign({ ...view, triedBy: new Set([input.primary.contributorId, input.replica.contributorId]) });
      if (third === undefined) continue;
      stats.tieBreaks++;
      settle(jobId, judge({ jobId, check: 'tie-break', primary: input.primary, replica: input.replica, tieBreaker: run(third, truth) }));
    }
  }
  return stats;
}

const SEEDS = Array.from({ length: 20 }, (_, i) => 1000 + i * 7919);
const HONEST = ['h1', 'h2', 'h3', 'h4', 'h5'];
const summary = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  return `median ${s[Math.floor(s.length / 2)]}, max ${s[s.length - 1]}, min ${s[0]}`;
};

describe('verification simulation', () => {
  const runs = SEEDS.map((seed) => simulate(seed));

  it('quarantines the always-wrong cheater within 60 of its own jobs, and voids its pending credits', () => {
    const own = runs.map((s) => s.quarantined.get('cheat-100')?.ownJobs ?? Number.POSITIVE_INFINITY);
    const network = runs.map((s) => s.quarantined.get('cheat-100')?.networkJob ?? Number.POSITIVE_INFINITY);
    console.log(`cheat-100 caught after its own jobs: ${summary(own)}; after network jobs: ${summary(network)} (${SEEDS.length} seeds)`);
    expect(Math.max(...own)).toBeLessThanOrEqual(60);
    for (const s of runs) {
      const credits = [...s.credits.values()].filter((c) => c.contributorId === 'cheat-100');
      expect(credits.length).toBeGreaterThan(0);
      // Every one of its results was wrong, and none may be paid.
      expect(credits.filter((c) => c.state !== 'void')).toEqual([]);
    }
  });

  it('quarantines the one-in-ten cheater in most runs, and always with a slower decay; voids what it had pending', () => {
    const report = (label: string, stats: SimStats[]): number[] => {
      const own = stats.map((s) => s.quarantined.get('cheat-10')?.ownJobs).filter((n): n is number => n !== undefined);
      console.log(
        `cheat-10 (${label}) caught in ${own.length}/${stats.length} seeds after its own jobs: ${summary(own)} (${JOBS} network jobs)`,
      );
      for (const s of stats) {
        if (!s.quarantined.has('cheat-10')) continue;
        // Credits for work that passed a check stand; unverified and held ones are voided.
        const open = [...s.credits.values()].filter((c) => c.contributorId === 'cheat-10' && (c.state === 'pending' || c.state === 'held'));
        expect(open.filter((c) => !c.verified)).toEqual([]);
      }
      return own;
    };
    // decay 0.9: the rate reaches its 2% floor after ~22 clean checks, so a rare cheater is seldom checked.
    expect(report('decay 0.9', runs).length).toBeGreaterThanOrEqual(14);
    const slow = report(
      'decay 0.97',
      SEEDS.map((seed) => simulate(seed, { decayPerCleanJob: 0.97 })),
    );
    expect(slow.length).toBe(SEEDS.length);
    expect(Math.max(...slow)).toBeLessThanOrEqual(400);
  });

  it('never quarantines an honest contributor, and voids almost none of their credits', () => {
    let voided = 0;
    let total = 0;
    for (const s of runs) {
      expect(s.honestMinCosine).toBeGreaterThanOrEqual(0.9999);
      for (const id of HONEST) expect(s.quarantined.has(id)).toBe(false);
      const honest = [...s.credits.values()].filter((c) => HONEST.includes(c.contributorId));
      total += honest.length;
      voided += honest.filter((c) => c.state === 'void').length;
    }
    console.log(`honest credits voided (inconclusive tie-breaks): ${voided} of ${total}`);
    expect(voided / total).toBeLessThan(0.002);
  });

  it('with honest contributors only, nobody is quarantined or loses a credit over 3000 jobs', () => {
    for (const seed of SEEDS.slice(0, 5)) {
      const s = simulate(seed, {}, false);
      expect(s.quarantined.size).toBe(0);
      expect([...s.credits.values()].filter((c) => c.state === 'void')).toEqual([]);
    }
  });

  it('draws canaries and replicas at the configured rates (within 4 standard deviations)', () => {
    for (const s of runs) {
      const canarySd = Math.sqrt(s.decisions * 0.02 * 0.98);
      expect(Math.abs(s.canaries - s.decisions * 0.02)).toBeLessThan(4 * canarySd);
      expect(Math.abs(s.replicas - s.expectedReplicas)).toBeLessThan(4 * Math.sqrt(s.replicaVariance));
    }
    const s = runs[0];
    if (s === undefined) throw new Error('no run');
    console.log(
      `seed ${SEEDS[0]}: canaries ${s.canaries}/${s.decisions} (configured 2%), replicas ${s.replicas} vs expected ${s.expectedReplicas.toFixed(1)} from adaptive rates, tie-breaks ${s.tieBreaks}`,
    );
    // Without adaptation the replica share is the base rate.
    const flat = simulate(42, { decayPerCleanJob: 1, failureBoost: 1 }, false);
    const sd = Math.sqrt(flat.decisions * 0.2 * 0.8);
    console.log(`flat rate: replicas ${flat.replicas}/${flat.decisions} (configured 20%, sd ${sd.toFixed(1)})`);
    expect(Math.abs(flat.replicas - flat.decisions * 0.2)).toBeLessThan(4 * sd);
  });
});
