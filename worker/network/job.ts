/**
 * Runs one leased job: opens the sealed payload, runs it on the runtime, and streams the
 * result back sealed to the requester's key, chunk by chunk. Once the job's signal is
 * aborted (cancel, deadline, lost connection, stop) nothing more is sent for it.
 */
import type * as v from 'valibot';
import { createResultSealer, openJob, type JobPayload, type ResultPiece, type ResultSealer } from '../../protocol/envelope.ts';
import { serializeError } from '../../protocol/errors.ts';
import { type JobResult, type StreamChunk, wireKindOf } from '../../protocol/jobs.ts';
import { PROTOCOL_VERSION, type ContributorMessage, type Job, type WireError } from '../../protocol/wire.ts';
import type { SendResult } from './connection.ts';

export type JobMessage = v.InferOutput<typeof Job>;

/** The part of the runtime that runs jobs; `Runtime` fits. */
export interface JobRunner {
  run(request: unknown, options: { signal?: AbortSignal; onChunk?: (chunk: StreamChunk) => void }): Promise<{ result: JobResult }>;
}

export interface JobContext {
  runtime: JobRunner;
  /** The device's HPKE pair the payload is sealed to. */
  hpke: CryptoKeyPair;
  send(message: ContributorMessage): SendResult;
}

/** `done`: the final chunk was sent; `failed`: a `fail` was sent; `stopped`: aborted, nothing more sent. */
export type JobOutcome = 'done' | 'failed' | 'stopped';

const MAX_ERROR_MESSAGE = 2000;

/** Runs `job` to its end; never throws. */
export async function runJob(job: JobMessage, context: JobContext, signal: AbortSignal): Promise<JobOutcome> {
  const fail = (error: WireError): JobOutcome => {
    if (signal.aborted) return 'stopped';
    const message = {
      v: PROTOCOL_VERSION,
      type: 'fail',
      jobId: job.jobId,
      leaseId: job.leaseId,
      error: { code: error.code, message: error.message.slice(0, MAX_ERROR_MESSAGE) },
    } as const;
    context.send(message);
    return 'failed';
  };

  let payload: JobPayload;
  let sealer: ResultSealer;
  try {
    payload = await openJob(context.hpke, job.sealed, { jobId: job.jobId, attempt: job.attempt, model: job.model, kind: job.kind });
    // openJob checks this binding too; checked again here because running another model than leased would be paid wrongly.
    if (payload.request.model !== job.model || wireKindOf(payload.request) !== job.kind) {
      return fail({
        code: 'OPEN_FAILED',
        message: `The payload asks for a ${wireKindOf(payload.request)} job on "${payload.request.model}", not the ${job.kind} job on "${job.model}" that was leased.`,
      });
    }
  } catch (err) {
    return fail({ code: 'OPEN_FAILED', message: serializeError(err).message });
  }
  try {
    sealer = await createResultSealer(payload.resultKey, job.jobId);
  } catch (err) {
    return fail({ code: 'OPEN_FAILED', message: `The payload's result key is unusable: ${serializeError(err).message}` });
  }
  if (signal.aborted) return 'stopped';

  const stream = chunkStream(job, sealer, context, signal);
  let result: JobResult;
  try {
    ({ result } = await context.runtime.run(payload.request, {
      signal,
      onChunk: (chunk) => stream.push({ type: 'delta', text: chunk.text, tokens: chunk.tokens }, false),
    }));
  } catch (err) {
    await stream.settled();
    const { code, message } = serializeError(err);
    // The coordinator sees only metadata: a library's own words may quote the job's input, so
    // they stay on this device; our typed errors say what was wrong without the content.
    const opaque = code === 'ENGINE' || code === 'INTERNAL';
    return fail({ code, message: opaque ? 'The engine failed on this job; the details stay on the contributor\u2019s device.' : message });
  }
  stream.push({ type: 'result', result }, true, result.usage);
  const sent = await stream.settled();
  if (signal.aborted) return 'stopped';
  if (sent === 'sent') return 'done';
  if (sent === 'too-large') return fail({ code: 'QUOTA', message: 'The result is larger than the coordinator accepts in one message.' });
  if (sent === 'error') return fail({ code: 'INTERNAL', message: 'The result could not be sealed.' });
  return 'stopped';
}

/** Seals and sends pieces strictly in order; stops at the first piece that cannot be sent. */
function chunkStream(job: JobMessage, sealer: ResultSealer, context: JobContext, signal: AbortSignal) {
  let tail: Promise<SendResult | 'error'> = Promise.resolve('sent');
  return {
    push(piece: ResultPiece, final: boolean, usage?: { promptTokens: number; completionTokens: number }): void {
      tail = tail
        .then(async (previous) => {
          if (previous !== 'sent' || signal.aborted) return previous;
          const chunk = await sealer.seal(piece, final);
          if (signal.aborted) return 'closed';
          const { seq, sealed } = chunk;
          return context.send({
            v: PROTOCOL_VERSION,
            type: 'chunk',
            jobId: job.jobId,
            leaseId: job.leaseId,
            seq,
            final: chunk.final,
            sealed,
            ...(usage === undefined ? {} : { usage }),
          });
        })
        .catch(() => 'error' as const);
    },
    /** How the last piece went, once every piece pushed so far is handled. */
    settled: (): Promise<SendResult | 'error'> => tail,
  };
}
