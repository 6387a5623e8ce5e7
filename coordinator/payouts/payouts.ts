/**
 * Pays settled balances from the hot wallet in batches of up to 255 transfers, one V5R1
 * external message per batch. Intents are written before sending and reconciled against
 * the chain after, so a crash neither pays twice nor loses a payout: whether a batch went
 * out is decided by the hot wallet's transactions for its seqno, never by memory.
 */
import { randomUUID } from 'node:crypto';
import { Address, fromNano } from '@ton/core';
import { consoleLogger, type Logger } from '../log.ts';
import type { Chain, HotWalletTx } from './chain.ts';
import type { BatchIntent, PayoutBook, PayoutIntent } from './book.ts';
import { ChainTimeoutError, InsufficientHotWalletBalanceError, InvalidPayoutAddressError } from './errors.ts';
import { MAX_TRANSFERS_PER_MESSAGE, type HotWallet } from './hot-wallet.ts';
import { retrying, sleep, withTimeout, type RetryPolicy } from './retry.ts';

/** Dependencies and settings of a {@link PayoutRunner}. */
export interface PayoutRunnerOptions {
  readonly book: PayoutBook;
  readonly chain: Chain;
  readonly wallet: HotWallet;
  /** Minimum settled nanoTON for a wallet to be paid. */
  readonly threshold: bigint;
  /** Transfers per external message, 1..255 (default 255). */
  readonly batchSize?: number;
  /** nanoTON kept aside per transfer for fees when checking the balance (default 0.002 TON). */
  readonly feeReservePerTransfer?: bigint;
  /** How long a signed message stays valid, ms (default 60 s). */
  readonly messageTtlMs?: number;
  /** How long to wait for a batch to show on chain before leaving it pending, ms (default 90 s). */
  readonly reconcileTimeoutMs?: number;
  /** Delay between chain polls while reconciling, ms (default 1 s). */
  readonly pollIntervalMs?: number;
  /** Chain-call timeout and retries (defaults: 10 s, 4 retries, 500 ms doubling). */
  readonly retry?: Partial<RetryPolicy>;
  /** Clock, ms since epoch. */
  readonly now?: () => number;
  readonly newId?: () => string;
  /** Called after a batch's message went to the chain and before reconciliation. */
  readonly onSent?: (batch: BatchIntent) => void | Promise<void>;
  /**
   * Where the operator is told what needs them: refused addresses, a hot wallet too poor for
   * the next batch, chain calls retried or given up, batches left unresolved. Default: JSON
   * lines on the console.
   */
  readonly logger?: Logger;
}

/** What happened to one batch in a run. */
export interface BatchReport {
  readonly batchId: string;
  readonly seqno: number;
  readonly size: number;
  readonly confirmed: number;
  readonly failed: number;
  /** Still pending: reconciled on a later run. */
  readonly pending: number;
  /** nanoTON the hot wallet paid in fees for the batch (null until found on chain). */
  readonly fee: bigint | null;
  /** From signing to resolution (or giving up), ms. */
  readonly elapsedMs: number;
}

/** The outcome of {@link PayoutRunner.runOnce}, for logs and the operator's view. */
export interface RunReport {
  /** Batches reconciled from earlier runs, then batches sent in this run. */
  readonly batches: BatchReport[];
  /** Payouts not attempted because the address is invalid; balances stay settled. */
  readonly refused: InvalidPayoutAddressError[];
  /** Set when the hot wallet could not cover the next batch: nothing more was sent. */
  readonly blocked: InsufficientHotWalletBalanceError | null;
  /** True when an unresolved batch held back new payouts. */
  readonly heldBack: boolean;
}

const EXPIRY_GRACE_MS = 30_000;

/** Runs payout rounds; safe to restart at any point with the same book and chain. */
export class PayoutRunner {
  private readonly o: Required<Omit<PayoutRunnerOptions, 'retry' | 'onSent'>> & Pick<PayoutRunnerOptions, 'onSent'>;
  private readonly policy: RetryPolicy;

  constructor(options: PayoutRunnerOptions) {
    const batchSize = options.batchSize ?? MAX_TRANSFERS_PER_MESSAGE;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_TRANSFERS_PER_MESSAGE) {
      throw new RangeError(`batchSize must be 1..${MAX_TRANSFERS_PER_MESSAGE}`);
    }
    this.o = {
      batchSize,
      feeReservePerTransfer: 2_000_000n,
      messageTtlMs: 60_000,
      reconcileTimeoutMs: 90_000,
      pollIntervalMs: 1_000,
      now: Date.now,
      newId: randomUUID,
      logger: consoleLogger,
      ...options,
    };
    this.policy = { timeoutMs: 10_000, retries: 4, backoffMs: 500, sleep, ...options.retry };
  }

  /**
   * Reconciles pending batches, then pays every wallet at or above the threshold. Rejects with
   * {@link ChainTimeoutError} when the chain does not answer before anything is sent.
   */
  async runOnce(): Promise<RunReport> {
    try {
      const report = await this.round();
      this.tell(report);
      return report;
    } catch (err) {
      if (err instanceof ChainTimeoutError) {
        this.o.logger.error('payout round stopped: the chain endpoint did not answer; nothing was lost, payouts wait for the next round', {
          error: err.message,
        });
      }
      throw err;
    }
  }

  private async round(): Promise<RunReport> {
    const report: RunReport = { batches: [], refused: [], blocked: null, heldBack: false };
    for (const batch of await this.o.book.pendingBatches()) {
      report.batches.push(await this.reconcile(batch, this.o.now()));
    }
    if (report.batches.some((b) => b.pending > 0)) return { ...report, heldBack: true };

    const due: { wallet: string; to: Address; amount: bigint }[] = [];
    for (const { wallet, amount } of await this.o.book.listPayable(this.o.threshold)) {
      const to = payoutAddress(wallet, amount);
      if (to instanceof InvalidPayoutAddressError) report.refused.push(to);
      else due.push({ wallet, to, amount });
    }
    for (let i = 0; i < due.length; i += this.o.batchSize) {
      const chunk = due.slice(i, i + this.o.batchSize);
      const outcome = await this.payBatch(chunk);
      if (outcome instanceof InsufficientHotWalletBalanceError) return { ...report, blocked: outcome };
      report.batches.push(outcome);
      if (outcome.pending > 0) return { ...report, heldBack: i + this.o.batchSize < due.length };
    }
    return report;
  }

  private async payBatch(
    chunk: readonly { wallet: string; to: Address; amount: bigint }[],
  ): Promise<BatchReport | InsufficientHotWalletBalanceError> {
    const { chain, wallet, book } = this.o;
    const started = this.o.now();
    const needed = chunk.reduce((sum, p) => sum + p.amount + this.o.feeReservePerTransfer, 0n);
    const available = await this.call('getBalance', () => chain.getBalance(wallet.address));
    if (available < needed) return new InsufficientHotWalletBalanceError(needed, available);

    const seqno = await this.call('getSeqno', () => chain.getSeqno(wallet.address));
    const sinceLt = await this.call('getLastLt', () => chain.getLastLt(wallet.address));
    const payouts: PayoutIntent[] = chunk.map((p) => ({
      payoutId: this.o.newId(),
      wallet: p.wallet,
      to: p.to.toRawString(),
      amount: p.amount,
    }));
    const batch: BatchIntent = { batchId: this.o.newId(), seqno, expiresAt: started + this.o.messageTtlMs, sinceLt, payouts };
    await book.recordBatch(batch);

    const message = wallet.signBatch({
      seqno,
      expiresAt: batch.expiresAt,
      transfers: payouts.map((p) => ({ payoutId: p.payoutId, to: Address.parse(p.to), amount: p.amount })),
    });
    await this.sendSafely(batch, () => chain.send(message));
    await this.o.onSent?.(batch);
    return this.reconcile(batch, started);
  }

  /**
   * Sends, retrying on errors or timeouts. Before each retry it checks the seqno: once it
   * has moved past the batch's, the message landed and is not sent again. (A replay of the
   * same signed message could not pay twice anyway: the wallet rejects a used seqno.) When
   * every attempt fails the batch stays pending for reconciliation.
   */
  private async sendSafely(batch: BatchIntent, send: () => Promise<void>): Promise<void> {
    for (let attempt = 0; attempt <= this.policy.retries; attempt++) {
      if (attempt > 0) {
        await this.policy.sleep(this.policy.backoffMs * 2 ** (attempt - 1));
        const seqno = await this.call('getSeqno', () => this.o.chain.getSeqno(this.o.wallet.address)).catch(() => null);
        if (seqno !== null && seqno > batch.seqno) return;
      }
      try {
        await withTimeout(send(), this.policy.timeoutMs, 'send');
        return;
      } catch {
        // Retried below; reconciliation decides what happened.
      }
    }
  }

  /** Polls the chain until the batch's seqno resolves it, or leaves it pending. */
  private async reconcile(batch: BatchIntent, started: number): Promise<BatchReport> {
    const deadline = this.o.now() + this.o.reconcileTimeoutMs;
    for (;;) {
      const resolved = await this.inspect(batch).catch(() => null);
      if (resolved !== null) return this.apply(batch, resolved, started);
      if (this.o.now() >= deadline) {
        return { ...this.summary(batch, started), pending: batch.payouts.length, fee: null };
      }
      await this.policy.sleep(this.o.pollIntervalMs);
    }
  }

  /** The batch's transaction, 'expired' when it can no longer land, or null while unknown. */
  private async inspect(batch: BatchIntent): Promise<HotWalletTx | 'expired' | null> {
    const address = this.o.wallet.address;
    const txs = await this.call('findTransfers', () => this.o.chain.findTransfers(address, batch.sinceLt));
    const tx = txs.find((t) => t.seqno === batch.seqno);
    if (tx !== undefined) return tx;
    const seqno = await this.call('getSeqno', () => this.o.chain.getSeqno(address));
    // seqno moved on but its transaction is not visible yet (indexer lag): keep waiting.
    if (seqno > batch.seqno) return null;
    return this.o.now() > batch.expiresAt + EXPIRY_GRACE_MS ? 'expired' : null;
  }

  private async apply(batch: BatchIntent, found: HotWalletTx | 'expired', started: number): Promise<BatchReport> {
    const { book } = this.o;
    if (found === 'expired') {
      for (const p of batch.payouts) await book.fail(p.payoutId, 'the batch message expired without reaching the chain');
      return { ...this.summary(batch, started), failed: batch.payouts.length, fee: 0n };
    }
    const byId = new Map(found.transfers.map((t) => [t.payoutId, t]));
    const sent = batch.payouts.filter((p) => byId.has(p.payoutId));
    const share = sent.length === 0 ? 0n : found.fee / BigInt(sent.length);
    let remainder = sent.length === 0 ? 0n : found.fee % BigInt(sent.length);
    for (const p of batch.payouts) {
      if (!byId.has(p.payoutId)) {
        const why = found.aborted ? 'the batch transaction aborted' : 'the transfer was skipped';
        await book.fail(p.payoutId, `${why} (seqno ${batch.seqno}, tx ${found.hash})`);
        continue;
      }
      const fee = share + (remainder > 0n ? 1n : 0n);
      if (remainder > 0n) remainder--;
      await book.confirm(p.payoutId, { txHash: found.hash, lt: found.lt, fee });
    }
    return {
      ...this.summary(batch, started),
      confirmed: sent.length,
      failed: batch.payouts.length - sent.length,
      fee: found.fee,
    };
  }

  private summary(batch: BatchIntent, started: number): BatchReport {
    return {
      batchId: batch.batchId,
      seqno: batch.seqno,
      size: batch.payouts.length,
      confirmed: 0,
      failed: 0,
      pending: 0,
      fee: null,
      elapsedMs: this.o.now() - started,
    };
  }

  private call<T>(label: string, fn: () => Promise<T>): Promise<T> {
    return retrying(this.policy, label, fn, ({ attempt, error, backoffMs }) =>
      this.o.logger.warn('payout chain call failed; retrying', {
        call: label,
        attempt: attempt + 1,
        retryInMs: backoffMs,
        error: error instanceof Error ? error.message : String(error),
      }),
    );
  }

  /** Logs what the operator must act on or know about. */
  private tell(report: RunReport): void {
    const { logger } = this.o;
    for (const err of report.refused) {
      logger.warn('payout refused: invalid address', { wallet: err.wallet, amountTon: fromNano(err.amount), error: err.message });
    }
    if (report.blocked !== null) {
      const { needed, available } = report.blocked;
      logger.error('payouts wait: the hot wallet cannot cover the next batch; top it up', {
        hotWallet: this.o.wallet.address.toString({ bounceable: false }),
        neededTon: fromNano(needed),
        availableTon: fromNano(available),
        shortTon: fromNano(needed - available),
      });
    }
    for (const b of report.batches) {
      if (b.pending > 0) logger.warn('payout batch not yet found on chain; reconciled next round', { batchId: b.batchId, seqno: b.seqno });
      if (b.failed > 0) logger.warn('payouts failed and went back to settled balances', { batchId: b.batchId, failed: b.failed });
    }
    if (report.heldBack) logger.warn('new payouts held back until the unresolved batch is settled on chain');
  }
}

/** Workchains a payout may go to: basechain and masterchain. Others do not exist. */
const PAYABLE_WORKCHAINS = new Set([0, -1]);

/**
 * The destination of a payout, or the refusal. The user-friendly form's bounceable and
 * test-only flags are ignored: every payout is sent non-bounceable (see `HotWallet.signBatch`).
 */
export function payoutAddress(wallet: string, amount: bigint): Address | InvalidPayoutAddressError {
  let to: Address;
  try {
    to = Address.parse(wallet);
  } catch (err) {
    return new InvalidPayoutAddressError(wallet, err instanceof Error ? err.message : String(err), amount);
  }
  if (!PAYABLE_WORKCHAINS.has(to.workChain)) {
    return new InvalidPayoutAddressError(wallet, `workchain ${to.workChain} does not exist; only 0 and -1 do`, amount);
  }
  return to;
}
