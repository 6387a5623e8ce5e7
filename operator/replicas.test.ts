/**
 * Three coordinator replicas (`node bin/spinneret.js coordinator`, child processes) on one
 * fresh PostgreSQL schema and NATS, as an operator runs them (docs/operating.md, "Replicas"):
 *
 * 1. jobs cross replicas: the requester is on r2, which has no contributor; contributors are on
 *    r1 and r3; every result is checked against the float64 reference;
 * 2. the singletons run on r1 (whichever replica took the lock first) and pay the contributors;
 * 3. r1 is killed with SIGKILL while it holds the singleton lock, a contributor running one of
 *    r2's jobs, and a job of its own: r2's job is re-leased to r3's contributor and every r2 job
 *    answers once and correctly; another replica takes the lock and payouts go on; r1's own job
 *    is failed `RESTARTED` and its reservation released; the ledger's books balance.
 *
 * Verification is on throughout, as an operator runs it: canaries, and replicas of the
 * requester's jobs compared by its SDK, placed across replicas and judged clean.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { checkBooks } from '../coordinator/ledger/books.ts';
import { openStore } from '../coordinator/store/index.ts';
import { TEST_DATABASE_URL, uniqueSchema } from '../coordinator/store/testing.ts';
import { disposeStore, EmbedRuntime, testWallet } from '../testing/verification.ts';
import { referenceEmbed } from '../modelhost/reference.ts';
import { startModelHost } from '../modelhost/server.ts';
import { RequesterClient } from '../requester/client.ts';
import { Contributor } from '../worker/network/contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../worker/network/identity.ts';
import type { LocalKeys } from './wiring.ts';

const NATS_URL = process.env['TEST_NATS_URL'] ?? 'nats://127.0.0.1:4222';
const dir = mkdtempSync(join(tmpdir(), 'spinneret-replicas-'));

/** A replica's stdout, one JSON line each. */
class Replica {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  readonly exited: Promise<number | null>;
  constructor(
    readonly id: string,
    readonly process: ChildProcess,
  ) {
    if (process.stdout === null) throw new Error('no stdout');
    createInterface({ input: process.stdout }).on('line', (line) => {
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    });
    process.stderr?.on('data', (data: Buffer) => this.raw.push(`stderr: ${data.toString()}`));
    this.exited = new Promise((resolve) => process.once('exit', (code) => resolve(code)));
  }
  has(msg: string): Record<string, unknown> | undefined {
    return this.lines.find((l) => l['msg'] === msg);
  }
  async waitFor(msg: string, timeoutMs = 90_000): Promise<Record<string, unknown>> {
    return until(
      `"${msg}" from ${this.id}`,
      async () => this.has(msg),
      timeoutMs,
      () => this.raw.join('\n'),
    );
  }
}

const until = async <T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 60_000, why = () => ''): Promise<T> => {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${why()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

/**
 * The embedding runtime; while `held` is set, a job whose text starts with one of `gated` waits
 * at the gate (in flight for as long as the test wants). Checks (canaries, replicas of earlier
 * jobs) pass, so they never take the slots the test holds.
 */
class GatedRuntime extends EmbedRuntime {
  readonly texts: string[] = [];
  held: Promise<void> | null = null;
  static readonly gated = ['after the kill', 'a job of r1'];
  override async run(...args: Parameters<EmbedRuntime['run']>): ReturnType<EmbedRuntime['run']> {
    const text = (args[0] as { inputs?: string[] }).inputs?.[0] ?? '';
    this.texts.push(text);
    if (this.held !== null && GatedRuntime.gated.some((g) => text.startsWith(g))) await this.held;
    return super.run(...args);
  }
  ran(prefix: string): number {
    return this.texts.filter((t) => t.startsWith(prefix)).length;
  }
}

const gate = (): { promise: Promise<void>; open: () => void } => {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
};

describe('three coordinator replicas on PostgreSQL and NATS', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  });

  it('run jobs across replicas, survive a SIGKILL of the singleton holder, and keep the books', { timeout: 360_000 }, async () => {
    const t0 = Date.now();
    const phase = (name: string) => console.log(`[replicas] ${name} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const models = await startModelHost({ port: 0 });
    cleanup.push(() => models.close());
    const schema = uniqueSchema('replicas');
    const keysFile = join(dir, 'keys.json');
    const start = (id: string, extra: Record<string, unknown> = {}): Replica => {
      const file = join(dir, `${id}.json`);
      writeFileSync(
        file,
        JSON.stringify({
          listen: { port: 0 },
          database: { url: TEST_DATABASE_URL, schema },
          cluster: { nats: NATS_URL, replicaId: id },
          manifestUrl: models.manifestUrl,
          // Checks on, as an operator runs them, at rates that give this test's dozen jobs canaries and replicas.
          verification: { canaryRate: 0.5, canaryDelay: '1s', replicationRate: 1, minReplicationRate: 1, verdictWindow: '5s' },
          payouts: { verificationWindow: '1s', threshold: '1', interval: '1s', settleInterval: '200ms' },
          deposits: { interval: '500ms' },
          drainTimeout: '2s',
          ...extra,
        }),
      );
      const replica = new Replica(
        id,
        spawn(process.execPath, ['bin/spinneret.js', 'coordinator', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }),
      );
      cleanup.push(async () => {
        replica.process.kill('SIGKILL');
        await replica.exited;
      });
      return replica;
    };
    cleanup.push(async () => disposeStore(await openStore({ databaseUrl: TEST_DATABASE_URL, schema })));

    // All three at once; the first makes and funds the local requester keys.
    const all = [start('ra', { local: { keysFile, fund: '10 TON' } }), start('rb'), start('rc')];
    const urls = new Map<Replica, string>();
    // Generous: three processes start at once (known answers, the sandbox chain) on a loaded machine.
    for (const r of all) urls.set(r, String((await r.waitFor('coordinator listening', 200_000))['url']));
    const keys = JSON.parse(readFileSync(keysFile, 'utf8')) as LocalKeys;
    phase('three replicas listening');
    // r1: whichever took the singleton lock; it gets the contributor that dies with it. r2: the
    // requester's, with no contributor. r3: the other contributor's.
    const r1 = await until('a singleton holder', async () => all.find((r) => r.has('singletons started')));
    const [r2, r3] = all.filter((r) => r !== r1);
    if (r2 === undefined || r3 === undefined) throw new Error('three replicas');
    const [u1, u2, u3] = [r1, r2, r3].map((r) => urls.get(r) ?? '');
    if (u1 === undefined || u2 === undefined || u3 === undefined) throw new Error('three urls');
    expect(all.filter((r) => r.has('singletons started'))).toEqual([r1]);

    const db = await openStore({ databaseUrl: TEST_DATABASE_URL, schema });
    cleanup.push(() => db.close());
    const connect = async (coordinatorUrl: string, runtime: EmbedRuntime, slots: number) => {
      const contributor = new Contributor({
        coordinatorUrl: `${coordinatorUrl.replace(/^http/, 'ws')}/v1/contributor`,
        runtime,
        identity: await loadOrCreateIdentity(new MemoryKeyStore()),
        consent: ['embed'],
        client: { name: 'test', version: '0.0.0' },
        webSocket: WebSocket,
        slots,
      });
      contributor.start();
      cleanup.push(() => contributor.stop({ drain: false }));
      const id = await until('a contributor to connect', async () => contributor.status().contributorId ?? undefined);
      const wallet = testWallet();
      // A payout wallet, as a proven wallet link leaves it.
      await until('the contributor record', async () => {
        const { rows } = await db.db.query('UPDATE contributors SET wallet = $1 WHERE id = $2 RETURNING id', [wallet, id]);
        return rows.length === 1 ? true : undefined;
      });
      return { contributor, id, wallet };
    };
    const run1 = new GatedRuntime();
    const run3 = new GatedRuntime();
    const c1 = await connect(u1, run1, 2);
    const c3 = await connect(u3, run3, 1);

    const embedOn = (requester: RequesterClient, text: string) =>
      requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] }).then((result) => {
        if (result.kind !== 'embed') throw new Error(`expected an embedding, got ${result.kind}`);
        const expected = referenceEmbed([text])[0] ?? [];
        expect(result.embeddings[0]?.length).toBe(expected.length);
        result.embeddings[0]?.forEach((x, i) => expect(Math.abs(x - (expected[i] ?? NaN))).toBeLessThan(1e-6));
        return result;
      });

    phase('contributors connected');
    // 1. Jobs cross replicas: r2 has no contributor, so every one of its jobs runs on r1's or r3's.
    // The requester's own jobs, as their creation answered (checks of them are jobs too, and are not among them).
    const created: string[] = [];
    const recording: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const path = new URL(input instanceof Request ? input.url : input.toString()).pathname;
      if (init?.method === 'POST' && path === '/v1/jobs' && response.ok)
        created.push(((await response.clone().json()) as { jobId: string }).jobId);
      return response;
    };
    // Replicas checked as the SDK does by default: a share of jobs also runs on the other contributor and is compared.
    const onR2 = new RequesterClient({ coordinatorUrl: u2, apiKey: keys.demo.secret, fetch: recording });
    const texts = Array.from({ length: 6 }, (_, i) => `cross-replica job ${i}`);
    await Promise.all(texts.map((text) => embedOn(onR2, text)));
    expect(created).toHaveLength(6);
    // Job rows are group-committed: wait for the writes.
    const crossed = await until('six done jobs in the database', async () => {
      const found = await db.db.query<{ id: string; replica_id: string; contributor_id: string }>(
        `SELECT id, replica_id, contributor_id FROM jobs WHERE state = 'done' AND id = ANY($1::text[])`,
        [created],
      );
      return found.rows.length === 6 ? found : undefined;
    });
    for (const row of crossed.rows) {
      expect(row.replica_id).toBe(r2.id);
      expect([c1.id, c3.id]).toContain(row.contributor_id);
    }

    phase('six jobs crossed replicas');
    // Reports are read from the database on any replica: the SDK reported each job on r2 (opened),
    // and r3 knows the job and that report (one per job, whichever replica takes it).
    const reported = crossed.rows[0]?.id ?? '';
    const report = await until('r3 to see the report taken on r2', async () => {
      const response = await fetch(`${u3}/v1/jobs/${reported}/report`, {
        method: 'POST',
        headers: { authorization: `Bearer ${keys.demo.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ opened: true }),
      });
      const body = (await response.json()) as { error?: { code: string; message: string } };
      return response.status === 409 ? body : undefined;
    });
    expect(report.error?.message).toContain('reported already');
    const stranger = await fetch(`${u3}/v1/jobs/${reported}/report`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.gateway.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ opened: false }),
    });
    expect(stranger.status).toBe(404); // another key's job, on any replica
    // 2. The singleton holder (r1) settles and pays.
    const paid = async (wallet: string): Promise<bigint> => {
      const summary = (await (await fetch(`${u2}/v1/earnings/${wallet}`)).json()) as { balances: { paid: string } };
      return BigInt(summary.balances.paid);
    };
    await until('a payout by r1', async () => ((await paid(c1.wallet)) + (await paid(c3.wallet)) > 0n ? true : undefined));

    // 3. Hold both contributors: r1's own job and one of r2's land on r1's contributor, one of r2's on r3's.
    const hold1 = gate();
    const hold3 = gate();
    run1.held = hold1.promise;
    run3.held = hold3.promise;
    const onR1 = new RequesterClient({ coordinatorUrl: u1, apiKey: keys.gateway.secret, checkReplicas: false });
    const orphan = onR1.run({ kind: 'embed', model: 'tiny-embed', inputs: ['a job of r1'] }).then(
      () => 'answered',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    await until("r1's own job on its contributor", async () => (run1.ran('a job of r1') > 0 ? true : undefined));
    const second = Array.from({ length: 5 }, (_, i) => `after the kill ${i}`);
    const results = second.map((text) => embedOn(onR2, text));
    await until('jobs of r2 on both contributors', async () =>
      run1.ran('after the kill') > 0 && run3.ran('after the kill') > 0 ? true : undefined,
    );
    const secondIds = await until("r2's five jobs created", async () => (created.length === 11 ? created.slice(6) : undefined));
    const paidBefore = await paid(c3.wallet);

    phase('paid by r1; jobs held; killing r1');
    r1.process.kill('SIGKILL');
    await r1.exited;
    hold3.open();
    run3.held = null;
    // Every r2 job answers once, with the right numbers: the one on r1's contributor was re-leased.
    await Promise.all(results);
    phase("r2's jobs answered after the kill");
    const rerun = await until('the re-leased job in the database', async () => {
      const found = await db.db.query<{ contributor_id: string }>(
        `SELECT contributor_id FROM jobs WHERE replica_id = $1 AND state = 'done' AND attempt > 1 AND id = ANY($2::text[])`,
        [r2.id, secondIds],
      );
      return found.rows.length >= 1 ? found : undefined;
    });
    for (const row of rerun.rows) expect(row.contributor_id).toBe(c3.id);

    // Another replica holds the singletons now, fails r1's own job and pays the work done since.
    const next = await until('another singleton holder', async () => [r2, r3].find((r) => r.has('singletons started')));
    expect([r2, r3].filter((r) => r.has('singletons started')).length).toBe(1);
    const restarted = await until("r1's job failed RESTARTED", async () => {
      const { rows } = await db.db.query<{ id: string; error: string }>(`SELECT id, error FROM jobs WHERE replica_id = $1`, [r1.id]);
      return rows.length === 1 && rows[0]?.error?.startsWith('RESTARTED') === true ? rows[0] : undefined;
    });
    await until("r1's job's reservation released", async () => {
      const { rows } = await db.db.query<{ state: string }>('SELECT state FROM job_billing WHERE job_id = $1', [restarted.id]);
      return rows[0]?.state === 'released' ? true : undefined;
    });
    expect(await orphan).not.toBe('answered');
    await until(`a payout by ${next.id}`, async () => ((await paid(c3.wallet)) > paidBefore ? true : undefined));
    hold1.open();
    phase(`paid by ${next.id}`);

    // The figures say so too: the new holder's singleton gauge, r2's results from other replicas.
    const metric = async (url: string, name: string) => {
      const families = parsePrometheusTextFormat(await (await fetch(`${url}/metrics`)).text());
      return Number(families.find((f) => f.name === name)?.metrics[0]?.value ?? NaN);
    };
    expect(await metric(next === r2 ? u2 : u3, 'spinneret_cluster_singletons')).toBe(1);
    expect(await metric(next === r2 ? u3 : u2, 'spinneret_cluster_singletons')).toBe(0);
    expect(await metric(u2, 'spinneret_cluster_remote_results_total')).toBeGreaterThanOrEqual(11);
    expect(await metric(u2, 'spinneret_cluster_peers')).toBe(1);

    // No r2 job failed; the books balance (nothing lost, nothing paid twice). A check whose only
    // other device died with r1 may end unrun: it is the network's, and no requester's job.
    const done = await until('every r2 job written done', async () => {
      const found = await db.db.query<{ id: string; state: string }>(`SELECT id, state FROM jobs WHERE id = ANY($1::text[])`, [created]);
      return found.rows.length === created.length && found.rows.every((r) => r.state === 'done') ? found : undefined;
    });
    expect(done.rows).toHaveLength(11);
    // The checks ran: canaries and replicas of the requester's jobs, judged (none failed: every device is honest).
    const checks = await db.db.query<{ role: string; status: string }>(`SELECT role, status FROM verification_jobs WHERE role <> 'job'`);
    const count = (role: string): number => checks.rows.filter((r) => r.role === role).length;
    phase(`checks run: ${count('canary')} canaries, ${count('replica')} replicas, ${count('tie-break')} tie-breaks`);
    expect(checks.rows.some((r) => r.role === 'canary')).toBe(true);
    expect(checks.rows.some((r) => r.role === 'replica')).toBe(true);
    expect(checks.rows.filter((r) => r.status === 'void')).toEqual([]);
    const quarantined = await db.db.query(`SELECT contributor_id FROM verification_quarantines`);
    expect(quarantined.rows).toEqual([]);
    const books = await checkBooks(db.db);
    expect(books.problems).toEqual([]);
    expect(books.ok).toBe(true);
    for (const r of [r2, r3]) r.process.kill('SIGTERM');
    expect(await Promise.all([r2.exited, r3.exited])).toEqual([0, 0]);
  });
});
