import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { problem } from '../coordinator/http.ts';
import { defaultPrices } from '../coordinator/ledger/prices.ts';
import { priceRoutes } from '../coordinator/prices/routes.ts';
import { CoordinatorClient, CoordinatorError } from './api.ts';

/** A client whose requests are answered by `app` mounted under `/v1`, as the coordinator mounts its route groups. */
function clientOf(app: Hono): CoordinatorClient {
  const root = new Hono().route('/v1', app);
  return new CoordinatorClient('http://coordinator.test/', (input, init) => Promise.resolve(root.fetch(new Request(input, init))));
}

const failure = (promise: Promise<unknown>): Promise<CoordinatorError> =>
  promise.then(
    () => expect.fail('the request succeeded'),
    (err: unknown) => {
      expect(err).toBeInstanceOf(CoordinatorError);
      return err as CoordinatorError;
    },
  );

describe('CoordinatorClient', () => {
  it("reads the coordinator's real price list, amounts as the ledger's nanoTON", async () => {
    const prices = await clientOf(priceRoutes()).prices();
    const list = defaultPrices();
    expect(prices.commissionBps).toBe(list.commissionBps);
    expect(Object.keys(prices.models).sort()).toEqual(Object.keys(list.models).sort());
    for (const [id, p] of Object.entries(list.models)) {
      const got = prices.models[id];
      if (p.kind === 'chat')
        expect(got).toEqual({ kind: 'chat', promptPer1k: String(p.promptPer1k), completionPer1k: String(p.completionPer1k) });
      else expect(got).toEqual({ kind: 'embed', inputPer1k: String(p.inputPer1k) });
    }
  });

  it("turns a refusal in the coordinator's problem body into its status, reason and message", async () => {
    const app = new Hono()
      .get('/earnings/:wallet', (c) => problem(c, 404, 'NOT_FOUND', `No wallet ${c.req.param('wallet')}.`))
      .post('/enroll', (c) => c.json({ error: { code: 'UNAUTHORIZED', message: 'The token has expired.', reason: 'token-expired' } }, 403));
    const client = clientOf(app);
    const missing = await failure(client.earnings('0:ab/cd'));
    expect(missing).toMatchObject({ status: 404, reason: 'http-404', message: 'No wallet 0:ab/cd.' });
    const expired = await failure(client.enroll({ token: 't', identityKey: 'k', signature: 's' }));
    expect(expired).toMatchObject({ status: 403, reason: 'token-expired', message: 'The token has expired.' });
  });

  it('says the status in words when the refusal has no problem body', async () => {
    const app = new Hono().get('/prices', (c) => c.html('<h1>Bad gateway</h1>', 502));
    const err = await failure(clientOf(app).prices());
    expect(err).toMatchObject({ status: 502, reason: 'http-502' });
    expect(err.message).toContain('502');
  });

  it('refuses an answer that is not the shape the protocol gives it', async () => {
    const app = new Hono().get('/earnings/:wallet', (c) =>
      c.json({ wallet: 'w', balances: { pending: 1, settled: '0', inFlight: '0', paid: '0' }, payouts: [] }),
    );
    const err = await failure(clientOf(app).earnings('w'));
    expect(err).toMatchObject({ status: 200, reason: 'malformed-answer' });
    expect(err.message).toContain('/v1/earnings/w');
  });

  it('says unreachable when no answer comes', async () => {
    const client = new CoordinatorClient('http://127.0.0.1:9', () => Promise.reject(new TypeError('Failed to fetch')));
    expect(await failure(client.network())).toMatchObject({ status: null, reason: 'unreachable', message: 'Failed to fetch' });
  });

  it('sends the session as Bearer and the body as JSON', async () => {
    const seen: { auth?: string | undefined; body?: unknown } = {};
    const app = new Hono().post('/fleet/:id/control', async (c) => {
      seen.auth = c.req.header('authorization');
      seen.body = await c.req.json();
      return c.json({ delivered: true, extra: 'dropped' });
    });
    const answer = await clientOf(app).control('s3cret', 'dev 1', { action: 'message', text: 'hi' });
    expect(answer).toEqual({ delivered: true });
    expect(seen).toEqual({ auth: 'Bearer s3cret', body: { action: 'message', text: 'hi' } });
  });
});
