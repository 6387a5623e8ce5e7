/**
 * Group commit for job records: puts collect in memory (last write per id wins) and go to
 * the database in batches, so thousands of jobs per second cost tens of statements, not
 * thousands. A batch that fails because the database is unreachable is kept and retried. One
 * the database refuses for its data (PostgreSQL error classes 22 and 23: a NUL byte, a value out
 * of range, a broken constraint) is written again one record at a time, and a record refused
 * alone is set aside with its error (logged, counted in {@link JobWriteBuffer.setAside}), so one
 * bad record never stops the others, nor `flush()` and a shutdown.
 */
import type { JobRecord } from './types.ts';

/** How {@link JobWriteBuffer} writes and when. */
export interface JobWriteBufferOptions {
  /** Writes one batch (ids are unique within it), all or nothing. */
  readonly write: (records: JobRecord[]) => Promise<void>;
  /** Records per batch; a buffer this full is written at once. Default 500. */
  batchSize?: number;
  /** How long a put waits for others to join its batch, ms. Default 5. */
  delayMs?: number;
  /** First retry delay after a failed batch, ms, doubling up to {@link maxRetryMs}. Default 50. */
  minRetryMs?: number;
  /** Default 5,000. */
  maxRetryMs?: number;
  /** Called once when writes start failing and once when they recover. Default console.error. */
  log?: (message: string, err?: unknown) => void;
  /** Whether an error means the data is refused (retrying cannot help). Default: SQLSTATE class 22 or 23. */
  isRefusal?: (err: unknown) => boolean;
}

/** Records the database refused, set aside: how many in all and the latest few. */
export interface SetAside {
  count: number;
  last: Array<{ id: string; error: string }>;
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation). */
export function isDataRefusal(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code);
}

const SET_ASIDE_KEPT = 20;

interface Entry {
  record: JobRecord;
  /** Order of the put, for {@link JobWriteBuffer.flush}'s "everything before me". */
  seq: number;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Buffers job records and writes them in batches; see the module comment. */
export class JobWriteBuffer {
  private readonly write: (records: JobRecord[]) => Promise<void>;
  private readonly batchSize: number;
  private readonly delayMs: number;
  private readonly minRetryMs: number;
  private readonly maxRetryMs: number;
  private readonly log: (message: string, err?: unknown) => void;

  /** Kept in put order: a re-put id is deleted and re-inserted, so a prefix holds the oldest puts. */
  private pending = new Map<string, Entry>();
  private inFlight: ReadonlyMap<string, JobRecord> | null = null;
  private lastSeq = 0;
  /** Every put with seq ≤ this is written, or superseded by a later put of the same id. */
  private writtenSeq = 0;
  private waiters: Waiter[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private writing = false;
  /** Consecutive failed batches; while > 0 only the retry timer or flush() starts a write. */
  private failures = 0;
  private closed = false;
  /** After a refused batch: write one record per batch until this many are through. */
  private singly = 0;
  private readonly isRefusal: (err: unknown) => boolean;
  readonly setAside: SetAside = { count: 0, last: [] };

  constructor(options: JobWriteBufferOptions) {
    this.write = options.write;
    this.batchSize = options.batchSize ?? 500;
    this.delayMs = options.delayMs ?? 5;
    this.minRetryMs = options.minRetryMs ?? 50;
    this.maxRetryMs = options.maxRetryMs ?? 5_000;
    this.log = options.log ?? ((message, err) => console.error(message, err));
    this.isRefusal = options.isRefusal ?? isDataRefusal;
  }

  /** Records not yet written (including a batch being written). */
  get size(): number {
    return this.pending.size + (this.inFlight?.size ?? 0);
  }

  /** Buffers a copy of `record`. After {@link close} the record is logged and dropped. */
  put(record: JobRecord): void {
    if (this.closed) {
      this.log(`store: putJob(${record.id}) after close; not written`);
      return;
    }
    this.pending.delete(record.id);
    this.pending.set(record.id, { record: { ...record }, seq: ++this.lastSeq });
    if (this.writing || this.failures > 0) return;
    if (this.pending.size >= this.batchSize) {
      void this.drain();
    } else {
      this.timer ??= setTimeout(() => void this.drain(), this.delayMs);
    }
  }

  /** The newest unwritten version of job `id`, if any (a copy). */
  get(id: string): JobRecord | undefined {
    const record = this.pending.get(id)?.record ?? this.inFlight?.get(id);
    return record && { ...record };
  }

  /**
   * Resolves when every earlier put is written. Rejects with the database error when a batch
   * fails first; the records stay buffered and a later flush (or the retry timer) writes them.
   */
  flush(): Promise<void> {
    if (this.writtenSeq >= this.lastSeq) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => {
      this.waiters.push({ seq: this.lastSeq, resolve, reject });
    });
    void this.drain();
    return done;
  }

  /**
   * Resolves when every earlier put is written, in the batch it goes in anyway (no write is
   * hurried for it). Rejects at once while writes are failing, and when that batch fails.
   */
  written(): Promise<void> {
    if (this.writtenSeq >= this.lastSeq) return Promise.resolve();
    if (this.failures > 0) return Promise.reject(new Error('job records are not being written: the database is unreachable'));
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ seq: this.lastSeq, resolve, reject });
    });
  }

  /** Flushes, then refuses further puts and stops retrying (even when the flush rejects). */
  async close(): Promise<void> {
    this.closed = true;
    try {
      await this.flush();
    } finally {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private async drain(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.pending.size > 0) {
        const batch = this.take();
        this.inFlight = new Map(batch.map((e) => [e.record.id, e.record]));
        try {
          await this.write(batch.map((e) => e.record));
        } catch (err) {
          this.inFlight = null;
          if (this.isRefusal(err)) {
            if (batch.length === 1 && batch[0] !== undefined) {
              this.refused(batch[0], err);
              continue;
            }
            // Find the refused record(s): the same records again, one per write.
            this.requeue(batch);
            this.singly = batch.length;
            continue;
          }
          this.requeue(batch);
          this.failed(err);
          return;
        } finally {
          this.inFlight = null;
        }
        if (this.singly > 0) this.singly -= batch.length;
        this.wrote(batch[batch.length - 1]?.seq ?? 0);
      }
    } finally {
      this.writing = false;
    }
  }

  private take(): Entry[] {
    const batch: Entry[] = [];
    const size = this.singly > 0 ? 1 : this.batchSize;
    for (const [id, entry] of this.pending) {
      if (batch.length >= size) break;
      batch.push(entry);
      this.pending.delete(id);
    }
    return batch;
  }

  /** Puts a failed batch back in front, unless a newer put of the same id arrived meanwhile. */
  private requeue(batch: Entry[]): void {
    const merged = new Map<string, Entry>();
    for (const entry of batch) if (!this.pending.has(entry.record.id)) merged.set(entry.record.id, entry);
    for (const [id, entry] of this.pending) merged.set(id, entry);
    this.pending = merged;
  }

  /** A record the database refuses alone: set aside, never retried; later puts of its id are tried anew. */
  private refused(entry: Entry, err: unknown): void {
    if (this.singly > 0) this.singly -= 1;
    const error = err instanceof Error ? err.message : String(err);
    this.setAside.count++;
    this.setAside.last.push({ id: entry.record.id, error: error.slice(0, 500) });
    if (this.setAside.last.length > SET_ASIDE_KEPT) this.setAside.last.shift();
    this.log(`store: job record ${entry.record.id} set aside, the database refuses it: ${error.slice(0, 500)}`);
    this.wrote(entry.seq);
  }

  private wrote(seq: number): void {
    this.writtenSeq = Math.max(this.writtenSeq, seq);
    if (this.failures > 0) {
      this.log(`store: job writes recovered after ${this.failures} failed batch(es)`);
      this.failures = 0;
    }
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (w.seq <= this.writtenSeq) w.resolve();
      else this.waiters.push(w);
    }
  }

  private failed(err: unknown): void {
    this.failures++;
    if (this.failures === 1) {
      this.log(`store: writing job records failed; ${this.pending.size} kept in memory, retrying`, err);
    }
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w.reject(err);
    if (this.closed) return;
    const delay = Math.min(this.maxRetryMs, this.minRetryMs * 2 ** Math.min(this.failures - 1, 20));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.drain(), delay);
  }
}
