import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { hashApiKeySecret, openStore } from './index.ts';
import { readMigrations } from './migrate.ts';
import { openPgliteStore } from './pglite.ts';
import { openPostgresDb, openPostgresStore } from './postgres.ts';
import { job, openTestPostgres, TEST_DATABASE_URL, uniqueSchema } from './testing.ts';

afterEach(() => {
  vi.unstubAllEnvs();
});

async function dropSchema(schema: string): Promise<void> {
  const db = await openTestPostgres(schema);
  try {
    await db.query(`DROP SCHEMA "${schema}" CASCADE`);
  } finally {
    await db.close();
  }
}

describe('PGlite on disk', () => {
  it('keeps jobs, keys and migrations across a close and reopen', async () => {
    vi.stubEnv('DATABASE_URL', '');
    const dataDir = await mkdtemp(join(tmpdir(), 'spn-store-'));
    try {
      const first = await openStore({ dataDir });
      const { secret, record } = await first.createApiKey({ label: 'disk', jobsPerMinute: 5, maxInFlight: 1 });
      first.putJob(job('disk-1', { state: 'leased' }));
      await first.close(); // flushes the buffered put

      const second = await openPgliteStore({ dataDir });
      await second.migrate();
      expect(await second.getJob('disk-1')).toEqual(job('disk-1', { state: 'leased' }));
      expect(await second.findApiKey(hashApiKeySecret(secret))).toEqual(record);
      expect(await second.countJobs()).toMatchObject({ leased: 1 });
      await second.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('PostgreSQL', () => {
  it('openStore picks PostgreSQL from DATABASE_URL and migrates', async () => {
    const schema = uniqueSchema('env');
    vi.stubEnv('DATABASE_URL', TEST_DATABASE_URL);
    const store = await openStore({ schema });
    try {
      store.putJob(job('env-1'));
      expect(await store.countJobs()).toMatchObject({ queued: 1 });
      const db = await openTestPostgres(schema);
      const { rows } = await db.query<{ table_name: string }>('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [
        schema,
      ]);
      await db.close();
      // The tables landed in the schema DATABASE_URL's store was opened with, not in public.
      expect(rows.map((r) => r.table_name)).toEqual(expect.arrayContaining(['jobs', 'api_keys', 'contributors', 'schema_migrations']));
    } finally {
      await store.close();
      await dropSchema(schema);
    }
  });

  it('two replicas starting at once on a fresh schema both succeed and migrate once', async () => {
    const schema = uniqueSchema('race');
    const replicas = await Promise.all([0, 1, 2].map(() => openPostgresStore({ url: TEST_DATABASE_URL, schema })));
    try {
      await Promise.all(replicas.map((r) => r.migrate()));
      const db = await openTestPostgres(schema);
      const { rows } = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      await db.close();
      expect(rows.map((r) => r.version)).toEqual((await readMigrations()).map((m) => m.version));
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
      await dropSchema(schema);
    }
  });

  it('rejects an unsafe schema name and an unreachable server', async () => {
    await expect(openPostgresDb({ url: TEST_DATABASE_URL, schema: 'x"; DROP TABLE y; --' })).rejects.toThrow(/schema/);
    await expect(openPostgresDb({ url: 'postgres://postgres@127.0.0.1:1/test', schema: 'unreachable' })).rejects.toThrow();
  });
});
