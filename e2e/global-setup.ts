/**
 * Starts, once for all browser tests: the model host the app uses, a second host with the
 * web-llm fixtures and switchable corruption (so those tests cannot disturb the others), and
 * the built app. Their URLs reach the tests through the environment.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { toNano } from '@ton/core';
import { createCoordinator, type Logger } from '../coordinator/app.ts';
import { startMoney } from '../coordinator/earnings/local.ts';
import { ModelCatalog } from '../coordinator/models/catalog.ts';
import { createNetworkInfo } from '../coordinator/network/network.ts';
import { openStore } from '../coordinator/store/index.ts';
import { startVerification } from '../coordinator/verification/local.ts';
import { priceRoutes } from '../coordinator/prices/routes.ts';
import type { WebLlmModel } from '../protocol/manifest.ts';
import { startGateway } from '../requester/gateway.ts';
import { mlcFixtureFiles, mlcManifestEntries } from '../modelhost/mlc.ts';
import { standinModels } from '../modelhost/models/index.ts';
import { startModelHost } from '../modelhost/server.ts';
import { startAppServer } from '../scripts/serve.ts';

/** A chat model the way real ones are listed, f16 build first: SwiftShader (no shader-f16) must get q4f32_1. */
function twoBuilds(base: string): WebLlmModel {
  const corrupt = mlcManifestEntries(base).find((m) => m.id === 'tiny-mlc-corrupt-lib');
  const f32 = corrupt?.webllm.builds[0];
  if (corrupt === undefined || f32 === undefined) throw new Error('mlc fixtures changed');
  const f16 = { ...f32, quantization: 'q4f16_1' as const, modelId: 'tiny-mlc-q4f16_1-MLC', requiredFeatures: ['shader-f16'] };
  return { ...corrupt, id: 'tiny-mlc-two-builds', name: 'Tiny MLC (f16 and f32 builds)', webllm: { builds: [f16, f32] } };
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  // The test models and the tiny stand-ins of published layouts (MiniLM-shaped encoder, Qwen-shaped decoders).
  const host = await startModelHost({ port: 0, standins: standinModels() });
  const fixtures = await startModelHost({
    port: 0,
    extraFiles: mlcFixtureFiles(),
    extraEntries: (base) => [...mlcManifestEntries(base), twoBuilds(base)],
  });
  // The coordinator on PostgreSQL, in a schema of its own, logging everything to a file: the
  // confidentiality test reads both to check that no plaintext ever reached them.
  const databaseUrl = process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
  const schema = `e2e_${Date.now().toString(36)}`;
  const logFile = '.cache/e2e/coordinator.log';
  mkdirSync('.cache/e2e', { recursive: true });
  writeFileSync(logFile, '');
  const line = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    appendFileSync(logFile, JSON.stringify({ level, message, ...fields }) + '\n');
  const logger: Logger = { info: line('info'), warn: line('warn'), error: line('error') };
  const store = await openStore({ databaseUrl, schema });
  // Money on the sandbox chain with a short window and frequent payouts, so the earnings test sees it all.
  // Verified work with replication on; no canaries, since the earnings test checks the exact amount two requester jobs earn
  // (a canary is credited like any job). A replica needs a second contributor of the same engine class, so one tab gets none.
  const verification = await startVerification({ store, policy: { canaryRate: 0 }, verdictWindowMs: 6_000 });
  const money = await startMoney({
    store,
    threshold: 1n,
    windowMs: 8_000,
    payoutIntervalMs: 3_000,
    settleIntervalMs: 500,
    env: {},
    verification,
  });
  const networkInfo = createNetworkInfo({
    db: store.db,
    connected: () => coordinator.stats().contributors,
    payouts: { thresholdNano: '1', verificationWindowMs: 8_000, intervalMs: 3_000, chain: 'sandbox', firstAt: Date.now() + 3_000 },
  });
  const coordinator = createCoordinator({
    store,
    catalog: await ModelCatalog.load(host.manifestUrl),
    logger,
    leaseMs: 30_000,
    heartbeatMs: 5_000,
    onJobDone: money.onJobDone,
    verification,
    billing: money.billing,
    publicRoutes: [money.routes, priceRoutes(), networkInfo.routes()],
    ...(money.publicKeys !== undefined && { walletPublicKeys: money.publicKeys }),
  });
  const network = await coordinator.listen({ port: 0 });
  const testKey = await coordinator.createApiKey('e2e tests', { jobsPerMinute: 1000, maxInFlight: 16 });
  const gatewayKey = await coordinator.createApiKey('e2e gateway', { jobsPerMinute: 1000, maxInFlight: 16 });
  // Prepaid requesters, funded as `npm start` funds them: real transfers from the sandbox
  // faucet to the deposit address, booked by the deposit watcher; and the check budget.
  for (const memo of [testKey.depositMemo, gatewayKey.depositMemo, money.budgetMemo]) await money.fund(memo, toNano('100'));
  const gateway = await startGateway({ port: 0, coordinatorUrl: network.url, apiKey: gatewayKey.secret });
  // An empty TON Connect wallets list keeps every page off the public list (injected wallets still show).
  const pageConfig = { manifestUrl: host.manifestUrl, coordinatorUrl: network.url, walletsListUrl: 'data:application/json,[]' };
  // The fixtures host is a second model host that tests open with `?manifest=`: the page's CSP must allow it.
  const app = await startAppServer({ distDir: 'dist', port: 0, config: pageConfig, connectSources: [fixtures.url] });
  process.env['SPINNERET_COORDINATOR_URL'] = network.url;
  process.env['SPINNERET_GATEWAY_URL'] = gateway.url;
  process.env['SPINNERET_E2E_API_KEY'] = testKey.secret;
  process.env['SPINNERET_E2E_DATABASE_URL'] = databaseUrl;
  process.env['SPINNERET_E2E_SCHEMA'] = schema;
  process.env['SPINNERET_E2E_LOG'] = logFile;
  process.env['SPINNERET_APP_URL'] = app.url;
  process.env['SPINNERET_MODELHOST_URL'] = host.url;
  process.env['SPINNERET_MANIFEST_URL'] = host.manifestUrl;
  process.env['SPINNERET_FIXTURES_URL'] = fixtures.url;
  return async () => {
    await Promise.allSettled([app.close(), gateway.close(), host.close(), fixtures.close()]);
    money.stop();
    await coordinator.close();
    await network.close().catch(() => undefined);
    await store.close();
    // The schema goes with the run.
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  };
}
