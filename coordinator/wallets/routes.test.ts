import { afterEach, describe, expect, it } from 'vitest';
import { FakeWorker, startCoordinator } from '../testing.ts';
import { domainAllowed } from './routes.ts';
import { proofBody, testWallet } from './test-wallet.ts';

type Started = Awaited<ReturnType<typeof startCoordinator>>;
let started: Started | null = null;
afterEach(async () => {
  await started?.coordinator.close();
  started = null;
});

const wallet = testWallet();
const post = (url: string, path: string, body: unknown): Promise<Response> =>
  fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function deviceKeyOf(worker: FakeWorker): Promise<string> {
  return Buffer.from(await crypto.subtle.exportKey('raw', worker.identity.publicKey)).toString('base64url');
}

/** Asks for a payload for `deviceKey` and sends a proof signed for `domain`. */
async function prove(s: Started, deviceKey: string, domain = '127.0.0.1:5173', tamper = false): Promise<Response> {
  const issued = (await (await post(s.url, '/v1/wallet/payload', { deviceKey })).json()) as { payload: string; expiresAt: number };
  const timestamp = Math.floor(s.clock.now() / 1000);
  const signedDomain = tamper ? 'other.example' : domain;
  return post(s.url, '/v1/wallet/proof', proofBody(wallet, { deviceKey, payload: issued.payload, domain, timestamp, signedDomain }));
}

describe('wallet routes', () => {
  it('a proven wallet is recorded for the contributor whose hello carries the session', async () => {
    started = await startCoordinator();
    const s = started;
    const worker = await FakeWorker.connect(s.url);
    const res = await prove(s, await deviceKeyOf(worker));
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    const { session, wallet: raw } = (await res.json()) as { session: string; wallet: string };
    expect(raw).toBe(wallet.address);
    worker.send({ ...(await worker.signedHello()), session });
    const { contributorId } = await worker.take('welcome');
    expect(await worker.none('error')).toBe(true);
    const view = (await (await fetch(`${s.url}/v1/contributors/${contributorId}`)).json()) as { wallet: string | null };
    expect(view.wallet).toBe(wallet.address);
  });

  it('a session of another device is ignored with a non-fatal error', async () => {
    started = await startCoordinator();
    const s = started;
    const other = await FakeWorker.connect(s.url);
    const { session } = (await (await prove(s, await deviceKeyOf(other))).json()) as { session: string };
    const worker = await FakeWorker.connect(s.url);
    worker.send({ ...(await worker.signedHello()), session });
    const { contributorId } = await worker.take('welcome');
    const error = await worker.take('error');
    expect(error).toMatchObject({ fatal: false, error: { code: 'UNAUTHORIZED' } });
    const view = (await (await fetch(`${s.url}/v1/contributors/${contributorId}`)).json()) as { wallet: string | null };
    expect(view.wallet).toBeNull();
  });

  it('refuses proofs for another domain, bad signatures and malformed bodies with typed errors', async () => {
    started = await startCoordinator();
    const s = started;
    const deviceKey = Buffer.alloc(32, 7).toString('base64url');
    const foreign = await prove(s, deviceKey, 'evil.example');
    expect(foreign.status).toBe(401);
    expect(await foreign.json()).toMatchObject({ error: { code: 'INVALID_INPUT', reason: 'domain-not-allowed' } });
    const tampered = await prove(s, deviceKey, 'localhost', true);
    expect(await tampered.json()).toMatchObject({ error: { reason: 'signature-invalid' } });
    const malformed = await post(s.url, '/v1/wallet/payload', { deviceKey: 'short' });
    expect(malformed.status).toBe(400);
    expect((await fetch(`${s.url}/v1/contributors/nobody`)).status).toBe(404);
  });

  it('matches listed hosts on any port, and only those', () => {
    expect(domainAllowed('127.0.0.1:4173', ['127.0.0.1'])).toBe(true);
    expect(domainAllowed('spinneret.example', ['spinneret.example'])).toBe(true);
    expect(domainAllowed('evil.example:80', ['127.0.0.1'])).toBe(false);
    expect(domainAllowed('app.example:8443', ['app.example:443'])).toBe(false);
  });
});
