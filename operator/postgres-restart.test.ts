/**
 * The coordinator's PostgreSQL stops under load and comes back (a temporary cluster of this
 * test's own: `initdb`, `pg_ctl stop`, `pg_ctl start`; never the shared server). The coordinator
 * (the operator's wiring, money on the sandbox chain) keeps running: while the database is down
 * a request that needs it gets a typed `503 UNAVAILABLE` at once (no 500, no hang) and `/readyz`
 * says why; jobs that were running finish and their requester gets the answers; their records
 * wait in the job write buffer (`spinneret_job_records_buffered`) and their charges are
 * retried. When the database is back the pool reconnects, the records and charges are written
 * once, and new jobs run. The books balance and the requester paid exactly for its answers.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { checkBooks } from '../coordinator/ledger/books.ts';
import { openStore } from '../coordinator/store/index.ts';
import { EmbedRuntime } from '../testing/verification.ts';
import { referenceEmbed } from '../modelhost/reference.ts';
import { startModelHost } from '../modelhost/server.ts';
import { RequesterClient } from '../requester/client.ts';
import { Contributor } from '../worker/network/contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../worker/network/identity.ts';
import { loadCoordinatorConfig } from './config.ts';
import { createLog } from './log.ts';
import { startCoordinatorNode } from './wiring.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** PostgreSQL's server binaries: on PATH (/usr/local/bin) or Debian's versioned folder. */
function pgBin(name: string): string {
  for (const dir of [
    '/usr/local/bin',
    ...(existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').map((v) => `/usr/lib/postgresql/${v}/bin`) : []),
  ]) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`PostgreSQL's ${name} was not found (install the server package)`);
}

/** A throwaway cluster on its own port and socket folder; as the postgres user when run as root. */
class TempCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'spinneret-pg-'));
  readonly data = join(this.dir, 'data');
  constructor(readonly port: number) {}
  private pg(tool: string, args: string[]): void {
    const root = process.getuid?.() === 0;
    const [cmd, argv] = root ? ['runuser', ['-u', 'postgres', '--', pgBin(tool), ...args]] : [pgBin(tool), args];
    execFileSync(cmd, argv, { stdio: 'pipe', timeout: 120_000 });
  }
  init(): void {
    if (process.getuid?.() === 0) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      chownSync(this.dir, uid, uid);
    }
    this.pg('initdb', ['-D', this.data, '-A', 'trust', '-U', 'postgres', '--no-sync', '--no-instructions']);
  }
  start(): void {
    this.pg('pg_ctl', [
      '-D',
      this.data,
      '-l',
      join(this.dir, 'log'),
      '-w',
      '-t',
      '60',
      '-o',
      `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      'start',
    ]);
  }
  stop(): void {
    this.pg('pg_ctl', ['-D', this.data, '-m', 'fast', '-w', '-t', '60', 'stop']);
  }
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Jobs wait at the gate while it is shut: they are running when the database goes. */
class GatedRuntime extends EmbedRuntime {
  started = 0;
  gate: Promise<void> | null = null;
  override async run(...args: Parameters<EmbedRuntime['run']>): ReturnType<EmbedRuntime['run']> {
    this.started++;
    if (this.gate !== null) await this.gate;
    return super.run(...args);
  }
}

const cleanup: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse())
    await Promise.resolve()
      .then(fn)
      .catch(() => undefined);
});

describe('the coordinator across a PostgreSQL restart', () => {
  it('answers 503 while the database is down, loses nothing, and works again when it is back', { timeout: 300_000 }, async () => {
    const cluster = new TempCluster(await freePort());
    cluster.init();
    cluster.start();
    cleanup.push(() => rmSync(cluster.dir, { recursive: true, force: true }));
    cleanup.push(() => cluster.stop());
    const models = await startModelHost({ port: 0 });
    cleanup.push(() => models.close());
    const config = loadCoordinatorConfig({
      env: {},
      fileText: JSON.stringify({
        network: 'local',
        listen: { port: 0 },
        database: { url: cluster.url, schema: 'spinneret' },
        manifestUrl: models.manifestUrl,
        verification: { canaryRate: 0, replicationRate: 0, minReplicationRate: 0 },
        payouts: { verificationWindow: '1h', interval: '1h' },
        deposits: { interval: '500ms' },
        drainTimeout: '1s',
      }),
    });
    const node = await startCoordinatorNode({ config, log: createLog('coordinator', { level: 'silent' }) });
    cleanup.push(() => node.close());
    const key = await node.coordinator.createApiKey('outage requester', { jobsPerMinute: 6000, maxInFlight: 64 });
    await node.money.fund(key.depositMemo, 50_000_000_000n);

    // One slot each: four contributors run the four held jobs at once.
    const runtimes = Array.from({ length: 4 }, () => new GatedRuntime());
    for (const runtime of runtimes) {
      const contributor = new Contributor({
        coordinatorUrl: `${node.url.replace(/^http/, 'ws')}/v1/contributor`,
        runtime,
        identity: await loadOrCreateIdentity(new MemoryKeyStore()),
        consent: ['embed'],
        client: { name: 'fault-test', version: '0.0.0' },
        webSocket: WebSocket,
      });
      contributor.start();
      cleanup.push(() => contributor.stop({ drain: false }));
    }
    const requester = new RequesterClient({ coordinatorUrl: node.url, apiKey: key.secret, checkReplicas: false });
    let answers = 0;
    const embed = async (text: string): Promise<void> => {
      const result = await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] });
      if (result.kind !== 'embed') throw new Error(`expected an embedding, got ${result.kind}`);
      const expected = referenceEmbed([text])[0] ?? [];
      expect(result.embeddings[0]?.length).toBe(expected.length);
      result.embeddings[0]?.forEach((x, i) => expect(Math.abs(x - (expected[i] ?? NaN))).toBeLessThan(1e-6));
      answers++;
    };
    const scrape = async (name: string): Promise<number | null> => {
      const res = await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(30_000) });
      if (res.status !== 200) return null;
      const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name} `));
      return line === undefined ? null : Number(line.split(' ')[1]);
    };

    for (let i = 0; i < 4; i++) await embed(`before the outage ${i}`);

    // Four jobs running (held at the gate) when the database stops.
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    for (const r of runtimes) r.gate = gate;
    const started = runtimes.reduce((n, r) => n + r.started, 0);
    const running = Array.from({ length: 4 }, (_, i) => embed(`across the outage ${i}`));
    for (const until = Date.now() + 60_000; runtimes.reduce((n, r) => n + r.started, 0) < started + 4; await sleep(50)) {
      if (Date.now() > until) throw new Error('the jobs never reached the contributors');
    }
    const stoppedAt = Date.now();
    cluster.stop();

    // Down: typed refusals, quickly.
    const t0 = Date.now();
    const created = await fetch(`${node.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-embed', kind: 'embed', billing: { inputTokens: 8, maxOutputTokens: 0 } }),
      signal: AbortSignal.timeout(30_000),
    });
    const refusedMs = Date.now() - t0;
    expect(created.status).toBe(503);
    expect(created.headers.get('retry-after')).toBe('2');
    expect(await created.json()).toMatchObject({ error: { code: 'UNAVAILABLE', message: expect.stringMatching(/database/) } });
    const ready = await fetch(`${node.url}/readyz`, { signal: AbortSignal.timeout(30_000) });
    expect(ready.status).toBe(503);
    const other = await fetch(`${node.url}/v1/account`, {
      headers: { authorization: `Bearer ${key.secret}` },
      signal: AbortSignal.timeout(30_000),
    });
    expect(other.status).toBe(503);

    // The held jobs finish while it is down: answered, their records buffered, their charges waiting.
    for (const r of runtimes) r.gate = null;
    open();
    await Promise.all(running);
    expect(answers).toBe(8);
    // Their answers went out although their done records could not be written, and are counted so.
    expect(node.coordinator.stats().deliveredUnrecorded).toBe(4);
    for (const until = Date.now() + 30_000; node.store.bufferedJobs === 0; await sleep(50)) {
      if (Date.now() > until) throw new Error('no job record waited for the database');
    }
    const bufferedWhileDown = node.store.bufferedJobs;
    // /metrics keeps answering through the outage, and shows it.
    const buffered = await scrape('spinneret_job_records_buffered');
    expect(buffered).toBeGreaterThan(0);
    const downMs = Date.now() - stoppedAt;

    cluster.start();
    const backAt = Date.now();
    for (const until = Date.now() + 60_000; (await fetch(`${node.url}/readyz`)).status !== 200; await sleep(200)) {
      if (Date.now() > until) throw new Error('the coordinator never became ready again');
    }
    const readyAgainMs = Date.now() - backAt;
    await node.store.flush();
    expect(node.store.bufferedJobs).toBe(0);
    for (let i = 0; i < 4; i++) await embed(`after the outage ${i}`);
    await requester.idle();
    await node.money.idle();
    console.log(`postgres restart: ${JSON.stringify({ refusedMs, downMs, bufferedWhileDown, bufferedMetric: buffered, readyAgainMs })}`);

    const db = node.store.db;
    const done = (await db.query<{ id: string }>(`SELECT id FROM jobs WHERE api_key_id = $1 AND state = 'done' ORDER BY id`, [key.id]))
      .rows;
    expect(done).toHaveLength(answers);
    const unfinished = await db.query(`SELECT id FROM jobs WHERE state NOT IN ('done', 'failed', 'cancelled')`);
    expect(unfinished.rows).toEqual([]);
    const charged = (
      await db.query<{ job_id: string }>(`SELECT job_id FROM job_billing WHERE api_key_id = $1 AND state = 'charged' ORDER BY job_id`, [
        key.id,
      ])
    ).rows;
    expect(charged.map((c) => c.job_id)).toEqual(done.map((d) => d.id));
    const credits = (await db.query<{ ref: string }>(`SELECT ref FROM ledger_txns WHERE kind = 'job.credit' ORDER BY ref`)).rows;
    expect(credits.map((c) => c.ref)).toEqual(done.map((d) => d.id));
    const sum = async (account: string): Promise<bigint> =>
      -BigInt(
        (await db.query<{ t: string }>(`SELECT coalesce(sum(amount), 0)::text AS t FROM ledger_entries WHERE account = $1`, [account]))
          .rows[0]?.t ?? '0',
      );
    expect(await sum(`requester:${key.id}:reserved`)).toBe(0n);
    // What its delivered jobs cost: each charge takes the reservation and gives back the rest.
    const cost = BigInt(
      (
        await db.query<{ t: string }>(
          `SELECT coalesce(sum(e.amount), 0)::text AS t FROM ledger_entries e WHERE e.kind = 'job.credit' AND e.account LIKE $1`,
          [`requester:${key.id}:%`],
        )
      ).rows[0]?.t ?? '0',
    );
    expect(cost).toBeGreaterThan(0n);
    expect(await sum(`requester:${key.id}:available`)).toBe(50_000_000_000n - cost);
    expect((await checkBooks(db)).problems).toEqual([]);
    // The same database, opened afresh, agrees.
    const again = await openStore({ databaseUrl: cluster.url, schema: 'spinneret' });
    expect((await again.db.query(`SELECT count(*)::int AS n FROM jobs WHERE state = 'done'`)).rows).toEqual([{ n: answers }]);
    await again.close();
  });
});
