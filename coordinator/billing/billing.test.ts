/**
 * Money follows what the requester agreed to, attacked from both sides, on the real
 * coordinator with its money side on the sandbox chain (PGlite and PostgreSQL). Prices are
 * prices.json's: `tiny-decoder` costs 1 000 nanoTON per prompt token and 3 000 per completion
 * token, with 10 % commission. Every test checks exact ledger amounts: the attacker gains
 * nothing, the honest parties lose nothing.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { toNano } from '@ton/core';
import * as v from 'valibot';
import { PAYLOAD_OVERHEAD_BYTES, SEAL_TAG_BYTES } from '../../protocol/billing.ts';
import { ModelFacts, PaymentRequired } from '../../protocol/wire.ts';
import { PaymentRequiredError } from '../../requester/errors.ts';
import { RequesterClient } from '../../requester/client.ts';
import { Job } from '../jobs/job.ts';
import { createBilling } from './service.ts';
import { type PaidNetwork, startPaidNetwork } from '../../testing/billing.ts';

// Each test runs a coordinator, a chain and a database; on a busy 2-core machine that can take a while.
vi.setConfig({ testTimeout: 120_000 });

const FUNDS = toNano('1');
/** What a `tiny-decoder` chat job of `prompt` + `completion` tokens costs, and its split. */
const cost = (prompt: number, completion: number) => {
  const gross = BigInt(prompt) * 1_000n + BigInt(completion) * 3_000n;
  const commission = gross / 10n;
  return { gross, commission, share: gross - commission };
};

const open: PaidNetwork[] = [];
afterEach(async () => {
  for (const net of open.splice(0)) await net.close();
});
async function start(backend: 'PGlite' | 'PostgreSQL', options: Parameters<typeof startPaidNetwork>[1] = {}): Promise<PaidNetwork> {
  const net = await startPaidNetwork(backend, options);
  open.push(net);
  return net;
}

async function ledgerKinds(net: PaidNetwork, jobId: string): Promise<string[]> {
  const { rows } = await net.store.db.query<{ kind: string }>('SELECT kind FROM ledger_txns WHERE ref = $1 ORDER BY id', [jobId]);
  return rows.map((r) => r.kind);
}

describe.each(['PGlite', 'PostgreSQL'] as const)('prepaid jobs on %s', (backend) => {
  it('bills, credits and signs for a contributor reporting 10^6 tokens only what the envelope allows', async () => {
    const net = await start(backend, { receipts: true });
    const key = await net.key(FUNDS);
    const worker = await net.worker();
    const created = await net.create(key, { inputTokens: 40, maxOutputTokens: 16 });
    expect(created.status).toBe(201);
    const jobId = String(created.body['jobId']);
    const max = cost(40, 16);
    // The envelope's maximum price is held before the job runs.
    expect(await net.balance(key)).toEqual({ available: FUNDS - max.gross, reserved: max.gross });
    expect((await net.submit(key, jobId, 1)).status).toBe(202);
    await net.finish(worker, { promptTokens: 1_000_000, completionTokens: 1_000_000 });
    await net.settled();
    expect(net.done).toMatchObject([
      { jobId, usage: { promptTokens: 40, completionTokens: 16 }, claimed: { promptTokens: 1_000_000, completionTokens: 1_000_000 } },
    ]);
    // Requester: charged the envelope, nothing more. Contributor: 90 % of it. Network: 10 %.
    expect(await net.balance(key)).toEqual({ available: FUNDS - max.gross, reserved: 0n });
    expect(await net.pending(worker.wallet)).toBe(max.share);
    expect(await net.fees()).toBe(max.commission);
    const { rows } = await net.store.db.query<Record<string, unknown>>(
      'SELECT claimed_prompt, claimed_completion, billed_prompt, billed_completion, charged::text AS charged, state FROM job_billing WHERE job_id = $1',
      [jobId],
    );
    expect(rows[0]).toEqual({
      claimed_prompt: 1_000_000,
      claimed_completion: 1_000_000,
      billed_prompt: 40,
      billed_completion: 16,
      charged: max.gross.toString(),
      state: 'charged',
    });
    expect(net.money.billing.counts.clamped).toBe(1);
    // The signed receipt says what was billed and credited, not what was claimed.
    await expect
      .poll(
        async () =>
          ((await (await fetch(`${net.url}/v1/contributors/${worker.contributorId}/receipts`)).json()) as { receipts: unknown[] }).receipts,
      )
      .toMatchObject([{ receipt: { jobId, usage: { promptTokens: 40, completionTokens: 16 }, amountNano: max.share.toString() } }]);
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true, problems: [] });
  });

  it('refuses an envelope the payload bytes prove under-declared, and bills one within the bound at the envelope', async () => {
    const net = await start(backend);
    const key = await net.key(FUNDS);
    const worker = await net.worker();
    const facts = v.parse(ModelFacts, await (await net.api(key, 'GET', '/v1/models/tiny-decoder')).json());
    const perToken = facts.limits.chat?.maxBytesPerToken;
    if (perToken === undefined || perToken === null) throw new Error('no byte bound for tiny-decoder');
    // 100 tokens' worth of bytes beyond the overhead, declared as 1 token.
    const bytes = PAYLOAD_OVERHEAD_BYTES + SEAL_TAG_BYTES + 100 * perToken;
    const under = await net.create(key, { inputTokens: 1, maxOutputTokens: 8 });
    const underId = String(under.body['jobId']);
    const refused = await net.submit(key, underId, 1, bytes);
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('ENVELOPE');
    expect((await (await net.events(key, underId)).rest()).at(-1)).toMatchObject({ type: 'failed', error: { code: 'ENVELOPE' } });
    // The contributor never saw it, the requester's reservation is back, nobody was paid.
    expect(await worker.none('job')).toBe(true);
    await expect.poll(() => net.balance(key)).toEqual({ available: FUNDS, reserved: 0n });
    expect(await ledgerKinds(net, underId)).toEqual(['job.reserve', 'job.release']);
    expect(await net.pending(worker.wallet)).toBe(0n);

    // Exactly at the bound it is accepted; the contributor's honest 130 prompt tokens are billed at the envelope's 100.
    worker.lease(1);
    const within = await net.create(key, { inputTokens: 100, maxOutputTokens: 8 });
    const withinId = String(within.body['jobId']);
    expect((await net.submit(key, withinId, 1, bytes)).status).toBe(202);
    await net.finish(worker, { promptTokens: 130, completionTokens: 8 });
    await net.settled();
    const billed = cost(100, 8);
    expect(await net.balance(key)).toEqual({ available: FUNDS - billed.gross, reserved: 0n });
    expect(await net.pending(worker.wallet)).toBe(billed.share);
    const { rows } = await net.store.db.query<{ claimed_prompt: number; billed_prompt: number }>(
      'SELECT claimed_prompt, billed_prompt FROM job_billing WHERE job_id = $1',
      [withinId],
    );
    expect(rows[0]).toEqual({ claimed_prompt: 130, billed_prompt: 100 });
    // An envelope beyond the model's context is refused at creation, before anything is reserved.
    const context = facts.limits.chat?.maxTokens ?? 0;
    const huge = await net.create(key, { inputTokens: context, maxOutputTokens: 1 });
    expect(huge.status).toBe(422);
    expect(await net.balance(key)).toEqual({ available: FUNDS - billed.gross, reserved: 0n });
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true });
  });

  it('answers an unfunded requester 402 with the shortfall and where to deposit, before any work starts', async () => {
    const net = await start(backend);
    const key = await net.key();
    const worker = await net.worker();
    const envelope = { inputTokens: 40, maxOutputTokens: 16 };
    const max = cost(40, 16).gross;
    const refused = await net.create(key, envelope);
    expect(refused.status).toBe(402);
    const body = v.parse(PaymentRequired, refused.body);
    expect(body.payment).toEqual({
      required: max.toString(),
      available: '0',
      shortfall: max.toString(),
      deposit: { address: net.money.depositAddress, memo: key.depositMemo },
    });
    // Nothing reserved, nothing queued, nothing leased.
    expect(await net.balance(key)).toEqual({ available: 0n, reserved: 0n });
    expect(net.coordinator.stats().queued).toBe(0);
    expect(await worker.none('job')).toBe(true);
    const rows = await net.store.db.query('SELECT 1 FROM job_billing j JOIN api_keys k ON k.id = j.api_key_id WHERE k.id = $1', [key.id]);
    expect(rows.rows).toEqual([]);

    // Part of it deposited: still short, by exactly the rest.
    await net.money.fund(key.depositMemo, 50_000n);
    const short = v.parse(PaymentRequired, (await net.create(key, envelope)).body);
    expect(short.payment.shortfall).toBe((max - 50_000n).toString());
    // The SDK says the same as a typed error.
    const client = new RequesterClient({ coordinatorUrl: net.url, apiKey: key.secret, checkReplicas: false });
    const failed = client.run({ kind: 'embed', model: 'tiny-embed', inputs: ['hello world '.repeat(20)] });
    await expect(failed).rejects.toBeInstanceOf(PaymentRequiredError);
    await expect(failed).rejects.toMatchObject({ deposit: { memo: key.depositMemo, address: net.money.depositAddress } });
    expect(await client.account()).toEqual({
      keyId: key.id,
      available: 50_000n,
      reserved: 0n,
      deposit: { address: net.money.depositAddress, memo: key.depositMemo },
    });
    // Funded, the same job goes through.
    await net.money.fund(key.depositMemo, max);
    const created = await net.create(key, envelope);
    expect(created.status).toBe(201);
    expect(await net.balance(key)).toEqual({ available: 50_000n, reserved: max });
    // Cancelled before it ran: the whole reservation comes back.
    expect((await net.api(key, 'DELETE', `/v1/jobs/${String(created.body['jobId'])}`)).status).toBe(200);
    await expect.poll(() => net.balance(key)).toEqual({ available: 50_000n + max, reserved: 0n });
  });

  it('charges a requester exactly once across re-assignments, and a free re-run to the check budget', async () => {
    const net = await start(backend);
    const key = await net.key(FUNDS);
    await net.money.fund(net.money.budgetMemo, FUNDS);
    const first = await net.worker();
    const created = await net.create(key, { inputTokens: 40, maxOutputTokens: 16 });
    const jobId = String(created.body['jobId']);
    expect((await net.submit(key, jobId, 1)).status).toBe(202);
    await first.take('job');
    // The first contributor drops mid-job; the job waits for the next one.
    first.close();
    await first.closed;
    const second = await net.worker();
    const reader = await net.events(key, jobId);
    let attempt = 0;
    while (attempt !== 2) {
      const event = await reader.next();
      if (event?.type === 'assigned') attempt = event.assignment.attempt;
    }
    expect((await net.submit(key, jobId, 2)).status).toBe(202);
    await net.finish(second, { promptTokens: 20, completionTokens: 10 });
    await net.settled();
    const billed = cost(20, 10);
    expect(await net.balance(key)).toEqual({ available: FUNDS - billed.gross, reserved: 0n });
    expect(await net.pending(first.wallet)).toBe(0n);
    expect(await net.pending(second.wallet)).toBe(billed.share);
    expect(await ledgerKinds(net, jobId)).toEqual(['job.reserve', 'job.credit']);

    // The requester's answer from a re-run: another contributor, paid by the check budget, at no charge to the requester.
    const third = await net.worker();
    const budgetBefore = await net.money.billing.budget();
    const rerun = await net.money.billing.createRerun(jobId);
    if (!(rerun instanceof Job)) throw new Error(`refused: ${rerun.error.message}`);
    expect(rerun.apiKeyId).toBe(key.id);
    expect((await net.submit(key, rerun.id, 1)).status).toBe(202);
    // It reports inflated usage too: the budget pays the primary's envelope at most.
    await net.finish(third, { promptTokens: 1_000_000, completionTokens: 1_000_000 });
    await net.settled();
    const rerunCost = cost(40, 16);
    expect(net.done.at(-1)).toMatchObject({ jobId: rerun.id, role: 'rerun', primaryJobId: jobId, apiKeyId: key.id });
    expect(await net.balance(key)).toEqual({ available: FUNDS - billed.gross, reserved: 0n });
    expect(await net.pending(third.wallet)).toBe(rerunCost.share);
    expect(await net.money.billing.budget()).toEqual({ available: budgetBefore.available - rerunCost.gross, reserved: 0n });
    expect(await ledgerKinds(net, rerun.id)).toEqual(['job.reserve', 'job.credit']);
    // One re-run per job; a job that was never delivered has none.
    expect(await net.money.billing.createRerun(jobId)).toMatchObject({ status: 409 });
    expect(await net.money.billing.createRerun('no-such-job')).toMatchObject({ status: 404 });
    expect(await net.ledger.checkBooks()).toMatchObject({ ok: true });
  });

  it('voids a credit into penalties: the requester is not refunded and the contributor keeps nothing', async () => {
    const net = await start(backend);
    const key = await net.key(FUNDS);
    const worker = await net.worker();
    const jobId = String((await net.create(key, { inputTokens: 40, maxOutputTokens: 16 })).body['jobId']);
    await net.submit(key, jobId, 1);
    await net.finish(worker, { promptTokens: 30, completionTokens: 12 });
    await net.settled();
    const billed = cost(30, 12);
    expect(await net.money.earnings.voidNow(jobId, 'a failed check')).toBe('voided');
    expect(await net.money.earnings.voidNow(jobId, 'again')).toBe('voided');
    expect(await net.balance(key)).toEqual({ available: FUNDS - billed.gross, reserved: 0n });
    expect(await net.pending(worker.wallet)).toBe(0n);
    expect(await net.penalties()).toBe(billed.share);
    expect(await net.fees()).toBe(billed.commission);
    const books = await net.ledger.checkBooks();
    expect(books).toMatchObject({ ok: true, totals: { penalties: billed.share } });
  });

  it('does not create a check the budget cannot cover, and counts it', async () => {
    const net = await start(backend, { checkBudgetLimit: 50_000n });
    const key = await net.key(FUNDS);
    const worker = await net.worker();
    const jobId = String((await net.create(key, { inputTokens: 40, maxOutputTokens: 16 })).body['jobId']);
    await net.submit(key, jobId, 1);
    await net.finish(worker, { promptTokens: 30, completionTokens: 12 });
    await net.settled();
    // An empty budget pays for no re-run.
    expect(await net.money.billing.createRerun(jobId)).toMatchObject({ status: 402, error: { code: 'PAYMENT_REQUIRED' } });
    expect(net.money.billing.counts.checksRefused).toBe(1);
    // Funded, but the re-run's 88 000 nanoTON pass the 50 000 limit on checks in flight.
    await net.money.fund(net.money.budgetMemo, FUNDS);
    expect(await net.money.billing.createRerun(jobId)).toMatchObject({ status: 402 });
    expect(net.money.billing.counts.checksRefused).toBe(2);
    expect(await (await fetch(`${net.url}/metrics`)).text()).toContain('\nspinneret_billing_checks_refused_total 2\n');
    expect(await net.money.billing.budget()).toEqual({ available: FUNDS, reserved: 0n });
    // Only the requester's job ever reserved anything.
    const reserves = await net.store.db.query<{ ref: string }>(`SELECT ref FROM ledger_txns WHERE kind = 'job.reserve'`);
    expect(reserves.rows).toEqual([{ ref: jobId }]);
  });

  it('releases a reservation a crashed coordinator left behind, once it is older than any job can live', async () => {
    const net = await start(backend);
    const key = await net.key(FUNDS);
    let now = Date.now();
    // A coordinator that reserved a job and died before the job existed anywhere.
    const crashed = createBilling({
      db: net.store.db,
      ledger: net.ledger,
      store: net.store,
      depositAddress: net.money.depositAddress,
      budgetLimit: 0n,
      staleAfterMs: 3_600_000,
      clock: { now: () => now },
    });
    const record = {
      id: key.id,
      label: 'k',
      jobsPerMinute: 1,
      maxInFlight: 1,
      depositMemo: key.depositMemo,
      createdAt: now,
      revokedAt: null,
    };
    expect(await crashed.reserveJob(record, 'lost-job', 'tiny-decoder', 'chat', { inputTokens: 40, maxOutputTokens: 16 })).toEqual({
      ok: true,
      amount: cost(40, 16).gross,
    });
    expect(await net.balance(key)).toEqual({ available: FUNDS - cost(40, 16).gross, reserved: cost(40, 16).gross });
    now += 3_599_000;
    await crashed.sweepStale();
    expect((await net.balance(key)).reserved).toBe(cost(40, 16).gross);
    now += 2_000;
    await crashed.sweepStale();
    expect(await net.balance(key)).toEqual({ available: FUNDS, reserved: 0n });
    expect(await ledgerKinds(net, 'lost-job')).toEqual(['job.reserve', 'job.release']);
    expect(crashed.counts.released).toBe(1);
  });
});
