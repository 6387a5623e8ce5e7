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
import { renderBillingMetrics } from './billing/metrics.ts';
import { systemClock } from './clock.ts';
import { consoleLogger, errorText } from './log.ts';
import { Relay } from './leases/relay.ts';
import { recoverFromRestart } from './leases/restart.ts';
import { type Gauges, Metrics } from './metrics/metrics.ts';
import { ApiKeys, Quotas } from './requesters/keys.ts';
import { requesterRoutes } from './requesters/routes.ts';
import { RequesterActions } from './requesters/actions.ts';
import { RequesterChannels } from './requesters/channel.ts';
import { ContributorGateway } from './sessions/gateway.ts';
import { NonceBook } from './sessions/hello.ts';
import { firstResolver } from './sessions/bindings.ts';
import { bodyLimitOf, Problem, problemAnswer, requestTargetGuard } from './http.ts';
import { HTTPException } from 'hono/http-exception';
import { keyRoutes } from './requesters/key-routes.ts';
import { resolveLimits } from './edges/limits.ts';

/** The ton_proof domains of a deployment: its public URL's host, or loopback when it has none. */
export function publicDomains(publicUrl: string | undefined): string[] {
  if (publicUrl === undefined || publicUrl === '') return ['127.0.0.1', 'localhost'];
  if (!URL.canParse(publicUrl)) throw new Error(`SPINNERET_PUBLIC_URL=${publicUrl} is not a URL; give e.g. https://spinneret.example.`);
  return [new URL(publicUrl).host];
}

/** `PUT /v1/jobs/:id/payload`: sealed payloads up to a frame, limited by its own route. */
const PAYLOAD_ROUTE = /^\/v1\/jobs\/[^/]+\/payload$/;
import { createFleetService, type FleetService } from './fleet/index.ts';
import { engineClassOf } from '../protocol/engine-class.ts';
import { SqlStore } from './store/sql-store.ts';
import { isDatabaseUnavailable } from './store/sql.ts';
import { createProofPayloads } from './wallets/proof-payloads.ts';
import { walletRoutes } from './wallets/routes.ts';
import { WalletSessions } from './wallets/wallet-sessions.ts';
import { verdictRoutes, verificationRoutes } from './verification/routes.ts';

export type { Clock } from './clock.ts';
export type { Logger } from './log.ts';
export type { ContributorView, JobView, SchedulerHooks } from './scheduler/scheduler.ts';
export type { JobDone } from './leases/relay.ts';
export type { Coordinator, CoordinatorOptions, CoordinatorStats } from './coordinator-types.ts';
import type { Coordinator, CoordinatorOptions } from './coordinator-types.ts';

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
    assignmentsHeld: () => relay.heldCount,
  };
  const metrics = new Metrics(gauges, options.registry);
  const relay = new Relay({
    store,
    clock,
    metrics,
    hooks: options.scheduler ?? {},
    leaseMs,
    loadAllowanceMs: options.loadAllowanceMs ?? leaseMs,
    ...(options.assignAheadMs !== undefined && { assignAheadMs: options.assignAheadMs }),
    maxAttempts: options.maxAttempts ?? 3,
    maxWaitMs: options.maxWaitMs ?? 2 * leaseMs,
    maxQueued: options.maxQueued ?? 10_000,
    retainMs: options.retainMs ?? 60_000,
    ...(options.recordWaitMs !== undefined && { recordWaitMs: options.recordWaitMs }),
    ...(options.maxStoredResultBytes !== undefined && { maxStoredResultBytes: options.maxStoredResultBytes }),
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
  const defaultBodyLimit = bodyLimitOf(
    limits.maxBodyBytes,
    `The body exceeds ${limits.maxBodyBytes} bytes, the limit (SPINNERET_MAX_BODY_BYTES).`,
  );
  app.use(async (c, next) => (PAYLOAD_ROUTE.test(c.req.path) ? next() : defaultBodyLimit(c, next)));
  // A request id on every request (or the caller's `X-Request-Id`), in the answer and in the log lines.
  app.use(requestId({ limitLength: 64 }));
  // Draining, no connection goes back to a client's keep-alive pool: a request sent on an idle one
  // just as the server closed it would be cut off after it was sent, and a job creation so cut
  // can be tried again only under its idempotency key (the job may exist).
  app.use(async (c, next) => {
    await next();
    if (relay.draining) c.header('Connection', 'close');
  });
  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    // The handler's pattern (middleware match every path with method ALL), whoever answered.
    const route = matchedRoutes(c).findLast((r) => r.method !== 'ALL')?.path ?? 'unmatched';
    metrics.httpRequest(c.req.method, route, c.res.status, (performance.now() - started) / 1000);
  });
  // Before every job route: a call on a job another replica holds is answered by that replica.
  const forwarding = options.forwarding?.attach(
    (jobId) => relay.jobById(jobId) !== undefined,
    (request, env) => app.fetch(request, env),
  );
  if (forwarding !== undefined) app.use('/v1/jobs/*', forwarding);
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
      payloads: options.proofPayloads ?? createProofPayloads({ clock, perIp: limits.proofPayloadsPerIp, total: limits.proofPayloadsTotal }),
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
    idempotency: { keys: limits.idempotencyKeys, ttlMs: limits.idempotencyTtlS * 1000 },
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
  app.notFound((c) => problemAnswer(new Problem(404, 'NOT_FOUND', `No route ${c.req.method} ${c.req.path}.`), c));
  app.onError((err, c) => {
    if (err instanceof HTTPException) return problemAnswer(err, c);
    if (isDatabaseUnavailable(err)) {
      // The database went away (a restart, a failover): a typed 503 the client retries, not a 500.
      logger.warn('request refused: the database is unreachable', {
        requestId: c.get('requestId'),
        path: c.req.path,
        error: errorText(err),
      });
      const unavailable = 'The coordinator cannot reach its database just now; try again shortly.';
      return problemAnswer(new Problem(503, 'UNAVAILABLE', unavailable, { retryAfterS: 2 }), c);
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
  // Stored results (a done job's sealed answer, for a requester cut off by a crash) are kept briefly.
  const resultRetainMs = options.resultRetainMs ?? 10 * 60_000;
  const forgetResults = setInterval(() => {
    store.forgetResults(clock.now() - resultRetainMs).catch((err: unknown) => {
      logger.warn('clearing stored results failed; tried again in a minute', { error: errorText(err) });
    });
  }, 60_000);
  forgetResults.unref();

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
      clearInterval(forgetResults);
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
      // Connections idle now are closed now, not later as a request may be on its way on one.
      for (const server of servers) server.closeIdleConnections();
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
        deliveredUnrecorded: snapshot.deliveredUnrecorded,
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
