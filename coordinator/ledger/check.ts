/**
 * Audits the ledger and exits 1 when the book has problems (2 when it cannot be read).
 *
 *   npx tsx coordinator/ledger/check.ts [--data-dir DIR] [--schema NAME]
 *
 * `DATABASE_URL` selects PostgreSQL; otherwise the PGlite folder given by `--data-dir`
 * (default: SPINNERET_DATA_DIR or `.spinneret/coordinator`, as `npm start` uses).
 */
import { parseArgs } from 'node:util';
import { migrate, readMigrations } from '../store/migrate.ts';
import { openPgliteDb } from '../store/pglite.ts';
import { openPostgresDb } from '../store/postgres.ts';
import { checkBooks } from './books.ts';

const { values } = parseArgs({ options: { 'data-dir': { type: 'string' }, schema: { type: 'string' } } });
const url = process.env['DATABASE_URL'] || undefined;
const dataDir = values['data-dir'] ?? process.env['SPINNERET_DATA_DIR'] ?? '.spinneret/coordinator';
try {
  const db = url ? await openPostgresDb({ url, schema: values.schema }) : await openPgliteDb({ dataDir });
  try {
    // An older database may predate the ledger; migrating makes an empty book, which passes.
    await migrate(db, await readMigrations());
    const result = await checkBooks(db);
    console.log(`ledger on ${url ? 'PostgreSQL' : `PGlite ${dataDir}`}: ${result.txns} transactions, ${result.entries} entries`);
    const t = result.totals;
    console.log(
      `  nanoTON: deposits ${t.deposits}, payouts ${t.payouts}, requesters hold ${t.requesters}, check budget ${t.budget}, penalties ${t.penalties}, unmatched deposits ${t.unmatched}`,
    );
    for (const p of result.problems) console.log(`  ${p.kind}: ${p.message}`);
    console.log(result.ok ? 'books balance' : `${result.problems.length} problem(s)`);
    process.exitCode = result.ok ? 0 : 1;
  } finally {
    await db.close();
  }
} catch (err) {
  console.error('ledger check could not read the database:', err);
  process.exitCode = 2;
}
