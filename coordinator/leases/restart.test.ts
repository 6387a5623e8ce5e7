/**
 * The money side of a coordinator's start after a crash (restart.ts): a requester job the
 * store has as done whose charge the previous run never wrote is charged once, from the
 * coordinator's own record (the billed usage, never a party's claim); a reservation whose job
 * never reached the store goes back; an unfinished job fails `RESTARTED` and its reservation
 * goes back. Run twice at once and then again, the recovery moves no nanoTON twice.
 */
import { randomUUID } from 'node:crypto';
import { toNano } from '@ton/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCoordinator } from '../app.ts';
import { FEES_NETWORK, pendingAccount } from '../ledger/accounts.ts';
import { Ledger } from '../ledger/ledger.ts';
import { startMoney, type Money } from '../earnings/local.ts';
import type { SqlStore } from '../store/sql-store.ts';
import type { JobRecord } from '../store/types.ts';
import { FakeClock } from '../testing.ts';
import { disposeStore, openTestStore, testWallet } from '../../testing/verification.ts';
import type { JobDone } from './relay.ts';

const FUNDS = toNano('1');
/** tiny-decoder (prices.json): 1,000,000 nanoTON per 1k prompt tokens, 3,000,000 per 1k completion tokens; 10 % commission. */
const ENVELOPE = { inputTokens: 40, maxOutputTokens: 16 };
/** The envelope's maximum price: 40 · 1,000 + 16 · 3,000. */
const RESERVED = 88_000n;
/** The done job's recorded usage, 40 prompt and 10 completion tokens: 40 · 1,000 + 10 · 3,000. */
const CHARGE = 70_000n;
const COMMISSION = 7_000n;
const SHARE = 63_000n;

describe.each(['PGlite', 'PostgreSQL'] as const)('restart recovery of the money on %s', (backend) => {
  let store: SqlStore;
  let money: Money;
  let ledger: Ledger;
  beforeAll(async () => {
    store = await openTestStore(backend);
    money = await startMoney({
      store,
      threshold: 1n,
      windowMs: 3_600_000,
      payoutIntervalMs: 3_600_000,
      settleIntervalMs: 3_600_000,
      depositIntervalMs: 3_600_000,
      env: {},
    });
    ledger = new Ledger(store.db);
  }, 180_000);
  afterAll(async () => {
    money.stop();
    await money.idle();
    await disposeStore(store);
  });

  it('charges a done job whose charge was never written once, releases what never ran, and keeps the books', async () => {
    const { record: key } = await store.createApiKey({ label: 'restart', jobsPerMinute: 100, maxInFlight: 100 });
    await money.fund(key.depositMemo, FUNDS);
    const wallet = testWallet();
    const contributorId = `c-${randomUUID()}`;
    await store.upsertContributor({ id: contributorId, identityKey: 'ik', hpkeKey: 'hk', wallet, firstSeen: 1, lastSeen: 1 });

    // The previous run: three reservations, then it died.
    const [done, orphan, leased] = [randomUUID(), randomUUID(), randomUUID()];
    for (const id of [done, orphan, leased]) {
      expect(await money.billing.reserveJob(key, id, 'tiny-decoder', 'chat', ENVELOPE)).toEqual({ ok: true, amount: RESERVED });
    }
    const record = (id: string, state: JobRecord['state'], promptTokens = 0, completionTokens = 0): JobRecord => ({
      id,
      apiKeyId: key.id,
      model: 'tiny-decoder',
      kind: 'chat',
      state,
      attempt: 1,
      contributorId,
      createdAt: 1,
      updatedAt: 1,
      payloadBytes: 100,
      resultBytes: 50,
      promptTokens,
      completionTokens,
      error: null,
    });
    // Its result was delivered and recorded done; the run died before the charge was written.
    store.putJob(record(done, 'done', 40, 10));
    // Leased when it died; `orphan` never reached the store at all.
    store.putJob(record(leased, 'leased'));
    await store.flush();
    expect(await ledger.payerBalances({ kind: 'requester', apiKeyId: key.id })).toEqual({
      available: FUNDS - 3n * RESERVED,
      reserved: 3n * RESERVED,
    });
    const feesBefore = await ledger.accountBalance(FEES_NETWORK);

    const charged: string[] = [];
    const logged: Array<Record<string, unknown>> = [];
    const boot = () =>
      createCoordinator({
        store,
        clock: new FakeClock(),
        billing: money.billing,
        onJobDone: (d: JobDone) => {
          charged.push(d.jobId);
          money.onJobDone(d);
        },
        logger: { info: (_m: string, fields?: Record<string, unknown>) => void logged.push(fields ?? {}), warn: () => {}, error: () => {} },
      });
    // Two starts racing (the first one's charge still in flight), then a third once all settled.
    const first = boot();
    const second = boot();
    await Promise.all([first.recover(), second.recover()]);
    await money.idle();
    const third = boot();
    expect(await third.recover()).toBe(0);
    await money.idle();
    for (const c of [first, second, third]) await c.close();

    expect(charged.length).toBeGreaterThanOrEqual(1);
    expect(new Set(charged)).toEqual(new Set([done]));
    // The third start found nothing left to do.
    expect(logged.reduce((n, f) => n + (typeof f['charged'] === 'number' ? f['charged'] : 0), 0)).toBe(charged.length);
    expect(await store.getJob(done)).toMatchObject({ state: 'done' });
    expect(await store.getJob(leased)).toMatchObject({ state: 'failed', error: expect.stringMatching(/^RESTARTED: /) });

    const q = async <T>(sql: string, params: unknown[]) => (await store.db.query<T>(sql, params)).rows;
    const rows = await q<{ job_id: string; state: string; charged: string | null; billed_prompt: number; billed_completion: number }>(
      'SELECT job_id, state, charged::text AS charged, billed_prompt, billed_completion FROM job_billing WHERE api_key_id = $1',
      [key.id],
    );
    const byJob = new Map(rows.map((r) => [r.job_id, r]));
    expect(byJob.get(done)).toMatchObject({ state: 'charged', charged: CHARGE.toString() });
    expect(Number(byJob.get(done)?.billed_prompt)).toBe(40);
    expect(Number(byJob.get(done)?.billed_completion)).toBe(10);
    expect(byJob.get(orphan)).toMatchObject({ state: 'released', charged: null });
    expect(byJob.get(leased)).toMatchObject({ state: 'released', charged: null });

    // One ledger transaction per job: a charge for the delivered one, a release for each other, never both.
    const txns = await q<{ ref: string; kind: string; n: string }>(
      `SELECT ref, kind, count(*)::text AS n FROM ledger_txns WHERE ref = ANY($1) AND kind IN ('job.credit', 'job.release')
       GROUP BY ref, kind ORDER BY ref, kind`,
      [[done, orphan, leased]],
    );
    expect(txns).toEqual(
      [
        { ref: done, kind: 'job.credit', n: '1' },
        { ref: orphan, kind: 'job.release', n: '1' },
        { ref: leased, kind: 'job.release', n: '1' },
      ].sort((a, b) => (a.ref < b.ref ? -1 : 1)),
    );

    // Exact nanoTON: the requester paid the recorded usage once, the contributor and the network got their parts.
    expect(await ledger.payerBalances({ kind: 'requester', apiKeyId: key.id })).toEqual({ available: FUNDS - CHARGE, reserved: 0n });
    expect(-(await ledger.accountBalance(pendingAccount(wallet)))).toBe(SHARE);
    expect(-((await ledger.accountBalance(FEES_NETWORK)) - feesBefore)).toBe(COMMISSION);
    expect(SHARE + COMMISSION).toBe(CHARGE);
    expect(await ledger.checkBooks()).toMatchObject({ ok: true, problems: [] });
  });
});
