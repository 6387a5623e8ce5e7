/**
 * The free-slot index: per model, the contributors that list it and have a free slot, kept in
 * the scheduler's order (fewest jobs in flight, then idle longest, then the one that joined
 * first), so a pick looks at the head of one list instead of scanning every contributor.
 *
 * A contributor is re-indexed lazily: anything that changes its slots, load, last assignment or
 * capabilities marks it with {@link FreeSlotIndex.touch}, and the index re-files the marked ones
 * before the next pick. Consent, earlier attempts and the hooks (demotion, verification's
 * eligibility, a job's placement rules) are checked at pick time on the head of the list, in
 * order, exactly as {@link chooseContributor} ranks them.
 */
import { canRun, chooseContributor, type ContributorView, type JobView, type SchedulerHooks } from './scheduler.ts';

/** Where a contributor is filed: the sort key it had when filed, and the models it is filed under. */
interface Filed {
  inFlight: number;
  lastAssignedAt: number;
  seq: number;
  models: readonly string[];
}

export class FreeSlotIndex<C extends ContributorView> {
  readonly #byModel = new Map<string, C[]>();
  readonly #filed = new Map<C, Filed>();
  readonly #dirty = new Set<C>();
  /** Join order, the last tie-break (the old scan kept the connection map's order). */
  readonly #seq = new WeakMap<C, number>();
  #nextSeq = 0;

  /** The contributor's slots, load, last assignment or capabilities changed (or it joined). */
  touch(contributor: C): void {
    if (!this.#seq.has(contributor)) this.#seq.set(contributor, this.#nextSeq++);
    this.#dirty.add(contributor);
  }

  /** The contributor left: it is never picked again. */
  remove(contributor: C): void {
    this.#dirty.delete(contributor);
    this.#unfile(contributor);
    this.#seq.delete(contributor);
  }

  /** How many contributors have a free slot (for any model). */
  get freeCount(): number {
    this.#refresh();
    return this.#filed.size;
  }

  /** Contributors with a free slot that list `model`, best first (hooks aside). */
  candidates(model: string): readonly C[] {
    this.#refresh();
    return this.#byModel.get(model) ?? [];
  }

  /**
   * The contributor `job` should go to, or undefined: the same choice as
   * {@link chooseContributor} over every connected contributor, without the scan.
   */
  choose(job: JobView, hooks: SchedulerHooks = {}): C | undefined {
    const list = this.candidates(job.model);
    // A `pick` hook sees every candidate in order: hand it the list the old way.
    if (hooks.pick !== undefined) return chooseContributor(list, job, hooks);
    let demoted: C | undefined;
    for (const contributor of list) {
      if (!canRun(contributor, job)) continue;
      if (hooks.eligible !== undefined && !hooks.eligible(contributor, job)) continue;
      if (hooks.demote?.(contributor) !== true) return contributor;
      demoted ??= contributor;
    }
    return demoted;
  }

  #refresh(): void {
    if (this.#dirty.size === 0) return;
    for (const contributor of this.#dirty) {
      this.#unfile(contributor);
      this.#file(contributor);
    }
    this.#dirty.clear();
  }

  #file(c: C): void {
    const caps = c.capabilities;
    if (caps === null || c.openSlots <= 0) return;
    const seq = this.#seq.get(c);
    if (seq === undefined) return; // removed
    const models = [...new Set(caps.models.map((m) => m.id))];
    const filed: Filed = { inFlight: c.inFlight, lastAssignedAt: c.lastAssignedAt, seq, models };
    this.#filed.set(c, filed);
    for (const model of models) {
      let list = this.#byModel.get(model);
      if (list === undefined) this.#byModel.set(model, (list = []));
      list.splice(this.#position(list, filed), 0, c);
    }
  }

  #unfile(c: C): void {
    const filed = this.#filed.get(c);
    if (filed === undefined) return;
    for (const model of filed.models) {
      const list = this.#byModel.get(model);
      if (list === undefined) continue;
      const found = this.#position(list, filed);
      // Keys are unique, so the search lands on it; the linear look-up only guards the invariant.
      const at = list[found] === c ? found : list.indexOf(c);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0) this.#byModel.delete(model);
    }
    this.#filed.delete(c);
  }

  /** The first position in `list` whose filed key is not below `key` (binary search). */
  #position(list: readonly C[], key: Filed): number {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const other = this.#filed.get(list[mid] as C);
      if (other !== undefined && compare(other, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function compare(a: Filed, b: Filed): number {
  return a.inFlight - b.inFlight || a.lastAssignedAt - b.lastAssignedAt || a.seq - b.seq;
}
