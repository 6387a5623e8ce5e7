-- A done job's sealed result, kept briefly (docs/protocol.md, "Surviving faults").
--
-- A requester's final chunk goes out only once its job is written as done, in the same row
-- write as this column: a coordinator killed after that write and before the requester read
-- the chunk still has the answer for the requester's reopened stream (otherwise it would be
-- charged for an answer it never got, and run the job again). Ciphertext only: the chunks are
-- sealed to the requester's own result key. Cleared `resultRetainMs` after the job ended.
ALTER TABLE jobs ADD COLUMN result JSONB;
CREATE INDEX jobs_result_kept_idx ON jobs (updated_at) WHERE result IS NOT NULL;
