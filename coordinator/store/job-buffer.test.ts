import { afterEach, describe, expect, it } from 'vitest';
import { JobWriteBuffer } from './job-buffer.ts';
import { openStore } from './index.ts';
import type { SqlStore } from './sql-store.ts';
import type { JobRecord } from './types.ts';

const job = (id: string, patch: Partial<JobRecord> = {}): JobRecord => ({
  id,
  apiKeyId: 'k',
  model: 'm',
  kind: 'chat',
  state: 'waiting',
  attempt: 1,
  contributorId: null,
  createdAt: 1,
  updatedAt: 1,
  payloadBytes: 0,
  resultBytes: 0,
  promptTokens: 0,
  completionTokens: 0,
  error: null,
  ...patch,
});

const stores: SqlStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

describe('the job write buffer', () => {
  it('sets aside a record PostgreSQL refuses (a NUL in its text), counts it, and keeps writing the others', async () => {
    const logged: string[] = [];
    const store = await openStore({ databaseUrl: '', log: (message: string) => void logged.push(message) });
    stores.push(store);
    store.putJob(job('good-1'));
    store.putJob(job('bad', { model: 'm\u0000x' }));
    store.putJob(job('good-2', { error: 'fine' }));
    // Used to reject for ever: the batch went back and every later write waited behind it.
    await expect(store.flush()).resolves.toBeUndefined();
    expect(await store.getJob('good-1')).toMatchObject({ id: 'good-1' });
    expect(await store.getJob('good-2')).toMatchObject({ error: 'fine' });
    expect(await store.getJob('bad')).toBeNull();
    expect(store.setAsideJobs).toMatchObject({
      count: 1,
      last: [{ id: 'bad', error: expect.stringMatching(/0x00|invalid byte|null character/i) }],
    });
    expect(logged.join('\n')).toMatch(/job record bad set aside/);
    // Later puts are written as usual; the job's later versions are refused alone too.
    store.putJob(job('good-3'));
    store.putJob(job('bad', { model: 'again\u0000' }));
    await store.flush();
    expect(await store.getJob('good-3')).toMatchObject({ id: 'good-3' });
    expect(store.setAsideJobs.count).toBe(2);
    expect(store.bufferedJobs).toBe(0);
  });

  it('keeps retrying when the database is down (nothing set aside), and writes everything once it is back', async () => {
    let down = true;
    const written: string[] = [];
    const buffer = new JobWriteBuffer({
      minRetryMs: 5,
      maxRetryMs: 10,
      log: () => {},
      write: async (records) => {
        if (down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        written.push(...records.map((r) => r.id));
      },
    });
    buffer.put(job('a'));
    buffer.put(job('b'));
    await expect(buffer.flush()).rejects.toThrow(/ECONNREFUSED/);
    expect(buffer.setAside.count).toBe(0);
    down = false;
    await buffer.flush();
    expect(written.sort()).toEqual(['a', 'b']);
    await buffer.close();
  });

  it('`written()` waits for the batch a put goes in anyway, and refuses at once while writes fail', async () => {
    let down = false;
    const batches: string[][] = [];
    const buffer = new JobWriteBuffer({
      delayMs: 100,
      minRetryMs: 60_000,
      log: () => {},
      write: async (records) => {
        if (down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        batches.push(records.map((r) => r.id));
      },
    });
    await expect(buffer.written()).resolves.toBeUndefined(); // nothing put
    buffer.put(job('a'));
    const a = buffer.written();
    buffer.put(job('b'));
    const b = buffer.written();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(batches).toEqual([]); // not hurried: the batch still collects
    await Promise.all([a, b]);
    expect(batches).toEqual([['a', 'b']]);

    down = true;
    buffer.put(job('c'));
    await expect(buffer.written()).rejects.toThrow(/ECONNREFUSED/);
    // While failing (the retry is a minute away), a further wait is refused at once.
    buffer.put(job('d'));
    await expect(buffer.written()).rejects.toThrow(/unreachable/);
    down = false;
    await buffer.close();
    expect(batches.at(-1)).toEqual(['c', 'd']);
  });

  it('closes (a graceful shutdown) although a refused record was put', async () => {
    const buffer = new JobWriteBuffer({
      log: () => {},
      write: async (records) => {
        if (records.some((r) => r.model.includes('\u0000')))
          throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' });
      },
    });
    buffer.put(job('a', { model: '\u0000' }));
    buffer.put(job('b'));
    await expect(buffer.close()).resolves.toBeUndefined();
    expect(buffer.setAside.count).toBe(1);
  });
});
