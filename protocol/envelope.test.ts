import { describe, expect, it } from 'vitest';
import {
  createResultOpener,
  createResultSealer,
  exportPublicKey,
  fromB64url,
  generateHpkeKeyPair,
  openJob,
  sealJob,
  toB64url,
  type JobAad,
  type JobPayload,
  type ResultPiece,
  type SealedChunk,
} from './envelope.ts';
import { InvalidInputError, SealError } from './errors.ts';
import type { JobResult } from './jobs.ts';
import type { Sealed } from './wire.ts';

const aad: JobAad = { jobId: 'job_1', attempt: 1, model: 'qwen', kind: 'chat' };
const request = {
  kind: 'chat',
  model: 'qwen',
  messages: [{ role: 'user', content: 'hi' }],
  maxTokens: 8,
  sampling: { temperature: 0, topP: 1, seed: 0 },
} as const;

async function payloadFor(): Promise<{ payload: JobPayload; result: CryptoKeyPair }> {
  const result = await generateHpkeKeyPair();
  return {
    payload: { request: { ...request, messages: [...request.messages] }, resultKey: await exportPublicKey(result.publicKey) },
    result,
  };
}

/** Flips one bit of the decoded bytes at `index` (negative counts from the end). */
function flip(b64: string, index: number): string {
  const bytes = fromB64url(b64);
  const i = index < 0 ? bytes.length + index : index;
  bytes[i] = bytes[i]! ^ 0x01;
  return toB64url(bytes);
}

const answer: JobResult = { kind: 'chat', text: 'hello there', finishReason: 'stop', usage: { promptTokens: 3, completionTokens: 2 } };
const pieces: ResultPiece[] = [
  { type: 'delta', text: 'hello', tokens: [1] },
  { type: 'delta', text: ' there', tokens: [2] },
  { type: 'result', result: answer },
];

async function sealStream(resultKey: string, jobId = 'job_1'): Promise<SealedChunk[]> {
  const sealer = await createResultSealer(resultKey, jobId);
  return Promise.all(pieces.map((p, i) => sealer.seal(p, i === pieces.length - 1)));
}

describe('base64url', () => {
  it('round-trips every byte value without padding and rejects other alphabets', () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const text = toB64url(bytes);
    expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(text, 'base64url').equals(Buffer.from(bytes))).toBe(true);
    expect(fromB64url(text)).toEqual(bytes);
    expect(() => fromB64url('ab+/')).toThrow(InvalidInputError);
    expect(() => fromB64url('abcde')).toThrow(InvalidInputError);
  });
});

describe('job payload', () => {
  it('round-trips to a non-extractable contributor key', async () => {
    const device = await generateHpkeKeyPair();
    expect(device.privateKey.extractable).toBe(false);
    await expect(crypto.subtle.exportKey('pkcs8', device.privateKey)).rejects.toThrow();
    const { payload } = await payloadFor();
    const sealed = await sealJob(await exportPublicKey(device.publicKey), payload, aad);
    expect(sealed.ct).not.toContain(toB64url(new TextEncoder().encode('"hi"')));
    expect(await openJob(device, sealed, aad)).toEqual(payload);
  });

  it('detects a flipped byte in ct or enc, and a missing enc', async () => {
    const device = await generateHpkeKeyPair();
    const { payload } = await payloadFor();
    const sealed = await sealJob(await exportPublicKey(device.publicKey), payload, aad);
    for (const bad of [
      { ...sealed, ct: flip(sealed.ct, 0) },
      { ...sealed, ct: flip(sealed.ct, -1) },
      { ...sealed, enc: flip(sealed.enc!, 5) },
      { ct: sealed.ct },
    ]) {
      await expect(openJob(device, bad, aad)).rejects.toBeInstanceOf(SealError);
    }
  });

  it('refuses the wrong key and every other job binding', async () => {
    const device = await generateHpkeKeyPair();
    const other = await generateHpkeKeyPair();
    const { payload } = await payloadFor();
    const sealed = await sealJob(await exportPublicKey(device.publicKey), payload, aad);
    await expect(openJob(other, sealed, aad)).rejects.toBeInstanceOf(SealError);
    for (const wrong of [{ jobId: 'job_2' }, { attempt: 2 }, { model: 'qwen2' }, { kind: 'generate' as const }]) {
      await expect(openJob(device, sealed, { ...aad, ...wrong })).rejects.toBeInstanceOf(SealError);
    }
  });

  it('keeps the result key: a relay that re-seals or splices cannot swap it', async () => {
    const device = await generateHpkeKeyPair();
    const devicePub = await exportPublicKey(device.publicKey);
    const { payload } = await payloadFor();
    const sealed = await sealJob(devicePub, payload, aad);
    // The relay knows the device's public key and can seal its own payload with its own result key,
    // but cannot splice it into the requester's envelope: neither its enc nor its ct opens with the other half.
    const relayKey = await exportPublicKey((await generateHpkeKeyPair()).publicKey);
    const forged = await sealJob(devicePub, { ...payload, resultKey: relayKey }, aad);
    await expect(openJob(device, { enc: forged.enc, ct: sealed.ct }, aad)).rejects.toBeInstanceOf(SealError);
    await expect(openJob(device, { enc: sealed.enc, ct: forged.ct }, aad)).rejects.toBeInstanceOf(SealError);
    expect((await openJob(device, sealed, aad)).resultKey).toBe(payload.resultKey);
  });

  it('refuses to seal a request that does not match its job', async () => {
    const device = await generateHpkeKeyPair();
    const { payload } = await payloadFor();
    await expect(sealJob(await exportPublicKey(device.publicKey), payload, { ...aad, model: 'other' })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
    await expect(sealJob('short', payload, aad)).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('refuses a validly sealed but malformed plaintext', async () => {
    const device = await generateHpkeKeyPair();
    const { CipherSuite, DhkemX25519HkdfSha256, HkdfSha256, Aes128Gcm } = await import('@hpke/core');
    const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
    const enc8 = new TextEncoder();
    const junk = await suite.seal(
      { recipientPublicKey: device.publicKey, info: enc8.encode('spinneret/job/v1') },
      enc8.encode(JSON.stringify({ request: { kind: 'chat' }, resultKey: 'x' })),
      enc8.encode('spinneret/job/v1|job_1|1|qwen|chat'),
    );
    const sealed: Sealed = { enc: toB64url(new Uint8Array(junk.enc)), ct: toB64url(new Uint8Array(junk.ct)) };
    await expect(openJob(device, sealed, aad)).rejects.toBeInstanceOf(SealError);
  });
});

describe('result stream', () => {
  it('round-trips deltas and the result in order; only chunk 0 carries enc', async () => {
    const { payload, result } = await payloadFor();
    const chunks = await sealStream(payload.resultKey);
    expect(chunks.map((c) => [c.seq, c.final, c.sealed.enc !== undefined])).toEqual([
      [0, false, true],
      [1, false, false],
      [2, true, false],
    ]);
    const opener = createResultOpener(result, 'job_1');
    const opened: ResultPiece[] = [];
    for (const chunk of chunks) {
      expect(opener.done).toBe(false);
      opened.push(await opener.open(chunk));
    }
    expect(opened).toEqual(pieces);
    expect(opener.done).toBe(true);
    await expect(opener.open(chunks[2]!)).rejects.toBeInstanceOf(SealError);
  });

  it('refuses reordering, a dropped middle chunk and duplicates', async () => {
    const { payload, result } = await payloadFor();
    const [c0, c1, c2] = await sealStream(payload.resultKey);
    const reordered = createResultOpener(result, 'job_1');
    await expect(reordered.open(c1!)).rejects.toBeInstanceOf(SealError);

    const dropped = createResultOpener(result, 'job_1');
    await dropped.open(c0!);
    await expect(dropped.open(c2!)).rejects.toBeInstanceOf(SealError);
    // A relay relabelling the seq does not help: the AAD binds the position.
    await expect(dropped.open({ ...c2!, seq: 1 })).rejects.toBeInstanceOf(SealError);
    expect(dropped.done).toBe(false);

    const duplicate = createResultOpener(result, 'job_1');
    await duplicate.open(c0!);
    await duplicate.open(c1!);
    await expect(duplicate.open(c1!)).rejects.toBeInstanceOf(SealError);
    // The genuine next chunk still opens: failures leave the stream where it was.
    expect(await duplicate.open(c2!)).toEqual(pieces[2]);
  });

  it('does not report done for a truncated stream, nor accept a forged final flag', async () => {
    const { payload, result } = await payloadFor();
    const [c0, c1] = await sealStream(payload.resultKey);
    const opener = createResultOpener(result, 'job_1');
    await opener.open(c0!);
    await opener.open(c1!);
    expect(opener.done).toBe(false);

    const forged = createResultOpener(result, 'job_1');
    await forged.open(c0!);
    await expect(forged.open({ ...c1!, final: true })).rejects.toBeInstanceOf(SealError);
    expect(forged.done).toBe(false);
  });

  it('refuses tampering, a missing enc, enc on a later chunk, another job and another key', async () => {
    const { payload, result } = await payloadFor();
    const [c0, c1] = await sealStream(payload.resultKey);
    const cases: Array<[CryptoKeyPair, string, SealedChunk]> = [
      [result, 'job_1', { ...c0!, sealed: { ...c0!.sealed, ct: flip(c0!.sealed.ct, 3) } }],
      [result, 'job_1', { ...c0!, sealed: { ...c0!.sealed, enc: flip(c0!.sealed.enc!, 0) } }],
      [result, 'job_1', { ...c0!, sealed: { ct: c0!.sealed.ct } }],
      [result, 'job_2', c0!],
      [await generateHpkeKeyPair(), 'job_1', c0!],
    ];
    for (const [key, jobId, chunk] of cases) {
      await expect(createResultOpener(key, jobId).open(chunk)).rejects.toBeInstanceOf(SealError);
    }
    const opener = createResultOpener(result, 'job_1');
    await opener.open(c0!);
    await expect(opener.open({ ...c1!, sealed: { ...c1!.sealed, enc: c0!.sealed.enc } })).rejects.toBeInstanceOf(SealError);
  });

  it('refuses to seal after the final chunk or a result outside it', async () => {
    const { payload } = await payloadFor();
    const sealer = await createResultSealer(payload.resultKey, 'job_1');
    await expect(sealer.seal(pieces[2]!, false)).rejects.toThrow(InvalidInputError);
    await sealer.seal(pieces[2]!, true);
    await expect(sealer.seal(pieces[0]!, false)).rejects.toThrow(/already sealed as final/);
  });

  it('works with a recipient key made by WebCrypto directly', async () => {
    const pair = await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
    const chunks = await sealStream(await exportPublicKey(pair.publicKey));
    const opener = createResultOpener(pair, 'job_1');
    for (const chunk of chunks) await opener.open(chunk);
    expect(opener.done).toBe(true);
  });
});
