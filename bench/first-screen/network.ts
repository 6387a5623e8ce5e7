/**
 * A local network for the first-screen benches, as `npm start` runs it (model host, coordinator
 * on in-memory PGlite with money and verified work, the network's demand route, the built app),
 * and an open-loop requester: jobs arrive at a fixed rate whether or not anyone serves them, as a
 * network's demand does (the demo requester of `npm start` waits for each answer instead).
 */
import { toNano } from '@ton/core';
import { createCoordinator } from '../../coordinator/app.ts';
import { startMoney } from '../../coordinator/earnings/local.ts';
import { ModelCatalog } from '../../coordinator/models/catalog.ts';
import { createNetworkInfo } from '../../coordinator/network/network.ts';
import { priceRoutes } from '../../coordinator/prices/routes.ts';
import { openStore } from '../../coordinator/store/index.ts';
import { startVerification } from '../../operator/verification.ts';
import { startModelHost } from '../../modelhost/server.ts';
import { RequesterClient } from '../../requester/client.ts';
import { demoJob } from '../../requester/demo.ts';
import { startAppServer } from '../../scripts/serve.ts';

export interface LocalNetwork {
  appUrl: string;
  coordinatorUrl: string;
  modelHostUrl: string;
  client: RequesterClient;
  close(): Promise<void>;
}

export async function startLocalNetwork(): Promise<LocalNetwork> {
  const models = await startModelHost({ port: 0 });
  const store = await openStore();
  const verification = await startVerification({ store, verdictWindowMs: 25_000 });
  const payouts = { threshold: 1_000_000n, windowMs: 30_000, intervalMs: 30_000 };
  const money = await startMoney({
    store,
    threshold: payouts.threshold,
    windowMs: payouts.windowMs,
    payoutIntervalMs: payouts.intervalMs,
    settleIntervalMs: 5_000,
    env: {},
    verification,
    log: () => undefined,
  });
  const networkInfo = createNetworkInfo({
    db: store.db,
    connected: () => coordinator.stats().contributors,
    payouts: {
      thresholdNano: payouts.threshold.toString(),
      verificationWindowMs: payouts.windowMs,
      intervalMs: payouts.intervalMs,
      chain: 'sandbox',
      firstAt: Date.now() + payouts.intervalMs,
    },
  });
  const coordinator = createCoordinator({
    store,
    catalog: await ModelCatalog.load(models.manifestUrl),
    verification,
    billing: money.billing,
    onJobDone: money.onJobDone,
    publicRoutes: [money.routes, priceRoutes(), networkInfo.routes()],
    logger: { info: () => undefined, warn: () => undefined, error: (m) => console.error(m) },
    ...(money.publicKeys !== undefined && { walletPublicKeys: money.publicKeys }),
  });
  const network = await coordinator.listen({ port: 0 });
  const key = await coordinator.createApiKey('bench requester', { jobsPerMinute: 600, maxInFlight: 64 });
  // Requesters prepay, and checks are paid from the network's budget: funded from the sandbox faucet, as `npm start` does.
  for (const memo of [key.depositMemo, money.budgetMemo]) await money.fund(memo, toNano('100'));
  const app = await startAppServer({ distDir: 'dist', port: 0, config: { manifestUrl: models.manifestUrl, coordinatorUrl: network.url } });
  return {
    appUrl: app.url,
    coordinatorUrl: network.url,
    modelHostUrl: models.url,
    client: new RequesterClient({ coordinatorUrl: network.url, apiKey: key.secret }),
    async close() {
      money.earnings.stop();
      await coordinator.drain(2000).catch(() => undefined);
      await Promise.allSettled([app.close(), network.close(), models.close()]);
      await store.close();
    },
  };
}

/** Sends one job every `intervalMs` (embeddings and chat in turn, as the demo does) without waiting for answers; returns a stop function and the counts. */
export function openLoopDemand(client: RequesterClient, intervalMs: number): { sent: () => number; done: () => number; stop: () => void } {
  let n = 0;
  let done = 0;
  const timer = setInterval(() => {
    const job = demoJob(n++, { embedModel: 'tiny-embed', chatModel: 'tiny-decoder' });
    client.run(job).then(
      () => done++,
      () => undefined,
    );
  }, intervalMs);
  return { sent: () => n, done: () => done, stop: () => clearInterval(timer) };
}
