-- The source table: one row per imported tweet. `{dataset}` is replaced by
-- the validated dataset name before the statement is sent.
-- Streaming inserts are de-duplicated by insert id on a best-effort basis
-- only, so a (status_id, status_text) pair may appear twice: every read
-- treats the pairs as a set.
CREATE TABLE IF NOT EXISTS {dataset}.tweets (
  status_id INT64 NOT NULL,
  user_id INT64 NOT NULL,
  status_text STRING NOT NULL,
  created_at TIMESTAMP
);
