/**
 * Canaries in the running coordinator: each goes out at a random moment after the job that
 * drew it, and what it comes to is judged against its known answer, its usage claim against
 * the true usage of that answer.
 */
import type { CompareOptions } from '../../protocol/compare.ts';
import type { JobResult, Usage } from '../../protocol/jobs.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { Clock } from '../clock.ts';
import type { Relay } from '../leases/relay.ts';
import type { Canary, CanarySource } from './canaries.ts';
import { type CanaryOutcome, canaryEnvelope, sendCanary } from './canary-runner.ts';
import type { CanaryMoments } from './canary-shapes.ts';
import type { JudgementWriter } from './judgement-writer.ts';
import { judge, type Judgement } from './outcome.ts';
import type { VerificationStore } from './verification-store.ts';
import type { WorkQueue } from './work-queue.ts';

export interface CanaryChecksOptions {
  readonly canaries: CanarySource;
  readonly moments: CanaryMoments;
  readonly store: VerificationStore;
  readonly clock: Clock;
  /** How answers are compared; absent or undefined: the defaults. */
  readonly compare?: CompareOptions | undefined;
  readonly queue: WorkQueue;
  readonly writer: JudgementWriter;
  /** The coordinator's relay, once attached. */
  readonly relay: () => Relay | null;
  /** Told of each canary that went out. */
  readonly onSent: () => void;
}

export class CanaryChecks {
  readonly #o: CanaryChecksOptions;
  /** Canaries in flight: job id → what it must answer. */
  readonly #expected = new Map<string, { contributorId: string; canary: Canary }>();

  constructor(options: CanaryChecksOptions) {
    this.#o = options;
  }

  /** A canary of `model` for `contributorId`, at a random moment: not right after the job, as its timing must not give it away. */
  schedule(contributorId: string, model: string, kind: JobKind, engineClass: string): void {
    this.#o.moments.at(() => {
      const relay = this.#o.relay();
      const canary = relay?.reaches(contributorId) === true ? this.#o.canaries.next(model, kind, engineClass) : null;
      const id = canary === null || relay === null ? null : sendCanary(relay, contributorId, canary, (outcome) => this.#judge(outcome));
      if (canary !== null && id !== null) {
        this.#o.onSent();
        this.#expected.set(id, { contributorId, canary });
      }
    });
  }

  #judge(outcome: CanaryOutcome): void {
    const sent = this.#expected.get(outcome.jobId);
    this.#expected.delete(outcome.jobId);
    if (sent === undefined) return;
    const { store, clock, writer } = this.#o;
    this.#o.queue.enqueue('judging a canary', async () => {
      const row = await store.job(outcome.jobId);
      const context = { model: sent.canary.request.model, engineClass: row?.engineClass ?? '' };
      if (outcome.result === null) {
        if (outcome.cause === 'network') {
          // The coordinator stopped it: nothing to judge.
          await store.uncheck(outcome.jobId, clock.now());
          return;
        }
        // Garbage is never paid: an unopenable, failed or abandoned canary is a failed check.
        await writer.apply(failedCanary(outcome.jobId, sent.contributorId, `it came to nothing: ${outcome.why}`), context, outcome.jobId);
        return;
      }
      const inflated = inflatedUsage(outcome.usage, trueUsage(sent.canary, outcome.result));
      if (inflated !== null) {
        await writer.apply(failedCanary(outcome.jobId, sent.contributorId, inflated), context, outcome.jobId);
        return;
      }
      const judgement = judge(
        {
          jobId: outcome.jobId,
          check: 'canary',
          primary: { contributorId: sent.contributorId, result: outcome.result },
          expected: sent.canary.expected,
        },
        this.#o.compare,
      );
      await writer.apply(judgement, context, outcome.jobId);
    });
  }
}

/** A canary judged failed without comparing results: it came to nothing, or its usage claim was inflated. */
function failedCanary(jobId: string, contributorId: string, why: string): Judgement {
  return {
    jobId,
    check: 'canary',
    findings: [
      {
        contributorId,
        kind: 'canary-fail',
        standing: 'failed',
        ledger: 'void',
        reason: `Job ${jobId} had a known answer and ${why}. A check that comes to nothing is a failed check and is not paid.`,
      },
    ],
    needsTieBreak: false,
  };
}

/**
 * The most a canary's run may claim: the known prompt tokens, and as output the known answer's
 * tokens, or for generation as many as the result holds (an honest run may stop elsewhere),
 * for chat at most the request's `maxTokens`.
 */
function trueUsage(canary: Canary, result: JobResult): Usage {
  const { promptTokens, completionTokens } = canary.expected.usage;
  if (result.kind === 'generate') return { promptTokens, completionTokens: Math.max(completionTokens, result.tokens.length) };
  if (result.kind === 'chat') return { promptTokens, completionTokens: Math.max(completionTokens, canaryEnvelope(canary).maxOutputTokens) };
  return { promptTokens, completionTokens };
}

/**
 * Why a canary's claimed usage is inflated, or null when it is not: the coordinator knows the
 * true usage of its known answers, so any claim above it is a lie about the work.
 */
export function inflatedUsage(claimed: Usage | undefined, truth: Usage): string | null {
  if (claimed === undefined) return null;
  if (claimed.promptTokens <= truth.promptTokens && claimed.completionTokens <= truth.completionTokens) return null;
  return (
    `you claimed ${claimed.promptTokens} + ${claimed.completionTokens} tokens where the job takes ` +
    `${truth.promptTokens} + ${truth.completionTokens}; a usage claim above the work done is a failed check`
  );
}
