-- Job creations by their `Idempotency-Key` (docs/protocol.md, "Job creation"), shared by every
-- replica and kept across restarts: a repeat on any replica, before or after a restart, answers
-- the job the first creation made. The primary key decides between two creations at once; the
-- loser reads the winner's row. `pending`: the creation is running (since `claimed_at`), under
-- the job id it will have; `created`: it made that job. Rows are deleted once `expires_at`
-- passes, and each API key holds a bounded number of them.
CREATE TABLE idempotency_keys (
  api_key_id TEXT NOT NULL,
  idem_key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  job_id TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'created')),
  claimed_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (api_key_id, idem_key)
);
CREATE INDEX idempotency_keys_key_expiry_idx ON idempotency_keys (api_key_id, expires_at);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);

-- Rows each API key holds (expired ones until they are deleted), kept with every insert and
-- delete, so that the cap is checked without counting the key's rows.
CREATE TABLE idempotency_key_counts (
  api_key_id TEXT PRIMARY KEY,
  n INTEGER NOT NULL CHECK (n >= 0)
);
