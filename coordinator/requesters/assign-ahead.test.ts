/**
 * Assignments ahead of need on the requester channel (`assign` / `submit`, docs/protocol.md
 * "Sealing ahead of need") against the real coordinator and its workers' sockets: slots
 * handed out in batches, jobs sent with their payload in one message and answered once,
 * unused slots given back on expiry and when the channel closes, a job whose contributor left
 * placed again and sealed again, and typed refusals for hostile messages. The SDK using them:
 * assign-ahead-sdk.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startPaidNetwork } from '../../testing/billing.ts';
import { type Cleanups, RawChannel } from '../../testing/requesters.ts';
import { startCoordinator, TEST_ENVELOPE } from '../testing.ts';

// A paid network (PGlite, the model host, the sandbox chain) on a busy 2-core machine can take minutes.
vi.setConfig({ testTimeout: 300_000 });

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const assign = (ref: string, count: number, model = 'm') => ({ v: 1, type: 'assign', ref, model, kind: 'chat', count });
const job = (model = 'm') => ({ model, kind: 'chat', billing: TEST_ENVELOPE });
const sealedFor = (jobId: string) => ({ enc: 'ZW5j', ct: Buffer.from(`payload of ${jobId}`).toString('base64url') });
const submit = (ref: string, jobId: string, model = 'm') => ({
  v: 1,
  type: 'submit',
  ref,
  jobId,
  job: job(model),
  sealed: sealedFor(jobId),
});

describe('assignments ahead of need', () => {
  it('hands out slots in a batch; each job goes up with its payload in one message and is answered once', async () => {
    const net = await startCoordinator();
    cleanups.push(() => net.close());
    const workers = [await net.worker({ slots: 2 }), await net.worker({ slots: 2 })];
    const ch = await RawChannel.open(net.url, net.auth, cleanups);

    ch.send(assign('a', 8));
    const batch = await ch.next('assignments');
    // Four free slots, four assignments: two on each worker, its HPKE key to seal for, attempt 1, distinct job ids.
    expect(batch).toMatchObject({ ref: 'a', model: 'm', kind: 'chat', expiresInMs: 10_000 });
    expect(batch.assignments).toHaveLength(4);
    expect(new Set(batch.assignments.map((a) => a.jobId)).size).toBe(4);
    for (const w of workers) {
      const mine = batch.assignments.filter((a) => a.contributorId === w.contributorId);
      expect(mine).toHaveLength(2);
      for (const a of mine) expect(a).toMatchObject({ attempt: 1, hpkeKey: w.hpkeKey });
    }
    // The held slots are taken, also when a worker offers its slots again (it cannot see the holds):
    // a job over HTTP meanwhile waits for one.
    for (const w of workers) {
      w.lease(2);
      await w.sync();
    }
    expect((await net.createJob()).assignment).toBeNull();

    batch.assignments.forEach((a, i) => ch.send(submit(`s${i}`, a.jobId)));
    const frames = new Map<string, { jobId: string; leaseId: string; attempt: number; sealed: unknown }>();
    for (const w of workers) {
      for (let i = 0; i < 2; i++) {
        const frame = await w.take('job', 10_000);
        // The payload went to the contributor it was sealed for, as attempt 1.
        const a = batch.assignments.find((x) => x.jobId === frame.jobId);
        expect(a?.contributorId).toBe(w.contributorId);
        expect(frame).toMatchObject({ attempt: 1, sealed: sealedFor(frame.jobId) });
        frames.set(frame.jobId, frame);
        w.chunk(frame, 0, true);
      }
    }
    for (const a of batch.assignments) {
      await vi.waitFor(() => expect(ch.about(a.jobId, 'event')).toHaveLength(1), { timeout: 20_000 });
      // Only the result: the assignment it was sealed for is not sent again.
      expect(ch.about(a.jobId, 'event')[0]).toMatchObject({ event: { type: 'chunk', attempt: 1, final: true } });
    }
    expect(ch.messages.filter((m) => m.type === 'error')).toEqual([]);
    // The same job id again: refused by name, nothing run twice.
    const again = batch.assignments[0]?.jobId ?? '';
    ch.send(submit('dup', again));
    expect(await ch.next('error')).toMatchObject({ status: 409, ref: 'dup', jobId: again, error: { code: 'CONFLICT' } });
    for (const w of workers) expect(await w.none('job')).toBe(true);
    const stored = await Promise.all(batch.assignments.map((a) => net.store.getJob(a.jobId)));
    expect(stored.map((r) => r?.state)).toEqual(['done', 'done', 'done', 'done']);
  });

  it('refuses a second submit under one idempotency key (409 naming the job) and gives its assignment back', async () => {
    const net = await startCoordinator();
    cleanups.push(() => net.close());
    const worker = await net.worker({ slots: 2 });
    const ch = await RawChannel.open(net.url, net.auth, cleanups);
    ch.send(assign('a', 2));
    const [first, second] = (await ch.next('assignments')).assignments;
    const idempotencyKey = 'submit-once-0123456789';
    ch.send({ ...submit('s1', first?.jobId ?? ''), idempotencyKey });
    const frame = await worker.take('job', 10_000);
    expect(frame).toMatchObject({ jobId: first?.jobId, attempt: 1 });
    ch.send({ ...submit('s2', second?.jobId ?? ''), idempotencyKey });
    const refusal = await ch.next('error');
    expect(refusal).toMatchObject({ status: 409, ref: 's2', jobId: second?.jobId, error: { code: 'CONFLICT' } });
    expect(refusal.error.message).toContain(first?.jobId ?? 'x');
    expect(await worker.none('job')).toBe(true);
    expect(await net.store.getJob(second?.jobId ?? '')).toBeNull();
    // The refused submit's slot went back: a job over HTTP gets it at once.
    expect((await net.createJob()).assignment).toMatchObject({ contributorId: worker.contributorId });
  });

  it('gives an unused slot back when its assignment expires or the channel closes', async () => {
    const net = await startCoordinator({ assignAheadMs: 5_000 });
    cleanups.push(() => net.close());
    const worker = await net.worker({ slots: 1 });
    const ch = await RawChannel.open(net.url, net.auth, cleanups);
    ch.send(assign('a', 4));
    const [held] = (await ch.next('assignments')).assignments;
    expect(held).toMatchObject({ contributorId: worker.contributorId });
    const waiting = await net.createJob();
    expect(waiting.assignment).toBeNull();
    // Held ahead of need, on /metrics.
    const heldOnMetrics = async (): Promise<string | undefined> =>
      /^spinneret_assignments_held (\d+)$/m.exec(await (await fetch(`${net.url}/metrics`)).text())?.[1];
    expect(await heldOnMetrics()).toBe('1');

    // Expired unused: the slot goes to the job that waited for it.
    net.clock.advance(5_001);
    net.coordinator.sweep();
    await vi.waitFor(async () => expect((await net.store.getJob(waiting.jobId))?.state).toBe('queued'), { timeout: 10_000 });
    expect(await heldOnMetrics()).toBe('0');
    const second = await RawChannel.open(net.url, net.auth, cleanups);
    second.send(assign('b', 1));
    expect((await second.next('assignments')).assignments).toEqual([]); // the slot is the waiting job's now

    // A job on the expired assignment is not lost: it waits for attempt 2, to be sealed again.
    const late = held?.jobId ?? '';
    ch.send(submit('late', late));
    await vi.waitFor(async () => expect((await net.store.getJob(late))?.state).toBe('waiting'), { timeout: 10_000 });
    expect(await worker.none('job')).toBe(true); // the payload sealed for the lapsed assignment went nowhere
    expect(ch.about(late, 'error')).toEqual([]);
    ch.ws.close();
    second.ws.close();

    // A closed channel's unused assignments go back at once (no expiry needed).
    const worker2 = await net.worker({ slots: 1, models: ['n'] });
    const third = await RawChannel.open(net.url, net.auth, cleanups);
    third.send(assign('c', 1, 'n'));
    expect((await third.next('assignments')).assignments).toMatchObject([{ contributorId: worker2.contributorId }]);
    const blocked = await net.createJob('n');
    expect(blocked.assignment).toBeNull();
    third.ws.close();
    await vi.waitFor(async () => expect((await net.store.getJob(blocked.jobId))?.state).toBe('queued'), { timeout: 10_000 });
  });

  it('places a job whose contributor left before it arrived on another, sealed again, and runs it once', async () => {
    const net = await startCoordinator();
    cleanups.push(() => net.close());
    const gone = await net.worker({ slots: 1 });
    const ch = await RawChannel.open(net.url, net.auth, cleanups);
    ch.send(assign('a', 1));
    const [held] = (await ch.next('assignments')).assignments;
    const jobId = held?.jobId ?? '';
    expect(held).toMatchObject({ contributorId: gone.contributorId });
    gone.close();
    await gone.closed;
    const other = await net.worker({ slots: 1 });

    ch.send(submit('s', jobId));
    // The payload sealed for the one that left is dropped unopened; attempt 2 is assigned to the other.
    const assigned = await ch.next('event');
    expect(assigned).toMatchObject({ jobId, event: { type: 'assigned', assignment: { attempt: 2, contributorId: other.contributorId } } });
    ch.send({ v: 1, type: 'payload', jobId, attempt: 2, sealed: { enc: 'ZW5j', ct: 'cmVzZWFsZWQ' } });
    const frame = await other.take('job', 10_000);
    expect(frame).toMatchObject({ jobId, attempt: 2, sealed: { enc: 'ZW5j', ct: 'cmVzZWFsZWQ' } });
    other.chunk(frame, 0, true);
    expect(await ch.next('event')).toMatchObject({ jobId, event: { type: 'chunk', attempt: 2, final: true } });
    expect(await other.none('job')).toBe(true);
    expect((await net.store.getJob(jobId))?.state).toBe('done');
  });

  it('ends the assignments of a contributor that withdraws its slots: their jobs wait for attempt 2 on another, sealed again', async () => {
    const net = await startCoordinator();
    cleanups.push(() => net.close());
    const paused = await net.worker({ slots: 3 });
    const ch = await RawChannel.open(net.url, net.auth, cleanups);
    ch.send(assign('a', 3));
    const held = (await ch.next('assignments')).assignments;
    expect(held.map((a) => a.contributorId)).toEqual([paused.contributorId, paused.contributorId, paused.contributorId]);
    const [first, second, third] = held.map((a) => a.jobId) as [string, string, string];
    const heldOnMetrics = async (): Promise<string | undefined> =>
      /^spinneret_assignments_held (\d+)$/m.exec(await (await fetch(`${net.url}/metrics`)).text())?.[1];

    // One slot fewer (it cannot see the holds, so it offers what it can run): the newest
    // assignment lapses, the others still hold, and a job on the oldest runs there as attempt 1.
    paused.lease(2);
    await paused.sync();
    expect(await heldOnMetrics()).toBe('2');
    ch.send(submit('s1', first));
    const frame = await paused.take('job', 10_000);
    expect(frame).toMatchObject({ jobId: first, attempt: 1, sealed: sealedFor(first) });

    // No slots at all (paused, or its GPU gave up): every assignment on it lapses at once, and
    // the key's room for assignments is back.
    paused.lease(0);
    await paused.sync();
    expect(await heldOnMetrics()).toBe('0');
    ch.send(submit('s2', second));
    ch.send(submit('s3', third));
    for (const jobId of [second, third])
      await vi.waitFor(async () => expect((await net.store.getJob(jobId))?.state).toBe('waiting'), { timeout: 10_000 });
    // Their payloads, sealed for it, never reach it: it is not sent a job it would refuse.
    expect(await paused.none('job')).toBe(true);
    expect(ch.messages.filter((m) => m.type === 'error')).toEqual([]);

    // Another contributor gets attempt 2 of both, sealed again for it, and runs each once.
    const other = await net.worker({ slots: 2 });
    for (const jobId of [second, third]) {
      await vi.waitFor(() => expect(ch.about(jobId, 'event')).toHaveLength(1), { timeout: 20_000 });
      expect(ch.about(jobId, 'event')[0]).toMatchObject({
        event: { type: 'assigned', assignment: { attempt: 2, contributorId: other.contributorId } },
      });
      ch.send({
        v: 1,
        type: 'payload',
        jobId,
        attempt: 2,
        sealed: { enc: 'ZW5j', ct: Buffer.from(`again ${jobId}`).toString('base64url') },
      });
    }
    for (let i = 0; i < 2; i++) {
      const again = await other.take('job', 10_000);
      expect(again).toMatchObject({ attempt: 2, sealed: { ct: Buffer.from(`again ${again.jobId}`).toString('base64url') } });
      other.chunk(again, 0, true);
    }
    paused.chunk(frame, 0, true);
    for (const jobId of [first, second, third])
      await vi.waitFor(async () => expect((await net.store.getJob(jobId))?.state).toBe('done'), { timeout: 10_000 });
    expect(await paused.none('job')).toBe(true);
    expect(await other.none('job')).toBe(true);
  });

  it('refuses hostile messages with typed errors: wrong shape, another key’s assignment, too many asked', async () => {
    const net = await startCoordinator();
    cleanups.push(() => net.close());
    await net.worker({ slots: 4 });
    const small = await net.coordinator.createApiKey('two at a time', { maxInFlight: 2 });
    const ch = await RawChannel.open(net.url, `Bearer ${small.secret}`, cleanups);
    const stranger = await RawChannel.open(net.url, net.auth, cleanups);

    ch.send(assign('zero', 0));
    expect(await ch.next('error')).toMatchObject({ status: 400, ref: 'zero', error: { code: 'BAD_MESSAGE' } });
    ch.send(assign('many', 65));
    expect(await ch.next('error')).toMatchObject({ status: 400, ref: 'many', error: { code: 'BAD_MESSAGE' } });
    ch.send({ v: 1, type: 'submit', ref: 'nosealed', jobId: 'abc', job: job() });
    expect(await ch.next('error')).toMatchObject({ status: 400, ref: 'nosealed', error: { code: 'BAD_MESSAGE' } });
    ch.send(submit('unknown', 'never-handed-out'));
    expect(await ch.next('error')).toMatchObject({ status: 404, ref: 'unknown', jobId: 'never-handed-out', error: { code: 'NOT_FOUND' } });

    // Asked for more than the key may run: as many as its in-flight limit, then a 429.
    ch.send(assign('five', 5));
    const mine = (await ch.next('assignments')).assignments;
    expect(mine).toHaveLength(2);
    ch.send(assign('more', 1));
    expect(await ch.next('error')).toMatchObject({ status: 429, ref: 'more', error: { code: 'QUOTA' }, retryAfterS: 1 });
    // Nor on another channel of the key: the limit is the key's.
    const again = await RawChannel.open(net.url, `Bearer ${small.secret}`, cleanups);
    again.send(assign('other', 1));
    expect(await again.next('error')).toMatchObject({ status: 429, ref: 'other', error: { code: 'QUOTA' } });

    // Another key's assignment: refused as unknown, and still its owner's.
    const theirs = mine[0]?.jobId ?? '';
    stranger.send(submit('steal', theirs));
    expect(await stranger.next('error')).toMatchObject({ status: 404, ref: 'steal', jobId: theirs, error: { code: 'NOT_FOUND' } });
    // The wrong model for an assignment: refused, and the assignment is given back.
    ch.send(submit('wrong', theirs, 'other-model'));
    expect(await ch.next('error')).toMatchObject({ status: 409, ref: 'wrong', jobId: theirs, error: { code: 'CONFLICT' } });
    ch.send(submit('late', theirs));
    expect(await ch.next('error')).toMatchObject({ status: 409, ref: 'late', error: { code: 'CONFLICT' } });
    // The other one still works for its owner.
    const ok = mine[1]?.jobId ?? '';
    ch.send(submit('ok', ok));
    await vi.waitFor(async () => expect((await net.store.getJob(ok))?.state).toBe('leased'), { timeout: 10_000 });
    expect(ch.about(ok, 'error')).toEqual([]);
  });
});

describe('assignments ahead of need, billed', () => {
  it('reserves nothing for an assignment; a job on one without funds gets the HTTP route’s 402 and gives the slot back', async () => {
    const net = await startPaidNetwork('PGlite');
    cleanups.push(() => net.close());
    const worker = await net.worker({ slots: 1 });
    const poor = await net.key();
    const ch = await RawChannel.open(net.url, `Bearer ${poor.secret}`, cleanups);
    ch.send({ v: 1, type: 'assign', ref: 'a', model: 'tiny-decoder', kind: 'chat', count: 2 });
    const [held] = (await ch.next('assignments')).assignments;
    expect(held).toMatchObject({ contributorId: worker.contributorId });
    const jobId = held?.jobId ?? '';
    expect(await net.balance(poor)).toEqual({ available: 0n, reserved: 0n });

    const envelope = { inputTokens: 10, maxOutputTokens: 10 };
    const viaHttp = await net.create(poor, envelope);
    ch.send({
      v: 1,
      type: 'submit',
      ref: 's',
      jobId,
      job: { model: 'tiny-decoder', kind: 'chat', billing: envelope },
      sealed: sealedFor(jobId),
    });
    const refusal = await ch.next('error');
    expect(viaHttp.status).toBe(402);
    expect(refusal).toMatchObject({ status: 402, ref: 's', jobId, error: viaHttp.body['error'] as object });
    expect(refusal.payment).toEqual(viaHttp.body['payment']);
    // Nothing booked, no job, and the slot is free again.
    expect(await worker.none('job')).toBe(true);
    const booked = await net.store.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM job_billing WHERE job_id = $1`, [jobId]);
    expect(booked.rows[0]?.n).toBe(0);
    ch.send({ v: 1, type: 'assign', ref: 'b', model: 'tiny-decoder', kind: 'chat', count: 1 });
    expect((await ch.next('assignments')).assignments).toMatchObject([{ contributorId: worker.contributorId }]);
  });
});
