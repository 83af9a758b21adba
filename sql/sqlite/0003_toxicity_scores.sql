-- One score table per Detoxify model: one row per scored text, with one
-- column per class, named as the original pipeline named them.
-- `scored_at` is an ISO-8601 UTC timestamp; a rewrite replaces the row.

CREATE TABLE toxicity_scores_original (
    status_text_id    INTEGER PRIMARY KEY,
    toxicity          REAL    NOT NULL,
    severe_toxicity   REAL    NOT NULL,
    obscene           REAL    NOT NULL,
    threat            REAL    NOT NULL,
    insult            REAL    NOT NULL,
    identity_hate     REAL    NOT NULL,
    checkpoint_sha256 TEXT    NOT NULL,
    scored_at         TEXT    NOT NULL
) STRICT;

CREATE TABLE toxicity_scores_unbiased (
    status_text_id    INTEGER PRIMARY KEY,
    toxicity          REAL    NOT NULL,
    severe_toxicity   REAL    NOT NULL,
    obscene           REAL    NOT NULL,
    identity_attack   REAL    NOT NULL,
    insult            REAL    NOT NULL,
    threat            REAL    NOT NULL,
    sexual_explicit   REAL    NOT NULL,
    checkpoint_sha256 TEXT    NOT NULL,
    scored_at         TEXT    NOT NULL
) STRICT;

CREATE TABLE toxicity_scores_multilingual (
    status_text_id    INTEGER PRIMARY KEY,
    toxicity          REAL    NOT NULL,
    severe_toxicity   REAL    NOT NULL,
    obscene           REAL    NOT NULL,
    identity_attack   REAL    NOT NULL,
    insult            REAL    NOT NULL,
    threat            REAL    NOT NULL,
    sexual_explicit   REAL    NOT NULL,
    checkpoint_sha256 TEXT    NOT NULL,
    scored_at         TEXT    NOT NULL
) STRICT;

CREATE TABLE toxicity_scores_original_small (
    status_text_id    INTEGER PRIMARY KEY,
    toxicity          REAL    NOT NULL,
    severe_toxicity   REAL    NOT NULL,
    obscene           REAL    NOT NULL,
    threat            REAL    NOT NULL,
    insult            REAL    NOT NULL,
    identity_hate     REAL    NOT NULL,
    checkpoint_sha256 TEXT    NOT NULL,
    scored_at         TEXT    NOT NULL
) STRICT;

CREATE TABLE toxicity_scores_unbiased_small (
    status_text_id    INTEGER PRIMARY KEY,
    toxicity          REAL    NOT NULL,
    severe_toxicity   REAL    NOT NULL,
    obscene           REAL    NOT NULL,
    identity_attack   REAL    NOT NULL,
    insult            REAL    NOT NULL,
    threat            REAL    NOT NULL,
    sexual_explicit   REAL    NOT NULL,
    checkpoint_sha256 TEXT    NOT NULL,
    scored_at         TEXT    NOT NULL
) STRICT;
