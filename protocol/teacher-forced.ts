/**
 * The teacher-forced check of a generation (docs/protocol.md, "Verified work", rule 4): a
 * checker device runs one pass over the prompt plus the checked run's output and counts the
 * output positions whose token is among its own most likely (a `score` job). Honest devices
 * of different backends agree on only about 97–98 % of top-1 tokens, and a near tie can flip
 * one greedy choice and so everything after it; scored against the checked run's own prefix,
 * an honest run's every token is still among the checker's top few, while a made-up token
 * almost never is. One rule for the SDK that asks and the coordinator that judges.
 */
import type { JobResult, ScoreRequest } from './jobs.ts';

/** An agreement as protocol/compare.ts words it. */
export interface ScoredAgreement {
  readonly agree: boolean;
  readonly score: number;
  readonly reason: string;
}

/** How many of the checker's most likely tokens count as agreeing. */
export const TEACHER_FORCED_TOP_K = 5;
/**
 * A token outside the top k still agrees when its logit is within this of the k-th best: a
 * near tie at the edge of the top k is the checker's rounding, not the checked run's fault.
 */
export const TEACHER_FORCED_MARGIN = 0.5;
/** Least share of scored positions within the top k for the runs to agree. */
export const MIN_TEACHER_FORCED_SHARE = 0.95;

/** What a checker counted. */
export interface Scored {
  readonly positions: number;
  readonly inTopK: number;
}

/**
 * Whether `token` ranks within the `k` largest of `row`, or within `margin` of the k-th
 * largest. Ties at the k-th value count as in.
 */
export function ranksWithin(row: ArrayLike<number>, token: number, k: number, margin: number): boolean {
  const mine = row[token];
  if (mine === undefined || !Number.isFinite(mine)) return false;
  let above = 0;
  for (let i = 0; i < row.length; i++) if ((row[i] ?? Number.NEGATIVE_INFINITY) > mine + margin) above++;
  return above < k;
}

/** The score job that checks `result`, a run of `target`; null when the result holds no token ids (web-llm chat). */
export function scoreRequestFor(
  target: ScoreRequest['target'],
  result: JobResult,
  options: { topK?: number; margin?: number } = {},
): ScoreRequest | null {
  const tokens = result.kind === 'generate' || result.kind === 'chat' ? result.tokens : undefined;
  if (tokens === undefined || result.kind !== target.kind) return null;
  return {
    kind: 'score',
    model: target.model,
    target,
    output: tokens,
    stopped: result.finishReason === 'stop',
    topK: options.topK ?? TEACHER_FORCED_TOP_K,
    margin: options.margin ?? TEACHER_FORCED_MARGIN,
  };
}

/** How many positions a check of `output` scores: one per token, and one for the end token of a run that stopped. */
export function positionsOf(outputTokens: number, stopped: boolean): number {
  return outputTokens + (stopped ? 1 : 0);
}

/**
 * Whether a checker's count says the runs agree: it scored at least `positions` positions
 * (as many as the checked run's output holds), and at least `minShare` of them were in its top k.
 */
export function judgeScored(scored: Scored, positions: number, minShare = MIN_TEACHER_FORCED_SHARE): ScoredAgreement {
  if (scored.inTopK > scored.positions) {
    return {
      agree: false,
      score: 0,
      reason: `The check counts ${scored.inTopK} of ${scored.positions} positions; a count cannot exceed the positions.`,
    };
  }
  if (scored.positions < positions) {
    return {
      agree: false,
      score: 0,
      reason: `The check scored ${scored.positions} positions where the output holds ${positions}; every position must be scored.`,
    };
  }
  const score = scored.positions === 0 ? 1 : scored.inTopK / scored.positions;
  const agree = score >= minShare;
  return {
    agree,
    score,
    reason: `${scored.inTopK} of ${scored.positions} output tokens are among the checker's most likely (need ${(minShare * 100).toFixed(0)}%).`,
  };
}

/** How a checker's answer to the score job `score` judges the checked output. */
export function scoredBy(result: JobResult, score: ScoreRequest): ScoredAgreement {
  if (result.kind !== 'score') return { agree: false, score: 0, reason: `The checker answered a score job with a ${result.kind} result.` };
  return judgeScored(result, positionsOf(score.output.length, score.stopped));
}
