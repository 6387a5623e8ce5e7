/**
 * Sealed envelopes (docs/protocol.md, "Sealed envelopes"): HPKE RFC 9180 base mode with
 * DHKEM X25519, HKDF-SHA256 and AES-128-GCM. The job payload is sealed by the requester to the
 * contributor's `hpkeKey`; the result streams back as chunks under one HPKE context to the
 * requester's per-job `resultKey`. WebCrypto only, so it runs in Node, pages and workers.
 */
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256, type RecipientContext, type SenderContext } from '@hpke/core';
import * as v from 'valibot';
import { InvalidInputError, SealError, SpinneretError } from './errors.ts';
import { JobRequest, JobResult, wireKindOf } from './jobs.ts';
import type { JobKind } from './manifest.ts';
import type { Sealed } from './wire.ts';

/** What a job payload is bound to: opening it under any other values fails. */
export interface JobAad {
  jobId: string;
  /** The assignment's attempt number, from 1. */
  attempt: number;
  model: string;
  kind: JobKind;
}

/** One sealed piece of a result stream. */
export interface SealedChunk {
  /** Position in the stream, from 0. */
  seq: number;
  /** True on the last chunk only (the one carrying the `result`). */
  final: boolean;
  /** `enc` is set on chunk 0 only. */
  sealed: Sealed;
}

export interface ResultSealer {
  /** Seals the next piece; refuses after a final one. Calls are sealed in call order. */
  seal(piece: ResultPiece, final: boolean): Promise<SealedChunk>;
}

export interface ResultOpener {
  /** Opens the next chunk; throws {@link SealError} unless it is exactly the next one. A failed open changes nothing. */
  open(chunk: SealedChunk): Promise<ResultPiece>;
  /** True once the final chunk was opened; a stream that stops before it is truncated. */
  readonly done: boolean;
}

const JOB_INFO = 'spinneret/job/v1';
const RESULT_INFO = 'spinneret/result/v1';
const ID = /^[A-Za-z0-9_-]{1,64}$/;

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
const utf8 = new TextEncoder();

const Key32 = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'a 32-byte key in base64url'));
const Count = v.pipe(v.number(), v.integer(), v.minValue(0));

/** What the contributor opens: the request, and where to seal the result. */
export const JobPayload = v.strictObject({
  request: JobRequest,
  /** The requester's fresh X25519 raw public key, base64url; the result is sealed to it. */
  resultKey: Key32,
});
export type JobPayload = v.InferOutput<typeof JobPayload>;

/** One chunk's plaintext: `delta`s while streaming, then exactly one `result` in the final chunk. */
export const ResultPiece = v.variant('type', [
  v.strictObject({ type: v.literal('delta'), text: v.string(), tokens: v.array(Count) }),
  v.strictObject({ type: v.literal('result'), result: JobResult }),
]);
export type ResultPiece = v.InferOutput<typeof ResultPiece>;

// ── encoding ─────────────────────────────────────────────────────────────────────────────

/** Base64url without padding. */
export function toB64url(bytes: Uint8Array): string {
  let binary = '';
  // Chunked: String.fromCharCode(...big) overflows the argument limit on megabyte payloads.
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Bytes a base64url string (without padding) decodes to. */
export function base64urlBytes(text: string): number {
  return Math.floor((text.length * 3) / 4);
}

/** Decodes base64url without padding; throws {@link InvalidInputError} on anything else. */
export function fromB64url(s: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) throw new InvalidInputError('The value is not base64url without padding.');
  const binary = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// ── keys ─────────────────────────────────────────────────────────────────────────────────

/** WebCrypto X25519 pair; non-extractable private key by default (the device's key must never leave). */
export async function generateHpkeKeyPair(extractable = false): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey({ name: 'X25519' }, extractable, ['deriveBits']);
}

/** The raw 32-byte public key, base64url. */
export async function exportPublicKey(key: CryptoKey): Promise<string> {
  return toB64url(new Uint8Array(await crypto.subtle.exportKey('raw', key)));
}

async function importPublicKey(key: string, what: string): Promise<CryptoKey> {
  if (!v.is(Key32, key)) throw new InvalidInputError(`The ${what} is not a 32-byte X25519 key in base64url.`);
  try {
    return await suite.kem.deserializePublicKey(fromB64url(key));
  } catch (err) {
    throw new InvalidInputError(`The ${what} is not a usable X25519 public key.`, { reason: String(err) });
  }
}

// ── job payload ──────────────────────────────────────────────────────────────────────────

function jobAadBytes(aad: JobAad): Uint8Array {
  // jobId has no '|', attempt is an integer and kind a fixed word, so the string parses one way even if model has '|'.
  if (!ID.test(aad.jobId)) throw new InvalidInputError(`Job id "${aad.jobId}" is not 1–64 base64url characters.`);
  if (!Number.isSafeInteger(aad.attempt) || aad.attempt < 0) throw new InvalidInputError(`Attempt ${aad.attempt} is not a whole number.`);
  return utf8.encode(`${JOB_INFO}|${aad.jobId}|${aad.attempt}|${aad.model}|${aad.kind}`);
}

function checkBinding(request: JobRequest, aad: JobAad): string | null {
  if (request.model !== aad.model || wireKindOf(request) !== aad.kind) {
    return `the request is a ${wireKindOf(request)} job on "${request.model}", but the job is a ${aad.kind} job on "${aad.model}"`;
  }
  return null;
}

/** Seals a job payload to a contributor's `hpkeKey`, bound to `aad`. Throws InvalidInputError for a malformed payload. */
export async function sealJob(recipientHpkeKey: string, payload: JobPayload, aad: JobAad): Promise<Sealed> {
  const checked = v.safeParse(JobPayload, payload);
  if (!checked.success) throw new InvalidInputError(`The job payload is malformed: ${v.summarize(checked.issues)}. Fix the request.`);
  const mismatch = checkBinding(checked.output.request, aad);
  if (mismatch !== null) throw new InvalidInputError(`The job payload does not match its job: ${mismatch}.`);
  const aadBytes = jobAadBytes(aad);
  const recipientPublicKey = await importPublicKey(recipientHpkeKey, "contributor's HPKE key");
  const { ct, enc } = await suite.seal(
    { recipientPublicKey, info: utf8.encode(JOB_INFO) },
    utf8.encode(JSON.stringify(checked.output)),
    aadBytes,
  );
  return { enc: toB64url(new Uint8Array(enc)), ct: toB64url(new Uint8Array(ct)) };
}

/** Opens a job payload sealed to `recipient`; throws {@link SealError} for anything but an intact payload for exactly `aad`. */
export async function openJob(recipient: CryptoKeyPair, sealed: Sealed, aad: JobAad): Promise<JobPayload> {
  const what = `job payload of job ${aad.jobId}`;
  if (sealed.enc === undefined) throw new SealError(what, 'it carries no encapsulated key (enc)');
  const aadBytes = jobAadBytes(aad);
  let plaintext: ArrayBuffer;
  try {
    plaintext = await suite.open(
      { recipientKey: recipient, enc: fromB64url(sealed.enc), info: utf8.encode(JOB_INFO) },
      fromB64url(sealed.ct),
      aadBytes,
    );
  } catch (err) {
    throw new SealError(what, 'decryption failed', { cause: err });
  }
  const payload = parsePlaintext(JobPayload, plaintext, what);
  const mismatch = checkBinding(payload.request, aad);
  if (mismatch !== null) throw new SealError(what, mismatch);
  return payload;
}

function parsePlaintext<T>(schema: v.GenericSchema<unknown, T>, plaintext: ArrayBuffer, what: string): T {
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext));
  } catch {
    throw new SealError(what, 'the plaintext is not JSON');
  }
  const result = v.safeParse(schema, data);
  if (!result.success) throw new SealError(what, `the plaintext is malformed (${v.summarize(result.issues).slice(0, 300)})`);
  return result.output;
}

// ── result stream ────────────────────────────────────────────────────────────────────────

function resultAad(jobId: string, seq: number, final: boolean): Uint8Array {
  return utf8.encode(`${RESULT_INFO}|${jobId}|${seq}|${final ? 1 : 0}`);
}

/** Starts the result stream of `jobId` to the requester's `resultKey` (one HPKE context for all chunks). */
export async function createResultSealer(resultKey: string, jobId: string): Promise<ResultSealer> {
  if (!ID.test(jobId)) throw new InvalidInputError(`Job id "${jobId}" is not 1–64 base64url characters.`);
  const recipientPublicKey = await importPublicKey(resultKey, 'result key');
  const context: SenderContext = await suite.createSenderContext({ recipientPublicKey, info: utf8.encode(RESULT_INFO) });
  const enc = toB64url(new Uint8Array(context.enc));
  let next = 0;
  let finished = false;
  let tail: Promise<unknown> = Promise.resolve();
  return {
    seal(piece, final) {
      if (finished)
        return Promise.reject(
          new SpinneretError('INTERNAL', `The result of job ${jobId} was already sealed as final; nothing more can be sent.`),
        );
      if ((piece.type === 'result') !== final) {
        return Promise.reject(
          new InvalidInputError('Only the final chunk carries the result, and the final chunk carries only the result.'),
        );
      }
      const seq = next++;
      finished = final;
      // The context's nonce advances per seal, so seals must run in the order their seq was given.
      const sealed = tail.then(async (): Promise<SealedChunk> => {
        const ct = await context.seal(utf8.encode(JSON.stringify(piece)), resultAad(jobId, seq, final));
        const body = toB64url(new Uint8Array(ct));
        return { seq, final, sealed: seq === 0 ? { enc, ct: body } : { ct: body } };
      });
      tail = sealed.catch(() => undefined);
      return sealed;
    },
  };
}

/** Opens the result stream of `jobId` sealed to `recipient`, strictly in order. */
export function createResultOpener(recipient: CryptoKeyPair, jobId: string): ResultOpener {
  const what = (seq: number): string => `result chunk ${seq} of job ${jobId}`;
  let context: RecipientContext | null = null;
  let next = 0;
  let done = false;
  let tail: Promise<unknown> = Promise.resolve();

  const openNext = async (chunk: SealedChunk): Promise<ResultPiece> => {
    if (done) throw new SealError(what(chunk.seq), 'the stream already ended with its final chunk');
    if (chunk.seq !== next) {
      const reason = chunk.seq < next ? 'it was already received (duplicate)' : `chunk ${next} is missing (out of order or dropped)`;
      throw new SealError(what(chunk.seq), reason);
    }
    let ctx = context;
    if (chunk.seq === 0) {
      if (chunk.sealed.enc === undefined) throw new SealError(what(0), 'the first chunk carries no encapsulated key (enc)');
      try {
        ctx = await suite.createRecipientContext({
          recipientKey: recipient,
          enc: fromB64url(chunk.sealed.enc),
          info: utf8.encode(RESULT_INFO),
        });
      } catch (err) {
        throw new SealError(what(0), 'its key exchange failed', { cause: err });
      }
    } else if (chunk.sealed.enc !== undefined) {
      throw new SealError(what(chunk.seq), 'only the first chunk may carry an encapsulated key (enc)');
    }
    if (ctx === null) throw new SealError(what(chunk.seq), 'the stream has not started');
    let plaintext: ArrayBuffer;
    try {
      plaintext = await ctx.open(fromB64url(chunk.sealed.ct), resultAad(jobId, chunk.seq, chunk.final));
    } catch (err) {
      throw new SealError(what(chunk.seq), 'decryption failed', { cause: err });
    }
    const piece = parsePlaintext(ResultPiece, plaintext, what(chunk.seq));
    if ((piece.type === 'result') !== chunk.final) {
      throw new SealError(what(chunk.seq), chunk.final ? 'the final chunk carries no result' : 'a result arrived before the final chunk');
    }
    // Only an intact chunk moves the stream on; a bad one leaves it waiting for the genuine one.
    context = ctx;
    next++;
    done = chunk.final;
    return piece;
  };

  return {
    open(chunk) {
      const opened = tail.then(() => openNext(chunk));
      tail = opened.catch(() => undefined);
      return opened;
    },
    get done() {
      return done;
    },
  };
}
