/** Opens the coordinator's store: PostgreSQL when a database URL is given, else embedded PGlite. */
import { openPgliteStore } from './pglite.ts';
import { openPostgresStore } from './postgres.ts';
import type { SqlStore, SqlStoreOptions } from './sql-store.ts';

export type { ApiKeyRecord, ContributorRecord, JobRecord, JobState, Store } from './types.ts';
export { API_KEY_PREFIX, hashApiKeySecret, SqlStore, type SqlStoreOptions } from './sql-store.ts';
export { openPgliteStore } from './pglite.ts';
export { openPostgresStore, type PostgresOptions } from './postgres.ts';

/** Which database {@link openStore} uses. */
export interface OpenStoreOptions extends SqlStoreOptions {
  /** PostgreSQL URL. Default: env DATABASE_URL; when neither is set, PGlite. */
  databaseUrl?: string;
  /** PostgreSQL only: schema to keep the tables in (created if missing). */
  schema?: string;
  /** PGlite only: folder for the database; in memory when absent. */
  dataDir?: string;
  /** PostgreSQL only: the replica whose jobs this store writes (`cluster.replicaId`). */
  replicaId?: string;
}

/** Opens and migrates the store. */
export async function openStore(options: OpenStoreOptions = {}): Promise<SqlStore> {
  const { databaseUrl = process.env.DATABASE_URL || undefined, schema, dataDir, replicaId, ...storeOptions } = options;
  const store = databaseUrl
    ? await openPostgresStore({ url: databaseUrl, schema, replicaId, ...storeOptions })
    : await openPgliteStore({ dataDir, ...storeOptions });
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}
