-- Quarantines an operator lifted, and reading back only what changed (docs/operating.md,
-- "Quarantines").
--
-- A replica that quarantines or benches a device says which on NATS, and the others read those
-- rows alone; a word missed is made up every 30 s by reading the rows changed since the last
-- read: a quarantine's `since_at` is set on every write, a bench's `updated_at` likewise.
ALTER TABLE verification_benched ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX verification_benched_updated_idx ON verification_benched (updated_at);
CREATE INDEX verification_quarantines_since_idx ON verification_quarantines (since_at);

-- A lift: the quarantine's row leaves `verification_quarantines` and this record stays, with who
-- lifted it, when and why. Credits voided by the quarantine stay voided: money stays as judged.
CREATE TABLE verification_quarantine_lifts (
  id BIGSERIAL PRIMARY KEY,
  -- A device id, or `wallet:<address>`.
  contributor_id TEXT NOT NULL,
  lifted_at BIGINT NOT NULL,
  lifted_by TEXT NOT NULL,
  reason TEXT NOT NULL,
  -- The quarantine as it was.
  quarantined_since BIGINT NOT NULL,
  quarantined_until BIGINT
);
CREATE INDEX verification_quarantine_lifts_at_idx ON verification_quarantine_lifts (lifted_at);
CREATE INDEX verification_quarantine_lifts_contributor_idx ON verification_quarantine_lifts (contributor_id, lifted_at);
