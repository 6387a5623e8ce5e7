/**
 * Contributor earnings: credit finished jobs, settle them once their verification window
 * has passed (or void them), pay settled balances from the hot wallet, and show a wallet
 * what it earned. Balances live in the ledger; this module decides when money moves.
 */
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import type { EarningsSummary } from '../../protocol/answers.ts';
import type { Usage } from '../../protocol/jobs.ts';
import { pendingAccount } from '../ledger/accounts.ts';
import { JobStateError, UnknownJobError, UnknownPriceError, UnknownReservationError } from '../ledger/errors.ts';
import type { Ledger } from '../ledger/ledger.ts';
import type { Chain } from '../payouts/chain.ts';
import type { HotWallet } from '../payouts/hot-wallet.ts';
import { PayoutRunner, type PayoutRunnerOptions, type RunReport } from '../payouts/payouts.ts';
import type { SqlDb } from '../store/sql.ts';
import { LedgerPayoutBook } from './payout-book.ts';

/** What verification says about a job once its window has passed. */
export type Verdict = 'ok' | 'void' | 'hold';

/** Dependencies and settings of {@link createEarnings}. */
export interface EarningsOptions {
  readonly db: SqlDb;
  readonly ledger: Ledger;
  readonly chain: Chain;
  readonly hotWallet: HotWallet;
  /** Minimum settled nanoTON for a wallet to be paid. */
  readonly threshold: bigint;
  /** Verification window: a credit settles this many ms after it was made. */
  readonly windowMs: number;
  /** ms since epoch. Default Date.now. */
  readonly clock?: () => number;
  /** Payout round interval for {@link Earnings.start}, ms. Default 10 min. */
  readonly payoutIntervalMs?: number;
  /** Settlement interval for {@link Earnings.start}, ms. Default 60 s. */
  readonly settleIntervalMs?: number;
  /** Verification's verdict on a job; 'hold' leaves it pending until asked again. Default 'ok'. */
  readonly isVerified?: (jobId: string) => Verdict | Promise<Verdict>;
  /** Extra runner settings (retries, polling, hooks). */
  readonly runner?: Partial<Omit<PayoutRunnerOptions, 'book' | 'chain' | 'wallet' | 'threshold'>>;
  /** Where timer failures go. Default console.error. */
  readonly log?: (message: string, err?: unknown) => void;
}

/** A finished job as the job loop reports it. */
export interface JobDone {
  readonly jobId: string;
  /** The contributor's payout address; null when they have not linked a wallet. */
  readonly wallet: string | null | undefined;
  readonly model: string;
  /** The billed usage: the contributor's report clamped to the job's envelope. */
  readonly usage: Usage;
}

/** The outcome of {@link Earnings.onJobDone}. */
export type CreditOutcome =
  | {
      readonly credited: true;
      /** nanoTON owed to the contributor, pending. */
      readonly amount: bigint;
      /** nanoTON charged to the payer (requester or check budget). */
      readonly gross: bigint;
      readonly replayed: boolean;
    }
  | {
      readonly credited: false;
      /**
       * `no-wallet`: charged, the share held in `network:unclaimed`; `unknown-model`: no price,
       * nothing charged; `no-reservation`: nothing reserved for the job (or it was released), nothing charged.
       */
      readonly reason: 'no-wallet' | 'unknown-model' | 'no-reservation';
      /** nanoTON charged to the payer. */
      readonly gross: bigint;
      readonly message: string;
    };

/** The outcome of {@link Earnings.settleDue}. */
export interface SettleReport {
  readonly settled: number;
  readonly voided: number;
  readonly held: number;
  /** Rows whose credit never reached the ledger (a crash between the two writes). */
  readonly dropped: number;
}

/** A wallet's earnings (`GET /v1/earnings/:wallet`), nanoTON as decimal strings. */
export type { EarningsSummary };

/** The earnings service. */
export interface Earnings {
  readonly book: LedgerPayoutBook;
  onJobDone(job: JobDone): Promise<CreditOutcome>;
  settleDue(): Promise<SettleReport>;
  /**
   * Takes a pending credit back now (a failed check or a quarantine). A credit not in the
   * ledger yet is left alone: verification says `void` when its window ends.
   */
  voidNow(jobId: string, reason: string): Promise<'voided' | 'not-credited' | 'already-settled'>;
  runPayouts(): Promise<RunReport>;
  start(): void;
  stop(): void;
  summary(wallet: string): Promise<EarningsSummary>;
  /** `GET /earnings/:wallet` → {@link EarningsSummary}; the coordinator mounts it under `/v1`. */
  routes(): Hono;
}

const SETTLE_BATCH = 500;

/** Builds the earnings service over the store's database and the ledger. */
export function createEarnings(options: EarningsOptions): Earnings {
  const clock = options.clock ?? Date.now;
  const log = options.log ?? ((message: string, err?: unknown) => console.error(`[earnings] ${message}`, err ?? ''));
  const isVerified = options.isVerified ?? (() => 'ok' as const);
  const { db, ledger } = options;
  const book = new LedgerPayoutBook(db, ledger, { now: clock });
  const runner = new PayoutRunner({
    now: clock,
    ...options.runner,
    book,
    chain: options.chain,
    wallet: options.hotWallet,
    threshold: options.threshold,
  });
  let payoutRun: Promise<RunReport> | null = null;
  let settleRun: Promise<SettleReport> | null = null;
  const timers: NodeJS.Timeout[] = [];

  const markJob = (jobId: string, state: 'settled' | 'voided' | 'dropped') =>
    db.query(`UPDATE earnings_jobs SET state = $2, updated_at = $3 WHERE job_id = $1`, [jobId, state, clock()]);

  /**
   * Charges a delivered job out of its reservation and owes the contributor its share: the
   * payer always pays for a delivered job; a contributor without a wallet earns nothing (its
   * share is held in `network:unclaimed`). A model without a price releases the reservation.
   */
  async function onJobDone(job: JobDone): Promise<CreditOutcome> {
    const trimmed = job.wallet?.trim();
    const wallet = trimmed === undefined || trimmed === '' ? null : trimmed;
    const now = clock();
    // The row first: a crash before the credit leaves a row that settleDue drops, never a
    // credit that nothing would settle.
    if (wallet !== null) {
      await db.query(
        `INSERT INTO earnings_jobs (job_id, wallet, credited_at, due_at, state, updated_at) VALUES ($1, $2, $3, $4, 'pending', $3)
         ON CONFLICT (job_id) DO NOTHING`,
        [job.jobId, wallet, now, now + options.windowMs],
      );
    }
    try {
      const txn = await ledger.chargeJob({ jobId: job.jobId, contributorWallet: wallet, model: job.model, usage: job.usage });
      const gross = txn.entries.filter((e) => e.amount < 0n && !e.account.endsWith(':available')).reduce((sum, e) => sum - e.amount, 0n);
      if (wallet === null) {
        return {
          credited: false,
          reason: 'no-wallet',
          gross,
          message: `job ${job.jobId} earns nothing: its contributor has no payout wallet`,
        };
      }
      const share = txn.entries.find((e) => e.account === pendingAccount(wallet));
      // A check that failed before the credit landed (its voider found nothing to take back) takes it now.
      if (!txn.replayed && (await isVerified(job.jobId)) === 'void')
        await voidNow(job.jobId, 'verification failed before the credit landed');
      return { credited: true, amount: share === undefined ? 0n : -share.amount, gross, replayed: txn.replayed };
    } catch (err) {
      if (err instanceof UnknownPriceError) {
        await ledger.releaseJob(job.jobId, 'the model has no price').catch((e: unknown) => {
          if (!(e instanceof UnknownReservationError || e instanceof JobStateError)) throw e;
        });
        if (wallet !== null) await markJob(job.jobId, 'dropped');
        return { credited: false, reason: 'unknown-model', gross: 0n, message: err.message };
      }
      if (err instanceof UnknownReservationError || (err instanceof JobStateError && err.state === 'released')) {
        if (wallet !== null) await markJob(job.jobId, 'dropped');
        return { credited: false, reason: 'no-reservation', gross: 0n, message: `job ${job.jobId} was not charged: ${err.message}` };
      }
      throw err;
    }
  }

  async function settleOnce(): Promise<SettleReport> {
    const counts = { settled: 0, voided: 0, held: 0, dropped: 0 };
    const { rows } = await db.query<{ job_id: string }>(
      `SELECT job_id FROM earnings_jobs WHERE state = 'pending' AND due_at <= $1 ORDER BY due_at, job_id LIMIT ${SETTLE_BATCH}`,
      [clock()],
    );
    for (const { job_id: jobId } of rows) {
      try {
        const verdict = await isVerified(jobId);
        if (verdict === 'hold') {
          counts.held++;
          continue;
        }
        if (verdict === 'void') await ledger.voidJob(jobId, 'verification failed');
        else await ledger.settleJob(jobId);
        await markJob(jobId, verdict === 'void' ? 'voided' : 'settled');
        counts[verdict === 'void' ? 'voided' : 'settled']++;
      } catch (err) {
        if (err instanceof UnknownJobError) {
          await markJob(jobId, 'dropped');
          counts.dropped++;
        } else if (err instanceof JobStateError && (err.state === 'settled' || err.state === 'voided')) {
          // Already the other way in the ledger (settled or voided elsewhere): the ledger wins.
          await markJob(jobId, err.state);
        } else {
          throw err;
        }
      }
    }
    return counts;
  }

  /** One at a time: a timer tick during a slow run joins it instead of starting another. */
  function settleDue(): Promise<SettleReport> {
    settleRun ??= settleOnce().finally(() => (settleRun = null));
    return settleRun;
  }

  async function voidNow(jobId: string, reason: string): Promise<'voided' | 'not-credited' | 'already-settled'> {
    try {
      await ledger.voidJob(jobId, reason.slice(0, 500));
    } catch (err) {
      if (err instanceof UnknownJobError) return 'not-credited';
      if (err instanceof JobStateError && err.state === 'settled') return 'already-settled';
      throw err;
    }
    await markJob(jobId, 'voided');
    return 'voided';
  }

  function runPayouts(): Promise<RunReport> {
    payoutRun ??= runner.runOnce().finally(() => (payoutRun = null));
    return payoutRun;
  }

  async function summary(wallet: string): Promise<EarningsSummary> {
    const b = await ledger.balances(wallet);
    const payouts = await book.payoutsFor(wallet);
    return {
      wallet,
      balances: { pending: b.pending.toString(), settled: b.settled.toString(), inFlight: b.inFlight.toString(), paid: b.paid.toString() },
      payouts: payouts.map((p) => ({
        payoutId: p.payoutId,
        status: p.status,
        amount: p.amount.toString(),
        txHash: p.txHash,
        fee: p.fee === null ? null : p.fee.toString(),
        reason: p.reason,
        createdAt: p.createdAt,
        updatedAt: p.updatedAt,
      })),
    };
  }

  function every(ms: number, label: string, fn: () => Promise<unknown>): void {
    const timer = setInterval(() => {
      fn().catch((err: unknown) => log(`${label} failed; retrying in ${ms} ms`, err));
    }, ms);
    timer.unref();
    timers.push(timer);
  }

  return {
    book,
    onJobDone,
    settleDue,
    voidNow,
    runPayouts,
    summary,
    start() {
      if (timers.length > 0) return;
      every(options.settleIntervalMs ?? 60_000, 'settlement', settleDue);
      every(options.payoutIntervalMs ?? 600_000, 'payout round', runPayouts);
    },
    stop() {
      for (const timer of timers.splice(0)) clearInterval(timer);
    },
    routes() {
      const app = new Hono();
      // The dashboard is on another origin than the coordinator; the summary is public data.
      app.use('/earnings/*', cors({ origin: '*', allowMethods: ['GET'] }));
      app.get('/earnings/:wallet', async (c) => c.json(await summary(c.req.param('wallet'))));
      return app;
    },
  };
}
