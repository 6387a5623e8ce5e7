/**
 * One coordinator replica (docs/operating.md, "Replicas"): its locks, its bus, the routing of
 * work between replicas, the shared wallet and owner sessions, its own recovery, and the singletons
 * (settlement, payouts, the deposit watcher, the recovery of dead replicas' jobs) while it
 * holds the singleton lock. `operator/wiring.ts` builds one when `cluster.nats` is set.
 */
import type { Clock } from '../clock.ts';
import type { JobEvent } from '../../protocol/wire.ts';
import type { Logger } from '../log.ts';
import { errorText } from '../log.ts';
import type { SqlDb } from '../store/sql.ts';
import { storedResult } from '../store/sql-store.ts';
import { resolveLimits } from '../edges/limits.ts';
import { type Bus, connectBus } from './bus.ts';
import { JobForwarding } from './forwarding.ts';
import { PolicySync } from './policy-sync.ts';
import { ReplicaLocks } from './locks.ts';
import { type Handover, recoverDead, recoverOwn, type RecoveryOptions } from './recovery.ts';
import { SharedProofPayloads } from './proof-payloads.ts';
import { Routing } from './routing.ts';
import { SharedWalletSessions } from './wallet-sessions.ts';

export interface ReplicaOptions {
  replicaId: string;
  natsUrl: string;
  databaseUrl: string;
  /** The shared schema (`database.schema`); `public` when unset. */
  schema: string;
  /** The store's database (jobs, wallet sessions). */
  db: SqlDb;
  clock: Clock;
  logger: Logger;
  /** The lock connection ended: the singletons were stopped; the process should stop too (its jobs are anyone's now). */
  onLost: (why: string) => void;
  /** How often a replica without the singleton lock tries to take it, ms. Default 1 000. */
  leaderRetryMs?: number;
}

/** What runs on exactly one replica at a time. */
export interface Singletons {
  start(): void;
  stop(): void;
}

/** How a replica hands over what a stopped process left: the reservations of failed jobs, and (with `money`) the rest of its money. */
export type HandoverHooks = Pick<RecoveryOptions, 'released' | 'money'>;

export interface Replica {
  readonly id: string;
  readonly routing: Routing;
  readonly walletSessions: SharedWalletSessions;
  /** Job calls that reach this replica for another's job, and the calls other replicas pass here. */
  readonly forwarding: JobForwarding;
  /** `ton_proof` payloads any replica checks. */
  readonly proofPayloads: SharedProofPayloads;
  /** Quarantines and benches the same on every replica: start it with the verification's `refreshShared`. */
  readonly policy: PolicySync;
  /** Whether this replica runs the singletons now. */
  readonly leader: boolean;
  /** Ends what this replica's previous process left (before it listens). */
  recoverOwn(hooks: HandoverHooks): Promise<Handover>;
  /** Starts the routing and the contest for the singleton lock; the holder hands over dead replicas' work with `hooks`. */
  start(singletons: Singletons, hooks: HandoverHooks): void;
  /** Stops the singletons, the routing and the timers, lets go of the locks and the bus. */
  close(): Promise<void>;
}

/** Takes this replica's lock (refused while another live process has its id) and connects to NATS. */
export async function openReplica(options: ReplicaOptions): Promise<Replica> {
  const { logger, replicaId } = options;
  let singletons: Singletons | null = null;
  let running = false;
  const stopSingletons = (): void => {
    if (!running) return;
    running = false;
    singletons?.stop();
  };
  const locks = await ReplicaLocks.open({
    url: options.databaseUrl,
    schema: options.schema,
    replicaId,
    onLost: (why) => {
      stopSingletons();
      logger.error('replica lost its database locks', { replica: replicaId, why });
      options.onLost(why);
    },
  });
  let bus: Bus;
  try {
    bus = await connectBus(options.natsUrl, `spinneret-${replicaId}`, (message, err) =>
      logger.error(message, { replica: replicaId, error: errorText(err) }),
    );
  } catch (err) {
    await locks.close();
    throw new Error(`cannot reach NATS at ${options.natsUrl} (cluster.nats): ${errorText(err)}`, { cause: err });
  }
  const routing = new Routing({ replicaId, bus, prefix: `spinneret.${options.schema}`, clock: options.clock, logger });
  const prefix = `spinneret.${options.schema}`;
  const forwarding = new JobForwarding({
    replicaId,
    bus,
    prefix,
    logger,
    peers: () => routing.peers,
    recordedOwner: (jobId) => recordedOwner(options.db, jobId),
    recordedResult: (jobId) => recordedResult(options.db, jobId),
  });
  routing.onPeerLost((peer) => forwarding.lost(peer));
  const policy = new PolicySync({ replicaId, bus, prefix, logger });
  const limits = resolveLimits();
  const proofPayloads = new SharedProofPayloads({
    db: options.db,
    clock: options.clock,
    perIp: limits.proofPayloadsPerIp,
    total: limits.proofPayloadsTotal,
  });
  const walletSessions = new SharedWalletSessions({
    db: options.db,
    clock: options.clock,
    log: (message, err) => logger.error(message, { error: errorText(err) }),
  });
  const recovery = (hooks: HandoverHooks): RecoveryOptions => ({ db: options.db, now: () => options.clock.now(), ...hooks });
  const timers: NodeJS.Timeout[] = [];
  let busy = false;
  let lastForget = 0;

  return {
    id: replicaId,
    routing,
    walletSessions,
    forwarding,
    proofPayloads,
    policy,
    get leader() {
      return running;
    },
    recoverOwn: (hooks) => recoverOwn(recovery(hooks), replicaId),
    start(given, hooks) {
      singletons = given;
      routing.start();
      forwarding.start();
      const tick = async (): Promise<void> => {
        if (busy || locks.lost) return;
        busy = true;
        try {
          if (!running && (await locks.tryLeader())) {
            running = true;
            logger.info('singletons started', { replica: replicaId });
            given.start();
          }
          if (!running) return;
          const handed = await recoverDead(recovery(hooks), locks, replicaId);
          for (const [replica, done] of handed) logger.info('ended the work of a stopped replica', { replica, ...done });
          const now = options.clock.now();
          if (now - lastForget > 60_000) {
            lastForget = now;
            await walletSessions.forgetExpired();
            await proofPayloads.forgetExpired();
          }
        } catch (err) {
          logger.error('singleton pass failed', { replica: replicaId, error: errorText(err) });
        } finally {
          busy = false;
        }
      };
      void tick();
      timers.push(setInterval(() => void tick(), options.leaderRetryMs ?? 1_000));
      for (const t of timers) t.unref();
    },
    async close() {
      for (const t of timers) clearInterval(t);
      stopSingletons();
      routing.stop();
      policy.stop();
      await walletSessions.idle();
      await locks.close();
      await bus.close();
    },
  };
}

/** The stored answer of job `jobId` (its sealed result chunks) when its row says it is done and still holds it, else null. */
export async function recordedResult(db: ReplicaOptions['db'], jobId: string): Promise<JobEvent[] | null> {
  const { rows } = await db.query<{ result: unknown }>(`SELECT result FROM jobs WHERE id = $1 AND state = 'done' AND result IS NOT NULL`, [
    jobId,
  ]);
  const result = rows[0]?.result;
  if (result === undefined || result === null) return null;
  return storedResult(result).chunks;
}

/** The replica that created job `jobId` (`jobs.replica_id`), or null when its row is not written yet. */
export async function recordedOwner(db: ReplicaOptions['db'], jobId: string): Promise<string | null> {
  const { rows } = await db.query<{ replica_id: string | null }>('SELECT replica_id FROM jobs WHERE id = $1', [jobId]);
  return rows[0]?.replica_id ?? null;
}
