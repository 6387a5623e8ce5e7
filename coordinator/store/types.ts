/**
 * The coordinator's store: one schema and one set of SQL migrations on two backends, PGlite
 * (embedded, the default) and PostgreSQL (`DATABASE_URL`). It holds what matters for money
 * and recovery — never a payload; a done job's result only as the ciphertext sealed to its
 * requester, and only briefly ({@link StoredResult}): the coordinator never sees plaintext.
 */
import type { ApiKeyView } from '../../protocol/answers.ts';
import type { JobKind } from '../../protocol/manifest.ts';
import type { JobEvent } from '../../protocol/wire.ts';

export type JobState = 'waiting' | 'queued' | 'leased' | 'done' | 'failed' | 'cancelled';

/** One job's metadata, as the store keeps it. */
export interface JobRecord {
  id: string;
  /** Id of the API key that created it. */
  apiKeyId: string;
  model: string;
  kind: JobKind;
  state: JobState;
  /** 1 for the first contributor, +1 per re-assignment. */
  attempt: number;
  /** Contributor of the current attempt, or null while waiting for one. */
  contributorId: string | null;
  /** Milliseconds since epoch. */
  createdAt: number;
  updatedAt: number;
  /** Sealed payload size of the current attempt, bytes. */
  payloadBytes: number;
  /** Sealed result size, bytes. */
  resultBytes: number;
  promptTokens: number;
  completionTokens: number;
  /** Error code and message when `failed`. */
  error: string | null;
  /** A done job's sealed result, while it is kept (see {@link StoredResult}). */
  result?: StoredResult;
}

/**
 * The result chunks of a done job's last attempt, sealed to the requester (ciphertext only),
 * written with the record that says it is done and kept `resultRetainMs`: a requester whose
 * stream a coordinator crash cut off reads its answer from them, once the coordinator is back.
 */
export interface StoredResult {
  attempt: number;
  chunks: Array<Extract<JobEvent, { type: 'chunk' }>>;
}

/** A requester API key as stored, and as the operator's routes list it (never its secret: only a hash is stored). */
export type ApiKeyRecord = ApiKeyView;

export interface ContributorRecord {
  /** Derived from the identity key (see coordinator/sessions). */
  id: string;
  /** Ed25519 public key, base64url. */
  identityKey: string;
  /** X25519 public key, base64url. */
  hpkeKey: string;
  /** Wallet the contributor earns for, when known. */
  wallet: string | null;
  firstSeen: number;
  lastSeen: number;
}

export interface Store {
  /** Applies pending migrations; safe to call on every start. */
  migrate(): Promise<void>;

  /** Creates an API key and returns its secret once; only its SHA-256 is stored. */
  createApiKey(input: { label: string; jobsPerMinute: number; maxInFlight: number }): Promise<{ record: ApiKeyRecord; secret: string }>;
  /** The key whose secret hashes to `secretSha256` (hex), unless revoked. */
  findApiKey(secretSha256: string): Promise<ApiKeyRecord | null>;
  /** The key whose deposit memo this is (revoked keys too: their deposits are still theirs). */
  findApiKeyByMemo(memo: string): Promise<ApiKeyRecord | null>;
  revokeApiKey(id: string): Promise<void>;
  /** Every key, revoked ones too, oldest first (never a secret: only hashes are kept). */
  listApiKeys(): Promise<ApiKeyRecord[]>;

  upsertContributor(record: ContributorRecord): Promise<void>;
  getContributor(id: string): Promise<ContributorRecord | null>;

  /**
   * Records a job's metadata (insert or update by id). Writes are batched (group commit):
   * call {@link flush} to wait for durability. Never throws synchronously.
   */
  putJob(record: JobRecord): void;
  /** Waits until every earlier putJob is written. */
  flush(): Promise<void>;
  /**
   * Like {@link flush}, without hurrying a write: resolves when every earlier putJob is written
   * in its batch; rejects at once while the database cannot be written, or when that batch fails.
   */
  written(): Promise<void>;
  getJob(id: string): Promise<JobRecord | null>;
  /** Jobs not in a final state (for recovery after a restart). */
  unfinishedJobs(): Promise<JobRecord[]>;
  /** Clears the stored results of jobs that ended before `before` (ms since epoch); how many. */
  forgetResults(before: number): Promise<number>;
  /** Counts by state (for /metrics and tests). */
  countJobs(): Promise<Record<JobState, number>>;

  close(): Promise<void>;
}
