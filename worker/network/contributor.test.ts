import { afterEach, describe, expect, it, vi } from 'vitest';
import { contributorOnFake } from '../../testing/fake-coordinator-socket.ts';
import type { ContributorOptions } from './contributor.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from './identity.ts';
import { FakeCoordinator, type FakeCoordinatorOptions } from './fake-coordinator.ts';
import { chat, embed, FakeRuntime } from './fake-runtime.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(options: { coordinator?: FakeCoordinatorOptions; contributor?: Partial<ContributorOptions> } = {}) {
  const coordinator = new FakeCoordinator(options.coordinator);
  const identity = await loadOrCreateIdentity(new MemoryKeyStore());
  const runtime = new FakeRuntime();
  const contributor = await contributorOnFake(
    coordinator,
    { runtime, identity, consent: ['chat', 'embed'], ...options.contributor },
    cleanups,
  );
  contributor.start();
  const session = await coordinator.session(0);
  await session.next('capabilities');
  await session.next('lease');
  return { coordinator, session, contributor, runtime, identity };
}

describe('Contributor', () => {
  it('answers the challenge with a verified hello, then offers capabilities and leases', async () => {
    const { session, contributor, identity } = await setup({ contributor: { slots: 2 } });
    expect(session.helloVerified).toBe(true);
    expect(session.hpkeKey).toBe(identity.hpkeKey);
    const hello = session.received.find((m) => m.type === 'hello');
    expect(hello).toMatchObject({ identityKey: identity.identityKey, client: { name: 'test', version: '0.0.0' } });
    const types = session.received.map((m) => m.type);
    expect(types.slice(0, 3)).toEqual(['hello', 'capabilities', 'lease']);
    expect(session.received[2]).toMatchObject({ slots: 2 });
    expect(session.received[1]).toMatchObject({
      adapter: { vendor: 'acme', architecture: 'rdna9', isFallbackAdapter: false, features: ['shader-f16'] },
      models: [
        { id: 'chat-model', state: 'loaded' },
        { id: 'embed-model', state: 'cached' },
      ],
      consent: ['chat', 'embed'],
      engineClass: 'onnx:webgpu+webllm:q4f32_1|acme/rdna9',
    });
    expect(contributor.status()).toMatchObject({ state: 'connected', contributorId: session.contributorId, running: 0 });
  });

  it('streams sealed deltas and a final result with usage, then leases the slot again', async () => {
    const { session, contributor } = await setup();
    const job = await session.sendJob(chat());
    const { deltas, result, usage } = await session.readResult(job);
    expect(deltas).toEqual(['Hel', 'lo', '!']);
    expect(result).toEqual({ kind: 'chat', text: 'Hello!', finishReason: 'stop', usage: { promptTokens: 4, completionTokens: 3 } });
    expect(usage).toEqual({ promptTokens: 4, completionTokens: 3 });
    const chunks = session.received.filter((m) => m.type === 'chunk');
    expect(chunks.map((c) => [c.seq, c.final, c.leaseId])).toEqual([
      [0, false, job.leaseId],
      [1, false, job.leaseId],
      [2, false, job.leaseId],
      [3, true, job.leaseId],
    ]);
    expect(await session.next('lease')).toMatchObject({ slots: 1 });
    expect(contributor.status()).toMatchObject({ jobsDone: 1, jobsFailed: 0, lastJobAt: expect.any(Number), state: 'connected' });
  });

  it('reports the models the runtime is loading in its status, as loads start and end', async () => {
    const { contributor, runtime } = await setup();
    const seen: string[][] = [];
    contributor.onStatus((s) => seen.push(s.loading));
    runtime.setLoading(['chat-model']);
    expect(contributor.status().loading).toEqual(['chat-model']);
    runtime.setLoading([]);
    expect(seen).toEqual([['chat-model'], []]);
  });

  it('sends its capabilities again when a job changed the models it holds, and only then', async () => {
    const { session, runtime } = await setup();
    await session.readResult(await session.sendJob(chat()));
    runtime.embedCached = false;
    await session.readResult(await session.sendJob(chat()));
    expect(await session.next('capabilities')).toMatchObject({
      models: [
        { id: 'chat-model', state: 'loaded' },
        { id: 'embed-model', state: 'available' },
      ],
    });
    // The first job changed nothing, so only the handshake's and this one were sent.
    expect(session.received.filter((m) => m.type === 'capabilities')).toHaveLength(2);
  });

  it('reports an engine error with its typed code and goes on', async () => {
    const { session, contributor } = await setup();
    const job = await session.sendJob(embed());
    const fail = await session.next('fail');
    expect(fail).toMatchObject({ jobId: job.jobId, leaseId: job.leaseId, error: { code: 'MODEL_TOO_LARGE' } });
    expect(fail.error.message).toContain('embed-model');
    await session.next('lease');
    expect(contributor.status()).toMatchObject({ jobsDone: 0, jobsFailed: 1 });
    expect(session.unread('chunk')).toEqual([]);
  });

  it('refuses a payload that does not open (OPEN_FAILED) and runs the next job', async () => {
    const { session, runtime, contributor } = await setup();
    const bad = await session.sendJob(chat(), { attempt: 2, sealedAttempt: 1 });
    const fail = await session.next('fail');
    expect(fail).toMatchObject({ jobId: bad.jobId, error: { code: 'OPEN_FAILED' } });
    expect(runtime.maxRunning).toBe(0);
    await session.next('lease');
    const good = await session.sendJob(chat(), { attempt: 2 });
    expect((await session.readResult(good)).result).toMatchObject({ text: 'Hello!' });
    expect(contributor.status()).toMatchObject({ jobsDone: 1, jobsFailed: 1 });
  });

  it('never runs more jobs than slots', async () => {
    const { session, runtime, contributor } = await setup();
    const first = await session.sendJob(chat('hold'));
    const second = await session.sendJob(chat('hold'));
    expect(await session.next('fail')).toMatchObject({ jobId: second.jobId, error: { code: 'QUOTA' } });
    expect(await session.next('lease')).toMatchObject({ slots: 0 });
    await vi.waitFor(() => expect(runtime.running).toBe(1));
    runtime.release();
    await session.readResult(first);
    expect(await session.next('lease')).toMatchObject({ slots: 1 });
    expect(runtime.maxRunning).toBe(1);

    contributor.setSlots(2);
    expect(await session.next('lease')).toMatchObject({ slots: 2 });
    const jobs = [await session.sendJob(chat('hold')), await session.sendJob(chat('hold'))];
    await vi.waitFor(() => expect(runtime.running).toBe(2));
    expect(contributor.status()).toMatchObject({ state: 'working', running: 2 });
    runtime.release();
    for (const job of jobs) expect((await session.readResult(job)).result).toMatchObject({ text: 'Hello!' });
    expect(runtime.maxRunning).toBe(2);
    expect(session.unread('fail')).toEqual([]);
  });

  it('aborts a cancelled job and sends nothing more for it', async () => {
    const { session, runtime, contributor } = await setup();
    const job = await session.sendJob(chat('hold'));
    for (let i = 0; i < 3; i++) await session.next('chunk', (m) => m.jobId === job.jobId);
    session.send({ v: 1, type: 'cancel', jobId: job.jobId, leaseId: job.leaseId, reason: 'requester cancelled' });
    expect(await session.next('lease')).toMatchObject({ slots: 1 });
    expect(runtime.aborted).toHaveLength(1);
    runtime.release();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(session.unread('chunk')).toEqual([]);
    expect(session.unread('fail')).toEqual([]);
    expect(contributor.status()).toMatchObject({ jobsStopped: 1, running: 0 });
  });

  it('ignores a cancel for another lease of the job', async () => {
    const { session, runtime } = await setup();
    const job = await session.sendJob(chat('hold'));
    session.send({ v: 1, type: 'cancel', jobId: job.jobId, leaseId: 'an-old-lease', reason: 'lease expired' });
    await vi.waitFor(() => expect(runtime.running).toBe(1));
    runtime.release();
    expect((await session.readResult(job)).result).toMatchObject({ text: 'Hello!' });
    expect(runtime.aborted).toEqual([]);
  });

  it("aborts a job at its deadline, read on the coordinator's clock", async () => {
    const skew = 3_600_000;
    const { session, runtime, contributor } = await setup({ coordinator: { clockSkewMs: skew } });
    const started = Date.now();
    const job = await session.sendJob(chat('hold'), { deadline: started + skew + 300 });
    await session.next('lease');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(runtime.aborted).toHaveLength(1);
    expect(session.unread('chunk').filter((m) => m.type === 'chunk' && m.final)).toEqual([]);
    expect(session.unread('fail')).toEqual([]);
    expect(contributor.status().jobsStopped).toBe(1);
    expect(job.jobId).toBe('job1');
  });

  it('tells the coordinator about new consent and refuses kinds without it', async () => {
    const { session, contributor } = await setup();
    contributor.setConsent(['chat']);
    expect(await session.next('capabilities')).toMatchObject({ consent: ['chat'] });
    await session.next('lease');
    const job = await session.sendJob(embed());
    expect(await session.next('fail')).toMatchObject({ jobId: job.jobId, error: { code: 'CONFLICT' } });
  });

  it('fails a result too large for one message with QUOTA and goes on', async () => {
    const { session, contributor } = await setup({ coordinator: { maxMessageBytes: 4000 } });
    const big = await session.sendJob(chat('big'));
    expect(await session.next('fail')).toMatchObject({ jobId: big.jobId, error: { code: 'QUOTA' } });
    expect(session.received.filter((m) => m.type === 'chunk').map((m) => m.seq)).toEqual([0, 1, 2]);
    await session.next('lease');
    expect((await session.readResult(await session.sendJob(chat()))).result).toMatchObject({ text: 'Hello!' });
    expect(contributor.status()).toMatchObject({ jobsDone: 1, jobsFailed: 1 });
  });

  it('announces new capabilities on request', async () => {
    const { session, contributor } = await setup();
    contributor.announce({ bench: { gflops: 1234, gbps: 321 } });
    expect(await session.next('capabilities')).toMatchObject({ bench: { gflops: 1234, gbps: 321 }, consent: ['chat', 'embed'] });
    expect(await session.next('lease')).toMatchObject({ slots: 1 });
  });

  it('pings every half heartbeat', async () => {
    const { session } = await setup({ coordinator: { heartbeatMs: 100 } });
    await new Promise((resolve) => setTimeout(resolve, 180));
    const pings = session.received.filter((m) => m.type === 'ping');
    expect(pings.length).toBeGreaterThanOrEqual(2);
    expect(pings.length).toBeLessThanOrEqual(4);
  });
});
