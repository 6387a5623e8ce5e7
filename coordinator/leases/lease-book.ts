/**
 * Leases: one per attempt of a job on one contributor. A lease is `reserved` from the
 * assignment until the payload arrives, `running` from the job frame to the deadline, then
 * `ended`. Ended leases are kept a while so that a repeated result is acknowledged as a
 * duplicate and a late one refused by name, not as unknown.
 */
import type { WireError } from '../../protocol/wire.ts';
import type { Clock } from '../clock.ts';
import type { ConnectedContributor } from './contributor.ts';

export type LeaseOutcome = 'done' | 'failed' | 'expired' | 'cancelled' | 'dropped';

export interface Lease {
  readonly id: string;
  readonly jobId: string;
  readonly attempt: number;
  readonly holder: ConnectedContributor;
  phase: 'reserved' | 'running' | 'ended';
  outcome: LeaseOutcome | null;
  /** Reserved: the payload must arrive by then. Running: the job's deadline. Ms. */
  expiresAt: number;
  /** The seq the next accepted chunk must have. */
  nextSeq: number;
  endedAt: number;
}

export class LeaseBook {
  readonly #clock: Clock;
  readonly #active = new Map<string, Lease>();
  /** Ended leases in the order they ended. */
  readonly #ended = new Map<string, Lease>();
  #running = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  reserve(init: { id: string; jobId: string; attempt: number; holder: ConnectedContributor; expiresAt: number }): Lease {
    const lease: Lease = { ...init, phase: 'reserved', outcome: null, nextSeq: 0, endedAt: 0 };
    this.#active.set(lease.id, lease);
    init.holder.leases.add(lease.id);
    return lease;
  }

  start(lease: Lease, deadline: number): void {
    lease.phase = 'running';
    lease.expiresAt = deadline;
    this.#running++;
  }

  end(lease: Lease, outcome: LeaseOutcome): void {
    if (lease.phase === 'ended') return;
    if (lease.phase === 'running') this.#running--;
    lease.phase = 'ended';
    lease.outcome = outcome;
    lease.endedAt = this.#clock.now();
    lease.holder.leases.delete(lease.id);
    this.#active.delete(lease.id);
    this.#ended.set(lease.id, lease);
  }

  /** A lease, active or recently ended. */
  get(id: string): Lease | undefined {
    return this.#active.get(id) ?? this.#ended.get(id);
  }

  active(id: string): Lease | undefined {
    return this.#active.get(id);
  }

  /** Active leases past their expiry, as a snapshot (callers end them). */
  overdue(now: number): Lease[] {
    return [...this.#active.values()].filter((lease) => now > lease.expiresAt);
  }

  /** Drops ended leases that ended before `before`, ms. */
  forget(before: number): void {
    for (const [id, lease] of this.#ended) {
      if (lease.endedAt >= before) break;
      this.#ended.delete(id);
    }
  }

  get runningCount(): number {
    return this.#running;
  }

  get reservedCount(): number {
    return this.#active.size - this.#running;
  }
}

/** What to do with a `chunk` or `fail`: take it, acknowledge it again, or refuse it. */
export type Verdict =
  | { action: 'accept' }
  | { action: 'duplicate' }
  /** `expire`: the lease ran past its deadline and is to be expired now. */
  | { action: 'refuse'; error: WireError; expire?: true };

/**
 * The rules for a result on a lease (docs/protocol.md, step 6): it must name a live lease
 * of its sender's, before the deadline; chunks come in order, and a repeat of one already
 * taken (or of the fail that ended the lease) is a duplicate, not an error.
 */
export function judgeResult(
  lease: Lease | undefined,
  senderId: string,
  message: { type: 'chunk' | 'fail'; jobId: string; leaseId: string; seq?: number },
  now: number,
): Verdict {
  const refuse = (code: WireError['code'], text: string): Verdict => ({ action: 'refuse', error: { code, message: text } });
  if (lease === undefined || lease.jobId !== message.jobId)
    return refuse('NOT_FOUND', `No job ${message.jobId} on lease ${message.leaseId}; drop it.`);
  if (lease.holder.id !== senderId) return refuse('UNAUTHORIZED', 'That lease belongs to another contributor.');
  const seq = message.seq ?? lease.nextSeq;
  if (lease.phase === 'ended') {
    const repeat = message.type === 'chunk' ? seq < lease.nextSeq : lease.outcome === 'failed';
    return repeat
      ? { action: 'duplicate' }
      : refuse('LEASE_EXPIRED', `The lease ended (${lease.outcome ?? 'ended'}); the result is refused.`);
  }
  if (lease.phase === 'reserved') return refuse('CONFLICT', 'No job was sent on this lease yet.');
  if (now > lease.expiresAt) {
    return {
      action: 'refuse',
      error: {
        code: 'LEASE_EXPIRED',
        message: 'The lease ran past its deadline; the result is refused and the job goes to another contributor.',
      },
      expire: true,
    };
  }
  if (message.type === 'fail') return { action: 'accept' };
  if (seq < lease.nextSeq) return { action: 'duplicate' };
  if (seq > lease.nextSeq) return refuse('BAD_MESSAGE', `Chunk ${seq} came before chunk ${lease.nextSeq}; send the chunks in order.`);
  return { action: 'accept' };
}
