/**
 * The one wiring of a coordinator with everything a network needs, from a checked
 * configuration (operator/config.ts): the store (PostgreSQL or PGlite), the model catalog,
 * verification (canaries, replication, quarantine, receipts), money (ledger, prices, deposits,
 * billing, settlement, payouts on the sandbox chain or TON through toncenter), the published
 * network facts, the fleet, metrics (process, jobs, HTTP, money, verification), `/readyz`, and
 * the relay. `spinneret coordinator`, `npm start` and the browser tests' setup all start here.
 * Each part is set up from the configuration by a module of its own under `wiring/`; this file
 * only puts them together, in order, and closes them.
 */
import type { Logger as Pino } from 'pino';
import type { Registry } from 'prom-client';
import { type Coordinator, createCoordinator, type CoordinatorOptions } from '../coordinator/app.ts';
import type { Money } from '../coordinator/earnings/local.ts';
import { createNetworkInfo } from '../coordinator/network/network.ts';
import { priceRoutes } from '../coordinator/prices/routes.ts';
import type { SqlStore } from '../coordinator/store/sql-store.ts';
import type { Verification } from '../coordinator/verification/service.ts';
import type { CoordinatorConfig } from './config.ts';
import { asLogger } from './log.ts';
import { loadCatalog } from './wiring/catalog.ts';
import { configuredReplicaId, openClusterReplica, replicaCoordinatorOptions } from './wiring/cluster.ts';
import { ensureLocalKeys, type LocalKeys } from './wiring/local-keys.ts';
import { processRegistry, registerNodeMetrics } from './wiring/metrics.ts';
import { moneyHandover, moneySingletons, payoutRules, startConfiguredMoney } from './wiring/money.ts';
import { databaseLabel, openConfiguredStore } from './wiring/store.ts';
import { startConfiguredVerification } from './wiring/verification.ts';

export type { LocalKeys } from './wiring/local-keys.ts';

export interface CoordinatorNode {
  url: string;
  coordinator: Coordinator;
  money: Money;
  verification: Verification;
  store: SqlStore;
  registry: Registry;
  /** Present with `local.keysFile`. */
  localKeys: LocalKeys | undefined;
  /** Stops taking work, lets running jobs finish for `drainTimeout`, books what finished, closes. */
  close(): Promise<void>;
}

export interface StartOptions {
  config: CoordinatorConfig;
  log: Pino;
  /** An open store instead of the configured database (tests use a schema of their own); closed by the caller. */
  store?: SqlStore;
  /** Extra coordinator options (tests): a file logger, shorter sweeps. */
  coordinator?: Partial<CoordinatorOptions>;
}

export async function startCoordinatorNode(options: StartOptions): Promise<CoordinatorNode> {
  const { config, log } = options;
  const registry = processRegistry();
  const catalog = await loadCatalog(config.manifestUrl, log);
  const replicaId = configuredReplicaId(config);
  const store = options.store ?? (await openConfiguredStore(config, log, replicaId));
  const replica = replicaId === undefined ? undefined : await openClusterReplica(config, replicaId, store, log);
  const verification = await startConfiguredVerification(config, store, log);
  if (replica !== undefined) {
    // Quarantines and benches written by any replica shut devices and wallets out on all of them.
    replica.policy.start((ids) => verification.refreshShared(ids));
    verification.onShared((ids) => replica.policy.changed(ids));
    await replica.policy.read();
  }
  // Replicas: settlement, payouts and the deposit watcher run where the singleton lock is.
  const money = await startConfiguredMoney(config, store, verification, log, replica === undefined);
  const networkInfo = createNetworkInfo({
    db: store.db,
    connected: () => coordinator.stats().contributors,
    payouts: payoutRules(config),
  });
  registerNodeMetrics(registry, store, money, replica);
  const walletDomains = config.walletDomains ?? (config.network === 'local' ? ['127.0.0.1', 'localhost'] : []);
  const coordinator = createCoordinator({
    store,
    catalog,
    verification,
    billing: money.billing,
    onJobDone: (done) => {
      log.debug({ jobId: done.jobId, contributorId: done.contributorId, model: done.model, role: done.role }, 'job done');
      money.onJobDone(done);
    },
    publicRoutes: [money.routes, priceRoutes(), networkInfo.routes()],
    ...(money.publicKeys !== undefined && { walletPublicKeys: money.publicKeys }),
    walletDomains,
    ...(config.appUrl !== undefined && { appUrl: config.appUrl }),
    // The operator's key routes (list, revoke) answer to the configured token, not only the environment's.
    ...(config.operatorToken !== undefined && { operatorToken: config.operatorToken }),
    leaseMs: config['jobs.lease'],
    heartbeatMs: config['jobs.heartbeat'],
    maxAttempts: config['jobs.maxAttempts'],
    maxQueued: config['jobs.maxQueued'],
    logger: asLogger(log),
    registry,
    readiness: async () => {
      await store.db.query('SELECT 1');
      return null;
    },
    ...(replica !== undefined && replicaCoordinatorOptions(replica)),
    ...options.coordinator,
  });
  const handover = moneyHandover(store, money);
  if (replica !== undefined) {
    const done = await replica.recoverOwn(handover);
    if (done.failed + done.released + done.charged > 0)
      log.info({ replica: replica.id, ...done }, 'recovered what this replica left before a restart');
  }
  const localKeys = config['local.keysFile'] === undefined ? undefined : await ensureLocalKeys(config, coordinator, store, money, log);
  const server = await coordinator.listen({ port: config['listen.port'], host: config['listen.host'] });
  replica?.start(moneySingletons(money), handover);
  log.info(
    {
      url: server.url,
      network: config.network,
      chain: money.chainName,
      hotWallet: money.hotWalletAddress,
      depositAddress: money.depositAddress,
      database: databaseLabel(config, options.store !== undefined),
      ...(replica !== undefined && { replica: replica.id }),
    },
    'coordinator listening',
  );
  let closing: Promise<void> | null = null;
  return {
    url: server.url,
    coordinator,
    money,
    verification,
    store,
    registry,
    localKeys,
    close() {
      closing ??= (async () => {
        log.info({ drainMs: config.drainTimeout }, 'draining');
        await coordinator.drain(config.drainTimeout);
        await server.close().catch(() => undefined);
        await money.idle();
        money.stop();
        await replica?.close();
        await verification.idle();
        if (options.store === undefined) await store.close();
        log.info('stopped');
      })();
      return closing;
    },
  };
}
