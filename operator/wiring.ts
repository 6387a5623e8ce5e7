/**
 * The one wiring of a coordinator with everything a network needs, from a checked
 * configuration (operator/config.ts): the store (PostgreSQL or PGlite), the model catalog,
 * verification (canaries, replication, quarantine, receipts), money (ledger, prices, deposits,
 * billing, settlement, payouts on the sandbox chain or TON through toncenter), the published
 * network facts, the fleet, metrics (process, jobs, HTTP, money, verification), `/readyz`, and
 * the relay. `spinneret coordinator`, `npm start` and the browser tests' setup all start here.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Address } from '@ton/core';
import type { Logger as Pino } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { type Coordinator, createCoordinator, type CoordinatorOptions } from '../coordinator/app.ts';
import { startMoney, type Money } from '../coordinator/earnings/local.ts';
import { ModelCatalog } from '../coordinator/models/catalog.ts';
import { createNetworkInfo } from '../coordinator/network/network.ts';
import { priceRoutes } from '../coordinator/prices/routes.ts';
import { openStore } from '../coordinator/store/index.ts';
import type { SqlStore } from '../coordinator/store/sql-store.ts';
import { isDatabaseUnavailable, type SqlClient } from '../coordinator/store/sql.ts';
import { startVerification } from './verification.ts';
import type { KnownAnswer } from '../coordinator/verification/canaries.ts';
import type { Verification } from '../coordinator/verification/service.ts';
import type { CoordinatorConfig } from './config.ts';
import { asLogger, lineCallback } from './log.ts';
import { hostname } from 'node:os';
import { openReplica, type Replica } from '../coordinator/cluster/replica.ts';
import { chargeDoneUncharged } from '../coordinator/leases/restart.ts';
import { registerClusterMetrics } from '../coordinator/cluster/metrics.ts';

/** Keys of a local network (`local.keysFile`): the gateway's and the demo requester's. */
export interface LocalKeys {
  gateway: { id: string; secret: string; depositMemo: string };
  demo: { id: string; secret: string; depositMemo: string };
}

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

/** The environment the money wiring reads, from the checked configuration. */
function moneyEnv(config: CoordinatorConfig): Record<string, string | undefined> {
  const sandbox = config['ton.chain'] === 'sandbox';
  return {
    SPINNERET_TON_NETWORK: sandbox ? 'sandbox' : config.network,
    SPINNERET_TON_ENDPOINT: config['ton.endpoint'],
    SPINNERET_TON_API_KEY: config['ton.apiKey'],
    SPINNERET_HOT_WALLET_MNEMONIC: config['hotWallet.mnemonic'],
    SPINNERET_HOT_WALLET_MNEMONIC_FILE: config['hotWallet.mnemonicFile'],
    SPINNERET_DEPOSIT_ADDRESS: config['deposits.address'],
    SPINNERET_BUDGET_MEMO: config['deposits.budgetMemo'],
    SPINNERET_OPERATOR_TOKEN: config.operatorToken,
  };
}

/** `<host>-<pid>` in the replica id alphabet. */
function defaultReplicaId(): string {
  const host = hostname()
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 20);
  return `${host === '' ? 'replica' : host}-${process.pid}`;
}

/** Takes the replica's lock and joins the bus; when its database locks are lost it stops (SIGTERM: drain). */
async function openClusterReplica(config: CoordinatorConfig, replicaId: string, store: SqlStore, log: Pino): Promise<Replica> {
  const databaseUrl = config['database.url'];
  const natsUrl = config['cluster.nats'];
  if (databaseUrl === undefined || natsUrl === undefined) throw new Error('cluster.nats needs database.url');
  return openReplica({
    replicaId,
    natsUrl,
    databaseUrl,
    schema: config['database.schema'] ?? 'public',
    db: store.db,
    clock: { now: () => Date.now() },
    logger: asLogger(log.child({ component: 'cluster' })),
    onLost: () => process.kill(process.pid, 'SIGTERM'),
  });
}

/** Loads the catalog, waiting up to `waitMs` for a model host that is starting too. */
async function loadCatalog(url: string, log: Pino, waitMs = 30_000): Promise<ModelCatalog> {
  const until = Date.now() + waitMs;
  for (let delay = 200; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      return await ModelCatalog.load(url);
    } catch (err) {
      if (Date.now() + delay > until) throw err;
      log.warn({ manifestUrl: url, err: err instanceof Error ? err.message : String(err) }, 'model manifest not readable yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** Canary answers for ONNX decoders and `infer` models of the manifest (none, logged, when they cannot be computed). */
async function generateKnownAnswers(manifestUrl: string, log: Pino): Promise<KnownAnswer[]> {
  const answers: KnownAnswer[] = [];
  try {
    const { onnxGenerateKnownAnswers } = await import('./known-answers/onnx-answers.ts');
    const generated = await onnxGenerateKnownAnswers({ manifestUrl, count: 32 });
    log.info({ component: 'verification', knownAnswers: generated.length }, 'known answers computed for ONNX generation models');
    answers.push(...generated);
  } catch (err) {
    log.error({ component: 'verification', err }, 'no known answers for ONNX generation models: they are checked by replicas only');
  }
  try {
    const { onnxInferKnownAnswers } = await import('./known-answers/onnx-infer-answers.ts');
    const inferred = await onnxInferKnownAnswers({ manifestUrl, count: 32 });
    log.info({ component: 'verification', knownAnswers: inferred.length }, 'known answers computed for ONNX infer models');
    answers.push(...inferred);
  } catch (err) {
    log.error({ component: 'verification', err }, 'no known answers for ONNX infer models: they are checked by replicas only');
  }
  return answers;
}

export async function startCoordinatorNode(options: StartOptions): Promise<CoordinatorNode> {
  const { config, log } = options;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const catalog = await loadCatalog(config.manifestUrl, log);
  const replicaId = config['cluster.nats'] === undefined ? undefined : (config['cluster.replicaId'] ?? defaultReplicaId());
  const store =
    options.store ??
    (await openStore({
      log: (message: string, err: unknown) => log.error({ component: 'store', err }, message),
      ...(config['database.url'] === undefined
        ? { dataDir: config['database.dataDir'] }
        : { databaseUrl: config['database.url'], ...(config['database.schema'] !== undefined && { schema: config['database.schema'] }) }),
      ...(replicaId !== undefined && { replicaId }),
    }));
  const replica = replicaId === undefined ? undefined : await openClusterReplica(config, replicaId, store, log);
  // Known answers for the manifest's ONNX generation and infer models, computed here on the CPU from their
  // pinned files; without them (the host unreachable, a file off its pin) those models are checked by replicas only.
  const knownAnswers = await generateKnownAnswers(config.manifestUrl, log);
  const verification = await startVerification({
    store,
    knownAnswers,
    verdictWindowMs: config['verification.verdictWindow'],
    probationCreditCap: config['verification.probationCreditCap'],
    canaryDelayMs: config['verification.canaryDelay'],
    policy: {
      canaryRate: config['verification.canaryRate'],
      baseReplicationRate: config['verification.replicationRate'],
      minReplicationRate: config['verification.minReplicationRate'],
      quarantineAfter: config['verification.quarantineAfter'],
    },
    log: (message, err) => log.error({ component: 'verification', ...(err === undefined ? {} : { err }) }, message),
  });
  if (replica !== undefined) {
    // Quarantines and benches written by any replica shut devices and wallets out on all of them.
    replica.policy.start(() => verification.refreshShared());
    verification.onShared(() => replica.policy.changed());
    await replica.policy.read();
  }
  const money = await startMoney({
    store,
    threshold: config['payouts.threshold'],
    windowMs: config['payouts.verificationWindow'],
    payoutIntervalMs: config['payouts.interval'],
    settleIntervalMs: config['payouts.settleInterval'],
    depositIntervalMs: config['deposits.interval'],
    checkBudgetLimit: config['deposits.checkBudgetLimit'],
    env: moneyEnv(config),
    log: lineCallback(log, 'money'),
    verification,
    // Replicas: settlement, payouts and the deposit watcher run where the singleton lock is.
    singletons: replica === undefined,
  });
  const released = (jobId: string, reason: string): void => money.billing.relay.ended(jobId, reason);
  const networkInfo = createNetworkInfo({
    db: store.db,
    connected: () => coordinator.stats().contributors,
    payouts: {
      thresholdNano: config['payouts.threshold'].toString(),
      verificationWindowMs: config['payouts.verificationWindow'],
      intervalMs: config['payouts.interval'],
      chain: config['ton.chain'] === 'sandbox' ? 'sandbox' : config.network === 'mainnet' ? 'mainnet' : 'testnet',
      firstAt: Date.now() + config['payouts.interval'],
    },
  });
  registerMoneyMetrics(registry, store.db, money);
  registerVerificationMetrics(registry, store.db);
  registerStoreMetrics(registry, store);
  if (replica !== undefined) registerClusterMetrics(registry, replica);
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
    ...(replica !== undefined && {
      // Each replica ends only its own jobs; the singleton holder those of dead replicas.
      recoverUnfinished: false,
      cluster: (relay, find) => replica.routing.attach(relay, find),
      walletSessions: replica.walletSessions,
      forwarding: replica.forwarding,
      proofPayloads: replica.proofPayloads,
    }),
    ...options.coordinator,
  });
  // Replicas: what a stopped process left — unfinished jobs, orphaned reservations, delivered jobs never charged.
  const handover = {
    released,
    money: {
      releaseOrphaned: (replicaId: string | null) => money.billing.releaseOrphaned(replicaId),
      chargeUncharged: async (replicaId: string | null) => {
        const charged = await chargeDoneUncharged({ store, billing: money.billing, onJobDone: money.onJobDone }, replicaId);
        await money.idle();
        return charged;
      },
    },
  };
  if (replica !== undefined) {
    const done = await replica.recoverOwn(handover);
    if (done.failed + done.released + done.charged > 0)
      log.info({ replica: replica.id, ...done }, 'recovered what this replica left before a restart');
  }
  const localKeys = config['local.keysFile'] === undefined ? undefined : await ensureLocalKeys(config, coordinator, store, money, log);
  const server = await coordinator.listen({ port: config['listen.port'], host: config['listen.host'] });
  replica?.start(
    {
      start: () => {
        money.earnings.start();
        money.deposits.start();
      },
      stop: () => {
        money.earnings.stop();
        money.deposits.stop();
      },
    },
    handover,
  );
  log.info(
    {
      url: server.url,
      network: config.network,
      chain: money.chainName,
      hotWallet: money.hotWalletAddress,
      depositAddress: money.depositAddress,
      database: config['database.url'] === undefined && options.store === undefined ? `PGlite ${config['database.dataDir']}` : 'PostgreSQL',
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

/** Reuses the keys in `local.keysFile` when the database still has them; else creates, funds and saves new ones. */
async function ensureLocalKeys(
  config: CoordinatorConfig,
  coordinator: Coordinator,
  store: SqlStore,
  money: Money,
  log: Pino,
): Promise<LocalKeys> {
  const path = config['local.keysFile'] ?? '';
  if (existsSync(path)) {
    try {
      const saved = JSON.parse(readFileSync(path, 'utf8')) as LocalKeys;
      const { rows } = await store.db.query('SELECT id FROM api_keys WHERE id = $1 OR id = $2', [saved.gateway.id, saved.demo.id]);
      if (rows.length === 2) return saved;
    } catch (err) {
      log.warn({ path, err: err instanceof Error ? err.message : String(err) }, 'local keys file not usable; making new keys');
    }
  }
  const keys: LocalKeys = {
    gateway: await coordinator.createApiKey('local gateway', { jobsPerMinute: 600, maxInFlight: 16 }),
    demo: await coordinator.createApiKey('demo requester', { jobsPerMinute: 600, maxInFlight: 8 }),
  };
  // Requesters prepay and checks are paid from the network's budget: the faucet funds both with
  // real transfers on the emulated chain, booked by the deposit watcher like any deposit.
  for (const memo of [keys.gateway.depositMemo, keys.demo.depositMemo, money.budgetMemo]) await money.fund(memo, config['local.fund']);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(keys, null, 2), { mode: 0o600 });
  chmodSync(path, 0o600);
  log.info(
    { path, gatewayKeyId: keys.gateway.id, demoKeyId: keys.demo.id, fundNano: config['local.fund'].toString() },
    'local keys created and funded',
  );
  return keys;
}

const toNumber = (value: unknown): number => Number(value ?? 0);

/**
 * `read`, or its last good value while the database is unreachable: `/metrics` keeps answering
 * through a database outage (the outage itself shows in `spinneret_job_records_buffered`).
 */
function lastGood<T>(read: () => Promise<T>, initial: T): () => Promise<T> {
  let last = initial;
  return async () => {
    try {
      last = await read();
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
    }
    return last;
  };
}

/** A counter whose value is a total kept in the database (monotone, survives restarts). */
function dbCounter(registry: Registry, name: string, help: string, read: () => Promise<number>): void {
  const value = lastGood(read, 0);
  new Counter({
    name,
    help,
    registers: [registry],
    async collect() {
      this.reset();
      this.inc(await value());
    },
  });
}

/** Deposits and payouts from the ledger, the hot wallet's balance from the chain (read at most every 30 s). */
function registerMoneyMetrics(registry: Registry, db: SqlClient, money: Money): void {
  const deposits = async () =>
    (
      await db.query<{ n: unknown; total: unknown }>(
        `SELECT count(*) AS n, coalesce(sum(amount), 0) AS total FROM ledger_entries WHERE account = 'chain:deposits' AND amount > 0`,
      )
    ).rows[0];
  const payouts = async () =>
    (
      await db.query<{ n: unknown; total: unknown }>(
        `SELECT count(DISTINCT e.txn_id) AS n, coalesce(sum(e.amount), 0) AS total FROM ledger_entries e JOIN ledger_txns t ON t.id = e.txn_id
         WHERE t.kind = 'payout.confirm' AND e.account LIKE 'contributor:%:in-flight'`,
      )
    ).rows[0];
  dbCounter(registry, 'spinneret_deposits_total', 'Deposits booked from the chain.', async () => toNumber((await deposits())?.n));
  dbCounter(registry, 'spinneret_deposits_nanoton_total', 'nanoTON deposited (booked).', async () => toNumber((await deposits())?.total));
  dbCounter(registry, 'spinneret_payouts_total', 'Payouts confirmed on chain.', async () => toNumber((await payouts())?.n));
  dbCounter(registry, 'spinneret_payouts_nanoton_total', 'nanoTON paid to contributors (confirmed).', async () =>
    toNumber((await payouts())?.total),
  );
  let cached: { at: number; value: bigint } | null = null;
  const hotWallet = Address.parse(money.hotWalletAddress);
  new Gauge({
    name: 'spinneret_hot_wallet_balance_nanoton',
    help: "The hot wallet's balance on chain, nanoTON.",
    registers: [registry],
    async collect() {
      if (cached === null || Date.now() - cached.at > 30_000) cached = { at: Date.now(), value: await money.balanceOf(hotWallet) };
      this.set(Number(cached.value));
    },
  });
}

/** The job write buffer: records waiting for the database, and those it refused and set aside. */
function registerStoreMetrics(registry: Registry, store: SqlStore): void {
  new Counter({
    name: 'spinneret_job_records_set_aside_total',
    help: 'Job records the database refused for their data (set aside with their error, never retried).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(store.setAsideJobs.count);
    },
  });
  new Gauge({
    name: 'spinneret_job_records_buffered',
    help: 'Job records put and not yet written to the database (grows while it is unreachable).',
    registers: [registry],
    collect() {
      this.set(store.bufferedJobs);
    },
  });
}

const PASSED = ['canary-pass', 'replica-agree', 'tie-break-pass'];
const FAILED = ['canary-fail', 'replica-disagree', 'tie-break-fail'];

/** Checks passed and failed, quarantines, from the verification records. */
function registerVerificationMetrics(registry: Registry, db: SqlClient): void {
  const kinds = lastGood(
    async () => (await db.query<{ kind: string; n: unknown }>(`SELECT kind, count(*) AS n FROM verification_records GROUP BY kind`)).rows,
    [],
  );
  const quarantined = lastGood(
    async () =>
      toNumber(
        (
          await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM verification_quarantines WHERE until_at IS NULL OR until_at > $1`, [
            Date.now(),
          ])
        ).rows[0]?.n,
      ),
    0,
  );
  new Counter({
    name: 'spinneret_verification_checks_total',
    help: 'Verification findings by kind (canary, replica, tie-break) and result (passed, failed).',
    labelNames: ['check', 'result'],
    registers: [registry],
    async collect() {
      const rows = await kinds();
      this.reset();
      for (const kind of [...PASSED, ...FAILED]) {
        const n = toNumber(rows.find((r) => r.kind === kind)?.n);
        this.inc({ check: kind.replace(/-(pass|fail|agree|disagree)$/, ''), result: PASSED.includes(kind) ? 'passed' : 'failed' }, n);
      }
    },
  });
  dbCounter(registry, 'spinneret_verification_quarantines_total', 'Contributors quarantined (each time).', async () =>
    toNumber((await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM verification_records WHERE kind = 'quarantined'`)).rows[0]?.n),
  );
  new Gauge({
    name: 'spinneret_contributors_quarantined',
    help: 'Contributors in quarantine now.',
    registers: [registry],
    async collect() {
      this.set(await quarantined());
    },
  });
}
