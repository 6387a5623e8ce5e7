/**
 * Judges a checked job: which contributor failed, who is merely suspect, and what the ledger
 * must do with each contributor's credit. Pure: the policy turns a judgement into rates,
 * reputation and quarantine.
 */
import type { JobResult } from '../../protocol/jobs.ts';
import { type Agreement, type CompareOptions, compareResults } from '../../protocol/compare.ts';

/** What the ledger does with one contributor's credit for the job. */
export type LedgerAction =
  /** Credit it (it settles when the verification window ends). */
  | 'settle'
  /** Take it back: the work was wrong or could not be verified. */
  | 'void'
  /** Keep it pending: a tie-break run decides. */
  | 'hold';

/** What a check found about one contributor's run. */
export type FindingKind =
  | 'unchecked'
  | 'canary-pass'
  | 'canary-fail'
  | 'replica-agree'
  | 'replica-disagree'
  | 'tie-break-pass'
  | 'tie-break-fail'
  | 'tie-break-inconclusive'
  /** The requester reported that the result did not open. */
  | 'undeliverable';

/** How a finding counts: `suspect` raises the replication rate but is no failure (it may be the other run's fault). */
export type Standing = 'clean' | 'failed' | 'suspect' | 'unchecked';

/** One contributor's run of a job. */
export interface Run {
  readonly contributorId: string;
  readonly result: JobResult;
}

/** A job's results, as far as its checks went. */
export type JudgeInput =
  | { readonly jobId: string; readonly check: 'none'; readonly primary: Run }
  | { readonly jobId: string; readonly check: 'canary'; readonly primary: Run; readonly expected: JobResult }
  | { readonly jobId: string; readonly check: 'replica'; readonly primary: Run; readonly replica: Run }
  | { readonly jobId: string; readonly check: 'tie-break'; readonly primary: Run; readonly replica: Run; readonly tieBreaker: Run };

/** The verdict on one contributor's run. */
export interface Finding {
  readonly contributorId: string;
  readonly kind: FindingKind;
  readonly standing: Standing;
  readonly ledger: LedgerAction;
  /** Words a contributor can read. */
  readonly reason: string;
}

/** The verdict on a job. */
export interface Judgement {
  readonly jobId: string;
  readonly check: JudgeInput['check'];
  /** One per run, in the order primary, replica, tie-breaker. */
  readonly findings: readonly Finding[];
  /** The primary and replica disagree and nothing says which is wrong: run the job a third time, on a third contributor. */
  readonly needsTieBreak: boolean;
}

/**
 * What a requester reports of a replicated job: with end-to-end sealing only it can read both
 * results, so the coordinator judges from its comparison, not from the results.
 */
export type ReportedCheck =
  | {
      readonly jobId: string;
      readonly check: 'replica';
      readonly primary: string;
      readonly replica: string;
      readonly agreement: Agreement;
    }
  | {
      readonly jobId: string;
      readonly check: 'tie-break';
      readonly primary: string;
      readonly replica: string;
      readonly tieBreaker: string;
      /** The third run against the primary's. */
      readonly withPrimary: Agreement;
      /** The third run against the replica's. */
      readonly withReplica: Agreement;
    };

/** Judges a job from its runs; `compare` sets the tolerances. */
export function judge(input: JudgeInput, compare: CompareOptions = {}): Judgement {
  const { jobId } = input;
  switch (input.check) {
    case 'none':
      return {
        jobId,
        check: 'none',
        findings: [finding(input.primary.contributorId, 'unchecked', 'unchecked', 'settle', `Job ${jobId} was not sampled for a check.`)],
        needsTieBreak: false,
      };
    case 'canary': {
      const a = compareResults(input.primary.result, input.expected, compare);
      const who = input.primary.contributorId;
      return {
        jobId,
        check: 'canary',
        findings: [
          a.agree
            ? finding(who, 'canary-pass', 'clean', 'settle', `Job ${jobId} had a known answer and yours matched it. ${a.reason}`)
            : finding(who, 'canary-fail', 'failed', 'void', `Job ${jobId} had a known answer and yours did not match it. ${a.reason}`),
        ],
        needsTieBreak: false,
      };
    }
    case 'replica':
      return judgeReported({
        jobId,
        check: 'replica',
        primary: input.primary.contributorId,
        replica: input.replica.contributorId,
        agreement: compareResults(input.primary.result, input.replica.result, compare),
      });
    case 'tie-break':
      return judgeReported({
        jobId,
        check: 'tie-break',
        primary: input.primary.contributorId,
        replica: input.replica.contributorId,
        tieBreaker: input.tieBreaker.contributorId,
        withPrimary: compareResults(input.tieBreaker.result, input.primary.result, compare),
        withReplica: compareResults(input.tieBreaker.result, input.replica.result, compare),
      });
  }
}

/** Judges a replicated job from the comparisons of its results. */
export function judgeReported(input: ReportedCheck): Judgement {
  const { jobId } = input;
  if (input.check === 'tie-break') {
    const findings = tieBreak(jobId, input.primary, input.replica, input.tieBreaker, input.withPrimary, input.withReplica);
    return { jobId, check: 'tie-break', findings, needsTieBreak: false };
  }
  const a = input.agreement;
  if (a.agree) {
    const why = `Job ${jobId} was also run by another contributor and the results agree. ${a.reason}`;
    return {
      jobId,
      check: 'replica',
      findings: [
        finding(input.primary, 'replica-agree', 'clean', 'settle', why),
        finding(input.replica, 'replica-agree', 'clean', 'settle', why),
      ],
      needsTieBreak: false,
    };
  }
  const why = `Job ${jobId} was also run by another contributor and the results disagree (${a.reason}). A third run decides which is right; the credit waits until then.`;
  return {
    jobId,
    check: 'replica',
    findings: [
      finding(input.primary, 'replica-disagree', 'suspect', 'hold', why),
      finding(input.replica, 'replica-disagree', 'suspect', 'hold', why),
    ],
    needsTieBreak: true,
  };
}

function finding(contributorId: string, kind: FindingKind, standing: Standing, ledger: LedgerAction, reason: string): Finding {
  return { contributorId, kind, standing, ledger, reason };
}

function tieBreak(
  jobId: string,
  primary: string,
  replica: string,
  third: string,
  withPrimary: Agreement,
  withReplica: Agreement,
): Finding[] {
  const pass = (who: string, a: Agreement): Finding =>
    finding(who, 'tie-break-pass', 'clean', 'settle', `A third run of job ${jobId} agrees with yours. ${a.reason}`);
  const fail = (who: string, a: Agreement): Finding =>
    finding(
      who,
      'tie-break-fail',
      'failed',
      'void',
      `Two other contributors agree on job ${jobId} and your result differs from theirs. ${a.reason}`,
    );
  if (withPrimary.agree && !withReplica.agree) return [pass(primary, withPrimary), fail(replica, withReplica), pass(third, withPrimary)];
  if (withReplica.agree && !withPrimary.agree) return [fail(primary, withPrimary), pass(replica, withReplica), pass(third, withReplica)];
  if (withPrimary.agree && withReplica.agree) {
    // Both are within tolerance of the third run: the first two were borderline, not wrong.
    return [pass(primary, withPrimary), pass(replica, withReplica), pass(third, withPrimary)];
  }
  const why = `No two of three runs of job ${jobId} agree, so it cannot be verified: no one is paid for it and no one is blamed.`;
  return [primary, replica, third].map((who) => finding(who, 'tie-break-inconclusive', 'suspect', 'void', why));
}
