//! Table and column names, shared by every backend.
//!
//! Keep these names: the analyses written against the original pipeline use
//! them.

use std::borrow::Cow;

/// The source table: one row per imported tweet.
pub const TWEETS: &str = "tweets";
/// One row per distinct text: `status_text_id`, `status_text`, `status_count`.
pub const STATUS_TEXTS: &str = "status_texts";
/// The join table: `status_text_id`, `status_id`, one row per distinct status id.
pub const STATUSES_TEXTS: &str = "statuses_texts";
/// The table that records applied migrations.
pub const MIGRATIONS: &str = "toxscore_migrations";
/// The table that records the tables `export_to_table` created.
pub const EXPORTS: &str = "toxscore_exports";

/// Whether a name is one of toxscore's fixed tables (score tables aside).
pub fn is_fixed_table(name: &str) -> bool {
    [TWEETS, STATUS_TEXTS, STATUSES_TEXTS, MIGRATIONS, EXPORTS].contains(&name)
}

/// The score table of one Detoxify model and its class columns.
///
/// The table is one of [`MODEL_TABLES`], or one of them under another name
/// ([`ModelTable::with_table`]): the Python pipeline kept the scores of its
/// checkpoint scorer in `toxicity_scores_original_ckpt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelTable {
    /// The Detoxify model name, for example `original`.
    pub model: &'static str,
    /// The table name, for example `toxicity_scores_original`.
    pub table: Cow<'static, str>,
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
    ModelTable { model: "original", table: Cow::Borrowed("toxicity_scores_original"), columns: ORIGINAL_COLUMNS },
    ModelTable { model: "unbiased", table: Cow::Borrowed("toxicity_scores_unbiased"), columns: UNBIASED_COLUMNS },
    ModelTable {
        model: "multilingual",
        table: Cow::Borrowed("toxicity_scores_multilingual"),
        columns: UNBIASED_COLUMNS,
    },
    ModelTable {
        model: "original-small",
        table: Cow::Borrowed("toxicity_scores_original_small"),
        columns: ORIGINAL_COLUMNS,
    },
    ModelTable {
        model: "unbiased-small",
        table: Cow::Borrowed("toxicity_scores_unbiased_small"),
        columns: UNBIASED_COLUMNS,
    },
];

impl ModelTable {
    /// Looks a model up by its Detoxify name.
    pub fn by_model(name: &str) -> crate::Result<&'static ModelTable> {
        MODEL_TABLES.iter().find(|table| table.model == name).ok_or_else(|| crate::Error::UnknownModel {
            name: name.to_owned(),
            known: MODEL_TABLES.iter().map(|t| t.model).collect::<Vec<_>>().join(", "),
        })
    }

    /// The same model's table under another name, for a table that already
    /// exists (`toxicity_scores_original_ckpt`). The name must be a plain
    /// identifier (letters, digits and `_`, not starting with a digit, at
    /// most 128 characters), as it is written into SQL.
    pub fn with_table(&self, table: &str) -> crate::Result<ModelTable> {
        if !is_plain_identifier(table) {
            return Err(crate::Error::InvalidIdentifier {
                kind: "table",
                name: table.to_owned(),
                rule: "letters, digits and _, not starting with a digit, at most 128 characters",
            });
        }
        Ok(ModelTable { table: Cow::Owned(table.to_owned()), ..self.clone() })
    }

    /// Checks that this table is one of [`MODEL_TABLES`], possibly renamed
    /// with [`with_table`](Self::with_table), so that its names may be
    /// written into SQL.
    pub fn check_known(&self) -> crate::Result<()> {
        let known = MODEL_TABLES.iter().any(|known| known.model == self.model && known.columns == self.columns);
        if known && is_plain_identifier(&self.table) {
            Ok(())
        } else {
            Err(crate::Error::UnknownModel {
                name: format!("{} (table {})", self.model, self.table),
                known: MODEL_TABLES.iter().map(|t| t.model).collect::<Vec<_>>().join(", "),
            })
        }
    }
}

/// A name that can be written into SQL of every dialect without quotes.
pub fn is_plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// Where a BigQuery store reads its tweets: its own `tweets` table (the
/// default), or a table it does not own, in any dataset or project, read
/// only (`--tweets-table`).
///
/// Every read goes through [`view`](Self::view), which casts the ids to
/// INT64 with `SAFE_CAST`, whether the column is INT64 or STRING (the Python
/// pipeline stores digits in STRING columns), and leaves out the rows whose
/// id does not convert or whose text is NULL;
/// [`queries::skipped_tweets`](crate::queries::skipped_tweets) counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TweetSource {
    /// `None`: `{dataset}.tweets`; else another table.
    pub table: Option<TableRef>,
    /// The status id column (INT64 or STRING).
    pub status_id: String,
    /// The user id column (INT64 or STRING).
    pub user_id: String,
    /// The text column.
    pub status_text: String,
    /// The creation time column (TIMESTAMP), if there is one.
    pub created_at: Option<String>,
}

impl Default for TweetSource {
    fn default() -> Self {
        TweetSource {
            table: None,
            status_id: "status_id".to_owned(),
            user_id: "user_id".to_owned(),
            status_text: "status_text".to_owned(),
            created_at: Some("created_at".to_owned()),
        }
    }
}

/// A BigQuery table named in full: `PROJECT.DATASET.TABLE` or `DATASET.TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    /// The project, when given.
    pub project: Option<String>,
    /// The dataset.
    pub dataset: String,
    /// The table.
    pub table: String,
}

impl TableRef {
    /// Parses and checks `PROJECT.DATASET.TABLE` or `DATASET.TABLE`.
    pub fn parse(text: &str) -> crate::Result<TableRef> {
        let invalid = || crate::Error::InvalidIdentifier {
            kind: "table",
            name: text.to_owned(),
            rule: "PROJECT.DATASET.TABLE or DATASET.TABLE (project: lowercase letters, digits and hyphens; \
                   dataset and table: letters, digits and underscores)",
        };
        let parts: Vec<&str> = text.split('.').collect();
        let (project, dataset, table) = match parts.as_slice() {
            [dataset, table] => (None, *dataset, *table),
            [project, dataset, table] => (Some(*project), *dataset, *table),
            _ => return Err(invalid()),
        };
        let project_ok = project.is_none_or(|project| {
            !project.is_empty()
                && project.len() <= 64
                && project.as_bytes()[0].is_ascii_lowercase()
                && project.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        });
        if !project_ok || crate::migrations::validate_dataset(dataset).is_err() || !is_plain_name(table) {
            return Err(invalid());
        }
        Ok(TableRef { project: project.map(str::to_owned), dataset: dataset.to_owned(), table: table.to_owned() })
    }

    /// The name as written into SQL, backticked: `` `project.dataset.table` ``.
    pub fn sql(&self) -> String {
        match &self.project {
            Some(project) => format!("`{project}.{}.{}`", self.dataset, self.table),
            None => format!("`{}.{}`", self.dataset, self.table),
        }
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.project {
            Some(project) => write!(formatter, "{project}.{}.{}", self.dataset, self.table),
            None => write!(formatter, "{}.{}", self.dataset, self.table),
        }
    }
}

/// A table or column name BigQuery accepts unquoted and SQLite too:
/// letters, digits and `_`, at most 128 characters (a leading digit is
/// allowed: such names are always backticked where they come from users).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

impl TweetSource {
    /// Checks every column name (plain identifiers only, as they are written
    /// into SQL).
    pub fn validate(&self) -> crate::Result<()> {
        let columns = [Some(&self.status_id), Some(&self.user_id), Some(&self.status_text), self.created_at.as_ref()];
        for column in columns.into_iter().flatten() {
            if !is_plain_name(column) {
                return Err(crate::Error::InvalidIdentifier {
                    kind: "column",
                    name: column.clone(),
                    rule: "letters, digits and underscores, at most 128 characters",
                });
            }
        }
        Ok(())
    }

    /// Whether the tweets are toxscore's own `tweets` table (which `import`
    /// writes), rather than a read-only table elsewhere.
    pub fn is_own_table(&self) -> bool {
        self.table.is_none()
    }

    /// The source table as written into BigQuery SQL.
    pub fn table_sql(&self) -> String {
        match &self.table {
            Some(table) => table.sql(),
            None => format!("{{dataset}}.{TWEETS}"),
        }
    }

    /// A subquery with toxscore's tweets columns (`status_id` INT64,
    /// `user_id` INT64, `status_text`, `created_at`), for BigQuery: ids cast
    /// with `SAFE_CAST`; rows without a usable status id or text left out.
    pub fn view(&self) -> String {
        let created_at = match &self.created_at {
            Some(column) => format!("`{column}`"),
            None => "CAST(NULL AS TIMESTAMP)".to_owned(),
        };
        format!(
            "(SELECT SAFE_CAST(`{id}` AS INT64) AS status_id, SAFE_CAST(`{user}` AS INT64) AS user_id, \
             `{text}` AS status_text, {created_at} AS created_at\n  FROM {table}\n  \
             WHERE SAFE_CAST(`{id}` AS INT64) IS NOT NULL AND `{text}` IS NOT NULL)",
            id = self.status_id,
            user = self.user_id,
            text = self.status_text,
            table = self.table_sql(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_refs_are_checked_and_backticked() {
        let full = TableRef::parse("tweet-collector-py.impeachment_production.tweets").expect("valid");
        assert_eq!(full.sql(), "`tweet-collector-py.impeachment_production.tweets`");
        assert_eq!(TableRef::parse("d.t").expect("valid").sql(), "`d.t`");
        for bad in ["t", "a.b.c.d", "p.d.t`x", "P.d.t", "p.d e.t", "p.d.t;", ".d.t"] {
            assert!(TableRef::parse(bad).is_err(), "{bad:?}");
        }
        let source = TweetSource { status_id: "id`x".into(), ..TweetSource::default() };
        assert!(source.validate().is_err());
        let view = TweetSource::default().view();
        assert!(view.contains("SAFE_CAST(`status_id` AS INT64) AS status_id"), "{view}");
        assert!(view.contains("FROM {dataset}.tweets"), "{view}");
    }

    #[test]
    fn renamed_tables_keep_the_model_and_take_only_plain_names() {
        let original = ModelTable::by_model("original").expect("known");
        let renamed = original.with_table("toxicity_scores_original_ckpt").expect("a plain name");
        assert_eq!(renamed.table, "toxicity_scores_original_ckpt");
        assert_eq!(renamed.columns, original.columns);
        renamed.check_known().expect("renamed tables are known");
        for bad in ["", "x; DROP TABLE tweets", "a.b", "a`b", "1abc", "tab le", &"x".repeat(129)] {
            assert!(original.with_table(bad).is_err(), "{bad:?}");
        }
        let forged =
            ModelTable { model: "original", table: Cow::Borrowed("x; DROP TABLE tweets"), columns: ORIGINAL_COLUMNS };
        assert!(forged.check_known().is_err());
        let forged = ModelTable { model: "x", table: Cow::Borrowed("x"), columns: &[] };
        assert!(forged.check_known().is_err());
    }
}
