-- Times are BIGINT milliseconds since epoch. Runs unchanged on PGlite and PostgreSQL.

CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  label TEXT NOT NULL,
  -- SHA-256 of the whole secret (including its `spn_` prefix), lowercase hex; never the secret.
  secret_sha256 TEXT NOT NULL UNIQUE,
  jobs_per_minute INTEGER NOT NULL,
  max_in_flight INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT
);

CREATE TABLE contributors (
  id TEXT PRIMARY KEY,
  identity_key TEXT NOT NULL,
  hpke_key TEXT NOT NULL,
  wallet TEXT,
  first_seen BIGINT NOT NULL,
  last_seen BIGINT NOT NULL
);

CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  -- No foreign key: jobs are written in batches that must never fail on a single bad row.
  api_key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  kind TEXT NOT NULL,
  state TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  contributor_id TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  payload_bytes BIGINT NOT NULL,
  result_bytes BIGINT NOT NULL,
  prompt_tokens BIGINT NOT NULL,
  completion_tokens BIGINT NOT NULL,
  error TEXT
);

CREATE INDEX jobs_state_idx ON jobs (state);
