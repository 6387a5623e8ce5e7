/**
 * The jobs a coordinator holds: unfinished ones, and finished ones for a while (so a late
 * subscriber still gets the result), with a count of unfinished jobs per API key.
 */
import type { Job } from './job.ts';

export class JobTable {
  readonly #jobs = new Map<string, Job>();
  /** Finished jobs by finish time (ms), oldest first. */
  readonly #finished = new Map<string, number>();
  readonly #unfinishedByKey = new Map<string, number>();

  add(job: Job): void {
    this.#jobs.set(job.id, job);
    this.#unfinishedByKey.set(job.apiKeyId, this.unfinishedFor(job.apiKeyId) + 1);
  }

  get(id: string): Job | undefined {
    return this.#jobs.get(id);
  }

  /** Records that the job reached a final state at `now`, ms. */
  finished(job: Job, now: number): void {
    this.#unfinishedByKey.set(job.apiKeyId, this.unfinishedFor(job.apiKeyId) - 1);
    this.#finished.set(job.id, now);
  }

  /** Forgets jobs that finished before `before`, ms. */
  forget(before: number): void {
    for (const [id, finishedAt] of this.#finished) {
      if (finishedAt >= before) break;
      this.#finished.delete(id);
      this.#jobs.delete(id);
    }
  }

  unfinishedFor(apiKeyId: string): number {
    return this.#unfinishedByKey.get(apiKeyId) ?? 0;
  }

  /** Unfinished jobs, as a snapshot. */
  unfinished(): Job[] {
    return [...this.#jobs.values()].filter((job) => !job.finished);
  }
}
