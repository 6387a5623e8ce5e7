/**
 * Verification across replicas, on real PostgreSQL and NATS with the real billing, ledger and
 * earnings: a requester on replica A, one contributor on A and one on B. Every job is drawn for a
 * replica check (replication rate 1); the check must not run on the device that ran the job, so
 * it can only run on B's contributor — through a slot B lends A. The requester compares both
 * results and posts its verdict; the job is paid by the requester and the check by the network's
 * budget, each contributor credited its share, each once, to the nanoTON. And a canary for a
 * device of another replica that ran a job (a while later, when the job's replica holds nothing
 * of it any more) reaches that device through its replica and is paid once.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { referenceEmbed } from '../../modelhost/reference.ts';
import { RequesterClient, type ReplicaCheck } from '../../requester/client.ts';
import { paidReplica, type PaidReplica, ReplicaKit, until, walletContributor } from '../../testing/cluster.ts';
import { EmbedRuntime } from '../../testing/verification.ts';
import { checkBooks } from '../ledger/books.ts';
import { Ledger } from '../ledger/ledger.ts';
import { uniqueSchema } from '../store/testing.ts';
import { testWallet } from '../wallets/test-wallet.ts';

const kit = new ReplicaKit();
afterAll(() => kit.dispose());
const replica = (schema: string, id: string, checks: { canaryRate: number; replicationRate: number; canaryDelayMs?: number }) =>
  paidReplica(kit, schema, id, checks);
const contributor = (r: PaidReplica, runtime: EmbedRuntime, wallet: string) => walletContributor(kit, r, runtime, wallet);

describe('checks across replicas', () => {
  it('runs a replica check on the other replica’s contributor and pays each job once', { timeout: 120_000 }, async () => {
    const schema = uniqueSchema('checks');
    const a = await replica(schema, 'a', { canaryRate: 0, replicationRate: 1 });
    const b = await replica(schema, 'b', { canaryRate: 0, replicationRate: 1 });
    await until('the replicas to hear each other', () =>
      a.routing.peers.includes('b') && b.routing.peers.includes('a') ? true : undefined,
    );
    const ledger = new Ledger(a.store.db);
    const key = await a.coordinator.createApiKey('requester');
    await ledger.deposit({ lt: 1n, hash: 'a1'.repeat(32), amount: 10_000_000n, to: { kind: 'requester', apiKeyId: key.id }, note: 't' });
    await ledger.deposit({ lt: 2n, hash: 'b2'.repeat(32), amount: 10_000_000n, to: { kind: 'budget' }, note: 't' });
    await a.money.billing.refreshBudget();
    await b.money.billing.refreshBudget();

    const [walletA, walletB] = [testWallet('device on a').address, testWallet('device on b').address];
    const [runA, runB] = [new EmbedRuntime(), new EmbedRuntime()];
    const onA = await contributor(a, runA, walletA);
    const onB = await contributor(b, runB, walletB);
    await until('B to say what its contributor serves', () => (a.routing.peerServes('tiny-embed', 'embed') ? true : undefined));

    const checks: ReplicaCheck[] = [];
    const requester = new RequesterClient({ coordinatorUrl: a.url, apiKey: key.secret, onCheck: (c) => checks.push(c) });
    const text = 'a job checked on the other replica';
    const result = await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] });
    if (result.kind !== 'embed') throw new Error(`expected an embedding, got ${result.kind}`);
    const expected = referenceEmbed([text])[0] ?? [];
    result.embeddings[0]?.forEach((x, i) => expect(Math.abs(x - (expected[i] ?? NaN))).toBeLessThan(1e-6));
    await until('the replica check', () => (checks.length > 0 ? true : undefined));
    await requester.idle();
    expect(checks).toHaveLength(1);
    expect(checks[0]?.agree).toBe(true);
    // The job ran on A's contributor, its check on B's.
    expect([runA.jobs, runB.jobs]).toEqual([1, 1]);
    expect(b.routing.counts.slotsLent).toBeGreaterThanOrEqual(1);

    const jobs = await until('both jobs done in the database', async () => {
      const { rows } = await a.store.db.query<{ id: string; contributor_id: string; prompt_tokens: number; replica_id: string }>(
        `SELECT id, contributor_id, prompt_tokens, replica_id FROM jobs WHERE state = 'done' ORDER BY created_at`,
      );
      return rows.length === 2 ? rows : undefined;
    });
    const primary = jobs.find((j) => j.id === checks[0]?.jobId);
    const check = jobs.find((j) => j.id === checks[0]?.replicaJobId);
    expect(primary?.contributor_id).toBe(onA);
    expect(check?.contributor_id).toBe(onB);
    expect(jobs.map((j) => j.replica_id)).toEqual(['a', 'a']); // both A's jobs
    const verdict = await until('the verdict applied', async () => {
      const { rows } = await a.store.db.query<{ status: string }>('SELECT status FROM verification_jobs WHERE job_id = $1', [primary?.id]);
      return rows[0]?.status === 'settle' ? rows[0] : undefined;
    });
    expect(verdict.status).toBe('settle');

    // tiny-embed: 1,000 nanoTON per input token, 10% commission (prices.json).
    const tokens = Number(primary?.prompt_tokens);
    expect(tokens).toBeGreaterThan(0);
    expect(Number(check?.prompt_tokens)).toBe(tokens); // the same request, sealed twice
    const gross = BigInt(tokens) * 1_000n;
    const share = gross - gross / 10n;
    const read = async () => ({
      requester: await ledger.payerBalances({ kind: 'requester', apiKeyId: key.id }),
      budget: await ledger.payerBalances({ kind: 'budget' }),
      a: (await ledger.balances(walletA)).pending,
      b: (await ledger.balances(walletB)).pending,
    });
    const want = {
      requester: { available: 10_000_000n - gross, reserved: 0n },
      budget: { available: 10_000_000n - gross, reserved: 0n },
      a: share,
      b: share,
    };
    await until('both charges', async () => ((await read()).b === share && (await read()).a === share ? true : undefined));
    await Promise.all([a.money.idle(), b.money.idle()]);
    expect(await read()).toEqual(want);

    // Once: a second verdict is refused on either replica, and nothing moves.
    for (const r of [a, b]) {
      const again = await fetch(`${r.url}/v1/jobs/${primary?.id}/verdict`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ stage: 'replica', replicaJobId: check?.id, agree: false, score: 0, reason: 'again' }),
      });
      expect(again.status).toBeGreaterThanOrEqual(400);
    }
    await Promise.all([a.money.idle(), b.money.idle(), a.verification.idle()]);
    expect(await read()).toEqual(want);
    expect((await checkBooks(a.store.db)).problems).toEqual([]);
  });

  it('sends a canary to a device of the other replica that ran a job, and pays it once', { timeout: 120_000 }, async () => {
    // The canary comes ~1.5 s after the job, when C holds nothing of D's device any more.
    const schema = uniqueSchema('canaries');
    const c = await replica(schema, 'c', { canaryRate: 1, replicationRate: 0, canaryDelayMs: 1_500 });
    const d = await replica(schema, 'd', { canaryRate: 1, replicationRate: 0, canaryDelayMs: 1_500 });
    await until('the replicas to hear each other', () =>
      c.routing.peers.includes('d') && d.routing.peers.includes('c') ? true : undefined,
    );
    const ledger = new Ledger(c.store.db);
    const key = await c.coordinator.createApiKey('canaried');
    await ledger.deposit({ lt: 3n, hash: 'c3'.repeat(32), amount: 10_000_000n, to: { kind: 'requester', apiKeyId: key.id }, note: 't' });
    const budgetBefore = (await ledger.payerBalances({ kind: 'budget' })).available;
    await ledger.deposit({ lt: 4n, hash: 'd4'.repeat(32), amount: 10_000_000n, to: { kind: 'budget' }, note: 't' });
    await c.money.billing.refreshBudget();
    const wallet = testWallet('device on d').address;
    const pendingBefore = (await ledger.balances(wallet)).pending;
    const runD = new EmbedRuntime();
    const onD = await contributor(d, runD, wallet);

    const requester = new RequesterClient({ coordinatorUrl: c.url, apiKey: key.secret, checkReplicas: false });
    const text = 'a job whose device gets a canary through its replica';
    const result = await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] });
    if (result.kind !== 'embed') throw new Error(`expected an embedding, got ${result.kind}`);
    await requester.idle();
    await until('C to let go of D’s device', () => (c.routing.holding === 0 ? true : undefined));
    const passed = await until('the canary’s finding', async () => {
      const { rows } = await c.store.db.query<{ job_id: string }>(
        `SELECT job_id FROM verification_records WHERE contributor_id = $1 AND kind = 'canary-pass'`,
        [onD],
      );
      return rows[0];
    });
    expect(runD.jobs).toBe(2); // the job and its canary, both on D's device
    const jobs = await until('both jobs done in the database', async () => {
      const { rows } = await c.store.db.query<{ id: string; api_key_id: string; prompt_tokens: number; contributor_id: string }>(
        `SELECT id, api_key_id, prompt_tokens, contributor_id FROM jobs WHERE replica_id = 'c' AND state = 'done'`,
      );
      return rows.length === 2 ? rows : undefined;
    });
    const primary = jobs.find((j) => j.api_key_id === key.id);
    const canary = jobs.find((j) => j.id === passed.job_id);
    expect(primary?.contributor_id).toBe(onD);
    expect(canary?.contributor_id).toBe(onD);
    const gross = (tokens: number | undefined): bigint => BigInt(Number(tokens)) * 1_000n;
    const share = (g: bigint): bigint => g - g / 10n;
    const want = {
      requester: { available: 10_000_000n - gross(primary?.prompt_tokens), reserved: 0n },
      budget: budgetBefore + 10_000_000n - gross(canary?.prompt_tokens),
      pending: pendingBefore + share(gross(primary?.prompt_tokens)) + share(gross(canary?.prompt_tokens)),
    };
    const read = async () => ({
      requester: await ledger.payerBalances({ kind: 'requester', apiKeyId: key.id }),
      budget: (await ledger.payerBalances({ kind: 'budget' })).available,
      pending: (await ledger.balances(wallet)).pending,
    });
    await until('both charges', async () => ((await read()).pending === want.pending ? true : undefined));
    await Promise.all([c.money.idle(), d.money.idle(), c.verification.idle()]);
    expect(await read()).toEqual(want);
    expect((await checkBooks(c.store.db)).problems).toEqual([]);
  });
});
