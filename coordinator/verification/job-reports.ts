/**
 * A requester's report on its delivered job (`POST /v1/jobs/:id/report`): whether the result
 * opened and what usage it held. A usage below the device's claim is kept as a dispute against
 * both parties; a result that did not open voids the device's credit and earns a free re-run,
 * unless the key's reports are far more negative than the network's.
 */
import type { JobReport, JobReportAnswer } from '../../protocol/wire.ts';
import type { Clock } from '../clock.ts';
import { Job } from '../jobs/job.ts';
import type { Refusal } from '../leases/relay.ts';
import type { Judgement } from './outcome.ts';
import type { RequesterStanding } from './requesters.ts';
import type { VerificationStore } from './verification-store.ts';

/** The answer to a job report, or why it was refused. */
export type JobReportOutcome =
  | { readonly ok: true; readonly answer: JobReportAnswer }
  | { readonly ok: false; readonly status: 404 | 409; readonly code: 'NOT_FOUND' | 'CONFLICT'; readonly message: string };

/** What the job reports need of the verification service. */
export interface JobReportContext {
  readonly store: VerificationStore;
  readonly clock: Clock;
  readonly standing: RequesterStanding;
  /** Resolves when the verification work queued so far is written. */
  settled(): Promise<void>;
  apply(judgement: Judgement, context: { model: string; engineClass: string }, primaryJobId: string): Promise<void>;
  /** Places a free re-run of a delivered job; null when the coordinator places none. */
  rerunner(): ((jobId: string) => Promise<Job | Refusal>) | null;
}

/** Handles the report of the requester of `apiKeyId` on its job `jobId`. */
export async function takeJobReport(ctx: JobReportContext, jobId: string, apiKeyId: string, body: JobReport): Promise<JobReportOutcome> {
  const { store, clock, standing } = ctx;
  await ctx.settled();
  const primary = await store.job(jobId);
  if (primary === null || primary.role !== 'job' || primary.apiKeyId !== apiKeyId) {
    return {
      ok: false,
      status: 404,
      code: 'NOT_FOUND',
      message: `No delivered job ${jobId} of this API key; report only jobs this key ran.`,
    };
  }
  const now = clock.now();
  const claimed = primary.claimed ?? null;
  const received = body.usage;
  const disputed =
    body.opened &&
    received !== undefined &&
    claimed !== null &&
    (claimed.promptTokens > received.promptTokens || claimed.completionTokens > received.completionTokens);
  const flagged = standing.isFlagged(apiKeyId);
  const taken = await store.addReport(
    { jobId, apiKeyId, contributorId: primary.contributorId, outcome: body.opened ? 'ok' : 'unopenable', disputed, counted: !flagged },
    now,
  );
  if (!taken) return { ok: false, status: 409, code: 'CONFLICT', message: `Job ${jobId} was reported already; one report per job.` };
  standing.note(apiKeyId, !body.opened || disputed, now);
  if (disputed) {
    // No amount changes (the bill was clamped to the envelope); the dispute is kept against both parties.
    standing.dispute(primary.contributorId, apiKeyId, now);
    await store.addRecords([
      {
        at: now,
        contributorId: primary.contributorId,
        jobId,
        kind: 'usage-disputed',
        reason: `The requester of job ${jobId} received a result of ${received?.promptTokens ?? 0} + ${received?.completionTokens ?? 0} tokens where you claimed ${claimed?.promptTokens ?? 0} + ${claimed?.completionTokens ?? 0}. Devices many requesters dispute are checked more often.`,
      },
    ]);
  }
  if (body.opened) return { ok: true, answer: { rerun: null, message: disputed ? 'The usage dispute is recorded.' : 'Recorded.' } };
  if (flagged) {
    return {
      ok: true,
      answer: {
        rerun: null,
        message: "This key's reports are far more negative than the network's, so they void no credit and earn no re-run for now.",
      },
    };
  }
  const why = body.reason === undefined ? '' : ` (${body.reason.slice(0, 200)})`;
  await ctx.apply(
    {
      jobId,
      check: 'none',
      findings: [
        {
          contributorId: primary.contributorId,
          kind: 'undeliverable',
          standing: 'failed',
          ledger: 'void',
          reason: `The requester of job ${jobId} could not open your result${why}, so it is not paid and the job runs again elsewhere.`,
        },
      ],
      needsTieBreak: false,
    },
    { model: primary.model, engineClass: primary.engineClass },
    jobId,
  );
  const rerunner = ctx.rerunner();
  const rerun = rerunner === null ? null : await rerunner(jobId);
  if (rerun instanceof Job) return { ok: true, answer: { rerun: { jobId: rerun.id }, message: 'A free re-run is under way.' } };
  const message = `The credit is voided, but no re-run could be placed: ${rerun === null ? 'the coordinator places no re-runs' : rerun.error.message}`;
  return { ok: true, answer: { rerun: null, message: message.slice(0, 500) } };
}
