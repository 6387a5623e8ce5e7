-- Replicas (docs/operating.md, "Replicas"): several coordinator processes on one database.
--
-- A job belongs to the replica that created it: its sealed payload and its requester's stream
-- live only in that process. Each replica's connections carry `spinneret.replica` (set by
-- `openStore({ replicaId })`), so every job row it inserts names it without the job writer
-- knowing. Rows from before (and from a one-process coordinator) have none. Added without a
-- default first, so existing rows stay NULL rather than taking the migrating replica's id.
ALTER TABLE jobs ADD COLUMN replica_id TEXT;
ALTER TABLE jobs ALTER COLUMN replica_id SET DEFAULT nullif(current_setting('spinneret.replica', true), '');
CREATE INDEX jobs_unfinished_replica_idx ON jobs (replica_id) WHERE state IN ('waiting', 'queued', 'leased');

-- Wallet sessions every replica accepts: a device proves its wallet on one replica and
-- connects its worker to another. Only the token's SHA-256 is kept.
CREATE TABLE wallet_sessions (
  token_hash TEXT PRIMARY KEY,
  scope TEXT NOT NULL CHECK (scope IN ('device', 'owner')),
  wallet TEXT NOT NULL,
  device_key TEXT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX wallet_sessions_expiry_idx ON wallet_sessions (expires_at);
