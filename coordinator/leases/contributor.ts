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
  capabilities: v.InferOutput<typeof Capabilities> | null = null;
  /**
   * Slots offered by the last `lease` and not used yet; each assignment uses one. Negative
   * while more assignments are pending than the worker last offered.
   */
  openSlots = 0;
  lastAssignedAt = 0;
  /** The wallet it earns for, as bound at `hello` (null: none); placement keeps a wallet's devices from checking each other. */
  wallet: string | null = null;
  /** The worker's last `status`: visibility, the rule pausing it, its pace (null until it sends one). */
  status: ContributorStatusReport | null = null;
  /** Ids of the leases reserved for or running on it. */
  readonly leases = new Set<string>();
  /** Sends a message on its socket (a no-op once the socket closed). */
  readonly send: (message: CoordinatorMessage) => void;

  constructor(init: { id: string; hpkeKey: string; send: (message: CoordinatorMessage) => void; wallet?: string | null }) {
    this.id = init.id;
    this.wallet = init.wallet ?? null;
    this.hpkeKey = init.hpkeKey;
    this.send = init.send;
  }

  get inFlight(): number {
    return this.leases.size;
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
