/**
 * Prepaid jobs (docs/protocol.md, "Reservations and 402"): a requester job reserves its
 * envelope's maximum price from its key's balance before it exists, or gets a 402 that says
 * how much is short and where to deposit; a check job reserves from the network's check
 * budget or is not created; a finished job is charged its billed usage (by the earnings
 * service) and every other ending releases the whole reservation. Reservations the relay
 * lost track of (a crash) are released after `staleAfterMs`. The money moves in the ledger;
 * `job_billing` keeps, per job, what was agreed, claimed and billed.
 */
import type { BillingEnvelope } from '../../protocol/billing.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { Account, PaymentRequired } from '../../protocol/wire.ts';
import { type Clock, systemClock } from '../clock.ts';
import type { Job } from '../jobs/job.ts';
import type { CheckJobBill, RelayBilling } from '../leases/billing.ts';
import type { JobDone, Refusal, Relay } from '../leases/relay.ts';
import { BudgetLimitError, InsufficientFundsError, JobStateError, UnknownPriceError, UnknownReservationError } from '../ledger/errors.ts';
import type { Ledger, PayerBalances } from '../ledger/ledger.ts';
import { price } from '../ledger/prices.ts';
import type { LedgerTxn } from '../ledger/txn.ts';
import { toInt, type SqlDb } from '../store/sql.ts';
import type { ApiKeyRecord, Store } from '../store/types.ts';
import { CheckBudget } from './check-budget.ts';
import type { BillingCounts } from './metrics.ts';
import { BillingRows } from './rows.ts';

/** Settings of {@link createBilling}. */
export interface BillingOptions {
  readonly db: SqlDb;
  readonly ledger: Ledger;
  /** For a re-run: the contributor of the job it re-runs. */
  readonly store: Pick<Store, 'getJob'>;
  /** Where requesters send TON (shown with the memo in 402s and `GET /v1/account`). */
  readonly depositAddress: string;
  /** Most nanoTON the check budget may have reserved for checks in flight at once. */
  readonly budgetLimit: bigint;
  /** An open reservation older than this, whose job this coordinator no longer runs, is released, ms. Default 1 h. */
  readonly staleAfterMs?: number;
  /** How often stale reservations are looked for, ms. Default 60 s. */
  readonly sweepIntervalMs?: number;
  readonly clock?: Clock;
  /** Where unexpected failures go. Default console.error. */
  readonly log?: (message: string, err?: unknown) => void;
}

/** A requester job's reservation, or why there is none. */
export type ReserveOutcome = { readonly ok: true; readonly amount: bigint } | { readonly ok: false; readonly body: PaymentRequired };

export interface Billing {
  /** For the relay (`createCoordinator({ billing })` wires it). */
  readonly relay: RelayBilling;
  readonly counts: Readonly<BillingCounts>;
  /** Where requesters deposit. */
  readonly depositAddress: string;
  readonly budgetLimit: bigint;
  /** Connects to the coordinator's relay: re-runs, and cancelling a check whose reservation failed, need it. */
  attach(relay: Relay): void;
  /** Reads the check budget and starts the stale-reservation sweep. */
  start(): Promise<void>;
  stop(): void;
  /** The maximum price of a job: its envelope at the model's prices (0 for a model without a price). */
  maxPrice(model: string, envelope: BillingEnvelope): bigint;
  /** Reserves a requester job's maximum price under `jobId`, before the job exists. */
  reserveJob(key: ApiKeyRecord, jobId: string, model: string, kind: JobKind, envelope: BillingEnvelope): Promise<ReserveOutcome>;
  /** Gives a job's reservation back (idempotent; a charged job keeps its charge). */
  release(jobId: string, reason: string): Promise<void>;
  /** Resolves once a check job's budget reservation is written (charge it after). */
  whenReserved(jobId: string): Promise<void>;
  /** Records what a finished job's contributor claimed and what was billed and charged. */
  recordDone(done: JobDone, charged: bigint | null): Promise<void>;
  /** The key's balances and deposit instructions (`GET /v1/account`). */
  account(key: ApiKeyRecord): Promise<Account>;
  /** The check budget's balances. */
  budget(): Promise<PayerBalances>;
  /** Releases reservations older than `staleAfterMs` whose job this coordinator no longer runs (the timer's work). */
  sweepStale(): Promise<void>;
  /**
   * On start, after the unfinished jobs were failed: releases every open reservation whose job a
   * previous run left without an end (never recorded, or recorded failed or cancelled), at once
   * rather than after `staleAfterMs`. How many. With `replicaId`, only the reservations that
   * replica wrote (`job_billing.replica_id`, migration 010; null: rows that name none): a live
   * replica's job row may still be on its way to the database.
   */
  releaseOrphaned(replicaId?: string | null): Promise<number>;
  /**
   * Requester jobs the store has as done whose reservation is still open (a run died before
   * charging them), with their envelopes. With `replicaId` (replicas, migration 010): only the
   * reservations that replica wrote (null: rows that name none), as for {@link releaseOrphaned}.
   */
  doneUncharged(replicaId?: string | null): Promise<Array<{ jobId: string; envelope: BillingEnvelope }>>;
  /** Moves commission into the check budget (the operator's call). */
  fundBudgetFromFees(fundingId: string, amount: bigint): Promise<LedgerTxn>;
  /** The budget changed outside billing (a deposit to it was booked): read it again. */
  refreshBudget(): Promise<void>;
  /**
   * A free re-run of a delivered requester job (docs/protocol.md, "Penalties and re-runs"): a
   * `rerun` check job of the same key, model, kind and envelope, paid by the check budget,
   * never placed on the contributor that ran the job. Once per job.
   */
  createRerun(primaryJobId: string): Promise<Job | Refusal>;
}

/** Envelopes of recent requester jobs kept for checks of them (a tie-break can come minutes later). */
const RECENT_ENVELOPES = 100_000;

/** Builds billing over the coordinator's database and ledger. */
export function createBilling(options: BillingOptions): Billing {
  const { ledger } = options;
  const clock = options.clock ?? systemClock;
  const log = options.log ?? ((message: string, err?: unknown) => console.error(`[billing] ${message}`, err ?? ''));
  const staleAfterMs = options.staleAfterMs ?? 3_600_000;
  const counts: BillingCounts = { jobsReserved: 0, jobsRefused: 0, checksReserved: 0, checksRefused: 0, released: 0, clamped: 0 };
  const rows = new BillingRows(options.db, clock);
  const budget = new CheckBudget(ledger, options.budgetLimit);
  const refresh = (): Promise<void> => budget.refresh();
  let relay: Relay | null = null;
  let timer: NodeJS.Timeout | null = null;
  const checkJobs = new Set<string>();
  const recentEnvelopes = new Map<string, BillingEnvelope>();
  const rerunning = new Set<string>();

  const maxPrice = (model: string, envelope: BillingEnvelope): bigint => {
    try {
      return price(model, { promptTokens: envelope.inputTokens, completionTokens: envelope.maxOutputTokens }, ledger.prices).gross;
    } catch (err) {
      if (err instanceof UnknownPriceError) return 0n;
      throw err;
    }
  };

  async function releaseNow(jobId: string, reason: string): Promise<void> {
    try {
      const txn = await ledger.releaseJob(jobId, reason);
      if (!txn.replayed) counts.released++;
    } catch (err) {
      if (err instanceof JobStateError) return;
      if (!(err instanceof UnknownReservationError)) throw err;
    }
    await rows.markReleased(jobId);
  }

  async function release(jobId: string, reason: string): Promise<void> {
    if (!checkJobs.has(jobId)) return releaseNow(jobId, reason);
    checkJobs.delete(jobId);
    return budget.enqueue(async () => {
      await releaseNow(jobId, reason);
      await refresh();
    });
  }

  const relayBilling: RelayBilling = {
    reserveCheck(bill: CheckJobBill): boolean {
      const amount = maxPrice(bill.model, bill.envelope);
      if (!budget.decide(bill.jobId, amount)) {
        counts.checksRefused++;
        return false;
      }
      checkJobs.add(bill.jobId);
      counts.checksReserved++;
      budget
        .enqueue(async () => {
          try {
            const rerunOf = bill.role === 'rerun' ? (bill.primaryJobId ?? null) : null;
            const { jobId, apiKeyId, role, model, kind, envelope } = bill;
            await rows.insert({ jobId, apiKeyId, payer: 'budget', role, model, kind, envelope, amount, rerunOf });
            await ledger.reserve({ jobId: bill.jobId, payer: budget.payer, amount, limit: options.budgetLimit });
          } catch (err) {
            // Another coordinator spent the budget first: the check cannot be paid, so it stops.
            if (!(err instanceof InsufficientFundsError || err instanceof BudgetLimitError)) throw err;
            counts.checksRefused++;
            const job = relay?.jobById(bill.jobId);
            if (job !== undefined)
              relay?.refuse(job, { code: 'PAYMENT_REQUIRED', message: "The network's check budget could not cover this check." });
          } finally {
            await refresh();
            budget.written(bill.jobId);
          }
        })
        .catch((err: unknown) => log(`reserving check ${bill.jobId} failed`, err));
      return true;
    },
    ended(jobId, reason) {
      void release(jobId, reason).catch((err: unknown) => log(`releasing job ${jobId} failed`, err));
    },
    envelopeOf: (jobId) => recentEnvelopes.get(jobId),
  };

  async function reserveJob(
    key: ApiKeyRecord,
    jobId: string,
    model: string,
    kind: JobKind,
    envelope: BillingEnvelope,
  ): Promise<ReserveOutcome> {
    const amount = maxPrice(model, envelope);
    await rows.insert({ jobId, apiKeyId: key.id, payer: 'requester', role: 'job', model, kind, envelope, amount, rerunOf: null });
    try {
      await ledger.reserve({ jobId, payer: { kind: 'requester', apiKeyId: key.id }, amount });
    } catch (err) {
      await rows.deleteReserved(jobId);
      if (!(err instanceof InsufficientFundsError)) throw err;
      counts.jobsRefused++;
      return { ok: false, body: paymentRequired(err, { address: options.depositAddress, memo: key.depositMemo }) };
    }
    counts.jobsReserved++;
    recentEnvelopes.set(jobId, envelope);
    if (recentEnvelopes.size > RECENT_ENVELOPES) {
      const oldest = recentEnvelopes.keys().next();
      if (oldest.done !== true) recentEnvelopes.delete(oldest.value);
    }
    return { ok: true, amount };
  }

  async function sweep(): Promise<void> {
    const stale = await rows.staleReserved(clock.now() - staleAfterMs);
    for (const jobId of stale) {
      const live = relay?.jobById(jobId);
      if (live !== undefined && !live.finished) continue;
      await release(jobId, `no result within ${Math.round(staleAfterMs / 60_000)} min (the coordinator lost track of the job)`);
    }
    if (stale.length > 0) await budget.enqueue(refresh);
  }

  async function releaseOrphaned(replicaId?: string | null): Promise<number> {
    let n = 0;
    for (const jobId of await rows.orphaned(replicaId)) {
      if (relay?.jobById(jobId) !== undefined) continue;
      await release(jobId, 'the coordinator restarted');
      n++;
    }
    if (n > 0) await budget.enqueue(refresh);
    return n;
  }

  async function createRerun(primaryJobId: string): Promise<Job | Refusal> {
    const refuse = (status: Refusal['status'], code: Refusal['error']['code'], message: string): Refusal => ({
      status,
      error: { code, message },
    });
    if (relay === null) return refuse(503, 'DRAINING', 'Billing is not attached to a relay; re-runs cannot be placed.');
    const primary = await rows.get(primaryJobId);
    if (primary === undefined || primary.role !== 'job' || primary.state !== 'charged') {
      return refuse(404, 'NOT_FOUND', `No delivered requester job ${primaryJobId}: only a job that was charged can be re-run.`);
    }
    if (rerunning.has(primaryJobId) || (await rows.hasRerun(primaryJobId)))
      return refuse(409, 'CONFLICT', `Job ${primaryJobId} was re-run already; one re-run per job.`);
    rerunning.add(primaryJobId);
    try {
      const contributorId = relay.jobById(primaryJobId)?.contributorId ?? (await options.store.getJob(primaryJobId))?.contributorId ?? null;
      return relay.createCheckJob({
        role: 'rerun',
        apiKeyId: primary.api_key_id,
        model: primary.model,
        kind: primary.kind,
        billing: { inputTokens: toInt(primary.input_tokens), maxOutputTokens: toInt(primary.max_output_tokens) },
        exclude: contributorId === null ? [] : [contributorId],
        primaryJobId,
      });
    } finally {
      // The row written by the reservation (its `rerun_of`) keeps the one-per-job rule from now on.
      void budget.settled().then(() => rerunning.delete(primaryJobId));
    }
  }

  return {
    relay: relayBilling,
    counts,
    depositAddress: options.depositAddress,
    budgetLimit: options.budgetLimit,
    attach(r) {
      relay = r;
    },
    async start() {
      await refresh();
      if (timer !== null) return;
      timer = setInterval(() => {
        sweep().catch((err: unknown) => log('sweeping stale reservations failed', err));
      }, options.sweepIntervalMs ?? 60_000);
      timer.unref();
    },
    stop() {
      if (timer !== null) clearInterval(timer);
      timer = null;
    },
    maxPrice,
    reserveJob,
    release,
    whenReserved: async (jobId) => {
      if (budget.pending(jobId)) await budget.settled();
    },
    async recordDone(done, charged) {
      const clamped = done.claimed.promptTokens > done.usage.promptTokens || done.claimed.completionTokens > done.usage.completionTokens;
      if (clamped) counts.clamped++;
      await rows.recordDone(done, charged);
      if (done.role !== 'job') {
        checkJobs.delete(done.jobId);
        await budget.enqueue(refresh);
      }
    },
    async account(key) {
      const b = await ledger.payerBalances({ kind: 'requester', apiKeyId: key.id });
      return {
        keyId: key.id,
        available: b.available.toString(),
        reserved: b.reserved.toString(),
        deposit: { address: options.depositAddress, memo: key.depositMemo },
      };
    },
    budget: () => ledger.payerBalances(budget.payer),
    sweepStale: sweep,
    releaseOrphaned,
    doneUncharged: (replicaId) => rows.doneUncharged(replicaId),
    fundBudgetFromFees: (fundingId, amount) =>
      budget.enqueue(async () => {
        const txn = await ledger.fundBudgetFromFees(fundingId, amount);
        await refresh();
        return txn;
      }),
    refreshBudget: () => budget.enqueue(refresh),
    createRerun,
  };
}

/** The 402 body: how much is short, and where to deposit it. */
function paymentRequired(err: InsufficientFundsError, deposit: { address: string; memo: string }): PaymentRequired {
  return {
    error: {
      code: 'PAYMENT_REQUIRED',
      message: `This job may cost up to ${err.required} nanoTON, but the key holds ${err.available} available; deposit at least ${err.shortfall} nanoTON to ${deposit.address} with the comment "${deposit.memo}", then submit the job again.`,
    },
    payment: {
      required: err.required.toString(),
      available: err.available.toString(),
      shortfall: err.shortfall.toString(),
      deposit,
    },
  };
}
