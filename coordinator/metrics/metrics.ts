/**
 * The coordinator's metrics, on a prom-client registry (Prometheus text format 0.0.4): jobs by
 * final state, dispatch and end-to-end latency, HTTP requests by route and status, lease
 * expiries, protocol errors; gauges are read from the live state when scraped. The operator's
 * wiring adds the process metrics, money and verification on the same registry.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Upper bounds of the dispatch-latency buckets, seconds. */
const DISPATCH_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5];
/** Upper bounds of the end-to-end buckets, seconds. */
const JOB_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];

/** Live values read at scrape time. */
export interface Gauges {
  contributorsConnected(): number;
  /** Jobs waiting for a contributor or for their payload. */
  jobsQueued(): number;
  /** Jobs whose payload went to a contributor and whose lease runs. */
  jobsRunning(): number;
  /** Contributor slots held for requester channels' assignments not used yet (sealed ahead of need); default 0. */
  assignmentsHeld?(): number;
}

export type FinalState = 'done' | 'failed' | 'cancelled';

export class Metrics {
  readonly registry: Registry;
  readonly #jobs: Counter<'state'>;
  readonly #jobSeconds: Histogram<'state'>;
  readonly #leaseExpiries: Counter;
  readonly #protocolErrors: Counter<'code'>;
  readonly #duplicates: Counter;
  readonly #unrecorded: Counter<'reason'>;
  readonly #dispatch: Histogram;
  readonly #http: Histogram<'method' | 'route' | 'status'>;
  readonly #httpTotal: Counter<'method' | 'route' | 'status'>;
  readonly #counts = {
    jobs: { done: 0, failed: 0, cancelled: 0 } as Record<FinalState, number>,
    leaseExpiries: 0,
    duplicates: 0,
    deliveredUnrecorded: 0,
    protocolErrors: new Map<string, number>(),
  };

  constructor(gauges: Gauges, registry: Registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    new Gauge({
      name: 'spinneret_contributors_connected',
      help: 'Contributor workers connected and welcomed.',
      registers,
      collect() {
        this.set(gauges.contributorsConnected());
      },
    });
    new Gauge({
      name: 'spinneret_jobs_queued',
      help: 'Jobs waiting for a contributor or for their sealed payload.',
      registers,
      collect() {
        this.set(gauges.jobsQueued());
      },
    });
    new Gauge({
      name: 'spinneret_jobs_running',
      help: 'Jobs leased to a contributor and running.',
      registers,
      collect() {
        this.set(gauges.jobsRunning());
      },
    });
    new Gauge({
      name: 'spinneret_assignments_held',
      help: 'Contributor slots held for assignments handed out on requester channels and not used yet (sealed ahead of need).',
      registers,
      collect() {
        this.set(gauges.assignmentsHeld?.() ?? 0);
      },
    });
    this.#jobs = new Counter({ name: 'spinneret_jobs_total', help: 'Jobs finished, by final state.', labelNames: ['state'], registers });
    for (const state of ['done', 'failed', 'cancelled']) this.#jobs.inc({ state }, 0);
    this.#jobSeconds = new Histogram({
      name: 'spinneret_job_duration_seconds',
      help: 'End to end: from a job being created to its final state, by that state.',
      labelNames: ['state'],
      buckets: JOB_BUCKETS,
      registers,
    });
    this.#leaseExpiries = new Counter({ name: 'spinneret_lease_expiries_total', help: 'Leases that ran past their deadline.', registers });
    this.#protocolErrors = new Counter({
      name: 'spinneret_protocol_errors_total',
      help: 'Contributor messages refused, by error code.',
      labelNames: ['code'],
      registers,
    });
    this.#duplicates = new Counter({
      name: 'spinneret_duplicate_results_total',
      help: 'Result chunks or fails received again and acknowledged as duplicate.',
      registers,
    });
    this.#unrecorded = new Counter({
      name: 'spinneret_results_delivered_unrecorded_total',
      help: 'Final results sent before their job was written as done (the database was down, or slower than the wait), by reason.',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of ['database', 'timeout']) this.#unrecorded.inc({ reason }, 0);
    this.#dispatch = new Histogram({
      name: 'spinneret_dispatch_latency_seconds',
      help: 'Time from a sealed payload arriving to its job frame being sent.',
      buckets: DISPATCH_BUCKETS,
      registers,
    });
    this.#http = new Histogram({
      name: 'spinneret_http_request_duration_seconds',
      help: 'HTTP requests by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.#httpTotal = new Counter({
      name: 'spinneret_http_requests_total',
      help: 'HTTP requests by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
  }

  /** A job reached its final state `seconds` after it was created. */
  jobFinished(state: FinalState, seconds?: number): void {
    this.#counts.jobs[state]++;
    this.#jobs.inc({ state });
    if (seconds !== undefined) this.#jobSeconds.observe({ state }, seconds);
  }

  leaseExpired(): void {
    this.#counts.leaseExpiries++;
    this.#leaseExpiries.inc();
  }

  /** A refused message, by its error code (sent to a contributor). */
  protocolError(code: string): void {
    this.#counts.protocolErrors.set(code, (this.#counts.protocolErrors.get(code) ?? 0) + 1);
    this.#protocolErrors.inc({ code });
  }

  duplicateResult(): void {
    this.#counts.duplicates++;
    this.#duplicates.inc();
  }

  /** A final result went out before its job's done record was written. */
  deliveredUnrecorded(reason: 'database' | 'timeout'): void {
    this.#counts.deliveredUnrecorded++;
    this.#unrecorded.inc({ reason });
  }

  /** Time from a payload's arrival to its job frame going out, seconds. */
  dispatchLatency(seconds: number): void {
    this.#dispatch.observe(seconds);
  }

  /** One HTTP request answered; `route` is the matched pattern (`/v1/jobs/:id`), never the raw path. */
  httpRequest(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status: String(status) };
    this.#http.observe(labels, seconds);
    this.#httpTotal.inc(labels);
  }

  /** Counter values, for tests. */
  snapshot(): {
    jobs: Record<FinalState, number>;
    leaseExpiries: number;
    duplicates: number;
    deliveredUnrecorded: number;
    protocolErrors: Record<string, number>;
  } {
    return {
      jobs: { ...this.#counts.jobs },
      leaseExpiries: this.#counts.leaseExpiries,
      duplicates: this.#counts.duplicates,
      deliveredUnrecorded: this.#counts.deliveredUnrecorded,
      protocolErrors: Object.fromEntries(this.#counts.protocolErrors),
    };
  }

  /** The text a Prometheus scrape of `/metrics` gets. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
