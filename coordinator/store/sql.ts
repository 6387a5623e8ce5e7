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

/** Socket errors of a database that went away or is not there yet. */
const GONE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Whether `err` says the database is unreachable or restarting (retrying later can work), as
 * opposed to refusing the statement: a socket error, SQLSTATE class 08 (connection exception),
 * 57P01–57P03 (shut down, crashed, starting up), 53300 (too many connections), and the `pg`
 * pool's own connection errors.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (GONE_ERRNO.has(code) || /^08[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code) || code === '53300')) {
    return true;
  }
  return (
    typeof message === 'string' &&
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended unexpectedly|the database system is (starting up|shutting down)/i.test(
      message,
    )
  );
}
