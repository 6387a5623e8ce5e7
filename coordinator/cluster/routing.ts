/**
 * Work between replicas (docs/operating.md, "Replicas"). A job belongs to the replica its
 * requester created it on (its owner): its relay keeps the job, its leases, its billing and its
 * requester's stream, as with one process. What crosses replicas is a contributor:
 *
 * - the owner of a job no local contributor can take asks the other replicas for a slot
 *   (`claim`); the contributor's replica (its home) takes one slot of a free contributor off its
 *   own scheduling (lent) and answers with what the owner's scheduler needs (id, keys,
 *   capabilities, wallet);
 * - the owner's relay sees that contributor as a {@link RemoteContributor} holding the slot and
 *   schedules as usual: placement rules, the assignment the requester seals to, lease expiry;
 * - what the owner's relay sends the worker (`job`, `cancel`, acks) goes `down` to the home,
 *   which passes it to the socket; the worker's `chunk` and `fail` for such a lease go `up`
 *   to the owner's relay, whose answer comes back down;
 * - a slot the owner did not use is released; a worker that leaves its home is `gone` for its
 *   owners (their relays re-lease its jobs); a replica that stops saying `alive` is treated
 *   as both at once.
 *
 * The relay is not changed for this: this module is the relay as the contributor sessions see
 * it ({@link RelayPort}) and a few contributors more in the owner's relay.
 */
import { Alive, Claim, Down, Gone, Release, Up } from '../../protocol/cluster.ts';
import { randomId } from '../ids.ts';
import { errorText } from '../log.ts';
import type { ConnectedContributor } from '../leases/contributor.ts';
import type { Relay } from '../leases/relay.ts';
import type { RelayPort } from '../sessions/session.ts';
import { Borrowing } from './borrowing.ts';
import { subjects } from './bus.ts';
import { Lending } from './lending.ts';
import { Peers, servedBy } from './peers.ts';
import type { RoutingContext, RoutingCounts, RoutingOptions } from './routing-context.ts';

export { MAX_PEERS, RemoteContributor, type RoutingCounts, type RoutingOptions } from './routing-context.ts';

export class Routing {
  readonly #x: RoutingContext;
  readonly #boot = randomId(12);
  #relay: Relay | null = null;
  #find: (id: string) => ConnectedContributor | undefined = () => undefined;
  readonly #peers: Peers;
  /** Home side: this replica's contributors working for other replicas' jobs. */
  readonly #lending: Lending;
  /** Owner side: this replica's jobs on other replicas' contributors. */
  readonly #borrowing: Borrowing;
  readonly #lostListeners: ((replica: string) => void)[] = [];
  readonly #timers: NodeJS.Timeout[] = [];
  readonly counts: RoutingCounts = {
    claimsSent: 0,
    claimsGranted: 0,
    slotsLent: 0,
    slotsReturned: 0,
    remoteResults: 0,
    peersLost: 0,
    slotsExpired: 0,
    aliveRefused: 0,
  };

  constructor(options: RoutingOptions) {
    const claimTimeoutMs = options.claimTimeoutMs ?? 5_000;
    const heartbeatMs = options.heartbeatMs ?? 500;
    this.#peers = new Peers(options.replicaId, (replica, why) => this.#lost(replica, why), {
      heartbeatMs,
      refused: () => void this.counts.aliveRefused++,
    });
    this.#x = {
      options: { heartbeatMs, deadAfterMs: 3_000, claimEveryMs: 20, claimTimeoutMs, lendForMs: 2 * claimTimeoutMs, ...options },
      subjects: subjects(options.prefix),
      counts: this.counts,
      relay: () => this.#relay,
      find: (id) => this.#find(id),
      isPeer: (replica) => this.#peers.has(replica),
    };
    this.#lending = new Lending(this.#x);
    this.#borrowing = new Borrowing(this.#x);
  }

  get replicaId(): string {
    return this.#x.options.replicaId;
  }

  /** Contributors of other replicas holding a slot or lease of this replica's jobs now. */
  get holding(): number {
    return this.#borrowing.holding;
  }

  /** Whether a live peer has a contributor serving `model` and `kind` (and `engineClass`, when given). */
  peerServes(model: string, kind: string, engineClass?: string): boolean {
    return this.#peers.serve(model, kind, engineClass);
  }

  /** Live peers (not this replica). */
  get peers(): string[] {
    return this.#peers.list();
  }

  /** Calls `fn` with each replica found dead or restarted (after this routing ended what it shared with it). */
  onPeerLost(fn: (replica: string) => void): void {
    this.#lostListeners.push(fn);
  }

  /** For `createCoordinator({ cluster })`: the relay as this replica's contributor sessions see it. */
  attach(relay: Relay, find: (id: string) => ConnectedContributor | undefined): RelayPort {
    this.#relay = relay;
    this.#find = find;
    relay.remotePeer = (model, kind, engineClass) => this.peerServes(model, kind, engineClass);
    relay.remoteContributor = (id) => this.#peers.has(this.#borrowing.recentHome(id) ?? '');
    return {
      contributors: relay.contributors,
      join: (c) => relay.join(c),
      schedule: () => relay.schedule(),
      offer: (c, slots) => relay.offer(c, slots - this.#lending.lentTotal(c.id)),
      leave: (c, why) => {
        relay.leave(c, why);
        if (find(c.id) !== undefined && find(c.id) !== c) return; // replaced on this replica: the new session carries on
        this.#lending.left(c, why);
      },
      result: (c, message) => (this.#lending.runs(c, message.leaseId) ? this.#lending.up(c, message) : relay.result(c, message)),
    };
  }

  /** Subscribes and starts the heartbeat and claim timers. */
  start(): void {
    const { bus, replicaId: me, clock, logger, heartbeatMs, deadAfterMs, claimEveryMs } = this.#x.options;
    const s = this.#x.subjects;
    const fail = (what: string) => (err: unknown) => logger.error(what, { error: errorText(err) });
    bus.subscribe(s.alive, Alive, (m) => this.#peers.heard(m.replica, m.boot, m.serves ?? [], clock.now()));
    bus.subscribe(s.claim(me), Claim, (m, reply) => reply(this.#lending.lend(m)));
    bus.subscribe(s.down(me), Down, (m) => this.#lending.down(m));
    bus.subscribe(s.up(me), Up, (m) => this.#borrowing.up(m));
    bus.subscribe(s.release(me), Release, (m) => this.#lending.released(m));
    bus.subscribe(s.gone(me), Gone, (m) => this.#borrowing.gone(m.home, m.contributorId, m.why));
    const beat = (): void => {
      bus.publish(s.alive, { replica: me, boot: this.#boot, serves: servedBy(this.#relay) });
      this.#peers.sweep(clock.now(), deadAfterMs);
      this.#lending.sweep(clock.now());
    };
    beat();
    this.#timers.push(setInterval(beat, heartbeatMs));
    const claim = (): void => this.#borrowing.claim((model, kind) => this.#peers.forClaim(model, kind));
    this.#timers.push(
      setInterval(() => {
        try {
          claim();
        } catch (err) {
          fail('claiming slots failed')(err);
        }
      }, claimEveryMs),
    );
    for (const t of this.#timers) t.unref();
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers.length = 0;
  }

  /** A replica died or restarted: both sides of what this replica shared with it end. */
  #lost(replica: string, why: string): void {
    this.counts.peersLost++;
    this.#x.options.logger.info('replica lost', { replica, why });
    this.#borrowing.peerLost(replica, why);
    this.#lending.peerLost(replica, why);
    for (const fn of this.#lostListeners) fn(replica);
  }
}
