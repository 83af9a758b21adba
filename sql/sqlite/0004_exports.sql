-- The tables `toxcli export --to-table` created, so that a later export may
-- replace them and never any other table.
CREATE TABLE toxscore_exports (
    table_name TEXT PRIMARY KEY,
    model      TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
