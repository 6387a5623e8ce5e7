/**
 * A replica check (docs/protocol.md, "Replicas and verdicts"): the replica of a job runs the
 * same request sealed for its own contributor (a generation: one teacher-forced pass scoring the
 * primary's output), its result is compared with the primary's, and the verdict is posted; then
 * the tie-break, if the coordinator asks for one.
 */
import { compareResults, type CompareOptions } from '../protocol/compare.ts';
import type { JobRequest, JobResult } from '../protocol/jobs.ts';
import { scoredBy, scoreRequestFor } from '../protocol/teacher-forced.ts';
import type { Verdict, VerdictAnswer } from '../protocol/wire.ts';
import type { ReplicaCheck } from './client-types.ts';
import type { JobLine } from './http-line.ts';
import { JobFailed } from './stream.ts';

/** What a check uses of the client. */
export interface CheckParts {
  /** Follows a job of the check (the replica, the tie-break) to its result. */
  follow(line: JobLine, jobId: string, request: JobRequest): Promise<JobResult>;
  /** Posts a verdict on `jobId`. */
  verdict(jobId: string, verdict: Verdict): Promise<VerdictAnswer>;
  compare: CompareOptions | undefined;
  onCheck: ((check: ReplicaCheck) => void) | undefined;
}

/**
 * Runs the replica of `jobId` (the same request, sealed for its own contributor), compares
 * its result with the primary's and posts the verdict; then the tie-break, if one is asked.
 */
export async function checkReplica(
  parts: CheckParts,
  line: JobLine,
  jobId: string,
  replicaJobId: string,
  job: JobRequest,
  primary: Promise<JobResult | null>,
): Promise<void> {
  const report = (check: ReplicaCheck): void => parts.onCheck?.(check);
  try {
    // A generation with token ids is checked by scoring it: the replica runs one teacher-forced
    // pass over the primary's output, so an honest device of another backend still agrees.
    const scoring = job.kind === 'generate' || job.kind === 'chat';
    const early = scoring ? null : parts.follow(line, replicaJobId, job);
    const first = await primary;
    if (first === null) {
      await line.cancel(replicaJobId);
      return report({ jobId, replicaJobId, agree: null, reason: 'The job failed, so there is nothing to compare.' });
    }
    const score = scoring ? scoreRequestFor(job, first) : null;
    const replica = await (early ?? parts.follow(line, replicaJobId, score ?? job));
    const a = score === null ? compareResults(first, replica, parts.compare) : scoredBy(replica, score);
    const verdict: Verdict = {
      stage: 'replica',
      replicaJobId,
      agree: a.agree,
      score: a.score,
      reason: a.reason.slice(0, 500),
      ...(replica.kind === 'score' && score !== null && { scored: { positions: replica.positions, inTopK: replica.inTopK } }),
    };
    const answer = await parts.verdict(jobId, verdict);
    if (answer.tieBreak === null) return report({ jobId, replicaJobId, agree: a.agree, reason: a.reason });
    const tieBreakJobId = answer.tieBreak.jobId;
    const third = await parts.follow(line, tieBreakJobId, score ?? job);
    const withPrimary = score === null ? compareResults(third, first, parts.compare) : scoredBy(third, score);
    // Scored, the replica gave a count, not an output: it is right when the third device also finds the output unlikely.
    const withReplica = score === null ? compareResults(third, replica, parts.compare) : { ...withPrimary, agree: !withPrimary.agree };
    const said = (x: typeof a) => ({ agree: x.agree, score: x.score, reason: x.reason.slice(0, 500) });
    await parts.verdict(jobId, {
      stage: 'tie-break',
      tieBreakJobId,
      withPrimary: said(withPrimary),
      withReplica: said(withReplica),
      ...(third.kind === 'score' && score !== null && { scored: { positions: third.positions, inTopK: third.inTopK } }),
    });
    report({
      jobId,
      replicaJobId,
      agree: false,
      reason: a.reason,
      tieBreak: { jobId: tieBreakJobId, withPrimary: withPrimary.agree, withReplica: withReplica.agree },
    });
  } catch (err) {
    const error = err instanceof JobFailed ? err.error.message : err instanceof Error ? err.message : String(err);
    report({ jobId, replicaJobId, agree: null, reason: 'The check could not finish.', error });
  }
}
