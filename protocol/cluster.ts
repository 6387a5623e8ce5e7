/**
 * Messages between coordinator replicas over NATS (docs/operating.md, "Replicas"). Every
 * replica checks what it reads with these schemas, like any other input: a replica is a peer
 * on the same private bus, not a part of the same process. Subjects are in
 * coordinator/cluster/subjects.ts.
 */
import * as v from 'valibot';
import { JobKind } from './manifest.ts';
import { QuarantineKey } from './requests.ts';
import { Ack, Cancel, Capabilities, Chunk, ErrorMessage, Fail, Job, SelfTest } from './wire.ts';

const Id = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'an id is 1–64 base64url characters'));
/** A replica id (`cluster.replicaId`). */
export const ReplicaId = v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'a replica id is 1–32 of a-z, 0-9 and -'));
const Wallet = v.pipe(v.string(), v.minLength(1), v.maxLength(100));

/** What a replica's contributors serve: `<model>\n<kind>\n<engine class>`. */
const Serves = v.pipe(v.array(v.pipe(v.string(), v.maxLength(300))), v.maxLength(256));

/**
 * `alive`: each replica says it lives, every heartbeat; `boot` changes when it restarts.
 * `serves`: what its connected contributors can run, so another replica places a check (which
 * must run on another device) where one is.
 */
export const Alive = v.strictObject({ replica: ReplicaId, boot: Id, serves: v.optional(Serves) });

/** `claim` (request): the owner of a waiting job asks a replica for one slot of a contributor that could run it. */
export const Claim = v.strictObject({
  owner: ReplicaId,
  jobId: Id,
  model: v.pipe(v.string(), v.maxLength(128)),
  kind: JobKind,
  /** Contributors that must not get it (earlier attempts; a check's primary). */
  exclude: v.pipe(v.array(Id), v.maxLength(64)),
  /** Wallets whose devices must not get it (a check's primary's). */
  excludeWallets: v.optional(v.pipe(v.array(Wallet), v.maxLength(16))),
  /** The one contributor it must run on (a canary checks the device that ran the job). */
  target: v.optional(Id),
});

/** What the owner's scheduler needs to see of a remote contributor. */
export const RemoteView = v.strictObject({
  id: Id,
  hpkeKey: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/)),
  wallet: v.nullable(Wallet),
  capabilities: Capabilities,
});

/** The answer to a claim: one slot of this contributor is now the owner's, or none. */
export const Granted = v.strictObject({ contributor: v.nullable(RemoteView) });

/**
 * `down`: owner → the contributor's replica: a message for the worker's socket, of the kinds a
 * job's relay sends its holder: the job, its cancel, the answer to a result (an ack, or a refusal,
 * never fatal), and the bench of a device whose check failed. Nothing else: what a replica itself
 * says to its own devices (challenge, welcome, drain, a fleet owner's pause or message) never
 * comes from another replica.
 */
export const Down = v.strictObject({
  owner: ReplicaId,
  contributorId: Id,
  message: v.variant('type', [Job, Cancel, Ack, v.strictObject({ ...ErrorMessage.entries, fatal: v.literal(false) }), SelfTest]),
});

/** `up`: the contributor's replica → owner: the worker's `chunk` or `fail` for an owner's lease. */
export const Up = v.strictObject({ home: ReplicaId, contributorId: Id, message: v.variant('type', [Chunk, Fail]) });

/** `release`: owner → the contributor's replica: lent slots it did not use. */
export const Release = v.strictObject({
  owner: ReplicaId,
  contributorId: Id,
  slots: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1024)),
});

/** `gone`: the contributor's replica → owner: the worker left (its leases there are lost). */
export const Gone = v.strictObject({ home: ReplicaId, contributorId: Id, why: v.pipe(v.string(), v.maxLength(200)) });

/** `holds` (request): whether this replica holds job `jobId` (its owner: it created it and keeps it live). */
export const Holds = v.strictObject({ jobId: Id });
export const HoldsAnswer = v.strictObject({ holds: v.boolean() });

/** Largest body of a forwarded call or of one part of a forwarded stream, characters (NATS refuses more than its `max_payload` anyway). */
export const MAX_CALL_TEXT = 6_000_000;
const Text = v.pipe(v.string(), v.maxLength(MAX_CALL_TEXT));
/** An HTTP header value (`Headers` refuses NUL, line breaks and characters past U+00FF). */
const Header = v.pipe(v.string(), v.maxLength(4096), v.regex(/^[\t\x20-\x7e\x80-\xff]*$/, 'a header value is visible Latin-1 text'));
const Seq = v.pipe(v.number(), v.integer(), v.minValue(0));

/**
 * `call` (request): a requester's HTTP call on one job (payload, events, cancel, report, verdict)
 * that reached a replica other than the job's owner, passed to the owner to answer as if made there.
 */
export const Call = v.pipe(
  v.strictObject({
    from: ReplicaId,
    /** The caller's stream id: where a streamed answer's body goes (`part`), and what `stop` names. */
    stream: Id,
    method: v.picklist(['GET', 'PUT', 'POST', 'DELETE']),
    path: v.pipe(v.string(), v.regex(/^\/v1\/jobs\/[A-Za-z0-9_-]{1,64}(\/(payload|events|report|verdict))?$/, 'a job route')),
    headers: v.strictObject({
      authorization: v.optional(Header),
      'content-type': v.optional(Header),
      'x-request-id': v.optional(Header),
    }),
    body: v.optional(Text),
  }),
  v.check((call) => call.body === undefined || call.method === 'PUT' || call.method === 'POST', 'only a PUT or POST call has a body'),
);

/** The owner's answer to a call: its status and headers; its body, or `streamed` when the body follows as `part`s. */
export const CallAnswer = v.strictObject({
  status: v.pipe(v.number(), v.integer(), v.minValue(100), v.maxValue(599)),
  headers: v.strictObject({
    'content-type': v.optional(Header),
    'cache-control': v.optional(Header),
    'retry-after': v.optional(Header),
    'www-authenticate': v.optional(Header),
  }),
  body: v.optional(Text),
  streamed: v.boolean(),
});

/** `part`: owner → the caller's replica: the next piece of a streamed answer (`seq` from 0), or its end. */
export const Part = v.strictObject({
  stream: Id,
  seq: Seq,
  text: v.optional(Text),
  /** The stream ended: cleanly, or with `error` (the owner could not read it to the end). */
  end: v.optional(v.boolean()),
  error: v.optional(v.pipe(v.string(), v.maxLength(500))),
});

/** `stop`: the caller's replica → owner: the requester went away from a streamed answer. */
export const Stop = v.strictObject({ from: ReplicaId, stream: Id });

/** Most ids one `policy` word names; a change of more is sent without them (read by what changed since). */
export const MAX_POLICY_IDS = 256;

/**
 * `policy` (publish, all): a replica wrote a quarantine, a bench or a lift to the database; every
 * other replica reads back the rows of `ids` (devices, and wallets as `wallet:<address>`), or
 * what changed since its last read when there are none, so a device or wallet shut out (or let
 * back) on one is so on all.
 */
export const PolicyChanged = v.strictObject({
  replica: ReplicaId,
  ids: v.optional(v.pipe(v.array(QuarantineKey), v.maxLength(MAX_POLICY_IDS))),
});
