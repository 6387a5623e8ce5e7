/**
 * A requester's verdicts on a replicated job (`POST /v1/jobs/:id/verdict`): the replica stage,
 * which may ask for a tie-break on a third device, and the tie-break stage. With end-to-end
 * sealing only the requester reads the results, so the coordinator judges from what it
 * reports; for a generation checked by a teacher-forced score (protocol/teacher-forced.ts)
 * the coordinator applies its own rule to the checker's count instead of taking the
 * requester's word for agreement.
 */
import type { Agreement } from '../../protocol/compare.ts';
import { judgeScored, type Scored } from '../../protocol/teacher-forced.ts';
import type { Verdict } from '../../protocol/wire.ts';
import type { Clock } from '../clock.ts';
import { Job } from '../jobs/job.ts';
import type { Relay } from '../leases/relay.ts';
import { judgeReported, type Judgement } from './outcome.ts';
import type { RequesterStanding } from './requesters.ts';
import type { JobRow, VerificationStore } from './verification-store.ts';

/** The answer to a verdict, or why it was refused. */
export type VerdictOutcome =
  | { readonly ok: true; readonly answer: { readonly tieBreak: { readonly jobId: string } | null } }
  | { readonly ok: false; readonly status: 404 | 409; readonly code: 'NOT_FOUND' | 'CONFLICT'; readonly message: string };

/** What the verdicts need of the verification service. */
export interface VerdictContext {
  readonly store: VerificationStore;
  readonly clock: Clock;
  readonly standing: RequesterStanding;
  relay(): Relay | null;
  /** Resolves when the verification work queued so far is written. */
  settled(): Promise<void>;
  apply(judgement: Judgement, context: { model: string; engineClass: string }, primaryJobId: string): Promise<void>;
  walletsOf(ids: readonly string[]): Promise<string[]>;
}

/**
 * Whether a checker's count says the primary's output is its own model's: judged by the
 * coordinator's rule, never by the requester's `agree`. Every position of the output the
 * primary claimed must be scored.
 */
export function scoredAgreement(scored: Scored, primary: JobRow): Agreement {
  const positions = primary.claimed?.completionTokens ?? 0;
  const a = judgeScored(scored, positions);
  return { ...a, reason: `Scored teacher-forced by another device: ${a.reason}` };
}

/** Handles one verdict of the requester of `apiKeyId` on its job `jobId`. */
export async function takeVerdict(ctx: VerdictContext, jobId: string, apiKeyId: string, body: Verdict): Promise<VerdictOutcome> {
  const { store, clock, standing } = ctx;
  const refuse = (status: 404 | 409, message: string): VerdictOutcome => ({
    ok: false,
    status,
    code: status === 404 ? 'NOT_FOUND' : 'CONFLICT',
    message,
  });
  await ctx.settled();
  const primary = await store.job(jobId);
  if (primary === null || primary.role !== 'job' || primary.apiKeyId !== apiKeyId) {
    return refuse(404, `No finished job ${jobId} of this API key awaits a verdict.`);
  }
  const now = clock.now();
  const context = { model: primary.model, engineClass: primary.engineClass };
  // A scored check is judged by the coordinator's rule on the checker's count.
  const replicaSaid: Agreement | null =
    body.stage !== 'replica'
      ? null
      : body.scored !== undefined
        ? scoredAgreement(body.scored, primary)
        : { agree: body.agree, score: body.score, reason: `The requester reports: ${body.reason}` };
  const thirdSaid = body.stage === 'tie-break' && body.scored !== undefined ? scoredAgreement(body.scored, primary) : null;
  // A flagged requester's word changes nothing: no void, no quarantine count, no tie-break.
  const flagged = standing.isFlagged(apiKeyId);
  const negative =
    replicaSaid !== null
      ? !replicaSaid.agree
      : body.stage === 'tie-break' && (thirdSaid === null ? !body.withPrimary.agree || !body.withReplica.agree : true);
  standing.note(apiKeyId, negative, now);
  if (flagged) {
    const stage = body.stage === 'replica' ? 'replica' : 'tie-break';
    if (!(await store.claimVerdict(jobId, stage, now))) return refuse(409, `Job ${jobId} already has its ${stage} verdict.`);
    await store.uncheck(jobId, now);
    return { ok: true, answer: { tieBreak: null } };
  }
  if (body.stage === 'replica' && replicaSaid !== null) {
    if (primary.replicaJobId !== body.replicaJobId) return refuse(409, `Job ${body.replicaJobId} is not the replica of job ${jobId}.`);
    if (primary.replicaVerdictAt !== null) return refuse(409, `Job ${jobId} already has its replica verdict; one is taken per job.`);
    const replica = await store.job(body.replicaJobId);
    if (replica === null) return refuse(409, `The replica ${body.replicaJobId} has not finished; post the verdict after its result.`);
    if (!(await store.claimVerdict(jobId, 'replica', now))) return refuse(409, `Job ${jobId} already has its replica verdict.`);
    const judgement = judgeReported({
      jobId,
      check: 'replica',
      primary: primary.contributorId,
      replica: replica.contributorId,
      agreement: replicaSaid,
    });
    await ctx.apply(judgement, context, jobId);
    if (!judgement.needsTieBreak) return { ok: true, answer: { tieBreak: null } };
    return await askTieBreak(ctx, primary, replica.contributorId, apiKeyId);
  }
  if (body.stage !== 'tie-break') return refuse(409, `Job ${jobId} has no verdict of that stage.`);
  if (primary.tieBreakJobId !== body.tieBreakJobId) return refuse(409, `Job ${body.tieBreakJobId} is not the tie-break of job ${jobId}.`);
  if (primary.tieBreakVerdictAt !== null) return refuse(409, `Job ${jobId} already has its tie-break verdict.`);
  const [replica, third] = await Promise.all([store.job(primary.replicaJobId ?? ''), store.job(body.tieBreakJobId)]);
  if (replica === null || third === null)
    return refuse(409, `The tie-break ${body.tieBreakJobId} has not finished; post the verdict after its result.`);
  if (!(await store.claimVerdict(jobId, 'tie-break', now))) return refuse(409, `Job ${jobId} already has its tie-break verdict.`);
  const said = (which: 'withPrimary' | 'withReplica'): Agreement => ({
    ...body[which],
    reason: `The requester reports: ${body[which].reason}`,
  });
  // Scored: the replica found the primary's output unlikely; the third device's count decides which of the two is right.
  const withPrimary = thirdSaid ?? said('withPrimary');
  const withReplica: Agreement =
    thirdSaid === null
      ? said('withReplica')
      : {
          agree: !thirdSaid.agree,
          score: thirdSaid.agree ? 0 : 1,
          reason: thirdSaid.agree
            ? `A third device finds the primary's output likely where the replica did not. ${thirdSaid.reason}`
            : `A third device, like the replica, finds the primary's output unlikely. ${thirdSaid.reason}`,
        };
  const judgement = judgeReported({
    jobId,
    check: 'tie-break',
    primary: primary.contributorId,
    replica: replica.contributorId,
    tieBreaker: third.contributorId,
    withPrimary,
    withReplica,
  });
  await ctx.apply(judgement, context, jobId);
  return { ok: true, answer: { tieBreak: null } };
}

/** Places the tie-break of a disagreement on a third device of another wallet, or says why none could run it. */
async function askTieBreak(ctx: VerdictContext, primary: JobRow, replicaContributorId: string, apiKeyId: string): Promise<VerdictOutcome> {
  const { store, clock } = ctx;
  const jobId = primary.jobId;
  const relay = ctx.relay();
  const exclude = [primary.contributorId, replicaContributorId];
  const excludeWallets = await ctx.walletsOf(exclude);
  const tie =
    relay !== null && relay.hasPeer(primary.model, primary.kind, primary.engineClass, exclude, excludeWallets)
      ? relay.createCheckJob({
          role: 'tie-break',
          apiKeyId,
          model: primary.model,
          kind: primary.kind,
          engineClass: primary.engineClass,
          exclude,
          excludeWallets,
          primaryJobId: jobId,
        })
      : null;
  if (tie instanceof Job) {
    await store.update(jobId, { tieBreakJobId: tie.id });
    return { ok: true, answer: { tieBreak: { jobId: tie.id } } };
  }
  const now = clock.now();
  const why = `No third contributor of engine class "${primary.engineClass}" could run job ${jobId} to break the tie, so both credits are held until the verification window ends and then settle unverified; both are checked more often from now on.`;
  await store.addRecords(
    exclude.map((contributorId) => ({ at: now, contributorId, jobId, kind: 'replica-disagree' as const, reason: why })),
  );
  return { ok: true, answer: { tieBreak: null } };
}
