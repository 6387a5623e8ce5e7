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
/**
 * The requester's key for one logical job creation (HTTP: the `Idempotency-Key` header):
 * 16–64 base64url characters. A creation repeated with the same key and the same body gets the
 * same job; with another body, 409 `CONFLICT` (docs/protocol.md, "Job creation").
 */
export const IdempotencyKey = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{16,64}$/, 'an idempotency key is 16–64 base64url characters'));

// ── requester → coordinator ──────────────────────────────────────────────────────────────

/** `POST /v1/jobs` on the channel; answered with `created` (the job's events follow by themselves) or `error`. */
export const ChannelCreate = v.strictObject({
  ...version,
  type: v.literal('create'),
  ref: Ref,
  job: CreateJob,
  idempotencyKey: v.optional(IdempotencyKey),
});
/** `PUT /v1/jobs/:id/payload` on the channel; no answer unless refused. */
export const ChannelPayload = v.strictObject({ ...version, type: v.literal('payload'), jobId: Id, attempt: Attempt, sealed: Sealed });
/** `GET /v1/jobs/:id/events` on the channel, for a job not created on it (a replica, a re-run, another socket's job). */
export const ChannelFollow = v.strictObject({ ...version, type: v.literal('follow'), jobId: Id });
/** `DELETE /v1/jobs/:id` on the channel; answered with `cancelled` or `error`. */
export const ChannelCancel = v.strictObject({ ...version, type: v.literal('cancel'), jobId: Id });
/** `POST /v1/jobs/:id/report` on the channel; answered with `reported` or `error`. */
export const ChannelReport = v.strictObject({ ...version, type: v.literal('report'), ref: Ref, jobId: Id, report: JobReport });

/** Most assignments one `assign` asks for. */
export const MAX_ASSIGN_BATCH = 64;
/** Most unused assignments one channel holds at once (fewer when the key's in-flight limit leaves less room). */
export const MAX_HELD_ASSIGNMENTS = 256;

/**
 * Assignments ahead of need (docs/protocol.md, "Sealing ahead of need"): up to `count` free
 * contributor slots for `model` and `kind`, each reserved for this channel with a job id, so
 * the requester seals payloads before it has the jobs. Answered with `assignments` (maybe
 * fewer than asked, even none: only idle capacity is handed out) or `error`.
 */
export const ChannelAssign = v.strictObject({
  ...version,
  type: v.literal('assign'),
  ref: Ref,
  model: CreateJob.entries.model,
  kind: CreateJob.entries.kind,
  count: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_ASSIGN_BATCH)),
});
/**
 * A job on an assignment from `assignments`, with its payload sealed for attempt 1 of that
 * assignment: `POST /v1/jobs` and `PUT …/payload` in one message. `jobId` is the assignment's.
 * Nothing is answered unless refused; the job's events follow by themselves (attempt 1's
 * `assigned` is not sent). Should the contributor be gone, the job waits for another as any
 * job does and its next `assigned` event (attempt 2) asks for the payload sealed again.
 */
export const ChannelSubmit = v.strictObject({
  ...version,
  type: v.literal('submit'),
  ref: Ref,
  jobId: Id,
  job: CreateJob,
  sealed: Sealed,
  idempotencyKey: v.optional(IdempotencyKey),
});

export const ChannelRequest = v.variant('type', [
  ChannelCreate,
  ChannelPayload,
  ChannelFollow,
  ChannelCancel,
  ChannelReport,
  ChannelAssign,
  ChannelSubmit,
]);
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
/** One assignment ahead of need: a job id and the contributor to seal attempt 1 for. */
export const HeldAssignment = v.strictObject({ jobId: Id, ...Assignment.entries });
export type HeldAssignment = v.InferOutput<typeof HeldAssignment>;
/**
 * The answer to `assign`: the slots reserved for this channel. Each is usable for
 * `expiresInMs` from when it was sent (a duration, so the two clocks need not agree); unused
 * by then, its slot goes back to the network. Closing the channel gives them all back.
 */
export const ChannelAssignments = v.strictObject({
  ...version,
  type: v.literal('assignments'),
  ref: Ref,
  model: CreateJob.entries.model,
  kind: CreateJob.entries.kind,
  expiresInMs: v.pipe(v.number(), v.integer(), v.minValue(0)),
  assignments: v.pipe(v.array(HeldAssignment), v.maxLength(MAX_ASSIGN_BATCH)),
});
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
  ChannelAssignments,
  ChannelEvent,
  ChannelCancelled,
  ChannelReported,
  ChannelError,
]);
export type ChannelMessage = v.InferOutput<typeof ChannelMessage>;
export type ChannelErrorMessage = v.InferOutput<typeof ChannelError>;
