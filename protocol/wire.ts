/**
 * The wire protocol between contributor workers, the coordinator and requesters: one
 * versioned discriminated union per direction, validated at every trust boundary, with the
 * TypeScript types derived from the schemas. See docs/protocol.md for the flow.
 *
 * Encodings: keys, signatures and ciphertexts are base64url without padding; times are
 * milliseconds since the Unix epoch; sizes are bytes.
 */
import * as v from 'valibot';
import { BillingEnvelope } from './billing.ts';
import { ERROR_CODES } from './errors.ts';
import { JobKind, ModelEntry } from './manifest.ts';
import { printable, SafeLine, SafeText } from './text.ts';

/** The protocol version this code speaks; a peer with another gets `PROTOCOL_VERSION` and is closed. */
export const PROTOCOL_VERSION = 1;
/** Largest WebSocket frame either side accepts (a sealed job or one result chunk), bytes. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

const B64 = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]*$/, 'base64url without padding'), v.maxLength(6_000_000));
/** A raw 32-byte public key (Ed25519 or X25519), base64url: 43 characters. */
const Key32 = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'a 32-byte key in base64url'));
export const Id = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'an id is 1–64 base64url characters'));
const Time = v.pipe(v.number(), v.integer(), v.minValue(0));
const Count = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1_000_000));

/** An HPKE-sealed message: `enc` is the encapsulated key (absent on later chunks of a stream). */
export const Sealed = v.strictObject({ enc: v.optional(B64), ct: B64 });
export type Sealed = v.InferOutput<typeof Sealed>;

export const WireError = v.strictObject({
  code: v.picklist([
    ...ERROR_CODES,
    'PROTOCOL_VERSION',
    'BAD_MESSAGE',
    'UNAUTHORIZED',
    'NOT_FOUND',
    'CONFLICT',
    'LEASE_EXPIRED',
    'QUOTA',
    'DRAINING',
    'OPEN_FAILED',
    'PAYMENT_REQUIRED',
    'ENVELOPE',
    'RESTARTED',
    'UNAVAILABLE',
  ]),
  message: SafeText(2000),
});
export type WireError = v.InferOutput<typeof WireError>;
export type WireErrorCode = WireError['code'];

export const Usage = v.strictObject({ promptTokens: Count, completionTokens: Count });

const base = { v: v.literal(PROTOCOL_VERSION) };

// ── contributor → coordinator ────────────────────────────────────────────────────────────

/** Proves the device holds its identity key: signs {@link helloMessage} of the server's challenge. */
export const Hello = v.strictObject({
  ...base,
  type: v.literal('hello'),
  /** Ed25519 public key of the device (its identity). */
  identityKey: Key32,
  /** X25519 public key jobs are sealed to. */
  hpkeKey: Key32,
  /** The challenge nonce from the server's `challenge`. */
  nonce: B64,
  /** Ed25519 signature over helloMessage(nonce, identityKey, hpkeKey). */
  signature: B64,
  /** Session token from the wallet or kiosk enrollment (money and trust), if any. */
  session: v.optional(SafeLine(2048)),
  client: v.strictObject({ name: SafeLine(64), version: SafeLine(32) }),
});

export const ModelState = v.strictObject({
  id: SafeLine(128),
  /** `loaded`: in memory now; `cached`: files on disk; `available`: can be fetched and fits. */
  state: v.picklist(['loaded', 'cached', 'available']),
});

/** What the device can do and what its owner allows. Sent after `welcome` and whenever it changes. */
export const Capabilities = v.strictObject({
  ...base,
  type: v.literal('capabilities'),
  adapter: v.nullable(
    v.strictObject({
      vendor: SafeLine(128),
      architecture: SafeLine(128),
      isFallbackAdapter: v.boolean(),
      features: v.pipe(v.array(SafeLine(64)), v.maxLength(64)),
    }),
  ),
  /** Benchmark results, if measured: GFLOP/s and GB/s. */
  bench: v.optional(v.strictObject({ gflops: v.number(), gbps: v.number() })),
  models: v.pipe(v.array(ModelState), v.maxLength(256)),
  /** Job kinds the owner consents to run. */
  consent: v.pipe(v.array(JobKind), v.maxLength(4)),
  /** Numerics class for redundancy checks: results are compared only within one class. */
  engineClass: SafeLine(128),
  visibility: v.optional(v.picklist(['visible', 'hidden'])),
});

/** Asks for work: `slots` is how many more jobs the worker can run now (0 withdraws open slots). */
export const Lease = v.strictObject({
  ...base,
  type: v.literal('lease'),
  slots: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(64)),
});

/**
 * One sealed piece of a job's result. Every result is a stream of chunks under one HPKE
 * context: `seq` counts from 0, `enc` is on chunk 0 only, the last has `final: true` and the usage.
 */
export const Chunk = v.strictObject({
  ...base,
  type: v.literal('chunk'),
  jobId: Id,
  leaseId: Id,
  seq: Count,
  final: v.boolean(),
  sealed: Sealed,
  usage: v.optional(Usage),
});

/** The worker could not run the job (engine error, payload failed to open, …). */
export const Fail = v.strictObject({ ...base, type: v.literal('fail'), jobId: Id, leaseId: Id, error: WireError });

export const Ping = v.strictObject({ ...base, type: v.literal('ping'), t: Time });

/** Why a worker takes no jobs although connected: a rule its owner set, or a remote pause. */
export const PauseRule = v.picklist(['user', 'remote', 'duty-cycle', 'battery', 'idle', 'schedule', 'consent', 'device']);
export type PauseRule = v.InferOutput<typeof PauseRule>;

/**
 * What the tab can do now, sent after `welcome` and whenever it changes: whether it is
 * visible, which rule pauses it (if any), and its measured pace, so leases fit the tab.
 */
export const Status = v.strictObject({
  ...base,
  type: v.literal('status'),
  visibility: v.picklist(['visible', 'hidden']),
  pausedBy: v.nullable(PauseRule),
  /** Measured over the last minutes: finished jobs per minute and the share of time spent running jobs. */
  pace: v.optional(
    v.strictObject({
      jobsPerMinute: v.pipe(v.number(), v.minValue(0), v.maxValue(1_000_000)),
      busyFraction: v.pipe(v.number(), v.minValue(0), v.maxValue(1)),
    }),
  ),
  /** The device label its owner gave it (kiosk and lab fleets). */
  label: v.optional(SafeLine(64)),
});

export const ContributorMessage = v.variant('type', [Hello, Capabilities, Lease, Chunk, Fail, Ping, Status]);
export type ContributorMessage = v.InferOutput<typeof ContributorMessage>;

// ── coordinator → contributor ────────────────────────────────────────────────────────────

export const Challenge = v.strictObject({ ...base, type: v.literal('challenge'), nonce: B64, serverTime: Time });
export const Welcome = v.strictObject({
  ...base,
  type: v.literal('welcome'),
  contributorId: Id,
  /** Send a `ping` at least this often, ms. */
  heartbeatMs: Count,
  maxMessageBytes: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(MAX_MESSAGE_BYTES)),
});
/** A job for one of the worker's open slots. The payload is sealed to the worker's hpkeKey. */
export const Job = v.strictObject({
  ...base,
  type: v.literal('job'),
  jobId: Id,
  leaseId: Id,
  model: SafeLine(128),
  kind: JobKind,
  /** Which attempt this is (the payload was sealed for it; part of the AAD). */
  attempt: v.pipe(v.number(), v.integer(), v.minValue(1)),
  /** The lease ends then: a result after it is refused without credit. */
  deadline: Time,
  sealed: Sealed,
});
export const Cancel = v.strictObject({
  ...base,
  type: v.literal('cancel'),
  jobId: Id,
  leaseId: Id,
  reason: SafeText(200),
});
/** A chunk or fail was taken (`accepted`), or was already taken (`duplicate`). */
export const Ack = v.strictObject({
  ...base,
  type: v.literal('ack'),
  jobId: Id,
  seq: Count,
  status: v.picklist(['accepted', 'duplicate']),
});
export const Pong = v.strictObject({ ...base, type: v.literal('pong'), t: Time });
/** The coordinator is shutting down: finish running jobs, take no more, reconnect later. */
export const Drain = v.strictObject({ ...base, type: v.literal('drain'), reconnectAfterMs: Count });
/** A refused message. `fatal` errors close the connection after this message. */
export const ErrorMessage = v.strictObject({
  ...base,
  type: v.literal('error'),
  error: WireError,
  fatal: v.boolean(),
  /** The job the error is about, if any. */
  jobId: v.optional(Id),
});

/** The owner of a fleet device asks it to pause, resume, or show a message (fleet page). */
export const Control = v.strictObject({
  ...base,
  type: v.literal('control'),
  action: v.picklist(['pause', 'resume', 'message']),
  /** For `message`: the words to show on the device. */
  text: v.optional(SafeText(500)),
});

/**
 * A result of this device failed a check for the first time on `model`: it gets no jobs of
 * that model for a while and should run its self-test (no penalty; further failures count).
 */
export const SelfTest = v.strictObject({
  ...base,
  type: v.literal('self-test'),
  model: v.pipe(v.string(), v.maxLength(128)),
  reason: v.pipe(v.string(), v.maxLength(500)),
});

export const CoordinatorMessage = v.variant('type', [Challenge, Welcome, Job, Cancel, Ack, Pong, Drain, ErrorMessage, Control, SelfTest]);
export type CoordinatorMessage = v.InferOutput<typeof CoordinatorMessage>;

// ── requester ↔ coordinator (HTTP) ───────────────────────────────────────────────────────

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

// ── helpers ──────────────────────────────────────────────────────────────────────────────

/** The bytes a device signs to answer a challenge; binds the nonce to both of its keys. */
export function helloMessage(nonce: string, identityKey: string, hpkeKey: string): Uint8Array {
  return new TextEncoder().encode(`spinneret-hello-v1\n${nonce}\n${identityKey}\n${hpkeKey}`);
}

/**
 * The bytes a device signs to enroll with a fleet token (`POST /v1/enroll`): proves it holds
 * the identity key it names, and binds the signature to that token.
 */
export function enrollMessage(token: string, identityKey: string): Uint8Array {
  return new TextEncoder().encode(`spinneret-enroll-v1\n${token}\n${identityKey}`);
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: WireError };

/**
 * Parses one frame. Oversized, non-JSON, wrong-version and malformed frames become typed
 * errors, never exceptions.
 */
export function parseFrame<T>(schema: v.GenericSchema<unknown, T>, frame: string): Parsed<T> {
  if (frame.length > MAX_MESSAGE_BYTES) {
    return {
      ok: false,
      error: { code: 'BAD_MESSAGE', message: `Message of ${frame.length} bytes exceeds the ${MAX_MESSAGE_BYTES}-byte limit.` },
    };
  }
  let data: unknown;
  try {
    data = JSON.parse(frame);
  } catch {
    return { ok: false, error: { code: 'BAD_MESSAGE', message: 'Message is not JSON.' } };
  }
  if (typeof data === 'object' && data !== null && 'v' in data && data.v !== PROTOCOL_VERSION) {
    return {
      ok: false,
      error: {
        code: 'PROTOCOL_VERSION',
        message: `Protocol version ${String(data.v)} is not supported; this peer speaks ${PROTOCOL_VERSION}. Update the client.`,
      },
    };
  }
  const result = v.safeParse(schema, data);
  if (!result.success)
    return {
      ok: false,
      error: { code: 'BAD_MESSAGE', message: `Malformed message: ${printable(v.summarize(result.issues).slice(0, 500))}` },
    };
  return { ok: true, value: result.output };
}
