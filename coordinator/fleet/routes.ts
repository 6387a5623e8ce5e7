/**
 * The fleet routes under `/v1`, called by the fleet page and kiosk pages (other origins,
 * hence CORS). The owner authenticates with an owner session from `POST /v1/wallet/proof`
 * (`scope: "owner"`; a device's wallet session is refused) as `Authorization: Bearer <session>`.
 *
 * - `DELETE /owner/session` → `{signedOut: true}`: signs the owner session out (owner);
 * - `POST /enrollment-tokens {label, ttlMs, scope?, maxDevices?}` → `{id, secret, expiresAt, ...}`
 *   (the secret is shown once); `GET /enrollment-tokens` → `{tokens}`;
 *   `DELETE /enrollment-tokens/:id` → `{revoked: true, devices}` (owner);
 * - `POST /enroll {token, identityKey, signature, label?}` → `{session, expiresAt, wallet, label, contributorId}`
 *   (a device; no owner session; `signature` is the identity key's Ed25519 signature of
 *   `enrollMessage(token, identityKey)`, as the hello proves the key): refusals are
 *   `{error: {code, message, reason}}`;
 * - `GET /fleet` → {@link FleetView} (owner, or a `monitor` token as Bearer);
 * - `POST /fleet/:contributorId/control {action, text?}` → `{delivered}` (owner).
 */
import { Address } from '@ton/core';
import { type Context, Hono } from 'hono';
import { cors } from 'hono/cors';
import { ControlRequest, EnrollRequest, IssueTokenRequest } from '../../protocol/page-requests.ts';
import { enrollMessage } from '../../protocol/wire.ts';
import { bearer, bodyLimitOf, Problem, readBody } from '../http.ts';
import type { Clock } from '../clock.ts';
import { WalletAuthError } from '../wallets/errors.ts';
import type { Enrollment, EnrollmentToken } from '../wallets/enrollment.ts';
import type { WalletSessions } from '../wallets/wallet-sessions.ts';
import type { EnrollmentSessions } from './enrollment-sessions.ts';
import type { Fleet } from './fleet.ts';

export interface FleetRouteDeps {
  enrollment: Enrollment;
  enrollmentSessions: EnrollmentSessions;
  walletSessions: WalletSessions;
  fleet: Fleet;
  clock: Clock;
}

/** A token as the owner sees it (never its secret). */
function tokenView(token: EnrollmentToken, now: number) {
  return {
    id: token.id,
    label: token.label,
    scope: token.scope,
    createdAt: token.createdAt,
    expiresAt: token.expiresAt,
    maxDevices: token.maxDevices,
    devices: token.devices.length,
    revokedAt: token.revokedAt,
    state: token.revokedAt !== null ? 'revoked' : now >= token.expiresAt ? 'expired' : 'active',
  };
}

/** Checks the Ed25519 signature over {@link enrollMessage}; false for any malformed key or signature. */
async function verifyEnrollment(token: string, identityKey: string, signature: string): Promise<boolean> {
  try {
    const key = await crypto.subtle.importKey('raw', new Uint8Array(Buffer.from(identityKey, 'base64url')), { name: 'Ed25519' }, false, [
      'verify',
    ]);
    return await crypto.subtle.verify(
      { name: 'Ed25519' },
      key,
      new Uint8Array(Buffer.from(signature, 'base64url')),
      new Uint8Array(enrollMessage(token, identityKey)),
    );
  } catch {
    return false;
  }
}

/** An enrollment token's refusal as the error to throw. */
function refused(err: WalletAuthError): Problem {
  const status = err.reason === 'token-unknown' ? 401 : err.reason === 'token-device-limit' ? 409 : 403;
  return new Problem(status, err.code, err.message, { details: { reason: err.reason } });
}

export function fleetRoutes(deps: FleetRouteDeps): Hono {
  const app = new Hono();
  const open = cors({ origin: '*', allowMethods: ['GET', 'POST', 'DELETE'], allowHeaders: ['Content-Type', 'Authorization'] });
  for (const path of ['/enrollment-tokens', '/enrollment-tokens/*', '/enroll', '/fleet', '/fleet/*', '/owner/session']) app.use(path, open);
  app.use('/enroll', bodyLimitOf(4 * 1024, 'The body exceeds 4 KiB.'));

  /** The owner's wallet from the Bearer wallet session, or throws a 401 that says what to do. */
  const owner = async (c: Context): Promise<string> => {
    const token = bearer(c.req.header('authorization'));
    const session = token === null ? null : await deps.walletSessions.owner(token);
    if (session === null) {
      throw new Problem(
        401,
        'UNAUTHORIZED',
        token === null
          ? 'Send the owner session from POST /v1/wallet/proof (scope "owner") as "Authorization: Bearer <session>".'
          : 'The owner session is unknown, expired or signed out (a device wallet session is not one). Prove the wallet on the fleet page again.',
      );
    }
    return session.wallet;
  };

  app.delete('/owner/session', async (c) => {
    await owner(c);
    await deps.walletSessions.signOut(bearer(c.req.header('authorization')) ?? '');
    return c.json({ signedOut: true });
  });

  app.post('/enrollment-tokens', async (c) => {
    const wallet = await owner(c);
    const { label, ttlMs, scope, maxDevices } = await readBody(c, IssueTokenRequest);
    const expiresAt = deps.clock.now() + ttlMs;
    const { id, secret } = await deps.enrollment.issueToken({ owner: Address.parseRaw(wallet), label, scope, expiresAt, maxDevices });
    return c.json({ id, secret, label, scope, maxDevices, expiresAt }, 201);
  });

  app.get('/enrollment-tokens', async (c) => {
    const wallet = await owner(c);
    const now = deps.clock.now();
    const tokens = await deps.enrollment.listByOwner(Address.parseRaw(wallet));
    return c.json({ tokens: tokens.map((t) => tokenView(t, now)) });
  });

  app.delete('/enrollment-tokens/:id', async (c) => {
    const wallet = await owner(c);
    const id = c.req.param('id');
    if (!(await deps.enrollment.revoke(id, Address.parseRaw(wallet)))) {
      throw new Problem(404, 'NOT_FOUND', `You have no enrollment token ${id} in force. List yours with GET /v1/enrollment-tokens.`);
    }
    const devices = await deps.enrollmentSessions.endToken(id, wallet);
    // Connected machines say so on their screen now; their next hello is refused the session.
    deps.fleet.tell(
      devices,
      'The owner revoked this machine’s enrollment: it no longer earns for them. Ask the owner for a new kiosk address.',
    );
    return c.json({ revoked: true, devices });
  });

  app.post('/enroll', async (c) => {
    const body = await readBody(c, EnrollRequest);
    const { token, identityKey, signature } = body;
    if (!(await verifyEnrollment(token, identityKey, signature))) {
      throw new Problem(
        401,
        'UNAUTHORIZED',
        'The signature does not prove this identity key: a device enrolls itself, signing the token with its own key.',
        { details: { reason: 'bad-signature' } },
      );
    }
    try {
      const redemption = await deps.enrollment.redeem(token, identityKey, 'contribute');
      const label = body.label ?? redemption.label;
      const issued = await deps.enrollmentSessions.issue({ tokenId: redemption.tokenId, deviceKey: identityKey, label });
      return c.json({ ...issued, wallet: redemption.owner.toRawString(), label });
    } catch (err) {
      if (err instanceof WalletAuthError) throw refused(err);
      throw err;
    }
  });

  app.get('/fleet', async (c) => {
    const token = bearer(c.req.header('authorization'));
    const session = token === null ? null : await deps.walletSessions.owner(token);
    if (session !== null) return c.json(await deps.fleet.list(session.wallet));
    if (token !== null) {
      // A read-only `monitor` token (a lab's status screen) also lists its owner's fleet.
      try {
        const monitor = await deps.enrollment.check(token, 'monitor');
        return c.json(await deps.fleet.list(monitor.owner));
      } catch (err) {
        if (!(err instanceof WalletAuthError)) throw err;
        if (err.reason !== 'token-unknown') throw refused(err);
      }
    }
    await owner(c); // throws the 401 that says what to do
    throw new Problem(401, 'UNAUTHORIZED', 'Prove the wallet again.');
  });

  app.post('/fleet/:contributorId/control', async (c) => {
    const wallet = await owner(c);
    const body = await readBody(c, ControlRequest);
    if (body.action === 'message' && (body.text ?? '').trim() === '') {
      throw new Problem(400, 'BAD_MESSAGE', 'A message needs some text to show on the device.');
    }
    const id = c.req.param('contributorId');
    const outcome = await deps.fleet.control(wallet, id, body);
    if (outcome.ok) return c.json({ delivered: outcome.delivered });
    throw outcome.reason === 'not-found'
      ? new Problem(404, 'NOT_FOUND', `No device ${id} is known. Check the id on your fleet page.`)
      : new Problem(403, 'UNAUTHORIZED', `Device ${id} does not earn for your wallet; only its owner can control it.`);
  });

  return app;
}
