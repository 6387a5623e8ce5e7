/**
 * What a coordinator does on start about the work a previous run left (it was killed, or its
 * host went away): every job the store still has waiting, queued or leased fails with
 * `RESTARTED` (its sealed payload lived only in that run's memory) and its reservation goes
 * back; a reservation whose job never reached the store, or ended failed or cancelled without
 * its money moving, goes back too; and a requester job the store has as done whose charge was
 * never written (the run died between the two) is charged now, once, from its record.
 */
import type { Billing } from '../billing/service.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/types.ts';
import type { JobDone, Relay } from './relay.ts';

export interface RecoveryOptions {
  store: Store;
  relay: Relay;
  clock: Clock;
  logger: Logger;
  billing?: Billing;
  onJobDone?: (done: JobDone) => void;
}

/** Recovers; how many unfinished jobs were failed. */
export async function recoverFromRestart(o: RecoveryOptions): Promise<number> {
  const { store, relay, billing } = o;
  const now = o.clock.now();
  let failed = 0;
  const ended: Array<{ id: string; contributorId: string | null }> = [];
  for (const record of await store.unfinishedJobs()) {
    if (relay.jobById(record.id) !== undefined) continue;
    ended.push(record);
    store.putJob({
      ...record,
      state: 'failed',
      updatedAt: now,
      error: 'RESTARTED: The coordinator restarted while this job was unfinished; run it again.',
    });
    billing?.relay.ended(record.id, 'the coordinator restarted');
    failed++;
  }
  await store.flush();
  // A late result from the ended jobs' last contributors is refused with RESTARTED, not NOT_FOUND.
  relay.markRestarted(ended);
  const released = (await billing?.releaseOrphaned()) ?? 0;
  const charged =
    billing === undefined || o.onJobDone === undefined ? 0 : await chargeDoneUncharged({ ...o, billing, onJobDone: o.onJobDone });
  if (failed > 0 || released > 0 || charged > 0) {
    o.logger.info('recovered the jobs a previous run left', { failed, released, charged });
  }
  return failed;
}

/**
 * Charges, once each, the requester jobs the store has as done whose charge was never written
 * (their run died between the two), from their records; with `replicaId`, only those that
 * replica reserved (replicas: its own on restart, a dead one's on the singleton holder). How
 * many were handed to `onJobDone`. The ledger's per-job keys make a second hand-over a replay.
 */
export async function chargeDoneUncharged(
  o: { store: Store; billing: Billing; onJobDone: (done: JobDone) => void; relay?: Relay },
  replicaId?: string | null,
): Promise<number> {
  let charged = 0;
  for (const bill of await o.billing.doneUncharged(replicaId)) {
    const record = await o.store.getJob(bill.jobId);
    if (record === null || record.state !== 'done' || record.contributorId === null || o.relay?.jobById(bill.jobId) !== undefined) continue;
    // The record holds the billed usage (the claim clamped to the envelope); the claim itself died with the run.
    const usage = { promptTokens: record.promptTokens, completionTokens: record.completionTokens };
    o.onJobDone({
      jobId: record.id,
      apiKeyId: record.apiKeyId,
      contributorId: record.contributorId,
      role: 'job',
      engineClass: 'unknown',
      model: record.model,
      kind: record.kind,
      usage,
      claimed: usage,
      envelope: bill.envelope,
    });
    charged++;
  }
  return charged;
}
