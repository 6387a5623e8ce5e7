/**
 * How the SDK talks to the coordinator about one job: create it, follow its events, send its
 * payload, report on it, cancel it. {@link HttpLine} does it with the HTTP routes (three
 * requests and an NDJSON stream per job); requester/channel.ts with the requester channel
 * (one WebSocket for every job).
 */
import * as v from 'valibot';
import { Assignment, type CreateJob, JobEvent, type JobReport, JobReportAnswer, parseFrame, type SubmitPayload } from '../protocol/wire.ts';
import { CoordinatorError, httpError, networkError } from './errors.ts';
import { ndjsonLines } from './stream.ts';

export interface JobLine {
  /**
   * `POST /v1/jobs`: the job's id and, when a contributor was free, its first assignment.
   * `idempotencyKey`: the same for every try of one creation, so a repeat gets the same job.
   */
  create(body: CreateJob, signal?: AbortSignal, idempotencyKey?: string): Promise<{ jobId: string; assignment: Assignment | null }>;
  /** The job's events in order (its log so far, then live), ending after its last. */
  events(jobId: string, signal?: AbortSignal): Promise<AsyncIterable<JobEvent>>;
  /** The payload sealed for one attempt; an attempt already superseded is no error (its next `assigned` event follows). */
  submit(jobId: string, body: SubmitPayload, signal?: AbortSignal): Promise<void>;
  /** The report on a delivered result; null when the coordinator takes none for this job. */
  report(jobId: string, report: JobReport): Promise<JobReportAnswer | null>;
  /** Best effort: the coordinator's lease expiry ends the job anyway. */
  cancel(jobId: string): Promise<void>;
}

const CreatedJob = v.object({ jobId: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/)), assignment: v.nullable(Assignment) });

/** HTTP requests the SDK makes, with its error mapping. */
export type Call = (
  method: string,
  path: string,
  body: unknown,
  what: string,
  signal?: AbortSignal,
  allowed?: number[],
  extraHeaders?: Record<string, string>,
) => Promise<Response>;

/** A {@link Call} on `fetchFn` with the API key. */
export function httpCall(url: string, apiKey: string, fetchFn: typeof fetch): Call {
  return async (method, path, body, what, signal, allowed = [], extraHeaders = {}) => {
    const headers: Record<string, string> = { ...extraHeaders, authorization: `Bearer ${apiKey}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      const init: RequestInit = { method, headers, body: body === undefined ? null : JSON.stringify(body) };
      if (signal !== undefined) init.signal = signal;
      response = await fetchFn(`${url}${path}`, init);
    } catch (err) {
      throw networkError(err, url, what);
    }
    if (!response.ok && !allowed.includes(response.status)) throw await httpError(response, what, url);
    return response;
  };
}

export class HttpLine implements JobLine {
  readonly #call: Call;
  readonly #url: string;
  readonly #apiKey: string;
  readonly #fetch: typeof fetch;

  constructor(url: string, apiKey: string, fetchFn: typeof fetch) {
    this.#url = url;
    this.#apiKey = apiKey;
    this.#fetch = fetchFn;
    this.#call = httpCall(url, apiKey, fetchFn);
  }

  async create(body: CreateJob, signal?: AbortSignal, idempotencyKey?: string): Promise<{ jobId: string; assignment: Assignment | null }> {
    const headers: Record<string, string> = idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey };
    const response = await this.#call('POST', '/v1/jobs', body, 'creating the job', signal, [], headers);
    const created = v.safeParse(CreatedJob, await response.json().catch(() => null));
    if (!created.success)
      throw new CoordinatorError(`The coordinator's answer to a new job is malformed: ${v.summarize(created.issues)}`, response.status);
    return created.output;
  }

  async events(jobId: string, signal?: AbortSignal): Promise<AsyncIterable<JobEvent>> {
    const events = await this.#call('GET', `/v1/jobs/${jobId}/events`, undefined, 'opening the event stream', signal);
    if (events.body === null) throw new CoordinatorError(`The event stream of job ${jobId} has no body.`, events.status);
    return parsedEvents(jobId, ndjsonLines(events.body));
  }

  async submit(jobId: string, body: SubmitPayload, signal?: AbortSignal): Promise<void> {
    const put = await this.#call('PUT', `/v1/jobs/${jobId}/payload`, body, 'sending the payload', signal, [409]);
    // 409: this attempt is already superseded; the next `assigned` event follows.
    if (put.status === 409) await put.body?.cancel();
  }

  async report(jobId: string, report: JobReport): Promise<JobReportAnswer | null> {
    const response = await this.#call('POST', `/v1/jobs/${jobId}/report`, report, 'reporting the result', undefined, [404, 409]);
    if (!response.ok) {
      await response.body?.cancel();
      return null;
    }
    const answer = v.safeParse(JobReportAnswer, await response.json().catch(() => null));
    return answer.success ? answer.output : null;
  }

  async cancel(jobId: string): Promise<void> {
    try {
      const response = await this.#fetch(`${this.#url}/v1/jobs/${jobId}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${this.#apiKey}` },
        signal: AbortSignal.timeout(5000),
      });
      await response.body?.cancel();
    } catch {
      // Best effort: the coordinator's lease expiry ends the job anyway.
    }
  }
}

async function* parsedEvents(jobId: string, lines: AsyncIterable<string>): AsyncGenerator<JobEvent> {
  for await (const line of lines) {
    const parsed = parseFrame(JobEvent, line);
    if (!parsed.ok) throw new CoordinatorError(`The coordinator sent a malformed event for job ${jobId}: ${parsed.error.message}`, 0);
    yield parsed.value;
  }
}
