/**
 * The owner side of the work between replicas (coordinator/cluster/routing.ts): this replica's
 * waiting jobs claim slots of other replicas' contributors, which join the relay as
 * {@link RemoteContributor}s; their answers come up, and slots the relay did not use go back.
 */
import * as v from 'valibot';
import { Granted, type RemoteView, type Up } from '../../protocol/cluster.ts';
import type { CoordinatorMessage } from '../../protocol/wire.ts';
import type { Job } from '../jobs/job.ts';
import type { Relay } from '../leases/relay.ts';
import { randomId } from '../ids.ts';
import { errorText } from '../log.ts';
import { RemoteContributor, type RoutingContext } from './routing-context.ts';

const key = (home: string, contributorId: string): string => `${home}/${contributorId}`;
/** Remote contributors remembered for canaries. */
const RECENT_REMOTE = 10_000;
/** Claims out at once, at most (each one job's; a granted slot serves whichever waiting job fits it). */
const MAX_IN_FLIGHT = 256;
/** How long a waiting job that no replica could take waits before it asks again, ms. */
const RETRY_MS = 250;
/** Slots of one model and kind claimed ahead of this replica's next jobs, at most. */
const AHEAD = 64;
/** How long a held slot no job used is kept before it goes back to its contributor's replica, ms. */
const KEEP_MS = 250;

const modelKind = (model: string, kind: string): string => `${model}\n${kind}`;

export class Borrowing {
  readonly #x: RoutingContext;
  /** Contributors of other replicas holding slots or leases of this replica's jobs. */
  readonly #proxies = new Map<string, RemoteContributor>();
  /** Contributors of other replicas that held this replica's jobs lately, and their replica (a canary may follow). */
  readonly #recent = new Map<string, string>();
  /** When each waiting job last asked the other replicas or heard their answers, so one nobody can take does not spin. */
  readonly #claimedAt = new Map<string, number>();
  /** Waiting jobs with a claim out now. */
  readonly #inFlight = new Set<string>();
  /**
   * Slots claimed ahead, per `<model>\n<kind>`: `started` jobs of it started on a held slot since the
   * last tick (each is replaced by one claimed ahead), `out` claims ahead not answered yet.
   */
  readonly #ahead = new Map<string, { model: string; kind: Job['kind']; started: number; out: number }>();
  /** When each held remote contributor last got an unused slot (unused ones go back {@link KEEP_MS} after). */
  readonly #keptAt = new Map<string, number>();
  #rr = 0;

  constructor(context: RoutingContext) {
    this.#x = context;
  }

  /** Contributors of other replicas holding a slot or lease of this replica's jobs now. */
  get holding(): number {
    return this.#proxies.size;
  }

  /** The replica of a contributor that held this replica's jobs lately. */
  recentHome(contributorId: string): string | undefined {
    return this.#recent.get(contributorId);
  }

  /**
   * Waiting jobs ask the other replicas for a slot, each without waiting for the others' answers
   * (at most {@link MAX_IN_FLIGHT} claims out at once, one per job; a job nobody could take asks
   * again {@link RETRY_MS} after the last refusal); `peersFor` says whom to ask for a model and kind, in order. Slots held
   * and not used since the last call go back.
   */
  claim(peersFor: (model: string, kind: string) => readonly string[]): void {
    const relay = this.#x.relay();
    if (relay === null) return;
    const now = this.#x.options.clock.now();
    for (const job of relay.waitingJobs()) {
      if (this.#inFlight.size >= MAX_IN_FLIGHT) break;
      if (this.#inFlight.has(job.id) || now - (this.#claimedAt.get(job.id) ?? -Infinity) < RETRY_MS) continue;
      const peers = peersFor(job.model, job.kind);
      if (peers.length === 0) continue;
      this.#claimedAt.set(job.id, now);
      this.#inFlight.add(job.id);
      void this.#claimFor(relay, job, peers)
        .catch((err: unknown) => this.#x.options.logger.error('claiming a slot failed', { jobId: job.id, error: errorText(err) }))
        .finally(() => {
          this.#inFlight.delete(job.id);
          this.#claimedAt.set(job.id, this.#x.options.clock.now());
        });
    }
    for (const id of this.#claimedAt.keys()) {
      if (!this.#inFlight.has(id) && relay.jobById(id)?.state !== 'waiting') this.#claimedAt.delete(id);
    }
    this.#claimAhead(relay, peersFor);
    this.returnUnused();
  }

  /**
   * Each job that started on a held slot since the last tick has one slot of its model and kind
   * claimed ahead for the job after it, so that one does not wait for a claim's round trip (at
   * most {@link AHEAD} held or asked for per model and kind); one no job used goes back after
   * {@link KEEP_MS} and is not replaced.
   */
  #claimAhead(relay: Relay, peersFor: (model: string, kind: string) => readonly string[]): void {
    if (relay.draining) return this.#ahead.clear();
    for (const [mk, a] of this.#ahead) {
      const want = Math.min(a.started, AHEAD - a.out - this.#openFor(a.model, a.kind), MAX_IN_FLIGHT - this.#inFlight.size);
      a.started = 0;
      const peers = want > 0 ? peersFor(a.model, a.kind) : [];
      for (let i = 0; i < want && peers.length > 0; i++) {
        const id = randomId(12);
        a.out++;
        this.#inFlight.add(id);
        void this.#claimFor(relay, { id, model: a.model, kind: a.kind }, peers)
          .catch((err: unknown) => this.#x.options.logger.error('claiming a slot ahead failed', { error: errorText(err) }))
          .finally(() => {
            this.#inFlight.delete(id);
            a.out--;
          });
      }
      if (a.out === 0 && a.started === 0) this.#ahead.delete(mk);
    }
  }

  /** Unused slots held now of contributors serving `model` and `kind`. */
  #openFor(model: string, kind: Job['kind']): number {
    let n = 0;
    for (const proxy of this.#proxies.values()) {
      const caps = proxy.capabilities;
      if (proxy.openSlots > 0 && caps !== null && caps.consent.includes(kind) && caps.models.some((m) => m.id === model))
        n += proxy.openSlots;
    }
    return n;
  }

  /**
   * Asks `peers` in turn (from a rotating start) for a slot for `job` (a waiting job, or a job to
   * come, claimed ahead), until one grants it or the job no longer waits.
   */
  async #claimFor(relay: Relay, job: Pick<Job, 'id' | 'model' | 'kind'> & Partial<Job>, peers: readonly string[]): Promise<void> {
    const { bus, replicaId, claimTimeoutMs } = this.#x.options;
    const start = this.#rr++;
    for (let k = 0; k < peers.length && (job.state ?? 'waiting') === 'waiting'; k++) {
      const peer = peers[(start + k) % peers.length] ?? '';
      const target = relay.targetOf(job.id);
      const excluded = relay.excludedFrom(job.id);
      const excludeWallets = excluded.wallets.slice(0, 16);
      const body = {
        owner: replicaId,
        jobId: job.id,
        model: job.model,
        kind: job.kind,
        exclude: [...new Set([...excluded.contributors, ...(job.triedBy ?? [])])].slice(0, 64),
        ...(excludeWallets.length > 0 && { excludeWallets }),
        ...(target !== undefined && { target }),
      };
      this.#x.counts.claimsSent++;
      const answer = await bus.request(this.#x.subjects.claim(peer), body, claimTimeoutMs).catch(() => {
        this.#unanswered(peer);
        return null;
      });
      const granted = answer === null ? null : parseGranted(answer);
      if (granted !== null) {
        this.#x.counts.claimsGranted++;
        this.#hold(peer, granted);
        return;
      }
    }
  }

  /** One slot of `view`'s contributor, lent by `home`, joins this relay and is scheduled at once. */
  #hold(home: string, view: v.InferOutput<typeof RemoteView>): void {
    const { bus, replicaId } = this.#x.options;
    const relay = this.#x.relay();
    const local = relay?.contributors.get(view.id);
    if (relay === null || (local !== undefined && !(local instanceof RemoteContributor)) || !this.#x.isPeer(home)) {
      bus.publish(this.#x.subjects.release(home), { owner: replicaId, contributorId: view.id, slots: 1 });
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
        const job = message.type === 'job' ? relay.jobById(message.jobId) : undefined;
        if (job !== undefined) this.#started(job.model, job.kind);
        if (bus.publish(this.#x.subjects.down(home), { owner: replicaId, contributorId: view.id, message })) return;
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
    this.#keptAt.set(k, this.#x.options.clock.now());
    relay.schedule();
  }

  /**
   * `home` did not answer a claim (no one listens: it died or restarted; or it timed out): its
   * unused slots held here go back now, so no job is placed on them while its silence is timed.
   */
  #unanswered(home: string): void {
    const { bus, replicaId } = this.#x.options;
    for (const proxy of this.#proxies.values()) {
      if (proxy.home !== home || proxy.openSlots <= 0) continue;
      bus.publish(this.#x.subjects.release(home), { owner: replicaId, contributorId: proxy.id, slots: proxy.openSlots });
      proxy.openSlots = 0;
    }
  }

  /** A job of `model` and `kind` started on a held slot: one more is claimed ahead at the next tick. */
  #started(model: string, kind: Job['kind']): void {
    const mk = modelKind(model, kind);
    const a = this.#ahead.get(mk) ?? { model, kind, started: 0, out: 0 };
    a.started++;
    this.#ahead.set(mk, a);
  }

  /**
   * Slots held from other replicas that no job used for {@link KEEP_MS} (all of them while this
   * replica drains) go back; a remote contributor that holds nothing of this replica's any more
   * leaves its relay (placement, device counts and `hasPeer` see only what this replica holds).
   */
  returnUnused(): void {
    const { bus, replicaId, clock } = this.#x.options;
    const now = clock.now();
    const all = this.#x.relay()?.draining ?? true;
    for (const [k, proxy] of this.#proxies) {
      if (proxy.openSlots > 0 && (all || now - (this.#keptAt.get(k) ?? -Infinity) >= KEEP_MS)) {
        bus.publish(this.#x.subjects.release(proxy.home), { owner: replicaId, contributorId: proxy.id, slots: proxy.openSlots });
        proxy.openSlots = 0;
      }
      if (proxy.leases.size === 0 && proxy.openSlots <= 0) {
        this.#proxies.delete(k);
        this.#keptAt.delete(k);
        this.#x.relay()?.leave(proxy, 'holds nothing of this replica');
      }
    }
  }

  /** A worker's answer from its home: the relay takes it as from a local contributor, and its answer goes back down. */
  up(m: v.InferOutput<typeof Up>): void {
    const proxy = this.#proxies.get(key(m.home, m.contributorId));
    const relay = this.#x.relay();
    this.#x.counts.remoteResults++;
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
    const { bus, replicaId } = this.#x.options;
    bus.publish(this.#x.subjects.down(m.home), { owner: replicaId, contributorId: m.contributorId, message: answer });
  }

  /** A contributor of `home` left (or `home` died): its leases of this replica's jobs are re-leased. */
  gone(home: string, contributorId: string, why: string): void {
    if (this.#recent.get(contributorId) === home) this.#recent.delete(contributorId);
    const k = key(home, contributorId);
    const proxy = this.#proxies.get(k);
    if (proxy === undefined) return;
    this.#proxies.delete(k);
    this.#keptAt.delete(k);
    proxy.openSlots = 0;
    this.#x.relay()?.leave(proxy, `its replica ${home}: ${why}`);
  }

  /** `replica` died or restarted: every contributor of it leaves this relay. */
  peerLost(replica: string, why: string): void {
    for (const proxy of [...this.#proxies.values()]) if (proxy.home === replica) this.gone(replica, proxy.id, `replica ${why}`);
  }
}

function parseGranted(answer: unknown): v.InferOutput<typeof RemoteView> | null {
  const parsed = v.safeParse(Granted, answer);
  return parsed.success ? parsed.output.contributor : null;
}
