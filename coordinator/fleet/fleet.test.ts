/**
 * Kiosk and lab fleets through the real coordinator on PGlite, with the money side on the
 * in-process sandbox chain: an owner proves a wallet, issues enrollment tokens, devices enroll
 * and earn for the owner, the owner lists and controls them; revoked, expired and
 * wrong-scope tokens get their own errors; everything survives a coordinator restart.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Coordinator, createCoordinator } from '../app.ts';
import { startMoney, type Money } from '../earnings/local.ts';
import { openPgliteDb } from '../store/pglite.ts';
import { SqlStore } from '../store/sql-store.ts';
import { FakeClock, FakeWorker, TEST_ENVELOPE } from '../testing.ts';
import { testWallet } from '../wallets/test-wallet.ts';
import { WalletSessions } from '../wallets/wallet-sessions.ts';
import type { FleetView } from './fleet.ts';
import { ownerCall, proveOwner } from './testing.ts';

const OWNER = testWallet();
const OTHER = testWallet('another owner');
const HOUR = 3_600_000;
const logger = { info: () => {}, warn: () => {}, error: () => {} };

interface Net {
  store: SqlStore;
  clock: FakeClock;
  money: Money;
  coordinator: Coordinator;
  url: string;
  apiKey: string;
}
const opened: Net[] = [];
afterEach(async () => {
  for (const net of opened.splice(0)) {
    net.money.stop();
    await net.coordinator.close();
    await net.store.close();
  }
});

async function start(reuse?: Net): Promise<Net> {
  const store = reuse?.store ?? new SqlStore(await openPgliteDb());
  if (reuse === undefined) await store.migrate();
  const clock = reuse?.clock ?? new FakeClock(Date.now());
  const money =
    reuse?.money ?? (await startMoney({ store, threshold: 1n, windowMs: 0, payoutIntervalMs: HOUR, settleIntervalMs: HOUR, env: {} }));
  const coordinator = createCoordinator({
    store,
    clock,
    logger,
    onJobDone: money.onJobDone,
    publicRoutes: [money.routes],
    billing: money.billing,
  });
  const { url } = await coordinator.listen({ port: 0 });
  const { secret, depositMemo } = await coordinator.createApiKey('test', { jobsPerMinute: 1000, maxInFlight: 100 });
  await money.fund(depositMemo, 1_000_000_000n);
  const net = { store, clock, money, coordinator, url, apiKey: secret };
  if (reuse === undefined) opened.push(net);
  return net;
}

const post = (url: string, path: string, body: unknown): Promise<Response> =>
  fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function deviceKeyOf(worker: FakeWorker): Promise<string> {
  return Buffer.from(await crypto.subtle.exportKey('raw', worker.identity.publicKey)).toString('base64url');
}

async function issue(net: Net, owner: string, body: Record<string, unknown> = {}): Promise<{ id: string; secret: string }> {
  const res = await ownerCall(net.url, owner, 'POST', '/v1/enrollment-tokens', { label: 'Lab 3', ttlMs: HOUR, ...body });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; secret: string };
}

/** Enrolls `worker`'s key with `token`, signed with its identity key as the device does. */
async function enroll(net: Net, worker: FakeWorker, token: string, label?: string): Promise<Response> {
  const identityKey = await deviceKeyOf(worker);
  const signature = await worker.signEnrollment(token);
  return post(net.url, '/v1/enroll', { token, identityKey, signature, ...(label !== undefined && { label }) });
}

/** Connects (a new socket for `identity`, if given) and says hello with `session`. */
async function hello(net: Net, session: string, identity?: CryptoKeyPair): Promise<FakeWorker> {
  const worker = await FakeWorker.connect(net.url, identity);
  worker.send({ ...(await worker.signedHello()), session });
  worker.contributorId = (await worker.take('welcome')).contributorId;
  return worker;
}

async function walletOf(net: Net, contributorId: string): Promise<string | null> {
  return ((await (await fetch(`${net.url}/v1/contributors/${contributorId}`)).json()) as { wallet: string | null }).wallet;
}

async function fleet(net: Net, bearer: string): Promise<FleetView> {
  const res = await ownerCall(net.url, bearer, 'GET', '/v1/fleet');
  expect(res.status).toBe(200);
  return (await res.json()) as FleetView;
}

/** Runs one job on `worker` through the requester API. */
async function runJob(net: Net, worker: FakeWorker): Promise<string> {
  const api = (method: string, path: string, body?: unknown) =>
    fetch(net.url + path, {
      method,
      headers: { authorization: `Bearer ${net.apiKey}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  worker.capabilities(['tiny-decoder'], ['chat']);
  worker.lease(1);
  await worker.sync();
  const created = (await (await api('POST', '/v1/jobs', { model: 'tiny-decoder', kind: 'chat', billing: TEST_ENVELOPE })).json()) as {
    jobId: string;
  };
  expect((await api('PUT', `/v1/jobs/${created.jobId}/payload`, { attempt: 1, sealed: { enc: 'ZW5j', ct: 'cGF5bG9hZA' } })).status).toBe(
    202,
  );
  const job = await worker.take('job');
  worker.chunk(job, 0, true);
  await worker.take('ack');
  return created.jobId;
}

async function until<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('fleet', () => {
  it('an owner issues, lists and revokes tokens; an enrolled device earns for the owner without a wallet prompt', async () => {
    const net = await start();
    const owner = await proveOwner(net.url, OWNER, net.clock.now());
    expect((await post(net.url, '/v1/enrollment-tokens', { label: 'x', ttlMs: HOUR })).status).toBe(401);
    expect((await ownerCall(net.url, 'not-a-session', 'GET', '/v1/enrollment-tokens')).status).toBe(401);
    expect((await ownerCall(net.url, owner, 'POST', '/v1/enrollment-tokens', { label: '', ttlMs: 5 })).status).toBe(400);
    const token = await issue(net, owner, { maxDevices: 2 });

    const worker = await FakeWorker.connect(net.url);
    const enrolled = await enroll(net, worker, token.secret, 'pc-01');
    expect(enrolled.status).toBe(200);
    const body = (await enrolled.json()) as { session: string; wallet: string; label: string };
    expect(body).toMatchObject({ wallet: OWNER.address, label: 'pc-01' });
    worker.send({ ...(await worker.signedHello()), session: body.session });
    const { contributorId } = await worker.take('welcome');
    expect(await worker.none('error')).toBe(true);
    expect(await walletOf(net, contributorId)).toBe(OWNER.address);

    const listed = (await (await ownerCall(net.url, owner, 'GET', '/v1/enrollment-tokens')).json()) as {
      tokens: { id: string; devices: number; state: string }[];
    };
    expect(listed.tokens).toEqual([expect.objectContaining({ id: token.id, devices: 1, state: 'active' })]);
    expect(JSON.stringify(listed)).not.toContain(token.secret);

    // A job it runs is credited to the owner, and shows on the owner's fleet page.
    await runJob(net, worker);
    const summary = await until(
      'the credit',
      async () => net.money.earnings.summary(OWNER.address),
      (s) => s.balances.pending !== '0',
    );
    const view = await until(
      'the job in the fleet',
      () => fleet(net, owner),
      (v) => v.devices[0]?.jobsDone === 1,
    );
    expect(view.wallet).toBe(OWNER.address);
    expect(view.devices).toEqual([
      expect.objectContaining({ contributorId, label: 'pc-01', connected: true, jobsDone: 1, remotePaused: false }),
    ]);
    expect(view.devices[0]?.earned).toEqual({ pendingNano: summary.balances.pending, settledNano: '0', paidNano: '0' });

    // Settled, then paid on the sandbox chain: the device's share moves along with the wallet's.
    await net.money.earnings.settleDue();
    const settled = (await fleet(net, owner)).devices[0]?.earned;
    expect(settled).toEqual({ pendingNano: '0', settledNano: summary.balances.pending, paidNano: '0' });
    const paid = await until(
      'the payout',
      async () => {
        await net.money.earnings.runPayouts();
        return net.money.earnings.summary(OWNER.address);
      },
      (s) => s.balances.paid !== '0',
      20_000,
    );
    expect((await fleet(net, owner)).devices[0]?.earned).toEqual({ pendingNano: '0', settledNano: '0', paidNano: paid.balances.paid });

    // Revoking stops the device earning for the owner at once, and its next hello says why.
    const revoked = await ownerCall(net.url, owner, 'DELETE', `/v1/enrollment-tokens/${token.id}`);
    expect(await revoked.json()).toEqual({ revoked: true, devices: [contributorId] });
    expect((await worker.take('control')).text).toMatch(/revoked/);
    expect(await walletOf(net, contributorId)).toBeNull();
    expect((await ownerCall(net.url, owner, 'DELETE', `/v1/enrollment-tokens/${token.id}`)).status).toBe(404);
    const again = await hello(net, body.session, worker.identity);
    expect((await again.take('error')).error.message).toMatch(/revoked/);
    expect(await walletOf(net, contributorId)).toBeNull();
    expect((await fleet(net, owner)).devices).toEqual([]);
    again.close();
    worker.close();
  }, 60_000);

  it('takes only an owner session, which expires and is signed out; a device wallet session is no fleet credential', async () => {
    const net = await start();
    const device = await proveOwner(net.url, OWNER, net.clock.now(), undefined, 'device');
    for (const [method, path] of [
      ['GET', '/v1/fleet'],
      ['GET', '/v1/enrollment-tokens'],
      ['POST', '/v1/enrollment-tokens'],
      ['DELETE', '/v1/owner/session'],
    ] as const) {
      const res = await ownerCall(net.url, device, method, path, method === 'POST' ? { label: 'x', ttlMs: HOUR } : undefined);
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/owner session/);
    }
    // And an owner session is no hello credential, even from the device key it was proven with.
    const sessions = new WalletSessions({ clock: net.clock });
    const issued = sessions.issue(OWNER.address, 'device-key', 'owner');
    expect(sessions.find(issued.token, 'device-key')).toBeNull();
    expect(await sessions.owner(issued.token)).not.toBeNull();
    expect(await sessions.owner(sessions.issue(OWNER.address, 'device-key').token)).toBeNull();

    const owner = await proveOwner(net.url, OWNER, net.clock.now());
    expect((await ownerCall(net.url, owner, 'GET', '/v1/fleet')).status).toBe(200);
    net.clock.advance(8 * HOUR);
    expect((await ownerCall(net.url, owner, 'GET', '/v1/fleet')).status).toBe(401);

    const fresh = await proveOwner(net.url, OWNER, net.clock.now());
    expect((await ownerCall(net.url, fresh, 'GET', '/v1/enrollment-tokens')).status).toBe(200);
    const out = await ownerCall(net.url, fresh, 'DELETE', '/v1/owner/session');
    expect(out.status).toBe(200);
    expect(await out.json()).toEqual({ signedOut: true });
    for (const [method, path] of [
      ['GET', '/v1/fleet'],
      ['GET', '/v1/enrollment-tokens'],
      ['DELETE', '/v1/owner/session'],
    ] as const) {
      expect((await ownerCall(net.url, fresh, method, path)).status, `${method} ${path} after sign-out`).toBe(401);
    }
  });

  it('refuses revoked, expired, unknown and wrong-scope tokens, each with its own error', async () => {
    const net = await start();
    const owner = await proveOwner(net.url, OWNER, net.clock.now());
    const worker = await FakeWorker.connect(net.url);

    const revoked = await issue(net, owner);
    await ownerCall(net.url, owner, 'DELETE', `/v1/enrollment-tokens/${revoked.id}`);
    const r1 = await enroll(net, worker, revoked.secret);
    expect(r1.status).toBe(403);
    expect(await r1.json()).toMatchObject({ error: { reason: 'token-revoked', message: expect.stringMatching(/new one/) } });

    const expiring = await issue(net, owner, { ttlMs: 60_000 });
    net.clock.advance(60_000);
    const r2 = await enroll(net, worker, expiring.secret);
    expect(r2.status).toBe(403);
    expect(await r2.json()).toMatchObject({ error: { reason: 'token-expired' } });

    const r3 = await enroll(net, worker, 'no-such-token');
    expect(r3.status).toBe(401);
    expect(await r3.json()).toMatchObject({ error: { reason: 'token-unknown' } });

    // A read-only monitor token lists the fleet but enrolls nothing.
    const monitor = await issue(net, owner, { scope: 'monitor' });
    const r4 = await enroll(net, worker, monitor.secret);
    expect(r4.status).toBe(403);
    expect(await r4.json()).toMatchObject({ error: { reason: 'token-wrong-scope' } });
    expect(await fleet(net, monitor.secret)).toEqual({ wallet: OWNER.address, devices: [] });

    const single = await issue(net, owner);
    expect((await enroll(net, worker, single.secret)).status).toBe(200);
    const second = await FakeWorker.connect(net.url);
    const r5 = await enroll(net, second, single.secret);
    expect(r5.status).toBe(409);
    expect(await r5.json()).toMatchObject({ error: { reason: 'token-device-limit' } });
    expect((await post(net.url, '/v1/enroll', { token: single.secret, identityKey: 'short' })).status).toBe(400);
    worker.close();
    second.close();
  });

  it('controls only the owner’s devices, and re-sends a remote pause when the device reconnects', async () => {
    const net = await start();
    const owner = await proveOwner(net.url, OWNER, net.clock.now());
    const other = await proveOwner(net.url, OTHER, net.clock.now());
    const token = await issue(net, owner);
    const first = await FakeWorker.connect(net.url);
    const { session } = (await (await enroll(net, first, token.secret, 'kiosk-7')).json()) as { session: string };
    first.close();
    const worker = await hello(net, session, first.identity);
    const id = worker.contributorId;
    const control = (who: string, body: unknown, target = id) => ownerCall(net.url, who, 'POST', `/v1/fleet/${target}/control`, body);

    const foreign = await control(other, { action: 'pause' });
    expect(foreign.status).toBe(403);
    expect(await foreign.json()).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    expect((await control(owner, { action: 'pause' }, 'nobody-at-all')).status).toBe(404);
    expect((await fleet(net, other)).devices).toEqual([]);
    expect(await worker.none('control')).toBe(true);
    expect((await control(owner, { action: 'message', text: ' ' })).status).toBe(400);

    expect(await (await control(owner, { action: 'pause' })).json()).toEqual({ delivered: true });
    expect(await worker.take('control')).toMatchObject({ action: 'pause' });
    worker.send({ v: 1, type: 'status', visibility: 'visible', pausedBy: 'remote', label: 'kiosk-7' });
    await worker.sync();
    expect((await fleet(net, owner)).devices[0]).toMatchObject({
      label: 'kiosk-7',
      remotePaused: true,
      status: { visibility: 'visible', pausedBy: 'remote', pace: null },
    });

    // Disconnected: the pause is kept, and sent again after the next welcome.
    worker.close();
    await until(
      'the device to leave',
      () => fleet(net, owner),
      (v) => v.devices[0]?.connected === false,
    );
    expect(await (await control(owner, { action: 'message', text: 'Back at 9' })).json()).toEqual({ delivered: false });
    const back = await hello(net, session, first.identity);
    expect(await back.take('control')).toMatchObject({ action: 'pause' });
    expect(await back.take('control')).toMatchObject({ action: 'message', text: 'Back at 9' });

    await control(owner, { action: 'resume' });
    expect(await back.take('control')).toMatchObject({ action: 'resume' });
    back.close();
    const later = await hello(net, session, first.identity);
    expect(await later.take('control')).toMatchObject({ action: 'message' });
    expect(await later.none('control')).toBe(true);
    later.close();
  });

  it('keeps tokens, enrolled devices and remote pauses across a coordinator restart', async () => {
    const net = await start();
    const owner = await proveOwner(net.url, OWNER, net.clock.now());
    const token = await issue(net, owner);
    const device = await FakeWorker.connect(net.url);
    const { session } = (await (await enroll(net, device, token.secret)).json()) as { session: string };
    device.close();
    const first = await hello(net, session, device.identity);
    await ownerCall(net.url, owner, 'POST', `/v1/fleet/${first.contributorId}/control`, { action: 'pause' });
    first.close();
    await net.coordinator.close();

    const restarted = await start(net);
    try {
      // Wallet sessions live in memory: the owner proves again; the rest comes from the database.
      const again = await proveOwner(restarted.url, OWNER, restarted.clock.now());
      const listed = (await (await ownerCall(restarted.url, again, 'GET', '/v1/enrollment-tokens')).json()) as { tokens: { id: string }[] };
      expect(listed.tokens.map((t) => t.id)).toEqual([token.id]);
      const back = await hello(restarted, session, device.identity);
      expect(await back.none('error')).toBe(true);
      expect(await back.take('control')).toMatchObject({ action: 'pause' });
      expect(await walletOf(restarted, back.contributorId)).toBe(OWNER.address);
      expect((await fleet(restarted, again)).devices).toEqual([
        expect.objectContaining({ contributorId: back.contributorId, label: 'Lab 3' }),
      ]);
      back.close();
    } finally {
      await restarted.coordinator.close();
    }
  });

  it('enrolls a device only with its own signature: another party cannot enroll, pause or message a victim’s device', async () => {
    const net = await start();
    const attacker = await proveOwner(net.url, OTHER, net.clock.now());
    const owner = await proveOwner(net.url, OWNER, net.clock.now());
    const victim = await FakeWorker.connect(net.url);
    const victimKey = await deviceKeyOf(victim);
    const { secret: attackerToken } = await issue(net, attacker);
    // Without a signature, with a signature of another key, of another token: all refused.
    const stranger = await FakeWorker.connect(net.url);
    const attempts = [
      { token: attackerToken, identityKey: victimKey },
      { token: attackerToken, identityKey: victimKey, signature: await stranger.signEnrollment(attackerToken) },
      { token: attackerToken, identityKey: victimKey, signature: await victim.signEnrollment('another-token') },
      { token: attackerToken, identityKey: victimKey, signature: 'A'.repeat(86) },
    ];
    for (const body of attempts) {
      const res = await post(net.url, '/v1/enroll', body);
      expect(res.status, JSON.stringify(Object.keys(body))).toBe(body.signature === undefined ? 400 : 401);
    }
    // The victim's own kiosk enrollment stands; the attacker cannot take it over.
    const { secret: ownerToken } = await issue(net, owner);
    expect((await enroll(net, victim, ownerToken)).status).toBe(200);
    const hijack = await post(net.url, '/v1/enroll', {
      token: attackerToken,
      identityKey: victimKey,
      signature: await stranger.signEnrollment(attackerToken),
    });
    expect(hijack.status).toBe(401);
    expect((await fleet(net, attacker)).devices).toHaveLength(0);
    victim.close();
    stranger.close();
  }, 60_000);
});
