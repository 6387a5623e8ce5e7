/**
 * The operator's money routes on the real coordinator (PGlite): unmatched deposits listed and
 * given to the key their sender meant, the check budget funded from the commission, the books.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startPaidNetwork, type PaidNetwork } from '../../testing/billing.ts';

// Each test runs a coordinator, a chain and a database; on a busy 2-core machine that can take a while.
vi.setConfig({ testTimeout: 120_000 });

const TOKEN = 'operator-token-0123456789';

describe('operator routes', () => {
  let net: PaidNetwork;
  beforeAll(async () => {
    net = await startPaidNetwork('PGlite', { env: { SPINNERET_OPERATOR_TOKEN: TOKEN } });
  }, 60_000);
  afterAll(async () => net.close());

  const operator = (method: string, path: string, body?: unknown, token = TOKEN) =>
    fetch(`${net.url}/v1/operator${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('refuses anyone without the operator token', async () => {
    expect((await operator('GET', '/budget', undefined, 'operator-token-0123456780')).status).toBe(401);
    expect((await fetch(`${net.url}/v1/operator/books`)).status).toBe(401);
  });

  it('lists an unmatched deposit and gives it to the key its sender meant, once', async () => {
    const key = await net.key();
    await net.money.fund('for my key, thanks', 70_000n);
    const listed = (await (await operator('GET', '/deposits/unmatched')).json()) as {
      deposits: { depositKey: string; amount: string; comment: string }[];
    };
    expect(listed.deposits.map((d) => [d.amount, d.comment])).toEqual([['70000', 'for my key, thanks']]);
    const depositKey = listed.deposits[0]?.depositKey;
    expect((await operator('POST', '/deposits/assign', { depositKey, apiKeyId: 'no-such-key' })).status).toBe(404);
    expect((await operator('POST', '/deposits/assign', { depositKey, apiKeyId: key.id })).status).toBe(200);
    expect(await net.balance(key)).toEqual({ available: 70_000n, reserved: 0n });
    expect((await operator('POST', '/deposits/assign', { depositKey, apiKeyId: key.id })).status).toBe(200);
    expect(await net.balance(key)).toEqual({ available: 70_000n, reserved: 0n });
    expect(((await (await operator('GET', '/deposits/unmatched')).json()) as { deposits: unknown[] }).deposits).toEqual([]);
  });

  it('funds the check budget from the commission, and shows the books', async () => {
    const key = await net.key(1_000_000n);
    const worker = await net.worker();
    const jobId = String((await net.create(key, { inputTokens: 40, maxOutputTokens: 16 })).body['jobId']);
    await net.submit(key, jobId, 1);
    await net.finish(worker, { promptTokens: 40, completionTokens: 16 });
    await net.settled();
    // 88 000 nanoTON charged: 8 800 commission.
    expect((await operator('POST', '/budget', { fundingId: 'f1', amount: '8801' })).status).toBe(409);
    expect(await (await operator('POST', '/budget', { fundingId: 'f1', amount: '8800' })).json()).toEqual({
      fundingId: 'f1',
      replayed: false,
    });
    expect(await (await operator('POST', '/budget', { fundingId: 'f1', amount: '8800' })).json()).toEqual({
      fundingId: 'f1',
      replayed: true,
    });
    const budget = (await (await operator('GET', '/budget')).json()) as Record<string, unknown>;
    expect(budget).toMatchObject({ available: '8800', reserved: '0', limit: '10000000000' });
    const books = (await (await operator('GET', '/books')).json()) as { ok: boolean; totals: Record<string, string> };
    expect(books.ok).toBe(true);
    expect(books.totals).toMatchObject({ budget: '8800', unmatched: '0' });
  });
});
