/**
 * putJob throughput on both backends: `npx tsx coordinator/store/bench.ts [rows]`.
 * Inserts `rows` new jobs, then updates all of them (the upsert path), at a few batch sizes.
 */
import { SqlStore } from './sql-store.ts';
import type { SqlDb } from './sql.ts';
import { BACKENDS, job, wrapDb } from './testing.ts';

const rows = Number(process.argv[2] ?? 100_000);

async function timed(store: SqlStore, n: number, make: (i: number) => ReturnType<typeof job>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < n; i++) store.putJob(make(i));
  await store.flush();
  return Math.round(n / ((performance.now() - started) / 1000));
}

async function bench(name: string, db: SqlDb): Promise<void> {
  for (const batchSize of [100, 500, 2000]) {
    await db.exec('TRUNCATE jobs');
    const store = new SqlStore(wrapDb(db), { batchSize });
    await store.migrate();
    const insert = await timed(store, rows, (i) => job(`b-${i}`, { createdAt: 1_733_000_000_000 + i }));
    const update = await timed(store, rows, (i) => job(`b-${i}`, { state: 'done', resultBytes: i }));
    console.log(`${name.padEnd(10)} batch ${String(batchSize).padStart(4)}: insert ${insert} rows/s, update ${update} rows/s`);
    await store.close();
  }
}

for (const backend of BACKENDS) {
  const { db, dispose } = await backend.open();
  try {
    await new SqlStore(wrapDb(db)).migrate();
    await bench(backend.name, db);
  } finally {
    await dispose();
  }
}
