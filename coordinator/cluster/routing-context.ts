/** What both sides of the work between replicas (coordinator/cluster/routing.ts) share. */
import type * as v from 'valibot';
import type { RemoteView } from '../../protocol/cluster.ts';
import type { CoordinatorMessage } from '../../protocol/wire.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import { ConnectedContributor } from '../leases/contributor.ts';
import type { Relay } from '../leases/relay.ts';
import type { Bus, subjects } from './bus.ts';

/** A contributor connected to another replica, as the owner's relay sees it. */
export class RemoteContributor extends ConnectedContributor {
  constructor(
    readonly home: string,
    view: v.InferOutput<typeof RemoteView>,
    send: (message: CoordinatorMessage) => void,
  ) {
    super({ id: view.id, hpkeKey: view.hpkeKey, send, wallet: view.wallet });
    this.capabilities = view.capabilities;
  }
}

export interface RoutingOptions {
  replicaId: string;
  bus: Bus;
  /** Subject prefix of this deployment (`spinneret.<schema>`). */
  prefix: string;
  clock: Clock;
  logger: Logger;
  /** How often this replica says it lives, ms. Default 500. */
  heartbeatMs?: number;
  /** A replica silent this long is dead: its contributors' leases are re-leased, its jobs' leases here cancelled, ms. Default 3 000. */
  deadAfterMs?: number;
  /** How often waiting jobs look for a contributor on another replica, ms. Default 20. */
  claimEveryMs?: number;
  /** How long a claim waits for its answer, ms. Default 5 000. */
  claimTimeoutMs?: number;
  /**
   * Slots lent to an owner that neither sent a job on them nor released them this long after the
   * last grant come back to the contributor, ms: a grant answered after the owner stopped waiting,
   * or a claim some other client sent in an owner's name. Default twice `claimTimeoutMs`.
   */
  lendForMs?: number;
}

/** Counts for tests and `/metrics`. */
export interface RoutingCounts {
  claimsSent: number;
  claimsGranted: number;
  slotsLent: number;
  slotsReturned: number;
  remoteResults: number;
  peersLost: number;
  /** Lent slots that came back unused after `lendForMs`. */
  slotsExpired: number;
  /** `alive` words not taken: another boot of a replica still heard, or more replicas than {@link MAX_PEERS}. */
  aliveRefused: number;
}

/** Replicas heard at once, at most (more are not taken: their `alive` is refused and counted). */
export const MAX_PEERS = 256;

/** The routing's settings, bus subjects, counts, and what it is attached to, as each side reads them. */
export interface RoutingContext {
  readonly options: Required<RoutingOptions>;
  readonly subjects: ReturnType<typeof subjects>;
  readonly counts: RoutingCounts;
  /** The relay this replica's contributor sessions use; null before `attach`. */
  relay(): Relay | null;
  /** The contributor connected to this replica with that id. */
  find(id: string): ConnectedContributor | undefined;
  /** Whether `replica` is a live peer. */
  isPeer(replica: string): boolean;
}
