/**
 * Following one job's event stream once (docs/protocol.md, "Requester ↔ coordinator"): each
 * assignment is answered with the request sealed to its contributor, the result chunks are
 * opened here, and deltas go to `onDelta`. A broken stream throws {@link StreamBroken}; the
 * client reopens it, and `progress` skips what was handled.
 */
import { createResultOpener, exportPublicKey, generateHpkeKeyPair, sealJob, type ResultOpener } from '../protocol/envelope.ts';
import { type JobRequest, type JobResult, wireKindOf } from '../protocol/jobs.ts';
import type { Assignment } from '../protocol/wire.ts';
import type { RunOptions } from './client-types.ts';
import { CoordinatorError, CoordinatorUnavailableError, failedJobError, RetriesExhaustedError } from './errors.ts';
import type { JobLine } from './http-line.ts';
import { mayRetrySubmit, type RetryPolicy, withRetry } from './retry.ts';
import { JobFailed, type Progress, Restarted, StreamBroken, UnopenableResult, unseen } from './stream.ts';

/**
 * Follows `jobId` on `line` until its result; `onReplica` hears of each replica the coordinator
 * places. A payload refused 503 is sent again under `retry`.
 */
export async function follow(
  line: JobLine,
  jobId: string,
  job: JobRequest,
  progress: Progress,
  { signal, onDelta }: RunOptions,
  retry: { policy: RetryPolicy; coordinatorUrl: string },
  onReplica?: (replicaJobId: string) => void,
): Promise<JobResult & { attempts: number }> {
  // Unreachable or 5xx: the stream can be opened again; a 404/409/410 cannot.
  const broken = (err: unknown): never => {
    throw err instanceof CoordinatorUnavailableError ? new StreamBroken(err) : err;
  };
  const events = await line.events(jobId, signal).catch(broken);
  const { emitted } = progress;

  const submit = async (assignment: Assignment): Promise<void> => {
    if (progress.current !== null && assignment.attempt <= progress.current.attempt) return;
    // A fresh result key per attempt: a contributor that dropped cannot write into a later attempt's stream.
    // Sealed once per attempt: a payload sent again after a broken connection carries the same key.
    let sealing = progress.sealing;
    if (sealing?.attempt !== assignment.attempt) {
      const keys = await generateHpkeKeyPair();
      const resultKey = await exportPublicKey(keys.publicKey);
      const aad = { jobId, attempt: assignment.attempt, model: job.model, kind: wireKindOf(job) };
      const sealed = await sealJob(assignment.hpkeKey, { request: job, resultKey }, aad);
      sealing = { attempt: assignment.attempt, keys, body: { attempt: assignment.attempt, sealed } };
      progress.sealing = sealing;
    }
    // 409 (answered by the line): this attempt is superseded (the next `assigned` event follows), or its payload already arrived.
    // 503 (the job's replica or the database briefly away): sent again with backoff, the same bytes; a repeat of one that
    // arrived is that 409, so the job runs once.
    const body = sealing.body;
    const sending = { ...retry, what: `sending the payload of job ${jobId}`, signal };
    await withRetry(sending, mayRetrySubmit, () => line.submit(jobId, body, signal)).catch((err: unknown) => {
      // Not answered: the replayed `assigned` event of a reopened stream sends it again. 503 to the end: a typed error.
      const unanswered = err instanceof CoordinatorUnavailableError && err.status === 0 && !(err instanceof RetriesExhaustedError);
      throw unanswered ? new StreamBroken(err) : err;
    });
    progress.current = { attempt: assignment.attempt, opener: createResultOpener(sealing.keys, jobId), opened: 0, text: '', tokens: [] };
  };

  if (progress.inline !== null) {
    const inline = progress.inline;
    progress.inline = null;
    await submit(inline);
  }
  const iterator = events[Symbol.asyncIterator]();
  for (;;) {
    const next = await iterator.next().catch(broken);
    if (next.done === true) break;
    const event = next.value;
    progress.seen++;
    // Ended by a restart or a graceful shutdown: released, never charged, so it is run again.
    if (event.type === 'failed' && (event.error.code === 'RESTARTED' || event.error.code === 'DRAINING'))
      throw new Restarted(jobId, event.error.code, failedJobError(event.error, jobId));
    if (event.type === 'failed') throw new JobFailed(failedJobError(event.error, jobId));
    if (event.type === 'assigned') {
      await submit(event.assignment);
      continue;
    }
    if (event.type === 'replica-assigned') {
      if (!progress.replicas.has(event.jobId)) onReplica?.(event.jobId);
      progress.replicas.add(event.jobId);
      continue;
    }
    const attempt = progress.current;
    if (attempt === null || event.attempt !== attempt.attempt || event.seq < attempt.opened) continue;
    let piece: Awaited<ReturnType<ResultOpener['open']>>;
    try {
      piece = await attempt.opener.open({ seq: event.seq, final: event.final, sealed: event.sealed });
    } catch (err) {
      // A delivered result that does not open is garbage: it is reported, its credit voided, and the job run again.
      // A broken chunk mid-stream fails the job as before (it is cancelled, so nobody pays for it).
      if (event.final) throw new UnopenableResult(err);
      throw err;
    }
    attempt.opened++;
    if (piece.type === 'result') return { ...piece.result, attempts: attempt.attempt };
    attempt.text += piece.text;
    attempt.tokens.push(...piece.tokens);
    const fresh = unseen(emitted, attempt, jobId);
    if (fresh !== null && onDelta !== undefined) onDelta(fresh);
  }
  // The coordinator ends a job's stream only after its last event: an end before it is a broken connection.
  throw new StreamBroken(new CoordinatorError(`The coordinator closed the event stream of job ${jobId} before the result arrived.`, 0));
}
