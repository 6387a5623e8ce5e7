/**
 * A requester's final result goes out only once the store has its job as done: a coordinator
 * killed in between must not leave a requester holding an answer the store lost (a restart
 * charges a job recorded done; one never recorded is failed and released, so the answer would be
 * free). While the database is down, or slower than the wait, the answer goes out anyway, counted.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory.ts';
import { startCoordinator } from '../testing.ts';

/** A store whose job records are written when the test says so, or never, or fail. */
class GatedStore extends MemoryStore {
  #gates: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  mode: 'gated' | 'down' = 'gated';
  override written(): Promise<void> {
    if (this.mode === 'down') return Promise.reject(new Error('the database is unreachable'));
    return new Promise((resolve, reject) => this.#gates.push({ resolve, reject }));
  }
  /** Writes everything put so far. */
  write(): void {
    for (const gate of this.#gates.splice(0)) gate.resolve();
  }
}

type Started = Awaited<ReturnType<typeof startCoordinator>>;
const started: Started[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.close()));
});

const pending = Symbol('pending');
/** What `promise` settles to within `ms`, or `pending`. */
const within = <T>(promise: Promise<T>, ms: number): Promise<T | typeof pending> =>
  Promise.race([promise, new Promise<typeof pending>((resolve) => setTimeout(() => resolve(pending), ms))]);

async function runToFinal(store: GatedStore, options: { recordWaitMs?: number } = {}) {
  const c = await startCoordinator({ store, ...options });
  started.push(c);
  const worker = await c.worker({ slots: 1 });
  const { jobId } = await c.createJob();
  const events = await c.events(jobId);
  expect(await events.next()).toMatchObject({ type: 'assigned' });
  await c.submit(jobId, 1);
  const job = await worker.take('job');
  worker.chunk(job, 0);
  expect(await events.next()).toMatchObject({ type: 'chunk', seq: 0, final: false });
  worker.chunk(job, 1, true);
  // The contributor's result is taken at once; only the requester's copy waits.
  expect(await worker.take('ack')).toMatchObject({ seq: 0, status: 'accepted' });
  expect(await worker.take('ack')).toMatchObject({ seq: 1, status: 'accepted' });
  return { c, jobId, events };
}

describe('a final result and its record', () => {
  it('holds the final chunk until the job is written as done, for subscribers old and new', async () => {
    const store = new GatedStore();
    const { c, jobId, events } = await runToFinal(store);
    const next = events.next();
    expect(await within(next, 200)).toBe(pending);
    // A requester subscribing now gets what was delivered so far, and waits for the rest too.
    const late = await c.events(jobId);
    expect(await late.next()).toMatchObject({ type: 'assigned' });
    expect(await late.next()).toMatchObject({ type: 'chunk', seq: 0 });
    const lateNext = late.next();
    expect(await within(lateNext, 100)).toBe(pending);
    // The job is done already: it cannot be cancelled in the meantime.
    expect((await c.api('DELETE', `/v1/jobs/${jobId}`)).status).toBe(409);

    store.write();
    expect(await next).toMatchObject({ type: 'chunk', seq: 1, final: true });
    expect(await events.next()).toBeNull();
    expect(await lateNext).toMatchObject({ type: 'chunk', seq: 1, final: true });
    expect(await late.next()).toBeNull();
    expect(c.coordinator.stats().deliveredUnrecorded).toBe(0);
  });

  it('while the database cannot be written, the answer goes out at once and is counted', async () => {
    const store = new GatedStore();
    store.mode = 'down';
    const { c, events } = await runToFinal(store);
    expect(await events.next()).toMatchObject({ type: 'chunk', seq: 1, final: true });
    expect(await events.next()).toBeNull();
    expect(c.coordinator.stats().deliveredUnrecorded).toBe(1);
    const text = await (await fetch(`${c.url}/metrics`)).text();
    expect(text).toMatch(/^spinneret_results_delivered_unrecorded_total\{reason="database"\} 1$/m);
  });

  it('a write slower than the wait lets the answer go after it, counted', async () => {
    const store = new GatedStore();
    const { c, events } = await runToFinal(store, { recordWaitMs: 300 });
    const next = events.next();
    expect(await within(next, 100)).toBe(pending);
    expect(await within(next, 2_000)).toMatchObject({ type: 'chunk', seq: 1, final: true });
    expect(c.coordinator.stats().deliveredUnrecorded).toBe(1);
  });
});
