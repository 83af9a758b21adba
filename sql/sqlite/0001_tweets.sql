-- The source table: one row per imported tweet.
-- UNIQUE (status_id, status_text) makes imports idempotent (INSERT OR IGNORE)
-- and its index serves every lookup by status id.
CREATE TABLE tweets (
    status_id   INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    status_text TEXT    NOT NULL,
    -- Microseconds since the Unix epoch, UTC.
    created_at  INTEGER,
    UNIQUE (status_id, status_text)
) STRICT;
