-- Prepaid requesters (docs/protocol.md, "Money"): each API key gets a deposit memo, deposits
-- seen on chain are kept for the operator, and each job's billing envelope and reservation
-- has a row whose state follows the ledger (reserved → charged or released). The money
-- itself stays in the ledger; these rows say what was agreed, claimed and billed.
-- nanoTON are BIGINT; logical times (lt) TEXT, as in 003_payouts.

ALTER TABLE api_keys ADD COLUMN deposit_memo TEXT;
-- Keys made before deposits existed get a memo now: `spn-` and 20 letters of [a-z2-7].
UPDATE api_keys SET deposit_memo = 'spn-' || translate(substr(md5(id || random()::text), 1, 20), '0189', 'wxyz')
  WHERE deposit_memo IS NULL;
ALTER TABLE api_keys ALTER COLUMN deposit_memo SET NOT NULL;
CREATE UNIQUE INDEX api_keys_deposit_memo_idx ON api_keys (deposit_memo);

CREATE TABLE job_billing (
  job_id TEXT PRIMARY KEY,
  -- The key that owns the job (reads its events); for a check job, the key of the job it checks or re-runs.
  api_key_id TEXT NOT NULL,
  payer TEXT NOT NULL CHECK (payer IN ('requester', 'budget')),
  role TEXT NOT NULL,
  model TEXT NOT NULL,
  kind TEXT NOT NULL,
  input_tokens INTEGER NOT NULL,
  max_output_tokens INTEGER NOT NULL,
  -- The job's maximum price, held until it is charged or released.
  reserved BIGINT NOT NULL CHECK (reserved >= 0),
  state TEXT NOT NULL CHECK (state IN ('reserved', 'charged', 'released')),
  -- What the contributor reported and what was billed (its report clamped to the envelope).
  claimed_prompt INTEGER,
  claimed_completion INTEGER,
  billed_prompt INTEGER,
  billed_completion INTEGER,
  charged BIGINT,
  -- A free re-run: the delivered requester job it re-runs (one re-run per job).
  rerun_of TEXT UNIQUE,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE INDEX job_billing_open_idx ON job_billing (created_at) WHERE state = 'reserved';

CREATE TABLE deposits (
  -- The ledger's idempotency key: `deposit:<lt>:<hash>`.
  deposit_key TEXT PRIMARY KEY,
  -- The deposit address, raw form `0:<hex>`.
  address TEXT NOT NULL,
  lt TEXT NOT NULL,
  tx_hash TEXT NOT NULL,
  sender TEXT,
  amount BIGINT NOT NULL CHECK (amount > 0),
  comment TEXT,
  target TEXT NOT NULL CHECK (target IN ('requester', 'budget', 'unmatched')),
  api_key_id TEXT,
  -- The key an operator later gave an unmatched deposit to.
  assigned_to TEXT,
  created_at BIGINT NOT NULL
);

CREATE INDEX deposits_unmatched_idx ON deposits (created_at) WHERE target = 'unmatched' AND assigned_to IS NULL;

-- How far the watcher has read each deposit address: the last logical time it booked.
CREATE TABLE deposit_cursors (
  address TEXT PRIMARY KEY,
  lt TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE INDEX ledger_txns_ref_idx ON ledger_txns (ref, kind);
