/**
 * The coordinator: a blind relay between requesters (HTTP) and contributor workers
 * (WebSocket), per docs/protocol.md. It sees only metadata; payloads and results pass
 * through sealed. This module wires the slices together:
 *
 * - `sessions/`: the contributor WebSocket (challenge, hello, heartbeats, replacement);
 * - `leases/`: jobs in flight, their leases, results, expiry and re-queueing;
 * - `scheduler/`: which contributor gets which job;
 * - `requesters/`: the HTTP API, API keys and quotas;
 * - `metrics/`: `/metrics` in the Prometheus text format.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { matchedRoutes } from 'hono/route';
import type { Registry } from 'prom-client';
import { type Billing, renderBillingMetrics } from './billing/service.ts';
import { type Clock, consoleLogger, errorText, type Logger, systemClock } from './deps.ts';
import { Relay, type JobDone } from './leases/relay.ts';
import { recoverFromRestart } from './leases/restart.ts';
import { type Gauges, Metrics } from './metrics/metrics.ts';
import { ApiKeys, Quotas } from './requesters/keys.ts';
import { requesterRoutes } from './requesters/routes.ts';
import { RequesterActions } from './requesters/actions.ts';
import { RequesterChannels } from './requesters/channel.ts';
import type { SchedulerHooks } from './scheduler/scheduler.ts';
import { ContributorGateway } from './sessions/gateway.ts';
import type { RelayPort } from './sessions/session.ts';
import type { ConnectedContributor } from './leases/contributor.ts';
import { NonceBook } from './sessions/hello.ts';
import { firstResolver } from './sessions/bindings.ts';
import { problem, requestTargetGuard } from './http.ts';
import { keyRoutes } from './requesters/key-routes.ts';
import { bodyLimit } from 'hono/body-limit';
import { type EdgeLimits, resolveLimits } from './edges/limits.ts';

/** The ton_proof domains of a deployment: its public URL's host, or loopback when it has none. */
export function publicDomains(publicUrl: string | undefined): string[] {
  if (publicUrl === undefined || publicUrl === '') return ['127.0.0.1', 'localhost'];
  if (!URL.canParse(publicUrl)) throw new Error(`SPINNERET_PUBLIC_URL=${publicUrl} is not a URL; give e.g. https://spinneret.example.`);
  return [new URL(publicUrl).host];
}

/** `PUT /v1/jobs/:id/payload`: sealed payloads up to a frame, limited by its own route. */
const PAYLOAD_ROUTE = /^\/v1\/jobs\/[^/]+\/payload$/;
import { createFleetService, type FleetService } from './fleet/index.ts';
import type { ModelCatalog } from './models/catalog.ts';
import { engineClassOf } from '../protocol/engine-class.ts';
import { SqlStore } from './store/sql-store.ts';
import { isDatabaseUnavailable, type SqlDb } from './store/sql.ts';
import type { Store } from './store/types.ts';
import { createProofPayloads } from './wallets/proof-payloads.ts';
import type { PublicKeyLookup } from './wallets/public-key-lookup.ts';
import { walletRoutes } from './wallets/routes.ts';
import { WalletSessions } from './wallets/wallet-sessions.ts';
import { verdictRoutes, verificationRoutes } from './verification/routes.ts';
import type { Verification } from './verification/service.ts';

export type { Clock, Logger } from './deps.ts';
export type { ContributorView, JobView, SchedulerHooks } from './scheduler/scheduler.ts';
export type { JobDone } from './leases/relay.ts';

export interface CoordinatorOptions {
  store: Store;
  /** Time source for leases, heartbeats and quotas; default `Date.now`. */
  clock?: Clock;
  /** How long a contributor has to finish a job (and a requester to send its payload), ms. Default 60 000. */
  leaseMs?: number;
  /**
   * Extra lease time for a job whose model is not yet in the contributor's memory: its first
   * job downloads and compiles the model. Default: leaseMs.
   */
  loadAllowanceMs?: number;
  /** Attempts per job, re-assignments included. Default 3. */
  maxAttempts?: number;
  /** Most devices of one wallet connected at once (a further one is refused at `hello`); default 32. */
  maxDevicesPerWallet?: number;
  /** Workers ping at least this often; one silent for twice as long is dropped, ms. Default 15 000. */
  heartbeatMs?: number;
  /** How long a job may wait for a free contributor before it fails, ms. Default 2 × leaseMs. */
  maxWaitMs?: number;
  /** Most jobs waiting or queued at once; more are refused with 503. Default 10 000. */
  maxQueued?: number;
  /** How long a finished job's events stay for late subscribers, ms. Default 60 000. */
  retainMs?: number;
  /** Largest sealed result of one job, bytes. Default 64 MiB. */
  maxResultBytes?: number;
  /** How often leases and heartbeats are checked, real-time ms. Default 250. */
  sweepMs?: number;
  /** What `drain` tells workers to wait before reconnecting, ms. Default 5 000. */
  reconnectAfterMs?: number;
  /** Default: JSON lines on the console. Only unexpected errors are logged. */
  logger?: Logger;
  /** Extra scheduling rules (reputation, replication). */
  scheduler?: SchedulerHooks;
  /** Told of each job that ends with a final result (the ledger credits it); must not throw. */
  onJobDone?: (done: JobDone) => void;
  /** Verified work: canaries, replicas, verdicts, quarantine and receipts (`createVerification`, started). */
  verification?: Verification;
  /** More routes under `/v1` that need no API key (e.g. a contributor's earnings). */
  publicRoutes?: Hono[];
  /**
   * Hosts a wallet's `ton_proof` may name (host, or host:port); a host listed without a port
   * matches any port. Default: the host of `SPINNERET_PUBLIC_URL` when set, else
   * `['127.0.0.1', 'localhost']`; plus the host of `appUrl`.
   */
  walletDomains?: readonly string[];
  /** Where the contributor page is served; its host is allowed in wallet proofs. */
  appUrl?: string;
  /**
   * Database for kiosk and lab fleets (enrollment tokens, `/v1/enroll`, `/v1/fleet`). Default:
   * the store's own when it is SQL; without one the fleet routes are not served.
   */
  fleetDb?: SqlDb;
  /**
   * The models this network serves (the model host's manifest). Model facts (engine, builds,
   * files, tokenizer) are read here, never taken from a contributor's or requester's word.
   */
  catalog?: ModelCatalog;
  /** Reads wallet keys from the chain for `ton_proof`s of wallets other than v3R2/v4R2/v5R1 (e.g. `Money.publicKeys`). */
  walletPublicKeys?: PublicKeyLookup;
  /**
   * Prepaid jobs (`Money.billing`): a job reserves its maximum price or is refused with 402,
   * checks are paid from the network's budget, and `GET /v1/account` shows a key's balance.
   * Without it jobs are free (tests of the job flow alone).
   */
  billing?: Billing;
  /** Limits on what callers may hold (bodies, streams, sockets, payloads); default from the environment, see `edges/limits.ts`. */
  limits?: Partial<EdgeLimits>;
  /**
   * On the first `listen`, end the jobs a previous run left waiting, queued or leased in the
   * store (their sealed payloads lived only in its memory): each fails with `RESTARTED`, its
   * reservation goes back, and its requester can run it again. Default true; set false when
   * several coordinators share one store.
   */
  recoverUnfinished?: boolean;
  /**
   * Where the metrics go: the operator's wiring passes a registry that also carries the process,
   * money and verification metrics. Default: a registry of the coordinator's own.
   */
  registry?: Registry;
  /** Readiness beyond not draining (e.g. the database answers): null when ready, else why not. */
  readiness?: () => Promise<string | null>;
  /**
   * The operator's bearer token (default `SPINNERET_OPERATOR_TOKEN`): serves `GET
   * /v1/operator/keys` and `DELETE /v1/operator/keys/:id`. Without one they are not served.
   */
  operatorToken?: string;
  /**
   * Replicas (coordinator/cluster/): puts the routing between replicas in front of the relay,
   * as the contributor sessions see it. `find` gives this replica's connected contributors.
   */
  cluster?: (relay: Relay, find: (contributorId: string) => ConnectedContributor | undefined) => RelayPort;
  /** Wallet sessions (default: this process's own, in memory); replicas share theirs through the database. */
  walletSessions?: WalletSessions;
}

/** Counts for tests and health checks. */
export interface CoordinatorStats {
  contributors: number;
  /** Jobs waiting for a contributor or for their payload. */
  queued: number;
  running: number;
  jobs: { done: number; failed: number; cancelled: number };
  leaseExpiries: number;
  duplicates: number;
  /** Refused contributor messages by error code. */
  protocolErrors: Record<string, number>;
}

export interface Coordinator {
  /** Requester routes (`/v1/...`), `/healthz` and `/metrics`. */
  readonly app: Hono;
  /** Accepts a contributor WebSocket on `/v1/contributor` or a requester channel on `/v1/requester`; false for other paths (the socket is left alone). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Serves contributor WebSockets on an existing HTTP server's upgrades. */
  attach(server: Server): void;
  /** Serves the app and the WebSocket endpoint. Port 0 picks a free one; host defaults to 127.0.0.1. */
  listen(options?: { port?: number; host?: string }): Promise<{ url: string; close(): Promise<void> }>;
  /** Ends the jobs a previous run left unfinished (see {@link CoordinatorOptions.recoverUnfinished}); how many. Once per coordinator. */
  recover(): Promise<number>;
  /** Sends `drain`, stops assigning, waits up to `timeoutMs` for running jobs, then fails the rest and closes. */
  drain(timeoutMs: number): Promise<void>;
  /** Fails unfinished jobs, closes sockets and servers, flushes the store (the caller closes it). */
  close(): Promise<void>;
  /** Creates a requester API key; the secret is shown only here, with the memo its deposits carry. */
  createApiKey(
    label: string,
    limits?: { jobsPerMinute?: number; maxInFlight?: number },
  ): Promise<{ id: string; secret: string; depositMemo: string }>;
  /** Runs one expiry and heartbeat check now, instead of waiting for the timer. */
  sweep(): void;
  stats(): CoordinatorStats;
}

/** Builds a coordinator on `store`; its sweep timer starts now (unref'd), its servers on `listen`/`attach`. */
export function createCoordinator(options: CoordinatorOptions): Coordinator {
  const { store } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? consoleLogger;
  const leaseMs = options.leaseMs ?? 60_000;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const limits = resolveLimits(options.limits);

  const gauges: Gauges = {
    contributorsConnected: () => gateway.connected,
    jobsQueued: () => relay.queuedCount,
    jobsRunning: () => relay.runningCount,
  };
  const metrics = new Metrics(gauges, options.registry);
  const relay = new Relay({
    store,
    clock,
    metrics,
    hooks: options.scheduler ?? {},
    leaseMs,
    loadAllowanceMs: options.loadAllowanceMs ?? leaseMs,
    maxAttempts: options.maxAttempts ?? 3,
    maxWaitMs: options.maxWaitMs ?? 2 * leaseMs,
    maxQueued: options.maxQueued ?? 10_000,
    retainMs: options.retainMs ?? 60_000,
    maxResultBytes: options.maxResultBytes ?? 64 * 1024 * 1024,
    chunksPerLease: limits.chunksPerLease,
    emptyChunksPerLease: limits.emptyChunksPerLease,
    ...(options.onJobDone !== undefined ? { onJobDone: options.onJobDone } : {}),
    ...(options.verification !== undefined ? { checks: options.verification.relayChecks } : {}),
    ...(options.billing !== undefined ? { billing: options.billing.relay } : {}),
    engineClass: (contributor, model) =>
      engineClassOf(model, options.catalog?.get(model), { features: contributor.capabilities?.adapter?.features ?? [] }),
  });
  options.verification?.attach(relay);
  options.billing?.attach(relay);
  const walletSessions = options.walletSessions ?? new WalletSessions({ clock });
  const walletDomains = [
    ...(options.walletDomains ?? publicDomains(process.env['SPINNERET_PUBLIC_URL'])),
    ...(options.appUrl === undefined ? [] : [new URL(options.appUrl).host]),
  ];
  const fleetDb = options.fleetDb ?? (store instanceof SqlStore ? store.db : undefined);
  const fleet: FleetService | undefined =
    fleetDb === undefined ? undefined : createFleetService({ db: fleetDb, clock, logger, walletSessions, live: (id) => gateway.find(id) });
  const port = options.cluster?.(relay, (id) => gateway.find(id)) ?? relay;
  const gateway: ContributorGateway = new ContributorGateway({
    relay: port,
    store,
    clock,
    logger,
    metrics,
    heartbeatMs,
    sendBufferBytes: limits.sendBufferBytes,
    connectionsPerIp: limits.connectionsPerIp,
    connectionsPerWallet: limits.connectionsPerWallet,
    nonces: new NonceBook(),
    maxDevicesPerWallet: options.maxDevicesPerWallet ?? 32,
    walletSessions: fleet === undefined ? walletSessions : firstResolver([walletSessions, fleet.resolver]),
    ...(fleet !== undefined && { welcomed: (contributor) => fleet.welcomed(contributor) }),
  });

  const apiKeys = new ApiKeys(store, clock);
  const app = new Hono();
  app.use(requestTargetGuard);
  // Every route's body is limited; the payload route has its own, larger limit.
  const defaultBodyLimit = bodyLimit({
    maxSize: limits.maxBodyBytes,
    onError: (c) => problem(c, 413, 'BAD_MESSAGE', `The body exceeds ${limits.maxBodyBytes} bytes, the limit (SPINNERET_MAX_BODY_BYTES).`),
  });
  app.use(async (c, next) => (PAYLOAD_ROUTE.test(c.req.path) ? next() : defaultBodyLimit(c, next)));
  // A request id on every request (or the caller's `X-Request-Id`), in the answer and in the log lines.
  app.use(requestId({ limitLength: 64 }));
  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    // The handler's pattern (middleware match every path with method ALL), whoever answered.
    const route = matchedRoutes(c).findLast((r) => r.method !== 'ALL')?.path ?? 'unmatched';
    metrics.httpRequest(c.req.method, route, c.res.status, (performance.now() - started) / 1000);
  });
  app.get('/healthz', (c) =>
    c.json({ ok: !relay.draining, contributors: gateway.connected, queued: relay.queuedCount }, relay.draining ? 503 : 200),
  );
  app.get('/readyz', async (c) => {
    const reason = relay.draining ? 'draining' : ((await options.readiness?.().catch((err: unknown) => errorText(err))) ?? null);
    return c.json({ ready: reason === null, ...(reason !== null && { reason }) }, reason === null ? 200 : 503);
  });
  app.get('/metrics', async (c) =>
    c.text((await metrics.render()) + (options.billing === undefined ? '' : renderBillingMetrics(options.billing.counts)), 200, {
      'Content-Type': 'text/plain; version=0.0.4; charset=utf-8',
    }),
  );
  // Before the requester routes, whose API-key check covers all of `/v1`.
  const publicKeys = options.walletPublicKeys;
  app.route(
    '/v1',
    walletRoutes({
      payloads: createProofPayloads({ clock, perIp: limits.proofPayloadsPerIp, total: limits.proofPayloadsTotal }),
      sessions: walletSessions,
      store,
      clock,
      walletDomains,
      ...(publicKeys !== undefined && { publicKeys }),
    }),
  );
  if (fleet !== undefined) app.route('/v1', fleet.routes);
  if (options.verification !== undefined) {
    app.route('/v1', verificationRoutes(options.verification));
    app.route('/v1', verdictRoutes(options.verification, apiKeys));
  }
  const operatorToken = options.operatorToken ?? process.env['SPINNERET_OPERATOR_TOKEN'];
  if (operatorToken !== undefined && operatorToken !== '') app.route('/v1', keyRoutes(operatorToken, store, apiKeys));
  for (const routes of options.publicRoutes ?? []) app.route('/v1', routes);
  // One set of requester actions (quotas, billing, stream slots) behind both the HTTP routes and the channel.
  const actions = new RequesterActions({
    relay,
    store,
    keys: apiKeys,
    quotas: new Quotas(clock),
    subscribersPerJob: limits.subscribersPerJob,
    subscribersPerKey: limits.subscribersPerKey,
    eventStreamBufferBytes: limits.eventStreamBufferBytes,
    ...(options.billing !== undefined && { billing: options.billing }),
    ...(options.catalog !== undefined && { catalog: options.catalog }),
  });
  app.route('/v1', requesterRoutes(actions));
  const channels = new RequesterChannels({
    actions,
    logger,
    channelsPerKey: limits.channelsPerKey,
    sendBufferBytes: limits.eventStreamBufferBytes,
    ...(options.verification !== undefined && { verification: options.verification }),
  });
  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `No route ${c.req.method} ${c.req.path}.` } }, 404));
  app.onError((err, c) => {
    if (isDatabaseUnavailable(err)) {
      // The database went away (a restart, a failover): a typed 503 the client retries, not a 500.
      logger.warn('request refused: the database is unreachable', {
        requestId: c.get('requestId'),
        path: c.req.path,
        error: errorText(err),
      });
      c.header('retry-after', '2');
      return c.json(
        { error: { code: 'UNAVAILABLE', message: 'The coordinator cannot reach its database just now; try again shortly.' } },
        503,
      );
    }
    logger.error('request failed', { requestId: c.get('requestId'), method: c.req.method, path: c.req.path, error: errorText(err) });
    return c.json({ error: { code: 'INTERNAL', message: 'The coordinator failed on this request; try again.' } }, 500);
  });

  const sweep = (): void => {
    try {
      relay.sweep();
      gateway.sweep(clock.now());
    } catch (err) {
      logger.error('sweep failed', { error: errorText(err) });
    }
  };
  const timer = setInterval(sweep, options.sweepMs ?? 250);
  timer.unref();

  const servers = new Set<Server>();
  let closed: Promise<void> | null = null;

  const attach = (server: Server): void => {
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (gateway.handleUpgrade(request, socket, head)) return;
      if (channels.handleUpgrade(request, socket, head)) return;
      // Someone else may serve other upgrade paths on a shared server.
      if (server.listenerCount('upgrade') === 1) socket.destroy();
    });
  };

  const close = (): Promise<void> => {
    closed ??= (async () => {
      clearInterval(timer);
      relay.stopAll();
      gateway.closeAll();
      channels.closeAll();
      await Promise.all([...servers].map(stopServer));
      await store.flush();
    })();
    return closed;
  };

  let recovered: Promise<number> | null = null;
  const recover = (): Promise<number> => {
    recovered ??= recoverFromRestart({
      store,
      relay,
      clock,
      logger,
      ...(options.billing !== undefined && { billing: options.billing }),
      ...(options.onJobDone !== undefined && { onJobDone: options.onJobDone }),
    });
    return recovered;
  };

  return {
    app,
    handleUpgrade: (request, socket, head) => gateway.handleUpgrade(request, socket, head) || channels.handleUpgrade(request, socket, head),
    attach,
    recover,
    async listen({ port = 0, host = '127.0.0.1' } = {}) {
      if (options.recoverUnfinished !== false) await recover();
      const listener = getRequestListener(app.fetch);
      const server = createServer((req, res) => void listener(req, res));
      attach(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      servers.add(server);
      const address = server.address() as AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return {
        url: `http://${shown}:${address.port}`,
        close: async () => {
          servers.delete(server);
          await stopServer(server);
        },
      };
    },
    async drain(timeoutMs) {
      relay.startDrain();
      gateway.drain(options.reconnectAfterMs ?? 5_000);
      const until = Date.now() + timeoutMs;
      while (relay.runningCount > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
      await close();
    },
    close,
    async createApiKey(label, limits = {}) {
      const { record, secret } = await store.createApiKey({
        label,
        jobsPerMinute: limits.jobsPerMinute ?? 600,
        maxInFlight: limits.maxInFlight ?? 32,
      });
      return { id: record.id, secret, depositMemo: record.depositMemo };
    },
    sweep,
    stats() {
      const snapshot = metrics.snapshot();
      return {
        contributors: gateway.connected,
        queued: relay.queuedCount,
        running: relay.runningCount,
        jobs: snapshot.jobs,
        leaseExpiries: snapshot.leaseExpiries,
        duplicates: snapshot.duplicates,
        protocolErrors: snapshot.protocolErrors,
      };
    },
  };
}

/** Stops accepting, lets responses in progress finish for a second, then cuts the rest. */
async function stopServer(server: Server): Promise<void> {
  if (!server.listening) return;
  const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
  // Keep-alive connections turn idle as their last response ends; close them as they do.
  const idle = setInterval(() => server.closeIdleConnections(), 25);
  const cut = setTimeout(() => server.closeAllConnections(), 1_000);
  server.closeIdleConnections();
  await stopped;
  clearInterval(idle);
  clearTimeout(cut);
}
