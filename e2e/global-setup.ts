/**
 * Starts, once for all browser tests: the model host the app uses, a second host with the
 * web-llm fixtures and switchable corruption (so those tests cannot disturb the others), and
 * the built app. Their URLs reach the tests through the environment.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import pino from 'pino';
import { toNano } from '@ton/core';
import { openStore } from '../coordinator/store/index.ts';
import { loadCoordinatorConfig } from '../operator/config.ts';
import { createLog } from '../operator/log.ts';
import { startCoordinatorNode } from '../operator/wiring.ts';
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
    // e2e/integrity.spec.ts toggles corruption over HTTP.
    corruptRoutes: true,
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
  const log = createLog('coordinator', { destination: pino.destination({ dest: logFile, sync: true }) });
  const store = await openStore({ databaseUrl, schema });
  // The operator's wiring with test timings: money on the sandbox chain with a short window and
  // frequent payouts, so the earnings test sees it all; verified work with replication on and no
  // canaries, since the earnings test checks the exact amount two requester jobs earn (a canary
  // is credited like any job). A replica needs a second contributor of the same engine class, so
  // one tab gets none.
  const config = loadCoordinatorConfig({
    env: {},
    fileText: JSON.stringify({
      network: 'local',
      listen: { port: 0 },
      manifestUrl: host.manifestUrl,
      jobs: { lease: '30s', heartbeat: '5s' },
      verification: { canaryRate: 0, verdictWindow: '6s' },
      payouts: { verificationWindow: '8s', threshold: '1', interval: '3s', settleInterval: '500ms' },
      drainTimeout: '1s',
    }),
  });
  const node = await startCoordinatorNode({ config, log, store });
  const { coordinator, money } = node;
  const network = { url: node.url };
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
    await node.close();
    await store.close();
    // The schema goes with the run.
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  };
}
