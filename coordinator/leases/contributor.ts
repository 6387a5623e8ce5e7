/**
 * A connected, welcomed contributor as the relay tracks it: its offer (capabilities and
 * open slots) and the leases it holds.
 */
import type * as v from 'valibot';
import type { Capabilities, CoordinatorMessage, PauseRule } from '../../protocol/wire.ts';
import type { ContributorView } from '../scheduler/scheduler.ts';

export class ConnectedContributor implements ContributorView {
  readonly id: string;
  readonly hpkeKey: string;
  /** Told when anything placement reads changes (slots, load, last assignment, capabilities): the relay's free-slot index. */
  onChange: ((contributor: ConnectedContributor) => void) | null = null;
  #capabilities: v.InferOutput<typeof Capabilities> | null = null;
  #openSlots = 0;
  #lastAssignedAt = 0;
  /** The wallet it earns for, as bound at `hello` (null: none); placement keeps a wallet's devices from checking each other. */
  wallet: string | null = null;
  /** The worker's last `status`: visibility, the rule pausing it, its pace (null until it sends one). */
  status: ContributorStatusReport | null = null;
  /** Ids of the leases reserved for or running on it. */
  readonly leases: Set<string> = new WatchedSet(() => this.onChange?.(this));
  /** Sends a message on its socket (a no-op once the socket closed). */
  readonly send: (message: CoordinatorMessage) => void;

  constructor(init: { id: string; hpkeKey: string; send: (message: CoordinatorMessage) => void; wallet?: string | null }) {
    this.id = init.id;
    this.wallet = init.wallet ?? null;
    this.hpkeKey = init.hpkeKey;
    this.send = init.send;
  }

  get capabilities(): v.InferOutput<typeof Capabilities> | null {
    return this.#capabilities;
  }

  set capabilities(value: v.InferOutput<typeof Capabilities> | null) {
    this.#capabilities = value;
    this.onChange?.(this);
  }

  /**
   * Slots offered by the last `lease` and not used yet; each assignment uses one. Negative
   * while more assignments are pending than the worker last offered.
   */
  get openSlots(): number {
    return this.#openSlots;
  }

  set openSlots(value: number) {
    this.#openSlots = value;
    this.onChange?.(this);
  }

  get lastAssignedAt(): number {
    return this.#lastAssignedAt;
  }

  set lastAssignedAt(value: number) {
    this.#lastAssignedAt = value;
    this.onChange?.(this);
  }

  get inFlight(): number {
    return this.leases.size;
  }
}

/** A set that says when it changes. */
class WatchedSet extends Set<string> {
  readonly #changed: () => void;

  constructor(changed: () => void) {
    super();
    this.#changed = changed;
  }

  override add(value: string): this {
    super.add(value);
    this.#changed();
    return this;
  }

  override delete(value: string): boolean {
    const had = super.delete(value);
    if (had) this.#changed();
    return had;
  }
}

/** A worker's last `status` message, and when it came (coordinator ms). */
export interface ContributorStatusReport {
  visibility: 'visible' | 'hidden';
  pausedBy: PauseRule | null;
  pace: { jobsPerMinute: number; busyFraction: number } | undefined;
  label: string | undefined;
  at: number;
}
