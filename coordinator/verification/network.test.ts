/**
 * Verified work end to end in Node: the real coordinator (PGlite, ledger, earnings,
 * verification), real Contributor loops over WebSockets, and the requester SDK sealing,
 * replicating and posting verdicts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { verifyReceipt, type SignedReceipt } from './receipts.ts';
import { disposeStore, startVerifiedNetwork, type VerifiedNetwork } from '../../testing/verification.ts';
import type { VerificationReport } from './service.ts';

const open: VerifiedNetwork[] = [];
afterEach(async () => {
  for (const n of open.splice(0)) await n.close();
});

const POLICY = {
  canaryRate: 0.1,
  baseReplicationRate: 0.2,
  minReplicationRate: 0.02,
  decayPerCleanJob: 0.95,
  failureBoost: 3,
  quarantineAfter: 2,
  windowMs: 3_600_000,
};

async function start(
  contributors: number[],
  seed: number,
  backend: 'PGlite' | 'PostgreSQL',
  more: Partial<Parameters<typeof startVerifiedNetwork>[0]> = {},
): Promise<VerifiedNetwork> {
  const network = await startVerifiedNetwork({ contributors, policy: POLICY, seed, backend, ...more });
  open.push(network);
  return network;
}

async function json<T>(url: string): Promise<T> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get('access-control-allow-origin')).toBe('*');
  return (await response.json()) as T;
}

describe.each(['PGlite', 'PostgreSQL'] as const)('verified work in the running coordinator on %s', (backend) => {
  it('catches a lying contributor, voids its pending credits, schedules it no more, and remembers it after a restart', async () => {
    const network = await start([0, 0, 0, 1], 1, backend, { windowMs: 0 });
    const liar = network.members[3];
    if (liar === undefined) throw new Error('no liar');
    const quarantined = (): boolean => network.policy.isQuarantined(liar.id);
    await network.runJobs(400, 4, quarantined);
    expect(quarantined()).toBe(true);
    await network.requester.idle();
    await network.verification.idle();
    const before = liar.runtime.jobs;
    await network.runJobs(40, 4);
    expect(liar.runtime.jobs).toBe(before);
    // Everything the liar was credited is voided: nothing pending, nothing settled.
    await network.verification.idle();
    await waitFor(async () => (await network.money.earnings.summary(liar.wallet)).balances.pending === '0');
    expect((await network.money.earnings.summary(liar.wallet)).balances.settled).toBe('0');
    for (const honest of network.members.slice(0, 3)) expect(network.policy.isQuarantined(honest.id)).toBe(false);
    const report = await json<VerificationReport>(`${network.url}/v1/contributors/${liar.id}/verification`);
    expect(report.quarantined).toBe(true);
    expect(report.reputation.failed).toBeGreaterThanOrEqual(2);
    expect(report.records.some((r) => r.kind === 'quarantined')).toBe(true);
    // Clean checks and unchecked work of the honest settle after the window; the liar's stay voided.
    await network.money.earnings.settleDue();
    expect((await network.money.earnings.summary(liar.wallet)).balances.settled).toBe('0');
    let honestSettled = 0n;
    for (const honest of network.members.slice(0, 3)) {
      honestSettled += BigInt((await network.money.earnings.summary(honest.wallet)).balances.settled);
    }
    expect(honestSettled).toBeGreaterThan(0n);

    // A restart: a new coordinator on the same database knows the quarantine and the records.
    const { store } = network;
    await network.close({ keepStore: true });
    open.splice(open.indexOf(network), 1);
    const saved = await network.verification.report(liar.id);
    const again = await startVerifiedNetwork({ contributors: [0], policy: POLICY, seed: 9, backend, store });
    try {
      expect(again.policy.isQuarantined(liar.id)).toBe(true);
      const after = await again.verification.report(liar.id);
      expect(after.records).toEqual(saved.records);
      expect(after.reputation.failed).toBe(saved.reputation.failed);
      const keyBefore = (await network.verification.receipts(liar.id, 1)).publicKey;
      expect((await again.verification.receipts(liar.id, 1)).publicKey).toBe(keyBefore);
    } finally {
      await again.close();
      await disposeStore(store);
    }
  }, 120_000);

  it('signs a receipt for every credited job that verifies with the published key, and a tampered one fails', async () => {
    const network = await start([0, 0], 2, backend);
    await network.runJobs(12, 2);
    await network.requester.idle();
    await network.verification.idle();
    const member = network.members[0];
    if (member === undefined) throw new Error('no member');
    const credited = network.done.filter((d) => d.contributorId === member.id).length;
    await waitFor(async () => {
      const { receipts } = await json<{ receipts: SignedReceipt[] }>(`${network.url}/v1/contributors/${member.id}/receipts?limit=200`);
      return receipts.length === credited;
    });
    const body = await json<{ publicKey: string; receipts: SignedReceipt[] }>(`${network.url}/v1/contributors/${member.id}/receipts`);
    const key = new Uint8Array(Buffer.from(body.publicKey, 'base64url'));
    expect(key.length).toBe(32);
    expect(body.receipts.length).toBe(Math.min(50, credited));
    for (const signed of body.receipts) {
      expect(signed.receipt.contributorId).toBe(member.id);
      expect(signed.receipt.wallet).toBe(member.wallet);
      expect(await verifyReceipt(signed.receipt, signed.signature, key)).toBe(true);
    }
    const first = body.receipts[0];
    if (first === undefined) throw new Error('no receipt');
    const tampered = { ...first.receipt, amountNano: (BigInt(first.receipt.amountNano) + 1n).toString() };
    expect(await verifyReceipt(tampered, first.signature, key)).toBe(false);
    const bad = await fetch(`${network.url}/v1/contributors/${member.id}/receipts?limit=0`);
    expect(bad.status).toBe(400);
    // The dashboard reads exactly this shape.
    const report = await json<VerificationReport>(`${network.url}/v1/contributors/${member.id}/verification`);
    expect(Object.keys(report).sort()).toEqual(['canaries', 'quarantined', 'records', 'replication', 'reputation']);
    expect(Object.keys(report.reputation).sort()).toEqual(['clean', 'failed', 'score']);
    expect(Object.keys(report.canaries).sort()).toEqual(['failed', 'passed']);
    expect(Object.keys(report.replication).sort()).toEqual(['agreed', 'checked', 'rate']);
    expect(report.quarantined).toBe(false);
    expect(report.reputation.score).toBeCloseTo(
      (report.reputation.clean + 1) / (report.reputation.clean + report.reputation.failed + 2),
      12,
    );
    for (const r of report.records) expect(Object.keys(r).sort()).toEqual(['at', 'jobId', 'kind', 'reason']);
  }, 60_000);
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
