/**
 * An in-memory {@link Store}, for tests and for running the coordinator without a
 * database. Same contract as the PGlite/PostgreSQL store, nothing survives a restart.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { newDepositMemo } from './sql-store.ts';
import type { ApiKeyRecord, ContributorRecord, JobRecord, JobState, Store } from './types.ts';

export class MemoryStore implements Store {
  readonly #keys = new Map<string, { record: ApiKeyRecord; hash: string }>();
  readonly #contributors = new Map<string, ContributorRecord>();
  readonly #jobs = new Map<string, JobRecord>();
  /** Every putJob, in order (tests read the state history). */
  readonly jobWrites: JobRecord[] = [];
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  async migrate(): Promise<void> {}

  async createApiKey(input: {
    label: string;
    jobsPerMinute: number;
    maxInFlight: number;
  }): Promise<{ record: ApiKeyRecord; secret: string }> {
    const secret = `spn_${randomBytes(32).toString('base64url')}`;
    const record: ApiKeyRecord = { id: randomUUID(), ...input, depositMemo: newDepositMemo(), createdAt: this.#now(), revokedAt: null };
    this.#keys.set(record.id, { record, hash: createHash('sha256').update(secret).digest('hex') });
    return { record: { ...record }, secret };
  }

  async findApiKey(secretSha256: string): Promise<ApiKeyRecord | null> {
    for (const { record, hash } of this.#keys.values()) {
      if (hash === secretSha256 && record.revokedAt === null) return { ...record };
    }
    return null;
  }

  async findApiKeyByMemo(memo: string): Promise<ApiKeyRecord | null> {
    for (const { record } of this.#keys.values()) if (record.depositMemo === memo) return { ...record };
    return null;
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    return [...this.#keys.values()].map(({ record }) => ({ ...record }));
  }

  async revokeApiKey(id: string): Promise<void> {
    const key = this.#keys.get(id);
    if (key !== undefined) key.record.revokedAt = this.#now();
  }

  async upsertContributor(record: ContributorRecord): Promise<void> {
    this.#contributors.set(record.id, { ...record });
  }

  async getContributor(id: string): Promise<ContributorRecord | null> {
    const record = this.#contributors.get(id);
    return record === undefined ? null : { ...record };
  }

  putJob(record: JobRecord): void {
    this.#jobs.set(record.id, { ...record });
    this.jobWrites.push({ ...record });
  }

  async flush(): Promise<void> {}

  async written(): Promise<void> {}

  async getJob(id: string): Promise<JobRecord | null> {
    const record = this.#jobs.get(id);
    return record === undefined ? null : { ...record };
  }

  async unfinishedJobs(): Promise<JobRecord[]> {
    return [...this.#jobs.values()].filter((job) => !['done', 'failed', 'cancelled'].includes(job.state)).map((job) => ({ ...job }));
  }

  async forgetResults(before: number): Promise<number> {
    let cleared = 0;
    for (const job of this.#jobs.values()) {
      if (job.result === undefined || job.updatedAt >= before) continue;
      delete job.result;
      cleared++;
    }
    return cleared;
  }

  async countJobs(): Promise<Record<JobState, number>> {
    const counts: Record<JobState, number> = { waiting: 0, queued: 0, leased: 0, done: 0, failed: 0, cancelled: 0 };
    for (const job of this.#jobs.values()) counts[job.state]++;
    return counts;
  }

  async close(): Promise<void> {}
}
