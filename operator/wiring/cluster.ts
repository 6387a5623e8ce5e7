/** A coordinator as one replica of several (`cluster.nats`): its id, its lock and its place on the bus. */
import { hostname } from 'node:os';
import type { Logger as Pino } from 'pino';
import type { CoordinatorOptions } from '../../coordinator/app.ts';
import { openReplica, type Replica } from '../../coordinator/cluster/replica.ts';
import type { SqlStore } from '../../coordinator/store/sql-store.ts';
import type { CoordinatorConfig } from '../config.ts';
import { asLogger } from '../log.ts';

/** `<host>-<pid>` in the replica id alphabet. */
function defaultReplicaId(): string {
  const host = hostname()
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 20);
  return `${host === '' ? 'replica' : host}-${process.pid}`;
}

/** This replica's id: `cluster.replicaId` or `<host>-<pid>`; undefined without `cluster.nats` (a single coordinator). */
export function configuredReplicaId(config: CoordinatorConfig): string | undefined {
  return config['cluster.nats'] === undefined ? undefined : (config['cluster.replicaId'] ?? defaultReplicaId());
}

/** Takes the replica's lock and joins the bus; when its database locks are lost it stops (SIGTERM: drain). */
export async function openClusterReplica(config: CoordinatorConfig, replicaId: string, store: SqlStore, log: Pino): Promise<Replica> {
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

/** The coordinator options of a replica: routing and sessions over the bus; each ends only its own jobs (the singleton holder those of dead replicas). */
export function replicaCoordinatorOptions(replica: Replica): Partial<CoordinatorOptions> {
  return {
    recoverUnfinished: false,
    cluster: (relay, find) => replica.routing.attach(relay, find),
    walletSessions: replica.walletSessions,
    forwarding: replica.forwarding,
    proofPayloads: replica.proofPayloads,
  };
}
