import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate, readMigrations } from '../store/migrate.ts';
import { openTestPostgres, TEST_DATABASE_URL, uniqueSchema } from '../store/testing.ts';

const CHECK = fileURLToPath(new URL('./check.ts', import.meta.url));

/** Runs the CLI; resolves with its exit code and output. */
async function runCheck(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', CHECK, ...args], {
      env: { ...process.env, DATABASE_URL: '', ...env },
    });
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '' };
  }
}

describe('ledger check CLI', () => {
  const schema = uniqueSchema('ledger_cli');
  let dir: string | undefined;

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    const db = await openTestPostgres(schema);
    await db.query(`DROP SCHEMA "${schema}" CASCADE`).finally(() => db.close());
  });

  it('passes an empty PGlite book', async () => {
    dir = await mkdtemp(join(tmpdir(), 'spn-ledger-'));
    const { code, stdout } = await runCheck(['--data-dir', join(dir, 'db')], {});
    expect(stdout).toContain('books balance');
    expect(code).toBe(0);
  }, 60_000);

  it('exits 1 and names the problem on a PostgreSQL book with an overdrawn contributor', async () => {
    const db = await openTestPostgres(schema);
    try {
      await migrate(db, await readMigrations());
      await db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO ledger_txns (idempotency_key, kind, ref, created_at) VALUES ('payout:p:intent', 'payout.intent', 'p', 0)`,
        );
        await tx.exec(
          `INSERT INTO ledger_entries (txn_id, account, amount, kind, ref, created_at) VALUES
           (1, 'contributor:w:settled', 9, 'payout.intent', 'p', 0), (1, 'contributor:w:in-flight', -9, 'payout.intent', 'p', 0)`,
        );
      });
    } finally {
      await db.close();
    }
    const { code, stdout } = await runCheck(['--schema', schema], { DATABASE_URL: TEST_DATABASE_URL });
    expect(stdout).toContain('negative-balance: contributor:w:settled is overdrawn by 9 nanoTON');
    expect(code).toBe(1);
  }, 60_000);
});
