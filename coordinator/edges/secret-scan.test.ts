/**
 * A secret scan: a coordinator and a gateway run as `npm start` wires them (operator/wiring.ts,
 * on PGlite and the sandbox chain, logging everything down to `trace`) with a hot wallet
 * mnemonic, a receipt key sealed under its KEK, API keys, an owner session, enrollment tokens,
 * an enrolled device, and a job that is credited with a signed receipt. Then no API key secret,
 * enrollment secret, session token, mnemonic word sequence or receipt private key may appear in
 * the logs captured from both, in a dump of every text column of every table, or in the app's
 * production bundle, built with those secrets in its environment.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { mnemonicNew } from '@ton/crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadCoordinatorConfig } from '../../operator/config.ts';
import { createLog } from '../../operator/log.ts';
import { startCoordinatorNode, type CoordinatorNode } from '../../operator/wiring.ts';
import { startGateway } from '../../requester/gateway.ts';
import { startModelHost, type ModelHost } from '../../modelhost/server.ts';
import { proveOwner, ownerCall } from '../fleet/testing.ts';
import { openPgliteDb } from '../store/pglite.ts';
import { SqlStore } from '../store/sql-store.ts';
import { FakeWorker, TEST_ENVELOPE } from '../testing.ts';
import { openKey } from '../verification/receipt-key.ts';
import { testWallet } from '../wallets/test-wallet.ts';

/** Every line both services logged, as written. */
const logged: string[] = [];
const capture = new Writable({
  write(chunk: Buffer, _encoding, done) {
    logged.push(chunk.toString('utf8'));
    done();
  },
});

/** Each secret of the run, by name, in every form it could leak in. */
const secrets = new Map<string, string[]>();
const keep = (name: string, ...forms: string[]): void => void secrets.set(name, forms);

let host: ModelHost;
let node: CoordinatorNode;
let gateway: { url: string; close(): Promise<void> };
let store: SqlStore;
let dump = '';
const started = Date.now();

async function post(url: string, body: unknown, bearer?: string, signal?: AbortSignal): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    ...(signal !== undefined && { signal }),
    headers: { 'content-type': 'application/json', ...(bearer !== undefined && { authorization: `Bearer ${bearer}` }) },
    body: JSON.stringify(body),
  });
}

/** Every text, JSON and byte column of every table in the store's schema, one value a line (bytes as hex and base64). */
async function dumpDatabase(db: SqlStore['db']): Promise<string> {
  const { rows: columns } = await db.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT table_name, column_name, data_type FROM information_schema.columns
      WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea')`,
  );
  const lines: string[] = [];
  for (const { table_name: table, column_name: column, data_type: type } of columns) {
    const { rows } = await db.query<{ value: unknown }>(`SELECT "${column}" AS value FROM "${table}" WHERE "${column}" IS NOT NULL`);
    for (const { value } of rows) {
      if (type === 'bytea') {
        const bytes = Buffer.from(value as Uint8Array);
        lines.push(bytes.toString('hex'), bytes.toString('base64'), bytes.toString('base64url'));
      } else lines.push(typeof value === 'string' ? value : JSON.stringify(value));
    }
  }
  expect(columns.length).toBeGreaterThan(20);
  return lines.join('\n');
}

/** The names of the secrets whose any form is in `text`. */
function leaked(text: string): string[] {
  return [...secrets].filter(([, forms]) => forms.some((form) => text.includes(form))).map(([name]) => name);
}

beforeAll(async () => {
  // What reaches the console (a part without a logger, a library's warning) is logged too.
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => void logged.push(`${args.map(String).join(' ')}\n`));
  }
  const words = await mnemonicNew();
  const kek = Buffer.from(crypto.getRandomValues(new Uint8Array(32)));
  const operatorToken = `op-${Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url')}`;
  keep('hot wallet mnemonic', words.join(' '), words.join(','), words.join('\n'), JSON.stringify(words).slice(1, -1));
  keep('receipt KEK', kek.toString('hex'), kek.toString('base64url'));
  keep('operator token', operatorToken);
  // As an operator's shell would hold them while it runs and builds.
  process.env['SPINNERET_RECEIPT_KEK'] = kek.toString('hex');

  host = await startModelHost({ port: 0 });
  const config = loadCoordinatorConfig({
    env: { SPINNERET_HOT_WALLET_MNEMONIC: words.join(' '), SPINNERET_OPERATOR_TOKEN: operatorToken },
    fileText: JSON.stringify({ network: 'local', listen: { port: 0 }, manifestUrl: host.manifestUrl, drainTimeout: '1s' }),
  });
  store = new SqlStore(await openPgliteDb());
  await store.migrate();
  const log = createLog('coordinator', { level: 'trace', destination: capture });
  node = await startCoordinatorNode({ config, log, store });
  const requester = await node.coordinator.createApiKey('scan requester', { jobsPerMinute: 100, maxInFlight: 4 });
  const gatewayKey = await node.coordinator.createApiKey('scan gateway', { jobsPerMinute: 100, maxInFlight: 4 });
  keep('requester API key', requester.secret);
  keep('gateway API key', gatewayKey.secret);
  await node.money.fund(requester.depositMemo, 10_000_000_000n);
  const clientKey = `gw-${Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url')}`;
  keep("gateway's client key", clientKey);
  gateway = await startGateway({
    port: 0,
    coordinatorUrl: node.url,
    apiKey: gatewayKey.secret,
    gatewayKey: clientKey,
    log: createLog('gateway', { level: 'trace', destination: capture }),
  });

  // The operator lists keys; the gateway is called with its key, a wrong one, and a bad body.
  expect((await fetch(`${node.url}/v1/operator/keys`, { headers: { authorization: `Bearer ${operatorToken}` } })).status).toBe(200);
  expect((await fetch(`${gateway.url}/v1/models`, { headers: { authorization: `Bearer ${clientKey}` } })).status).toBe(200);
  expect((await fetch(`${gateway.url}/v1/models`, { headers: { authorization: `Bearer ${clientKey}x` } })).status).toBe(401);
  expect((await post(`${gateway.url}/v1/chat/completions`, { model: 42 }, clientKey)).status).toBe(400);
  expect((await post(`${node.url}/v1/jobs`, { model: 'x' }, `${requester.secret}x`)).status).toBe(401);

  // An owner session, an enrollment token and an enrolled device, which runs a credited job.
  const owner = await proveOwner(node.url, testWallet('scan owner'), Date.now());
  keep('owner session', owner);
  const issued = await ownerCall(node.url, owner, 'POST', '/v1/enrollment-tokens', { label: 'scan', ttlMs: 3_600_000 });
  const token = (await issued.json()) as { secret: string };
  keep('enrollment secret', token.secret);
  const worker = await FakeWorker.connect(node.url);
  const identityKey = Buffer.from(await crypto.subtle.exportKey('raw', worker.identity.publicKey)).toString('base64url');
  const enrolled = await post(`${node.url}/v1/enroll`, {
    token: token.secret,
    identityKey,
    signature: await worker.signEnrollment(token.secret),
  });
  expect(enrolled.status).toBe(200);
  const deviceSession = ((await enrolled.json()) as { session: string }).session;
  keep('enrolled device session', deviceSession);
  worker.send({ ...(await worker.signedHello()), session: deviceSession });
  await worker.take('welcome');
  const model = 'tiny-decoder';
  worker.capabilities([model], ['chat']);
  worker.lease(1);
  await worker.sync();
  const created = await post(`${node.url}/v1/jobs`, { model, kind: 'chat', billing: TEST_ENVELOPE }, requester.secret);
  expect(created.status).toBe(201);
  const { jobId } = (await created.json()) as { jobId: string };
  const payload = await fetch(`${node.url}/v1/jobs/${jobId}/payload`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${requester.secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ attempt: 1, sealed: { enc: 'ZW5j', ct: 'cGF5bG9hZA' } }),
  });
  expect(payload.status).toBe(202);
  const job = await worker.take('job');
  worker.chunk(job, 0, true);
  await worker.take('ack');
  await node.money.idle();
  await node.verification.idle();
  worker.close();

  // The receipt key, opened with the KEK, in the forms it could leak in: PKCS#8 and its 32-byte seed.
  const { rows } = await store.db.query<{ private_pkcs8: string; public_raw: string }>(
    `SELECT private_pkcs8, public_raw FROM verification_keys`,
  );
  expect(rows).toHaveLength(1);
  const pkcs8 = Buffer.from(await openKey(rows[0]!.private_pkcs8, rows[0]!.public_raw, kek), 'base64url');
  const seed = pkcs8.subarray(pkcs8.length - 32);
  keep('receipt private key', ...[pkcs8, seed].flatMap((b) => [b.toString('base64url'), b.toString('base64'), b.toString('hex')]));

  await node.close();
  // The gateway with its coordinator gone: its failure is logged, with its coordinator key in hand.
  const down = await post(
    `${gateway.url}/v1/chat/completions`,
    { model, messages: [{ role: 'user', content: 'hi' }] },
    clientKey,
    AbortSignal.timeout(8_000),
  ).catch((err: unknown) => err);
  if (down instanceof Response) expect(down.status).toBeGreaterThanOrEqual(400);
  await gateway.close();
  vi.restoreAllMocks();
  dump = await dumpDatabase(store.db);
}, 120_000);

afterAll(async () => {
  delete process.env['SPINNERET_RECEIPT_KEK'];
  await store?.close();
  await host?.close();
});

describe('secret scan', () => {
  it('finds no secret in the logs of a coordinator and gateway run', () => {
    const text = logged.join('');
    // The run did log: its start, the job, the refusals.
    expect(text).toContain('coordinator listening');
    expect(text).toContain('job done');
    expect(secrets.size).toBeGreaterThanOrEqual(10);
    expect(leaked(text)).toEqual([]);
  });

  it('finds no secret in a dump of every text column of every table', () => {
    // The dump holds the run's records: the receipt key's public half and the sealed private half.
    expect(dump).toContain('kek1:');
    expect(leaked(dump)).toEqual([]);
  });

  it('finds no secret in the production bundle built with them in the environment', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'spinneret-scan-'));
    try {
      const { build } = await import('vite');
      const env = Object.fromEntries([...secrets].map(([name, forms], i) => [`SPINNERET_SCAN_${i}_${name.replace(/\W/g, '_')}`, forms[0]]));
      Object.assign(process.env, env);
      const t0 = Date.now();
      await build({ logLevel: 'silent', build: { outDir, emptyOutDir: true } });
      console.log(`bundle built in ${((Date.now() - t0) / 1000).toFixed(1)} s; run took ${((t0 - started) / 1000).toFixed(1)} s`);
      for (const name of Object.keys(env)) delete process.env[name];
      const files = (readdirSync(outDir, { recursive: true }) as string[]).filter((f) => /\.(js|html|json|css|webmanifest|map)$/.test(f));
      expect(files.some((f) => f.endsWith('.js'))).toBe(true);
      // Besides this run's secrets: no private key of any kind (PEM, or Ed25519 PKCS#8 in base64 or hex).
      const anyKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----|MC4CAQAwBQYDK2VwBCIE|302e020100300506032b657004220420/i;
      const found = files.flatMap((f) => {
        const text = readFileSync(join(outDir, f), 'utf8');
        return [...leaked(text), ...(anyKey.test(text) ? ['a private key'] : [])].map((name) => `${name} in ${f}`);
      });
      expect(found).toEqual([]);
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  }, 240_000);
});
