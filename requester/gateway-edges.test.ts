/**
 * The OpenAI-compatible gateway's refusals and protections: errors mapped to OpenAI's statuses,
 * cross-site requests, body limits, its own key, and unexpected failures.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { EngineError } from '../protocol/errors.ts';
import type { JobResult } from '../protocol/jobs.ts';
import { ApiKeyRefusedError, CoordinatorUnavailableError, PaymentRequiredError } from './errors.ts';
import { createGateway, listen, startGateway } from './gateway.ts';
import { ScriptedClient, startScripted, type ScriptedGateway } from './scripted-client.ts';

const client = new ScriptedClient();
let gateway: ScriptedGateway, openai: OpenAI;
beforeAll(async () => ({ gateway, openai } = await startScripted(client)));
afterAll(() => gateway.close());
beforeEach(() => client.reset());

describe('gateway: errors', () => {
  const ask = (body: Record<string, unknown>): Promise<unknown> =>
    openai.chat.completions.create({
      model: 'tiny-chat',
      messages: [{ role: 'user', content: 'x' }],
      ...body,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);

  it('400 with the validation summary for bad input, never reaching the network', async () => {
    await expect(ask({ max_tokens: 0 })).rejects.toMatchObject({
      status: 400,
      type: 'invalid_request_error',
      message: expect.stringMatching(/maxTokens/),
    });
    await expect(ask({ messages: [] })).rejects.toMatchObject({
      status: 400,
      message: expect.stringMatching(/messages must not be empty/),
    });
    await expect(ask({ messages: [{ role: 'tool', content: 'x', tool_call_id: 'a' }] })).rejects.toMatchObject({ status: 400 });
    await expect(ask({ tools: [{ type: 'function', function: { name: 'f' } }] })).rejects.toMatchObject({
      status: 400,
      message: expect.stringMatching(/"tools" is not supported/),
    });
    await expect(ask({ stop: ['x'.repeat(65)] })).rejects.toMatchObject({ status: 400 });
    await expect(ask({ temperature: 9 })).rejects.toMatchObject({ status: 400 });
    const raw = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(raw.status).toBe(400);
    expect(await raw.json()).toMatchObject({ error: { type: 'invalid_request_error', message: expect.stringMatching(/not JSON/) } });
    expect(client.calls).toEqual([]);
  });

  it('404 for a model nobody serves', async () => {
    await expect(ask({ model: 'gpt-4o' })).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
      message: expect.stringMatching(/tiny-chat/),
    });
  });

  it('maps network, key and engine failures to 503, 401 and 502', async () => {
    client.script = { error: new CoordinatorUnavailableError('http://c', 'connection refused') };
    await expect(ask({})).rejects.toMatchObject({ status: 503, code: 'coordinator_unavailable' });
    client.script = { error: new ApiKeyRefusedError(401, 'unknown API key') };
    await expect(ask({})).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    client.script = { error: new EngineError('boom') };
    await expect(ask({})).rejects.toMatchObject({ status: 502, code: 'engine' });
    client.script = { error: new TypeError('bug') };
    const log = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    await expect(ask({})).rejects.toMatchObject({ status: 500, code: 'internal_error' });
    expect(log).toHaveBeenCalledWith('gateway:', client.script.error);
    log.mockRestore();
  });

  it("answers 402 insufficient_quota when the gateway's key is short, with where to deposit, and the client does not retry", async () => {
    const deposit = { address: 'kQDe36hTeslL-nuYnFe5fftyRn6q7aNe5YCDEU5PTsYIw2ej', memo: 'spn-mjed5sdimtmw7ixki3ez' };
    client.script = {
      error: new PaymentRequiredError({
        error: { code: 'PAYMENT_REQUIRED', message: 'short' },
        payment: { required: '88000', available: '1000', shortfall: '87000', deposit },
      }),
    };
    const retrying = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 2 });
    const asked = retrying.chat.completions.create({ model: 'tiny-chat', messages: [{ role: 'user', content: 'hi' }] });
    await expect(asked).rejects.toMatchObject({ status: 402, code: 'insufficient_quota', type: 'insufficient_quota' });
    await expect(asked).rejects.toThrow(/short by 87000 nanoTON.*spn-mjed5sdimtmw7ixki3ez/);
    expect(client.calls).toHaveLength(1);
  });
});

describe('gateway edges', () => {
  const chat = JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: 'hi' }] });
  const result: JobResult = {
    kind: 'chat',
    text: 'ok',
    tokens: [1],
    finishReason: 'stop',
    usage: { promptTokens: 1, completionTokens: 1 },
  };

  it('refuses cross-site requests: another site’s Origin, Sec-Fetch-Site cross-site, and text/plain POSTs', async () => {
    client.script = { result };
    const cases: Array<[Record<string, string>, number]> = [
      [{ 'content-type': 'text/plain', origin: 'https://evil.example' }, 403],
      [{ 'content-type': 'text/plain' }, 415],
      [{ 'content-type': 'application/json', 'sec-fetch-site': 'cross-site' }, 403],
      [{ 'content-type': 'application/json', 'sec-fetch-site': 'same-site' }, 403],
      [{ 'content-type': 'application/json', origin: 'https://evil.example' }, 403],
      [{ 'content-type': 'application/x-www-form-urlencoded' }, 415],
    ];
    for (const [headers, status] of cases) {
      const res = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers, body: chat });
      expect(res.status, JSON.stringify(headers)).toBe(status);
      const body = (await res.json()) as { error: { type: string; message: string } };
      expect(body.error.type).toBe('invalid_request_error');
    }
    expect(client.calls).toHaveLength(0);
    // The page's own origin and non-browser clients pass.
    const own = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: gateway.url, 'sec-fetch-site': 'same-origin' },
      body: chat,
    });
    expect(own.status).toBe(200);
  });

  it('limits bodies with a 413', async () => {
    const small = await listen(createGateway({ client, maxBodyBytes: 1024 }), 0, '127.0.0.1');
    try {
      const big = JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: 'x'.repeat(4096) }] });
      const res = await fetch(`${small.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: big,
      });
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('body_too_large');
      expect(client.calls).toHaveLength(0);
    } finally {
      await small.close();
    }
  });

  it('requires its own key when given one, and refuses to listen beyond loopback without one', async () => {
    client.script = { result };
    const keyed = await listen(createGateway({ client, apiKeys: ['gw-secret-1'] }), 0, '127.0.0.1');
    try {
      for (const auth of [undefined, 'Bearer wrong', 'Bearer gw-secret-12', 'gw-secret-1']) {
        const res = await fetch(`${keyed.url}/v1/models`, { headers: auth === undefined ? {} : { authorization: auth } });
        expect(res.status, String(auth)).toBe(401);
        expect(((await res.json()) as { error: { type: string } }).error.type).toBe('authentication_error');
      }
      const api = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'gw-secret-1', maxRetries: 0 });
      expect((await api.models.list()).data.map((m) => m.id)).toContain('tiny-chat');
    } finally {
      await keyed.close();
    }
    await expect(startGateway({ port: 0, host: '0.0.0.0', coordinatorUrl: 'http://127.0.0.1:1', apiKey: 'k' })).rejects.toThrow(
      /SPINNERET_GATEWAY_KEY/,
    );
  });

  it('answers an unexpected failure with a typed 500 and keeps serving', async () => {
    const broken = createGateway({
      client: {
        models: () => {
          throw new TypeError('boom');
        },
        run: client.run.bind(client),
      },
    });
    const server = await listen(broken, 0, '127.0.0.1');
    try {
      const res = await fetch(`${server.url}/v1/models`);
      expect(res.status).toBe(500);
      expect(((await res.json()) as { error: { type: string } }).error.type).toBe('api_error');
      expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
