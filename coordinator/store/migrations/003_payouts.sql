-- Payout batches and payouts as the payout runner sees them (coordinator/earnings/), and
-- the jobs waiting for their verification window to close. Money balances stay in the
-- ledger; these rows only say what was sent, where it landed, and what is still due.
-- nanoTON are BIGINT; logical times (lt) are TEXT since they may exceed 2^63 in theory.

CREATE TABLE payout_batches (
  batch_id TEXT PRIMARY KEY,
  -- The hot-wallet seqno the external message is signed for.
  seqno INTEGER NOT NULL,
  -- ms since epoch after which the message can no longer land.
  expires_at BIGINT NOT NULL,
  since_lt TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE payouts (
  payout_id TEXT PRIMARY KEY,
  batch_id TEXT NOT NULL REFERENCES payout_batches (batch_id),
  wallet TEXT NOT NULL,
  -- Destination, raw form `0:<hex>`.
  to_addr TEXT NOT NULL,
  amount BIGINT NOT NULL CHECK (amount > 0),
  status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
  tx_hash TEXT,
  lt TEXT,
  fee BIGINT,
  reason TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE INDEX payouts_wallet_idx ON payouts (wallet, created_at);
CREATE INDEX payouts_pending_idx ON payouts (batch_id) WHERE status = 'pending';

-- One row per credited job; `pending` until settled or voided after `due_at`.
CREATE TABLE earnings_jobs (
  job_id TEXT PRIMARY KEY,
  wallet TEXT NOT NULL,
  credited_at BIGINT NOT NULL,
  due_at BIGINT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'voided', 'dropped')),
  updated_at BIGINT NOT NULL
);

CREATE INDEX earnings_jobs_due_idx ON earnings_jobs (due_at) WHERE state = 'pending';
