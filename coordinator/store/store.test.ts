import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { readMigrations } from './migrate.ts';
import { hashApiKeySecret, SqlStore, type SqlStoreOptions } from './sql-store.ts';
import type { SqlDb } from './sql.ts';
import { BACKENDS, INJECTED_FAILURE, job, jobRow, jobRowCount, waitFor, wrapDb, type WrapOptions } from './testing.ts';
import type { JobState } from './types.ts';

const STATES: JobState[] = ['waiting', 'queued', 'leased', 'done', 'failed', 'cancelled'];

describe.each(BACKENDS)('SqlStore on $name', (backend) => {
  let db: SqlDb;
  let dispose: () => Promise<void>;
  let store: SqlStore;
  let jobWrites = 0;

  /** Another store over the same database, with its own buffer; closing it leaves `db` open. */
  function sideStore(options: SqlStoreOptions = {}, wrap: WrapOptions = {}): SqlStore {
    return new SqlStore(wrapDb(db, wrap), { log: () => undefined, ...options });
  }

  beforeAll(async () => {
    ({ db, dispose } = await backend.open());
    store = sideStore({}, { onQuery: (sql) => void (sql.startsWith('INSERT INTO jobs') && jobWrites++) });
    await store.migrate();
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    await dispose?.();
  });

  beforeEach(async () => {
    await db.exec('TRUNCATE jobs, api_keys, contributors');
    jobWrites = 0;
  });

  it('migrates once, however often and concurrently migrate() is called', async () => {
    await store.migrate();
    await Promise.all([store.migrate(), sideStore().migrate()]);
    const { rows } = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    expect(rows.map((r) => r.version)).toEqual((await readMigrations()).map((m) => m.version));
    expect(rows.length).toBeGreaterThan(0);
  });

  it('creates, finds and revokes API keys, storing only the SHA-256 of the secret', async () => {
    const { record, secret } = await store.createApiKey({ label: 'ci', jobsPerMinute: 60, maxInFlight: 4 });
    expect(secret).toMatch(/^spn_[A-Za-z0-9_-]{43}$/);
    expect(record).toMatchObject({ label: 'ci', jobsPerMinute: 60, maxInFlight: 4, revokedAt: null });

    const hash = hashApiKeySecret(secret);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await store.findApiKey(hash)).toEqual(record);
    expect(await store.findApiKey(hash.toUpperCase())).toEqual(record);
    expect(await store.findApiKey(hashApiKeySecret(`${secret}x`))).toBeNull();

    const { rows } = await db.query<Record<string, unknown>>('SELECT * FROM api_keys');
    const table = JSON.stringify(rows);
    expect(table).not.toContain(secret.slice(4));
    expect(table).toContain(hash);

    const other = await store.createApiKey({ label: 'other', jobsPerMinute: 1, maxInFlight: 1 });
    expect(other.secret).not.toBe(secret);
    await store.revokeApiKey(record.id);
    await store.revokeApiKey(record.id);
    await store.revokeApiKey('no-such-key');
    expect(await store.findApiKey(hash)).toBeNull();
    expect(await store.findApiKey(hashApiKeySecret(other.secret))).toEqual(other.record);
    await expect(store.createApiKey({ label: 'bad', jobsPerMinute: 1.5, maxInFlight: 1 })).rejects.toThrow(RangeError);
  });

  it('upserts contributors, keeping the earliest firstSeen and latest lastSeen', async () => {
    const first = { id: 'c1', identityKey: 'ik', hpkeKey: 'hk', wallet: null, firstSeen: 1_000, lastSeen: 2_000 };
    await store.upsertContributor(first);
    expect(await store.getContributor('c1')).toEqual(first);
    await store.upsertContributor({ ...first, hpkeKey: 'hk2', wallet: 'EQwallet', firstSeen: 5_000, lastSeen: 6_000 });
    expect(await store.getContributor('c1')).toEqual({ ...first, hpkeKey: 'hk2', wallet: 'EQwallet', lastSeen: 6_000 });
    await store.upsertContributor({ ...first, lastSeen: 3_000 });
    expect((await store.getContributor('c1'))?.lastSeen).toBe(6_000);
    expect(await store.getContributor('c2')).toBeNull();
  });

  it('writes 10,000 puts in batches of 500 and collapses updates of one id to the last', async () => {
    const n = 10_000;
    const expected = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<JobState, number>;
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      const state = STATES[i % STATES.length] ?? 'queued';
      expected[state]++;
      store.putJob(job(`bulk-${i}`, { state, createdAt: 1_733_000_000_000 + i, payloadBytes: i }));
    }
    await store.flush();
    const seconds = (performance.now() - started) / 1000;
    console.log(`[store] ${backend.name}: ${n} putJob + flush in ${(seconds * 1000).toFixed(0)} ms = ${Math.round(n / seconds)} rows/s`);

    expect(jobWrites).toBe(n / 500);
    expect(await jobRowCount(db)).toBe(n);
    expect(await store.countJobs()).toEqual(expected);
    expect(await store.getJob('bulk-4321')).toEqual(
      job('bulk-4321', { state: 'queued', createdAt: 1_733_000_004_321, payloadBytes: 4321 }),
    );

    jobWrites = 0;
    store.putJob(job('same', { state: 'queued' }));
    store.putJob(job('same', { state: 'leased', attempt: 2, contributorId: 'c9' }));
    store.putJob(job('same', { state: 'done', attempt: 2, contributorId: 'c9', resultBytes: 77, completionTokens: 12 }));
    await store.flush();
    expect(jobWrites).toBe(1);
    expect(await jobRow(db, 'same')).toMatchObject({ state: 'done', attempt: 2, contributor_id: 'c9' });
    expect(await store.getJob('same')).toEqual(
      job('same', { state: 'done', attempt: 2, contributorId: 'c9', resultBytes: 77, completionTokens: 12 }),
    );
  });

  it('reads its own writes before they are flushed', async () => {
    const lazy = sideStore({ delayMs: 60_000 });
    const record = job('ryw', { state: 'waiting' });
    lazy.putJob(record);
    record.state = 'failed'; // the buffer keeps a copy, not the caller's object
    expect(await lazy.getJob('ryw')).toEqual(job('ryw', { state: 'waiting' }));
    expect(await jobRow(db, 'ryw')).toBeUndefined();
    await lazy.flush();
    expect(await jobRow(db, 'ryw')).toMatchObject({ state: 'waiting' });
    lazy.putJob(job('ryw', { state: 'leased' }));
    expect((await lazy.getJob('ryw'))?.state).toBe('leased');
    expect(await lazy.getJob('absent')).toBeNull();
    await lazy.close();
    expect(await jobRow(db, 'ryw')).toMatchObject({ state: 'leased' });
  });

  it('writes buffered puts after the delay without an explicit flush', async () => {
    store.putJob(job('timer'));
    await waitFor(async () => (await jobRow(db, 'timer')) !== undefined);
    expect(jobWrites).toBe(1);
  });

  it('lists unfinished jobs oldest first, including buffered ones', async () => {
    STATES.forEach((state, i) => store.putJob(job(`u-${state}`, { state, createdAt: 2_000 - i })));
    await store.flush();
    store.putJob(job('u-late', { state: 'waiting', createdAt: 500 }));
    store.putJob(job('u-done', { state: 'queued', createdAt: 100 }));
    const ids = (await store.unfinishedJobs()).map((j) => j.id);
    expect(ids).toEqual(['u-done', 'u-late', 'u-leased', 'u-queued', 'u-waiting']);
  });

  it('counts jobs by state, zero for absent states', async () => {
    expect(await store.countJobs()).toEqual({ waiting: 0, queued: 0, leased: 0, done: 0, failed: 0, cancelled: 0 });
    store.putJob(job('a', { state: 'done' }));
    store.putJob(job('b', { state: 'done' }));
    store.putJob(job('c', { state: 'failed', error: 'E_OOM: out of memory' }));
    expect(await store.countJobs()).toEqual({ waiting: 0, queued: 0, leased: 0, done: 2, failed: 1, cancelled: 0 });
  });

  it('keeps records when a flush fails, rejects flush(), logs once, and writes them later', async () => {
    let failing = true;
    const log = vi.fn();
    const flaky = sideStore({ log, minRetryMs: 60_000 }, { failJobWrites: () => failing });
    flaky.putJob(job('f1', { state: 'queued' }));
    flaky.putJob(job('f2'));
    await expect(flaky.flush()).rejects.toThrow(INJECTED_FAILURE);
    flaky.putJob(job('f1', { state: 'leased' }));
    flaky.putJob(job('f3'));
    await expect(flaky.flush()).rejects.toThrow(INJECTED_FAILURE);
    expect(log).toHaveBeenCalledTimes(1);
    expect(await jobRowCount(db)).toBe(0);
    expect(flaky.bufferedJobs).toBe(3);
    expect((await flaky.getJob('f1'))?.state).toBe('leased');
    expect(await flaky.getJob('f2')).toEqual(job('f2'));

    failing = false;
    await flaky.flush();
    expect(await jobRowCount(db)).toBe(3);
    expect(flaky.bufferedJobs).toBe(0);
    expect(await jobRow(db, 'f1')).toMatchObject({ state: 'leased' });
    expect(log).toHaveBeenCalledTimes(2);
    expect(String(log.mock.calls[1]?.[0])).toContain('recovered');
    await flaky.close();
  });

  it('retries a failed batch on its own', async () => {
    let failing = true;
    const flaky = sideStore({ minRetryMs: 5 }, { failJobWrites: () => failing });
    flaky.putJob(job('r1'));
    await expect(flaky.flush()).rejects.toThrow(INJECTED_FAILURE);
    failing = false;
    await waitFor(async () => (await jobRow(db, 'r1')) !== undefined);
    await flaky.close();
  });

  it('drops (and logs) a record the database would reject, without blocking others', async () => {
    const log = vi.fn();
    const strict = sideStore({ log });
    strict.putJob(job('bad', { payloadBytes: Number.NaN }));
    strict.putJob(job('good'));
    await strict.flush();
    expect(log).toHaveBeenCalledOnce();
    expect(await jobRow(db, 'bad')).toBeUndefined();
    expect(await jobRow(db, 'good')).toBeDefined();
    await strict.close();
    strict.putJob(job('after-close'));
    expect(log).toHaveBeenCalledTimes(2);
  });
});
