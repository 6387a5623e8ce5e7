/**
 * The requester SDK's side of replication against the real coordinator: it seals the same
 * request for the replica, compares both results, posts one verdict per job with its own key,
 * and on a disagreement runs the tie-break the coordinator asks for.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startVerifiedNetwork, type VerifiedNetwork } from '../../testing/verification.ts';

// Every job replicated, no canaries, nobody quarantined: each disagreement goes to a tie-break.
const POLICY = {
  canaryRate: 0,
  baseReplicationRate: 1,
  minReplicationRate: 1,
  decayPerCleanJob: 1,
  failureBoost: 1,
  quarantineAfter: 1000,
  windowMs: 3_600_000,
};

let network: VerifiedNetwork | null = null;
afterEach(async () => {
  await network?.close();
  network = null;
});

describe('requester SDK replication', () => {
  it('compares both results, posts the verdict, and settles a disagreement with a tie-break', async () => {
    // One job in flight per key: replicas and tie-breaks must not count against it.
    network = await startVerifiedNetwork({ contributors: [0, 0, 1], policy: POLICY, seed: 5, backend: 'PostgreSQL', maxInFlight: 1 });
    const net = network;
    const liar = net.members[2];
    if (liar === undefined) throw new Error('no liar');
    const first = await net.requester.run({ kind: 'embed', model: 'tiny-embed', inputs: ['the result comes before its check'] });
    // The answer arrived as soon as the primary finished; its check was still under way.
    expect(first.kind).toBe('embed');
    expect(net.checks).toHaveLength(0);
    await net.runJobs(11, 1);
    await net.requester.idle();
    await net.verification.idle();

    const ran = new Map(net.done.map((d) => [d.jobId, d]));
    const primaries = net.done.filter((d) => d.role === 'job');
    expect(primaries).toHaveLength(12);
    expect(net.checks).toHaveLength(12);
    let disagreements = 0;
    for (const check of net.checks) {
      expect(check.error).toBeUndefined();
      const primary = ran.get(check.jobId);
      const replica = ran.get(check.replicaJobId);
      expect(replica?.role).toBe('replica');
      expect(replica?.contributorId).not.toBe(primary?.contributorId);
      const liarInvolved = primary?.contributorId === liar.id || replica?.contributorId === liar.id;
      expect(check.agree).toBe(!liarInvolved);
      if (!liarInvolved) continue;
      disagreements++;
      // The third run sides with the honest one.
      const third = ran.get(check.tieBreak?.jobId ?? '');
      expect(third?.role).toBe('tie-break');
      expect(third?.contributorId).not.toBe(liar.id);
      expect(check.tieBreak?.withPrimary).toBe(primary?.contributorId !== liar.id);
      expect(check.tieBreak?.withReplica).toBe(replica?.contributorId !== liar.id);
    }
    expect(disagreements).toBeGreaterThan(0);
    const liarReport = await net.verification.report(liar.id);
    expect(liarReport.reputation.failed).toBe(disagreements);
    expect(liarReport.replication.checked).toBeGreaterThan(0);
    expect(liarReport.replication.agreed).toBe(0);
    // Every credit of the liar was voided by its failed tie-breaks; the honest keep theirs, pending.
    expect((await net.money.earnings.summary(liar.wallet)).balances.pending).toBe('0');
    for (const honest of net.members.slice(0, 2)) {
      expect(BigInt((await net.money.earnings.summary(honest.wallet)).balances.pending)).toBeGreaterThan(0n);
      expect((await net.verification.report(honest.id)).reputation.failed).toBe(0);
    }

    // One verdict per job, and only from the key that created it.
    const check = net.checks[0];
    if (check === undefined) throw new Error('no check');
    const post = (secret: string) =>
      fetch(`${net.url}/v1/jobs/${check.jobId}/verdict`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ stage: 'replica', replicaJobId: check.replicaJobId, agree: false, score: 0, reason: 'again' }),
      });
    const again = await post(net.apiKey);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('CONFLICT');
    const other = await net.createApiKey('someone else');
    expect((await post(other.secret)).status).toBe(404);
    expect((await post('nope')).status).toBe(401);
  }, 120_000);

  it('holds both credits and says why when no third contributor can break a tie', async () => {
    network = await startVerifiedNetwork({
      contributors: [0, 1],
      policy: POLICY,
      seed: 6,
      backend: 'PostgreSQL',
      verdictWindowMs: 600_000,
    });
    const net = network;
    await net.runJobs(2, 1);
    await net.requester.idle();
    await net.verification.idle();
    expect(net.checks).toHaveLength(2);
    for (const check of net.checks) {
      expect(check).toMatchObject({ agree: false });
      expect(check.tieBreak).toBeUndefined();
      // Held: neither credit settles while the verdict window runs.
      expect(await net.verification.isVerified(check.jobId)).toBe('hold');
      expect(await net.verification.isVerified(check.replicaJobId)).toBe('hold');
    }
    for (const m of net.members) {
      const report = await net.verification.report(m.id);
      expect(report.records.some((r) => r.kind === 'replica-disagree' && r.reason.includes('No third contributor'))).toBe(true);
      expect(report.reputation.failed).toBe(0);
    }
  }, 60_000);
});
