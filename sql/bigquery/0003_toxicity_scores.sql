-- One score table per Detoxify model, with one column per class, named as
-- the original pipeline named them. Streaming inserts may leave duplicate
-- rows: every read counts a text once (the latest `scored_at` wins).

CREATE TABLE IF NOT EXISTS {dataset}.toxicity_scores_original (
  status_text_id INT64 NOT NULL,
  toxicity FLOAT64 NOT NULL,
  severe_toxicity FLOAT64 NOT NULL,
  obscene FLOAT64 NOT NULL,
  threat FLOAT64 NOT NULL,
  insult FLOAT64 NOT NULL,
  identity_hate FLOAT64 NOT NULL,
  checkpoint_sha256 STRING NOT NULL,
  scored_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS {dataset}.toxicity_scores_unbiased (
  status_text_id INT64 NOT NULL,
  toxicity FLOAT64 NOT NULL,
  severe_toxicity FLOAT64 NOT NULL,
  obscene FLOAT64 NOT NULL,
  identity_attack FLOAT64 NOT NULL,
  insult FLOAT64 NOT NULL,
  threat FLOAT64 NOT NULL,
  sexual_explicit FLOAT64 NOT NULL,
  checkpoint_sha256 STRING NOT NULL,
  scored_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS {dataset}.toxicity_scores_multilingual (
  status_text_id INT64 NOT NULL,
  toxicity FLOAT64 NOT NULL,
  severe_toxicity FLOAT64 NOT NULL,
  obscene FLOAT64 NOT NULL,
  identity_attack FLOAT64 NOT NULL,
  insult FLOAT64 NOT NULL,
  threat FLOAT64 NOT NULL,
  sexual_explicit FLOAT64 NOT NULL,
  checkpoint_sha256 STRING NOT NULL,
  scored_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS {dataset}.toxicity_scores_original_small (
  status_text_id INT64 NOT NULL,
  toxicity FLOAT64 NOT NULL,
  severe_toxicity FLOAT64 NOT NULL,
  obscene FLOAT64 NOT NULL,
  threat FLOAT64 NOT NULL,
  insult FLOAT64 NOT NULL,
  identity_hate FLOAT64 NOT NULL,
  checkpoint_sha256 STRING NOT NULL,
  scored_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS {dataset}.toxicity_scores_unbiased_small (
  status_text_id INT64 NOT NULL,
  toxicity FLOAT64 NOT NULL,
  severe_toxicity FLOAT64 NOT NULL,
  obscene FLOAT64 NOT NULL,
  identity_attack FLOAT64 NOT NULL,
  insult FLOAT64 NOT NULL,
  threat FLOAT64 NOT NULL,
  sexual_explicit FLOAT64 NOT NULL,
  checkpoint_sha256 STRING NOT NULL,
  scored_at TIMESTAMP NOT NULL
);
