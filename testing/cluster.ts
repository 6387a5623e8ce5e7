/**
 * Test support (not used by the app) for coordinators run as replicas in one process: each on
 * its own store handle of one PostgreSQL schema and its own NATS connection, as replicas run
 * them, with the real verification and money side where a test needs them, and real
 * Contributor loops connected to one of them.
 */
import { WebSocket } from 'ws';
import { seededRandom } from '../protocol/random.ts';
import { Contributor } from '../worker/network/contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../worker/network/identity.ts';
import { type Coordinator, createCoordinator } from '../coordinator/app.ts';
import { systemClock } from '../coordinator/clock.ts';
import { type Bus, connectBus } from '../coordinator/cluster/bus.ts';
import { JobForwarding } from '../coordinator/cluster/forwarding.ts';
import { PolicySync } from '../coordinator/cluster/policy-sync.ts';
import { recordedOwner, recordedResult } from '../coordinator/cluster/replica.ts';
import { Routing, type RoutingOptions } from '../coordinator/cluster/routing.ts';
import type { Logger } from '../coordinator/log.ts';
import { startMoney } from '../coordinator/earnings/local.ts';
import { openStore } from '../coordinator/store/index.ts';
import type { SqlDb } from '../coordinator/store/sql.ts';
import type { SqlStore } from '../coordinator/store/sql-store.ts';
import { TEST_DATABASE_URL } from '../coordinator/store/testing.ts';
import { KnownAnswerCanaries } from '../coordinator/verification/canaries.ts';
import { VerificationPolicy } from '../coordinator/verification/policy.ts';
import { createVerification, type Verification } from '../coordinator/verification/service.ts';
import { tinyEmbedKnownAnswers } from '../operator/known-answers/tiny-embed.ts';
import { disposeStore, EmbedRuntime } from './verification.ts';

export const NATS_URL = process.env['TEST_NATS_URL'] ?? 'nats://127.0.0.1:4222';
export const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Polls `read` every 50 ms until it gives a value, or throws naming `what` after `timeoutMs`. */
export const until = async <T>(what: string, read: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> => {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

/**
 * What one test file's replicas leave behind: what to stop (in reverse order) and the store
 * handles of each schema. The first handle opened on a schema drops it; call {@link dispose}
 * in `afterAll`.
 */
export class ReplicaKit {
  readonly cleanup: (() => Promise<unknown> | void)[] = [];
  readonly #schemas = new Map<string, SqlStore[]>();

  /** A store handle on `schema` for replica `replicaId` (through `databaseUrl`, a relay to the test database, when given). */
  async store(schema: string, replicaId: string, databaseUrl = TEST_DATABASE_URL): Promise<SqlStore> {
    const store = await openStore({ databaseUrl, schema, replicaId });
    this.#schemas.set(schema, [...(this.#schemas.get(schema) ?? []), store]);
    return store;
  }

  async dispose(): Promise<void> {
    for (const fn of this.cleanup.reverse()) await Promise.resolve(fn()).catch(() => undefined);
    for (const stores of this.#schemas.values()) {
      for (const s of stores.slice(1)) await s.close();
      if (stores[0] !== undefined) await disposeStore(stores[0]);
    }
  }
}

export interface ChecksConfig {
  canaryRate: number;
  replicationRate: number;
  /** Canaries drawn this long after the job (with a draw that always delays). */
  canaryDelayMs?: number;
  quarantineAfter?: number;
  /** Seeds the policy's draws; the canaries' draws take the next one. */
  seed: number;
}

/** Verification with fixed rates (no decay below them) and tiny-embed's known answers. */
export const testVerification = (store: { db: SqlDb }, checks: ChecksConfig): Verification =>
  createVerification({
    db: store.db,
    policy: new VerificationPolicy({
      canaryRate: checks.canaryRate,
      baseReplicationRate: checks.replicationRate,
      minReplicationRate: checks.replicationRate,
      decayPerCleanJob: 1,
      failureBoost: 1,
      quarantineAfter: checks.quarantineAfter ?? 3,
      windowMs: 3_600_000,
      random: seededRandom(checks.seed),
      clock: systemClock,
    }),
    canaries: new KnownAnswerCanaries(tinyEmbedKnownAnswers(4, 7), seededRandom(checks.seed + 1)),
    clock: systemClock,
    verdictWindowMs: 60_000,
    ...(checks.canaryDelayMs !== undefined && { canaryDelayMs: checks.canaryDelayMs, random: () => 0.99 }),
  });

/** A replica's money side with nothing run on a timer (payouts and settling an hour apart) and no singletons. */
export const testMoney = (store: SqlStore, verification?: Verification): ReturnType<typeof startMoney> =>
  startMoney({
    store,
    threshold: 1n,
    windowMs: 3_600_000,
    payoutIntervalMs: 3_600_000,
    settleIntervalMs: 3_600_000,
    env: {},
    ...(verification !== undefined && { verification }),
    singletons: false,
  });

export interface PaidReplica {
  store: SqlStore;
  coordinator: Coordinator;
  routing: Routing;
  verification: Verification;
  money: Awaited<ReturnType<typeof startMoney>>;
  url: string;
}

/** What a test watches of a replica (its log, what its bus reports, the bus itself, to wrap it) and where it puts a fault. */
export interface ReplicaWatch {
  logger?: Logger;
  onBusError?: (message: string, err: unknown) => void;
  bus?: (bus: Bus) => Bus;
  routing?: Partial<Pick<RoutingOptions, 'deadAfterMs' | 'claimTimeoutMs' | 'lendForMs'>>;
  /** The database through a relay (default: the test database itself). */
  databaseUrl?: string;
  /** The bus as job forwarding uses it: a test may fail its requests, as a peer briefly gone. */
  forwardingBus?: (bus: Bus) => Bus;
  /** Serves the operator routes with this token. */
  operatorToken?: string;
}

/**
 * A replica with verification, billing and earnings, routing and job forwarding. `policy`: also
 * shares quarantines and benches over NATS as operator/wiring.ts does (`deaf`: it sends the word
 * but missed it, as when its NATS connection was down, so only the database can stop its credits).
 */
export const paidReplica = async (
  kit: ReplicaKit,
  schema: string,
  id: string,
  checks: Omit<ChecksConfig, 'seed'> & { policy?: { deaf: boolean } },
  watch: ReplicaWatch = {},
): Promise<PaidReplica> => {
  const store = await kit.store(schema, id, watch.databaseUrl);
  const connected = await connectBus(NATS_URL, `test-${id}`, watch.onBusError ?? (() => undefined));
  const bus = watch.bus?.(connected) ?? connected;
  const logger = watch.logger ?? quiet;
  const prefix = `spinneret.${schema}`;
  const routing = new Routing({ replicaId: id, bus, prefix, clock: systemClock, logger, heartbeatMs: 100, ...watch.routing });
  const forwarding = new JobForwarding({
    replicaId: id,
    bus: watch.forwardingBus?.(bus) ?? bus,
    prefix,
    logger,
    peers: () => routing.peers,
    recordedOwner: (jobId) => recordedOwner(store.db, jobId),
    recordedResult: (jobId) => recordedResult(store.db, jobId),
  });
  routing.onPeerLost((peer) => forwarding.lost(peer));
  const verification = testVerification(store, { ...checks, seed: 3 });
  await verification.start();
  let policy: PolicySync | undefined;
  if (checks.policy !== undefined) {
    policy = new PolicySync({ replicaId: id, bus, prefix, logger });
    if (!checks.policy.deaf) policy.start((ids) => verification.refreshShared(ids));
    const sync = policy;
    verification.onShared((ids) => sync.changed(ids));
  }
  const money = await testMoney(store, verification);
  const coordinator = createCoordinator({
    store,
    logger,
    recoverUnfinished: false,
    verification,
    billing: money.billing,
    onJobDone: (done) => money.onJobDone(done),
    cluster: (relay, find) => routing.attach(relay, find),
    forwarding,
    ...(watch.operatorToken !== undefined && { operatorToken: watch.operatorToken }),
  });
  const server = await coordinator.listen();
  routing.start();
  forwarding.start();
  await policy?.read(); // as a replica starts: the quarantines and benches in force
  kit.cleanup.push(async () => {
    routing.stop();
    policy?.stop();
    money.stop();
    await coordinator.close();
    await server.close();
    await bus.close();
    await money.idle();
    await verification.idle();
  });
  return { store, coordinator, routing, verification, money, url: server.url };
};

/**
 * A Contributor loop offering embed jobs on `url`, connected (it has its id); stopped on
 * cleanup. `keys`: the device's key store (a new device by default).
 */
export const startContributor = async (
  kit: ReplicaKit,
  url: string,
  runtime: EmbedRuntime,
  keys = new MemoryKeyStore(),
  slots?: number,
): Promise<Contributor> => {
  const c = new Contributor({
    coordinatorUrl: `${url.replace(/^http/, 'ws')}/v1/contributor`,
    runtime,
    identity: await loadOrCreateIdentity(keys),
    consent: ['embed'],
    client: { name: 'test', version: '0.0.0' },
    webSocket: WebSocket,
    ...(slots !== undefined && { slots }),
  });
  c.start();
  kit.cleanup.push(() => c.stop({ drain: false }));
  await until('the contributor to connect', () => c.status().contributorId ?? undefined);
  return c;
};

/** A connected contributor whose record has the payout `wallet` a proven wallet link leaves; its id. */
export const walletContributor = async (kit: ReplicaKit, r: PaidReplica, runtime: EmbedRuntime, wallet: string): Promise<string> => {
  const c = await startContributor(kit, r.url, runtime);
  const id = await until('the contributor to connect', () => c.status().contributorId ?? undefined);
  await until('the contributor record', async () => {
    const { rows } = await r.store.db.query('UPDATE contributors SET wallet = $1 WHERE id = $2 RETURNING id', [wallet, id]);
    return rows.length === 1 ? true : undefined;
  });
  return id;
};

/** Holds each job until `letGo` is called. */
export class HeldRuntime extends EmbedRuntime {
  started = 0;
  letGo: () => void = () => undefined;
  override async run(...args: Parameters<EmbedRuntime['run']>): ReturnType<EmbedRuntime['run']> {
    this.started++;
    await new Promise<void>((resolve) => (this.letGo = resolve));
    return super.run(...args);
  }
}
