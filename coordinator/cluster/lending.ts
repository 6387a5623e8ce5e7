/**
 * The home side of the work between replicas (coordinator/cluster/routing.ts): this replica's
 * contributors lend slots to other replicas' jobs, pass what the owners send down to the socket,
 * and send the workers' answers up.
 */
import type * as v from 'valibot';
import type { Claim, Down, Granted, Release } from '../../protocol/cluster.ts';
import type { CoordinatorMessage } from '../../protocol/wire.ts';
import type { ConnectedContributor } from '../leases/contributor.ts';
import type { Relay } from '../leases/relay.ts';
import { chooseContributor } from '../scheduler/scheduler.ts';
import { RemoteContributor, type RoutingContext } from './routing-context.ts';

type WorkerResult = Parameters<Relay['result']>[1];

export class Lending {
  readonly #x: RoutingContext;
  /** Slots lent per local contributor, per owner replica. */
  readonly #lent = new Map<string, Map<string, number>>();
  /** When each contributor's slots were last lent to each owner (`<contributor>/<owner>`). */
  readonly #lentAt = new Map<string, number>();
  /** Owners' leases running on local contributors. */
  readonly #remoteLeases = new Map<string, { owner: string; contributorId: string; jobId: string }>();

  constructor(context: RoutingContext) {
    this.#x = context;
  }

  /** Slots of a local contributor lent to other replicas now. */
  lentTotal(contributorId: string): number {
    let n = 0;
    for (const slots of this.#lent.get(contributorId)?.values() ?? []) n += slots;
    return n;
  }

  /** An owner's claim: one slot of a free local contributor, off this replica's own scheduling. */
  lend(m: v.InferOutput<typeof Claim>): v.InferOutput<typeof Granted> {
    const relay = this.#x.relay();
    if (relay === null || relay.draining || !this.#x.isPeer(m.owner)) return { contributor: null };
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
    this.#lentAt.set(`${chosen.id}/${m.owner}`, this.#x.options.clock.now());
    this.#x.counts.slotsLent++;
    return { contributor: { id: chosen.id, hpkeKey: chosen.hpkeKey, wallet: chosen.wallet, capabilities: chosen.capabilities } };
  }

  /** Slots lent longer than `lendForMs` ago and still unused go back (see `RoutingOptions.lendForMs`). */
  sweep(now: number): void {
    for (const [contributorId, byOwner] of [...this.#lent]) {
      for (const [owner, slots] of [...byOwner]) {
        if (now - (this.#lentAt.get(`${contributorId}/${owner}`) ?? 0) <= this.#x.options.lendForMs) continue;
        this.#x.counts.slotsExpired += slots;
        this.#x.options.logger.warn('lent slots came back unused', { owner, contributorId, slots });
        this.#unlend(contributorId, owner, slots);
      }
    }
    for (const k of this.#lentAt.keys()) {
      const [contributorId = '', owner = ''] = k.split('/');
      if (this.#lent.get(contributorId)?.has(owner) !== true) this.#lentAt.delete(k);
    }
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
    const c = this.#x.find(contributorId);
    if (c !== undefined) {
      c.openSlots += back;
      this.#x.relay()?.schedule();
    }
  }

  /** What an owner's relay sends one of this replica's workers. */
  down(m: v.InferOutput<typeof Down>): void {
    const { bus, replicaId } = this.#x.options;
    const c = this.#x.find(m.contributorId);
    if (c === undefined) {
      bus.publish(this.#x.subjects.gone(m.owner), { home: replicaId, contributorId: m.contributorId, why: 'not connected here' });
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

  /** An owner gives back slots it did not use. */
  released(m: v.InferOutput<typeof Release>): void {
    this.#x.counts.slotsReturned += m.slots;
    this.#unlend(m.contributorId, m.owner, m.slots);
  }

  /** Whether `leaseId`, on local contributor `c`, is an owner's lease. */
  runs(c: ConnectedContributor, leaseId: string): boolean {
    return this.#remoteLeases.get(leaseId)?.contributorId === c.id;
  }

  /** A worker's chunk or fail for an owner's lease goes up to the owner; the worker hears back only if the bus refused it. */
  up(c: ConnectedContributor, message: WorkerResult): CoordinatorMessage | undefined {
    const remote = this.#remoteLeases.get(message.leaseId);
    if (remote === undefined) return undefined;
    const { bus, replicaId } = this.#x.options;
    const up = this.#x.subjects.up(remote.owner);
    if (message.type === 'fail' || message.final) this.#remoteLeases.delete(message.leaseId);
    if (bus.publish(up, { home: replicaId, contributorId: c.id, message })) return undefined;
    // Too large for the bus: the owner hears of a failed attempt instead of waiting for the lease to expire.
    this.#remoteLeases.delete(message.leaseId);
    const error = {
      code: 'BAD_MESSAGE' as const,
      message: 'A result chunk was too large for the replicas’ message bus (NATS max_payload).',
    };
    const fail = { v: 1 as const, type: 'fail' as const, jobId: message.jobId, leaseId: message.leaseId, error };
    bus.publish(up, { home: replicaId, contributorId: c.id, message: fail });
    return { v: 1, type: 'error', error, fatal: false, jobId: message.jobId };
  }

  /** A local contributor left (after the relay re-queued its own jobs): its owners hear it is gone. */
  left(c: ConnectedContributor, why: string): void {
    const owners = new Set(this.#lent.get(c.id)?.keys() ?? []);
    this.#lent.delete(c.id);
    for (const [leaseId, r] of this.#remoteLeases) {
      if (r.contributorId !== c.id) continue;
      owners.add(r.owner);
      this.#remoteLeases.delete(leaseId);
    }
    const { bus, replicaId } = this.#x.options;
    for (const owner of owners) bus.publish(this.#x.subjects.gone(owner), { home: replicaId, contributorId: c.id, why });
  }

  /** `replica` died or restarted: its leases on local workers are cancelled and its slots come back. */
  peerLost(replica: string, why: string): void {
    for (const [leaseId, r] of this.#remoteLeases) {
      if (r.owner !== replica) continue;
      this.#remoteLeases.delete(leaseId);
      this.#x.find(r.contributorId)?.send({ v: 1, type: 'cancel', jobId: r.jobId, leaseId, reason: `the job's replica ${why}` });
    }
    for (const [contributorId, byOwner] of [...this.#lent]) {
      const slots = byOwner.get(replica);
      if (slots !== undefined) this.#unlend(contributorId, replica, slots);
    }
  }
}
