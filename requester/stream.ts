/**
 * How the requester SDK follows a job's event stream: what it has seen (so a reopened stream,
 * which replays the job's events, repeats nothing), the typed endings, and the NDJSON reader.
 */
import type { ResultOpener } from '../protocol/envelope.ts';
import { EngineError, type SpinneretError } from '../protocol/errors.ts';
import type { Assignment, SubmitPayload } from '../protocol/wire.ts';
import { MAX_MESSAGE_BYTES } from '../protocol/wire.ts';
import { CoordinatorError } from './errors.ts';

/** One attempt: the contributor it was sealed for and the opener of its result stream. */
export interface Attempt {
  attempt: number;
  opener: ResultOpener;
  /** Chunks opened so far; a chunk below it is a duplicate and skipped. */
  opened: number;
  text: string;
  tokens: number[];
}
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** The final chunk of a delivered result did not open or parse: the contributor sent garbage. */
export class UnopenableResult extends Error {
  constructor(readonly error: unknown) {
    super(error instanceof Error ? error.message : String(error));
  }
}

/**
 * The coordinator refused a job's creation after its id was known (a `submit` on the requester
 * channel answered 5xx: draining, or its database down): the job does not exist, so it is
 * created again, under the creation's backoff and idempotency key.
 */
export class NotCreated extends Error {
  constructor(readonly error: SpinneretError) {
    super(error.message);
  }
}

/** A `failed` event: the coordinator already ended the job, so it is not cancelled again. */
export class JobFailed extends Error {
  constructor(readonly error: SpinneretError) {
    super(error.message);
  }
}

/**
 * The part of an attempt's stream the caller has not seen. After a re-assignment the new
 * contributor regenerates text already streamed from the dropped one; that prefix is
 * skipped. If it differs (another numerics class), the streamed text cannot be taken back.
 */
export function unseen(
  emitted: { text: string; tokens: number[] },
  attempt: Attempt,
  jobId: string,
): { text: string; tokens: number[] } | null {
  const sameText = attempt.text.startsWith(emitted.text) || emitted.text.startsWith(attempt.text);
  const n = Math.min(attempt.tokens.length, emitted.tokens.length);
  const sameTokens = attempt.tokens.slice(0, n).every((t, i) => t === emitted.tokens[i]);
  if (!sameText || !sameTokens) {
    throw new EngineError(
      `The contributor that took over job ${jobId} produced different text than the one that dropped, after part of it was streamed. Run the job again; with temperature 0 and a seed, retries agree more often.`,
      { jobId, attempt: attempt.attempt },
    );
  }
  if (attempt.text.length <= emitted.text.length && attempt.tokens.length <= emitted.tokens.length) return null;
  const fresh = { text: attempt.text.slice(emitted.text.length), tokens: attempt.tokens.slice(emitted.tokens.length) };
  emitted.text += fresh.text;
  emitted.tokens.push(...fresh.tokens);
  return fresh;
}

/** Lines of a newline-delimited JSON body; cancels the body when the consumer stops early. */
export async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      let read: ReadableStreamReadResult<Uint8Array>;
      try {
        read = await reader.read();
      } catch (err) {
        // The connection broke (a restart, a proxy, a reader cut off as too slow): the stream can be reopened.
        throw new StreamBroken(err);
      }
      const { done, value } = read;
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, end).trim();
        buffer = buffer.slice(end + 1);
        if (line !== '') yield line;
      }
      if (done) break;
      // A line over the frame limit is refused like an oversized frame; don't buffer it forever.
      if (buffer.length > MAX_MESSAGE_BYTES * 2)
        throw new CoordinatorError('An event of the job stream is larger than any valid event.', 0);
    }
    if (buffer.trim() !== '') yield buffer.trim();
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

/** What a job's stream has shown so far; it outlives a reopened stream. */
export interface Progress {
  /** Text and tokens already passed to `onDelta` (across reopens and re-runs). */
  emitted: { text: string; tokens: number[] };
  /** The attempt the payload was sent for; null before the first. */
  current: Attempt | null;
  /** The payload sealed for the latest assignment, with its result key pair. */
  sealing: { attempt: number; keys: CryptoKeyPair; body: SubmitPayload } | null;
  /** The assignment from the creation answer, not yet sealed for. */
  inline: Assignment | null;
  /** Replica jobs already announced. */
  replicas: Set<string>;
  /** Events handled, for telling a stream that made progress from one that keeps breaking. */
  seen: number;
}

export function newProgress(emitted = { text: '', tokens: [] as number[] }, inline: Assignment | null = null): Progress {
  return { emitted, current: null, sealing: null, inline, replicas: new Set(), seen: 0 };
}

/** The event stream broke before the job ended: reopen it (it replays) and go on. */
export class StreamBroken extends Error {
  constructor(readonly error: unknown) {
    super(error instanceof Error ? error.message : String(error), { cause: error });
  }
}

/**
 * The coordinator ended the job without running it to the end: it restarted (`RESTARTED`) or
 * shut down gracefully (`DRAINING`). Nothing was charged, and it can be run again.
 */
export class Restarted extends Error {
  constructor(
    readonly jobId: string,
    readonly code: 'RESTARTED' | 'DRAINING',
    readonly error: SpinneretError,
  ) {
    super(error.message);
  }
}
