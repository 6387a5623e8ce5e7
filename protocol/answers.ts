/**
 * The coordinator's HTTP answers that pages read (docs/protocol.md, "HTTP routes"), one valibot
 * schema each with its type derived from it: the coordinator builds these types, the page's
 * client (web/api.ts) checks every answer against the schema before anything uses it. Extra
 * fields are tolerated and dropped, so a newer coordinator does not break an older page.
 * `GET /v1/network`'s answer is {@link NetworkInfo} in ./network.ts.
 */
import * as v from 'valibot';
import { Usage } from './jobs.ts';

/** nanoTON as a whole decimal string (JSON has no bigint). */
const Nano = v.pipe(v.string(), v.regex(/^-?(0|[1-9]\d{0,39})$/, 'whole nanoTON as a decimal string'));
/** ms since the epoch. */
const Ms = v.pipe(v.number(), v.integer(), v.minValue(0));
const Count = v.pipe(v.number(), v.integer(), v.minValue(0));
const Text = v.pipe(v.string(), v.maxLength(10_000));
const Id = v.pipe(v.string(), v.minLength(1), v.maxLength(256));

/** Every refusal: `{error: {code, message, reason?}}` with a 4xx or 5xx status. */
export const ProblemBody = v.object({
  error: v.object({
    /** A {@link WireError} code, e.g. `BAD_MESSAGE`, `UNAUTHORIZED`. */
    code: v.string(),
    /** What went wrong and what to do, in words. */
    message: Text,
    /** The finer reason where a page acts on it, e.g. `token-expired`, `signature-invalid`. */
    reason: v.optional(v.string()),
  }),
});
export type ProblemBody = v.InferOutput<typeof ProblemBody>;

/** `GET /v1/prices`: the price list, per 1000 tokens. */
export const PriceListView = v.object({
  /** Network commission, basis points of the gross. */
  commissionBps: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(10_000)),
  models: v.record(
    Id,
    v.variant('kind', [
      v.object({ kind: v.literal('chat'), promptPer1k: Nano, completionPer1k: Nano }),
      v.object({ kind: v.literal('embed'), inputPer1k: Nano }),
    ]),
  ),
});
export type PriceListView = v.InferOutput<typeof PriceListView>;

/** One payout of a wallet. */
export const PayoutView = v.object({
  payoutId: Id,
  status: v.picklist(['pending', 'paid', 'failed']),
  amount: Nano,
  /** Hash (hex) of the transaction; null until paid. */
  txHash: v.nullable(v.string()),
  /** This payout's share of the chain fee; null until paid. */
  fee: v.nullable(Nano),
  /** Why it failed; null otherwise. */
  reason: v.nullable(Text),
  createdAt: Ms,
  updatedAt: Ms,
});
export type PayoutView = v.InferOutput<typeof PayoutView>;

/** `GET /v1/earnings/:wallet`: a wallet's balances and payouts. */
export const EarningsSummary = v.object({
  wallet: v.string(),
  balances: v.object({ pending: Nano, settled: Nano, inFlight: Nano, paid: Nano }),
  payouts: v.array(PayoutView),
});
export type EarningsSummary = v.InferOutput<typeof EarningsSummary>;

/** What the coordinator attests it credited; signed over its canonical JSON. */
export const Receipt = v.object({
  v: v.literal(1),
  jobId: Id,
  contributorId: Id,
  /** The contributor's TON wallet address. */
  wallet: v.string(),
  model: Id,
  usage: Usage,
  amountNano: Nano,
  /** When it was credited. */
  at: Ms,
});
export type Receipt = v.InferOutput<typeof Receipt>;

/** `GET /v1/contributors/:id/receipts?limit=`: the coordinator's Ed25519 key and the newest receipts. */
export const ReceiptsAnswer = v.object({
  /** The coordinator's receipt key, raw, base64url. */
  publicKey: v.string(),
  receipts: v.array(v.object({ receipt: Receipt, signature: v.string() })),
});
export type ReceiptsAnswer = v.InferOutput<typeof ReceiptsAnswer>;

/** `GET /v1/contributors/:id/verification`: how the network checks a contributor. */
export const VerificationReport = v.object({
  reputation: v.object({ score: v.number(), clean: Count, failed: Count }),
  quarantined: v.boolean(),
  canaries: v.object({ passed: Count, failed: Count }),
  replication: v.object({ checked: Count, agreed: Count, rate: v.number() }),
  records: v.array(v.object({ at: Ms, jobId: v.nullable(Id), kind: v.string(), reason: Text })),
});
export type VerificationReport = v.InferOutput<typeof VerificationReport>;

/** `POST /v1/wallet/payload`: the `ton_proof` payload a wallet signs, bound to the device key. */
export const ProofPayload = v.object({ payload: v.string(), expiresAt: Ms });
export type ProofPayload = v.InferOutput<typeof ProofPayload>;

/** `POST /v1/wallet/proof`: the wallet session a proven wallet gets (raw address). */
export const WalletSession = v.object({ session: v.string(), expiresAt: Ms, wallet: v.string() });
export type WalletSession = v.InferOutput<typeof WalletSession>;

/** `POST /v1/enroll`: a kiosk machine's session, for the owner's wallet. */
export const Enrollment = v.object({
  session: v.string(),
  expiresAt: Ms,
  contributorId: Id,
  /** The owner's wallet, raw form. */
  wallet: v.string(),
  label: v.string(),
});
export type Enrollment = v.InferOutput<typeof Enrollment>;

export const EnrollmentScope = v.picklist(['contribute', 'monitor']);
export type EnrollmentScope = v.InferOutput<typeof EnrollmentScope>;

/** `POST /v1/enrollment-tokens` (201): the new token; its secret is shown only here. */
export const IssuedToken = v.object({
  id: Id,
  secret: v.string(),
  label: v.string(),
  scope: EnrollmentScope,
  maxDevices: Count,
  expiresAt: Ms,
});
export type IssuedToken = v.InferOutput<typeof IssuedToken>;

/** One enrollment token as its owner sees it (never its secret). */
export const TokenView = v.object({
  id: Id,
  label: v.string(),
  scope: EnrollmentScope,
  createdAt: Ms,
  expiresAt: Ms,
  maxDevices: Count,
  /** Devices enrolled with it. */
  devices: Count,
  revokedAt: v.nullable(Ms),
  state: v.picklist(['active', 'expired', 'revoked']),
});
export type TokenView = v.InferOutput<typeof TokenView>;

/** `GET /v1/enrollment-tokens`. */
export const TokenList = v.object({ tokens: v.array(TokenView) });
export type TokenList = v.InferOutput<typeof TokenList>;

/** `DELETE /v1/enrollment-tokens/:id`: the devices it had enrolled (their sessions end). */
export const RevokedToken = v.object({ revoked: v.literal(true), devices: v.array(Id) });
export type RevokedToken = v.InferOutput<typeof RevokedToken>;

/** One device on the fleet page; earnings are nanoTON. */
export const FleetDevice = v.object({
  contributorId: Id,
  /** The owner's name for it; null for a device bound by a wallet proof that sent none. */
  label: v.nullable(v.string()),
  connected: v.boolean(),
  /** Now while connected, else when it last connected; null if it never did. */
  lastSeenAt: v.nullable(Ms),
  /** The worker's last status report; null while disconnected or before its first one. */
  status: v.nullable(
    v.object({
      visibility: v.picklist(['visible', 'hidden']),
      pausedBy: v.nullable(v.string()),
      pace: v.nullable(v.object({ jobsPerMinute: v.number(), busyFraction: v.number() })),
    }),
  ),
  /** True while the owner's remote pause stands (sent again on each connection). */
  remotePaused: v.boolean(),
  jobsDone: Count,
  earned: v.object({
    /** Inside the verification window. */
    pendingNano: Nano,
    /** Settled and not yet paid (a payout in flight included). */
    settledNano: Nano,
    /** Paid on chain: the wallet's payouts cover its oldest settled credits first. */
    paidNano: Nano,
  }),
});
export type FleetDevice = v.InferOutput<typeof FleetDevice>;

/** `GET /v1/fleet`: the devices earning for the owner's wallet. */
export const FleetView = v.object({ wallet: v.string(), devices: v.array(FleetDevice) });
export type FleetView = v.InferOutput<typeof FleetView>;

/** `POST /v1/fleet/:contributorId/control`: whether the device was connected to be told now. */
export const ControlAnswer = v.object({ delivered: v.boolean() });
export type ControlAnswer = v.InferOutput<typeof ControlAnswer>;

/**
 * A requester API key as the operator's routes list it (`GET /v1/operator/keys`) and the store
 * keeps it: never its secret, of which only a hash is stored.
 */
export const ApiKeyView = v.object({
  id: v.string(),
  label: v.string(),
  /** Jobs this key may create per minute. */
  jobsPerMinute: v.number(),
  /** Jobs this key may have unfinished at once. */
  maxInFlight: v.number(),
  /** The text comment a TON deposit for this key carries (docs/protocol.md, "Deposits"). Not a secret. */
  depositMemo: v.string(),
  createdAt: Ms,
  revokedAt: v.nullable(Ms),
});
export type ApiKeyView = v.InferOutput<typeof ApiKeyView>;

/** `GET /v1/operator/keys`. */
export const ApiKeyList = v.object({ keys: v.array(ApiKeyView) });
export type ApiKeyList = v.InferOutput<typeof ApiKeyList>;

/** A quarantine in force as the operator's routes list it: a device id, or `wallet:<address>`. */
export const QuarantineView = v.object({ id: v.string(), since: Ms, until: v.nullable(Ms) });
/** A lifted quarantine: who lifted it, when and why, and the quarantine as it was. */
export const LiftView = v.object({
  id: v.string(),
  liftedAt: Ms,
  liftedBy: v.string(),
  reason: v.string(),
  quarantinedSince: Ms,
  quarantinedUntil: v.nullable(Ms),
});
export type LiftView = v.InferOutput<typeof LiftView>;

/** `GET /v1/operator/quarantines`: in force, newest first, and the latest lifts (at most 1,000 of each). */
export const QuarantineList = v.object({ quarantines: v.array(QuarantineView), lifts: v.array(LiftView) });
export type QuarantineList = v.InferOutput<typeof QuarantineList>;

/** `POST /v1/operator/quarantines/lift` answers the lift it recorded. */
export const LiftAnswer = v.object({ lifted: LiftView });
