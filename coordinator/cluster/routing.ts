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
import * as v from 'valibot';
import { Alive, Claim, Down, Gone, Granted, Release, type RemoteView, Up } from '../../protocol/cluster.ts';
import type { CoordinatorMessage } from '../../protocol/wire.ts';
import { type Clock } from '../clock.ts';
import { randomId } from '../ids.ts';
import { errorText, type Logger } from '../log.ts';
import { ConnectedContributor } from '../leases/contributor.ts';
import type { Relay } from '../leases/relay.ts';
import { chooseContributor } from '../scheduler/scheduler.ts';
import type { RelayPort } from '../sessions/session.ts';
import { type Bus, subjects } from './bus.ts';

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

const key = (home: string, contributorId: string): string => `${home}/${contributorId}`;
/** Remote contributors remembered for canaries. */
const RECENT_REMOTE = 10_000;
/** Replicas heard at once, at most (more are not taken: their `alive` is refused and counted). */
export const MAX_PEERS = 256;

export class Routing {
  readonly #o: Required<RoutingOptions>;
  readonly #s: ReturnType<typeof subjects>;
  readonly #boot = randomId(12);
  #relay: Relay | null = null;
  #find: (id: string) => ConnectedContributor | undefined = () => undefined;
  /** Peers heard from: their boot id, when, and what their contributors serve (`<model>\n<kind>\n<engine class>`). */
  readonly #peers = new Map<string, { boot: string; seenAt: number; serves: ReadonlySet<string> }>();
  /** Home side: slots lent per local contributor, per owner replica. */
  readonly #lent = new Map<string, Map<string, number>>();
  /** Home side: when each contributor's slots were last lent to each owner (`<contributor>/<owner>`). */
  readonly #lentAt = new Map<string, number>();
  /** Home side: owners' leases running on local contributors. */
  readonly #remoteLeases = new Map<string, { owner: string; contributorId: string; jobId: string }>();
  /** Owner side: contributors of other replicas holding slots or leases of this replica's jobs. */
  readonly #proxies = new Map<string, RemoteContributor>();
  /** Owner side: contributors of other replicas that held this replica's jobs lately, and their replica (a canary may follow). */
  readonly #recent = new Map<string, string>();
  /** When each waiting job last asked the other replicas, so one nobody can take does not spin. */
  readonly #claimedAt = new Map<string, number>();
  #claiming = false;
  #rr = 0;
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
    this.#o = { heartbeatMs: 500, deadAfterMs: 3_000, claimEveryMs: 20, claimTimeoutMs, lendForMs: 2 * claimTimeoutMs, ...options };
    this.#s = subjects(options.prefix);
  }

  get replicaId(): string {
    return this.#o.replicaId;
  }

  /** Contributors of other replicas holding a slot or lease of this replica's jobs now. */
  get holding(): number {
    return this.#proxies.size;
  }

  /** Whether a live peer has a contributor serving `model` and `kind` (and `engineClass`, when given). */
  peerServes(model: string, kind: string, engineClass?: string): boolean {
    const exact = engineClass === undefined ? null : `${model}\n${kind}\n${engineClass}`;
    const prefix = `${model}\n${kind}\n`;
    for (const peer of this.#peers.values()) {
      if (exact !== null ? peer.serves.has(exact) : [...peer.serves].some((s) => s.startsWith(prefix))) return true;
    }
    return false;
  }

  /** Live peers (not this replica). */
  get peers(): string[] {
    return [...this.#peers.keys()];
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
    relay.remoteContributor = (id) => this.#peers.has(this.#recent.get(id) ?? '');
    return {
      contributors: relay.contributors,
      join: (c) => relay.join(c),
      schedule: () => relay.schedule(),
      offer: (c, slots) => relay.offer(c, slots - this.#lentTotal(c.id)),
      leave: (c, why) => this.#localLeft(c, why),
      result: (c, message) => {
        const remote = this.#remoteLeases.get(message.leaseId);
        if (remote === undefined || remote.contributorId !== c.id) return relay.result(c, message);
        if (message.type === 'fail' || message.final) this.#remoteLeases.delete(message.leaseId);
        if (this.#o.bus.publish(this.#s.up(remote.owner), { home: this.#o.replicaId, contributorId: c.id, message })) return undefined;
        // Too large for the bus: the owner hears of a failed attempt instead of waiting for the lease to expire.
        this.#remoteLeases.delete(message.leaseId);
        const error = {
          code: 'BAD_MESSAGE' as const,
          message: 'A result chunk was too large for the replicas’ message bus (NATS max_payload).',
        };
        const fail = { v: 1 as const, type: 'fail' as const, jobId: message.jobId, leaseId: message.leaseId, error };
        this.#o.bus.publish(this.#s.up(remote.owner), { home: this.#o.replicaId, contributorId: c.id, message: fail });
        return { v: 1, type: 'error', error, fatal: false, jobId: message.jobId };
      },
    };
  }

  /** Subscribes and starts the heartbeat and claim timers. */
  start(): void {
    const { bus, replicaId: me } = this.#o;
    const fail = (what: string) => (err: unknown) => this.#o.logger.error(what, { error: errorText(err) });
    bus.subscribe(this.#s.alive, Alive, (m) => this.#heard(m.replica, m.boot, m.serves ?? []));
    bus.subscribe(this.#s.claim(me), Claim, (m, reply) => reply(this.#lend(m)));
    bus.subscribe(this.#s.down(me), Down, (m) => this.#down(m));
    bus.subscribe(this.#s.up(me), Up, (m) => this.#up(m));
    bus.subscribe(this.#s.release(me), Release, (m) => this.#released(m));
    bus.subscribe(this.#s.gone(me), Gone, (m) => this.#gone(m.home, m.contributorId, m.why));
    const beat = (): void => {
      bus.publish(this.#s.alive, { replica: me, boot: this.#boot, serves: this.#serves() });
      this.#sweepPeers();
      this.#sweepLent();
    };
    beat();
    this.#timers.push(setInterval(beat, this.#o.heartbeatMs));
    this.#timers.push(setInterval(() => void this.#claimTick().catch(fail('claiming slots failed')), this.#o.claimEveryMs));
    for (const t of this.#timers) t.unref();
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers.length = 0;
  }

  // ---- home side: this replica's contributors working for other replicas' jobs ----

  #lentTotal(contributorId: string): number {
    let n = 0;
    for (const slots of this.#lent.get(contributorId)?.values() ?? []) n += slots;
    return n;
  }

  #lend(m: v.InferOutput<typeof Claim>): v.InferOutput<typeof Granted> {
    const relay = this.#relay;
    if (relay === null || relay.draining || !this.#peers.has(m.owner)) return { contributor: null };
    const exclude = new Set(m.exclude);
    const excludeWallets = new Set(m.excludeWallets ?? []);
    const free = [...relay.contributors.values()].filter(
      (c) =>
        !(c instanceof RemoteContributor) &&
        c.openSlots > 0 &&
        c.capabilities !== null &&
        !exclude.has(c.id) &&
        (c.wallet === null || !excludeWallets.has(c.wallet)) &&
        (m.target === undefined || c.id === m.target),
    );
    const view = { id: m.jobId, apiKeyId: '', model: m.model, kind: m.kind, attempt: 1, triedBy: exclude };
    const chosen = chooseContributor(free, view, {});
    if (chosen === undefined || chosen.capabilities === null) return { contributor: null };
    chosen.openSlots--;
    const byOwner = this.#lent.get(chosen.id) ?? new Map<string, number>();
    byOwner.set(m.owner, (byOwner.get(m.owner) ?? 0) + 1);
    this.#lent.set(chosen.id, byOwner);
    this.#lentAt.set(key(chosen.id, m.owner), this.#o.clock.now());
    this.counts.slotsLent++;
    return { contributor: { id: chosen.id, hpkeKey: chosen.hpkeKey, wallet: chosen.wallet, capabilities: chosen.capabilities } };
  }

  /** Gives `slots` lent to `owner` back to the contributor's own scheduling. */
  #unlend(contributorId: string, owner: string, slots: number): void {
    const byOwner = this.#lent.get(contributorId);
    const held = byOwner?.get(owner) ?? 0;
    const back = Math.min(held, slots);
    if (byOwner === undefined || back === 0) return;
    if (held - back === 0) byOwner.delete(owner);
    else byOwner.set(owner, held - back);
    if (byOwner.size === 0) this.#lent.delete(contributorId);
    const c = this.#find(contributorId);
    if (c !== undefined) {
      c.openSlots += back;
      this.#relay?.schedule();
    }
  }

  /** Slots lent longer than `lendForMs` ago and still unused go back (see {@link RoutingOptions.lendForMs}). */
  #sweepLent(): void {
    const now = this.#o.clock.now();
    for (const [contributorId, byOwner] of [...this.#lent]) {
      for (const [owner, slots] of [...byOwner]) {
        if (now - (this.#lentAt.get(key(contributorId, owner)) ?? 0) <= this.#o.lendForMs) continue;
        this.counts.slotsExpired += slots;
        this.#o.logger.warn('lent slots came back unused', { owner, contributorId, slots });
        this.#unlend(contributorId, owner, slots);
      }
    }
    for (const k of this.#lentAt.keys()) {
      const [contributorId = '', owner = ''] = k.split('/');
      if (this.#lent.get(contributorId)?.has(owner) !== true) this.#lentAt.delete(k);
    }
  }

  #down(m: v.InferOutput<typeof Down>): void {
    const c = this.#find(m.contributorId);
    if (c === undefined) {
      this.#o.bus.publish(this.#s.gone(m.owner), { home: this.#o.replicaId, contributorId: m.contributorId, why: 'not connected here' });
      return;
    }
    const { message } = m;
    if (message.type === 'job') {
      // The lent slot is the job's now: the worker counts it from here on.
      const byOwner = this.#lent.get(c.id);
      const held = byOwner?.get(m.owner) ?? 0;
      if (byOwner !== undefined && held > 0) {
        if (held === 1) byOwner.delete(m.owner);
        else byOwner.set(m.owner, held - 1);
        if (byOwner.size === 0) this.#lent.delete(c.id);
      }
      this.#remoteLeases.set(message.leaseId, { owner: m.owner, contributorId: c.id, jobId: message.jobId });
    }
    if (message.type === 'cancel') this.#remoteLeases.delete(message.leaseId);
    c.send(message);
  }

  #released(m: v.InferOutput<typeof Release>): void {
    this.counts.slotsReturned += m.slots;
    this.#unlend(m.contributorId, m.owner, m.slots);
  }

  /** A local contributor left: the relay re-queues its own jobs, and its owners hear it is gone. */
  #localLeft(c: ConnectedContributor, why: string): void {
    this.#relay?.leave(c, why);
    if (this.#find(c.id) !== undefined && this.#find(c.id) !== c) return; // replaced on this replica: the new session carries on
    const owners = new Set(this.#lent.get(c.id)?.keys() ?? []);
    this.#lent.delete(c.id);
    for (const [leaseId, r] of this.#remoteLeases) {
      if (r.contributorId !== c.id) continue;
      owners.add(r.owner);
      this.#remoteLeases.delete(leaseId);
    }
    for (const owner of owners) this.#o.bus.publish(this.#s.gone(owner), { home: this.#o.replicaId, contributorId: c.id, why });
  }

  // ---- owner side: this replica's jobs on other replicas' contributors ----

  async #claimTick(): Promise<void> {
    const relay = this.#relay;
    if (relay === null || this.#claiming) return;
    const now = this.#o.clock.now();
    const peers = this.peers;
    const due = [];
    for (const job of relay.waitingJobs()) {
      if (due.length >= 32) break;
      if (now - (this.#claimedAt.get(job.id) ?? -Infinity) >= 250) due.push(job);
    }
    if (due.length === 0 || peers.length === 0) {
      this.#returnUnused();
      return;
    }
    this.#claiming = true;
    try {
      await Promise.all(
        due.map(async (job) => {
          this.#claimedAt.set(job.id, now);
          const start = this.#rr++;
          for (let k = 0; k < peers.length && job.state === 'waiting'; k++) {
            const peer = peers[(start + k) % peers.length] ?? '';
            const target = relay.targetOf(job.id);
            const excluded = relay.excludedFrom(job.id);
            const excludeWallets = excluded.wallets.slice(0, 16);
            const body = {
              owner: this.#o.replicaId,
              jobId: job.id,
              model: job.model,
              kind: job.kind,
              exclude: [...new Set([...excluded.contributors, ...job.triedBy])].slice(0, 64),
              ...(excludeWallets.length > 0 && { excludeWallets }),
              ...(target !== undefined && { target }),
            };
            this.counts.claimsSent++;
            const answer = await this.#o.bus.request(this.#s.claim(peer), body, this.#o.claimTimeoutMs).catch(() => null);
            const granted = answer === null ? null : parseGranted(answer);
            if (granted !== null) {
              this.counts.claimsGranted++;
              this.#hold(peer, granted);
              return;
            }
          }
        }),
      );
    } finally {
      this.#claiming = false;
      for (const id of this.#claimedAt.keys()) if (relay.jobById(id)?.state !== 'waiting') this.#claimedAt.delete(id);
      this.#returnUnused();
    }
  }

  /** One slot of `view`'s contributor, lent by `home`, joins this relay and is scheduled at once. */
  #hold(home: string, view: v.InferOutput<typeof RemoteView>): void {
    const relay = this.#relay;
    const local = relay?.contributors.get(view.id);
    if (relay === null || (local !== undefined && !(local instanceof RemoteContributor)) || !this.#peers.has(home)) {
      this.#o.bus.publish(this.#s.release(home), { owner: this.#o.replicaId, contributorId: view.id, slots: 1 });
      return;
    }
    const k = key(home, view.id);
    this.#recent.delete(view.id);
    this.#recent.set(view.id, home);
    if (this.#recent.size > RECENT_REMOTE) {
      const oldest = this.#recent.keys().next();
      if (oldest.done !== true) this.#recent.delete(oldest.value);
    }
    let proxy = this.#proxies.get(k);
    if (proxy === undefined || local !== proxy) {
      proxy = new RemoteContributor(home, view, (message) => {
        if (this.#o.bus.publish(this.#s.down(home), { owner: this.#o.replicaId, contributorId: view.id, message })) return;
        const job = message.type === 'job' ? relay.jobById(message.jobId) : undefined;
        // Outside the relay's call that sent it: the job fails, typed, rather than waiting for its lease to expire.
        if (job !== undefined) {
          const error = {
            code: 'BAD_MESSAGE' as const,
            message:
              'The sealed payload is larger than the coordinator replicas can pass between them (NATS max_payload); send a smaller job.',
          };
          queueMicrotask(() => relay.refuse(job, error));
        }
      });
      this.#proxies.set(k, proxy);
      relay.join(proxy);
    }
    proxy.openSlots++;
    relay.schedule();
  }

  /**
   * Slots held from other replicas that the relay did not use go back; a remote contributor that
   * holds nothing of this replica's any more leaves its relay (placement, device counts and
   * `hasPeer` see only what this replica holds).
   */
  #returnUnused(): void {
    for (const [k, proxy] of this.#proxies) {
      if (proxy.openSlots > 0) {
        this.#o.bus.publish(this.#s.release(proxy.home), { owner: this.#o.replicaId, contributorId: proxy.id, slots: proxy.openSlots });
        proxy.openSlots = 0;
      }
      if (proxy.leases.size === 0) {
        this.#proxies.delete(k);
        this.#relay?.leave(proxy, 'holds nothing of this replica');
      }
    }
  }

  #up(m: v.InferOutput<typeof Up>): void {
    const proxy = this.#proxies.get(key(m.home, m.contributorId));
    const relay = this.#relay;
    this.counts.remoteResults++;
    const answer: CoordinatorMessage =
      proxy === undefined || relay === null
        ? {
            v: 1,
            type: 'error',
            error: { code: 'NOT_FOUND', message: `No lease ${m.message.leaseId} here.` },
            fatal: false,
            jobId: m.message.jobId,
          }
        : relay.result(proxy, m.message);
    this.#o.bus.publish(this.#s.down(m.home), { owner: this.#o.replicaId, contributorId: m.contributorId, message: answer });
  }

  /** A contributor of `home` left (or `home` died): its leases of this replica's jobs are re-leased. */
  #gone(home: string, contributorId: string, why: string): void {
    if (this.#recent.get(contributorId) === home) this.#recent.delete(contributorId);
    const k = key(home, contributorId);
    const proxy = this.#proxies.get(k);
    if (proxy === undefined) return;
    this.#proxies.delete(k);
    proxy.openSlots = 0;
    this.#relay?.leave(proxy, `its replica ${home}: ${why}`);
  }

  // ---- peers ----

  /**
   * A replica said it lives. A new boot id is a restart only once the old one has gone quiet
   * (two heartbeats): while both speak, one of them is not the replica (its lock allows one
   * process), and the one heard first is kept.
   */
  #heard(replica: string, boot: string, serves: readonly string[]): void {
    if (replica === this.#o.replicaId) return;
    const now = this.#o.clock.now();
    const known = this.#peers.get(replica);
    if (known !== undefined && known.boot !== boot) {
      if (now - known.seenAt < 2 * this.#o.heartbeatMs) {
        this.counts.aliveRefused++;
        return;
      }
      this.#lost(replica, 'restarted');
    }
    if (known === undefined && this.#peers.size >= MAX_PEERS) {
      this.counts.aliveRefused++;
      return;
    }
    this.#peers.set(replica, { boot, seenAt: now, serves: new Set(serves) });
  }

  /** What this replica's own contributors serve, for the heartbeat (at most 256 entries). */
  #serves(): string[] {
    const relay = this.#relay;
    const out = new Set<string>();
    if (relay === null) return [];
    for (const c of relay.contributors.values()) {
      if (c instanceof RemoteContributor || c.capabilities === null) continue;
      for (const model of c.capabilities.models) {
        const engineClass = relay.engineClassOf(c, model.id);
        for (const kind of c.capabilities.consent) {
          if (out.size >= 256) return [...out];
          out.add(`${model.id}\n${kind}\n${engineClass}`);
        }
      }
    }
    return [...out];
  }

  #sweepPeers(): void {
    const now = this.#o.clock.now();
    for (const [replica, peer] of this.#peers) if (now - peer.seenAt > this.#o.deadAfterMs) this.#lost(replica, 'went silent');
  }

  /** A replica died or restarted: both sides of what this replica shared with it end. */
  #lost(replica: string, why: string): void {
    this.#peers.delete(replica);
    this.counts.peersLost++;
    this.#o.logger.info('replica lost', { replica, why });
    for (const proxy of [...this.#proxies.values()]) if (proxy.home === replica) this.#gone(replica, proxy.id, `replica ${why}`);
    for (const [leaseId, r] of this.#remoteLeases) {
      if (r.owner !== replica) continue;
      this.#remoteLeases.delete(leaseId);
      this.#find(r.contributorId)?.send({ v: 1, type: 'cancel', jobId: r.jobId, leaseId, reason: `the job's replica ${why}` });
    }
    for (const [contributorId, byOwner] of [...this.#lent]) {
      const slots = byOwner.get(replica);
      if (slots !== undefined) this.#unlend(contributorId, replica, slots);
    }
    for (const fn of this.#lostListeners) fn(replica);
  }
}

function parseGranted(answer: unknown): v.InferOutput<typeof RemoteView> | null {
  const parsed = v.safeParse(Granted, answer);
  return parsed.success ? parsed.output.contributor : null;
}
