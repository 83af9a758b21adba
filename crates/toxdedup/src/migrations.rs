//! The versioned schema migrations, embedded at compile time, and the logic
//! that plans which ones to apply.
//!
//! Each dialect has the same versions, creating the same tables:
//! `sql/sqlite/NNNN_description.sql` for the embedded database and
//! `sql/bigquery/NNNN_description.sql` for BigQuery. A backend records every
//! migration it applies in [`MIGRATIONS`](crate::schema::MIGRATIONS) with the
//! hex SHA-256 of the file; [`MigrationPlan::new`] compares those records with
//! the embedded files and says what to apply, or refuses when an applied file
//! has been edited since (sqlx `migrate` does the same).
//!
//! ```
//! use toxdedup::{Dialect, MigrationPlan};
//! // A store with no records: everything is pending.
//! let plan = MigrationPlan::new(Dialect::Sqlite, &[]).unwrap();
//! assert_eq!(plan.pending.len(), toxdedup::migrations::migrations(Dialect::Sqlite).len());
//! assert!(plan.applied.is_empty());
//! ```
//!
//! BigQuery files write every table as `{dataset}.table`; the backend replaces
//! the placeholder with [`substitute_dataset`] (which validates the name), as
//! the BigQuery emulator ignores `defaultDataset`.

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The SQL dialect of a backend family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// GoogleSQL, with tables written `{dataset}.table`.
    BigQuery,
    /// SQLite (the embedded backend).
    Sqlite,
}

impl Dialect {
    /// The folder of this dialect under `sql/`.
    pub fn folder(self) -> &'static str {
        match self {
            Dialect::BigQuery => "bigquery",
            Dialect::Sqlite => "sqlite",
        }
    }
}

/// One embedded migration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The version, the `NNNN` of the file name.
    pub version: u32,
    /// The file name, for example `0002_status_texts.sql`.
    pub name: &'static str,
    /// The file's content, exactly as embedded.
    pub sql: &'static str,
}

impl Migration {
    /// The hex SHA-256 of [`sql`](Self::sql), recorded when the migration is
    /// applied.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// The file's statements, split at the semicolons that end them (outside
    /// quotes and comments), without empty ones. For backends whose API runs
    /// one statement per request.
    pub fn statements(&self) -> Vec<&'static str> {
        split_statements(self.sql)
    }
}

/// Embeds `sql/<dialect>/<name>` with its version.
macro_rules! migration {
    ($version:literal, $dialect:literal, $name:literal) => {
        Migration { version: $version, name: $name, sql: include_str!(concat!("../../../sql/", $dialect, "/", $name)) }
    };
}

const SQLITE: &[Migration] = &[
    migration!(1, "sqlite", "0001_tweets.sql"),
    migration!(2, "sqlite", "0002_status_texts.sql"),
    migration!(3, "sqlite", "0003_toxicity_scores.sql"),
    migration!(4, "sqlite", "0004_exports.sql"),
];

const BIGQUERY: &[Migration] = &[
    migration!(1, "bigquery", "0001_tweets.sql"),
    migration!(2, "bigquery", "0002_status_texts.sql"),
    migration!(3, "bigquery", "0003_toxicity_scores.sql"),
    migration!(4, "bigquery", "0004_exports.sql"),
];

/// Every migration of a dialect, in increasing version order.
pub fn migrations(dialect: Dialect) -> &'static [Migration] {
    match dialect {
        Dialect::BigQuery => BIGQUERY,
        Dialect::Sqlite => SQLITE,
    }
}

/// The statement that creates the migrations table if it is missing, run by
/// a backend before it reads its records. Columns: `version`, `name`,
/// `checksum` (hex SHA-256 of the file), `applied_at`.
pub fn bootstrap_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "CREATE TABLE IF NOT EXISTS toxscore_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT"
        }
        Dialect::BigQuery => {
            "CREATE TABLE IF NOT EXISTS {dataset}.toxscore_migrations (
  version INT64 NOT NULL,
  name STRING NOT NULL,
  checksum STRING NOT NULL,
  applied_at TIMESTAMP NOT NULL
)"
        }
    }
}

/// A migration as recorded in a store's migrations table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// The version.
    pub version: u32,
    /// The file name recorded.
    pub name: String,
    /// The checksum recorded (hex SHA-256).
    pub checksum: String,
}

impl AppliedMigration {
    /// The record to store after applying `migration`.
    pub fn of(migration: &Migration) -> Self {
        Self { version: migration.version, name: migration.name.to_owned(), checksum: migration.checksum() }
    }
}

/// What to do with a store, given its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationPlan {
    /// Migrations to apply, in increasing version order.
    pub pending: Vec<&'static Migration>,
    /// Migrations already applied, unchanged since, in increasing version
    /// order.
    pub applied: Vec<&'static Migration>,
}

impl MigrationPlan {
    /// Compares the records found in a store with the embedded migrations.
    ///
    /// # Errors
    /// - [`Error::MigrationEdited`] when a recorded checksum differs from the
    ///   embedded file's (the file was edited after it was applied);
    /// - [`Error::UnknownMigration`] when the store records a version this
    ///   binary does not have (a newer toxscore migrated it).
    ///
    /// Records may come in any order; a version recorded twice (a BigQuery
    /// retry) counts once as long as both checksums match.
    pub fn new(dialect: Dialect, records: &[AppliedMigration]) -> Result<Self> {
        let embedded = migrations(dialect);
        let mut sorted: Vec<&AppliedMigration> = records.iter().collect();
        sorted.sort_by_key(|record| record.version);
        for record in &sorted {
            let Some(migration) = embedded.iter().find(|m| m.version == record.version) else {
                return Err(Error::UnknownMigration { version: record.version });
            };
            let current = migration.checksum();
            if !record.checksum.eq_ignore_ascii_case(&current) {
                return Err(Error::MigrationEdited {
                    file: format!("sql/{}/{}", dialect.folder(), migration.name),
                    recorded: record.checksum.clone(),
                    current,
                });
            }
        }
        let (applied, pending) = embedded.iter().partition(|m| sorted.iter().any(|record| record.version == m.version));
        Ok(Self { pending, applied })
    }

    /// Whether nothing is left to apply.
    pub fn is_up_to_date(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Replaces every `{dataset}` placeholder in BigQuery SQL with `dataset`,
/// after checking that it is a valid BigQuery dataset id (1 to 1024 ASCII
/// letters, digits and underscores) so that nothing else reaches the SQL.
pub fn substitute_dataset(sql: &str, dataset: &str) -> Result<String> {
    validate_dataset(dataset)?;
    Ok(sql.replace("{dataset}", dataset))
}

/// Checks a BigQuery dataset id: 1 to 1024 ASCII letters, digits and
/// underscores.
pub fn validate_dataset(dataset: &str) -> Result<()> {
    let valid = !dataset.is_empty()
        && dataset.len() <= 1024
        && dataset.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidIdentifier {
            kind: "dataset",
            name: dataset.to_owned(),
            rule: "1 to 1024 ASCII letters, digits and underscores",
        })
    }
}

/// Splits SQL text into statements at the semicolons outside quotes and
/// comments, dropping statements that hold only whitespace and comments.
fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'-' if bytes.get(index + 1) == Some(&b'-') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            b'#' => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                index += 2;
                while index < bytes.len() && !(bytes[index] == b'*' && bytes.get(index + 1) == Some(&b'/')) {
                    index += 1;
                }
                index += 1;
            }
            quote @ (b'\'' | b'"' | b'`') => {
                index += 1;
                while index < bytes.len() && bytes[index] != quote {
                    if bytes[index] == b'\\' {
                        index += 1;
                    }
                    index += 1;
                }
            }
            b';' => {
                statements.push(&sql[start..index]);
                start = index + 1;
            }
            _ => {}
        }
        index += 1;
    }
    statements.push(&sql[start.min(sql.len())..]);
    statements.into_iter().map(str::trim).filter(|statement| !only_comments(statement)).collect()
}

/// Whether a statement holds nothing but whitespace and `--` comments.
fn only_comments(statement: &str) -> bool {
    statement.lines().map(str::trim).all(|line| line.is_empty() || line.starts_with("--"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{MIGRATIONS, MODEL_TABLES, STATUS_TEXTS, STATUSES_TEXTS, TWEETS};

    fn records(dialect: Dialect, count: usize) -> Vec<AppliedMigration> {
        migrations(dialect).iter().take(count).map(AppliedMigration::of).collect()
    }

    #[test]
    fn a_fresh_store_applies_everything() {
        for dialect in [Dialect::Sqlite, Dialect::BigQuery] {
            let plan = MigrationPlan::new(dialect, &[]).expect("plan");
            assert_eq!(plan.pending.len(), migrations(dialect).len());
            assert!(plan.applied.is_empty());
        }
    }

    #[test]
    fn a_partly_migrated_store_applies_the_rest() {
        let plan = MigrationPlan::new(Dialect::Sqlite, &records(Dialect::Sqlite, 1)).expect("plan");
        assert_eq!(plan.applied.iter().map(|m| m.version).collect::<Vec<_>>(), [1]);
        assert_eq!(plan.pending.iter().map(|m| m.version).collect::<Vec<_>>(), [2, 3, 4]);
    }

    #[test]
    fn a_migrated_store_is_up_to_date() {
        for dialect in [Dialect::Sqlite, Dialect::BigQuery] {
            let all = records(dialect, usize::MAX);
            let plan = MigrationPlan::new(dialect, &all).expect("plan");
            assert!(plan.is_up_to_date());
            // A record repeated by a retry counts once.
            let mut repeated = all.clone();
            repeated.push(all[0].clone());
            assert!(MigrationPlan::new(dialect, &repeated).expect("plan").is_up_to_date());
        }
    }

    #[test]
    fn an_edited_migration_is_an_error_naming_the_file() {
        let mut all = records(Dialect::Sqlite, usize::MAX);
        all[1].checksum = "0".repeat(64);
        let error = MigrationPlan::new(Dialect::Sqlite, &all).expect_err("edited");
        match &error {
            Error::MigrationEdited { file, .. } => {
                assert_eq!(file, "sql/sqlite/0002_status_texts.sql")
            }
            other => panic!("expected MigrationEdited, got {other:?}"),
        }
        assert!(error.to_string().contains("0002_status_texts.sql"), "{error}");
    }

    #[test]
    fn an_unknown_migration_is_an_error() {
        let mut all = records(Dialect::BigQuery, usize::MAX);
        all.push(AppliedMigration { version: 9999, name: "9999_future.sql".into(), checksum: "ab".into() });
        assert!(matches!(MigrationPlan::new(Dialect::BigQuery, &all), Err(Error::UnknownMigration { version: 9999 })));
    }

    #[test]
    fn both_dialects_have_the_same_versions_and_tables() {
        let sqlite = migrations(Dialect::Sqlite);
        let bigquery = migrations(Dialect::BigQuery);
        assert_eq!(sqlite.len(), bigquery.len());
        for (index, (lite, big)) in sqlite.iter().zip(bigquery).enumerate() {
            assert_eq!(lite.version as usize, index + 1, "versions are 1, 2, 3 ... in order");
            assert_eq!(lite.version, big.version);
            assert_eq!(lite.name, big.name);
            assert!(lite.name.starts_with(&format!("{:04}_", lite.version)), "{}", lite.name);
            assert!(!lite.sql.contains("{dataset}"), "{}: SQLite takes no placeholder", lite.name);
            assert!(!big.sql.contains("defaultDataset"));
        }
        let all_sqlite: String = sqlite.iter().map(|m| m.sql).collect();
        let all_bigquery: String = bigquery.iter().map(|m| m.sql).collect();
        for table in
            [TWEETS, STATUS_TEXTS, STATUSES_TEXTS].into_iter().chain(MODEL_TABLES.iter().map(|t| t.table.as_ref()))
        {
            assert!(all_sqlite.contains(&format!("CREATE TABLE {table} (")), "sqlite lacks {table}");
            assert!(
                all_bigquery.contains(&format!("CREATE TABLE IF NOT EXISTS {{dataset}}.{table} (")),
                "bigquery lacks {table}"
            );
        }
        for model in MODEL_TABLES {
            for sql in [&all_sqlite, &all_bigquery] {
                let start = sql.find(&format!("{} (", model.table)).expect("table");
                let body = &sql[start..start + sql[start..].find(')').expect("end")];
                for column in model.columns {
                    assert!(body.contains(&format!("  {column} ")), "{} lacks {column}", model.table);
                }
            }
        }
        assert!(bootstrap_sql(Dialect::Sqlite).contains(MIGRATIONS));
        assert!(bootstrap_sql(Dialect::BigQuery).contains(&format!("{{dataset}}.{MIGRATIONS}")));
    }

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        let check = |sql: &str, expected: &[&str]| assert_eq!(split_statements(sql), expected, "{sql:?}");
        check("SELECT 1; SELECT 2;", &["SELECT 1", "SELECT 2"]);
        check("-- a; comment\nSELECT 'a;b';\n-- trailing only\n", &["-- a; comment\nSELECT 'a;b'"]);
        check("SELECT \"x;\" /* ; */ ; ", &["SELECT \"x;\" /* ; */"]);
        check("", &[]);
        let statements = migrations(Dialect::BigQuery)[1].statements();
        assert_eq!(statements.len(), 2);
        assert!(statements.iter().all(|s| s.contains("CREATE TABLE IF NOT EXISTS")));
        assert_eq!(migrations(Dialect::Sqlite)[1].statements().len(), 3);
    }

    #[test]
    fn datasets_are_validated_before_substitution() {
        assert_eq!(
            substitute_dataset("SELECT * FROM {dataset}.tweets", "tox_2024").expect("valid"),
            "SELECT * FROM tox_2024.tweets"
        );
        for bad in ["", "a.b", "x; DROP TABLE y", "a-b", "é", &"a".repeat(1025)] {
            assert!(
                matches!(substitute_dataset("{dataset}", bad), Err(Error::InvalidIdentifier { .. })),
                "{bad:?} accepted"
            );
        }
    }
}
