/**
 * What requesters say, weighed. A requester's reports (a replica verdict, whether a result
 * opened, the usage it received) can void a contributor's credit, count toward its quarantine
 * and earn a free re-run, so a requester that lies must stop mattering: one whose share of
 * negative reports in the window is far above the network's median is flagged, and its
 * reports then change nothing. Usage disputes are kept against both parties: a contributor
 * disputed by many distinct requesters is checked more often.
 */
import type { Clock } from '../clock.ts';

/** Tuning of {@link RequesterStanding}. */
export interface StandingConfig {
  /** The window reports are counted in, ms. */
  readonly windowMs: number;
  /** Reports a requester needs in the window before it can be flagged (or counts toward the median). Default 20. */
  readonly minReports?: number;
  /** Flagged above `factor` × the median negative share… Default 3. */
  readonly factor?: number;
  /** …and above the median plus `margin` (so a near-zero median does not flag honest bad luck). Default 0.2. */
  readonly margin?: number;
  /** Distinct requesters disputing a contributor's usage in the window that make it a suspect. Default 3. */
  readonly suspectAfter?: number;
  readonly clock: Clock;
}

interface Tally {
  /** Times of reports, and of the negative ones, in the window. */
  all: number[];
  negative: number[];
}

export class RequesterStanding {
  readonly #config: StandingConfig;
  readonly #tallies = new Map<string, Tally>();
  /** Contributor → requester key → time of its latest usage dispute. */
  readonly #disputes = new Map<string, Map<string, number>>();

  constructor(config: StandingConfig) {
    this.#config = config;
  }

  /** The window reports are counted in, ms. */
  get windowMs(): number {
    return this.#config.windowMs;
  }

  /** Records one report of `apiKeyId`; `negative`: it blamed the contributor (disagree, unopenable, disputed usage). */
  note(apiKeyId: string, negative: boolean, at = this.#config.clock.now()): void {
    let tally = this.#tallies.get(apiKeyId);
    if (tally === undefined) {
      tally = { all: [], negative: [] };
      this.#tallies.set(apiKeyId, tally);
    }
    tally.all.push(at);
    if (negative) tally.negative.push(at);
    this.#prune(tally);
  }

  /** Records a usage dispute: `apiKeyId` received less than `contributorId` claimed. */
  dispute(contributorId: string, apiKeyId: string, at = this.#config.clock.now()): void {
    let by = this.#disputes.get(contributorId);
    if (by === undefined) {
      by = new Map();
      this.#disputes.set(contributorId, by);
    }
    by.set(apiKeyId, at);
  }

  /** Whether distinct requesters dispute the contributor's usage often enough to check it more. */
  isSuspect(contributorId: string): boolean {
    const by = this.#disputes.get(contributorId);
    if (by === undefined) return false;
    const since = this.#config.clock.now() - this.#config.windowMs;
    let distinct = 0;
    for (const [key, at] of by) {
      if (at <= since) by.delete(key);
      // A flagged requester's disputes do not count against anyone.
      else if (!this.isFlagged(key)) distinct++;
    }
    return distinct >= (this.#config.suspectAfter ?? 3);
  }

  /** The requester's share of negative reports in the window, or null with too few reports. */
  negativeShare(apiKeyId: string): number | null {
    const tally = this.#tallies.get(apiKeyId);
    if (tally === undefined) return null;
    this.#prune(tally);
    if (tally.all.length < (this.#config.minReports ?? 20)) return null;
    return tally.negative.length / tally.all.length;
  }

  /** The median negative share over requesters with enough reports; null when none has. */
  median(): number | null {
    const shares = [...this.#tallies.keys()].flatMap((key) => {
      const share = this.negativeShare(key);
      return share === null ? [] : [share];
    });
    if (shares.length === 0) return null;
    shares.sort((a, b) => a - b);
    const mid = Math.floor(shares.length / 2);
    return shares.length % 2 === 1 ? (shares[mid] ?? 0) : ((shares[mid - 1] ?? 0) + (shares[mid] ?? 0)) / 2;
  }

  /** Whether the requester's reports are far more negative than the network's: then they change nothing. */
  isFlagged(apiKeyId: string): boolean {
    const share = this.negativeShare(apiKeyId);
    const median = this.median();
    if (share === null || median === null) return false;
    return share > median * (this.#config.factor ?? 3) && share > median + (this.#config.margin ?? 0.2);
  }

  #prune(tally: Tally): void {
    const since = this.#config.clock.now() - this.#config.windowMs;
    while ((tally.all[0] ?? Number.POSITIVE_INFINITY) <= since) tally.all.shift();
    while ((tally.negative[0] ?? Number.POSITIVE_INFINITY) <= since) tally.negative.shift();
  }
}
