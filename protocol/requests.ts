/**
 * The requester ↔ coordinator HTTP shapes of the wire protocol: creating a job, its payload
 * and event stream, funding a key, model facts, verdicts and reports (docs/protocol.md).
 * Re-exported by protocol/wire.ts.
 */
import * as v from 'valibot';
import { BillingEnvelope } from './billing.ts';
import { JobKind, ModelEntry } from './manifest.ts';
import { SafeLine, SafeText } from './text.ts';
import { Count, Id, Key32, MAX_MESSAGE_BYTES, Sealed, Usage, WireError } from './wire-base.ts';

/** `POST /v1/jobs`: a new job, before its payload exists (the payload is sealed per contributor). */
export const CreateJob = v.strictObject({
  model: v.pipe(SafeLine(128), v.minLength(1)),
  kind: JobKind,
  /** Ciphertext size the requester will send, bytes; for quotas and scheduling. */
  sizeBytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(MAX_MESSAGE_BYTES))),
  /**
   * The requester can check replicas: the coordinator may run the job again on another
   * contributor (a `replica-assigned` event) and expects a verdict. Absent: never replicated.
   */
  replicas: v.optional(v.boolean()),
  /** What the requester agrees to pay for (docs/protocol.md, "Billing envelopes"). */
  billing: BillingEnvelope,
});
export type CreateJob = v.InferOutput<typeof CreateJob>;

/** A whole number of nanoTON as a decimal string (JSON has no bigint). */
const NanoString = v.pipe(v.string(), v.regex(/^(0|[1-9]\d{0,29})$/, 'whole nanoTON as a decimal string'));
/** A raw or user-friendly TON address. */
const TonAddress = v.pipe(v.string(), v.regex(/^([0-9a-fA-F:-]{3,80}|[A-Za-z0-9_-]{48})$/, 'a TON address'));
/** An API key's deposit memo: the text comment a deposit must carry. */
export const DepositMemo = v.pipe(v.string(), v.regex(/^spn-[a-z2-7]{20}$/, 'a deposit memo is `spn-` and 20 base32 letters'));

/** Where and how to fund an API key: send TON to `address` with `memo` as the text comment. */
export const DepositInstructions = v.strictObject({ address: TonAddress, memo: DepositMemo });
export type DepositInstructions = v.InferOutput<typeof DepositInstructions>;

/** `402` on `POST /v1/jobs`: the key's balance cannot cover the job's maximum price. */
export const PaymentRequired = v.strictObject({
  error: v.strictObject({ code: v.literal('PAYMENT_REQUIRED'), message: SafeText(2000) }),
  payment: v.strictObject({
    /** The job's maximum price (its envelope at the model's prices), nanoTON. */
    required: NanoString,
    /** The key's available balance, nanoTON. */
    available: NanoString,
    /** `required - available`, nanoTON: at least this much must be deposited. */
    shortfall: NanoString,
    deposit: DepositInstructions,
  }),
});
export type PaymentRequired = v.InferOutput<typeof PaymentRequired>;

/** `GET /v1/account`: the calling key's balances (nanoTON) and how to fund it. */
export const Account = v.strictObject({
  keyId: SafeLine(64),
  /** Deposited and not held for a job; what new jobs reserve from. */
  available: NanoString,
  /** Held for jobs in flight: each job's maximum price until its result settles it. */
  reserved: NanoString,
  deposit: DepositInstructions,
});
export type Account = v.InferOutput<typeof Account>;

/**
 * `GET /v1/models/:id`: what an SDK needs to fill in a billing envelope the coordinator will
 * accept: the catalog's entry (tokenizer files with URL, size and SHA-256; the decoder's chat
 * template) and the limits the coordinator checks envelopes against.
 */
export const ModelFacts = v.strictObject({
  id: v.pipe(SafeLine(128), v.minLength(1)),
  /** The manifest entry the network serves; null when the coordinator has no catalog entry for the model. */
  model: v.nullable(ModelEntry),
  /** Per job kind the model serves. */
  limits: v.record(
    JobKind,
    v.strictObject({
      /** Most input + output tokens a job may declare; null: unknown. */
      maxTokens: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0))),
      /** Most output tokens (0 for embed and infer); null: no limit beyond `maxTokens`. */
      maxOutputTokens: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0))),
      /** Most payload bytes one token stands for; null: no byte bound. */
      maxBytesPerToken: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1))),
    }),
  ),
});
export type ModelFacts = v.InferOutput<typeof ModelFacts>;

/** Which contributor to seal for, for one attempt. */
export const Assignment = v.strictObject({
  attempt: v.pipe(v.number(), v.integer(), v.minValue(1)),
  contributorId: Id,
  hpkeKey: Key32,
});
export type Assignment = v.InferOutput<typeof Assignment>;

/** `PUT /v1/jobs/:id/payload`: the payload sealed for the assignment of `attempt`. */
export const SubmitPayload = v.strictObject({ attempt: v.pipe(v.number(), v.integer(), v.minValue(1)), sealed: Sealed });
export type SubmitPayload = v.InferOutput<typeof SubmitPayload>;

/** Events on `GET /v1/jobs/:id/events` (newline-delimited JSON), in order. */
export const JobEvent = v.variant('type', [
  v.strictObject({ type: v.literal('assigned'), assignment: Assignment }),
  v.strictObject({
    type: v.literal('chunk'),
    attempt: v.number(),
    seq: Count,
    final: v.boolean(),
    sealed: Sealed,
    usage: v.optional(Usage),
  }),
  v.strictObject({ type: v.literal('failed'), error: WireError }),
  /**
   * Sent before the final chunk when the job was sampled for a check (only to requesters that
   * asked for `replicas`): `jobId` is a job of the same key that must get the same request,
   * sealed for its own `assigned` events; then `POST /v1/jobs/:id/verdict`.
   */
  v.strictObject({ type: v.literal('replica-assigned'), jobId: Id, role: v.picklist(['replica', 'tie-break']) }),
]);
export type JobEvent = v.InferOutput<typeof JobEvent>;

/**
 * A checker's teacher-forced count of the primary's output (protocol/teacher-forced.ts), as the
 * requester opened it: with it, the coordinator judges agreement by its own rule.
 */
const Scored = v.strictObject({
  positions: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(32_769)),
  inTopK: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(32_769)),
});

/**
 * `POST /v1/jobs/:id/verdict` (`:id` the primary job): the requester compared the results it
 * opened. Stage `replica`: primary against replica. Stage `tie-break`: the third run against each.
 * A generation with token ids is checked by scoring: the replica (and the third run) score the
 * primary's output teacher-forced, and `scored` carries their count.
 */
export const Verdict = v.variant('stage', [
  v.strictObject({
    stage: v.literal('replica'),
    replicaJobId: Id,
    agree: v.boolean(),
    score: v.pipe(v.number(), v.minValue(0), v.maxValue(1)),
    reason: SafeText(500),
    scored: v.optional(Scored),
  }),
  v.strictObject({
    stage: v.literal('tie-break'),
    tieBreakJobId: Id,
    withPrimary: v.strictObject({
      agree: v.boolean(),
      score: v.pipe(v.number(), v.minValue(0), v.maxValue(1)),
      reason: SafeText(500),
    }),
    withReplica: v.strictObject({
      agree: v.boolean(),
      score: v.pipe(v.number(), v.minValue(0), v.maxValue(1)),
      reason: SafeText(500),
    }),
    /** The third device's teacher-forced count of the primary's output (a generation checked by scoring). */
    scored: v.optional(Scored),
  }),
]);
export type Verdict = v.InferOutput<typeof Verdict>;

/**
 * `POST /v1/jobs/:id/report` (`:id` a delivered requester job), once per job: whether its
 * result opened and, when it did, the usage the sealed result says. It changes no amount the
 * requester pays; an unopenable result voids the contributor's credit into penalties and
 * earns a free re-run, and a usage below the contributor's claim is recorded against both.
 */
export const JobReport = v.strictObject({
  opened: v.boolean(),
  usage: v.optional(Usage),
  reason: v.optional(v.pipe(v.string(), v.maxLength(500))),
});
export type JobReport = v.InferOutput<typeof JobReport>;

/** The answer to a report: the free re-run to follow (same request, sealed for its own `assigned` events), or none. */
export const JobReportAnswer = v.strictObject({
  rerun: v.nullable(v.strictObject({ jobId: Id })),
  /** Why there is no re-run, or what the report changed, in words. */
  message: v.pipe(v.string(), v.maxLength(500)),
});
export type JobReportAnswer = v.InferOutput<typeof JobReportAnswer>;

/** The answer to a verdict: a tie-break job to run as well, or none. */
export const VerdictAnswer = v.strictObject({ tieBreak: v.nullable(v.strictObject({ jobId: Id })) });
export type VerdictAnswer = v.InferOutput<typeof VerdictAnswer>;

/** A quarantine's key: a device id, or `wallet:<address>` for a wallet's. */
export const QuarantineKey = v.union(
  [Id, v.pipe(v.string(), v.regex(/^wallet:[A-Za-z0-9_:+/=-]{1,100}$/, 'a wallet key is `wallet:` and its address'))],
  'a device id (1–64 base64url characters) or `wallet:<address>`',
);

/** `POST /v1/operator/quarantines/lift`: whose quarantine, who lifts it and why (both recorded). */
export const LiftQuarantine = v.strictObject({
  id: QuarantineKey,
  by: v.pipe(SafeLine(64), v.minLength(1, 'say who lifts it')),
  reason: v.pipe(SafeLine(500), v.minLength(1, 'say why it is lifted')),
});
export type LiftQuarantine = v.InferOutput<typeof LiftQuarantine>;
