/**
 * The coordinator's metrics in the Prometheus text exposition format (version 0.0.4).
 * Counters and the histogram live here; gauges are read from the live state when scraped.
 */

/** Upper bounds of the dispatch-latency buckets, seconds. */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30];

/** Live values read at scrape time. */
export interface Gauges {
  contributorsConnected(): number;
  /** Jobs waiting for a contributor or for their payload. */
  jobsQueued(): number;
  /** Jobs whose payload went to a contributor and whose lease runs. */
  jobsRunning(): number;
}

export type FinalState = 'done' | 'failed' | 'cancelled';

export class Metrics {
  readonly #jobs: Record<FinalState, number> = { done: 0, failed: 0, cancelled: 0 };
  readonly #protocolErrors = new Map<string, number>();
  readonly #buckets = LATENCY_BUCKETS.map(() => 0);
  #leaseExpiries = 0;
  #duplicates = 0;
  #latencyCount = 0;
  #latencySum = 0;

  constructor(private readonly gauges: Gauges) {}

  jobFinished(state: FinalState): void {
    this.#jobs[state]++;
  }

  leaseExpired(): void {
    this.#leaseExpiries++;
  }

  /** A refused message, by its error code (sent to a contributor). */
  protocolError(code: string): void {
    this.#protocolErrors.set(code, (this.#protocolErrors.get(code) ?? 0) + 1);
  }

  duplicateResult(): void {
    this.#duplicates++;
  }

  /** Time from a payload's arrival to its job frame going out, seconds. */
  dispatchLatency(seconds: number): void {
    this.#latencyCount++;
    this.#latencySum += seconds;
    LATENCY_BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) this.#buckets[i] = (this.#buckets[i] ?? 0) + 1;
    });
  }

  /** Counter values, for tests. */
  snapshot(): { jobs: Record<FinalState, number>; leaseExpiries: number; duplicates: number; protocolErrors: Record<string, number> } {
    return {
      jobs: { ...this.#jobs },
      leaseExpiries: this.#leaseExpiries,
      duplicates: this.#duplicates,
      protocolErrors: Object.fromEntries(this.#protocolErrors),
    };
  }

  /** The text a Prometheus scrape of `/metrics` gets. */
  render(): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    };
    metric('spinneret_contributors_connected', 'gauge', 'Contributor workers connected and welcomed.', [
      ['', this.gauges.contributorsConnected()],
    ]);
    metric('spinneret_jobs_queued', 'gauge', 'Jobs waiting for a contributor or for their sealed payload.', [
      ['', this.gauges.jobsQueued()],
    ]);
    metric('spinneret_jobs_running', 'gauge', 'Jobs leased to a contributor and running.', [['', this.gauges.jobsRunning()]]);
    metric(
      'spinneret_jobs_total',
      'counter',
      'Jobs finished, by final state.',
      (Object.keys(this.#jobs) as FinalState[]).map((state) => [`{state="${state}"}`, this.#jobs[state]]),
    );
    metric('spinneret_lease_expiries_total', 'counter', 'Leases that ran past their deadline.', [['', this.#leaseExpiries]]);
    metric(
      'spinneret_protocol_errors_total',
      'counter',
      'Contributor messages refused, by error code.',
      [...this.#protocolErrors].map(([code, n]) => [`{code="${code}"}`, n]),
    );
    metric('spinneret_duplicate_results_total', 'counter', 'Result chunks or fails received again and acknowledged as duplicate.', [
      ['', this.#duplicates],
    ]);
    lines.push(
      '# HELP spinneret_dispatch_latency_seconds Time from a sealed payload arriving to its job frame being sent.',
      '# TYPE spinneret_dispatch_latency_seconds histogram',
    );
    LATENCY_BUCKETS.forEach((bound, i) => lines.push(`spinneret_dispatch_latency_seconds_bucket{le="${bound}"} ${this.#buckets[i] ?? 0}`));
    lines.push(
      `spinneret_dispatch_latency_seconds_bucket{le="+Inf"} ${this.#latencyCount}`,
      `spinneret_dispatch_latency_seconds_sum ${this.#latencySum}`,
      `spinneret_dispatch_latency_seconds_count ${this.#latencyCount}`,
    );
    return lines.join('\n') + '\n';
  }
}
