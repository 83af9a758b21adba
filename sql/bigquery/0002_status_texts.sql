-- One row per distinct text (texts are equal when their bytes are equal).
-- Ids are given by the de-duplication step and never change.
CREATE TABLE IF NOT EXISTS {dataset}.status_texts (
  status_text_id INT64 NOT NULL,
  status_text STRING NOT NULL,
  status_count INT64 NOT NULL
);

-- The join table: exactly one row per distinct status id.
CREATE TABLE IF NOT EXISTS {dataset}.statuses_texts (
  status_text_id INT64 NOT NULL,
  status_id INT64 NOT NULL
);
