/**
 * A contributor's late result after a coordinator restart (docs/protocol.md, "Surviving
 * faults"). The restart ended the job (`RESTARTED`, its reservation released, its requester
 * runs it again), so the result of the lease from before is refused with that code: it earns
 * nothing and charges nobody, and another device gets no hint that the job existed.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { pendingAccount } from '../ledger/accounts.ts';
import { ciphertext } from '../../testing/billing.ts';
import { FakeWorker, newIdentity } from '../testing.ts';
import { testWallet } from '../../testing/verification.ts';
import { type FaultNetwork, startFaultNetwork } from '../../testing/faults.ts';

vi.setConfig({ testTimeout: 60_000 });

let net: FaultNetwork;
beforeAll(async () => {
  net = await startFaultNetwork();
}, 180_000);
afterAll(() => net.close());

async function withWallet(worker: FakeWorker): Promise<string> {
  const record = await net.store.getContributor(worker.contributorId);
  if (record === null) throw new Error('not in the store');
  const wallet = testWallet();
  await net.store.upsertContributor({ ...record, wallet });
  return wallet;
}

describe('a late result after a coordinator restart', () => {
  it('is refused with RESTARTED to the device that held it, credits nothing, and leaves the books balanced', async () => {
    const key = await net.key();
    const api = (method: string, path: string, body?: unknown): Promise<Response> =>
      fetch(`${net.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const identity = await newIdentity();
    const holder = await FakeWorker.ready(net.url, { models: ['tiny-decoder'], consent: ['chat'], slots: 1, identity });
    const wallet = await withWallet(holder);
    const created = await api('POST', '/v1/jobs', {
      model: 'tiny-decoder',
      kind: 'chat',
      billing: { inputTokens: 40, maxOutputTokens: 16 },
    });
    expect(created.status).toBe(201);
    const { jobId } = (await created.json()) as { jobId: string };
    const put = await api('PUT', `/v1/jobs/${jobId}/payload`, { attempt: 1, sealed: { enc: ciphertext(32), ct: ciphertext(200) } });
    expect(put.status).toBe(202);
    const job = await holder.take('job', 20_000);
    expect((await net.store.getJob(jobId))?.state).toBe('leased');

    await net.crash();
    await holder.closed;
    expect(await net.store.getJob(jobId)).toMatchObject({ state: 'failed', error: expect.stringMatching(/^RESTARTED: /) });

    // The device comes back with the same identity and sends the result it finished meanwhile.
    const back = await FakeWorker.ready(net.url, { models: ['tiny-decoder'], consent: ['chat'], slots: 0, identity });
    expect(back.contributorId).toBe(holder.contributorId);
    const result = { v: 1, type: 'chunk', jobId, leaseId: job.leaseId, seq: 0, final: true, sealed: { ct: 'cmVzdWx0' } } as const;
    back.send({ ...result, usage: { promptTokens: 40, completionTokens: 16 } });
    expect(await back.take('error', 10_000)).toMatchObject({ jobId, fatal: false, error: { code: 'RESTARTED' } });
    // Sent again, it is refused again: never taken "once later".
    back.send(result);
    expect((await back.take('error', 10_000)).error.code).toBe('RESTARTED');

    // Another device naming the job learns nothing about it.
    const other = await FakeWorker.ready(net.url, { models: ['tiny-decoder'], consent: ['chat'], slots: 0 });
    other.send(result);
    expect((await other.take('error', 10_000)).error.code).toBe('NOT_FOUND');

    await net.money.idle();
    expect(net.done.filter((d) => d.jobId === jobId)).toEqual([]);
    expect(await net.store.getJob(jobId)).toMatchObject({ state: 'failed' });
    const { rows } = await net.store.db.query<{ state: string }>('SELECT state FROM job_billing WHERE job_id = $1', [jobId]);
    expect(rows).toEqual([{ state: 'released' }]);
    expect(await net.ledger.accountBalance(pendingAccount(wallet))).toBe(0n);
    expect(await net.ledger.payerBalances({ kind: 'requester', apiKeyId: key.id })).toMatchObject({ reserved: 0n });
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true, problems: [] });
    for (const w of [back, other]) w.close();
  });
});
