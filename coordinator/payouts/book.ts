/**
 * What the payout runner needs from the ledger. The ledger (coordinator/ledger/) will
 * implement `PayoutBook` on the store; `MemoryPayoutBook` is the reference implementation
 * used by the tests and local runs.
 */

/** A wallet whose settled balance is due for payout. */
export interface PayableBalance {
  /** The contributor's payout address as the ledger holds it (user-supplied, unvalidated). */
  readonly wallet: string;
  /** Settled nanoTON to pay. */
  readonly amount: bigint;
}

/** One payout written before its batch is sent. */
export interface PayoutIntent {
  /** Unique id; also the transfer comment `spinneret:payout:<id>`. */
  readonly payoutId: string;
  readonly wallet: string;
  /** The destination in raw form (`0:<hex>`), as found on chain. */
  readonly to: string;
  /** nanoTON. */
  readonly amount: bigint;
}

/** A batch of payouts signed for one hot-wallet seqno. */
export interface BatchIntent {
  readonly batchId: string;
  /** The hot-wallet seqno the external message is signed for: one batch per seqno. */
  readonly seqno: number;
  /** After this time (ms since epoch) the wallet rejects the message, so it can never land. */
  readonly expiresAt: number;
  /** Hot wallet's last transaction lt before sending: reconciliation looks after it. */
  readonly sinceLt: bigint;
  readonly payouts: readonly PayoutIntent[];
}

/** Where a confirmed payout landed. */
export interface PayoutConfirmation {
  /** Hash (hex) of the hot-wallet transaction that sent it. */
  readonly txHash: string;
  readonly lt: bigint;
  /** This payout's share of the batch's fees, nanoTON. */
  readonly fee: bigint;
}

/** The payout side of the ledger. Every method is idempotent per payout id. */
export interface PayoutBook {
  /** Wallets whose settled balance is at least `threshold` nanoTON. */
  listPayable(threshold: bigint): Promise<PayableBalance[]>;
  /** Atomically writes the intents and moves their amounts from settled to pending. */
  recordBatch(batch: BatchIntent): Promise<void>;
  /** Batches that still have a pending payout. */
  pendingBatches(): Promise<BatchIntent[]>;
  /** Pending → paid. */
  confirm(payoutId: string, confirmation: PayoutConfirmation): Promise<void>;
  /** Pending → back to settled (nothing left the hot wallet for it). */
  fail(payoutId: string, reason: string): Promise<void>;
}

/** State of one payout in {@link MemoryPayoutBook}. */
export type PayoutState =
  | { readonly status: 'pending' }
  | { readonly status: 'paid'; readonly confirmation: PayoutConfirmation }
  | { readonly status: 'failed'; readonly reason: string };

/** In-memory `PayoutBook` with settled and paid balances per wallet. */
export class MemoryPayoutBook implements PayoutBook {
  readonly settled = new Map<string, bigint>();
  readonly paid = new Map<string, bigint>();
  readonly payouts = new Map<string, { intent: PayoutIntent; batchId: string; state: PayoutState }>();
  private readonly batches = new Map<string, BatchIntent>();

  /** Adds settled nanoTON to a wallet (what job settlement would do). */
  credit(wallet: string, amount: bigint): void {
    this.settled.set(wallet, (this.settled.get(wallet) ?? 0n) + amount);
  }

  async listPayable(threshold: bigint): Promise<PayableBalance[]> {
    return [...this.settled].filter(([, amount]) => amount > 0n && amount >= threshold).map(([wallet, amount]) => ({ wallet, amount }));
  }

  async recordBatch(batch: BatchIntent): Promise<void> {
    if (this.batches.has(batch.batchId)) return;
    for (const intent of batch.payouts) {
      if ((this.settled.get(intent.wallet) ?? 0n) < intent.amount) {
        throw new Error(`payout ${intent.payoutId} exceeds the settled balance of ${intent.wallet}`);
      }
    }
    this.batches.set(batch.batchId, batch);
    for (const intent of batch.payouts) {
      this.credit(intent.wallet, -intent.amount);
      this.payouts.set(intent.payoutId, { intent, batchId: batch.batchId, state: { status: 'pending' } });
    }
  }

  async pendingBatches(): Promise<BatchIntent[]> {
    return [...this.batches.values()].filter((batch) =>
      batch.payouts.some((p) => this.payouts.get(p.payoutId)?.state.status === 'pending'),
    );
  }

  async confirm(payoutId: string, confirmation: PayoutConfirmation): Promise<void> {
    const payout = this.pending(payoutId);
    if (payout === null) return;
    payout.state = { status: 'paid', confirmation };
    this.paid.set(payout.intent.wallet, (this.paid.get(payout.intent.wallet) ?? 0n) + payout.intent.amount);
  }

  async fail(payoutId: string, reason: string): Promise<void> {
    const payout = this.pending(payoutId);
    if (payout === null) return;
    payout.state = { status: 'failed', reason };
    this.credit(payout.intent.wallet, payout.intent.amount);
  }

  /** Counts payouts by status. */
  count(status: PayoutState['status']): number {
    return [...this.payouts.values()].filter((p) => p.state.status === status).length;
  }

  private pending(payoutId: string): { intent: PayoutIntent; state: PayoutState } | null {
    const payout = this.payouts.get(payoutId);
    if (payout === undefined) throw new Error(`unknown payout ${payoutId}`);
    return payout.state.status === 'pending' ? payout : null;
  }
}
