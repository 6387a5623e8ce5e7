/** {@link Store} over SQL, shared by the PGlite and PostgreSQL backends. */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { JobWriteBuffer, type JobWriteBufferOptions, type SetAside } from './job-buffer.ts';
import { MIGRATIONS_DIR, migrate, readMigrations } from './migrate.ts';
import { toInt, toIntOrNull, type SqlDb } from './sql.ts';
import type { ApiKeyRecord, ContributorRecord, JobRecord, JobState, Store, StoredResult } from './types.ts';

/** Tuning and test seams for {@link SqlStore}. */
export interface SqlStoreOptions extends Partial<Omit<JobWriteBufferOptions, 'write'>> {
  /** Clock for created/revoked times, ms since epoch. Default Date.now. */
  now?: () => number;
  /** Folder of `NNN_name.sql` migrations. Default this module's `migrations/`. */
  migrationsDir?: string;
}

/** Prefix of every API key secret, so a leaked one is recognisable (and greppable). */
export const API_KEY_PREFIX = 'spn_';

/** A fresh deposit memo: `spn-` and 20 base32 letters (100 random bits). */
export function newDepositMemo(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  return 'spn-' + [...randomBytes(20)].map((b) => alphabet[b & 31]).join('');
}

/** The stored form of an API key secret: SHA-256 of the whole string, lowercase hex. */
export function hashApiKeySecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

const UNFINISHED: readonly JobState[] = ['waiting', 'queued', 'leased'];
const ALL_STATES: readonly JobState[] = ['waiting', 'queued', 'leased', 'done', 'failed', 'cancelled'];
const INT32_MAX = 2_147_483_647;

/** Column, its array type for `unnest`, and how to read it from a record. */
const JOB_COLUMNS: readonly { column: string; type: string; get: (r: JobRecord) => unknown }[] = [
  { column: 'id', type: 'text', get: (r) => r.id },
  { column: 'api_key_id', type: 'text', get: (r) => r.apiKeyId },
  { column: 'model', type: 'text', get: (r) => r.model },
  { column: 'kind', type: 'text', get: (r) => r.kind },
  { column: 'state', type: 'text', get: (r) => r.state },
  { column: 'attempt', type: 'integer', get: (r) => r.attempt },
  { column: 'contributor_id', type: 'text', get: (r) => r.contributorId },
  { column: 'created_at', type: 'bigint', get: (r) => r.createdAt },
  { column: 'updated_at', type: 'bigint', get: (r) => r.updatedAt },
  { column: 'payload_bytes', type: 'bigint', get: (r) => r.payloadBytes },
  { column: 'result_bytes', type: 'bigint', get: (r) => r.resultBytes },
  { column: 'prompt_tokens', type: 'bigint', get: (r) => r.promptTokens },
  { column: 'completion_tokens', type: 'bigint', get: (r) => r.completionTokens },
  { column: 'error', type: 'text', get: (r) => r.error },
  { column: 'result', type: 'jsonb', get: (r) => (r.result === undefined ? null : JSON.stringify(r.result)) },
];

/** One statement for a whole batch: a row per array index, upserted by id. */
const UPSERT_JOBS = `INSERT INTO jobs (${JOB_COLUMNS.map((c) => c.column).join(', ')})
SELECT * FROM unnest(${JOB_COLUMNS.map((c, i) => `$${i + 1}::${c.type}[]`).join(', ')})
ON CONFLICT (id) DO UPDATE SET ${JOB_COLUMNS.slice(1)
  // A later write without the result (none is made after done) never clears it; forgetResults does.
  .map((c) => (c.column === 'result' ? 'result = coalesce(EXCLUDED.result, jobs.result)' : `${c.column} = EXCLUDED.${c.column}`))
  .join(', ')}`;

interface JobRow {
  id: string;
  api_key_id: string;
  model: string;
  kind: JobRecord['kind'];
  state: JobState;
  attempt: unknown;
  contributor_id: string | null;
  created_at: unknown;
  updated_at: unknown;
  payload_bytes: unknown;
  result_bytes: unknown;
  prompt_tokens: unknown;
  completion_tokens: unknown;
  error: string | null;
  result?: unknown;
}

function jobFromRow(row: JobRow): JobRecord {
  const result = row.result === null || row.result === undefined ? undefined : storedResult(row.result);
  return {
    ...(result !== undefined && { result }),
    id: row.id,
    apiKeyId: row.api_key_id,
    model: row.model,
    kind: row.kind,
    state: row.state,
    attempt: toInt(row.attempt),
    contributorId: row.contributor_id,
    createdAt: toInt(row.created_at),
    updatedAt: toInt(row.updated_at),
    payloadBytes: toInt(row.payload_bytes),
    resultBytes: toInt(row.result_bytes),
    promptTokens: toInt(row.prompt_tokens),
    completionTokens: toInt(row.completion_tokens),
    error: row.error,
  };
}

/** A stored result read back from its JSONB column (the drivers parse it; a text form is parsed here). */
export function storedResult(value: unknown): StoredResult {
  return (typeof value === 'string' ? JSON.parse(value) : value) as StoredResult;
}

/** Why the database would reject `record` (and so block every batch after it), or null. */
function invalidJob(record: JobRecord): string | null {
  if (typeof record.id !== 'string' || record.id === '') return 'id is empty';
  const ints: [string, number][] = [
    ['attempt', record.attempt],
    ['createdAt', record.createdAt],
    ['updatedAt', record.updatedAt],
    ['payloadBytes', record.payloadBytes],
    ['resultBytes', record.resultBytes],
    ['promptTokens', record.promptTokens],
    ['completionTokens', record.completionTokens],
  ];
  for (const [name, value] of ints) {
    if (!Number.isSafeInteger(value) || value < 0) return `${name} is ${value}, not a non-negative integer`;
  }
  return record.attempt > INT32_MAX ? `attempt ${record.attempt} is too large` : null;
}

interface ApiKeyRow {
  id: string;
  label: string;
  jobs_per_minute: unknown;
  max_in_flight: unknown;
  deposit_memo: string;
  created_at: unknown;
  revoked_at: unknown;
}

function apiKeyFromRow(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    label: row.label,
    jobsPerMinute: toInt(row.jobs_per_minute),
    maxInFlight: toInt(row.max_in_flight),
    depositMemo: row.deposit_memo,
    createdAt: toInt(row.created_at),
    revokedAt: toIntOrNull(row.revoked_at),
  };
}

interface ContributorRow {
  id: string;
  identity_key: string;
  hpke_key: string;
  wallet: string | null;
  first_seen: unknown;
  last_seen: unknown;
}

/**
 * The store on any {@link SqlDb}. Owns the database: {@link close} flushes and closes it.
 * Job reads first look in the write buffer, so a getJob right after putJob sees the put.
 */
export class SqlStore implements Store {
  private readonly now: () => number;
  private readonly migrationsDir: string;
  private readonly jobs: JobWriteBuffer;
  private readonly log: (message: string, err?: unknown) => void;

  constructor(
    /** The underlying database, for modules that keep their own tables in it (the ledger). */
    readonly db: SqlDb,
    options: SqlStoreOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.migrationsDir = options.migrationsDir ?? MIGRATIONS_DIR;
    this.log = options.log ?? ((message, err) => console.error(message, err));
    this.jobs = new JobWriteBuffer({ ...options, log: this.log, write: (records) => this.writeJobs(records) });
  }

  async migrate(): Promise<void> {
    await migrate(this.db, await readMigrations(this.migrationsDir), this.now);
  }

  async createApiKey(input: {
    label: string;
    jobsPerMinute: number;
    maxInFlight: number;
  }): Promise<{ record: ApiKeyRecord; secret: string }> {
    for (const [name, value] of [
      ['jobsPerMinute', input.jobsPerMinute],
      ['maxInFlight', input.maxInFlight],
    ] as const) {
      if (!Number.isInteger(value) || value < 0 || value > INT32_MAX) {
        throw new RangeError(`${name} must be an integer from 0 to ${INT32_MAX}, got ${value}`);
      }
    }
    const secret = API_KEY_PREFIX + randomBytes(32).toString('base64url');
    const record: ApiKeyRecord = { id: randomUUID(), ...input, depositMemo: newDepositMemo(), createdAt: this.now(), revokedAt: null };
    await this.db.query(
      `INSERT INTO api_keys (id, label, secret_sha256, jobs_per_minute, max_in_flight, deposit_memo, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [record.id, record.label, hashApiKeySecret(secret), record.jobsPerMinute, record.maxInFlight, record.depositMemo, record.createdAt],
    );
    return { record, secret };
  }

  async findApiKey(secretSha256: string): Promise<ApiKeyRecord | null> {
    const { rows } = await this.db.query<ApiKeyRow>(
      `SELECT id, label, jobs_per_minute, max_in_flight, deposit_memo, created_at, revoked_at
       FROM api_keys WHERE secret_sha256 = $1 AND revoked_at IS NULL`,
      [secretSha256.toLowerCase()],
    );
    return rows[0] ? apiKeyFromRow(rows[0]) : null;
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    const { rows } = await this.db.query<ApiKeyRow>(
      `SELECT id, label, jobs_per_minute, max_in_flight, deposit_memo, created_at, revoked_at FROM api_keys ORDER BY created_at, id`,
    );
    return rows.map(apiKeyFromRow);
  }

  async findApiKeyByMemo(memo: string): Promise<ApiKeyRecord | null> {
    const { rows } = await this.db.query<ApiKeyRow>(
      `SELECT id, label, jobs_per_minute, max_in_flight, deposit_memo, created_at, revoked_at FROM api_keys WHERE deposit_memo = $1`,
      [memo],
    );
    return rows[0] ? apiKeyFromRow(rows[0]) : null;
  }

  async revokeApiKey(id: string): Promise<void> {
    await this.db.query('UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL', [id, this.now()]);
  }

  /** Inserts or updates by id; `firstSeen` keeps the earliest and `lastSeen` the latest value seen. */
  async upsertContributor(record: ContributorRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO contributors (id, identity_key, hpke_key, wallet, first_seen, last_seen)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (id) DO UPDATE SET identity_key = EXCLUDED.identity_key, hpke_key = EXCLUDED.hpke_key,
         wallet = EXCLUDED.wallet, first_seen = LEAST(contributors.first_seen, EXCLUDED.first_seen),
         last_seen = GREATEST(contributors.last_seen, EXCLUDED.last_seen)`,
      [record.id, record.identityKey, record.hpkeKey, record.wallet, record.firstSeen, record.lastSeen],
    );
  }

  async getContributor(id: string): Promise<ContributorRecord | null> {
    const { rows } = await this.db.query<ContributorRow>('SELECT * FROM contributors WHERE id = $1', [id]);
    const row = rows[0];
    if (!row) return null;
    return {
      id: row.id,
      identityKey: row.identity_key,
      hpkeKey: row.hpke_key,
      wallet: row.wallet,
      firstSeen: toInt(row.first_seen),
      lastSeen: toInt(row.last_seen),
    };
  }

  /** A record the database would reject is logged and dropped, so it cannot block the rest. */
  putJob(record: JobRecord): void {
    const invalid = invalidJob(record);
    if (invalid) {
      this.log(`store: putJob(${String(record.id)}) dropped: ${invalid}`);
      return;
    }
    this.jobs.put(record);
  }

  flush(): Promise<void> {
    return this.jobs.flush();
  }

  written(): Promise<void> {
    return this.jobs.written();
  }

  /** Job records the database refused, set aside (see {@link JobWriteBuffer}). */
  get setAsideJobs(): SetAside {
    return this.jobs.setAside;
  }

  /** Job records put but not yet written (for /metrics: grows while the database is down). */
  get bufferedJobs(): number {
    return this.jobs.size;
  }

  async getJob(id: string): Promise<JobRecord | null> {
    const buffered = this.jobs.get(id);
    if (buffered) return buffered;
    const { rows } = await this.db.query<JobRow>('SELECT * FROM jobs WHERE id = $1', [id]);
    return rows[0] ? jobFromRow(rows[0]) : null;
  }

  /** Flushes first, so buffered puts count; oldest first. */
  async unfinishedJobs(): Promise<JobRecord[]> {
    await this.flush();
    const { rows } = await this.db.query<JobRow>('SELECT * FROM jobs WHERE state = ANY($1::text[]) ORDER BY created_at, id', [UNFINISHED]);
    return rows.map(jobFromRow);
  }

  /** Flushes first, so buffered puts count. */
  async countJobs(): Promise<Record<JobState, number>> {
    await this.flush();
    const { rows } = await this.db.query<{ state: string; n: unknown }>('SELECT state, count(*) AS n FROM jobs GROUP BY state');
    const counts = Object.fromEntries(ALL_STATES.map((s) => [s, 0])) as Record<JobState, number>;
    for (const row of rows) if (row.state in counts) counts[row.state as JobState] = toInt(row.n);
    return counts;
  }

  /** Flushes buffered jobs, then closes the database even when that flush fails (and rethrows). */
  async close(): Promise<void> {
    try {
      await this.jobs.close();
    } finally {
      await this.db.close();
    }
  }

  async forgetResults(before: number): Promise<number> {
    const { rows } = await this.db.query<{ n: unknown }>(
      `WITH cleared AS (UPDATE jobs SET result = NULL WHERE result IS NOT NULL AND updated_at < $1 RETURNING 1) SELECT count(*) AS n FROM cleared`,
      [before],
    );
    return toInt(rows[0]?.n ?? 0);
  }

  private async writeJobs(records: JobRecord[]): Promise<void> {
    await this.db.query(
      UPSERT_JOBS,
      JOB_COLUMNS.map((c) => records.map(c.get)),
    );
  }
}
