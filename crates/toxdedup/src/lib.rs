//! Text de-duplication, stable text ids and the schema migrations of toxscore.
//!
//! Of 67M tweets only 13.5M texts are distinct, so each distinct text is
//! scored once and joined back to every tweet that carries it. This crate owns
//! that schema for every storage backend:
//!
//! - [`schema`]: the table and column names (`tweets`, `status_texts`,
//!   `statuses_texts`, one `toxicity_scores_<model>` table per model), which
//!   existing analyses rely on;
//! - [`migrations`]: the versioned SQL files in `sql/`, embedded at compile
//!   time, and the logic that plans which ones to apply (checksums, edited
//!   files);
//! - [`dedup`]: the same de-duplication semantics in plain Rust, used by the
//!   in-memory backend and as the specification the SQL must match;
//! - [`queries`]: the de-duplication SQL and the pipeline's reads (unscored
//!   page, progress, export) for each dialect.
//!
//! ```
//! use toxdedup::Dedup;
//! let mut dedup = Dedup::new();
//! dedup.refresh([(1, "same"), (2, "same"), (3, "other")]);
//! let report = dedup.refresh([(1, "same"), (2, "same"), (3, "other"), (4, "new")]);
//! assert_eq!(report.new_texts, 1);
//! assert_eq!(dedup.text_id("same"), Some(1)); // ids never change
//! assert_eq!(dedup.text_id("new"), Some(3));
//! ```
//!
//! # Invariants
//! - Texts are equal when their bytes are equal (no Unicode normalisation, no
//!   trimming), as a BigQuery `GROUP BY` would do.
//! - A text id, once given, is never changed: new texts continue after the
//!   current maximum id.
//! - Every distinct status id has exactly one row in `statuses_texts`. A
//!   status id seen with several texts is joined to the smallest in byte
//!   order when it is first joined, and keeps that text afterwards; the other
//!   rows are reported as conflicts.
//! - `status_count` is the number of distinct status ids joined to the text.
//!
//! This crate knows nothing of tensors, async runtimes or network clients.
#![warn(missing_docs)]

pub mod dedup;
pub mod migrations;
pub mod queries;
pub mod schema;

pub use dedup::{Conflict, Dedup, DedupReport};
pub use migrations::{Dialect, Migration, MigrationPlan};
pub use schema::{MODEL_TABLES, ModelTable};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A migration that was already applied has been edited since.
    #[error("migration {file} was edited after it was applied (recorded checksum {recorded}, file checksum {current})")]
    MigrationEdited {
        /// The file name, for example `0002_status_texts.sql`.
        file: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of the file embedded in this binary.
        current: String,
    },
    /// The store records a migration this binary does not know: it was
    /// written by a newer toxscore.
    #[error("the store has migration {version} applied, which this toxscore does not know; upgrade toxscore")]
    UnknownMigration {
        /// The unknown version number.
        version: u32,
    },
    /// A dataset, project or table name that must not reach SQL.
    #[error("invalid {kind} name {name:?}: expected {rule}")]
    InvalidIdentifier {
        /// `dataset`, `project` or `table`.
        kind: &'static str,
        /// The name given.
        name: String,
        /// What a valid name looks like.
        rule: &'static str,
    },
    /// A model name that is not in [`MODEL_TABLES`].
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel {
        /// The name given.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
