import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { cors } from 'hono/cors';
import { requestId } from 'hono/request-id';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import type { PaymentRequired } from '../protocol/wire.ts';
import { bearer, bodyLimitOf, Problem, problemAnswer, readBody } from './http.ts';

const Body = v.strictObject({ n: v.number() });

/** A route group as the slices write them: every refusal thrown. */
function routes(): Hono {
  const app = new Hono();
  app.use('/open/*', cors({ origin: '*' }));
  app.get('/open/missing', () => {
    throw new Problem(404, 'NOT_FOUND', 'No thing 7.');
  });
  app.get('/quota', () => {
    throw new Problem(429, 'QUOTA', 'Too many; wait.', { retryAfterS: 3 });
  });
  app.get('/auth', () => {
    throw new Problem(401, 'UNAUTHORIZED', 'Send a key.', { headers: { 'WWW-Authenticate': 'Bearer' } });
  });
  app.get('/reason', () => {
    throw new Problem(401, 'INVALID_INPUT', 'Bad proof.', { details: { reason: 'bad-signature' } });
  });
  app.get('/pay', () => {
    const payment: PaymentRequired = {
      error: { code: 'PAYMENT_REQUIRED', message: 'Deposit first.' },
      payment: { required: '10', available: '0', shortfall: '10', deposit: { address: 'EQ', memo: 'm' } },
    };
    throw new Problem(402, 'PAYMENT_REQUIRED', 'Deposit first.', { payment });
  });
  app.post('/body', bodyLimitOf(32), async (c) => c.json(await readBody(c, Body)));
  return app;
}

/** As the coordinator mounts them: request ids, and one `onError` that renders every Problem. */
function mounted(): Hono {
  const app = new Hono();
  app.use(requestId());
  app.route('/v1', routes());
  app.onError((err, c) => (err instanceof HTTPException ? problemAnswer(err, c) : c.json({ error: { code: 'INTERNAL' } }, 500)));
  return app;
}

describe('one error idiom: a thrown Problem answers the one error body', () => {
  for (const [name, app, prefix] of [
    ['a route group on its own', routes(), ''],
    ['a route group mounted in the coordinator', mounted(), '/v1'],
  ] as const) {
    it(`answers ${name} with the exact body and its headers`, async () => {
      const missing = await app.request(`${prefix}/open/missing`, { headers: { origin: 'https://page.example' } });
      expect(missing.status).toBe(404);
      expect(missing.headers.get('content-type')).toBe('application/json');
      expect(await missing.text()).toBe('{"error":{"code":"NOT_FOUND","message":"No thing 7."}}');
      // Headers set before the throw (CORS) are kept.
      expect(missing.headers.get('access-control-allow-origin')).toBe('*');

      const quota = await app.request(`${prefix}/quota`);
      expect([quota.status, quota.headers.get('retry-after')]).toEqual([429, '3']);
      expect(await quota.text()).toBe('{"error":{"code":"QUOTA","message":"Too many; wait."}}');

      const auth = await app.request(`${prefix}/auth`);
      expect([auth.status, auth.headers.get('www-authenticate')]).toEqual([401, 'Bearer']);

      const reason = await app.request(`${prefix}/reason`);
      expect(await reason.text()).toBe('{"error":{"code":"INVALID_INPUT","message":"Bad proof.","reason":"bad-signature"}}');

      const pay = await app.request(`${prefix}/pay`);
      expect(pay.status).toBe(402);
      expect(await pay.json()).toMatchObject({ payment: { shortfall: '10' }, error: { code: 'PAYMENT_REQUIRED' } });
    });

    it(`reads a body or refuses it with a typed 400 or 413 (${name})`, async () => {
      const post = (body: string) =>
        app.request(`${prefix}/body`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      const ok = await post('{"n":1}');
      expect([ok.status, await ok.text()]).toEqual([200, '{"n":1}']);
      const notJson = await post('{');
      expect([notJson.status, await notJson.text()]).toEqual([400, '{"error":{"code":"BAD_MESSAGE","message":"The body is not JSON."}}']);
      const wrong = await post('{"n":"x"}');
      expect(wrong.status).toBe(400);
      expect(((await wrong.json()) as { error: { message: string } }).error.message).toMatch(/^Invalid body: /);
      const unsafe = await post('{"n":1,"x":"\\u0000"}');
      expect(unsafe.status).toBe(400);
      const big = await post(JSON.stringify({ n: 1, pad: 'x'.repeat(64) }));
      expect([big.status, await big.text()]).toEqual([
        413,
        '{"error":{"code":"BAD_MESSAGE","message":"The body exceeds 32 bytes, the limit."}}',
      ]);
    });
  }

  it('keeps the request id on a refusal of a mounted route', async () => {
    const res = await mounted().request('/v1/quota', { headers: { 'x-request-id': 'abc-1' } });
    expect(res.headers.get('x-request-id')).toBe('abc-1');
  });

  it('gives the channel the same refusal to send as a frame', () => {
    const p = new Problem(429, 'QUOTA', 'Wait.', { retryAfterS: 1 });
    expect([p.status, p.error, p.retryAfterS, p instanceof HTTPException]).toEqual([429, { code: 'QUOTA', message: 'Wait.' }, 1, true]);
  });

  it('reads a bearer token', () => {
    expect([bearer('Bearer abc'), bearer('bearer  x.y'), bearer('Basic abc'), bearer(undefined), bearer('Bearer ')]).toEqual([
      'abc',
      'x.y',
      null,
      null,
      null,
    ]);
  });
});
