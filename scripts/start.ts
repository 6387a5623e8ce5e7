/**
 * `npm start`: the whole local network on embedded defaults, on this machine only — the model
 * host, the coordinator (PGlite in `.spinneret/`, the sandbox chain, demo timings), the
 * OpenAI-compatible gateway, a demo requester sending a trickle of jobs, and the app — each a
 * child process started with the operator's own commands (`spinneret coordinator` reads
 * `.spinneret/local-network.json`, written here) and restarted if it crashes, while the others
 * keep running.
 *
 * Ports: SPINNERET_PORT (app, 5173), SPINNERET_MODELHOST_PORT (8090),
 * SPINNERET_COORDINATOR_PORT (8787), SPINNERET_GATEWAY_PORT (8788). DATABASE_URL puts the
 * coordinator on PostgreSQL; any other setting of docs/operating.md applies through its variable.
 * SPINNERET_SKIP_BUILD=1 serves the `dist/` already built.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createLog } from '../operator/log.ts';
import { Supervisor } from '../operator/supervisor.ts';
import type { LocalKeys } from '../operator/wiring.ts';

const env = process.env;
const host = env['SPINNERET_HOST'] ?? '127.0.0.1';
const port = (name: string, fallback: number): number => Number(env[name] ?? fallback);
const ports = {
  app: port('SPINNERET_PORT', 5173),
  modelhost: port('SPINNERET_MODELHOST_PORT', 8090),
  coordinator: port('SPINNERET_COORDINATOR_PORT', 8787),
  gateway: port('SPINNERET_GATEWAY_PORT', 8788),
};
const home = resolve(env['SPINNERET_HOME'] ?? '.spinneret');
const urls = {
  app: `http://${host}:${ports.app}`,
  modelhost: `http://${host}:${ports.modelhost}`,
  coordinator: `http://${host}:${ports.coordinator}`,
  gateway: `http://${host}:${ports.gateway}`,
};
const keysFile = `${home}/local-keys.json`;
const log = createLog('start');

/**
 * The local network's settings: the sandbox chain with a faucet, a 30 s verification window and
 * payouts every 30 s from 0.001 TON, so a newcomer sees pending → settled → paid within a minute
 * or two. (An operator's coordinator defaults to 24 h, hourly, from 1 TON.)
 */
const LOCAL_NETWORK = {
  network: 'local',
  database: { dataDir: `${home}/coordinator` },
  manifestUrl: `${urls.modelhost}/manifest.json`,
  appUrl: urls.app,
  verification: { verdictWindow: '25s' },
  payouts: { verificationWindow: '30s', threshold: '1000000', interval: '30s', settleInterval: '5s' },
  drainTimeout: '5s',
  local: { keysFile },
};

if (env['SPINNERET_SKIP_BUILD'] !== '1') {
  console.log('Building the app…');
  const build = spawnSync('node_modules/.bin/vite', ['build', '--logLevel', 'warn'], { stdio: 'inherit' });
  if (build.status !== 0) {
    console.error('The build failed; see above.');
    process.exit(1);
  }
}
mkdirSync(home, { recursive: true });
const configFile = `${home}/local-network.json`;
writeFileSync(configFile, JSON.stringify(LOCAL_NETWORK, null, 2));

const spinneret = [resolve('bin/spinneret.js')];
const tsx = (script: string): string[] => ['--import', 'tsx', resolve(script)];
const supervisor = new Supervisor({ log, onFatal: () => void stop(1) });
let stopping = false;
const stop = async (code = 0): Promise<void> => {
  if (stopping) return;
  stopping = true;
  log.info('stopping the local network');
  await supervisor.stop();
  log.flush(() => process.exit(code));
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

// The receipt signing key is stored sealed: locally under a KEK kept in its own file (mode 0600),
// apart from the database, unless the environment names one.
const kekFile = `${home}/receipt-kek`;
if (env['SPINNERET_RECEIPT_KEK'] === undefined && env['SPINNERET_RECEIPT_KEK_FILE'] === undefined && !existsSync(kekFile)) {
  writeFileSync(kekFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
}
const kek = env['SPINNERET_RECEIPT_KEK'] === undefined ? { SPINNERET_RECEIPT_KEK_FILE: env['SPINNERET_RECEIPT_KEK_FILE'] ?? kekFile } : {};
const shared = { SPINNERET_HOST: host, SPINNERET_COORDINATOR_URL: urls.coordinator, SPINNERET_LOCAL_KEYS_FILE: keysFile, ...kek };
try {
  await supervisor.start([
    {
      name: 'modelhost',
      command: process.execPath,
      args: [...spinneret, 'modelhost'],
      env: { ...shared, SPINNERET_MODELHOST_PORT: String(ports.modelhost) },
      readyUrl: `${urls.modelhost}/manifest.json`,
    },
    {
      name: 'coordinator',
      command: process.execPath,
      args: [...spinneret, 'coordinator', '--config', configFile],
      env: { ...shared, SPINNERET_COORDINATOR_PORT: String(ports.coordinator) },
      readyUrl: `${urls.coordinator}/readyz`,
    },
    {
      name: 'gateway',
      command: process.execPath,
      args: [...spinneret, 'gateway'],
      env: { ...shared, SPINNERET_GATEWAY_PORT: String(ports.gateway), SPINNERET_GATEWAY_API_KEY_FILE: keysFile },
      readyUrl: `${urls.gateway}/v1/models`,
    },
    { name: 'demo', command: process.execPath, args: [...tsx('scripts/part.ts'), 'demo'], env: shared },
    {
      name: 'app',
      command: process.execPath,
      args: [...tsx('scripts/part.ts'), 'app'],
      env: { ...shared, SPINNERET_PORT: String(ports.app), SPINNERET_MANIFEST_URL: `${urls.modelhost}/manifest.json` },
      readyUrl: `${urls.app}/spinneret.json`,
    },
  ]);
} catch (err) {
  log.error({ err }, 'the local network did not start');
  await stop(1);
}
if (!stopping) {
  const keys = JSON.parse(readFileSync(keysFile, 'utf8')) as LocalKeys;
  log.info({ urls }, 'local network ready');
  console.log(`
Spinneret is running (everything on this machine; each part restarts if it crashes).
  Open:          ${urls.app}/  and click Start
  Fleet:         ${urls.app}/fleet.html  (enroll kiosk and lab machines; docs/kiosk.md)
  Coordinator:   ${urls.coordinator}  (metrics: ${urls.coordinator}/metrics, readiness: /readyz)
  Model host:    ${urls.modelhost}/manifest.json
  OpenAI API:    ${urls.gateway}/v1  (any API key; the gateway seals jobs before they leave)
  Demo requester: a job every 3 s (embeddings and chat) from requester/corpus.json
  Payouts:       the local @ton/sandbox chain, every 30 s from 0.001 TON after a 30 s window
  Deposits:      the faucet gave the demo requester, the gateway and the check budget 100 TON each
                 (demo requester memo ${keys.demo.depositMemo}, gateway memo ${keys.gateway.depositMemo})

WebGPU needs a recent Chrome or Edge (on Linux start it with --enable-unsafe-webgpu).
Your machine can see the jobs it runs. Press Ctrl+C to stop.`);
}
