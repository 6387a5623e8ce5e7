/** The server backend: PostgreSQL through a `pg.Pool`, optionally confined to one schema. */
import pg from 'pg';
import { SqlStore, type SqlStoreOptions } from './sql-store.ts';
import type { SqlClient, SqlDb } from './sql.ts';

/** Where and how to connect. */
export interface PostgresOptions {
  /** `postgres://user@host:port/database`. */
  url: string;
  /**
   * Schema for every table, created if missing and set as `search_path` on each connection
   * (tests use a fresh one per run). Letters, digits and `_` only. Default: the server's.
   */
  schema?: string | undefined;
  /** Connections in the pool. Default 10. */
  maxConnections?: number | undefined;
  /**
   * The replica this pool writes for (`spinneret.replica` on each connection): rows of tables
   * whose `replica_id` defaults to it (jobs, migration 009) are this replica's. Default: none.
   */
  replicaId?: string | undefined;
}

/** Replica ids go into a connection option: lowercase letters, digits and `-` only. */
const REPLICA_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function client(pgClient: pg.Pool | pg.PoolClient): SqlClient {
  return {
    async query<T>(sql: string, params?: readonly unknown[]) {
      const result = await pgClient.query(sql, params ? [...params] : undefined);
      return { rows: result.rows as T[] };
    },
    async exec(sql: string) {
      // Without parameters pg uses the simple protocol, which accepts several statements.
      await pgClient.query(sql);
    },
  };
}

/** Opens a pool, creating `schema` first when given. */
export async function openPostgresDb(options: PostgresOptions): Promise<SqlDb> {
  const { url, schema, replicaId } = options;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new Error(`schema ${JSON.stringify(schema)} must be letters, digits and _ (at most 63)`);
  }
  if (replicaId !== undefined && !REPLICA_ID.test(replicaId)) {
    throw new Error(`replica id ${JSON.stringify(replicaId)} must be 1 to 32 lowercase letters, digits or -`);
  }
  const settings = [
    ...(schema === undefined ? [] : [`-c search_path="${schema}"`]),
    ...(replicaId === undefined ? [] : [`-c spinneret.replica=${replicaId}`]),
  ];
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: 10_000,
    // Surfaces a silently dead server as an error (and a retried batch) instead of a hung flush.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...(settings.length === 0 ? {} : { options: settings.join(' ') }),
  });
  // An idle client's connection error would otherwise crash the process; the next query reports it.
  // Only the message and code: the error carries its client, whose connection parameters may hold a password.
  pool.on('error', (err: Error & { code?: string }) =>
    console.error(`store: idle PostgreSQL connection failed: ${err.message}${err.code === undefined ? '' : ` (${err.code})`}`),
  );
  const db: SqlDb = {
    ...client(pool),
    async transaction(fn) {
      const conn = await pool.connect();
      // A checked-out client's connection error is the pool's no longer: kept here (the next query fails with it), never
      // an uncaught 'error' event that would end the process; the client is then discarded, not put back.
      let broken: Error | undefined;
      const onError = (err: Error): void => {
        broken = err;
      };
      conn.on('error', onError);
      try {
        await conn.query('BEGIN');
        const result = await fn(client(conn));
        await conn.query('COMMIT');
        return result;
      } catch (err) {
        await conn.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        conn.off('error', onError);
        conn.release(broken);
      }
    },
    close: () => pool.end(),
  };
  if (schema !== undefined) {
    try {
      // Two replicas creating the schema at once would otherwise race on the catalog.
      await db.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock(hashtext('spinneret.schema'), hashtext($1))`, [schema]);
        await tx.exec(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
      });
    } catch (err) {
      await pool.end();
      throw err;
    }
  }
  return db;
}

/** Opens a PostgreSQL store. Does not migrate; {@link openStore} does. */
export async function openPostgresStore(options: PostgresOptions & SqlStoreOptions): Promise<SqlStore> {
  const { url, schema, maxConnections, replicaId, ...storeOptions } = options;
  return new SqlStore(await openPostgresDb({ url, schema, maxConnections, replicaId }), storeOptions);
}
