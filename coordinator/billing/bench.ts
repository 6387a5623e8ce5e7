/**
 * The ledger's cost per job on both backends: `npx tsx coordinator/billing/bench.ts [jobs]`.
 * One requester key reserves, is charged and released in turn; printed as jobs/s, for an empty
 * book and again after the key has a history of `jobs` jobs, against a baseline of a
 * deposit (one insert, no balance read) in the same run. A key's balance is a sum over its
 * entries, so reservations slow as its history grows; the second line shows by how much.
 */
import { Ledger } from '../ledger/ledger.ts';
import { fund } from '../ledger/testing.ts';
import { migrate, readMigrations } from '../store/migrate.ts';
import { BACKENDS } from '../store/testing.ts';

const jobs = Number(process.argv[2] ?? 2_000);
const KEY = { kind: 'requester' as const, apiKeyId: 'bench' };

async function rate(n: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  return n / ((performance.now() - started) / 1000);
}

for (const backend of BACKENDS) {
  const { db, dispose } = await backend.open();
  try {
    await migrate(db, await readMigrations());
    const ledger = new Ledger(db);
    const deposits = await rate(jobs, () => fund(ledger, 'bench', 1_000_000n));
    let next = 0;
    const job = async (): Promise<void> => {
      const jobId = `b${next++}`;
      await ledger.reserve({ jobId, payer: KEY, amount: 100_000n });
      if (next % 5 === 0) await ledger.releaseJob(jobId, 'bench');
      else
        await ledger.chargeJob({
          jobId,
          contributorWallet: 'EQbench',
          model: 'tiny-embed',
          usage: { promptTokens: 40, completionTokens: 0 },
        });
    };
    const fresh = await rate(200, job);
    await rate(jobs, job);
    const later = await rate(200, job);
    const entries = (
      await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ledger_entries WHERE account = 'requester:bench:available'`)
    ).rows[0]?.n;
    console.log(
      `${backend.name.padEnd(10)} deposit ${deposits.toFixed(0)}/s; job (reserve + charge or release) ${fresh.toFixed(0)}/s on a fresh key ` +
        `(ratio to a deposit ${(fresh / deposits).toFixed(2)}), ${later.toFixed(0)}/s with ${entries} entries on its available account (ratio ${(later / fresh).toFixed(2)})`,
    );
  } finally {
    await dispose();
  }
}
