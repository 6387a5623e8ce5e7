/** A wallet proven while contributing: the worker says hello again with the new session, without losing a job. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { contributorOnFake } from '../../testing/fake-coordinator-socket.ts';
import { FakeCoordinator, type FakeSession } from './fake-coordinator.ts';
import { chat, FakeRuntime } from './fake-runtime.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(session?: string) {
  const coordinator = new FakeCoordinator();
  const runtime = new FakeRuntime();
  const contributor = await contributorOnFake(
    coordinator,
    {
      runtime,
      consent: ['chat'],
      random: () => 1,
      backoff: { baseMs: 2000, capMs: 4000, stableMs: 60_000 },
      ...(session !== undefined && { session }),
    },
    cleanups,
  );
  contributor.start();
  return { coordinator, contributor, runtime };
}

async function ready(session: FakeSession): Promise<FakeSession> {
  await session.next('capabilities');
  await session.next('lease');
  return session;
}

const helloOf = (session: FakeSession) => session.received.find((m) => m.type === 'hello');

describe('a new session while contributing', () => {
  it('says hello again at once on a fresh socket, carrying the new token, with no error shown', async () => {
    const { coordinator, contributor } = await setup();
    const first = await ready(await coordinator.session(0));
    expect(helloOf(first)).not.toHaveProperty('session');
    const before = Date.now();
    contributor.setSession('wallet-token');
    const second = await ready(await coordinator.session(1));
    // Not the reconnect backoff (2 s here): the new hello goes out at once.
    expect(coordinator.acceptedAt[1]! - before).toBeLessThan(1500);
    expect(helloOf(second)).toMatchObject({ type: 'hello', session: 'wallet-token' });
    expect(first.closed).toBe(true);
    expect(contributor.status()).toMatchObject({ state: 'connected', lastError: null, reconnectAttempts: 0 });
    // The same token again changes nothing.
    contributor.setSession('wallet-token');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(coordinator.sessions).toHaveLength(2);
  });

  it('lets a running job finish and answer on the old socket first, taking no new job meanwhile', async () => {
    const { coordinator, contributor, runtime } = await setup('old-token');
    const first = await ready(await coordinator.session(0));
    const job = await first.sendJob(chat('hold'));
    await vi.waitFor(() => expect(runtime.running).toBe(1));
    contributor.setSession('new-token');
    expect(await first.next('lease')).toMatchObject({ slots: 0 });
    expect(coordinator.sessions).toHaveLength(1);
    runtime.release();
    expect((await first.readResult(job)).result).toMatchObject({ text: 'Hello!' });
    const second = await ready(await coordinator.session(1));
    expect(helloOf(second)).toMatchObject({ session: 'new-token' });
    expect(contributor.status()).toMatchObject({ jobsDone: 1, jobsFailed: 0, jobsStopped: 0 });
  });

  it('a disconnected wallet: the next hello carries no token', async () => {
    const { coordinator, contributor } = await setup('token');
    await ready(await coordinator.session(0));
    contributor.setSession(undefined);
    const second = await ready(await coordinator.session(1));
    expect(helloOf(second)).not.toHaveProperty('session');
  });
});
