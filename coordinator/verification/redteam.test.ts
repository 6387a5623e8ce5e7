/**
 * Checks no one can dodge, attacked as a cheating contributor would, on the real coordinator
 * with its money side (PGlite) and contributor workers speaking the wire protocol over real
 * WebSockets. Prices are prices.json's: `tiny-embed` costs 1 000 nanoTON per input token with
 * 10 % commission. Every test checks exact ledger amounts: the attacker gains nothing, the
 * honest parties lose nothing.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { toNano } from '@ton/core';
import type { PaidNetwork, TestKey } from '../../testing/billing.ts';
import { CANARY_EVERY_JOB, type CheckPolicy, newContributor, startCheckedNetwork } from '../../testing/canaries.ts';
import type { JobDone } from '../leases/relay.ts';
import { waitFor } from '../store/testing.ts';
import type { FakeWorker } from '../testing.ts';
import { RequesterClient } from '../../requester/client.ts';
import type { Contributor } from '../../worker/network/contributor.ts';
import { EmbedRuntime, testWallet } from '../../testing/verification.ts';

vi.setConfig({ testTimeout: 120_000 });

const FUNDS = toNano('1');
const ENVELOPE = { inputTokens: 40, maxOutputTokens: 0 };
/** What a `tiny-embed` job billed `prompt` tokens costs, and its split. */
const cost = (prompt: number) => {
  const gross = BigInt(prompt) * 1_000n;
  const commission = gross / 10n;
  return { gross, commission, share: gross - commission };
};

const open: PaidNetwork[] = [];
afterEach(async () => {
  for (const net of open.splice(0)) await net.close();
});

async function start(policy: CheckPolicy = CANARY_EVERY_JOB): Promise<PaidNetwork> {
  const net = await startCheckedNetwork({ policy });
  open.push(net);
  return net;
}

/** A requester job of `key` run by `worker`, answered with garbage and `usage`; returns the job id. */
async function garbageJob(net: PaidNetwork, key: TestKey, worker: FakeWorker, usage = { promptTokens: 40, completionTokens: 0 }) {
  const created = await net.create(key, ENVELOPE, 'tiny-embed', 'embed');
  expect(created.status).toBe(201);
  const jobId = String(created.body['jobId']);
  expect((await net.submit(key, jobId, 1)).status).toBe(202);
  expect(await net.finish(worker, usage)).toBe(jobId);
  return jobId;
}

/** An honest contributor loop running `tiny-embed` from the reference, earning for a wallet of its own. */
async function honestContributor(net: PaidNetwork): Promise<{ contributor: Contributor; id: string; wallet: string }> {
  const contributor = await newContributor(net, new EmbedRuntime(), ['embed']);
  contributor.start();
  await waitFor(async () => contributor.status().contributorId !== null);
  const id = contributor.status().contributorId ?? '';
  const wallet = testWallet();
  const record = await net.store.getContributor(id);
  if (record === null) throw new Error('the honest contributor is not in the store');
  await net.store.upsertContributor({ ...record, wallet });
  return { contributor, id, wallet };
}

/** Credits voided into penalties: the shares of `done`. */
const shares = (done: readonly JobDone[]): bigint => done.reduce((sum, d) => sum + cost(d.usage.promptTokens).share, 0n);

describe('a cheating contributor against canaries', () => {
  it('returns garbage: the unopenable canary is a failed check, the wallet is quarantined, and no credit survives', async () => {
    const net = await start();
    const key = await net.key(FUNDS);
    const cheat = await net.worker({ slots: 2, models: ['tiny-embed'] });
    const budgetBefore = await net.money.billing.budget();
    await garbageJob(net, key, cheat);
    // The canary comes as any job would; the cheat answers it with garbage as well.
    const canary = await cheat.take('job', 20_000);
    cheat.send({ v: 1, type: 'chunk', jobId: canary.jobId, leaseId: canary.leaseId, seq: 0, final: true, sealed: { ct: 'Z2FyYmFnZQ' } });
    await waitFor(async () => net.verification?.report(cheat.contributorId).then((r) => r.quarantined) ?? false);
    await net.settled();
    await net.verification?.idle();
    expect(net.done.map((d) => d.role)).toEqual(['job', 'canary']);
    const [job, check] = net.done;
    if (job === undefined || check === undefined) throw new Error('missing jobs');
    // Both credits end in penalties; the cheat has nothing pending or settled.
    await waitFor(async () => (await net.pending(cheat.wallet)) === 0n);
    expect(await net.penalties()).toBe(shares(net.done));
    // The requester paid once for its delivered job and gets nothing back; the budget paid the canary.
    expect(await net.balance(key)).toEqual({ available: FUNDS - cost(40).gross, reserved: 0n });
    expect(await net.money.billing.budget()).toEqual({
      available: budgetBefore.available - cost(check.usage.promptTokens).gross,
      reserved: 0n,
    });
    const report = await net.verification?.report(cheat.contributorId);
    expect(report?.canaries).toEqual({ passed: 0, failed: 1 });
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true });
  });

  it('abandons its canary: leaving is a failed check, and its requester job credit is voided', async () => {
    const net = await start();
    const key = await net.key(FUNDS);
    const cheat = await net.worker({ slots: 2, models: ['tiny-embed'] });
    await garbageJob(net, key, cheat);
    await cheat.take('job', 20_000);
    cheat.close();
    await waitFor(async () => net.verification?.report(cheat.contributorId).then((r) => r.quarantined) ?? false);
    await net.settled();
    await net.verification?.idle();
    expect(net.done.map((d) => d.role)).toEqual(['job']);
    await waitFor(async () => (await net.pending(cheat.wallet)) === 0n);
    expect(await net.penalties()).toBe(cost(40).share);
    expect(await net.balance(key)).toEqual({ available: FUNDS - cost(40).gross, reserved: 0n });
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true });
  });

  it('comes back under a new key of the quarantined wallet: the new device gets no job', async () => {
    const net = await start();
    const key = await net.key(FUNDS);
    const cheat = await net.worker({ slots: 2, models: ['tiny-embed'] });
    await garbageJob(net, key, cheat);
    const canary = await cheat.take('job', 20_000);
    cheat.send({ v: 1, type: 'chunk', jobId: canary.jobId, leaseId: canary.leaseId, seq: 0, final: true, sealed: { ct: 'Z2FyYmFnZQ' } });
    await waitFor(async () => net.verification?.report(cheat.contributorId).then((r) => r.quarantined) ?? false);
    cheat.close();
    const again = await net.worker({ slots: 2, models: ['tiny-embed'], wallet: cheat.wallet });
    expect(again.contributorId).not.toBe(cheat.contributorId);
    const honest = await net.worker({ slots: 1, models: ['tiny-embed'] });
    const created = await net.create(key, ENVELOPE, 'tiny-embed', 'embed');
    const jobId = String(created.body['jobId']);
    const events = await net.events(key, jobId);
    const assigned = await events.next();
    expect(assigned).toMatchObject({ assignment: { contributorId: honest.contributorId } });
    expect(await again.none('job', 300)).toBe(true);
    await net.settled();
    const penaltiesBefore = await net.penalties();
    expect(penaltiesBefore).toBe(shares(net.done));
    expect(await net.pending(again.wallet)).toBe(0n);
  });
});

describe('a garbage primary result', () => {
  it('is reported by the SDK: the credit goes to penalties, the requester gets a free re-run and pays once', async () => {
    const net = await start({ canaryRate: 0, baseReplicationRate: 0, minReplicationRate: 0 });
    const key = await net.key(FUNDS);
    const cheat = await net.worker({ slots: 1, models: ['tiny-embed'] });
    const requester = new RequesterClient({ coordinatorUrl: net.url, apiKey: key.secret });
    const running = requester.run({ kind: 'embed', model: 'tiny-embed', inputs: ['the model runs in a browser tab'] });
    const frame = await cheat.take('job', 10_000);
    cheat.send({
      v: 1,
      type: 'chunk',
      jobId: frame.jobId,
      leaseId: frame.leaseId,
      seq: 0,
      final: true,
      sealed: { ct: 'Z2FyYmFnZQ' },
      usage: { promptTokens: 9, completionTokens: 0 },
    });
    const honest = await honestContributor(net);
    try {
      const result = await running;
      expect(result.kind).toBe('embed');
      await requester.idle();
      await net.settled();
      await net.verification?.idle();
      expect(net.done.map((d) => [d.role, d.contributorId])).toEqual([
        ['job', cheat.contributorId],
        ['rerun', honest.id],
      ]);
      const [job, rerun] = net.done;
      if (job === undefined || rerun === undefined) throw new Error('missing jobs');
      // The cheat's credit is voided into penalties; the honest re-run is paid from the budget.
      await waitFor(async () => (await net.pending(cheat.wallet)) === 0n);
      expect(await net.penalties()).toBe(cost(job.usage.promptTokens).share);
      expect(await net.pending(honest.wallet)).toBe(cost(rerun.usage.promptTokens).share);
      // The requester paid for its job once, and nothing for the re-run.
      const { available, reserved } = await net.balance(key);
      expect(reserved).toBe(0n);
      expect(available).toBe(FUNDS - cost(job.usage.promptTokens).gross);
      expect(await net.ledger.checkBooks()).toMatchObject({ ok: true });
    } finally {
      await honest.contributor.stop({ drain: false });
    }
  });
});

/** Which worker the job's latest `assigned` event names. */
async function assignee(net: PaidNetwork, key: TestKey, jobId: string): Promise<string> {
  const events = await net.events(key, jobId);
  let who = '';
  for (let e = await events.next(); e !== null; e = await events.next(300).catch(() => null)) {
    if (e.type === 'assigned') who = e.assignment.contributorId;
  }
  return who;
}

describe('a lying requester', () => {
  it('disagrees on the replica and the tie-break: every credit goes to penalties and the requester gets nothing back', async () => {
    const net = await start({ canaryRate: 0, baseReplicationRate: 1, minReplicationRate: 1 });
    const key = await net.key(FUNDS);
    const workers = [
      await net.worker({ slots: 1, models: ['tiny-embed'] }),
      await net.worker({ slots: 1, models: ['tiny-embed'] }),
      await net.worker({ slots: 1, models: ['tiny-embed'] }),
    ];
    const byId = (id: string): FakeWorker => {
      const w = workers.find((x) => x.contributorId === id);
      if (w === undefined) throw new Error(`no worker ${id}`);
      return w;
    };
    const budgetBefore = await net.money.billing.budget();
    const res = await net.api(key, 'POST', '/v1/jobs', { model: 'tiny-embed', kind: 'embed', billing: ENVELOPE, replicas: true });
    expect(res.status).toBe(201);
    const jobId = String(((await res.json()) as Record<string, unknown>)['jobId']);
    const primaryOn = byId(await assignee(net, key, jobId));
    expect((await net.submit(key, jobId, 1)).status).toBe(202);
    await net.finish(primaryOn, { promptTokens: 40, completionTokens: 0 });
    const replicaId = net.done.length > 0 ? await waitForReplica(net, key, jobId) : '';
    const replicaOn = byId(await assignee(net, key, replicaId));
    expect(replicaOn).not.toBe(primaryOn);
    expect((await net.submit(key, replicaId, 1)).status).toBe(202);
    await net.finish(replicaOn, { promptTokens: 40, completionTokens: 0 });
    await waitFor(async () => net.done.length === 2);
    const said = { agree: false, score: 0, reason: 'they differ' };
    const first = await net.api(key, 'POST', `/v1/jobs/${jobId}/verdict`, { stage: 'replica', replicaJobId: replicaId, ...said });
    expect(first.status).toBe(200);
    const tieId = ((await first.json()) as { tieBreak: { jobId: string } | null }).tieBreak?.jobId ?? '';
    const thirdOn = byId(await assignee(net, key, tieId));
    expect((await net.submit(key, tieId, 1)).status).toBe(202);
    await net.finish(thirdOn, { promptTokens: 40, completionTokens: 0 });
    await waitFor(async () => net.done.length === 3);
    const second = await net.api(key, 'POST', `/v1/jobs/${jobId}/verdict`, {
      stage: 'tie-break',
      tieBreakJobId: tieId,
      withPrimary: said,
      withReplica: said,
    });
    expect(second.status).toBe(200);
    await net.settled();
    await net.verification?.idle();
    await waitFor(async () => (await net.penalties()) === shares(net.done));
    for (const w of workers) expect(await net.pending(w.wallet)).toBe(0n);
    // Voids never refund: the requester paid its job once; the budget paid the replica and the tie-break.
    expect(await net.balance(key)).toEqual({ available: FUNDS - cost(40).gross, reserved: 0n });
    expect(await net.money.billing.budget()).toEqual({ available: budgetBefore.available - 2n * cost(40).gross, reserved: 0n });
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true });
  });

  it('once flagged, reports an honest result unopenable: the credit stands and no re-run is placed', async () => {
    const net = await start({ canaryRate: 0, baseReplicationRate: 0, minReplicationRate: 0 });
    const standing = net.verification?.standing;
    if (standing === undefined) throw new Error('no verification');
    const liar = await net.key(FUNDS);
    // The network's requesters report almost nothing negative; this one has called most results garbage.
    for (const other of ['r1', 'r2', 'r3']) for (let i = 0; i < 30; i++) standing.note(other, i === 0);
    for (let i = 0; i < 30; i++) standing.note(liar.id, i < 25);
    expect(standing.isFlagged(liar.id)).toBe(true);
    const honest = await net.worker({ slots: 1, models: ['tiny-embed'] });
    const jobId = await garbageJob(net, liar, honest);
    await net.settled();
    const res = await net.api(liar, 'POST', `/v1/jobs/${jobId}/report`, { opened: false, reason: 'it would not open' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ rerun: null, message: expect.stringMatching(/far more negative/) as unknown });
    // One report per job.
    expect((await net.api(liar, 'POST', `/v1/jobs/${jobId}/report`, { opened: false })).status).toBe(409);
    await net.verification?.idle();
    expect(await net.pending(honest.wallet)).toBe(cost(40).share);
    expect(await net.penalties()).toBe(0n);
    expect(await net.balance(liar)).toEqual({ available: FUNDS - cost(40).gross, reserved: 0n });
    expect((await net.verification?.report(honest.contributorId))?.reputation.failed).toBe(0);
  });

  it('a report with hostile input is refused and moves nothing: NUL bytes, huge usage, a bad id, another key’s job', async () => {
    const net = await start({ canaryRate: 0, baseReplicationRate: 0, minReplicationRate: 0 });
    const owner = await net.key(FUNDS);
    const other = await net.key(FUNDS);
    const honest = await net.worker({ slots: 1, models: ['tiny-embed'] });
    const jobId = await garbageJob(net, owner, honest);
    await net.settled();
    const report = (key: TestKey, id: string, body: unknown): Promise<Response> => net.api(key, 'POST', `/v1/jobs/${id}/report`, body);
    expect((await report(owner, jobId, { opened: false, reason: 'a\u0000b' })).status).toBe(400);
    expect((await report(owner, jobId, { opened: true, usage: { promptTokens: 1e300, completionTokens: -1 } })).status).toBe(400);
    expect((await report(owner, jobId, { opened: false, extra: 'x'.repeat(70_000) })).status).toBe(413);
    expect((await report(owner, 'not%00an-id', { opened: false })).status).toBe(400);
    // Another requester cannot report on a job it did not create.
    expect((await report(other, jobId, { opened: false })).status).toBeGreaterThanOrEqual(400);
    await net.verification?.idle();
    expect(await net.pending(honest.wallet)).toBe(cost(40).share);
    expect(await net.penalties()).toBe(0n);
    expect(await net.balance(owner)).toEqual({ available: FUNDS - cost(40).gross, reserved: 0n });
    expect(await net.balance(other)).toEqual({ available: FUNDS, reserved: 0n });
    // The owner's own, well-formed report still counts once.
    expect((await report(owner, jobId, { opened: true })).status).toBe(200);
  });
});

/** The replica announced on the primary job's stream. */
async function waitForReplica(net: PaidNetwork, key: TestKey, jobId: string): Promise<string> {
  const events = await net.events(key, jobId);
  for (let e = await events.next(); e !== null; e = await events.next()) {
    if (e.type === 'replica-assigned') return e.jobId;
  }
  throw new Error(`job ${jobId} announced no replica`);
}
