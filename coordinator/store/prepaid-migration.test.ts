/**
 * Migration 006 on a database from before prepaid requesters: keys made earlier get a deposit
 * memo of the same form as new ones, each their own.
 */
import { describe, expect, it } from 'vitest';
import * as v from 'valibot';
import { DepositMemo } from '../../protocol/wire.ts';
import { migrate, readMigrations } from './migrate.ts';
import { SqlStore } from './sql-store.ts';
import { BACKENDS } from './testing.ts';

describe.each(BACKENDS)('migration 006 on $name', (backend) => {
  it('gives keys made before it a unique deposit memo that finds them', async () => {
    const { db, dispose } = await backend.open();
    try {
      const all = await readMigrations();
      await migrate(
        db,
        all.filter((m) => m.version < 6),
      );
      for (const id of ['old-1', 'old-2', 'old-3']) {
        await db.query(
          `INSERT INTO api_keys (id, label, secret_sha256, jobs_per_minute, max_in_flight, created_at) VALUES ($1, 'old', $2, 1, 1, 0)`,
          [id, id.padEnd(64, '0')],
        );
      }
      expect(await migrate(db, all)).toEqual(all.filter((m) => m.version >= 6).map((m) => m.version));
      const { rows } = await db.query<{ id: string; deposit_memo: string }>('SELECT id, deposit_memo FROM api_keys ORDER BY id');
      expect(rows).toHaveLength(3);
      for (const row of rows) expect(v.is(DepositMemo, row.deposit_memo)).toBe(true);
      expect(new Set(rows.map((r) => r.deposit_memo)).size).toBe(3);
      const store = new SqlStore(db);
      expect((await store.findApiKeyByMemo(rows[1]?.deposit_memo ?? ''))?.id).toBe('old-2');
      const fresh = await store.createApiKey({ label: 'new', jobsPerMinute: 1, maxInFlight: 1 });
      expect(v.is(DepositMemo, fresh.record.depositMemo)).toBe(true);
      expect((await store.findApiKeyByMemo(fresh.record.depositMemo))?.id).toBe(fresh.record.id);
    } finally {
      await dispose();
    }
  });
});
