-- Checks no one can dodge (coordinator/verification/): what a contributor claimed for each
-- job, the requester's one report per delivered job (opened or not, the usage it received),
-- and each wallet's quarantine (in verification_quarantines under `wallet:<address>`).
-- Times are ms since epoch.

-- The usage the contributor claimed in its final chunk (NULL: none claimed, or a row from before).
ALTER TABLE verification_jobs ADD COLUMN claimed_prompt BIGINT;
ALTER TABLE verification_jobs ADD COLUMN claimed_completion BIGINT;

-- One report per delivered requester job, posted by the SDK of the job's own key.
CREATE TABLE verification_reports (
  job_id TEXT PRIMARY KEY,
  api_key_id TEXT NOT NULL,
  contributor_id TEXT NOT NULL,
  -- 'ok': the result opened; 'unopenable': it did not.
  outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'unopenable')),
  -- The usage the requester received differs from what the contributor claimed.
  disputed BOOLEAN NOT NULL,
  -- Whether the report changed anything: false when its requester was flagged for lying.
  counted BOOLEAN NOT NULL,
  at BIGINT NOT NULL
);

CREATE INDEX verification_reports_key_idx ON verification_reports (api_key_id, at);
CREATE INDEX verification_reports_contributor_idx ON verification_reports (contributor_id, at);
