/**
 * The building blocks of the wire protocol (protocol/wire.ts): the version, the frame limit,
 * encodings (base64url, keys, ids, times, counts), sealed messages, the error body and usage.
 */
import * as v from 'valibot';
import { ERROR_CODES } from './errors.ts';
import { SafeText } from './text.ts';

/** The protocol version this code speaks; a peer with another gets `PROTOCOL_VERSION` and is closed. */
export const PROTOCOL_VERSION = 1;
/** Largest WebSocket frame either side accepts (a sealed job or one result chunk), bytes. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export const B64 = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]*$/, 'base64url without padding'), v.maxLength(6_000_000));
/** A raw 32-byte public key (Ed25519 or X25519), base64url: 43 characters. */
export const Key32 = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'a 32-byte key in base64url'));
export const Id = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'an id is 1–64 base64url characters'));
export const Time = v.pipe(v.number(), v.integer(), v.minValue(0));
export const Count = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1_000_000));

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

export const base = { v: v.literal(PROTOCOL_VERSION) };
