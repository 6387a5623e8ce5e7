-- Verification (coordinator/verification/): what each checked or unchecked job is waiting
-- for, every decision about a contributor with its reason, quarantines, the receipts signed
-- for credited jobs, and the coordinator's receipt key. Times are ms since epoch.

-- One row per finished job of any role: what its credit waits for.
CREATE TABLE verification_jobs (
  job_id TEXT PRIMARY KEY,
  contributor_id TEXT NOT NULL,
  -- 'job' (a requester's), 'canary', 'replica' or 'tie-break'.
  role TEXT NOT NULL,
  -- The requester job a replica or tie-break checks; the job itself for a requester job.
  primary_job_id TEXT NOT NULL,
  -- The API key that may post verdicts on the primary job.
  api_key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  kind TEXT NOT NULL,
  engine_class TEXT NOT NULL,
  -- 'unchecked': settles after the window; 'awaiting': a replica or tie-break is running or a
  -- verdict is due; 'settle' / 'void': judged.
  status TEXT NOT NULL CHECK (status IN ('unchecked', 'awaiting', 'settle', 'void')),
  -- The replica and tie-break jobs of a requester job, once made.
  replica_job_id TEXT,
  tie_break_job_id TEXT,
  -- Which verdict stages were posted: at most one each.
  replica_verdict_at BIGINT,
  tie_break_verdict_at BIGINT,
  -- An 'awaiting' job counts as unchecked after this (no verdict came).
  awaiting_until BIGINT,
  updated_at BIGINT NOT NULL
);

CREATE INDEX verification_jobs_contributor_idx ON verification_jobs (contributor_id, status);

CREATE TABLE verification_records (
  id BIGSERIAL PRIMARY KEY,
  at BIGINT NOT NULL,
  contributor_id TEXT NOT NULL,
  job_id TEXT,
  kind TEXT NOT NULL,
  reason TEXT NOT NULL
);

CREATE INDEX verification_records_contributor_idx ON verification_records (contributor_id, id);

CREATE TABLE verification_quarantines (
  contributor_id TEXT PRIMARY KEY,
  -- NULL: until an operator releases it.
  until_at BIGINT,
  since_at BIGINT NOT NULL
);

CREATE TABLE verification_receipts (
  job_id TEXT PRIMARY KEY,
  contributor_id TEXT NOT NULL,
  -- The receipt's JSON and its Ed25519 signature, base64url.
  receipt TEXT NOT NULL,
  signature TEXT NOT NULL,
  at BIGINT NOT NULL
);

CREATE INDEX verification_receipts_contributor_idx ON verification_receipts (contributor_id, at);

-- The receipt signing key (PKCS#8, base64url), made on first start unless configured.
CREATE TABLE verification_keys (
  name TEXT PRIMARY KEY,
  private_pkcs8 TEXT NOT NULL,
  public_raw TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
