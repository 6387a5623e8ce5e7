/**
 * Assignments ahead of need (docs/protocol.md, "Sealing ahead of need"): a contributor slot
 * reserved for one API key before its job exists, with the job id the job will have, so the
 * requester can seal the payload first and send job and payload in one message.
 *
 * A hold takes one of the contributor's open slots and nothing else: no job, no billing
 * reservation, no lease. It ends `used` (its job arrived, or the requester gave it up),
 * `expired` (unused in time: the slot goes back) or `lost` (the contributor left). Ended
 * holds are kept a while so a late job on one is told apart from a job on an id never
 * handed out, or handed to another key.
 */
import type { JobKind } from '../../protocol/manifest.ts';
import type { ConnectedContributor } from './contributor.ts';
import { type Refusal, refusal } from './relay-types.ts';

export interface Hold {
  /** The job id the job on this hold gets. */
  readonly id: string;
  readonly apiKeyId: string;
  readonly model: string;
  readonly kind: JobKind;
  readonly holder: ConnectedContributor;
  /** `held`: unused, expires at `expiresAt`; `claimed`: its job is being created (it no longer expires). */
  state: 'held' | 'claimed' | 'used' | 'expired' | 'lost';
  /** Coordinator ms. */
  readonly expiresAt: number;
  endedAt: number;
}

export class HoldBook {
  readonly #live = new Map<string, Hold>();
  /** Ended holds in the order they ended. */
  readonly #ended = new Map<string, Hold>();
  readonly #perHolder = new Map<ConnectedContributor, Set<Hold>>();
  readonly #perKey = new Map<string, number>();

  add(hold: Hold): void {
    this.#live.set(hold.id, hold);
    let set = this.#perHolder.get(hold.holder);
    if (set === undefined) this.#perHolder.set(hold.holder, (set = new Set()));
    set.add(hold);
    this.#perKey.set(hold.apiKeyId, (this.#perKey.get(hold.apiKeyId) ?? 0) + 1);
  }

  /** Live holds (held or claimed) of an API key, on every channel. */
  of(apiKeyId: string): number {
    return this.#perKey.get(apiKeyId) ?? 0;
  }

  /** A hold, live or recently ended. */
  get(id: string): Hold | undefined {
    return this.#live.get(id) ?? this.#ended.get(id);
  }

  /** Live holds (held or claimed) on a contributor. */
  on(holder: ConnectedContributor): ReadonlySet<Hold> {
    return this.#perHolder.get(holder) ?? EMPTY;
  }

  /** Held (unclaimed) holds past `now`, as a snapshot. */
  overdue(now: number): Hold[] {
    const out: Hold[] = [];
    for (const hold of this.#live.values()) if (hold.state === 'held' && now > hold.expiresAt) out.push(hold);
    return out;
  }

  live(): IterableIterator<Hold> {
    return this.#live.values();
  }

  end(hold: Hold, state: 'used' | 'expired' | 'lost', now: number): void {
    if (!this.#live.delete(hold.id)) return;
    hold.state = state;
    hold.endedAt = now;
    const set = this.#perHolder.get(hold.holder);
    set?.delete(hold);
    if (set?.size === 0) this.#perHolder.delete(hold.holder);
    const left = (this.#perKey.get(hold.apiKeyId) ?? 1) - 1;
    if (left > 0) this.#perKey.set(hold.apiKeyId, left);
    else this.#perKey.delete(hold.apiKeyId);
    this.#ended.set(hold.id, hold);
  }

  /** Reserves up to `count` slots, each on the contributor `choose` picks for its job id, until `expiresAt`. */
  reserve(
    count: number,
    of: Pick<Hold, 'apiKeyId' | 'model' | 'kind' | 'expiresAt'>,
    newId: () => string,
    choose: (id: string) => ConnectedContributor | undefined,
    now: number,
  ): Hold[] {
    const holds: Hold[] = [];
    for (let i = 0; i < count; i++) {
      const id = newId();
      const holder = choose(id);
      if (holder === undefined) break;
      holder.openSlots--;
      holder.lastAssignedAt = now;
      const hold: Hold = { id, ...of, holder, state: 'held', endedAt: 0 };
      this.add(hold);
      holds.push(hold);
    }
    return holds;
  }

  /**
   * Takes the key's hold `id` for its job: a live one stops expiring; one that expired or whose
   * contributor left is returned `lapsed`. Refused when the key has no such hold, or it was used.
   */
  claim(id: string, apiKeyId: string): { hold: Hold; lapsed: boolean } | Refusal {
    const hold = this.get(id);
    if (hold?.apiKeyId !== apiKeyId) {
      return refusal(404, 'NOT_FOUND', `No assignment ${id} for this API key: ask for assignments with \`assign\`, or send \`create\`.`);
    }
    if (hold.state === 'claimed' || hold.state === 'used') {
      return refusal(409, 'CONFLICT', `Assignment ${id} was used already; ask for a new one, or send \`create\`.`);
    }
    const lapsed = hold.state !== 'held';
    hold.state = lapsed ? 'used' : 'claimed';
    return { hold, lapsed };
  }

  /** Ends a live hold as `used` and gives its slot back to its contributor; false when it had ended already. */
  giveBack(hold: Hold, now: number): boolean {
    if (hold.state !== 'held' && hold.state !== 'claimed') return false;
    this.end(hold, 'used', now);
    hold.holder.openSlots++;
    return true;
  }

  /** The contributor left: its holds end `lost` (no slot to give back). */
  lose(holder: ConnectedContributor, now: number): void {
    for (const hold of [...this.on(holder)]) this.end(hold, 'lost', now);
  }

  /** Ends the contributor's holds beyond `keep`, the newest unclaimed ones first, as `lost`. */
  lapse(holder: ConnectedContributor, keep: number, now: number): void {
    const live = [...this.on(holder)];
    if (live.length <= keep) return;
    const byState = (state: Hold['state']): Hold[] => live.filter((h) => h.state === state).reverse();
    for (const hold of [...byState('held'), ...byState('claimed')].slice(0, live.length - keep)) this.end(hold, 'lost', now);
  }

  /** Unclaimed holds past their time end `expired`, their slots given back. */
  expireOverdue(now: number): void {
    for (const hold of this.overdue(now)) {
      this.end(hold, 'expired', now);
      hold.holder.openSlots++;
    }
  }

  /** Ends every unclaimed hold (a drain): a job on one then meets the drain's refusal. */
  dropUnclaimed(now: number): void {
    for (const hold of [...this.live()]) if (hold.state === 'held') this.end(hold, 'expired', now);
  }

  /** Drops ended holds that ended before `before`, ms. */
  forget(before: number): void {
    for (const [id, hold] of this.#ended) {
      if (hold.endedAt >= before) break;
      this.#ended.delete(id);
    }
  }

  get liveCount(): number {
    return this.#live.size;
  }
}

const EMPTY: ReadonlySet<Hold> = new Set();
