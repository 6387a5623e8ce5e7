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
 */
import type { SqlDb } from '../store/sql.ts';
import type { ReplicaLocks } from './locks.ts';

const UNFINISHED = ['waiting', 'queued', 'leased'];
const BATCH = 500;

export interface RecoveryOptions {
  db: SqlDb;
  now: () => number;
  /** Releases a failed job's reservation (`billing.relay.ended`); must not throw. */
  released?: (jobId: string, reason: string) => void;
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
    for (const { id } of rows) options.released?.(id, message);
    total += rows.length;
    if (rows.length < BATCH) return total;
  }
}

/** What this replica's earlier process left: its own id's unfinished jobs. */
export function recoverOwn(options: RecoveryOptions, replicaId: string): Promise<number> {
  return failJobsOf(
    options,
    replicaId,
    `RESTARTED: The coordinator replica ${replicaId} restarted while this job was unfinished; run it again.`,
  );
}

/** The singleton's pass: fails the jobs of every replica that holds no replica lock; per replica, how many. */
export async function recoverDead(options: RecoveryOptions, locks: ReplicaLocks, self: string): Promise<Map<string | null, number>> {
  const { rows } = await options.db.query<{ replica_id: string | null }>(
    `SELECT DISTINCT replica_id FROM jobs WHERE state = ANY($1::text[]) AND replica_id IS DISTINCT FROM $2`,
    [UNFINISHED, self],
  );
  const failed = new Map<string | null, number>();
  for (const { replica_id: replica } of rows) {
    const message =
      replica === null
        ? 'RESTARTED: The coordinator restarted while this job was unfinished; run it again.'
        : `RESTARTED: The coordinator replica ${replica} that held this job stopped; run it again.`;
    const fail = async (): Promise<void> => {
      const n = await failJobsOf(options, replica, message);
      if (n > 0) failed.set(replica, n);
    };
    if (replica === null) await fail();
    else await locks.whileDead(replica, fail);
  }
  return failed;
}
