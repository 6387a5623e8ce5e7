/**
 * A replica reads back only what changed (coordinator/verification/shared-quarantines.ts), on
 * real PostgreSQL: with hundreds of other quarantines and benches in the tables, a word naming
 * one device reads that device's rows alone (the SQL takes its id), a read after a missed word
 * reads the rows changed since the last read, and an operator's lift on one replica, recorded
 * with who and why, lets the device go on the other.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReplicaKit, testVerification } from '../../testing/cluster.ts';
import type { SqlDb } from '../store/sql.ts';
import { uniqueSchema } from '../store/testing.ts';
import type { Verification } from './service.ts';
import { VerificationStore } from './verification-store.ts';

const kit = new ReplicaKit();
afterAll(() => kit.dispose());

/** Every statement B runs, with its parameters and how many rows it read. */
const seen: Array<{ sql: string; params: unknown[]; rows: number }> = [];
const counted = (db: SqlDb): SqlDb => ({
  ...db,
  async query<T>(sql: string, params?: readonly unknown[]) {
    const result = await db.query<T>(sql, params);
    seen.push({ sql, params: [...(params ?? [])], rows: result.rows.length });
    return result;
  },
});
const rowsRead = (): number => seen.reduce((n, s) => n + s.rows, 0);

let a: Verification;
let b: Verification;
let db: SqlDb;
const OTHERS = 300;

beforeAll(async () => {
  const schema = uniqueSchema('shared_quarantines');
  const storeA = await kit.store(schema, 'a');
  const storeB = await kit.store(schema, 'b');
  db = storeA.db;
  const checks = { canaryRate: 0, replicationRate: 0, seed: 1 };
  a = testVerification(storeA, checks);
  b = testVerification({ db: counted(storeB.db) }, checks);
  await Promise.all([a.start(), b.start()]);
  // Other devices' quarantines and benches, written an hour ago and still in force.
  const hourAgo = Date.now() - 3_600_000;
  await db.query(
    `INSERT INTO verification_quarantines (contributor_id, until_at, since_at) SELECT 'other' || i, NULL, $1 FROM generate_series(1, ${OTHERS}) i`,
    [hourAgo],
  );
  await db.query(
    `INSERT INTO verification_benched (contributor_id, model, until_at, updated_at) SELECT 'other' || i, 'tiny-embed', $1, $2 FROM generate_series(1, ${OTHERS}) i`,
    [Date.now() + 3_600_000, hourAgo],
  );
  seen.length = 0;
  await b.refreshShared(); // as a replica starts: what is in force
  expect(rowsRead()).toBe(2 * OTHERS);
}, 60_000);

describe('quarantines read back by what changed', () => {
  it('reads the rows of the device a word names, and no others', async () => {
    await new VerificationStore(db).quarantine('devx', null, Date.now()); // what replica A writes
    await a.refreshShared(['devx']); // (A holds it in memory, as the replica that judged it)
    seen.length = 0;
    await b.refreshShared(['devx']);
    expect(seen.length).toBeGreaterThan(0);
    for (const s of seen) {
      expect(s.sql).toMatch(/contributor_id = ANY\(\$1::text\[\]\)/);
      expect(s.params[0]).toEqual(['devx']);
    }
    expect(rowsRead()).toBe(1);
    expect((await b.report('devx')).quarantined).toBe(true);
  });

  it('after a missed word, reads the rows changed since its last read', async () => {
    await new VerificationStore(db).quarantine('devy', null, Date.now());
    seen.length = 0;
    await b.refreshShared();
    // The ids changed since (devx, devy; within the clock margin), then their rows: never the other 600.
    expect(rowsRead()).toBeLessThanOrEqual(4);
    expect((await b.report('devy')).quarantined).toBe(true);
  });

  it('lets a device go on B once an operator lifted its quarantine on A, and records who, when and why', async () => {
    const lifted = await a.liftQuarantine('devx', 'alice', 'the canary answer was wrong');
    expect(lifted).toMatchObject({ id: 'devx', liftedBy: 'alice', reason: 'the canary answer was wrong', quarantinedUntil: null });
    expect(await a.liftQuarantine('devx', 'alice', 'again')).toBeNull(); // none in force any more
    expect((await b.report('devx')).quarantined).toBe(true); // B has not read it yet
    seen.length = 0;
    await b.refreshShared(['devx']);
    expect(rowsRead()).toBe(1); // the lift's record
    expect((await b.report('devx')).quarantined).toBe(false);
    expect((await b.report('devy')).quarantined).toBe(true);
    const list = await b.quarantines();
    expect(list.quarantines.map((q) => q.id)).not.toContain('devx');
    expect(list.quarantines.map((q) => q.id)).toContain('devy');
    expect(list.lifts).toEqual([lifted]);
    // A's own record of the device says it was released, and why.
    const records = await db.query<{ kind: string; reason: string }>(
      `SELECT kind, reason FROM verification_records WHERE contributor_id = 'devx' ORDER BY id`,
    );
    expect(records.rows.at(-1)).toEqual({ kind: 'released', reason: 'Lifted by alice: the canary answer was wrong' });
  });
});
