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
