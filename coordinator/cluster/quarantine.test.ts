/**
 * Quarantine across replicas, on real PostgreSQL and NATS with the real billing, ledger and
 * earnings: a device on replica A that lies fails its canary and is quarantined there, with its
 * wallet. Another device of the same wallet that connects to replica B must then get no work
 * and earn nothing there either: the quarantine is in PostgreSQL, and a word on NATS makes every
 * replica read it at once.
 */
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { RequesterClient } from '../../requester/client.ts';
import { paidReplica, type PaidReplica, ReplicaKit, startContributor, until, walletContributor } from '../../testing/cluster.ts';
import { EmbedRuntime } from '../../testing/verification.ts';
import { MemoryKeyStore } from '../../worker/network/identity.ts';
import { checkBooks } from '../ledger/books.ts';
import { Ledger } from '../ledger/ledger.ts';
import { uniqueSchema } from '../store/testing.ts';
import { testWallet } from '../wallets/test-wallet.ts';

const kit = new ReplicaKit();
afterAll(() => kit.dispose());
/** `deaf`: a replica that missed the word (its NATS connection was down): only the database can stop its credits. */
const OPERATOR = 'operator-token-for-the-quarantines-0';
const replica = (
  schema: string,
  id: string,
  checks: { canaryRate: number; replicationRate: number; canaryDelayMs?: number; quarantineAfter?: number; deaf?: boolean },
) => paidReplica(kit, schema, id, { ...checks, policy: { deaf: checks.deaf === true } }, { operatorToken: OPERATOR });
const contributor = (r: PaidReplica, runtime: EmbedRuntime, wallet: string) => walletContributor(kit, r, runtime, wallet);

/** A device that reconnects with `wallet` already on its record, so the replica binds it at `hello`, as after a wallet link. */
const boundContributor = async (r: PaidReplica, runtime: EmbedRuntime, wallet: string): Promise<{ id: string; stop: () => void }> => {
  const keys = new MemoryKeyStore();
  const first = await startContributor(kit, r.url, runtime, keys);
  const id = await until('the device to connect', () => first.status().contributorId ?? undefined);
  await until('the device record', async () => {
    const { rows } = await r.store.db.query('UPDATE contributors SET wallet = $1 WHERE id = $2 RETURNING id', [wallet, id]);
    return rows.length === 1 ? true : undefined;
  });
  await first.stop({ drain: false });
  const again = await startContributor(kit, r.url, runtime, keys);
  await until('the device to connect again', () => (again.status().contributorId === id ? true : undefined));
  return { id, stop: () => void again.stop({ drain: false }) };
};

describe('quarantine across replicas', () => {
  it('a wallet quarantined on one replica gets no work and no credit on another', { timeout: 120_000 }, async () => {
    const schema = uniqueSchema('quarantine');
    const a = await replica(schema, 'a', { canaryRate: 1, replicationRate: 0, quarantineAfter: 1 });
    const b = await replica(schema, 'b', { canaryRate: 0, replicationRate: 0, quarantineAfter: 1 });
    await until('the replicas to hear each other', () =>
      a.routing.peers.includes('b') && b.routing.peers.includes('a') ? true : undefined,
    );
    const ledger = new Ledger(a.store.db);
    const [keyA, keyB] = [await a.coordinator.createApiKey('on a'), await b.coordinator.createApiKey('on b')];
    await ledger.deposit({ lt: 1n, hash: 'a1'.repeat(32), amount: 10_000_000n, to: { kind: 'requester', apiKeyId: keyA.id }, note: 't' });
    await ledger.deposit({ lt: 2n, hash: 'b2'.repeat(32), amount: 10_000_000n, to: { kind: 'requester', apiKeyId: keyB.id }, note: 't' });
    await ledger.deposit({ lt: 3n, hash: 'c3'.repeat(32), amount: 10_000_000n, to: { kind: 'budget' }, note: 't' });
    await a.money.billing.refreshBudget();
    await b.money.billing.refreshBudget();
    const wallet = testWallet('a wallet that lies').address;

    // On A: a device of the wallet lies, fails its canary and is quarantined with its wallet.
    const liar = new EmbedRuntime({ lieRate: 1 });
    const onA = await contributor(a, liar, wallet);
    const requesterA = new RequesterClient({ coordinatorUrl: a.url, apiKey: keyA.secret, checkReplicas: false });
    await requesterA.run({ kind: 'embed', model: 'tiny-embed', inputs: ['a lie its canary catches'] });
    await requesterA.idle();
    await until('the wallet’s quarantine', async () => {
      const { rows } = await a.store.db.query('SELECT 1 FROM verification_quarantines WHERE contributor_id = $1', [`wallet:${wallet}`]);
      return rows.length === 1 ? true : undefined;
    });
    await Promise.all([a.verification.idle(), a.money.idle()]);
    expect(liar.jobs).toBe(2); // the job and its canary

    // On B: another device of the same wallet, honest this time, connects; a requester of B asks for a job.
    const honest = new EmbedRuntime();
    const onB = await boundContributor(b, honest, wallet);
    expect(onB.id).not.toBe(onA);
    const requesterB = new RequesterClient({ coordinatorUrl: b.url, apiKey: keyB.secret, checkReplicas: false });
    const abort = new AbortController();
    const waiting = requesterB.run(
      { kind: 'embed', model: 'tiny-embed', inputs: ['work for a quarantined wallet'] },
      { signal: abort.signal },
    );
    const outcome = waiting.then(
      () => 'ran',
      () => 'refused',
    );
    const jobOnB = await until('B to hold the job', async () => {
      const { rows } = await b.store.db.query<{ id: string }>(`SELECT id FROM jobs WHERE api_key_id = $1`, [keyB.id]);
      return rows[0]?.id;
    });
    // Long enough for a scheduling pass and a claim on A to have placed it anywhere it may go.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(honest.jobs).toBe(0);
    abort.abort();
    expect(await outcome).toBe('refused');
    await requesterB.idle();
    // The requester gives up on it: cancelled, its reservation goes back.
    const cancel = await fetch(`${b.url}/v1/jobs/${jobOnB}`, { method: 'DELETE', headers: { authorization: `Bearer ${keyB.secret}` } });
    expect(cancel.status).toBeLessThan(500);
    await until('the reservation back', async () =>
      (await ledger.payerBalances({ kind: 'requester', apiKeyId: keyB.id })).reserved === 0n ? true : undefined,
    );
    expect(honest.jobs).toBe(0);
    await Promise.all([a.money.idle(), b.money.idle(), a.verification.idle(), b.verification.idle()]);

    const { rows: charged } = await a.store.db.query<{ prompt_tokens: number }>(
      `SELECT prompt_tokens FROM jobs WHERE api_key_id = $1 AND state = 'done'`,
      [keyA.id],
    );
    expect(charged).toHaveLength(1);
    const gross = BigInt(Number(charged[0]?.prompt_tokens)) * 1_000n; // tiny-embed: 1,000 nanoTON per input token
    expect(gross).toBeGreaterThan(0n);
    // The requester paid for the job it got; the lie's credit was taken back, so the wallet has nothing.
    expect(await ledger.payerBalances({ kind: 'requester', apiKeyId: keyA.id })).toEqual({ available: 10_000_000n - gross, reserved: 0n });
    expect(await ledger.balances(wallet)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: 0n });
    expect(await ledger.payerBalances({ kind: 'requester', apiKeyId: keyB.id })).toEqual({ available: 10_000_000n, reserved: 0n });
    expect((await checkBooks(a.store.db)).problems).toEqual([]);
  });
  it('a credit earned on a replica that missed the word does not settle once the wallet is quarantined', { timeout: 120_000 }, async () => {
    const schema = uniqueSchema('quarantine_deaf');
    const c = await replica(schema, 'c', { canaryRate: 1, replicationRate: 0, quarantineAfter: 1 });
    const d = await replica(schema, 'd', { canaryRate: 0, replicationRate: 0, quarantineAfter: 1, deaf: true });
    await until('the replicas to hear each other', () =>
      c.routing.peers.includes('d') && d.routing.peers.includes('c') ? true : undefined,
    );
    const ledger = new Ledger(c.store.db);
    const [keyC, keyD] = [await c.coordinator.createApiKey('on c'), await d.coordinator.createApiKey('on d')];
    await ledger.deposit({ lt: 1n, hash: 'a1'.repeat(32), amount: 10_000_000n, to: { kind: 'requester', apiKeyId: keyC.id }, note: 't' });
    await ledger.deposit({ lt: 2n, hash: 'b2'.repeat(32), amount: 10_000_000n, to: { kind: 'requester', apiKeyId: keyD.id }, note: 't' });
    await ledger.deposit({ lt: 3n, hash: 'c3'.repeat(32), amount: 10_000_000n, to: { kind: 'budget' }, note: 't' });
    await c.money.billing.refreshBudget();
    await d.money.billing.refreshBudget();
    const wallet = testWallet('a wallet that lies, again').address;
    await contributor(c, new EmbedRuntime({ lieRate: 1 }), wallet);
    await new RequesterClient({ coordinatorUrl: c.url, apiKey: keyC.secret, checkReplicas: false }).run({
      kind: 'embed',
      model: 'tiny-embed',
      inputs: ['a lie its canary catches'],
    });
    await until('the wallet’s quarantine', async () => {
      const { rows } = await c.store.db.query('SELECT 1 FROM verification_quarantines WHERE contributor_id = $1', [`wallet:${wallet}`]);
      return rows.length === 1 ? true : undefined;
    });

    // D never heard: the wallet's other device still gets a job there, and its credit lands as pending.
    const honest = new EmbedRuntime();
    await boundContributor(d, honest, wallet);
    await new RequesterClient({ coordinatorUrl: d.url, apiKey: keyD.secret, checkReplicas: false }).run({
      kind: 'embed',
      model: 'tiny-embed',
      inputs: ['work on a replica that missed the word'],
    });
    expect(honest.jobs).toBe(1);
    const job = await until('the job done in the database', async () => {
      const { rows } = await d.store.db.query<{ id: string; prompt_tokens: number }>(
        `SELECT id, prompt_tokens FROM jobs WHERE api_key_id = $1 AND state = 'done'`,
        [keyD.id],
      );
      return rows[0];
    });
    const gross = BigInt(Number(job.prompt_tokens)) * 1_000n;
    await until('the job recorded', async () => {
      const { rows: recorded } = await d.store.db.query('SELECT 1 FROM verification_jobs WHERE job_id = $1', [job.id]);
      return recorded.length === 1 ? true : undefined;
    });
    await Promise.all([d.verification.idle(), d.money.idle()]);

    // D asks the database, not its memory: the credit is voided (when it lands, or at the end of its window at the latest).
    expect(await d.verification.isVerified(job.id)).toBe('void');
    await d.store.db.query('UPDATE earnings_jobs SET due_at = 0 WHERE job_id = $1', [job.id]); // its window ends now
    expect(await d.money.earnings.settleDue()).toMatchObject({ settled: 0 });
    expect(await ledger.balances(wallet)).toEqual({ pending: 0n, settled: 0n, inFlight: 0n, paid: 0n });
    expect(await ledger.payerBalances({ kind: 'requester', apiKeyId: keyD.id })).toEqual({ available: 10_000_000n - gross, reserved: 0n });
    expect((await checkBooks(c.store.db)).problems).toEqual([]);
  });

  it(
    'an operator lifts a wallet’s quarantine on one replica: recorded, its device gets jobs on another, voided credit stays voided',
    { timeout: 120_000 },
    async () => {
      const schema = uniqueSchema('quarantine_lift');
      const a = await replica(schema, 'e', { canaryRate: 1, replicationRate: 0, quarantineAfter: 1 });
      const b = await replica(schema, 'f', { canaryRate: 0, replicationRate: 0, quarantineAfter: 1 });
      await until('the replicas to hear each other', () =>
        a.routing.peers.includes('f') && b.routing.peers.includes('e') ? true : undefined,
      );
      const ledger = new Ledger(a.store.db);
      const [keyA, keyB] = [await a.coordinator.createApiKey('on e'), await b.coordinator.createApiKey('on f')];
      await ledger.deposit({ lt: 1n, hash: 'a1'.repeat(32), amount: 10_000_000n, to: { kind: 'requester', apiKeyId: keyA.id }, note: 't' });
      await ledger.deposit({ lt: 2n, hash: 'b2'.repeat(32), amount: 10_000_000n, to: { kind: 'requester', apiKeyId: keyB.id }, note: 't' });
      await ledger.deposit({ lt: 3n, hash: 'c3'.repeat(32), amount: 10_000_000n, to: { kind: 'budget' }, note: 't' });
      await a.money.billing.refreshBudget();
      await b.money.billing.refreshBudget();
      const wallet = testWallet('a wallet lifted by the operator').address;
      const liarId = await contributor(a, new EmbedRuntime({ lieRate: 1 }), wallet);
      await new RequesterClient({ coordinatorUrl: a.url, apiKey: keyA.secret, checkReplicas: false }).run({
        kind: 'embed',
        model: 'tiny-embed',
        inputs: ['a lie its canary catches'],
      });
      await until('the wallet’s quarantine', async () => {
        const { rows } = await a.store.db.query('SELECT 1 FROM verification_quarantines WHERE contributor_id = $1', [`wallet:${wallet}`]);
        return rows.length === 1 ? true : undefined;
      });
      await Promise.all([a.verification.idle(), a.money.idle()]);
      const voided = await a.store.db.query<{ job_id: string; state: string }>(
        'SELECT job_id, state FROM earnings_jobs WHERE wallet = $1 ORDER BY job_id',
        [wallet],
      );
      // The job's credit and its canary's: both voided.
      expect(voided.rows.length).toBeGreaterThan(0);
      expect(voided.rows.every((r) => r.state === 'voided')).toBe(true);
      const penalties = await ledger.accountBalance('network:penalties');

      // The operator routes: the operator token only.
      const list = (token?: string) =>
        fetch(`${b.url}/v1/operator/quarantines`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
      expect((await list()).status).toBe(401);
      expect((await list(keyB.secret)).status).toBe(401);
      const lift = (token: string | undefined, body: unknown) =>
        fetch(`${a.url}/v1/operator/quarantines/lift`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token !== undefined && { authorization: `Bearer ${token}` }) },
          body: JSON.stringify(body),
        });
      const liftBody = { id: `wallet:${wallet}`, by: 'alice', reason: 'the canary answer was wrong' };
      expect((await lift(undefined, liftBody)).status).toBe(401);
      expect((await lift(keyA.secret, liftBody)).status).toBe(401);
      expect((await lift(OPERATOR, { ...liftBody, reason: '' })).status).toBe(400);
      // Hostile input, typed before any SQL: NUL bytes, ids off the protocol's patterns, a huge body, one never quarantined.
      for (const hostile of [
        { ...liftBody, reason: 'a\u0000b' },
        { ...liftBody, by: 'x\u0000' },
        { ...liftBody, id: 'dev\u0000ice' },
        { ...liftBody, id: `wallet:${'a'.repeat(101)}` },
        { ...liftBody, id: 'a'.repeat(65) },
        { ...liftBody, extra: 1 },
      ]) {
        const refused = await lift(OPERATOR, hostile);
        expect(refused.status, JSON.stringify(hostile)).toBe(400);
        expect(await refused.json()).toMatchObject({ error: { code: 'BAD_MESSAGE' } });
      }
      expect((await lift(OPERATOR, { ...liftBody, reason: 'x'.repeat(5_000) })).status).toBe(413);
      const unknown = await lift(OPERATOR, { ...liftBody, id: 'never-quarantined-device' });
      expect(unknown.status).toBe(404);
      expect(await unknown.json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
      const listed = (await (await list(OPERATOR)).json()) as { quarantines: { id: string }[] };
      expect(listed.quarantines.map((q) => q.id).sort()).toEqual([liarId, `wallet:${wallet}`].sort());

      // B shuts the wallet's honest device out: a job of B's requester waits.
      const honest = new EmbedRuntime();
      await boundContributor(b, honest, wallet);
      const requesterB = new RequesterClient({ coordinatorUrl: b.url, apiKey: keyB.secret, checkReplicas: false });
      const text = 'work once the quarantine is lifted';
      const waiting = requesterB.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] });
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(honest.jobs).toBe(0);

      // The operator lifts the wallet's quarantine through A, with the command.
      const cli = await command(['lift', `wallet:${wallet}`, '--reason', 'the canary answer was wrong', '--by', 'alice', '--url', a.url]);
      expect(cli.stderr).toBe('');
      expect(cli.stdout).toMatch(
        new RegExp(`^lifted wallet:${wallet} at \\d{4}-\\d\\d-\\d\\dT\\S+ by alice: the canary answer was wrong\n$`),
      );
      expect(cli.status).toBe(0);
      expect((await lift(OPERATOR, liftBody)).status).toBe(404); // lifted already

      // B hears it: the waiting job runs on the wallet's honest device.
      const result = await waiting;
      expect(result.kind).toBe('embed');
      expect(honest.jobs).toBe(1);
      const after = (await (await list(OPERATOR)).json()) as { quarantines: { id: string }[]; lifts: unknown[] };
      expect(after.quarantines.map((q) => q.id)).toEqual([liarId]); // the lying device itself stays shut out
      expect(after.lifts).toEqual([
        expect.objectContaining({ id: `wallet:${wallet}`, liftedBy: 'alice', reason: 'the canary answer was wrong' }),
      ]);

      // Money stays as judged: the lie's credit stays voided, the penalty stays, the new job earns.
      await Promise.all([b.verification.idle(), b.money.idle()]);
      const earned = await until('the honest job’s credit', async () => {
        const { rows } = await b.store.db.query<{ job_id: string; state: string }>(
          'SELECT job_id, state FROM earnings_jobs WHERE wallet = $1 ORDER BY job_id',
          [wallet],
        );
        return rows.length > voided.rows.length ? rows : undefined;
      });
      expect(earned.filter((r) => r.state === 'voided')).toEqual(voided.rows);
      expect(earned.filter((r) => r.state !== 'voided').map((r) => r.state)).toEqual(['pending']);
      expect(await ledger.accountBalance('network:penalties')).toBe(penalties);
      expect((await ledger.balances(wallet)).pending).toBeGreaterThan(0n);
      expect((await checkBooks(a.store.db)).problems).toEqual([]);
    },
  );
});

/** `spinneret coordinator quarantines …` as an operator runs it, with the operator token in its environment. */
function command(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/spinneret.js', 'coordinator', 'quarantines', ...args], {
      env: { PATH: process.env['PATH'] ?? '', SPINNERET_OPERATOR_TOKEN: OPERATOR },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}
