/**
 * `npm start`: the whole local network on embedded defaults, on this machine only —
 * the model host, the coordinator (PGlite in `.spinneret/`), a demo requester sending a
 * trickle of jobs, the OpenAI-compatible gateway, and the app — then prints where to look.
 *
 * Ports: SPINNERET_PORT (app, 5173), SPINNERET_MODELHOST_PORT (8090),
 * SPINNERET_COORDINATOR_PORT (8787), SPINNERET_GATEWAY_PORT (8788).
 * DATABASE_URL puts the coordinator on PostgreSQL instead of PGlite.
 */
import { spawnSync } from 'node:child_process';
import { fromNano, toNano } from '@ton/core';
import { createCoordinator } from '../coordinator/app.ts';
import { startMoney } from '../coordinator/earnings/local.ts';
import { ModelCatalog } from '../coordinator/models/catalog.ts';
import { createNetworkInfo } from '../coordinator/network/network.ts';
import { openStore } from '../coordinator/store/index.ts';
import { startVerification } from '../coordinator/verification/local.ts';
import { priceRoutes } from '../coordinator/prices/routes.ts';
import { standinModels } from '../modelhost/models/index.ts';
import { startModelHost } from '../modelhost/server.ts';
import { RequesterClient } from '../requester/client.ts';
import { startDemoRequester } from '../requester/demo.ts';
import { startGateway } from '../requester/gateway.ts';
import { startAppServer } from './serve.ts';

const host = process.env['SPINNERET_HOST'] ?? '127.0.0.1';
const port = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);

console.log('Building the app…');
const build = spawnSync('node_modules/.bin/vite', ['build', '--logLevel', 'warn'], { stdio: 'inherit' });
if (build.status !== 0) {
  console.error('The build failed; see above.');
  process.exit(1);
}

const models = await startModelHost({ port: port('SPINNERET_MODELHOST_PORT', 8090), host, standins: standinModels() });
const catalog = await ModelCatalog.load(models.manifestUrl);
const store = await openStore({ dataDir: process.env['SPINNERET_DATA_DIR'] ?? '.spinneret/coordinator' });
// Verified work on the default policy (5 % canaries, 10 % → 1 % replication, quarantine after
// 3 failed checks); a replicated job's verdict is awaited within the settlement window.
const verification = await startVerification({ store, verdictWindowMs: 25_000 });
// Local defaults: a 30 s verification window and payouts every 30 s from 0.001 TON, so a
// newcomer sees pending → settled → paid within a minute or two.
const payouts = { threshold: 1_000_000n, windowMs: 30_000, intervalMs: 30_000 };
const money = await startMoney({
  store,
  threshold: payouts.threshold,
  windowMs: payouts.windowMs,
  payoutIntervalMs: payouts.intervalMs,
  settleIntervalMs: 5_000,
  log: (line) => console.log(line),
  verification,
});
// Demand per model and the payout rules, published for the dashboard's earnings estimate.
const networkInfo = createNetworkInfo({
  db: store.db,
  connected: () => coordinator.stats().contributors,
  payouts: {
    thresholdNano: payouts.threshold.toString(),
    verificationWindowMs: payouts.windowMs,
    intervalMs: payouts.intervalMs,
    chain: chainOf(process.env['SPINNERET_TON_NETWORK']),
    firstAt: Date.now() + payouts.intervalMs,
  },
});
const coordinator = createCoordinator({
  store,
  catalog,
  verification,
  billing: money.billing,
  onJobDone: money.onJobDone,
  publicRoutes: [money.routes, priceRoutes(), networkInfo.routes()],
  ...(money.publicKeys !== undefined && { walletPublicKeys: money.publicKeys }),
});
const network = await coordinator.listen({ port: port('SPINNERET_COORDINATOR_PORT', 8787), host });
const demoKey = await coordinator.createApiKey('demo requester', { jobsPerMinute: 600, maxInFlight: 8 });
const gatewayKey = await coordinator.createApiKey('local gateway', { jobsPerMinute: 600, maxInFlight: 16 });
// Requesters prepay and checks are paid from the network's budget. Locally a faucet funds both
// with real transfers on the emulated chain, booked by the deposit watcher like any deposit.
const FAUCET = toNano('100');
if (money.hasFaucet) {
  for (const memo of [demoKey.depositMemo, gatewayKey.depositMemo, money.budgetMemo]) await money.fund(memo, FAUCET);
}
const gateway = await startGateway({
  port: port('SPINNERET_GATEWAY_PORT', 8788),
  host,
  coordinatorUrl: network.url,
  apiKey: gatewayKey.secret,
});
const stopDemo = startDemoRequester({
  client: new RequesterClient({ coordinatorUrl: network.url, apiKey: demoKey.secret }),
  intervalMs: 3000,
  embedModel: 'tiny-embed',
  chatModel: 'tiny-decoder',
  log: (line) => console.log(line),
});
const app = await startAppServer({
  distDir: 'dist',
  port: port('SPINNERET_PORT', 5173),
  host,
  config: { manifestUrl: models.manifestUrl, coordinatorUrl: network.url },
});

console.log(`
Spinneret is running (everything on this machine).
  Open:          ${app.url}/  and click Start
  Fleet:         ${app.url}/fleet.html  (enroll kiosk and lab machines; docs/kiosk.md)
  Coordinator:   ${network.url}  (metrics: ${network.url}/metrics)
  Model host:    ${models.manifestUrl}
  OpenAI API:    ${gateway.url}/v1  (any API key; the gateway seals jobs before they leave)
  Demo requester: a job every 3 s (embeddings and chat) from requester/corpus.json
  Payouts:       ${money.chainName}, hot wallet ${money.hotWalletAddress}
  Deposits:      send TON to ${money.depositAddress} with a key's memo as the comment${money.hasFaucet ? `; the faucet gave the demo requester, the gateway and the check budget ${fromNano(FAUCET)} TON each` : ''}
                 (demo requester memo ${demoKey.depositMemo}, gateway memo ${gatewayKey.depositMemo})

WebGPU needs a recent Chrome or Edge (on Linux start it with --enable-unsafe-webgpu).
Your machine can see the jobs it runs. Press Ctrl+C to stop.`);

function chainOf(network: string | undefined): 'sandbox' | 'testnet' | 'mainnet' {
  return network === 'testnet' || network === 'mainnet' ? network : 'sandbox';
}

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  stopDemo();
  money.stop();
  await coordinator.drain(5000);
  await Promise.allSettled([app.close(), gateway.close(), network.close(), models.close()]);
  await store.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
