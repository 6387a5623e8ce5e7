/**
 * What the relay checks before it takes a contributor's result: the per-lease chunk and
 * size limits, and results for jobs a previous run ended with `RESTARTED`.
 */
import type { CoordinatorMessage, Sealed, WireError } from '../../protocol/wire.ts';
import { base64urlBytes } from '../../protocol/envelope.ts';
import type { Job } from '../jobs/job.ts';
import type { Lease } from './lease-book.ts';

/** A result over a limit: the lease's end reason, the job's error and the answer to the contributor. */
export interface Overflow {
  release: string;
  finish: WireError;
  refuse: WireError;
}

export class ChunkLimits {
  /** Empty chunks each lease sent so far. */
  readonly #emptyChunks = new WeakMap<Lease, number>();
  readonly #o: { chunksPerLease?: number; emptyChunksPerLease?: number; maxResultBytes: number };

  constructor(options: { chunksPerLease?: number; emptyChunksPerLease?: number; maxResultBytes: number }) {
    this.#o = options;
  }

  /** Counts a chunk against its lease and job (advancing the lease's seq); the overflow, if it breaks a limit. */
  admit(lease: Lease, job: Job, sealed: Sealed, final: boolean): Overflow | null {
    const empty = sealed.ct === '' && !final;
    const emptySoFar = (this.#emptyChunks.get(lease) ?? 0) + (empty ? 1 : 0);
    if (lease.nextSeq >= (this.#o.chunksPerLease ?? 100_000) || emptySoFar > (this.#o.emptyChunksPerLease ?? 256)) {
      const what = empty ? 'empty result chunks' : 'result chunks';
      return {
        release: `too many ${what}`,
        finish: { code: 'QUOTA', message: `The contributor sent too many ${what} for one job; the job was stopped.` },
        refuse: { code: 'QUOTA', message: `Too many ${what} for one lease; the job was stopped.` },
      };
    }
    if (empty) this.#emptyChunks.set(lease, emptySoFar);
    lease.nextSeq++;
    job.resultBytes += base64urlBytes(sealed.ct) + base64urlBytes(sealed.enc ?? '');
    if (job.resultBytes > this.#o.maxResultBytes) {
      return {
        release: 'result too large',
        finish: { code: 'BAD_MESSAGE', message: `The result exceeds ${this.#o.maxResultBytes} bytes, the limit.` },
        refuse: { code: 'BAD_MESSAGE', message: 'The result exceeds the size limit; the job was stopped.' },
      };
    }
    return null;
  }
}

/** Jobs a previous run left unfinished (ended `RESTARTED` at start): their holder's late result is refused by name. */
export class RestartedJobs {
  readonly #jobs = new Map<string, { contributorId: string | null; at: number }>();

  mark(jobs: ReadonlyArray<{ id: string; contributorId: string | null }>, at: number): void {
    for (const job of jobs) this.#jobs.set(job.id, { contributorId: job.contributorId, at });
  }

  /** The answer to a result `contributorId` sends for a job the restart ended, if it is one. */
  refusalFor(jobId: string, contributorId: string): CoordinatorMessage | undefined {
    const restarted = this.#jobs.get(jobId);
    if (restarted === undefined || restarted.contributorId !== contributorId) return undefined;
    // Its payload, its requester's stream and its reservation did not survive the restart: nothing can take the result.
    const error: WireError = {
      code: 'RESTARTED',
      message: `Job ${jobId} ended when the coordinator restarted (its requester runs it again); this result is refused and earns nothing. Drop the job.`,
    };
    return { v: 1, type: 'error', error, fatal: false, jobId };
  }

  /** Forgets jobs marked more than `keepMs` before `now`. */
  forget(now: number, keepMs: number): void {
    for (const [id, { at }] of this.#jobs) if (now - at > keepMs) this.#jobs.delete(id);
  }
}
