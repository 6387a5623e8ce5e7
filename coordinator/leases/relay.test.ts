import { afterEach, describe, expect, it } from 'vitest';
import { startCoordinator } from '../testing.ts';

type Started = Awaited<ReturnType<typeof startCoordinator>>;
const started: Started[] = [];
async function start(options: Parameters<typeof startCoordinator>[0] = {}): Promise<Started> {
  const c = await startCoordinator(options);
  started.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.close()));
});

describe('jobs over leases', () => {
  it('sends a worker no more jobs than the slots it offered', async () => {
    const c = await start();
    const worker = await c.worker({ slots: 2 });
    const jobs = [await c.createJob(), await c.createJob(), await c.createJob()];
    expect(jobs.map((j) => j.assignment?.contributorId ?? null)).toEqual([worker.contributorId, worker.contributorId, null]);
    for (const { jobId } of jobs.slice(0, 2)) expect((await c.submit(jobId, 1)).status).toBe(202);
    const sent = [await worker.take('job'), await worker.take('job')];
    expect(sent.map((j) => j.jobId).sort()).toEqual(
      jobs
        .slice(0, 2)
        .map((j) => j.jobId)
        .sort(),
    );
    expect(sent[0]).toMatchObject({ attempt: 1, model: 'm', kind: 'chat', sealed: { enc: 'ZW5j', ct: 'payload-for-attempt-1' } });
    expect(sent[0]?.deadline).toBe(c.clock.now() + 60_000);
    expect(c.coordinator.stats()).toMatchObject({ running: 2, queued: 1 });
    // Finishing a job does not reopen its slot; only a new lease does.
    worker.chunk(sent[0]!, 0, true);
    await worker.take('ack');
    const third = jobs[2]!.jobId;
    const events = await c.events(third);
    expect(await worker.none('job')).toBe(true);
    worker.lease(1);
    expect(await events.next()).toMatchObject({
      type: 'assigned',
      assignment: { attempt: 1, contributorId: worker.contributorId, hpkeKey: worker.hpkeKey },
    });
    await c.submit(third, 1);
    expect((await worker.take('job')).jobId).toBe(third);
  });

  it('gives a job whose model is not in memory yet the load allowance on top of its lease', async () => {
    const c = await start({ leaseMs: 10_000, loadAllowanceMs: 50_000, heartbeatMs: 600_000 });
    const cold = await c.worker({ slots: 1, modelState: 'cached' });
    const { jobId } = await c.createJob();
    await c.submit(jobId, 1);
    const job = await cold.take('job');
    expect(job.deadline).toBe(c.clock.now() + 60_000);
    // Within the allowance the lease holds; after it, the job is taken back.
    c.clock.advance(59_000);
    c.coordinator.sweep();
    expect(await cold.none('cancel')).toBe(true);
    c.clock.advance(2_000);
    c.coordinator.sweep();
    expect((await cold.take('cancel')).jobId).toBe(jobId);
  });

  it('counts assignments the worker has not seen yet against a repeated offer', async () => {
    const c = await start();
    const worker = await c.worker({ slots: 1 });
    const first = await c.createJob();
    expect(first.assignment?.contributorId).toBe(worker.contributorId);
    // No job frame went out yet (no payload), so the worker still believes it has one free slot.
    worker.lease(1);
    await worker.sync();
    expect((await c.createJob()).assignment).toBeNull();
    worker.lease(2);
    await worker.sync();
    expect(c.store.jobWrites.at(-1)).toMatchObject({ state: 'queued', contributorId: worker.contributorId });
    expect(c.coordinator.stats()).toMatchObject({ queued: 2, running: 0 });
  });

  it('streams chunks to the requester in order as they arrive, then ends after the final one', async () => {
    const c = await start();
    const worker = await c.worker({ slots: 1 });
    const { jobId } = await c.createJob();
    const events = await c.events(jobId);
    expect(await events.next()).toMatchObject({ type: 'assigned' });
    await c.submit(jobId, 1);
    const job = await worker.take('job');
    worker.chunk(job, 0);
    expect(await worker.take('ack')).toEqual({ v: 1, type: 'ack', jobId, seq: 0, status: 'accepted' });
    // The requester sees chunk 0 before chunk 1 was even sent.
    expect(await events.next()).toEqual({ type: 'chunk', attempt: 1, seq: 0, final: false, sealed: { ct: 'result0' } });
    worker.chunk(job, 1);
    expect(await events.next()).toMatchObject({ type: 'chunk', seq: 1, final: false });
    worker.chunk(job, 2, true);
    expect(await events.next()).toEqual({
      type: 'chunk',
      attempt: 1,
      seq: 2,
      final: true,
      sealed: { ct: 'result2' },
      usage: { promptTokens: 3, completionTokens: 5 },
    });
    expect(await events.next()).toBeNull();
    const record = await c.store.getJob(jobId);
    expect(record).toMatchObject({ state: 'done', promptTokens: 3, completionTokens: 5, contributorId: worker.contributorId, attempt: 1 });
    expect(record?.resultBytes).toBe(3 * Math.floor((7 * 3) / 4));
    expect(c.store.jobWrites.filter((r) => r.id === jobId).map((r) => r.state)).toEqual(['waiting', 'queued', 'leased', 'done']);
    // A late subscriber gets the whole stream replayed.
    const replay = await (await c.events(jobId)).rest();
    expect(replay.map((e) => e.type)).toEqual(['assigned', 'chunk', 'chunk', 'chunk']);
    expect(c.coordinator.stats().jobs.done).toBe(1);
  });

  it('acks a repeated chunk as duplicate, and refuses gaps, unknown jobs and other workers’ leases', async () => {
    const c = await start();
    const worker = await c.worker({ slots: 1 });
    const other = await c.worker();
    const { jobId } = await c.createJob();
    await c.submit(jobId, 1);
    const job = await worker.take('job');
    worker.chunk(job, 0);
    expect(await worker.take('ack')).toMatchObject({ seq: 0, status: 'accepted' });
    worker.chunk(job, 0);
    expect(await worker.take('ack')).toMatchObject({ seq: 0, status: 'duplicate' });
    worker.chunk(job, 5);
    expect(await worker.take('error')).toMatchObject({ error: { code: 'BAD_MESSAGE' }, fatal: false, jobId });
    worker.chunk({ jobId: 'nosuchjob', leaseId: job.leaseId }, 0);
    expect(await worker.take('error')).toMatchObject({ error: { code: 'NOT_FOUND' }, fatal: false });
    other.chunk(job, 1, true);
    expect(await other.take('error')).toMatchObject({ error: { code: 'UNAUTHORIZED' }, fatal: false });
    worker.chunk(job, 1, true);
    expect(await worker.take('ack')).toMatchObject({ seq: 1, status: 'accepted' });
    worker.chunk(job, 1, true);
    expect(await worker.take('ack')).toMatchObject({ seq: 1, status: 'duplicate' });
    const events = await (await c.events(jobId)).rest();
    expect(events.filter((e) => e.type === 'chunk').map((e) => (e.type === 'chunk' ? e.seq : -1))).toEqual([0, 1]);
    expect(c.coordinator.stats()).toMatchObject({ duplicates: 2, protocolErrors: { BAD_MESSAGE: 1, NOT_FOUND: 1, UNAUTHORIZED: 1 } });
    expect(c.errors).toEqual([]);
  });

  it('re-queues an expired lease to another worker; the requester re-seals and the late result is refused', async () => {
    const c = await start({ leaseMs: 10_000 });
    const slow = await c.worker({ slots: 1 });
    const { jobId } = await c.createJob();
    const events = await c.events(jobId);
    await c.submit(jobId, 1);
    const job = await slow.take('job');
    slow.chunk(job, 0);
    await slow.take('ack');
    const fast = await c.worker({ slots: 1 });
    c.clock.advance(10_001);
    c.coordinator.sweep();
    expect(await slow.take('cancel')).toMatchObject({ jobId, leaseId: job.leaseId, reason: 'lease expired' });
    expect(await events.next()).toMatchObject({ type: 'assigned', assignment: { attempt: 1 } });
    expect(await events.next()).toMatchObject({ type: 'chunk', attempt: 1, seq: 0 });
    expect(await events.next()).toEqual({
      type: 'assigned',
      assignment: { attempt: 2, contributorId: fast.contributorId, hpkeKey: fast.hpkeKey },
    });
    // The old payload was sealed for the old contributor: it is refused.
    expect((await c.submit(jobId, 1)).status).toBe(409);
    expect((await c.submit(jobId, 2)).status).toBe(202);
    const retry = await fast.take('job');
    expect(retry).toMatchObject({ jobId, attempt: 2, sealed: { ct: 'payload-for-attempt-2' } });
    slow.chunk(job, 1, true);
    expect(await slow.take('error')).toMatchObject({ error: { code: 'LEASE_EXPIRED' }, fatal: false, jobId });
    fast.chunk(retry, 0, true);
    expect(await events.next()).toMatchObject({ type: 'chunk', attempt: 2, seq: 0, final: true });
    expect(await events.next()).toBeNull();
    expect(await c.store.getJob(jobId)).toMatchObject({ state: 'done', attempt: 2, contributorId: fast.contributorId });
    // A late subscriber no longer sees the first attempt's chunks.
    const replay = await (await c.events(jobId)).rest();
    expect(replay.filter((e) => e.type === 'chunk')).toHaveLength(1);
    expect(c.coordinator.stats().leaseExpiries).toBe(1);
  });

  it('refuses a chunk that arrives after the deadline even before the sweep ran', async () => {
    const c = await start({ leaseMs: 5_000, sweepMs: 60_000 });
    const worker = await c.worker({ slots: 1 });
    const { jobId } = await c.createJob();
    await c.submit(jobId, 1);
    const job = await worker.take('job');
    c.clock.advance(5_001);
    worker.chunk(job, 0, true);
    expect(await worker.take('error')).toMatchObject({ error: { code: 'LEASE_EXPIRED' }, jobId });
    expect(await worker.take('cancel')).toMatchObject({ jobId });
    expect((await c.store.getJob(jobId))?.state).toBe('waiting');
  });

  it('re-queues the job of a worker that disconnects mid-job', async () => {
    const c = await start();
    const leaving = await c.worker({ slots: 1 });
    const { jobId } = await c.createJob();
    const events = await c.events(jobId);
    await c.submit(jobId, 1);
    await leaving.take('job');
    leaving.close();
    await leaving.closed;
    const staying = await c.worker({ slots: 1 });
    await events.next();
    expect(await events.next()).toMatchObject({ type: 'assigned', assignment: { attempt: 2, contributorId: staying.contributorId } });
    await c.submit(jobId, 2);
    expect(await staying.take('job')).toMatchObject({ jobId, attempt: 2 });
  });

  it('fails the job after maxAttempts with a message that says so', async () => {
    const c = await start({ leaseMs: 1_000, maxAttempts: 2 });
    const workers = [await c.worker({ slots: 1 }), await c.worker({ slots: 1 })];
    const { jobId } = await c.createJob();
    const events = await c.events(jobId);
    for (let attempt = 1; attempt <= 2; attempt++) {
      const assigned = await events.next();
      const holder = workers.find((w) => assigned?.type === 'assigned' && w.contributorId === assigned.assignment.contributorId);
      await c.submit(jobId, attempt);
      await holder!.take('job');
      c.clock.advance(1_001);
      c.coordinator.sweep();
    }
    const failed = await events.next();
    expect(failed).toMatchObject({ type: 'failed', error: { code: 'LEASE_EXPIRED' } });
    expect(failed?.type === 'failed' && failed.error.message).toMatch(/Attempt 2 of 2 failed.*no attempts are left/);
    expect(await events.next()).toBeNull();
    expect(await c.store.getJob(jobId)).toMatchObject({ state: 'failed', attempt: 2 });
    expect(c.coordinator.stats()).toMatchObject({ jobs: { failed: 1 }, leaseExpiries: 2, queued: 0, running: 0 });
  });

  it('retries a job the worker failed, but fails at once on invalid input', async () => {
    const c = await start();
    const a = await c.worker({ slots: 2 });
    const b = await c.worker({ slots: 1 });
    const first = await c.createJob();
    const holder = first.assignment?.contributorId === a.contributorId ? a : b;
    await c.submit(first.jobId, 1);
    const job = await holder.take('job');
    holder.send({ v: 1, type: 'fail', jobId: job.jobId, leaseId: job.leaseId, error: { code: 'DEVICE_LOST', message: 'gpu gone' } });
    expect(await holder.take('ack')).toMatchObject({ status: 'accepted' });
    holder.send({ v: 1, type: 'fail', jobId: job.jobId, leaseId: job.leaseId, error: { code: 'DEVICE_LOST', message: 'gpu gone' } });
    expect(await holder.take('ack')).toMatchObject({ status: 'duplicate' });
    expect((await c.store.getJob(first.jobId))?.attempt).toBe(2);

    const second = await c.createJob();
    const secondHolder = second.assignment?.contributorId === a.contributorId ? a : b;
    await c.submit(second.jobId, 1);
    const job2 = await secondHolder.take('job');
    secondHolder.send({
      v: 1,
      type: 'fail',
      jobId: job2.jobId,
      leaseId: job2.leaseId,
      error: { code: 'INVALID_INPUT', message: 'too long' },
    });
    const events = await (await c.events(second.jobId)).rest();
    expect(events.at(-1)).toEqual({ type: 'failed', error: { code: 'INVALID_INPUT', message: 'too long' } });
  });

  it('cancels a running job: the worker is told, the requester gets one `failed`', async () => {
    const c = await start();
    const worker = await c.worker({ slots: 1 });
    const { jobId } = await c.createJob();
    const events = await c.events(jobId);
    await c.submit(jobId, 1);
    const job = await worker.take('job');
    expect((await c.api('DELETE', `/v1/jobs/${jobId}`)).status).toBe(200);
    expect(await worker.take('cancel')).toMatchObject({ jobId, leaseId: job.leaseId, reason: 'cancelled by the requester' });
    worker.chunk(job, 0, true);
    expect(await worker.take('error')).toMatchObject({ error: { code: 'LEASE_EXPIRED' } });
    const rest = await events.rest();
    expect(rest.map((e) => e.type)).toEqual(['assigned', 'failed']);
    expect((await c.store.getJob(jobId))?.state).toBe('cancelled');
  });

  it('gives a reserved slot back when the requester never sends the payload', async () => {
    const c = await start({ leaseMs: 1_000 });
    const worker = await c.worker({ slots: 1 });
    const stalled = await c.createJob();
    expect(stalled.assignment).not.toBeNull();
    c.clock.advance(1_001);
    c.coordinator.sweep();
    expect((await c.store.getJob(stalled.jobId))?.state).toBe('failed');
    const next = await c.createJob();
    expect(next.assignment?.contributorId).toBe(worker.contributorId);
  });

  it('lists the models connected workers serve', async () => {
    const c = await start();
    const workers = [
      await c.worker({ models: ['m', 'e'], consent: ['chat', 'embed'] }),
      await c.worker({ models: ['m'], consent: ['chat'] }),
    ];
    for (const worker of workers) await worker.sync();
    const { models } = (await (await c.api('GET', '/v1/models')).json()) as {
      models: { id: string; kinds: string[]; contributors: number }[];
    };
    expect(models.sort((x, y) => x.id.localeCompare(y.id))).toEqual([
      { id: 'e', kinds: ['chat', 'embed'], contributors: 1, loaded: 1 },
      { id: 'm', kinds: ['chat', 'embed'], contributors: 2, loaded: 2 },
    ]);
  });
});
