import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { startCoordinator } from '../../coordinator/testing.ts';
import { RequesterClient } from '../../requester/client.ts';
import { Contributor } from './contributor.ts';
import { chat, embed, FakeRuntime } from './fake-runtime.ts';
import { loadOrCreateIdentity, MemoryKeyStore } from './identity.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(options: Parameters<typeof startCoordinator>[0] = {}) {
  const coordinator = await startCoordinator(options);
  const { secret } = await coordinator.coordinator.createApiKey('requester', { jobsPerMinute: 1000, maxInFlight: 100 });
  const runtime = new FakeRuntime();
  const contributor = new Contributor({
    coordinatorUrl: `${coordinator.url.replace(/^http/, 'ws')}/v1/contributor`,
    runtime,
    identity: await loadOrCreateIdentity(new MemoryKeyStore()),
    consent: ['chat', 'embed'],
    client: { name: 'test', version: '0.0.0' },
    webSocket: WebSocket,
  });
  cleanups.push(async () => {
    await contributor.stop({ drain: false });
    await coordinator.close();
  });
  contributor.start();
  await vi.waitFor(() => expect(contributor.status().state).toBe('connected'), { timeout: 3000 });
  return { coordinator, contributor, runtime, requester: new RequesterClient({ coordinatorUrl: coordinator.url, apiKey: secret }) };
}

describe('Contributor with the real coordinator and requester SDK', () => {
  it('runs a sealed chat job end to end, streaming deltas', async () => {
    const { requester, contributor, coordinator } = await setup();
    const deltas: string[] = [];
    const result = await requester.run(chat(), { onDelta: (piece) => deltas.push(piece.text) });
    expect(result).toMatchObject({ kind: 'chat', text: 'Hello!', attempts: 1, usage: { promptTokens: 4, completionTokens: 3 } });
    expect(deltas).toEqual(['Hel', 'lo', '!']);
    await vi.waitFor(() => expect(contributor.status()).toMatchObject({ jobsDone: 1, state: 'connected' }));
    expect(coordinator.coordinator.stats()).toMatchObject({ contributors: 1, jobs: { done: 1 }, protocolErrors: {} });
  });

  it('stops the job when the requester cancels it, and takes the next one', async () => {
    const { requester, contributor, runtime } = await setup();
    const controller = new AbortController();
    const running = requester.run(chat('hold'), { signal: controller.signal });
    await vi.waitFor(() => expect(runtime.running).toBe(1), { timeout: 10_000 });
    controller.abort();
    await expect(running).rejects.toMatchObject({ code: 'ABORTED' });
    await vi.waitFor(() => expect(contributor.status()).toMatchObject({ jobsStopped: 1, running: 0 }));
    expect(runtime.aborted).toHaveLength(1);
    expect(await requester.run(chat())).toMatchObject({ text: 'Hello!' });
  });

  it("passes an engine error's code to the requester", async () => {
    const { requester, contributor } = await setup({ maxAttempts: 1 });
    await expect(requester.run(embed())).rejects.toMatchObject({ code: 'MODEL_TOO_LARGE' });
    expect(contributor.status()).toMatchObject({ jobsFailed: 1 });
  });

  it('a paused contributor gets no job; on resume the waiting job is leased to it', async () => {
    const { requester, contributor } = await setup();
    contributor.setControls({ paused: true });
    const answer = requester.run(chat());
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(contributor.status()).toMatchObject({ jobsDone: 0, state: 'paused', pausedBy: 'user' });
    contributor.setControls({ paused: false });
    expect(await answer).toMatchObject({ text: 'Hello!', attempts: 1 });
  });
});
