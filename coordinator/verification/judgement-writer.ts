/**
 * Turns a judgement into its effects: decision records, benched devices (told to self-test),
 * ledger states of the checked jobs, quarantines of a device and of its wallet, and the credits
 * they void.
 */
import type { Clock } from '../clock.ts';
import type { Relay } from '../leases/relay.ts';
import type { Judgement } from './outcome.ts';
import type { VerificationPolicy } from './policy.ts';
import type { ReputationStore } from './reputation-store.ts';
import type { VerificationStore } from './verification-store.ts';

/** Wallet quarantines share the quarantine table with devices, under this prefix. */
export const WALLET_PREFIX = 'wallet:';

export interface JudgementWriterOptions {
  readonly policy: VerificationPolicy;
  readonly store: VerificationStore;
  readonly reputation: ReputationStore;
  readonly clock: Clock;
  /** How long a held credit waits for the requester's verdict, ms. */
  readonly verdictWindowMs: number;
  /** The coordinator's relay, once attached. */
  readonly relay: () => Relay | null;
}

export class JudgementWriter {
  readonly #o: JudgementWriterOptions;
  #voider: ((jobId: string, reason: string) => Promise<void>) | null = null;
  #shared: ((ids: string[]) => void) | null = null;

  constructor(options: JudgementWriterOptions) {
    this.#o = options;
  }

  /** Takes back a credit at once (the earnings service); set by the money wiring. */
  setVoider(voider: (jobId: string, reason: string) => Promise<void>): void {
    this.#voider = voider;
  }

  /**
   * Called once a judgement's quarantines or benches (or an operator's lift) are in the database, with the
   * devices and `wallet:` keys they concern (replicas tell each other to read those rows).
   */
  onShared(listener: (ids: string[]) => void): void {
    this.#shared = listener;
  }

  /** The wallets devices earn for: the live connection's binding, else the stored one. */
  async walletsOf(ids: readonly string[]): Promise<string[]> {
    const live = ids.flatMap((id) => {
      const w = this.#o.relay()?.contributors.get(id)?.wallet;
      return w === undefined || w === null ? [] : [w];
    });
    const stored = await this.#o.store.wallets(ids);
    return [...new Set([...live, ...stored.values()])];
  }

  /** Writes a judgement's findings, records and quarantines, and voids what it voids. */
  async apply(judgement: Judgement, context: { model: string; engineClass: string }, primaryJobId: string): Promise<void> {
    const { policy, store, reputation, clock } = this.#o;
    const effects = policy.apply(judgement, context);
    const now = clock.now();
    await store.addRecords(effects.records);
    for (const b of effects.benched) {
      this.#o.relay()?.contributors.get(b.contributorId)?.send({ v: 1, type: 'self-test', model: b.model, reason: b.reason });
      await reputation.bench(b.contributorId, b.model, policy.benchedUntil(b.contributorId, b.model) ?? now, now);
    }
    for (const f of judgement.findings) {
      const status = f.ledger === 'void' ? 'void' : f.ledger === 'hold' ? 'awaiting' : 'settle';
      const ids = await store.setStatus(
        primaryJobId,
        f.contributorId,
        status,
        status === 'awaiting' ? now + this.#o.verdictWindowMs : null,
        now,
      );
      if (f.ledger === 'void') for (const id of ids) await this.#void(id, f.reason);
    }
    const shared = new Set(effects.benched.map((b) => b.contributorId));
    for (const contributorId of effects.quarantined) {
      shared.add(contributorId);
      const until = policy.quarantinedUntil(contributorId);
      const kept = until === null || until === Number.POSITIVE_INFINITY ? null : until;
      await store.quarantine(contributorId, kept, now);
      // The quarantine is the wallet's: a new key under it, or another of its devices, gets no job either.
      const devices = [contributorId];
      for (const wallet of await this.walletsOf([contributorId])) {
        policy.quarantineWallet(wallet, until ?? Number.POSITIVE_INFINITY);
        await store.quarantine(`${WALLET_PREFIX}${wallet}`, kept, now);
        shared.add(`${WALLET_PREFIX}${wallet}`);
        devices.push(...(await store.devicesOf(wallet)).filter((id) => id !== contributorId));
      }
      for (const device of devices) {
        for (const jobId of await store.voidUnjudged(device, now)) {
          await this.#void(
            jobId,
            `Job ${jobId} was never checked and your wallet was quarantined for failed checks, so its credit is voided.`,
          );
        }
      }
    }
    if (shared.size > 0) this.shared([...shared]);
  }

  /** Tells the other replicas to read the rows of `ids` (an operator's lift goes this way too). */
  shared(ids: string[]): void {
    this.#shared?.(ids);
  }

  async #void(jobId: string, reason: string): Promise<void> {
    if (this.#voider !== null) await this.#voider(jobId, reason);
  }
}
