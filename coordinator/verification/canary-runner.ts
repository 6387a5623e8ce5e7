/**
 * Sends a known-answer job to one contributor as a requester would: the coordinator seals
 * the request to the contributor's hpkeKey for each assignment and opens the result with a
 * fresh result key, exactly as the requester SDK does, so the worker cannot tell it apart.
 */
import type { BillingEnvelope } from '../../protocol/billing.ts';
import { createResultOpener, exportPublicKey, generateHpkeKeyPair, sealJob, type ResultOpener } from '../../protocol/envelope.ts';
import { type JobResult, type Usage, wireKindOf } from '../../protocol/jobs.ts';
import type { JobEvent } from '../../protocol/wire.ts';
import { Job } from '../jobs/job.ts';
import type { Relay } from '../leases/relay.ts';
import type { Canary } from './canaries.ts';

/** The ledger's requester for check jobs: the network pays for its own checks. */
export const NETWORK_CHECKS = 'network:checks';

/**
 * A canary's billing envelope, set by the coordinator, which knows the true input tokens (the
 * known answer's usage) and bounds the output by the request's own `maxTokens`.
 */
export function canaryEnvelope(canary: Canary): BillingEnvelope {
  const { request, expected } = canary;
  const maxOutputTokens = request.kind === 'chat' || request.kind === 'generate' ? request.maxTokens : 0;
  return { inputTokens: expected.usage.promptTokens, maxOutputTokens };
}

/** What a canary came to. */
export type CanaryOutcome =
  /** `usage`: what the contributor claimed in its final chunk (none: it claimed nothing). */
  | { readonly jobId: string; readonly result: JobResult; readonly usage: Usage | undefined }
  /**
   * It never produced a readable result: `contributor` when the device left, failed the job,
   * let it expire or sealed garbage (a failed check); `network` when the coordinator stopped it.
   */
  | { readonly jobId: string; readonly result: null; readonly why: string; readonly cause: 'contributor' | 'network' };

/**
 * Starts `canary` on `contributorId` and reports its outcome once; returns the job id, or null
 * when the relay refused the job (full or draining).
 */
export function sendCanary(relay: Relay, contributorId: string, canary: Canary, report: (outcome: CanaryOutcome) => void): string | null {
  const { request } = canary;
  const job = relay.createCheckJob({
    role: 'canary',
    apiKeyId: NETWORK_CHECKS,
    model: request.model,
    kind: wireKindOf(request),
    target: contributorId,
    billing: canaryEnvelope(canary),
  });
  if (!(job instanceof Job)) return null;
  let opener: { attempt: number; opener: ResultOpener } | null = null;
  let reported = false;
  let usage: Usage | undefined;
  const done = (outcome: CanaryOutcome): void => {
    if (reported) return;
    reported = true;
    report(outcome);
  };
  // Events are handled one after another: sealing and opening are asynchronous, chunks must open in order.
  let chain: Promise<void> = Promise.resolve();
  const handle = async (event: JobEvent): Promise<void> => {
    if (event.type === 'assigned') {
      const keys = await generateHpkeKeyPair();
      const resultKey = await exportPublicKey(keys.publicKey);
      const { attempt, hpkeKey } = event.assignment;
      const sealed = await sealJob(
        hpkeKey,
        { request, resultKey },
        { jobId: job.id, attempt, model: request.model, kind: wireKindOf(request) },
      );
      opener = { attempt, opener: createResultOpener(keys, job.id) };
      const refused = relay.submitPayload(job, attempt, sealed);
      if (refused !== null && !job.finished) done({ jobId: job.id, result: null, why: refused.error.message, cause: 'network' });
      return;
    }
    if (event.type === 'failed') {
      // Only the coordinator stopping makes a canary end through no fault of the device.
      const cause = event.error.code === 'DRAINING' ? 'network' : 'contributor';
      return done({ jobId: job.id, result: null, why: `${event.error.code}: ${event.error.message}`, cause });
    }
    if (event.type !== 'chunk' || opener === null || event.attempt !== opener.attempt) return;
    if (event.final) usage = event.usage;
    const piece = await opener.opener.open({ seq: event.seq, final: event.final, sealed: event.sealed });
    if (piece.type === 'result') done({ jobId: job.id, result: piece.result, usage });
    else if (event.final) done({ jobId: job.id, result: null, why: 'its final chunk held no result', cause: 'contributor' });
  };
  job.subscribe({
    event: (event) => {
      chain = chain
        .then(() => handle(event))
        .catch((err: unknown) =>
          done({
            jobId: job.id,
            result: null,
            why: `its result could not be opened (${err instanceof Error ? err.message : String(err)})`,
            cause: 'contributor',
          }),
        );
    },
    end: () => {
      chain = chain.then(() =>
        done({
          jobId: job.id,
          result: null,
          why: `the job ended ${job.state} without a result`,
          cause: job.state === 'cancelled' ? 'network' : 'contributor',
        }),
      );
    },
  });
  return job.id;
}
