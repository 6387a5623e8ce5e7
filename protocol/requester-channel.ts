/**
 * The requester channel (docs/protocol.md, "Requester channel"): one WebSocket on
 * `GET /v1/requester`, authenticated with `Authorization: Bearer <api key>` on the upgrade,
 * that carries many jobs at once: create, payload, follow, cancel and report go up; the
 * answers and every job's events come down, tagged with the job id. The same checks as the
 * HTTP routes apply to each message; a refused one is answered with a typed `error` and the
 * socket stays open.
 */
import * as v from 'valibot';
import {
  Assignment,
  CreateJob,
  Id,
  JobEvent,
  JobReport,
  JobReportAnswer,
  PaymentRequired,
  PROTOCOL_VERSION,
  Sealed,
  WireError,
} from './wire.ts';

/** The path of the channel. */
export const REQUESTER_CHANNEL_PATH = '/v1/requester';

const version = { v: v.literal(PROTOCOL_VERSION) };
/** A requester's own tag for a request it wants answered (`create`, `report`): 1–64 base64url characters. */
const Ref = Id;
const Attempt = v.pipe(v.number(), v.integer(), v.minValue(1));

// ── requester → coordinator ──────────────────────────────────────────────────────────────

/** `POST /v1/jobs` on the channel; answered with `created` (the job's events follow by themselves) or `error`. */
export const ChannelCreate = v.strictObject({ ...version, type: v.literal('create'), ref: Ref, job: CreateJob });
/** `PUT /v1/jobs/:id/payload` on the channel; no answer unless refused. */
export const ChannelPayload = v.strictObject({ ...version, type: v.literal('payload'), jobId: Id, attempt: Attempt, sealed: Sealed });
/** `GET /v1/jobs/:id/events` on the channel, for a job not created on it (a replica, a re-run, another socket's job). */
export const ChannelFollow = v.strictObject({ ...version, type: v.literal('follow'), jobId: Id });
/** `DELETE /v1/jobs/:id` on the channel; answered with `cancelled` or `error`. */
export const ChannelCancel = v.strictObject({ ...version, type: v.literal('cancel'), jobId: Id });
/** `POST /v1/jobs/:id/report` on the channel; answered with `reported` or `error`. */
export const ChannelReport = v.strictObject({ ...version, type: v.literal('report'), ref: Ref, jobId: Id, report: JobReport });

export const ChannelRequest = v.variant('type', [ChannelCreate, ChannelPayload, ChannelFollow, ChannelCancel, ChannelReport]);
export type ChannelRequest = v.InferOutput<typeof ChannelRequest>;

// ── coordinator → requester ──────────────────────────────────────────────────────────────

/** Sent once when the socket opens: the largest message the coordinator takes. */
export const ChannelReady = v.strictObject({ ...version, type: v.literal('ready'), maxMessageBytes: v.number() });
export const ChannelCreated = v.strictObject({
  ...version,
  type: v.literal('created'),
  ref: Ref,
  jobId: Id,
  assignment: v.nullable(Assignment),
});
/** One event of a job the socket follows, in order; a `failed` event or a `final` chunk is its last. */
export const ChannelEvent = v.strictObject({ ...version, type: v.literal('event'), jobId: Id, event: JobEvent });
export const ChannelCancelled = v.strictObject({ ...version, type: v.literal('cancelled'), jobId: Id, state: v.string() });
export const ChannelReported = v.strictObject({ ...version, type: v.literal('reported'), ref: Ref, jobId: Id, answer: JobReportAnswer });
/**
 * A refused message: `status` is what the HTTP route answers for the same refusal, `ref` and
 * `jobId` name the message refused where it had them; `payment` comes with a 402, and
 * `retryAfterS` with a 429. `fatal`: the coordinator closes the socket after it.
 */
export const ChannelError = v.strictObject({
  ...version,
  type: v.literal('error'),
  status: v.pipe(v.number(), v.integer(), v.minValue(400), v.maxValue(599)),
  error: WireError,
  ref: v.optional(Ref),
  jobId: v.optional(Id),
  retryAfterS: v.optional(v.number()),
  payment: v.optional(PaymentRequired.entries.payment),
  fatal: v.optional(v.boolean()),
});

export const ChannelMessage = v.variant('type', [
  ChannelReady,
  ChannelCreated,
  ChannelEvent,
  ChannelCancelled,
  ChannelReported,
  ChannelError,
]);
export type ChannelMessage = v.InferOutput<typeof ChannelMessage>;
export type ChannelErrorMessage = v.InferOutput<typeof ChannelError>;
