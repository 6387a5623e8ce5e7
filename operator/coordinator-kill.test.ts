/**
 * The coordinator killed with SIGKILL under load and restarted on the same PostgreSQL database,
 * `COORDINATOR_KILLS` times (2 in `npm test`, 10 in `npm run test:faults`). It runs as an operator
 * runs it (`node bin/spinneret.js coordinator --config FILE`, money on the sandbox chain); Node
 * contributors (reconnecting on their own) and two requesters (the SDK) keep jobs going
 * throughout. The SDK runs a job the restart ended (`RESTARTED`) again itself, and repeats a
 * creation cut off after it was sent under its idempotency key; one that still breaks (retries
 * used up while the coordinator restarts) is run again by this harness, as a requester would.
 *
 * Afterwards, from the database: no job is left unfinished; each failed one failed
 * `RESTARTED` with its reservation released; each done one was charged exactly once and none
 * other was; each requester's answers (every one checked against the float64 reference) number
 * exactly its done jobs; its balance is its deposits less what its delivered jobs cost, nothing
 * is left reserved; the ledger's book check passes. Each restart serves again and the last
 * stops cleanly on SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { checkBooks } from '../coordinator/ledger/books.ts';
import { openStore } from '../coordinator/store/index.ts';
import type { SqlStore } from '../coordinator/store/sql-store.ts';
import { TEST_DATABASE_URL, uniqueSchema } from '../coordinator/store/testing.ts';
import { disposeStore, EmbedRuntime } from '../testing/verification.ts';
import { referenceEmbed } from '../modelhost/reference.ts';
import { startModelHost } from '../modelhost/server.ts';
import type { JobRequest } from '../protocol/jobs.ts';
import { RequesterClient } from '../requester/client.ts';
import { Contributor } from '../worker/network/contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../worker/network/identity.ts';
import type { LocalKeys } from './wiring.ts';

const KILLS = Number(process.env['COORDINATOR_KILLS'] ?? 2);
/** Answers delivered between two kills, at least: the kill lands while jobs run. */
const ANSWERS_PER_ROUND = 12;
const CONTRIBUTORS = 3;
/** Job loops per requester. */
const LOOPS = 4;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A contributor whose jobs take 50–250 ms, so that a kill finds some running. */
class SlowEmbedRuntime extends EmbedRuntime {
  override async run(...args: Parameters<EmbedRuntime['run']>): ReturnType<EmbedRuntime['run']> {
    await sleep(50 + Math.floor(Math.random() * 200));
    return super.run(...args);
  }
}

/** One run of the coordinator command, its JSON log lines kept. */
class CoordinatorProcess {
  readonly lines: Record<string, unknown>[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitedAt: number | null = null;
  readonly process: ChildProcess;
  constructor(configFile: string) {
    this.process = spawn(process.execPath, ['bin/spinneret.js', 'coordinator', '--config', configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    createInterface({ input: this.process.stdout! }).on('line', (line) => this.lines.push(JSON.parse(line) as Record<string, unknown>));
    this.process.stderr!.on('data', (d: Buffer) => this.stderr.push(d.toString()));
    this.exited = new Promise((resolve) =>
      this.process.once('exit', (code, signal) => {
        this.exitedAt = Date.now();
        resolve({ code, signal });
      }),
    );
  }
  async listening(timeoutMs = 180_000): Promise<string> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.find((l) => l['msg'] === 'coordinator listening');
      if (line !== undefined) return String(line['url']);
      if (this.exitedAt !== null || Date.now() > until) {
        throw new Error(`the coordinator did not start:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}\n${this.stderr.join('')}`);
      }
      await sleep(100);
    }
  }
}

describe('the coordinator killed with SIGKILL under load, restarted on PostgreSQL', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  }, 180_000);

  it(`loses no job and no money across ${KILLS} kills`, { timeout: 240_000 + KILLS * 90_000 }, async () => {
    const models = await startModelHost({ port: 0 });
    cleanup.push(() => models.close());
    const dir = mkdtempSync(join(tmpdir(), 'spinneret-kill-'));
    const schema = uniqueSchema('kill');
    const port = await freePort();
    const keysFile = join(dir, 'keys.json');
    const configFile = join(dir, 'coordinator.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        listen: { port },
        database: { url: TEST_DATABASE_URL, schema },
        manifestUrl: models.manifestUrl,
        verification: { canaryRate: 0, replicationRate: 0, minReplicationRate: 0, verdictWindow: '5s' },
        payouts: { verificationWindow: '1h', interval: '1h' },
        deposits: { interval: '500ms' },
        jobs: { lease: '20s', heartbeat: '5s' },
        drainTimeout: '2s',
        local: { keysFile, fund: '100 TON' },
      }),
    );
    let coordinator = new CoordinatorProcess(configFile);
    cleanup.push(async () => {
      coordinator.process.kill('SIGKILL');
      const store = await openStore({ databaseUrl: TEST_DATABASE_URL, schema });
      await disposeStore(store);
    });
    const url = await coordinator.listening();
    const keys = JSON.parse(readFileSync(keysFile, 'utf8')) as LocalKeys;

    const contributors = await Promise.all(
      Array.from({ length: CONTRIBUTORS }, async () => {
        const contributor = new Contributor({
          coordinatorUrl: `${url.replace(/^http/, 'ws')}/v1/contributor`,
          runtime: new SlowEmbedRuntime(),
          identity: await loadOrCreateIdentity(new MemoryKeyStore()),
          consent: ['embed'],
          client: { name: 'fault-test', version: '0.0.0' },
          webSocket: WebSocket,
          backoff: { baseMs: 200, capMs: 1_000, stableMs: 2_000 },
        });
        contributor.start();
        cleanup.push(() => contributor.stop({ drain: false }));
        return contributor;
      }),
    );

    // Both keys are funded from the faucet; the deposit watcher books it.
    const requesters = [keys.demo, keys.gateway].map((key) => ({
      key,
      // Its retries outlast a restart (up to about 40 s on a loaded 2-core machine): a requester that
      // gives up on a job the coordinator still finishes has abandoned an answer it pays for.
      client: new RequesterClient({
        coordinatorUrl: url,
        apiKey: key.secret,
        checkReplicas: false,
        retry: { attempts: 1_000, forMs: 180_000 },
      }),
      answers: 0,
      broken: 0,
    }));
    for (const r of requesters) {
      for (const until = Date.now() + 60_000; ; await sleep(250)) {
        const account = await r.client.account().catch(() => null);
        if (account !== null && account.available > 0n) break;
        if (Date.now() > until) throw new Error('the faucet deposit was never booked');
      }
    }

    // Each loop runs one task after another; a task whose job breaks is run again until it is answered once.
    let stopping = false;
    let tasks = 0;
    const errors = new Map<string, number>();
    const loop = async (r: (typeof requesters)[number], loopId: number): Promise<void> => {
      for (let n = 0; !stopping; n++) {
        const text = `requester ${r.key.id} loop ${loopId} task ${n}`;
        const job: JobRequest = { kind: 'embed', model: 'tiny-embed', inputs: [text] };
        tasks++;
        for (;;) {
          try {
            const result = await r.client.run(job);
            if (result.kind !== 'embed') throw new Error(`expected an embedding, got ${result.kind}`);
            const expected = referenceEmbed([text])[0] ?? [];
            const got = result.embeddings[0] ?? [];
            if (got.length !== expected.length || got.some((x, i) => Math.abs(x - (expected[i] ?? NaN)) > 1e-6)) {
              throw new Error(`a wrong embedding for "${text}"`);
            }
            r.answers++;
            break;
          } catch (err) {
            if (err instanceof Error && err.message.startsWith('a wrong embedding')) throw err;
            r.broken++;
            const reason = err instanceof Error ? err.message.replace(/job [\w-]+/gi, 'job ID').slice(0, 80) : String(err);
            errors.set(reason, (errors.get(reason) ?? 0) + 1);
            await sleep(200 + Math.floor(Math.random() * 300));
          }
        }
      }
    };
    const loops = requesters.flatMap((r) => Array.from({ length: LOOPS }, (_, i) => loop(r, i)));
    const answered = () => requesters.reduce((n, r) => n + r.answers, 0);

    const restarts: number[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      const from = answered();
      for (const until = Date.now() + 120_000; answered() < from + ANSWERS_PER_ROUND; await sleep(20)) {
        if (Date.now() > until) throw new Error(`no load: ${answered() - from} answers in 120 s; errors ${JSON.stringify([...errors])}`);
      }
      coordinator.process.kill('SIGKILL');
      expect((await coordinator.exited).signal).toBe('SIGKILL');
      const started = Date.now();
      coordinator = new CoordinatorProcess(configFile);
      expect(await coordinator.listening()).toBe(url);
      restarts.push(Date.now() - started);
    }
    // Load after the last restart too, then the loops finish their tasks.
    const last = answered();
    for (const until = Date.now() + 120_000; answered() < last + ANSWERS_PER_ROUND; await sleep(20)) {
      if (Date.now() > until) throw new Error('no load after the last restart');
    }
    stopping = true;
    await Promise.all(loops);
    await Promise.all(requesters.map((r) => r.client.idle()));
    for (const c of contributors) await c.stop({ drain: false });
    expect(coordinator.exitedAt).toBeNull(); // the restarted coordinator never crashed
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    coordinator.process.kill('SIGTERM');
    expect(await coordinator.exited).toEqual({ code: 0, signal: null });

    const store: SqlStore = await openStore({ databaseUrl: TEST_DATABASE_URL, schema });
    cleanup.push(() => store.close());
    const q = async <T>(sql: string, params: unknown[] = []) => (await store.db.query<T>(sql, params)).rows;
    const states = await q<{ state: string; n: string }>(`SELECT state, count(*)::text AS n FROM jobs GROUP BY state ORDER BY state`);
    const failed = await q<{ id: string; error: string | null }>(`SELECT id, error FROM jobs WHERE state = 'failed'`);
    const figures = {
      kills: KILLS,
      tasks,
      answers: answered(),
      broken: requesters.reduce((n, r) => n + r.broken, 0),
      jobs: Object.fromEntries(states.map((s) => [s.state, Number(s.n)])),
      restartMs: restarts,
      errors: Object.fromEntries(errors),
    };
    console.log(`coordinator kills: ${JSON.stringify(figures)}`);

    expect(states.map((s) => s.state).filter((s) => s !== 'done' && s !== 'failed')).toEqual([]);
    for (const f of failed) expect(f.error, f.id).toMatch(/^RESTARTED: /);
    expect(failed.length).toBeGreaterThan(0); // the kills did land on running jobs
    const books = await checkBooks(store.db);
    expect(books.problems).toEqual([]);

    for (const r of requesters) {
      const done = await q<{ id: string }>(`SELECT id FROM jobs WHERE api_key_id = $1 AND state = 'done' ORDER BY id`, [r.key.id]);
      // Exactly one answer per delivered job: none lost, none twice.
      expect(done.length, r.key.id).toBe(r.answers);
      const charged = await q<{ ref: string; n: string; cost: string }>(
        `SELECT t.ref, count(DISTINCT t.id)::text AS n, coalesce(sum(e.amount), 0)::text AS cost FROM ledger_txns t
         JOIN ledger_entries e ON e.txn_id = t.id AND e.account IN ($1, $2)
         WHERE t.kind = 'job.credit' GROUP BY t.ref ORDER BY t.ref`,
        [`requester:${r.key.id}:available`, `requester:${r.key.id}:reserved`],
      );
      expect(charged.map((c) => c.ref)).toEqual(done.map((d) => d.id));
      for (const c of charged) expect(c.n, c.ref).toBe('1');
      const reserved = await q<{ ref: string }>(
        `SELECT t.ref FROM ledger_txns t JOIN ledger_entries e ON e.txn_id = t.id AND e.account = $1 WHERE t.kind = 'job.reserve'`,
        [`requester:${r.key.id}:reserved`],
      );
      const released = new Set((await q<{ ref: string }>(`SELECT ref FROM ledger_txns WHERE kind = 'job.release'`)).map((row) => row.ref));
      const doneIds = new Set(done.map((d) => d.id));
      // Every reservation ends in one charge (a delivered job) or one release, never both (the book check).
      for (const { ref } of reserved) expect(doneIds.has(ref) || released.has(ref), ref).toBe(true);
      const sum = async (account: string, kinds: string[]) =>
        -BigInt(
          (
            await q<{ total: string }>(
              `SELECT coalesce(sum(amount), 0)::text AS total FROM ledger_entries WHERE account = $1 AND kind = ANY($2)`,
              [account, kinds],
            )
          )[0]?.total ?? '0',
        );
      const available = `requester:${r.key.id}:available`;
      const deposits = await sum(available, ['deposit', 'deposit.assign']);
      const cost = charged.reduce((n, c) => n + BigInt(c.cost), 0n);
      expect(deposits).toBe(100_000_000_000n);
      expect(cost).toBeGreaterThan(0n);
      expect(await sum(`requester:${r.key.id}:reserved`, ['job.reserve', 'job.credit', 'job.release'])).toBe(0n);
      const balance = -BigInt(
        (
          await q<{ total: string }>(`SELECT coalesce(sum(amount), 0)::text AS total FROM ledger_entries WHERE account = $1`, [available])
        )[0]?.total ?? '0',
      );
      expect(balance).toBe(deposits - cost);
    }
  });
});
