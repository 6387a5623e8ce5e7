/** Shared by the store tests: backends to run the suite on, and wrappers that count or fail queries. */
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { migrate, readMigrations } from './migrate.ts';
import { openPgliteDb } from './pglite.ts';
import { openPostgresDb } from './postgres.ts';
import type { SqlDb } from './sql.ts';
import type { JobRecord } from './types.ts';

/** PostgreSQL for tests; CI and dev machines run one on 127.0.0.1:5432 with trust auth. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A database for one test file, and how to dispose of it. */
export interface TestBackend {
  name: string;
  open(): Promise<{ db: SqlDb; dispose: () => Promise<void> }>;
}

/**
 * For a suite: opens `backend` and migrates it before the tests (handing the database to
 * `use`), empties `truncate` (a comma-separated table list) before each test, and disposes
 * of the database after.
 */
export function useMigratedBackend(backend: TestBackend, use: (db: SqlDb) => void, truncate?: string): void {
  let opened: { db: SqlDb; dispose: () => Promise<void> } | undefined;
  beforeAll(async () => {
    opened = await backend.open();
    await migrate(opened.db, await readMigrations());
    use(opened.db);
  }, 60_000);
  afterAll(async () => opened?.dispose());
  if (truncate !== undefined) beforeEach(async () => void (await opened?.db.exec(`TRUNCATE ${truncate} RESTART IDENTITY`)));
}

/** A schema name no other run uses. */
export function uniqueSchema(tag: string): string {
  return `spn_test_${tag}_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}

/** Opens PostgreSQL in a fresh schema; fails (never skips) with a clear message when unreachable. */
export async function openTestPostgres(schema: string): Promise<SqlDb> {
  try {
    return await openPostgresDb({ url: TEST_DATABASE_URL, schema });
  } catch (err) {
    throw new Error(
      `PostgreSQL at ${TEST_DATABASE_URL} is unreachable (${String(err)}). The store tests need it: ` +
        'start PostgreSQL on 127.0.0.1:5432 or set TEST_DATABASE_URL.',
      { cause: err },
    );
  }
}

export const BACKENDS: TestBackend[] = [
  {
    name: 'PGlite',
    async open() {
      const db = await openPgliteDb();
      return { db, dispose: () => db.close() };
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const schema = uniqueSchema('store');
      const db = await openTestPostgres(schema);
      return {
        db,
        async dispose() {
          try {
            await db.query(`DROP SCHEMA "${schema}" CASCADE`);
          } finally {
            await db.close();
          }
        },
      };
    },
  },
];

/** Options for {@link wrapDb}. */
export interface WrapOptions {
  /** While true, statements writing jobs reject with {@link INJECTED_FAILURE}. */
  failJobWrites?: () => boolean;
  /** Sees every statement. */
  onQuery?: (sql: string) => void;
}

export const INJECTED_FAILURE = 'injected failure: database unavailable';

/** `db` seen through a wrapper: can count and fail queries, and its close() leaves `db` open. */
export function wrapDb(db: SqlDb, options: WrapOptions = {}): SqlDb {
  const check = (sql: string): void => {
    options.onQuery?.(sql);
    if (options.failJobWrites?.() && sql.startsWith('INSERT INTO jobs')) throw new Error(INJECTED_FAILURE);
  };
  return {
    async query<T>(sql: string, params?: readonly unknown[]) {
      check(sql);
      return db.query<T>(sql, params);
    },
    exec: (sql) => db.exec(sql),
    transaction: (fn) => db.transaction(fn),
    close: async () => undefined,
  };
}

/** A job record with plausible values, overridden by `fields`. */
export function job(id: string, fields: Partial<JobRecord> = {}): JobRecord {
  return {
    id,
    apiKeyId: 'key-1',
    model: 'qwen2.5-0.5b',
    kind: 'generate',
    state: 'queued',
    attempt: 1,
    contributorId: null,
    createdAt: 1_733_000_000_000,
    updatedAt: 1_733_000_000_000,
    payloadBytes: 1024,
    resultBytes: 0,
    promptTokens: 0,
    completionTokens: 0,
    error: null,
    ...fields,
  };
}

/** Reads a job straight from the table, bypassing any write buffer. */
export async function jobRow(db: SqlDb, id: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await db.query<Record<string, unknown>>('SELECT * FROM jobs WHERE id = $1', [id]);
  return rows[0];
}

/** Rows in the jobs table. */
export async function jobRowCount(db: SqlDb): Promise<number> {
  const { rows } = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM jobs');
  return Number(rows[0]?.n);
}

/** Polls `condition` every 5 ms until true, or fails after `timeoutMs`. */
export async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
