/**
 * Assignments ahead of need on the SDK's side (docs/protocol.md, "Sealing ahead of need"):
 * per model and kind, the assignments the requester channel handed out and this client has
 * not used yet, and when to ask for more. A batch is asked for once the pool is down to half
 * its target, so sealing a job never waits for the coordinator while there is idle capacity.
 */
import type { JobKind } from '../protocol/manifest.ts';
import type { HeldAssignment } from '../protocol/requester-channel.ts';

/** Assignments asked for while none come back (no idle capacity, or refused): not asked again for this long, ms. */
const QUIET_MS = 1_000;
/** Of an assignment's lifetime, the share it is used in: the rest covers the trip to the coordinator. */
const USABLE_SHARE = 0.8;

interface Pooled {
  assignment: HeldAssignment;
  /** Local ms after which it is not used (it may have expired at the coordinator by the time a job on it arrives). */
  usableUntil: number;
}

export class AssignmentPool {
  /** How many unused assignments to keep per model and kind. */
  readonly target: number;
  readonly #pools = new Map<string, Pooled[]>();
  /** Model-and-kind keys with an `assign` in flight. */
  readonly #asking = new Set<string>();
  readonly #quietUntil = new Map<string, number>();
  readonly #now: () => number;

  constructor(target: number, now: () => number = Date.now) {
    this.target = target;
    this.#now = now;
  }

  /** An unused assignment for the model and kind, or undefined. */
  take(model: string, kind: JobKind): HeldAssignment | undefined {
    const pool = this.#pools.get(poolKey(model, kind));
    const now = this.#now();
    for (let next = pool?.shift(); next !== undefined; next = pool?.shift()) if (next.usableUntil > now) return next.assignment;
    return undefined;
  }

  /**
   * How many to ask for now (0: none): the pool is at half its target or below, nothing is
   * asked already and the last ask was not answered empty a moment ago. A positive answer
   * marks the ask in flight until {@link answered}.
   */
  toAsk(model: string, kind: JobKind): number {
    if (this.target <= 0) return 0;
    const key = poolKey(model, kind);
    if (this.#asking.has(key) || (this.#quietUntil.get(key) ?? 0) > this.#now()) return 0;
    const have = this.#usable(key);
    if (have > this.target / 2) return 0;
    this.#asking.add(key);
    return this.target - have;
  }

  /** The answer to an ask: the assignments (none when refused), usable for `expiresInMs` from now. */
  answered(model: string, kind: JobKind, assignments: readonly HeldAssignment[], expiresInMs: number): void {
    const key = poolKey(model, kind);
    this.#asking.delete(key);
    if (assignments.length === 0) this.#quietUntil.set(key, this.#now() + QUIET_MS);
    const usableUntil = this.#now() + expiresInMs * USABLE_SHARE;
    let pool = this.#pools.get(key);
    if (pool === undefined) this.#pools.set(key, (pool = []));
    for (const assignment of assignments) pool.push({ assignment, usableUntil });
  }

  clear(): void {
    this.#pools.clear();
    this.#asking.clear();
  }

  #usable(key: string): number {
    const pool = this.#pools.get(key);
    if (pool === undefined) return 0;
    const now = this.#now();
    while (pool.length > 0 && (pool[0]?.usableUntil ?? 0) <= now) pool.shift();
    return pool.length;
  }
}

function poolKey(model: string, kind: JobKind): string {
  return `${kind}\u0000${model}`;
}
