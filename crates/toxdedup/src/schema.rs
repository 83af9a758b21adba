//! Table and column names, shared by every backend.
//!
//! Keep these names: the analyses written against the original pipeline use
//! them.

/// The source table: one row per imported tweet.
pub const TWEETS: &str = "tweets";
/// One row per distinct text: `status_text_id`, `status_text`, `status_count`.
pub const STATUS_TEXTS: &str = "status_texts";
/// The join table: `status_text_id`, `status_id`, one row per distinct status id.
pub const STATUSES_TEXTS: &str = "statuses_texts";
/// The table that records applied migrations.
pub const MIGRATIONS: &str = "toxscore_migrations";

/// The score table of one Detoxify model and its class columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelTable {
    /// The Detoxify model name, for example `original`.
    pub model: &'static str,
    /// The table name, for example `toxicity_scores_original`.
    pub table: &'static str,
    /// One FLOAT64 column per named class, in the checkpoint's class order.
    pub columns: &'static [&'static str],
}

/// Columns of the `original` and `original-small` models (6 classes), as the
/// original pipeline named them (`identity_hate`, not `identity_attack`).
pub const ORIGINAL_COLUMNS: &[&str] = &["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_hate"];

/// Columns of the `unbiased`, `unbiased-small` and `multilingual` models
/// (7 named classes).
pub const UNBIASED_COLUMNS: &[&str] =
    &["toxicity", "severe_toxicity", "obscene", "identity_attack", "insult", "threat", "sexual_explicit"];

/// Every model's score table. Each has, besides its class columns,
/// `status_text_id` INT64, `checkpoint_sha256` STRING and `scored_at`
/// TIMESTAMP.
pub const MODEL_TABLES: &[ModelTable] = &[
    ModelTable { model: "original", table: "toxicity_scores_original", columns: ORIGINAL_COLUMNS },
    ModelTable { model: "unbiased", table: "toxicity_scores_unbiased", columns: UNBIASED_COLUMNS },
    ModelTable { model: "multilingual", table: "toxicity_scores_multilingual", columns: UNBIASED_COLUMNS },
    ModelTable { model: "original-small", table: "toxicity_scores_original_small", columns: ORIGINAL_COLUMNS },
    ModelTable { model: "unbiased-small", table: "toxicity_scores_unbiased_small", columns: UNBIASED_COLUMNS },
];

impl ModelTable {
    /// Looks a model up by its Detoxify name.
    pub fn by_model(name: &str) -> crate::Result<&'static ModelTable> {
        MODEL_TABLES.iter().find(|table| table.model == name).ok_or_else(|| crate::Error::UnknownModel {
            name: name.to_owned(),
            known: MODEL_TABLES.iter().map(|t| t.model).collect::<Vec<_>>().join(", "),
        })
    }

    /// Checks that this table is one of [`MODEL_TABLES`], so that its names
    /// may be written into SQL.
    pub fn check_known(&self) -> crate::Result<()> {
        if MODEL_TABLES.contains(self) {
            Ok(())
        } else {
            Err(crate::Error::UnknownModel {
                name: format!("{} (table {})", self.model, self.table),
                known: MODEL_TABLES.iter().map(|t| t.model).collect::<Vec<_>>().join(", "),
            })
        }
    }
}
