/**
 * SQL migrations: `migrations/NNN_name.sql`, applied in version order, each in its own
 * transaction, recorded in `schema_migrations`. Safe to run from several replicas at once.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SqlClient, SqlDb } from './sql.ts';

/** One migration file. */
export interface Migration {
  /** The `NNN` of `NNN_name.sql`. */
  version: number;
  name: string;
  sql: string;
}

/** The folder of this module's migrations. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

const FILE_NAME = /^(\d+)_([\w-]+)\.sql$/;

/** Reads `NNN_name.sql` files from `dir`, sorted by version; other files are ignored. */
export async function readMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for (const file of await readdir(dir)) {
    const match = FILE_NAME.exec(file);
    if (!match?.[1] || !match[2]) continue;
    migrations.push({ version: Number(match[1]), name: match[2], sql: await readFile(join(dir, file), 'utf8') });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]?.version === migrations[i - 1]?.version) {
      throw new Error(`two migrations in ${dir} have version ${migrations[i]?.version}; renumber one`);
    }
  }
  return migrations;
}

/**
 * Serialises migrators on the same schema until the transaction ends. PGlite has one
 * connection, so there it only costs a round trip. `current_schema()` is NULL when the
 * search_path names no existing schema, and the lock functions are strict, hence coalesce.
 */
async function lockSchema(tx: SqlClient): Promise<void> {
  await tx.query(`SELECT pg_advisory_xact_lock(hashtext('spinneret.migrate'), hashtext(coalesce(current_schema(), '')))`);
}

/**
 * Applies the migrations not yet recorded in `schema_migrations`; returns their versions.
 * A failing migration rolls back alone and rejects; those before it stay applied.
 */
export async function migrate(db: SqlDb, migrations: readonly Migration[], now: () => number = Date.now): Promise<number[]> {
  const applied: number[] = [];
  for (const migration of migrations) {
    const ran = await db.transaction(async (tx) => {
      await lockSchema(tx);
      await tx.exec(
        `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
      );
      const done = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [migration.version]);
      if (done.rows.length > 0) return false;
      try {
        await tx.exec(migration.sql);
      } catch (err) {
        throw new Error(`migration ${migration.version}_${migration.name} failed: ${String(err)}`, { cause: err });
      }
      await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
        migration.version,
        migration.name,
        now(),
      ]);
      return true;
    });
    if (ran) applied.push(migration.version);
  }
  return applied;
}
