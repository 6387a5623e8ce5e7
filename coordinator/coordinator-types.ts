/**
 * The coordinator's shape: what `createCoordinator` (coordinator/app.ts) takes and what it
 * gives back.
 */
import type { Server, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Hono, MiddlewareHandler } from 'hono';
import type { Registry } from 'prom-client';
import type { Billing } from './billing/service.ts';
import type { Clock } from './clock.ts';
import type { Logger } from './log.ts';
import type { EdgeLimits } from './edges/limits.ts';
import type { ConnectedContributor } from './leases/contributor.ts';
import type { JobDone, Relay } from './leases/relay.ts';
import type { ModelCatalog } from './models/catalog.ts';
import type { SchedulerHooks } from './scheduler/scheduler.ts';
import type { RelayPort } from './sessions/session.ts';
import type { SqlDb } from './store/sql.ts';
import type { Store } from './store/types.ts';
import type { Verification } from './verification/service.ts';
import type { PublicKeyLookup } from './wallets/public-key-lookup.ts';
import type { ProofPayloads } from './wallets/proof-payloads.ts';
import type { WalletSessions } from './wallets/wallet-sessions.ts';

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
  /** How long a slot handed out ahead of need on the requester channel (`assign`) stays unused before it goes back, ms. Default min(leaseMs, 10 000). */
  assignAheadMs?: number;
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
  /**
   * How long a requester's final result waits for its job's done record to be written before it
   * goes out anyway (the database is slow or down; counted in `spinneret_results_delivered_unrecorded_total`), ms. Default 10 000.
   */
  recordWaitMs?: number;
  /** Largest sealed result kept with a done job's record for a requester cut off by a crash, bytes. Default 4 MiB. */
  maxStoredResultBytes?: number;
  /** How long such a stored result is kept after its job ended, ms. Default 10 minutes. */
  resultRetainMs?: number;
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
  /**
   * Replicas (coordinator/cluster/forwarding.ts): passes a call on a job another replica holds
   * to that replica. Given whether this replica holds a job and how to answer a request here,
   * it returns the middleware put in front of the job routes.
   */
  forwarding?: {
    attach(holds: (jobId: string) => boolean, dispatch: (request: Request, env: object) => Response | Promise<Response>): MiddlewareHandler;
  };
  /** The `ton_proof` payloads (default: this process's own, in memory); replicas share theirs through the database. */
  proofPayloads?: ProofPayloads;
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
  /** Final results sent before their job was written as done (database down or slow). */
  deliveredUnrecorded: number;
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
