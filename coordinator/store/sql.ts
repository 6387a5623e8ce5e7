/**
 * The little SQL surface {@link SqlStore} needs, satisfied by both PGlite and a `pg.Pool`,
 * so that the same queries and the same migrations run on either backend.
 */

/** Something that runs SQL: the database itself, or one transaction on it. */
export interface SqlClient {
  /** One statement with `$1…` parameters. Column values come back as the driver parses them. */
  query<T>(sql: string, params?: readonly unknown[]): Promise<{ rows: T[] }>;
  /** Several `;`-separated statements without parameters (a migration file). */
  exec(sql: string): Promise<void>;
}

/** A database connection (or pool) that can run transactions. */
export interface SqlDb extends SqlClient {
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Reads an integer column: `pg` returns BIGINT as a string, PGlite as a number.
 * Values stored by this module are always safe integers (ms since epoch, byte counts).
 */
export function toInt(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new TypeError(`expected a safe integer from the database, got ${String(value)}`);
  return n;
}

/** Like {@link toInt}, keeping SQL NULL as null. */
export function toIntOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : toInt(value);
}
