/**
 * The bodies pages send to the coordinator's HTTP routes (docs/protocol.md, "HTTP routes"),
 * one valibot schema each: the coordinator validates every body against it (coordinator/wallets/
 * and coordinator/fleet/ routes) and the page's client (web/api.ts) takes its request types
 * from it. Unknown fields are refused. The types are what a caller sends (`InferInput`:
 * defaulted fields may be left out); the coordinator reads the parsed output. Their answers
 * are in ./answers.ts.
 */
import * as v from 'valibot';
import { EnrollmentScope } from './answers.ts';

/** An Ed25519 public key, base64url without padding (32 bytes). */
const DeviceKey = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'a base64url Ed25519 public key'));
/** A name a person gives: an enrollment token's or a machine's. */
const Label = v.pipe(v.string(), v.trim(), v.minLength(1, 'a label is required'), v.maxLength(64));
/** Longest enrollment token lifetime: one year. */
const MAX_TTL_MS = 365 * 24 * 60 * 60_000;

/** `POST /v1/wallet/payload`: a `ton_proof` payload for this device's key. */
export const WalletPayloadRequest = v.strictObject({ deviceKey: DeviceKey });
export type WalletPayloadRequest = v.InferInput<typeof WalletPayloadRequest>;

/** `POST /v1/wallet/proof`: TON Connect's `ton_proof` reply and account, for the device's key. */
export const WalletProofRequest = v.strictObject({
  deviceKey: DeviceKey,
  /** `owner`: the fleet page's owner session; `device` (default): the contributor's. */
  scope: v.optional(v.picklist(['device', 'owner']), 'device'),
  address: v.pipe(v.string(), v.maxLength(100)),
  network: v.picklist(['-239', '-3']),
  publicKey: v.exactOptional(v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{64}$/))),
  proof: v.strictObject({
    timestamp: v.number(),
    domain: v.strictObject({ lengthBytes: v.number(), value: v.pipe(v.string(), v.maxLength(256)) }),
    signature: v.pipe(v.string(), v.maxLength(200)),
    payload: v.pipe(v.string(), v.maxLength(200)),
    stateInit: v.exactOptional(v.pipe(v.string(), v.maxLength(8192))),
  }),
});
export type WalletProofRequest = v.InferInput<typeof WalletProofRequest>;

/** `POST /v1/enrollment-tokens`: a new enrollment token (the owner's). */
export const IssueTokenRequest = v.strictObject({
  label: Label,
  /** How long the token can enroll devices, ms. */
  ttlMs: v.pipe(v.number(), v.integer(), v.minValue(60_000, 'at least one minute'), v.maxValue(MAX_TTL_MS, 'at most one year')),
  scope: v.optional(EnrollmentScope, 'contribute'),
  maxDevices: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(10_000)), 1),
});
export type IssueTokenRequest = v.InferInput<typeof IssueTokenRequest>;

/**
 * `POST /v1/enroll`: a kiosk machine enrolls with its owner's token. `signature` is the
 * identity key's Ed25519 signature of `enrollMessage(token, identityKey)` (./wire.ts): proof
 * the caller holds the device's key.
 */
export const EnrollRequest = v.strictObject({
  token: v.pipe(v.string(), v.minLength(1), v.maxLength(200)),
  identityKey: DeviceKey,
  signature: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{86}$/, 'a base64url Ed25519 signature')),
  /** This machine's name; default the token's label. */
  label: v.optional(Label),
});
export type EnrollRequest = v.InferInput<typeof EnrollRequest>;

/** `POST /v1/fleet/:contributorId/control`: a remote control from the fleet page. */
export const ControlRequest = v.strictObject({
  action: v.picklist(['pause', 'resume', 'message']),
  /** What to show on the device (`message`). */
  text: v.exactOptional(v.pipe(v.string(), v.maxLength(500))),
});
export type ControlRequest = v.InferInput<typeof ControlRequest>;
