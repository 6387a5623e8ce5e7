import { afterEach, describe, expect, it, vi } from 'vitest';
import { contributorOnFake } from '../../testing/fake-coordinator-socket.ts';
import type { ContributorOptions, ContributorState, ContributorStatus } from './contributor.ts';
import { FakeCoordinator, type FakeCoordinatorOptions, type FakeSession } from './fake-coordinator.ts';
import { chat, FakeRuntime } from './fake-runtime.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Starts a contributor against a fake coordinator; backoff delays are exactly 40, 80, 160… ms (random = 1). */
async function setup(options: { coordinator?: FakeCoordinatorOptions; contributor?: Partial<ContributorOptions> } = {}) {
  const coordinator = new FakeCoordinator(options.coordinator);
  const runtime = new FakeRuntime();
  const contributor = await contributorOnFake(
    coordinator,
    { runtime, consent: ['chat'], random: () => 1, backoff: { baseMs: 40, capMs: 1000, stableMs: 60_000 }, ...options.contributor },
    cleanups,
  );
  const states: ContributorState[] = [];
  const statuses: ContributorStatus[] = [];
  contributor.onStatus((status) => {
    statuses.push(status);
    if (states.at(-1) !== status.state) states.push(status.state);
  });
  contributor.start();
  return { coordinator, contributor, runtime, states, statuses };
}

async function ready(session: FakeSession): Promise<FakeSession> {
  await session.next('capabilities');
  await session.next('lease');
  return session;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Contributor lifecycle', () => {
  it('goes idle → connecting → connected → working → connected → paused → idle', async () => {
    const { coordinator, contributor, states } = await setup();
    const session = await ready(await coordinator.session(0));
    const job = await session.sendJob(chat());
    await session.readResult(job);
    await session.next('lease');
    await contributor.stop({ drain: true });
    expect(states).toEqual(['connecting', 'connected', 'working', 'connected', 'paused', 'idle']);
    expect(contributor.status()).toMatchObject({ state: 'idle', jobsDone: 1 });
  });

  it('aborts running jobs when the connection drops, and reconnects with growing backoff', async () => {
    const { coordinator, contributor, runtime, statuses } = await setup();
    const first = await ready(await coordinator.session(0));
    await first.sendJob(chat('hold'));
    await vi.waitFor(() => expect(runtime.running).toBe(1));

    const closedAt = Date.now();
    const seen = statuses.length;
    first.close(1011, 'restart');
    const second = await ready(await coordinator.session(1));
    const after = statuses.slice(seen, seen + statuses.slice(seen).findIndex((s) => s.state === 'connected'));
    const waiting = after.find((s) => s.nextAttemptAt !== null);
    expect(waiting).toMatchObject({ state: 'connecting', reconnectAttempts: 1, lastError: expect.stringContaining('closed (code 1011)') });
    expect(waiting!.nextAttemptAt! - closedAt).toBeGreaterThanOrEqual(40);
    expect(after.at(-1)).toMatchObject({ state: 'connecting', running: 0, jobsStopped: 1 });
    expect(runtime.aborted).toHaveLength(1);
    expect(second.helloVerified).toBe(true);
    expect(coordinator.acceptedAt[1]! - closedAt).toBeGreaterThanOrEqual(35);
    expect(contributor.status().state).toBe('connected');

    const reopenedAt = Date.now();
    second.close(1011, 'restart');
    await ready(await coordinator.session(2));
    expect(coordinator.acceptedAt[2]! - reopenedAt).toBeGreaterThanOrEqual(75);
    expect(contributor.status().reconnectAttempts).toBe(2);
    expect(first.received.filter((m) => m.type === 'chunk' && m.final)).toEqual([]);
  });

  it('backs off while the coordinator is unreachable and says so', async () => {
    const { contributor, coordinator } = await setup({ contributor: { coordinatorUrl: 'ws://127.0.0.1:1' } });
    await vi.waitFor(() => expect(contributor.status().reconnectAttempts).toBeGreaterThanOrEqual(2), { timeout: 2000 });
    expect(contributor.status()).toMatchObject({ state: 'error', lastError: expect.stringContaining('Could not connect') });
    expect(coordinator.sessions).toEqual([]);
  });

  it('shows a refused hello as an error and keeps retrying', async () => {
    const { contributor, coordinator } = await setup({ coordinator: { refuseHello: true } });
    await coordinator.session(1);
    expect(coordinator.sessions[0]?.helloVerified).toBe(true);
    expect(contributor.status()).toMatchObject({ state: 'error', contributorId: null, reconnectAttempts: 1 });
    expect(contributor.status().lastError).toContain('UNAUTHORIZED');
  });

  it('reconnects when the handshake stalls', async () => {
    const { contributor, coordinator, states } = await setup({
      coordinator: { stallHandshakes: 1 },
      contributor: { handshakeTimeoutMs: 100 },
    });
    const first = await coordinator.session(0);
    await ready(await coordinator.session(1));
    expect(states).toEqual(['connecting', 'error', 'connected']);
    expect(contributor.status().lastError).toContain('handshake');
    expect(first.closed).toBe(true);
    expect(contributor.status().state).toBe('connected');
  });

  it('stop({drain: true}) withdraws the slots and waits for the running job to answer', async () => {
    const { coordinator, contributor, runtime } = await setup();
    const session = await ready(await coordinator.session(0));
    const job = await session.sendJob(chat('hold'));
    await vi.waitFor(() => expect(runtime.running).toBe(1));
    let stopped = false;
    const stopping = contributor.stop({ drain: true }).then(() => (stopped = true));
    expect(await session.next('lease')).toMatchObject({ slots: 0 });
    await sleep(50);
    expect(stopped).toBe(false);
    expect(contributor.status().state).toBe('working');
    runtime.release();
    expect((await session.readResult(job)).result).toMatchObject({ text: 'Hello!' });
    await stopping;
    expect(contributor.status()).toMatchObject({ state: 'idle', jobsDone: 1 });
    await vi.waitFor(() => expect(session.closed).toBe(true));
  });

  it('stop({drain: false}) aborts the running job and reports it as ABORTED', async () => {
    const { coordinator, contributor, runtime } = await setup();
    const session = await ready(await coordinator.session(0));
    const job = await session.sendJob(chat('hold'));
    await vi.waitFor(() => expect(runtime.running).toBe(1));
    await contributor.stop({ drain: false });
    expect(runtime.aborted).toHaveLength(1);
    expect(await session.next('fail')).toMatchObject({ jobId: job.jobId, error: { code: 'ABORTED' } });
    await vi.waitFor(() => expect(session.closed).toBe(true));
    await sleep(100);
    expect(coordinator.sessions).toHaveLength(1);
  });

  it('on drain takes no more jobs and comes back after reconnectAfterMs', async () => {
    const { coordinator, contributor, runtime } = await setup({ contributor: { random: () => 0 } });
    const session = await ready(await coordinator.session(0));
    const running = await session.sendJob(chat('hold'));
    await vi.waitFor(() => expect(runtime.running).toBe(1));
    session.send({ v: 1, type: 'drain', reconnectAfterMs: 150 });
    runtime.release();
    await session.readResult(running);
    expect(await session.next('lease')).toMatchObject({ slots: 0 });
    expect(contributor.status().state).toBe('paused');
    const late = await session.sendJob(chat());
    expect(await session.next('fail')).toMatchObject({ jobId: late.jobId, error: { code: 'QUOTA' } });

    const closedAt = Date.now();
    session.close(1001, 'draining');
    await ready(await coordinator.session(1));
    expect(coordinator.acceptedAt[1]! - closedAt).toBeGreaterThanOrEqual(140);
    expect(contributor.status()).toMatchObject({ state: 'connected', reconnectAttempts: 0 });
  });
});
