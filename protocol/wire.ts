/**
 * The wire protocol between contributor workers, the coordinator and requesters: one
 * versioned discriminated union per direction, validated at every trust boundary, with the
 * TypeScript types derived from the schemas. See docs/protocol.md for the flow.
 *
 * Encodings: keys, signatures and ciphertexts are base64url without padding; times are
 * milliseconds since the Unix epoch; sizes are bytes.
 */
import * as v from 'valibot';
import { JobKind } from './manifest.ts';
import { printable, SafeLine, SafeText } from './text.ts';
import { B64, base, Count, Id, Key32, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, Sealed, Time, Usage, WireError } from './wire-base.ts';

export { Id, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, Sealed, Usage, WireError, type WireErrorCode } from './wire-base.ts';
export * from './requests.ts';

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
