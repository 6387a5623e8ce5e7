-- Reputation that survives a restart (coordinator/verification/reputation-store.ts): each
-- device's faults (jobs failed blaming the input, leases let expire), the models a first
-- failure benched it off (and so forgave once), and the credits of requester jobs it ran
-- while on probation, which are capped. Times are ms since epoch; amounts nanoTON.

CREATE TABLE verification_faults (
  contributor_id TEXT PRIMARY KEY,
  faults BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

-- One row per (device, model) whose first failure was forgiven; `until_at` ends the bench.
CREATE TABLE verification_benched (
  contributor_id TEXT NOT NULL,
  model TEXT NOT NULL,
  until_at BIGINT NOT NULL,
  PRIMARY KEY (contributor_id, model)
);

CREATE TABLE verification_probation_credits (
  job_id TEXT PRIMARY KEY,
  contributor_id TEXT NOT NULL,
  amount_nano BIGINT NOT NULL CHECK (amount_nano >= 0),
  at BIGINT NOT NULL
);

CREATE INDEX verification_probation_credits_contributor_idx ON verification_probation_credits (contributor_id, at);
