/**
 * The wallet routes under `/v1`, called by the contributor page (another origin, hence CORS):
 *
 * - `POST /wallet/payload {deviceKey}` → `{payload, expiresAt}`: the `ton_proof` payload to
 *   ask the wallet to sign, bound to the device;
 * - `POST /wallet/proof {deviceKey, address, network, publicKey?, proof, scope?}` → `{session,
 *   expiresAt, wallet}`: verifies the proof and issues the token the worker sends in
 *   `hello.session` (`scope: "device"`, the default) or the fleet page's owner session
 *   (`scope: "owner"`, the only credential of the fleet routes); refusals are `{error: {code, message, reason}}` (400 malformed, 503 when
 *   the chain did not answer a key lookup, 401 else);
 * - `GET /contributors/:id` → `{id, wallet, firstSeen, lastSeen}`: public, read-only.
 */
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { WalletPayloadRequest, WalletProofRequest } from '../../protocol/page-requests.ts';
import { bodyLimitOf, clientAddress, Problem, readBody } from '../http.ts';
import type { Clock } from '../clock.ts';
import type { Store } from '../store/types.ts';
import { WalletAuthError } from './errors.ts';
import { PayloadLimitError, type ProofPayloads } from './proof-payloads.ts';
import { PublicKeyLookupError, type PublicKeyLookup } from './public-key-lookup.ts';
import { verifyTonProof } from './ton-proof.ts';
import type { WalletSessions } from './wallet-sessions.ts';

export interface WalletRouteDeps {
  payloads: ProofPayloads;
  sessions: WalletSessions;
  store: Store;
  clock: Clock;
  /**
   * Hosts a proof may name. An entry without a port also allows that host on any port (a
   * dev server or test app on 127.0.0.1:PORT).
   */
  walletDomains: readonly string[];
  /** Reads the keys of wallets the verifier does not know from the chain; without it they are refused. */
  publicKeys?: PublicKeyLookup;
}

/** True when `domain` (host[:port]) is listed, or its host is listed without a port. */
export function domainAllowed(domain: string, allowed: readonly string[]): boolean {
  if (allowed.includes(domain)) return true;
  const host = /^(.+):\d{1,5}$/.exec(domain)?.[1];
  return host !== undefined && allowed.includes(host);
}

export function walletRoutes(deps: WalletRouteDeps): Hono {
  const app = new Hono();
  const open = cors({ origin: '*', allowMethods: ['GET', 'POST'], allowHeaders: ['Content-Type'] });
  app.use('/wallet/*', open);
  app.use('/contributors/*', open);
  app.use('/wallet/*', bodyLimitOf(16 * 1024, 'The body exceeds 16 KiB.'));

  app.post('/wallet/payload', async (c) => {
    const { deviceKey } = await readBody(c, WalletPayloadRequest);
    try {
      return c.json(await deps.payloads.issuePayload(deviceKey, clientAddress(c)));
    } catch (err) {
      if (err instanceof PayloadLimitError) throw new Problem(429, 'QUOTA', err.message);
      throw err;
    }
  });

  app.post('/wallet/proof', async (c) => {
    const { deviceKey, scope, ...claim } = await readBody(c, WalletProofRequest);
    const domain = claim.proof.domain.value;
    try {
      const wallet = await verifyTonProof(claim, {
        // The verifier matches exactly; a listed host on another port passes as itself.
        allowedDomains: domainAllowed(domain, deps.walletDomains) ? [domain] : deps.walletDomains,
        payloads: deps.payloads,
        expectedDeviceKey: deviceKey,
        clock: deps.clock,
        ...(deps.publicKeys !== undefined && { publicKeys: deps.publicKeys }),
      });
      const raw = wallet.address.toRawString();
      const { token, expiresAt } = await deps.sessions.open(raw, deviceKey, scope);
      return c.json({ session: token, expiresAt, wallet: raw });
    } catch (err) {
      if (!(err instanceof WalletAuthError)) throw err;
      // A chain that did not answer is the coordinator's trouble, not the wallet's: 503, try again.
      const status = err.reason === 'malformed' ? 400 : err instanceof PublicKeyLookupError ? 503 : 401;
      throw new Problem(status, err.code, err.message, { details: { reason: err.reason } });
    }
  });

  app.get('/contributors/:id', async (c) => {
    const id = c.req.param('id');
    const record = await deps.store.getContributor(id);
    if (record === null) throw new Problem(404, 'NOT_FOUND', `No contributor ${id}.`);
    return c.json({ id: record.id, wallet: record.wallet, firstSeen: record.firstSeen, lastSeen: record.lastSeen });
  });

  return app;
}
