/**
 * Figures of verified work end to end in Node (PostgreSQL, real Contributor loops over
 * WebSockets, the requester SDK): how many of its jobs a lying contributor gets through
 * before quarantine, over seeds; that honest contributors are never quarantined; and that
 * the canary and replication rates seen match the configuration.
 */
import { describe, expect, it } from 'vitest';
import { startVerifiedNetwork } from '../../testing/verification.ts';

const POLICY = {
  canaryRate: 0.1,
  baseReplicationRate: 0.2,
  minReplicationRate: 0.02,
  decayPerCleanJob: 0.95,
  failureBoost: 3,
  quarantineAfter: 2,
  windowMs: 3_600_000,
};
const SEEDS = 10;
/** A liar answering every job wrong must be quarantined within this many of its own jobs, for every seed. */
const MAX_LIAR_JOBS = 40;

/** |x − np| ≤ 4σ of Binomial(n, p): fails by chance with probability below 1e-4. */
function withinBinomial(x: number, n: number, p: number): boolean {
  return Math.abs(x - n * p) <= 4 * Math.sqrt(n * p * (1 - p));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

describe('verified work: figures', () => {
  it(`quarantines a contributor that always lies within ${MAX_LIAR_JOBS} of its jobs, over ${SEEDS} seeds`, async () => {
    const caught: { seed: number; jobs: number; work: number; total: number }[] = [];
    for (let seed = 1; seed <= SEEDS; seed++) {
      const network = await startVerifiedNetwork({ contributors: [0, 0, 0, 1], policy: POLICY, seed, backend: 'PostgreSQL' });
      try {
        const liar = network.members[3];
        if (liar === undefined) throw new Error('no liar');
        let at: { jobs: number; work: number } | null = null;
        const total = await network.runJobs(400, 4, () => {
          if (at === null && network.policy.isQuarantined(liar.id)) {
            // Its requester jobs so far, and everything it ran (canaries, replicas and tie-breaks too).
            at = { jobs: network.done.filter((d) => d.contributorId === liar.id && d.role === 'job').length, work: liar.runtime.jobs };
          }
          return at !== null;
        });
        if (at === null) throw new Error(`seed ${seed}: the liar was not quarantined within ${total} jobs`);
        const { jobs, work } = at;
        caught.push({ seed, jobs, work, total });
        for (const honest of network.members.slice(0, 3)) expect(network.policy.isQuarantined(honest.id)).toBe(false);
      } finally {
        await network.close();
      }
    }
    const jobs = caught.map((c) => c.jobs);
    console.log(
      `liar caught after its n-th requester job: median ${median(jobs)}, max ${Math.max(...jobs)} ` +
        `(all its runs: median ${median(caught.map((c) => c.work))}, max ${Math.max(...caught.map((c) => c.work))}); ` +
        JSON.stringify(caught),
    );
    expect(Math.max(...jobs)).toBeLessThanOrEqual(MAX_LIAR_JOBS);
  }, 300_000);

  it('never quarantines honest contributors over 1000 jobs, and sends canaries and replicas at the configured rates', async () => {
    // Fixed rates (no decay) so the seen rates have one expected value.
    const policy = { ...POLICY, canaryRate: 0.15, baseReplicationRate: 0.25, minReplicationRate: 0.25, decayPerCleanJob: 1 };
    const network = await startVerifiedNetwork({ contributors: [0, 0, 0], policy, seed: 42, backend: 'PostgreSQL' });
    try {
      const n = await network.runJobs(1000, 6);
      await network.requester.idle();
      await network.verification.idle();
      for (const m of network.members) {
        expect(network.policy.isQuarantined(m.id)).toBe(false);
        expect(network.policy.reputation(m.id).failed).toBe(0);
      }
      const { decided, canaryDrawn, canarySent, replicaDrawn, replicaSent } = network.verification.counts;
      expect(decided).toBe(n);
      const roles = (role: string): number => network.done.filter((d) => d.role === role).length;
      console.log(
        `${n} honest jobs: canaries ${canarySent} (${((canarySent / n) * 100).toFixed(1)} %, configured ${policy.canaryRate * 100} %), ` +
          `replicas ${replicaSent} (${((replicaSent / n) * 100).toFixed(1)} %, configured ${policy.baseReplicationRate * 100} %), ` +
          `tie-breaks ${roles('tie-break')}`,
      );
      expect(withinBinomial(canaryDrawn, n, policy.canaryRate)).toBe(true);
      expect(withinBinomial(replicaDrawn, n, policy.baseReplicationRate)).toBe(true);
      // Every draw became a job that ran: a known answer exists for the model and a peer of the class was there.
      expect(canarySent).toBe(canaryDrawn);
      expect(replicaSent).toBe(replicaDrawn);
      expect(roles('canary')).toBe(canarySent);
      expect(roles('replica')).toBe(replicaSent);
      expect(roles('tie-break')).toBe(0);
      expect(network.checks.filter((c) => c.agree === true)).toHaveLength(replicaSent);
    } finally {
      await network.close();
    }
  }, 300_000);
});
