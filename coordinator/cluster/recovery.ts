/**
 * Restart recovery per replica. A job's sealed payload and its requester's stream live only in
 * the replica that created it (`jobs.replica_id`, migration 009), so when that replica is gone
 * its unfinished jobs can never finish: each is failed `RESTARTED` and its reservation released,
 * and its requester can run it again. Jobs of live replicas are never touched: a replica is
 * dead only when its replica lock can be taken (locks.ts).
 *
 * - at start, a replica ends what an earlier process with its own id left;
 * - the singleton holder ends the jobs of replicas that died (and of rows from before replicas,
 *   which name none) every `sweep`.
 *
 * With `money`, the same hand-over settles what the stopped process left half-done, as one
 * process does on restart (leases/restart.ts), for that replica's rows only: reservations whose
 * job it never stored (or stored failed or cancelled) are released, and delivered jobs whose
 * charge it never wrote are charged from their records. The dead replica's lock is held
 * throughout, and each hand-over is awaited before the lock goes back, so it happens once.
 */
import type { SqlDb } from '../store/sql.ts';
import type { ReplicaLocks } from './locks.ts';

const UNFINISHED = ['waiting', 'queued', 'leased'];
const BATCH = 500;

export interface RecoveryOptions {
  db: SqlDb;
  now: () => number;
  /** Releases a failed job's reservation (`billing.relay.ended`); must not throw. Not called with `money`, whose release covers them. */
  released?: (jobId: string, reason: string) => void;
  /** The money of a stopped replica's rows (`null`: rows that name none); each resolves once its writes are committed. */
  money?: {
    /** `billing.releaseOrphaned(replicaId)`: how many released. */
    releaseOrphaned(replicaId: string | null): Promise<number>;
    /** Charges its delivered, uncharged jobs (leases/restart.ts `chargeDoneUncharged`) and waits for the charges: how many. */
    chargeUncharged(replicaId: string | null): Promise<number>;
  };
}

/** What one hand-over did. */
export interface Handover {
  /** Unfinished jobs failed `RESTARTED`. */
  failed: number;
  /** Reservations released (those of the failed jobs included). */
  released: number;
  /** Delivered jobs charged. */
  charged: number;
}

/** Fails the unfinished jobs of `replicaId` (null: rows that name no replica); how many. */
export async function failJobsOf(options: RecoveryOptions, replicaId: string | null, message: string): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await options.db.query<{ id: string }>(
      `UPDATE jobs SET state = 'failed', error = $3, updated_at = $4
        WHERE id IN (SELECT id FROM jobs WHERE state = ANY($1::text[]) AND replica_id IS NOT DISTINCT FROM $2 LIMIT ${BATCH})
          AND state = ANY($1::text[])
        RETURNING id`,
      [UNFINISHED, replicaId, message, options.now()],
    );
    if (options.money === undefined) for (const { id } of rows) options.released?.(id, message);
    total += rows.length;
    if (rows.length < BATCH) return total;
  }
}

/** Fails `replicaId`'s unfinished jobs with `message`, then (with `money`) releases and charges what it left. */
async function handOver(options: RecoveryOptions, replicaId: string | null, message: string): Promise<Handover> {
  const failed = await failJobsOf(options, replicaId, message);
  const released = (await options.money?.releaseOrphaned(replicaId)) ?? 0;
  const charged = (await options.money?.chargeUncharged(replicaId)) ?? 0;
  return { failed, released, charged };
}

/** What this replica's earlier process left: its own id's unfinished jobs, and their money. */
export function recoverOwn(options: RecoveryOptions, replicaId: string): Promise<Handover> {
  return handOver(
    options,
    replicaId,
    `RESTARTED: The coordinator replica ${replicaId} restarted while this job was unfinished; run it again.`,
  );
}

/**
 * The singleton's pass: hands over what every replica that holds no replica lock left (its
 * unfinished jobs; with `money`, its open reservations too); per replica, what was done.
 */
export async function recoverDead(options: RecoveryOptions, locks: ReplicaLocks, self: string): Promise<Map<string | null, Handover>> {
  const reserved =
    options.money === undefined
      ? ''
      : ` UNION SELECT DISTINCT replica_id FROM job_billing WHERE state = 'reserved' AND replica_id IS DISTINCT FROM $2`;
  const { rows } = await options.db.query<{ replica_id: string | null }>(
    `SELECT DISTINCT replica_id FROM jobs WHERE state = ANY($1::text[]) AND replica_id IS DISTINCT FROM $2${reserved}`,
    [UNFINISHED, self],
  );
  const failed = new Map<string | null, Handover>();
  for (const { replica_id: replica } of rows) {
    const message =
      replica === null
        ? 'RESTARTED: The coordinator restarted while this job was unfinished; run it again.'
        : `RESTARTED: The coordinator replica ${replica} that held this job stopped; run it again.`;
    const fail = async (): Promise<void> => {
      const done = await handOver(options, replica, message);
      if (done.failed > 0 || done.released > 0 || done.charged > 0) failed.set(replica, done);
    };
    if (replica === null) await fail();
    else await locks.whileDead(replica, fail);
  }
  return failed;
}
