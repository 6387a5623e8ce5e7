/**
 * Voids never refund, through verification's own voider: a contributor answering garbage is
 * caught by canaries and quarantined, and every credit it had goes to `network:penalties`.
 * The requester keeps paying for what was delivered; the check budget pays for the canaries.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { availableAccount, PENALTIES, pendingAccount, settledAccount } from '../ledger/accounts.ts';
import { Ledger } from '../ledger/ledger.ts';
import { waitFor } from '../store/testing.ts';
import { startVerifiedNetwork, type VerifiedNetwork } from '../../testing/verification.ts';

// Each test runs a coordinator, a chain and a database; on a busy 2-core machine that can take a while.
vi.setConfig({ testTimeout: 120_000 });

const POLICY = {
  canaryRate: 1,
  baseReplicationRate: 0,
  minReplicationRate: 0,
  decayPerCleanJob: 0.95,
  failureBoost: 3,
  quarantineAfter: 2,
  windowMs: 3_600_000,
  quarantineMs: 3_600_000,
};

const open: VerifiedNetwork[] = [];
afterEach(async () => {
  for (const net of open.splice(0)) await net.close();
});

describe.each(['PGlite', 'PostgreSQL'] as const)('voids on %s', (backend) => {
  it("moves a quarantined liar's credits to penalties and refunds nobody", async () => {
    const net = await startVerifiedNetwork({ contributors: [1], policy: POLICY, seed: 3, backend, windowMs: 0 });
    open.push(net);
    const liar = net.members[0];
    if (liar === undefined) throw new Error('no contributor');
    for (let i = 0; i < 10 && !net.policy.isQuarantined(liar.id); i++) {
      // A job started just before the quarantine waits for a contributor that never comes.
      await net.requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [`a small job number ${i}`] }).catch(() => undefined);
    }
    expect(net.policy.isQuarantined(liar.id)).toBe(true);
    await net.verification.idle();
    const { db } = net.store;
    // Every job the liar finished was charged to its payer; every share it was credited is voided.
    await waitFor(async () => {
      const { rows } = await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM job_billing WHERE state = 'charged'`);
      return Number(rows[0]?.n) === net.done.length;
    });
    // Credits made after the quarantine are voided when settlement asks verification about them.
    await waitFor(async () => {
      await net.money.earnings.settleDue();
      return (await new Ledger(net.store.db).accountBalance(pendingAccount(liar.wallet))) === 0n;
    });
    const ledger = new Ledger(net.store.db);
    const sum = async (sql: string): Promise<bigint> => BigInt((await db.query<{ s: string }>(sql)).rows[0]?.s ?? '0');
    const credited = -(await sum(
      `SELECT coalesce(sum(amount), 0)::text AS s FROM ledger_entries WHERE kind = 'job.credit' AND account = '${pendingAccount(liar.wallet)}'`,
    ));
    expect(credited).toBeGreaterThan(0n);
    expect(await ledger.accountBalance(settledAccount(liar.wallet))).toBe(0n);
    expect(-(await ledger.accountBalance(PENALTIES))).toBe(credited);
    // The requester paid exactly the gross of its delivered jobs: deposited minus charged, nothing back.
    const keyId = (await db.query<{ id: string }>(`SELECT id FROM api_keys WHERE label = 'verified requester'`)).rows[0]?.id ?? '';
    const charged = await sum(
      `SELECT coalesce(sum(charged), 0)::text AS s FROM job_billing WHERE payer = 'requester' AND api_key_id = '${keyId}' AND state = 'charged'`,
    );
    const deposited = await sum(`SELECT coalesce(sum(amount), 0)::text AS s FROM deposits WHERE api_key_id = '${keyId}'`);
    expect(charged).toBeGreaterThan(0n);
    // A job cut off by the quarantine gives its reservation back once it fails.
    await waitFor(async () => (await ledger.payerBalances({ kind: 'requester', apiKeyId: keyId })).reserved === 0n, 30_000);
    expect(-(await ledger.accountBalance(availableAccount(keyId)))).toBe(deposited - charged);
    const voids = await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM ledger_txns WHERE kind = 'job.void'`);
    expect(Number(voids.rows[0]?.n)).toBe(net.done.length);
    expect(await ledger.checkBooks()).toMatchObject({ ok: true });
  });
});
