/**
 * The jobs a contributor runs now: each with its abort controller and a timer that aborts it
 * at its deadline, and the tally of how past jobs ended.
 */
import { AbortedError } from '../../protocol/errors.ts';
import type { Clock } from './connection.ts';
import type { JobOutcome } from './job.ts';

interface Entry {
  jobId: string;
  controller: AbortController;
  ended: Promise<void>;
  /** When it started, local ms since the epoch. */
  startedAt: number;
}

/**
 * The running jobs, by lease: a job cut off by a lost connection may still be winding down
 * when the coordinator hands the same job back under a new lease.
 */
export class RunningJobs {
  readonly #jobs = new Map<string, Entry>();
  readonly #clock: Clock;
  readonly #onEnd: (span: { start: number; end: number }, outcome: JobOutcome) => void;
  /** How the jobs that ended so far ended. */
  readonly counts: Record<JobOutcome, number> = { done: 0, failed: 0, stopped: 0 };
  /** When the last job ended, ms since the epoch. */
  lastEndedAt: number | null = null;

  /** `onEnd` runs after each job ends and is counted, with when it ran (local ms). */
  constructor(clock: Clock, onEnd: (span: { start: number; end: number }, outcome: JobOutcome) => void) {
    this.#clock = clock;
    this.#onEnd = onEnd;
  }

  get size(): number {
    return this.#jobs.size;
  }

  /** When each running job started, local ms since the epoch. */
  startTimes(): number[] {
    return [...this.#jobs.values()].map((job) => job.startedAt);
  }

  has(leaseId: string): boolean {
    return this.#jobs.has(leaseId);
  }

  /** Runs a job; its signal aborts at `deadline` (local ms since the epoch) at the latest. */
  start(jobId: string, leaseId: string, deadline: number, run: (signal: AbortSignal) => Promise<JobOutcome>): void {
    const controller = new AbortController();
    const startedAt = this.#clock.now();
    const timer = this.#clock.setTimeout(
      () => controller.abort(new AbortedError(`Job ${jobId}, at its deadline,`)),
      Math.max(0, deadline - this.#clock.now()),
    );
    const ended = run(controller.signal)
      .catch((): JobOutcome => 'failed')
      .then((outcome) => {
        this.#clock.clearTimeout(timer);
        this.#jobs.delete(leaseId);
        this.counts[outcome]++;
        this.lastEndedAt = this.#clock.now();
        this.#onEnd({ start: startedAt, end: this.lastEndedAt }, outcome);
      });
    this.#jobs.set(leaseId, { jobId, controller, ended, startedAt });
  }

  /** Aborts the job under `leaseId`, or under any lease when `leaseId` is undefined. */
  abort(jobId: string, why: string, leaseId?: string): void {
    for (const [lease, job] of this.#jobs) {
      if (job.jobId === jobId && (leaseId === undefined || lease === leaseId)) job.controller.abort(new AbortedError(`Job ${jobId}${why}`));
    }
  }

  /** Aborts every job not aborted yet, then calls `each` for it. */
  abortAll(why: string, each?: (jobId: string, leaseId: string) => void): void {
    for (const [leaseId, job] of this.#jobs) {
      if (job.controller.signal.aborted) continue;
      job.controller.abort(new AbortedError(`Job ${job.jobId}${why}`));
      each?.(job.jobId, leaseId);
    }
  }

  /** Resolves once every job running now has ended. */
  async settled(): Promise<void> {
    await Promise.all([...this.#jobs.values()].map((job) => job.ended));
  }
}
