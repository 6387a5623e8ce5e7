-- The money ledger: append-only, double entry. Amounts are BIGINT nanoTON (1 TON = 10^9;
-- range ±9.2e18, above all TON in existence), signed: debit positive, credit negative.
-- The entries of one transaction sum to zero, checked at commit. Runs on PGlite and PostgreSQL.

CREATE TABLE ledger_txns (
  id BIGSERIAL PRIMARY KEY,
  -- `job:<id>:credit`, `payout:<id>:confirm`…: a replay finds the row and writes nothing.
  idempotency_key TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  -- The job id or payout id.
  ref TEXT NOT NULL,
  -- Free text: a void's reason, a payout's transaction hash.
  note TEXT,
  created_at BIGINT NOT NULL
);

CREATE TABLE ledger_entries (
  id BIGSERIAL PRIMARY KEY,
  txn_id BIGINT NOT NULL REFERENCES ledger_txns (id),
  account TEXT NOT NULL,
  amount BIGINT NOT NULL CHECK (amount <> 0),
  kind TEXT NOT NULL,
  ref TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE INDEX ledger_entries_account_idx ON ledger_entries (account);
CREATE INDEX ledger_entries_txn_idx ON ledger_entries (txn_id);

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the ledger is append-only: % on % is refused; post a reversing transaction instead', TG_OP, TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_txns_append_only BEFORE UPDATE OR DELETE ON ledger_txns
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  total NUMERIC;
BEGIN
  SELECT coalesce(sum(amount), 0) INTO total FROM ledger_entries WHERE txn_id = NEW.txn_id;
  IF total <> 0 THEN
    RAISE EXCEPTION 'ledger transaction % does not balance: its entries sum to % nanoTON', NEW.txn_id, total;
  END IF;
  RETURN NULL;
END;
$$;

-- Deferred to commit, so a transaction's entries may be inserted in any order.
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();
