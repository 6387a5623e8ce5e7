/**
 * Who is shut out, the same on every replica: quarantines of devices and wallets, and benches
 * of a device off a model, are written to PostgreSQL by the replica that judged them
 * (verification/judgement-writer.ts). That replica then says so on `<p>.policy`, and every
 * other replica reads them back into its policy at once, so a device quarantined through one
 * replica gets no job and no credit through another. A word missed (a replica reconnecting to
 * NATS) is made up by reading them again every {@link PolicySyncOptions.refreshMs}; credits
 * are safe meanwhile, since settlement asks the database (verification/service.ts `isVerified`).
 */
import { PolicyChanged } from '../../protocol/cluster.ts';
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
  #refresh: (() => Promise<void>) | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  /** A read in progress, and whether another was asked for meanwhile (so words that arrive during a read are not lost). */
  #reading: Promise<void> | null = null;
  #again = false;
  /** Words heard from other replicas, and reads made. */
  readonly counts = { heard: 0, reads: 0, said: 0 };

  constructor(options: PolicySyncOptions) {
    this.#o = options;
    this.#subject = subjects(options.prefix).policy;
  }

  /** Starts listening; `refresh` reads the shared state into this replica's policy. */
  start(refresh: () => Promise<void>): void {
    this.#refresh = refresh;
    this.#o.bus.subscribe(this.#subject, PolicyChanged, (body) => {
      if (body.replica === this.#o.replicaId) return;
      this.counts.heard++;
      void this.read();
    });
    this.#timer = setInterval(() => void this.read(), this.#o.refreshMs ?? 30_000);
    this.#timer.unref();
  }

  /** This replica wrote a quarantine or a bench: the others read them now. */
  changed(): void {
    this.counts.said++;
    this.#o.bus.publish(this.#subject, { replica: this.#o.replicaId });
  }

  /** Reads the shared state now (one read at a time; a word during a read makes one more). Resolves when it is read. */
  read(): Promise<void> {
    if (this.#reading !== null) {
      this.#again = true;
      return this.#reading;
    }
    const refresh = this.#refresh;
    if (refresh === null) return Promise.resolve();
    this.#reading = (async () => {
      do {
        this.#again = false;
        this.counts.reads++;
        try {
          await refresh();
        } catch (err) {
          this.#o.logger.error('reading the shared quarantines failed', { replica: this.#o.replicaId, error: errorText(err) });
        }
      } while (this.#again);
    })().finally(() => {
      this.#reading = null;
    });
    return this.#reading;
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
