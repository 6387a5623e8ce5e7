/**
 * Owner sessions on every replica: two coordinators on one PostgreSQL schema, each with the
 * shared wallet sessions a replica runs with (operator/wiring.ts). An owner session proven on
 * one is accepted by the other's fleet routes; a sign-out on either is refused by both at
 * once; expiry is refused by both; a device wallet session is no fleet credential on either,
 * and an owner session no hello credential.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Coordinator, createCoordinator } from '../app.ts';
import { ownerCall, proveOwner } from '../fleet/testing.ts';
import { openStore } from '../store/index.ts';
import type { SqlStore } from '../store/sql-store.ts';
import { TEST_DATABASE_URL, uniqueSchema } from '../store/testing.ts';
import { FakeClock, FakeWorker } from '../testing.ts';
import { disposeStore } from '../../testing/verification.ts';
import { testWallet } from '../wallets/test-wallet.ts';
import { SharedWalletSessions } from './wallet-sessions.ts';

const OWNER = testWallet();
const HOUR = 3_600_000;
const logger = { info: () => {}, warn: () => {}, error: () => {} };
const schema = uniqueSchema('owners');
const clock = new FakeClock(Date.now());

interface Replica {
  store: SqlStore;
  sessions: SharedWalletSessions;
  coordinator: Coordinator;
  url: string;
}
const replicas: Replica[] = [];

async function replica(replicaId: string): Promise<Replica> {
  const store = await openStore({ databaseUrl: TEST_DATABASE_URL, schema, replicaId });
  const sessions = new SharedWalletSessions({
    db: store.db,
    clock,
    log: (message, err) => {
      throw new Error(`${message}: ${String(err)}`);
    },
  });
  const coordinator = createCoordinator({ store, clock, logger, walletSessions: sessions });
  const { url } = await coordinator.listen({ port: 0 });
  const r = { store, sessions, coordinator, url };
  replicas.push(r);
  return r;
}

let a: Replica;
let b: Replica;
beforeAll(async () => {
  a = await replica('a');
  b = await replica('b');
}, 60_000);
afterAll(async () => {
  for (const r of replicas) await r.coordinator.close();
  await replicas[1]?.store.close();
  if (replicas[0] !== undefined) await disposeStore(replicas[0].store);
});

const status = async (r: Replica, session: string, method: string, path: string, body?: unknown): Promise<number> =>
  (await ownerCall(r.url, session, method, path, body)).status;

/** A hello from `identity` to `r` carrying `session`: the wallet the contributor is recorded with, and whether the session was refused. */
async function helloWith(r: Replica, identity: CryptoKeyPair, session: string): Promise<{ wallet: string | null; refused: boolean }> {
  const worker = await FakeWorker.connect(r.url, identity);
  try {
    worker.send({ ...(await worker.signedHello()), session });
    const welcome = await worker.take('welcome', 10_000);
    // Frames are answered in order: the session's refusal, if any, came before this pong.
    await worker.sync();
    const refused = !(await worker.none('error', 1));
    return { wallet: (await r.store.getContributor(welcome.contributorId))?.wallet ?? null, refused };
  } finally {
    worker.close();
  }
}

describe('owner sessions across replicas', () => {
  it('accepts an owner session issued on one replica on the other, stores only its hash', { timeout: 60_000 }, async () => {
    const session = await proveOwner(a.url, OWNER, clock.now());
    expect(await status(b, session, 'GET', '/v1/fleet')).toBe(200);
    expect(await status(b, session, 'POST', '/v1/enrollment-tokens', { label: 'Lab', ttlMs: HOUR })).toBe(201);
    const listed = (await (await ownerCall(a.url, session, 'GET', '/v1/enrollment-tokens')).json()) as { tokens: { label: string }[] };
    expect(listed.tokens.map((t) => t.label)).toEqual(['Lab']);
    const stored = await a.store.db.query<{ token_hash: string; scope: string }>('SELECT token_hash, scope FROM wallet_sessions');
    expect(stored.rows.filter((r) => r.scope === 'owner')).toHaveLength(1);
    expect(stored.rows.some((r) => r.token_hash === session)).toBe(false);
  });

  it('refuses a session signed out on either replica on both at once', { timeout: 60_000 }, async () => {
    // Issued on A (which also holds it in memory), signed out on B: A refuses it on the next call.
    const fromA = await proveOwner(a.url, OWNER, clock.now());
    expect(await status(a, fromA, 'GET', '/v1/fleet')).toBe(200);
    const out = await ownerCall(b.url, fromA, 'DELETE', '/v1/owner/session');
    expect(out.status).toBe(200);
    expect(await out.json()).toEqual({ signedOut: true });
    for (const r of [a, b]) {
      expect(await status(r, fromA, 'GET', '/v1/fleet')).toBe(401);
      expect(await status(r, fromA, 'GET', '/v1/enrollment-tokens')).toBe(401);
      expect(await status(r, fromA, 'DELETE', '/v1/owner/session')).toBe(401);
    }
    // Issued on B, signed out on A.
    const fromB = await proveOwner(b.url, OWNER, clock.now());
    expect(await status(a, fromB, 'GET', '/v1/fleet')).toBe(200);
    expect(await status(a, fromB, 'DELETE', '/v1/owner/session')).toBe(200);
    for (const r of [a, b]) expect(await status(r, fromB, 'GET', '/v1/fleet')).toBe(401);
  });

  it('refuses an owner session past its 8 hours on both replicas', { timeout: 60_000 }, async () => {
    const session = await proveOwner(b.url, OWNER, clock.now());
    clock.advance(8 * HOUR - 1_000);
    for (const r of [a, b]) expect(await status(r, session, 'GET', '/v1/fleet')).toBe(200);
    clock.advance(1_000);
    for (const r of [a, b]) expect(await status(r, session, 'GET', '/v1/fleet')).toBe(401);
    expect(await a.sessions.forgetExpired()).toBeGreaterThanOrEqual(1);
    expect(await status(b, session, 'GET', '/v1/fleet')).toBe(401);
  });

  it('refuses a device wallet session on every fleet route of both replicas', { timeout: 60_000 }, async () => {
    const device = await proveOwner(a.url, OWNER, clock.now(), undefined, 'device');
    for (const r of [a, b]) {
      for (const [method, path] of [
        ['GET', '/v1/fleet'],
        ['GET', '/v1/enrollment-tokens'],
        ['POST', '/v1/enrollment-tokens'],
        ['DELETE', '/v1/owner/session'],
        ['POST', '/v1/fleet/c1/control'],
      ] as const) {
        const body = method === 'POST' ? (path.endsWith('control') ? { action: 'pause' } : { label: 'x', ttlMs: HOUR }) : undefined;
        expect(await status(r, device, method, path, body), `${method} ${path}`).toBe(401);
      }
    }
  });

  it(
    'binds a hello to the wallet with a device session from the other replica, never with an owner session',
    { timeout: 60_000 },
    async () => {
      const identity = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
      const key = Buffer.from(await crypto.subtle.exportKey('raw', identity.publicKey)).toString('base64url');
      // Both proven for this device's key: the owner session must fail the hello on both replicas, the device session pass.
      const owner = await proveOwner(a.url, OWNER, clock.now(), undefined, 'owner', key);
      const device = await proveOwner(a.url, OWNER, clock.now(), undefined, 'device', key);
      for (const r of [b, a]) expect(await helloWith(r, identity, owner)).toEqual({ wallet: null, refused: true });
      expect(await helloWith(b, identity, device)).toEqual({ wallet: OWNER.address, refused: false });
    },
  );
});
