/**
 * The operator's commands as an operator runs them: `node bin/spinneret.js …` in a child
 * process. `--help`, refusals of a bad file and of unsafe mainnet settings, and a coordinator
 * started from a configuration file serving a job end to end with money and verification on:
 * a real contributor loop runs `tiny-embed`, the requester SDK pays for the job from a faucet
 * deposit, a canary is checked, the contributor's wallet is paid on the sandbox chain, the logs
 * are JSON lines and `/metrics` parses with a Prometheus text parser.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { referenceEmbed } from '../modelhost/reference.ts';
import { startModelHost } from '../modelhost/server.ts';
import { RequesterClient } from '../requester/client.ts';
import { Contributor } from '../worker/network/contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../worker/network/identity.ts';
import { openStore } from '../coordinator/store/index.ts';
import { TEST_DATABASE_URL, uniqueSchema } from '../coordinator/store/testing.ts';
import { disposeStore, EmbedRuntime, testWallet } from '../testing/verification.ts';
import type { LocalKeys } from './wiring.ts';

const BIN = 'bin/spinneret.js';
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 60_000 });
const dir = mkdtempSync(join(tmpdir(), 'spinneret-cli-'));

describe('spinneret commands', () => {
  it('print their help and exit 0', { timeout: 120_000 }, () => {
    for (const command of ['coordinator', 'gateway', 'modelhost']) {
      const result = run([command, '--help']);
      expect(result.status).toBe(0);
      expect(result.stdout).toContain(`Usage: spinneret ${command}`);
      expect(result.stdout).toContain('--config FILE');
    }
    const top = run(['--help']);
    expect(top.status).toBe(0);
    expect(top.stdout).toMatch(/coordinator[\s\S]*gateway[\s\S]*modelhost/);
    expect(run(['nonsense']).status).toBe(2);
  });

  it('refuse a bad configuration file, naming the field and the reason', { timeout: 60_000 }, () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ listen: { port: 'eighty' }, payouts: { verificationWindow: '1 day' } }));
    const result = run(['coordinator', '--config', file]);
    expect(result.status).toBe(78);
    expect(result.stderr).toContain(`listen.port (from ${file}): expected a port number, got "eighty"`);
    expect(result.stderr).toContain(`payouts.verificationWindow (from ${file}): expected a whole number followed by ms, s, m, h or d`);
    const gateway = run(['gateway', '--check']);
    expect(gateway.status).toBe(78);
    expect(gateway.stderr).toContain('apiKey: required');
  });

  it('refuse unsafe mainnet settings, and accept safe ones without printing secrets', { timeout: 60_000 }, () => {
    const file = join(dir, 'mainnet.json');
    const words = Array.from({ length: 24 }, () => 'abandon').join(' ');
    writeFileSync(
      file,
      JSON.stringify({
        network: 'mainnet',
        ton: { chain: 'sandbox' },
        payouts: { verificationWindow: '30s', interval: '30s' },
        hotWallet: { mnemonic: words },
      }),
    );
    const refused = run(['coordinator', '--config', file]);
    expect(refused.status).toBe(78);
    for (const field of ['ton.chain', 'payouts.verificationWindow', 'payouts.interval', 'appUrl', 'hotWallet.mnemonic']) {
      expect(refused.stderr).toContain(`${field}: refused on mainnet`);
    }
    expect(refused.stderr).not.toContain('abandon');
    writeFileSync(file, JSON.stringify({ network: 'mainnet', appUrl: 'https://app.example.org' }));
    const safe = run(['coordinator', '--config', file, '--check'], {
      SPINNERET_HOT_WALLET_MNEMONIC: words,
      SPINNERET_OPERATOR_TOKEN: 'x'.repeat(20),
    });
    expect(safe.stderr).toBe('');
    expect(safe.status).toBe(0);
    const shown = JSON.parse(safe.stdout) as Record<string, unknown>;
    expect(shown['ton.chain']).toBe('toncenter');
    expect(shown['payouts.threshold']).toBe('1000000000');
    expect(shown['hotWallet.mnemonic']).toBe('[secret]');
    expect(safe.stdout).not.toContain('abandon');
  });
});

/** A child process whose stdout lines are kept (and parsed as JSON: every one must be). */
class Child {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  readonly exited: Promise<number | null>;
  constructor(readonly process: ChildProcess) {
    if (process.stdout === null) throw new Error('no stdout');
    createInterface({ input: process.stdout }).on('line', (line) => {
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    });
    process.stderr?.on('data', (data: Buffer) => this.raw.push(`stderr: ${data.toString()}`));
    this.exited = new Promise((resolve) => process.once('exit', (code) => resolve(code)));
  }
  async waitFor(msg: string, timeoutMs = 120_000): Promise<Record<string, unknown>> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find((l) => l['msg'] === msg);
      if (found !== undefined) return found;
      if (Date.now() > until) throw new Error(`no "${msg}" line; got:\n${this.raw.join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

const until = async <T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
};

describe('a coordinator started from a configuration file', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  });

  it(
    'serves a job end to end with money and verification on, logs JSON lines and serves parseable metrics',
    { timeout: 180_000 },
    async () => {
      const models = await startModelHost({ port: 0 });
      cleanup.push(() => models.close());
      const schema = uniqueSchema('cli');
      const keysFile = join(dir, 'keys.json');
      const configFile = join(dir, 'coordinator.json');
      writeFileSync(
        configFile,
        JSON.stringify({
          listen: { port: 0 },
          database: { url: TEST_DATABASE_URL, schema },
          manifestUrl: models.manifestUrl,
          // Every job slot also carries a known-answer canary, sent at once; no replicas (they need the requester's verdict).
          verification: { canaryRate: 1, replicationRate: 0, minReplicationRate: 0, verdictWindow: '5s', canaryDelay: '1ms' },
          payouts: { verificationWindow: '1s', threshold: '1', interval: '1s', settleInterval: '200ms' },
          deposits: { interval: '500ms' },
          drainTimeout: '5s',
          local: { keysFile, fund: '10 TON' },
        }),
      );
      const child = new Child(spawn(process.execPath, [BIN, 'coordinator', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] }));
      cleanup.push(async () => {
        child.process.kill('SIGKILL');
        const store = await openStore({ databaseUrl: TEST_DATABASE_URL, schema });
        await disposeStore(store);
      });
      const url = String((await child.waitFor('coordinator listening'))['url']);
      const keys = JSON.parse(readFileSync(keysFile, 'utf8')) as LocalKeys;

      // A contributor with a payout wallet (set in the coordinator's database, as a proven wallet link leaves it).
      const runtime = new EmbedRuntime();
      const contributor = new Contributor({
        coordinatorUrl: `${url.replace(/^http/, 'ws')}/v1/contributor`,
        runtime,
        identity: await loadOrCreateIdentity(new MemoryKeyStore()),
        consent: ['embed'],
        client: { name: 'test', version: '0.0.0' },
        webSocket: WebSocket,
      });
      contributor.start();
      cleanup.push(() => contributor.stop({ drain: false }));
      const contributorId = await until('the contributor to connect', async () => contributor.status().contributorId ?? undefined);
      const db = await openStore({ databaseUrl: TEST_DATABASE_URL, schema });
      cleanup.push(() => db.close());
      const wallet = testWallet();
      await until('the contributor record', async () => {
        const { rows } = await db.db.query<{ id: string }>('UPDATE contributors SET wallet = $1 WHERE id = $2 RETURNING id', [
          wallet,
          contributorId,
        ]);
        return rows.length === 1 ? true : undefined;
      });

      const requester = new RequesterClient({ coordinatorUrl: url, apiKey: keys.demo.secret, channel: true });
      // The command serves the requester channel: the SDK runs the job on it.
      expect(await requester.transport()).toBe('channel');
      const text = 'the model runs in a browser tab';
      const result = await requester.run({ kind: 'embed', model: 'tiny-embed', inputs: [text] });
      if (result.kind !== 'embed') throw new Error(`expected an embedding, got ${result.kind}`);
      // Checked against the float64 reference, independently of the runtime's float32 rounding.
      const expected = referenceEmbed([text])[0] ?? [];
      expect(result.embeddings[0]?.length).toBe(expected.length);
      result.embeddings[0]?.forEach((x, i) => expect(Math.abs(x - (expected[i] ?? NaN))).toBeLessThan(1e-6));
      await until('the canary to run', async () => (runtime.jobs >= 2 ? true : undefined)); // the job and its canary

      // Paid: the requester's deposit was charged, the contributor's share settled and paid on the sandbox chain.
      const earnings = await until('a confirmed payout', async () => {
        const summary = (await (await fetch(`${url}/v1/earnings/${wallet}`)).json()) as { balances: { paid: string } };
        return BigInt(summary.balances.paid) > 0n ? summary : undefined;
      });
      expect(BigInt(earnings.balances.paid)).toBeGreaterThan(0n);
      const account = (await (await fetch(`${url}/v1/account`, { headers: { authorization: `Bearer ${keys.demo.secret}` } })).json()) as {
        available?: string;
      };
      expect(BigInt(account.available ?? '0')).toBeLessThan(10_000_000_000n);

      const families = new Map(parsePrometheusTextFormat(await (await fetch(`${url}/metrics`)).text()).map((f) => [f.name, f]));
      const value = (name: string, labels: Record<string, string> = {}): number =>
        Number(families.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value ?? Number.NaN);
      for (const name of [
        'process_cpu_seconds_total',
        'nodejs_heap_size_used_bytes',
        'spinneret_job_duration_seconds',
        'spinneret_dispatch_latency_seconds',
        'spinneret_http_request_duration_seconds',
        'spinneret_hot_wallet_balance_nanoton',
        'spinneret_contributors_quarantined',
      ]) {
        expect(families.has(name), name).toBe(true);
      }
      expect(value('spinneret_jobs_total', { state: 'done' })).toBeGreaterThanOrEqual(2);
      expect(value('spinneret_deposits_total')).toBe(3); // the demo key, the gateway key, the check budget
      expect(value('spinneret_deposits_nanoton_total')).toBe(30_000_000_000);
      expect(value('spinneret_payouts_total')).toBeGreaterThanOrEqual(1);
      expect(value('spinneret_payouts_nanoton_total')).toBe(Number(earnings.balances.paid));
      expect(value('spinneret_hot_wallet_balance_nanoton')).toBeGreaterThan(0);
      expect(value('spinneret_verification_checks_total', { check: 'canary', result: 'passed' })).toBeGreaterThanOrEqual(1);
      expect(value('spinneret_verification_checks_total', { check: 'canary', result: 'failed' })).toBe(0);
      const http = families.get('spinneret_http_requests_total')?.metrics ?? [];
      expect(
        http.some((m) => m.labels?.['route'] === '/v1/account' && m.labels['status'] === '200'),
        JSON.stringify(http.map((m) => m.labels)),
      ).toBe(true);
      // The job itself went over the channel, not the HTTP job routes.
      expect(http.some((m) => m.labels?.['route'] === '/v1/jobs')).toBe(false);
      requester.close();

      expect(await (await fetch(`${url}/readyz`)).json()).toEqual({ ready: true });
      expect((await fetch(`${url}/healthz`)).status).toBe(200);

      // SIGTERM drains and exits 0; every stdout line was JSON with the time, level, service and message.
      child.process.kill('SIGTERM');
      expect(await child.exited).toBe(0);
      expect(child.lines.length).toBeGreaterThan(3);
      for (const line of child.lines) {
        expect(typeof line['time'] === 'string' && !Number.isNaN(Date.parse(line['time']))).toBe(true);
        expect(line['service']).toBe('coordinator');
        expect(['debug', 'info', 'warn', 'error']).toContain(line['level']);
        expect(typeof line['msg']).toBe('string');
      }
      expect(child.lines.at(-1)?.['msg'], JSON.stringify(child.lines.slice(-5))).toBe('stopped');
      // The canaries' known answers were computed at start for both kinds of ONNX model the test host serves.
      const computed = child.lines.filter((l) => typeof l['msg'] === 'string' && l['msg'].startsWith('known answers computed'));
      expect(computed.map((l) => l['msg'])).toEqual([
        'known answers computed for ONNX generation models',
        'known answers computed for ONNX infer models',
      ]);
      for (const line of computed) expect(line['knownAnswers']).toBeGreaterThan(0);
      // No secret reached the log.
      const log = child.raw.join('\n');
      for (const secret of [keys.demo.secret, keys.gateway.secret]) expect(log).not.toContain(secret);
    },
  );
});
