import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { coordinatorsClosedAfterEach } from '../../testing/coordinators.ts';
import { MAX_MESSAGE_BYTES } from '../../protocol/wire.ts';
import { FakeWorker, newIdentity, TEST_ENVELOPE } from '../testing.ts';
import { contributorIdOf } from './hello.ts';

const start = coordinatorsClosedAfterEach();

describe('contributor sessions', () => {
  it('welcomes a worker that signs the challenge, with the id derived from its identity key', async () => {
    const c = await start({ heartbeatMs: 7_000 });
    const worker = await FakeWorker.connect(c.url);
    const hello = await worker.signedHello();
    worker.send(hello);
    const welcome = await worker.take('welcome');
    const expected = createHash('sha256')
      .update(Buffer.from(hello['identityKey'] as string, 'base64url'))
      .digest('base64url')
      .slice(0, 22);
    expect(welcome).toEqual({ v: 1, type: 'welcome', contributorId: expected, heartbeatMs: 7_000, maxMessageBytes: MAX_MESSAGE_BYTES });
    const record = await c.store.getContributor(expected);
    expect(record).toMatchObject({ identityKey: hello['identityKey'], hpkeKey: worker.hpkeKey });
    expect(c.coordinator.stats().contributors).toBe(1);
    worker.close();
  });

  it('closes the connection (1008) on a bad signature', async () => {
    const c = await start();
    const worker = await FakeWorker.connect(c.url);
    const hello = await worker.signedHello();
    const signature = Buffer.from(hello['signature'] as string, 'base64url');
    signature[0] = (signature[0] ?? 0) ^ 1;
    worker.send({ ...hello, signature: signature.toString('base64url') });
    expect(await worker.take('error')).toMatchObject({ error: { code: 'UNAUTHORIZED' }, fatal: true });
    expect((await worker.closed).code).toBe(1008);
    expect(c.coordinator.stats().protocolErrors['UNAUTHORIZED']).toBe(1);
  });

  it.each([
    ['the zero point', '00'.repeat(32)],
    ['the identity (u = 1)', '01' + '00'.repeat(31)],
    ['a point of order 8', 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'],
  ])('refuses a signed hello whose hpkeKey is %s, a low-order X25519 point anyone could open jobs sealed to', async (_name, hex) => {
    const c = await start();
    const worker = await FakeWorker.connect(c.url);
    // The device signs its low-order key properly: only the key itself is wrong.
    Object.assign(worker, { hpkeKey: Buffer.from(hex, 'hex').toString('base64url') });
    worker.send(await worker.signedHello());
    expect(await worker.take('error')).toMatchObject({ error: { code: 'UNAUTHORIZED', message: /X25519/ }, fatal: true });
    expect((await worker.closed).code).toBe(1008);
    expect(await c.store.getContributor(worker.contributorId || 'none')).toBeNull();
    expect(c.coordinator.stats().contributors).toBe(0);
  });

  it("refuses a device beyond its wallet's limit of connected devices", async () => {
    const c = await start({ maxDevicesPerWallet: 2 });
    const wallet = '0:' + 'ab'.repeat(32);
    const identities = await Promise.all([newIdentity(), newIdentity(), newIdentity()]);
    // The three devices earn for one wallet (as linked earlier).
    for (const identity of identities) {
      const identityKey = Buffer.from(await crypto.subtle.exportKey('raw', identity.publicKey)).toString('base64url');
      const id = contributorIdOf(identityKey);
      await c.store.upsertContributor({ id, identityKey, hpkeKey: 'x', wallet, firstSeen: 0, lastSeen: 0 });
    }
    const [a, b, third] = identities;
    if (a === undefined || b === undefined || third === undefined) throw new Error('no identities');
    await FakeWorker.ready(c.url, { identity: a });
    await FakeWorker.ready(c.url, { identity: b });
    const over = await FakeWorker.connect(c.url, third);
    over.send(await over.signedHello());
    expect(await over.take('error')).toMatchObject({ error: { code: 'QUOTA', message: /limit of 2/ }, fatal: true });
    expect((await over.closed).code).toBe(1008);
    expect(c.coordinator.stats().contributors).toBe(2);
  });

  it('refuses a hello replayed on another connection, and a second use of a nonce', async () => {
    const c = await start();
    const first = await FakeWorker.connect(c.url);
    const hello = await first.signedHello();
    first.send(hello);
    await first.take('welcome');
    const thief = await FakeWorker.connect(c.url);
    thief.send(hello);
    expect(await thief.take('error')).toMatchObject({ error: { code: 'UNAUTHORIZED' }, fatal: true });
    expect((await thief.closed).code).toBe(1008);
    expect(c.coordinator.stats().contributors).toBe(1);
    first.close();
  });

  it('refuses any message before hello, and a wrong protocol version', async () => {
    const c = await start();
    const early = await FakeWorker.connect(c.url);
    early.lease(1);
    expect(await early.take('error')).toMatchObject({ error: { code: 'UNAUTHORIZED' }, fatal: true });
    expect((await early.closed).code).toBe(1008);

    const old = await FakeWorker.connect(c.url);
    old.send({ ...(await old.signedHello()), v: 2 });
    expect(await old.take('error')).toMatchObject({ error: { code: 'PROTOCOL_VERSION' }, fatal: true });
    expect((await old.closed).code).toBe(1008);
  });

  it('refuses malformed, oversized, binary and unknown frames without closing a welcomed connection', async () => {
    const c = await start();
    const worker = await c.worker();
    worker.sendRaw('{not json');
    expect(await worker.take('error')).toMatchObject({ error: { code: 'BAD_MESSAGE' }, fatal: false });
    worker.sendRaw('x'.repeat(MAX_MESSAGE_BYTES + 1));
    expect(await worker.take('error')).toMatchObject({
      error: { code: 'BAD_MESSAGE', message: expect.stringContaining('exceeds') },
      fatal: false,
    });
    worker.ws.send(Buffer.from([1, 2, 3]));
    expect(await worker.take('error')).toMatchObject({ error: { code: 'BAD_MESSAGE' }, fatal: false });
    worker.send({ v: 1, type: 'teleport' });
    expect(await worker.take('error')).toMatchObject({ error: { code: 'BAD_MESSAGE' }, fatal: false });
    worker.send({ v: 1, type: 'ping', t: 42 });
    expect(await worker.take('pong')).toEqual({ v: 1, type: 'pong', t: 42 });
    expect(c.coordinator.stats().protocolErrors['BAD_MESSAGE']).toBe(4);
    // A wrong version is fatal even after the welcome.
    worker.send({ v: 9, type: 'ping', t: 1 });
    expect(await worker.take('error')).toMatchObject({ error: { code: 'PROTOCOL_VERSION' }, fatal: true });
    expect((await worker.closed).code).toBe(1008);
  });

  it('drops a worker silent for two heartbeat intervals and re-queues its job', async () => {
    const c = await start({ heartbeatMs: 1_000 });
    const quiet = await c.worker({ slots: 1 });
    const { jobId, assignment } = await c.createJob();
    expect(assignment?.contributorId).toBe(quiet.contributorId);
    const events = await c.events(jobId);
    expect(await events.next()).toMatchObject({ type: 'assigned', assignment: { attempt: 1 } });
    c.clock.advance(2_001);
    c.coordinator.sweep();
    expect((await quiet.closed).code).toBe(1006);
    const spare = await c.worker({ slots: 1 });
    expect(await events.next()).toMatchObject({ type: 'assigned', assignment: { attempt: 2, contributorId: spare.contributorId } });
  });

  it('replaces an older connection of the same identity; the old one’s job goes to someone else', async () => {
    const c = await start();
    const first = await c.worker({ slots: 1 });
    const { jobId } = await c.createJob();
    expect((await c.submit(jobId, 1)).status).toBe(202);
    const job = await first.take('job');
    const events = await c.events(jobId);
    const second = await c.worker({ identity: first.identity, slots: 1 });
    expect(second.contributorId).toBe(first.contributorId);
    expect((await first.closed).code).toBe(1000);
    expect(c.coordinator.stats().contributors).toBe(1);
    // The job does not go back to the same identity; a different worker takes attempt 2.
    const other = await c.worker({ slots: 1 });
    const assigned = [await events.next(), await events.next()];
    expect(assigned[1]).toMatchObject({ type: 'assigned', assignment: { attempt: 2, contributorId: other.contributorId } });
    // A result on the replaced connection's lease, sent again by the new one, is refused.
    second.chunk(job, 0, true);
    expect(await second.take('error')).toMatchObject({ error: { code: 'LEASE_EXPIRED' }, fatal: false, jobId });
  });

  it('tells workers to drain, refuses new connections meanwhile, and waits for the running job', async () => {
    const c = await start();
    const worker = await c.worker({ slots: 1 });
    const { jobId } = await c.createJob();
    await c.submit(jobId, 1);
    const job = await worker.take('job');
    const events = await c.events(jobId);
    let drained = false;
    const draining = c.coordinator.drain(5_000).then(() => (drained = true));
    expect(await worker.take('drain')).toMatchObject({ type: 'drain' });
    const late = await FakeWorker.connect(c.url);
    expect(await late.take('error')).toMatchObject({ error: { code: 'DRAINING' }, fatal: true });
    expect((await late.closed).code).toBe(1013);
    expect((await c.api('POST', '/v1/jobs', { model: 'm', kind: 'chat', billing: TEST_ENVELOPE })).status).toBe(503);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(drained).toBe(false);
    worker.chunk(job, 0, true);
    await draining;
    expect(drained).toBe(true);
    const all = [await events.next(), await events.next()];
    expect(all[1]).toMatchObject({ type: 'chunk', final: true });
    expect(await events.next()).toBeNull();
    expect((await worker.closed).code).toBe(1001);
    expect((await c.store.getJob(jobId))?.state).toBe('done');
  });
});
