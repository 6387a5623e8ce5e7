/** The embedded backend: PostgreSQL in WASM (PGlite), in memory or in a folder on disk. */
import { mkdirSync } from 'node:fs';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { SqlStore, type SqlStoreOptions } from './sql-store.ts';
import type { SqlClient, SqlDb } from './sql.ts';

function client(pg: PGlite | Transaction): SqlClient {
  return {
    async query<T>(sql: string, params?: readonly unknown[]) {
      const result = await pg.query<T>(sql, params ? [...params] : undefined);
      return { rows: result.rows };
    },
    async exec(sql: string) {
      await pg.exec(sql);
    },
  };
}

/** Starts PGlite (about 4 s) and wraps it as a {@link SqlDb}. */
export async function openPgliteDb(options: { dataDir?: string | undefined } = {}): Promise<SqlDb> {
  // PGlite creates only the last folder of the path.
  if (options.dataDir !== undefined) mkdirSync(options.dataDir, { recursive: true });
  const pg = await PGlite.create(options.dataDir);
  return {
    ...client(pg),
    transaction: (fn) => pg.transaction((tx) => fn(client(tx))),
    close: () => pg.close(),
  };
}

/**
 * Opens a PGlite store: in memory when `dataDir` is absent, else in that folder (created if
 * missing). Does not migrate; {@link openStore} does. One process may open a folder at a time.
 */
export async function openPgliteStore(options: { dataDir?: string | undefined } & SqlStoreOptions = {}): Promise<SqlStore> {
  const { dataDir, ...storeOptions } = options;
  return new SqlStore(await openPgliteDb({ dataDir }), storeOptions);
}
