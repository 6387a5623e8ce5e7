import { afterEach, describe, expect, it } from 'vitest';
import type { ResultPiece } from '../protocol/envelope.ts';
import { AbortedError, EngineError, InvalidInputError, SealError, SpinneretError } from '../protocol/errors.ts';
import type { JobRequest } from '../protocol/jobs.ts';
import { RequesterClient } from './client.ts';
import { ApiKeyRefusedError, CoordinatorUnavailableError } from './errors.ts';
import { defaultAnswer, startFakeCoordinator, type FakeCoordinator, type FakeCoordinatorOptions } from './fake-coordinator.ts';

const SECRET = 'the secret question only the contributor may read';
const chat: JobRequest = {
  kind: 'chat',
  model: 'tiny-chat',
  messages: [{ role: 'user', content: SECRET }],
  maxTokens: 16,
  sampling: { temperature: 0, topP: 1, seed: 7 },
};

let fake: FakeCoordinator | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(
  options: FakeCoordinatorOptions = {},
  apiKey = 'test-key',
): Promise<{ fake: FakeCoordinator; client: RequesterClient }> {
  fake = await startFakeCoordinator(options);
  // The fake speaks HTTP only; the channel is tested against the real coordinator (coordinator/requesters/channel.test.ts).
  return { fake, client: new RequesterClient({ coordinatorUrl: fake.url, apiKey, channel: false }) };
}

function collect(): { onDelta: (p: { text: string; tokens: number[] }) => void; text: () => string; tokens: number[] } {
  const parts: string[] = [];
  const tokens: number[] = [];
  return {
    onDelta: (p) => {
      parts.push(p.text);
      tokens.push(...p.tokens);
    },
    text: () => parts.join(''),
    tokens,
  };
}

describe('RequesterClient', () => {
  it('runs a chat job: seals the payload, streams deltas, opens the result', async () => {
    const { fake, client } = await setup();
    const deltas = collect();
    const result = await client.run(chat, { onDelta: deltas.onDelta });
    expect(result).toEqual({
      kind: 'chat',
      text: `You said: ${SECRET}`,
      finishReason: 'stop',
      usage: { promptTokens: 5, completionTokens: 3 },
      attempts: 1,
    });
    expect(deltas.text()).toBe(result.kind === 'chat' ? result.text : '');
    expect(deltas.tokens).toEqual([1, 2, 3]);
    // The contributor got the request exactly, with a result key it can seal to.
    expect(fake.opened).toHaveLength(1);
    expect(fake.opened[0]!.request).toEqual(chat);
    const methods = fake.requests.map((r) => `${r.method} ${r.path}`);
    expect(methods).toEqual(['GET /v1/models/tiny-chat', 'POST /v1/jobs', 'GET /v1/jobs/job1/events', 'PUT /v1/jobs/job1/payload']);
    const post = JSON.parse(fake.requests[1]!.body) as { model: string; kind: string; sizeBytes: number; billing: unknown };
    expect(post).toMatchObject({ model: 'tiny-chat', kind: 'chat' });
    const put = JSON.parse(fake.requests[3]!.body) as { attempt: number; sealed: { ct: string } };
    // sizeBytes predicts the ciphertext exactly (base64url: 4 characters per 3 bytes).
    expect(post.sizeBytes).toBe(Math.floor((put.sealed.ct.length * 3) / 4));
    // Without a tokenizer from the catalog, the envelope counts every payload byte as a token (an upper bound).
    expect(post.billing).toEqual({ inputTokens: post.sizeBytes - 16, maxOutputTokens: chat.maxTokens });
  });

  it('never sends plaintext: only sealed envelopes leave the process', async () => {
    const { fake, client } = await setup();
    await client.run(chat);
    expect(fake.requests.length).toBeGreaterThan(0);
    for (const request of fake.requests) {
      expect(request.body).not.toContain('secret question');
      expect(request.body).not.toContain(fake.opened[0]!.resultKey);
    }
  });

  it('runs an embed job with the assignment only in the event stream', async () => {
    const { client } = await setup({ inline: false });
    const result = await client.run({ kind: 'embed', model: 'tiny-embed', inputs: ['ab', 'abcd'] });
    expect(result).toMatchObject({
      kind: 'embed',
      embeddings: [
        [2, 0.5, -1],
        [4, 0.5, -1],
      ],
      attempts: 1,
    });
  });

  it('re-seals for a new contributor when one drops, and gives exactly one answer', async () => {
    const { fake, client } = await setup({ inline: false, dropAttempts: [1] });
    const deltas = collect();
    const result = await client.run(chat, { onDelta: deltas.onDelta });
    expect(result.attempts).toBe(2);
    expect(result.kind === 'chat' && result.text).toBe(`You said: ${SECRET}`);
    // The dropped contributor's delta is not repeated, and its late chunk is ignored.
    expect(deltas.text()).toBe(`You said: ${SECRET}`);
    expect(deltas.tokens).toEqual([1, 2, 3]);
    const puts = fake.requests.filter((r) => r.method === 'PUT').map((r) => (JSON.parse(r.body) as { attempt: number }).attempt);
    expect(puts).toEqual([1, 2]);
    expect(fake.opened).toHaveLength(2);
    expect(fake.opened[0]!.resultKey).not.toBe(fake.opened[1]!.resultKey);
    expect(fake.deletes).toEqual([]);
  });

  it('fails rather than stream contradicting text when the new contributor diverges', async () => {
    let calls = 0;
    const answer = (request: JobRequest): ResultPiece[] =>
      calls++ === 0 ? defaultAnswer(request) : [{ type: 'delta', text: 'Other', tokens: [9] }, ...defaultAnswer(request).slice(1)];
    const { fake, client } = await setup({ dropAttempts: [1], answer });
    await expect(client.run(chat, { onDelta: () => undefined })).rejects.toBeInstanceOf(EngineError);
    expect(fake.deletes).toEqual(['job1']);
  });

  it('cancels with DELETE on abort and rejects with AbortedError', async () => {
    const { fake, client } = await setup({ hold: true });
    const controller = new AbortController();
    const running = client.run(chat, { signal: controller.signal });
    await fake.payloadsOpened(1);
    controller.abort();
    await expect(running).rejects.toBeInstanceOf(AbortedError);
    expect(fake.deletes).toEqual(['job1']);
  });

  it('maps a failed event to the typed error with the coordinator message', async () => {
    const { fake, client } = await setup({ fail: { code: 'ENGINE', message: 'out of GPU memory' } });
    const err = await client.run(chat).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as Error).message).toBe('out of GPU memory');
    expect(fake.deletes).toEqual([]);
  });

  it('maps wire-only codes to INTERNAL and OPEN_FAILED to SealError', async () => {
    const lease = await setup({ fail: { code: 'LEASE_EXPIRED', message: 'no contributor finished in time' } });
    const err = await lease.client.run(chat).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpinneretError);
    expect((err as SpinneretError).code).toBe('INTERNAL');
    expect((err as Error).message).toContain('no contributor finished in time');
    await lease.fake.close();

    const open = await setup({ fail: { code: 'OPEN_FAILED', message: 'the payload did not open' } });
    await expect(open.client.run(chat)).rejects.toBeInstanceOf(SealError);
  });

  it('refuses a tampered result chunk and cancels the job', async () => {
    const { fake, client } = await setup({ tamperSeq: 1 });
    await expect(client.run(chat)).rejects.toBeInstanceOf(SealError);
    expect(fake.deletes).toEqual(['job1']);
  });

  it('says the API key was refused', async () => {
    const { client } = await setup({}, 'wrong-key');
    const err = await client.run(chat).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiKeyRefusedError);
    expect((err as Error).message).toMatch(/API key refused/);
    await expect(client.models()).rejects.toBeInstanceOf(ApiKeyRefusedError);
  });

  it('falls back to HTTP when the coordinator has no requester channel', async () => {
    fake = await startFakeCoordinator();
    const client = new RequesterClient({ coordinatorUrl: fake.url, apiKey: 'test-key', channel: true });
    expect(await client.transport()).toBe('http');
    const result = await client.run(chat);
    expect(result.kind === 'chat' ? result.text : '').toBe(`You said: ${SECRET}`);
    const methods = fake.requests.map((r) => `${r.method} ${r.path}`);
    // One try at the channel (a plain GET to a server without it), then HTTP only: no second try within the minute.
    expect(methods.filter((m) => m === 'GET /v1/requester')).toEqual(['GET /v1/requester']);
    expect(methods).toContain('POST /v1/jobs');
  });

  it('reports an unreachable coordinator and refuses malformed requests before sending', async () => {
    const { fake, client } = await setup();
    const down = new RequesterClient({ coordinatorUrl: 'http://127.0.0.1:9', apiKey: 'k' });
    await expect(down.run(chat)).rejects.toBeInstanceOf(CoordinatorUnavailableError);
    await expect(client.run({ ...chat, maxTokens: 0 })).rejects.toBeInstanceOf(InvalidInputError);
    const huge = { kind: 'embed' as const, model: 'tiny-embed', inputs: Array.from({ length: 40 }, () => 'x'.repeat(100_000)) };
    await expect(client.run(huge)).rejects.toThrow(/too large to send/);
    expect(fake.requests).toEqual([]);
  });

  it('lists models', async () => {
    const { client } = await setup();
    expect(await client.models()).toEqual([
      { id: 'tiny-chat', kinds: ['chat'] },
      { id: 'tiny-embed', kinds: ['embed'] },
    ]);
  });
});
