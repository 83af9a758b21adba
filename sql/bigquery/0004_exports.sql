-- The tables `toxcli export --to-table` created, so that a later export may
-- replace them and never any other table (a table the Python pipeline made,
-- say). A name is recorded before its table is created.
CREATE TABLE IF NOT EXISTS {dataset}.toxscore_exports (
  table_name STRING NOT NULL,
  model STRING NOT NULL,
  created_at TIMESTAMP NOT NULL
);
