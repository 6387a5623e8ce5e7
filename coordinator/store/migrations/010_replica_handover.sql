-- Replicas, continued (docs/operating.md, "Replicas").
--
-- A reservation names the replica that wrote it, like a job (migration 009): a restarting
-- replica, or the singleton holder for a dead one, releases the reservations whose job that
-- replica never stored and charges its delivered jobs whose charge it never wrote — that
-- replica's only, never a live one's whose job row is still on its way to the database.
ALTER TABLE job_billing ADD COLUMN replica_id TEXT;
ALTER TABLE job_billing ALTER COLUMN replica_id SET DEFAULT nullif(current_setting('spinneret.replica', true), '');
CREATE INDEX job_billing_reserved_replica_idx ON job_billing (replica_id) WHERE state = 'reserved';

-- `ton_proof` payloads every replica checks: the page asks one replica for a payload and sends
-- the signed proof to another. Only the payload's SHA-256 and the holder's (the caller's IP
-- address) are kept; `used` makes a payload single use across replicas.
CREATE TABLE proof_payloads (
  payload_hash TEXT PRIMARY KEY,
  device_key TEXT NOT NULL,
  holder_hash TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  used BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX proof_payloads_holder_idx ON proof_payloads (holder_hash, expires_at) WHERE NOT used;
CREATE INDEX proof_payloads_expiry_idx ON proof_payloads (expires_at);
