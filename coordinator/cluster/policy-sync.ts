/**
 * Who is shut out, the same on every replica: quarantines of devices and wallets, and benches
 * of a device off a model, are written to PostgreSQL by the replica that judged them
 * (verification/judgement-writer.ts). That replica then says so on `<p>.policy`, and every
 * other replica reads back the rows of the devices and wallets the word names (and no others), so
 * a device quarantined through one replica gets no job and no credit through another, and one an
 * operator let back gets jobs on all. A word missed (a replica reconnecting to NATS) is made up
 * every {@link PolicySyncOptions.refreshMs} by reading the rows changed since the last read
 * (verification/shared-quarantines.ts); credits are safe meanwhile, since settlement asks the
 * database (verification/service.ts `isVerified`).
 */
import { MAX_POLICY_IDS, PolicyChanged } from '../../protocol/cluster.ts';
import { errorText, type Logger } from '../log.ts';
import { type Bus, subjects } from './bus.ts';

export interface PolicySyncOptions {
  readonly replicaId: string;
  readonly bus: Bus;
  /** The deployment's subject prefix (`spinneret.<schema>`). */
  readonly prefix: string;
  readonly logger: Logger;
  /** How often the shared state is read again even without a word, ms; default 30 s. */
  readonly refreshMs?: number;
}

export class PolicySync {
  readonly #o: PolicySyncOptions;
  readonly #subject: string;
  #refresh: ((ids?: readonly string[]) => Promise<void>) | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  /** A read in progress, and what was asked meanwhile (so words that arrive during a read are not lost). */
  #reading: Promise<void> | null = null;
  readonly #askedIds = new Set<string>();
  #askedSince = false;
  /** Words heard from other replicas, and reads made. */
  readonly counts = { heard: 0, reads: 0, said: 0 };

  constructor(options: PolicySyncOptions) {
    this.#o = options;
    this.#subject = subjects(options.prefix).policy;
  }

  /** Starts listening; `refresh` reads the rows of `ids`, or (none given) what changed since its last read, into this replica's policy. */
  start(refresh: (ids?: readonly string[]) => Promise<void>): void {
    this.#refresh = refresh;
    this.#o.bus.subscribe(this.#subject, PolicyChanged, (body) => {
      if (body.replica === this.#o.replicaId) return;
      this.counts.heard++;
      void this.read(body.ids);
    });
    this.#timer = setInterval(() => void this.read(), this.#o.refreshMs ?? 30_000);
    this.#timer.unref();
  }

  /** This replica wrote a quarantine, a bench or a lift of `ids`: the others read those rows now. */
  changed(ids: readonly string[]): void {
    this.counts.said++;
    const named = ids.length <= MAX_POLICY_IDS ? { ids: [...ids] } : {};
    this.#o.bus.publish(this.#subject, { replica: this.#o.replicaId, ...named });
  }

  /**
   * Reads the rows of `ids` now, or (none given) what changed since the last read; one read at a
   * time, and what is asked during a read makes one more. Resolves when it is read.
   */
  read(ids?: readonly string[]): Promise<void> {
    if (ids === undefined) this.#askedSince = true;
    else for (const id of ids) this.#askedIds.add(id);
    if (this.#reading !== null) return this.#reading; // its loop takes what was just asked
    const refresh = this.#refresh;
    if (refresh === null) return Promise.resolve();
    const reading = (async () => {
      await Promise.resolve(); // `#reading` is set before the loop can end
      for (;;) {
        const since = this.#askedSince;
        const named = [...this.#askedIds];
        if (!since && named.length === 0) {
          this.#reading = null; // in the same turn as the check: nothing asked from now on is left unread
          return;
        }
        this.#askedSince = false;
        this.#askedIds.clear();
        this.counts.reads++;
        try {
          await (since ? refresh() : refresh(named));
          // A read of what changed since covers the ids named meanwhile only if they were written before it: read them too.
          if (since && named.length > 0) await refresh(named);
        } catch (err) {
          this.#o.logger.error('reading the shared quarantines failed', { replica: this.#o.replicaId, error: errorText(err) });
        }
      }
    })();
    this.#reading = reading;
    return reading;
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
