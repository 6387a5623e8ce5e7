/**
 * Test support (not used by the app): a paid network in one process for fault runs — the real
 * coordinator on PGlite with its money side on the sandbox chain, real Contributor loops over
 * WebSockets (each socket can be cut, as a dying tab's is), a requester path through a TCP
 * relay that can drop every connection, and a coordinator that can "crash": from that moment
 * it writes nothing more (no job state, no reservation release) and its sockets die, then a
 * new one starts on the same port and store, as a restarted process would.
 */
import { createServer, type Server, Socket } from 'node:net';
import { WebSocket } from 'ws';
import { toNano } from '@ton/core';
import { startModelHost } from '../modelhost/server.ts';
import type { JobRequest, JobResult, StreamChunk } from '../protocol/jobs.ts';
import type { SocketConstructor } from '../worker/network/connection.ts';
import { Contributor } from '../worker/network/contributor.ts';
import { FakeRuntime } from '../worker/network/fake-runtime.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from '../worker/network/identity.ts';
import { type Coordinator, type CoordinatorOptions, createCoordinator, type JobDone } from '../coordinator/app.ts';
import type { Billing } from '../coordinator/billing/service.ts';
import type { Money } from '../coordinator/earnings/local.ts';
import { Ledger } from '../coordinator/ledger/ledger.ts';
import { ModelCatalog } from '../coordinator/models/catalog.ts';
import type { SqlStore } from '../coordinator/store/sql-store.ts';
import type { Store } from '../coordinator/store/types.ts';
import { startTestMoney } from './money.ts';
import { disposeStore, openTestStore, testWallet } from './verification.ts';

/**
 * Serves `tiny-decoder` chat (three deltas, then the answer, as FakeRuntime does) and
 * `tiny-embed`. `onDelta` sees each job's deltas as they are sent: a fault run cuts the
 * contributor's socket there, mid-stream.
 */
/** A short greedy chat job of `tiny-decoder`, as the fault tests send it. */
export const TINY_CHAT: JobRequest = {
  kind: 'chat',
  model: 'tiny-decoder',
  messages: [{ role: 'user', content: 'hello there' }],
  maxTokens: 8,
  sampling: { temperature: 0, topP: 1, seed: 1 },
};

export class StreamingRuntime extends FakeRuntime {
  constructor(readonly onDelta: (request: JobRequest, index: number) => void = () => undefined) {
    super();
  }

  override async run(
    request: unknown,
    options: { signal?: AbortSignal; onChunk?: (chunk: StreamChunk) => void } = {},
  ): Promise<{ result: JobResult }> {
    const job = request as JobRequest;
    const onChunk = (chunk: StreamChunk): void => {
      options.onChunk?.(chunk);
      this.onDelta(job, chunk.index);
    };
    return super.run(request, { ...options, onChunk });
  }

  override async models(): ReturnType<FakeRuntime['models']> {
    const names: Record<string, string> = { 'chat-model': 'tiny-decoder', 'embed-model': 'tiny-embed' };
    return (await super.models()).map((m) => ({ ...m, id: names[m.id] ?? m.id }));
  }
}

/** A Contributor loop whose current socket can be cut. */
export interface FaultContributor {
  contributor: Contributor;
  runtime: StreamingRuntime;
  id: string;
  wallet: string;
  /** Drops its socket at once (no close handshake), as a killed tab's connection ends. */
  kill(): void;
  /** Drops its socket right after the next result chunk is written to it: mid-stream. */
  killAfterNextChunk(): void;
}

/** A TCP relay in front of the coordinator: `drop()` cuts every connection through it. */
export interface Relay {
  url: string;
  connections: number;
  /** Every HTTP request line clients sent through it (`GET /v1/requester HTTP/1.1`), in order. */
  requests: string[];
  /**
   * Once: the next chunk from the coordinator that matches `pattern` (an HTTP answer's status
   * line, a channel frame: the coordinator's frames are not masked) is withheld and its
   * connection cut, as a proxy reset after the request was sent and handled.
   */
  dropResponse(pattern: RegExp): Promise<void>;
  drop(): void;
  close(): Promise<void>;
}

/** Relays connections on `listenOn` (default: any free port) to the coordinator's `port`. */
export async function startTcpRelay(port: number, listenOn = 0): Promise<Relay> {
  const open = new Set<Socket>();
  const requests: string[] = [];
  let connections = 0;
  let armed: { pattern: RegExp; dropped: () => void } | null = null;
  const server: Server = createServer((client) => {
    connections++;
    const upstream = new Socket();
    open.add(client).add(upstream);
    const end = (): void => {
      open.delete(client);
      open.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    upstream.connect(port, '127.0.0.1', () => {
      // Request lines only (a WebSocket client's frames are masked, so they never look like one);
      // attached with the pipe, so that nothing flows before the upstream takes it.
      client.on('data', (chunk: Buffer) => requests.push(...(chunk.toString('latin1').match(/^[A-Z]+ \/\S* HTTP\/1\.1(?=\r\n)/gm) ?? [])));
      client.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        if (armed !== null && armed.pattern.test(chunk.toString('latin1'))) {
          const { dropped } = armed;
          armed = null;
          client.resetAndDestroy();
          upstream.destroy();
          return dropped();
        }
        if (!client.write(chunk)) {
          upstream.pause();
          client.once('drain', () => upstream.resume());
        }
      });
      upstream.on('end', () => client.end());
    });
  });
  await new Promise<void>((resolve) => server.listen(listenOn, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the relay has no port');
  const drop = (): void => {
    for (const socket of open) socket.resetAndDestroy();
    open.clear();
  };
  return {
    url: `http://127.0.0.1:${address.port}`,
    get connections() {
      return connections;
    },
    requests,
    dropResponse: (pattern) => new Promise<void>((dropped) => (armed = { pattern, dropped })),
    drop,
    close() {
      drop();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

export interface FaultNetwork {
  /** The coordinator's own address (contributors connect here). */
  url: string;
  port: number;
  store: SqlStore;
  money: Money;
  ledger: Ledger;
  coordinator: Coordinator;
  /** Every job that ended with a result, across restarts, in order. */
  done: JobDone[];
  contributors: FaultContributor[];
  /** An API key funded with `funds` nanoTON through the faucet. */
  key(funds?: bigint): Promise<{ id: string; secret: string }>;
  /** Starts a Contributor loop with a payout wallet; `onDelta` as in {@link StreamingRuntime}. */
  contributor(onDelta?: (c: FaultContributor, request: JobRequest, index: number) => void): Promise<FaultContributor>;
  /**
   * The coordinator process dies: `beforeDeath` runs first (cut the requesters' connections),
   * then nothing it does reaches the store or the money side, and its sockets close. A new
   * coordinator starts on the same port and store and recovers, as `npm start` restarts one.
   */
  crash(beforeDeath?: () => void): Promise<void>;
  /**
   * A graceful restart (SIGTERM under `npm start`): the coordinator drains for up to `drainMs`
   * (no new job is taken, running ones may finish, the rest fail `DRAINING` and are released),
   * closes, and a new one starts on the same port and store. `whileDraining` runs once the drain
   * has begun; the restart waits for it.
   */
  restart(drainMs: number, whileDraining?: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultNetwork(options: Partial<CoordinatorOptions> = {}): Promise<FaultNetwork> {
  const store = await openTestStore('PGlite');
  const models = await startModelHost({ port: 0 });
  const catalog = await ModelCatalog.load(models.manifestUrl);
  const money = await startTestMoney(store);
  const ledger = new Ledger(store.db);
  const done: JobDone[] = [];
  const logger = { info: () => {}, warn: () => {}, error: (message: string) => console.error(message) };
  let dead = false;
  const boot = (s: Store, billing: Billing): Coordinator =>
    createCoordinator({
      logger,
      catalog,
      publicRoutes: [money.routes],
      maxWaitMs: 20_000,
      ...options,
      store: s,
      billing,
      onJobDone: (d) => {
        if (dead) return;
        done.push(d);
        money.onJobDone(d);
      },
    });
  // Every run is mortal, so a later crash (after a restart) loses that run's writes as the first did.
  const start = (): Coordinator =>
    boot(
      mortal(store, () => dead),
      mortalBilling(money.billing, () => dead),
    );
  let coordinator = start();
  const server = await coordinator.listen({ port: 0 });
  const port = Number(new URL(server.url).port);
  const contributors: FaultContributor[] = [];
  const net: FaultNetwork = {
    url: server.url,
    port,
    store,
    money,
    ledger,
    get coordinator() {
      return coordinator;
    },
    done,
    contributors,
    async key(funds = toNano('100')) {
      const key = await coordinator.createApiKey(`requester ${contributors.length}-${Date.now()}`, {
        jobsPerMinute: 100_000,
        maxInFlight: 1_000,
      });
      await money.fund(key.depositMemo, funds);
      return key;
    },
    async contributor(onDelta) {
      let socket: WebSocket | null = null;
      let killAfterChunk = false;
      // Each socket the loop opens is kept, so a kill can cut the current one.
      const Tracked = function (url: string): WebSocket {
        const ws = new WebSocket(url);
        const send = ws.send.bind(ws);
        ws.send = ((data: string) => {
          const cut = killAfterChunk && data.includes('"type":"chunk"');
          if (cut) killAfterChunk = false;
          // Once the chunk is written to the socket, the tab dies.
          send(data, cut ? () => ws.terminate() : undefined);
        }) as typeof ws.send;
        socket = ws;
        return ws;
      } as unknown as SocketConstructor;
      const holder: { c: FaultContributor | null } = { c: null };
      const runtime = new StreamingRuntime((request, index) => {
        if (holder.c !== null) onDelta?.(holder.c, request, index);
      });
      const contributor = new Contributor({
        coordinatorUrl: `${server.url.replace(/^http/, 'ws')}/v1/contributor`,
        runtime,
        identity: await loadOrCreateIdentity(new MemoryKeyStore()),
        consent: ['chat', 'embed'],
        client: { name: 'fault-test', version: '0.0.0' },
        webSocket: Tracked,
        // A killed tab comes back soon; the fault run needs it back within a few seconds.
        backoff: { baseMs: 50, capMs: 500 },
      });
      contributor.start();
      const id = await connected(contributor);
      const wallet = testWallet();
      const record = await store.getContributor(id);
      if (record === null) throw new Error(`contributor ${id} is not in the store`);
      await store.upsertContributor({ ...record, wallet });
      const c: FaultContributor = {
        contributor,
        runtime,
        id,
        wallet,
        kill: () => socket?.terminate(),
        killAfterNextChunk: () => (killAfterChunk = true),
      };
      holder.c = c;
      contributors.push(c);
      return c;
    },
    async crash(beforeDeath) {
      beforeDeath?.();
      dead = true;
      await coordinator.close();
      dead = false;
      coordinator = start();
      await coordinator.listen({ port });
    },
    async restart(drainMs, whileDraining) {
      const draining = coordinator.drain(drainMs);
      await whileDraining?.();
      await draining;
      coordinator = start();
      await coordinator.listen({ port });
    },
    async close() {
      for (const c of contributors) await c.contributor.stop({ drain: false });
      money.stop();
      await coordinator.close();
      await models.close();
      await money.idle();
      await disposeStore(store);
    },
  };
  return net;
}

/** The store as a process sees it: once `dead()`, its job writes go nowhere. */
function mortal(store: SqlStore, dead: () => boolean): Store {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (property === 'putJob')
        return (...args: unknown[]) => (dead() ? undefined : (value as (...a: unknown[]) => unknown).apply(target, args));
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
}

/** Billing as a process sees it: once `dead()`, the relay's releases go nowhere (the restart's recovery does them). */
function mortalBilling(billing: Billing, dead: () => boolean): Billing {
  const relay = new Proxy(billing.relay, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const call = (...args: unknown[]): unknown => (value as (...a: unknown[]) => unknown).apply(target, args);
      return property === 'ended' ? (...args: unknown[]) => (dead() ? undefined : call(...args)) : call;
    },
  });
  return new Proxy(billing, {
    get(target, property) {
      if (property === 'relay') return relay;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

async function connected(contributor: Contributor): Promise<string> {
  const until = Date.now() + 10_000;
  for (;;) {
    const status = contributor.status();
    if (status.state === 'connected' && status.contributorId !== null) return status.contributorId;
    if (Date.now() > until) throw new Error(`the contributor did not connect: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
