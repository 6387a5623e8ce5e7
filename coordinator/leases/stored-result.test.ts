/**
 * A done job's sealed answer is written with its record and read back after a restart: a
 * requester whose stream the crash cut off before it read the final chunk gets its answer from
 * the next coordinator, once, instead of a 410 that makes it pay for the job and run it again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createCoordinator } from '../app.ts';
import { openStore } from '../store/index.ts';
import type { SqlStore } from '../store/sql-store.ts';
import { job as jobRecord, TEST_DATABASE_URL, uniqueSchema } from '../store/testing.ts';
import { EventReader, FakeClock, startCoordinator } from '../testing.ts';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const backends = [
  ['PGlite', () => openStore({ databaseUrl: '' })],
  ['PostgreSQL', () => openStore({ databaseUrl: TEST_DATABASE_URL, schema: uniqueSchema('stored_result') })],
] as const;

describe.each(backends)('a done job’s stored answer on %s', (_name, open) => {
  it('is replayed to the requester by the coordinator that comes after, and cleared after its time', async () => {
    const store: SqlStore = await open();
    cleanup.push(() => store.close());
    const before = await startCoordinator({ store });
    const worker = await before.worker({ slots: 1 });
    const { jobId } = await before.createJob();
    await before.submit(jobId, 1);
    const sent = await worker.take('job');
    worker.chunk(sent, 0);
    worker.chunk(sent, 1, true);
    await worker.take('ack');
    await worker.take('ack');
    await store.flush();
    // The requester never read the final chunk: this coordinator goes away with it.
    await before.close();
    expect((await store.getJob(jobId))?.result).toEqual({
      attempt: 1,
      chunks: [
        { type: 'chunk', attempt: 1, seq: 0, final: false, sealed: { ct: 'result0' } },
        { type: 'chunk', attempt: 1, seq: 1, final: true, sealed: { ct: 'result1' }, usage: { promptTokens: 3, completionTokens: 5 } },
      ],
    });

    const logger = { info: () => {}, warn: () => {}, error: () => {} };
    const after = createCoordinator({ store, clock: new FakeClock(), logger });
    cleanup.push(() => after.close());
    const server = await after.listen({ port: 0 });
    const follow = () => fetch(`${server.url}/v1/jobs/${jobId}/events`, { headers: { authorization: before.auth } });
    const res = await follow();
    expect(res.status).toBe(200);
    expect(await new EventReader(res).rest()).toEqual([
      { type: 'chunk', attempt: 1, seq: 0, final: false, sealed: { ct: 'result0' } },
      { type: 'chunk', attempt: 1, seq: 1, final: true, sealed: { ct: 'result1' }, usage: { promptTokens: 3, completionTokens: 5 } },
    ]);
    // Another key cannot read it.
    const { secret } = await after.createApiKey('other', { jobsPerMinute: 10, maxInFlight: 10 });
    expect((await fetch(`${server.url}/v1/jobs/${jobId}/events`, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(404);

    // Cleared after its time: then the job reads as done with its result no longer held.
    const ended = (await store.getJob(jobId))?.updatedAt ?? NaN;
    expect(await store.forgetResults(ended)).toBe(0);
    expect(await store.forgetResults(ended + 1)).toBe(1);
    expect((await store.getJob(jobId))?.result).toBeUndefined();
    expect((await store.getJob(jobId))?.state).toBe('done');
    expect((await follow()).status).toBe(410);
  });

  it('a later write of the job without its result keeps the result', async () => {
    const store: SqlStore = await open();
    cleanup.push(() => store.close());
    const chunk = { type: 'chunk' as const, attempt: 2, seq: 0, final: true, sealed: { enc: 'ZW5j', ct: 'Y3Q' } };
    store.putJob(jobRecord('j1', { apiKeyId: 'k', state: 'done', attempt: 2, result: { attempt: 2, chunks: [chunk] } }));
    await store.flush();
    store.putJob(jobRecord('j1', { apiKeyId: 'k', state: 'done', attempt: 2, updatedAt: 9 }));
    await store.flush();
    expect(await store.getJob('j1')).toMatchObject({ updatedAt: 9, result: { attempt: 2, chunks: [chunk] } });
    // A job without one reads without the field at all.
    store.putJob(jobRecord('j2'));
    await store.flush();
    expect(await store.getJob('j2')).not.toHaveProperty('result');
  });
});
