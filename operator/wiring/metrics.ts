/**
 * The coordinator's `/metrics` beyond its own (jobs, HTTP): the process, money (deposits,
 * payouts, the hot wallet), verification (checks, quarantines), the job write buffer and,
 * for replicas, the cluster.
 */
import { Address } from '@ton/core';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { registerClusterMetrics } from '../../coordinator/cluster/metrics.ts';
import type { Replica } from '../../coordinator/cluster/replica.ts';
import type { Money } from '../../coordinator/earnings/local.ts';
import type { SqlStore } from '../../coordinator/store/sql-store.ts';
import { isDatabaseUnavailable, type SqlClient } from '../../coordinator/store/sql.ts';

/** A registry with the process's default metrics. */
export function processRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Money, verification and store metrics, and the cluster's with a replica. */
export function registerNodeMetrics(registry: Registry, store: SqlStore, money: Money, replica: Replica | undefined): void {
  registerMoneyMetrics(registry, store.db, money);
  registerVerificationMetrics(registry, store.db);
  registerStoreMetrics(registry, store);
  if (replica !== undefined) registerClusterMetrics(registry, replica);
}

const toNumber = (value: unknown): number => Number(value ?? 0);

/**
 * `read`, or its last good value while the database is unreachable: `/metrics` keeps answering
 * through a database outage (the outage itself shows in `spinneret_job_records_buffered`).
 */
function lastGood<T>(read: () => Promise<T>, initial: T): () => Promise<T> {
  let last = initial;
  return async () => {
    try {
      last = await read();
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
    }
    return last;
  };
}

/** A counter whose value is a total kept in the database (monotone, survives restarts). */
function dbCounter(registry: Registry, name: string, help: string, read: () => Promise<number>): void {
  const value = lastGood(read, 0);
  new Counter({
    name,
    help,
    registers: [registry],
    async collect() {
      this.reset();
      this.inc(await value());
    },
  });
}

/** Deposits and payouts from the ledger, the hot wallet's balance from the chain (read at most every 30 s). */
function registerMoneyMetrics(registry: Registry, db: SqlClient, money: Money): void {
  const deposits = async () =>
    (
      await db.query<{ n: unknown; total: unknown }>(
        `SELECT count(*) AS n, coalesce(sum(amount), 0) AS total FROM ledger_entries WHERE account = 'chain:deposits' AND amount > 0`,
      )
    ).rows[0];
  const payouts = async () =>
    (
      await db.query<{ n: unknown; total: unknown }>(
        `SELECT count(DISTINCT e.txn_id) AS n, coalesce(sum(e.amount), 0) AS total FROM ledger_entries e JOIN ledger_txns t ON t.id = e.txn_id
         WHERE t.kind = 'payout.confirm' AND e.account LIKE 'contributor:%:in-flight'`,
      )
    ).rows[0];
  dbCounter(registry, 'spinneret_deposits_total', 'Deposits booked from the chain.', async () => toNumber((await deposits())?.n));
  dbCounter(registry, 'spinneret_deposits_nanoton_total', 'nanoTON deposited (booked).', async () => toNumber((await deposits())?.total));
  dbCounter(registry, 'spinneret_payouts_total', 'Payouts confirmed on chain.', async () => toNumber((await payouts())?.n));
  dbCounter(registry, 'spinneret_payouts_nanoton_total', 'nanoTON paid to contributors (confirmed).', async () =>
    toNumber((await payouts())?.total),
  );
  let cached: { at: number; value: bigint } | null = null;
  const hotWallet = Address.parse(money.hotWalletAddress);
  new Gauge({
    name: 'spinneret_hot_wallet_balance_nanoton',
    help: "The hot wallet's balance on chain, nanoTON.",
    registers: [registry],
    async collect() {
      if (cached === null || Date.now() - cached.at > 30_000) cached = { at: Date.now(), value: await money.balanceOf(hotWallet) };
      this.set(Number(cached.value));
    },
  });
}

/** The job write buffer: records waiting for the database, and those it refused and set aside. */
function registerStoreMetrics(registry: Registry, store: SqlStore): void {
  new Counter({
    name: 'spinneret_job_records_set_aside_total',
    help: 'Job records the database refused for their data (set aside with their error, never retried).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(store.setAsideJobs.count);
    },
  });
  new Gauge({
    name: 'spinneret_job_records_buffered',
    help: 'Job records put and not yet written to the database (grows while it is unreachable).',
    registers: [registry],
    collect() {
      this.set(store.bufferedJobs);
    },
  });
}

const PASSED = ['canary-pass', 'replica-agree', 'tie-break-pass'];
const FAILED = ['canary-fail', 'replica-disagree', 'tie-break-fail'];

/** Checks passed and failed, quarantines, from the verification records. */
function registerVerificationMetrics(registry: Registry, db: SqlClient): void {
  const kinds = lastGood(
    async () => (await db.query<{ kind: string; n: unknown }>(`SELECT kind, count(*) AS n FROM verification_records GROUP BY kind`)).rows,
    [],
  );
  const quarantined = lastGood(
    async () =>
      toNumber(
        (
          await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM verification_quarantines WHERE until_at IS NULL OR until_at > $1`, [
            Date.now(),
          ])
        ).rows[0]?.n,
      ),
    0,
  );
  new Counter({
    name: 'spinneret_verification_checks_total',
    help: 'Verification findings by kind (canary, replica, tie-break) and result (passed, failed).',
    labelNames: ['check', 'result'],
    registers: [registry],
    async collect() {
      const rows = await kinds();
      this.reset();
      for (const kind of [...PASSED, ...FAILED]) {
        const n = toNumber(rows.find((r) => r.kind === kind)?.n);
        this.inc({ check: kind.replace(/-(pass|fail|agree|disagree)$/, ''), result: PASSED.includes(kind) ? 'passed' : 'failed' }, n);
      }
    },
  });
  dbCounter(registry, 'spinneret_verification_quarantines_total', 'Contributors quarantined (each time).', async () =>
    toNumber((await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM verification_records WHERE kind = 'quarantined'`)).rows[0]?.n),
  );
  new Gauge({
    name: 'spinneret_contributors_quarantined',
    help: 'Contributors in quarantine now.',
    registers: [registry],
    async collect() {
      this.set(await quarantined());
    },
  });
}
