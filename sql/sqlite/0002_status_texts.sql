-- One row per distinct text (texts are equal when their bytes are equal).
-- Ids are given by the de-duplication step and never change.
CREATE TABLE status_texts (
    status_text_id INTEGER PRIMARY KEY,
    status_text    TEXT    NOT NULL UNIQUE,
    -- The number of distinct status ids joined to this text.
    status_count   INTEGER NOT NULL
) STRICT;

-- The join table: exactly one row per distinct status id.
CREATE TABLE statuses_texts (
    status_id      INTEGER PRIMARY KEY,
    status_text_id INTEGER NOT NULL
) STRICT;

CREATE INDEX statuses_texts_by_text ON statuses_texts (status_text_id);
