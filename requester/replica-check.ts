/**
 * A replica check the requester SDK runs beside a job (docs/protocol.md, "Replication"): the
 * same request sealed for another contributor (a generation with token ids: a teacher-forced
 * score of the primary's tokens), its result compared with the primary's, the verdict posted,
 * then the tie-break when the coordinator asks for one.
 */
import { compareResults, type CompareOptions } from '../protocol/compare.ts';
import type { JobRequest, JobResult } from '../protocol/jobs.ts';
import { scoredBy, scoreRequestFor } from '../protocol/teacher-forced.ts';
import type { Verdict, VerdictAnswer } from '../protocol/wire.ts';
import type { ReplicaCheck } from './client-types.ts';
import type { JobLine } from './http-line.ts';
import { JobFailed } from './stream.ts';

/** What a check needs of its client. */
export interface CheckDeps {
  /** Follows a job on `line` to its result (reopening a broken stream). */
  follow(line: JobLine, jobId: string, job: JobRequest): Promise<JobResult>;
  /** Posts a verdict on `jobId`. */
  verdict(jobId: string, verdict: Verdict): Promise<VerdictAnswer>;
  compare: CompareOptions | undefined;
  report(check: ReplicaCheck): void;
}

/**
 * Runs the replica of `jobId` (the same request, sealed for its own contributor), compares
 * its result with the primary's and posts the verdict; then the tie-break, if one is asked.
 */
export async function runReplicaCheck(
  deps: CheckDeps,
  line: JobLine,
  jobId: string,
  replicaJobId: string,
  job: JobRequest,
  primary: Promise<JobResult | null>,
): Promise<void> {
  const report = (check: ReplicaCheck): void => deps.report(check);
  try {
    // A generation with token ids is checked by scoring it: the replica runs one teacher-forced
    // pass over the primary's output, so an honest device of another backend still agrees.
    const scoring = job.kind === 'generate' || job.kind === 'chat';
    const early = scoring ? null : deps.follow(line, replicaJobId, job);
    const first = await primary;
    if (first === null) {
      await line.cancel(replicaJobId);
      return report({ jobId, replicaJobId, agree: null, reason: 'The job failed, so there is nothing to compare.' });
    }
    const score = scoring ? scoreRequestFor(job, first) : null;
    const replica = await (early ?? deps.follow(line, replicaJobId, score ?? job));
    const a = score === null ? compareResults(first, replica, deps.compare) : scoredBy(replica, score);
    const verdict: Verdict = {
      stage: 'replica',
      replicaJobId,
      agree: a.agree,
      score: a.score,
      reason: a.reason.slice(0, 500),
      ...(replica.kind === 'score' && score !== null && { scored: { positions: replica.positions, inTopK: replica.inTopK } }),
    };
    const answer = await deps.verdict(jobId, verdict);
    if (answer.tieBreak === null) return report({ jobId, replicaJobId, agree: a.agree, reason: a.reason });
    const tieBreakJobId = answer.tieBreak.jobId;
    const third = await deps.follow(line, tieBreakJobId, score ?? job);
    const withPrimary = score === null ? compareResults(third, first, deps.compare) : scoredBy(third, score);
    // Scored, the replica gave a count, not an output: it is right when the third device also finds the output unlikely.
    const withReplica = score === null ? compareResults(third, replica, deps.compare) : { ...withPrimary, agree: !withPrimary.agree };
    const said = (x: typeof a) => ({ agree: x.agree, score: x.score, reason: x.reason.slice(0, 500) });
    await deps.verdict(jobId, {
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
