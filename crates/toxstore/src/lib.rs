//! One storage trait for toxscore, with BigQuery, SQLite and in-memory backends.
//!
//! The scoring pipeline needs a handful of operations from its store: import
//! tweets, apply the schema migrations and de-duplicate texts (both from
//! `toxdedup`), page through the texts a model has not scored yet, write
//! scores, count progress and export the scores joined back to every status
//! id. [`Store`] is exactly that; every backend implements it and runs the one
//! conformance suite in [`conformance`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> toxstore::Result<()> {
//! use toxstore::{InMemory, Store, Tweet};
//! let store = InMemory::new();
//! store.migrate().await?;
//! store.import_tweets(&[Tweet { status_id: 1, user_id: 7, status_text: "hello".into(), created_at: None }]).await?;
//! let report = store.refresh_texts().await?;
//! assert_eq!(report.new_texts, 1);
//! # Ok(()) }
//! ```
//!
//! This crate knows nothing of tensors or tokenizers: scores arrive as plain
//! `f64` columns named by `toxdedup::schema`.
#![warn(missing_docs)]

pub mod bigquery;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
pub mod memory;
pub mod spec;
pub mod sqlite;
mod validate;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use error::{Error, Result};
pub use memory::InMemory;
pub use spec::StoreSpec;
pub use sqlite::Sqlite;
pub use toxdedup::queries::{ExportRows, Grouping, ScoredBy};
pub use toxdedup::schema::{TableRef, TweetSource};
pub use toxdedup::{DedupReport, MODEL_TABLES, ModelTable};

/// How a store's tables are laid out where they are not toxscore's own:
/// the dataset the Python pipeline left behind.
///
/// The default is toxscore's layout: its own `tweets` table and the score
/// tables of [`MODEL_TABLES`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Where the tweets are read (BigQuery only: SQLite and memory read their
    /// own `tweets`).
    pub tweets: TweetSource,
    /// Score tables under other names (`toxicity_scores_original_ckpt`), at
    /// most one per model; the other models keep their default tables.
    pub score_tables: Vec<ModelTable>,
}

impl Layout {
    /// The score table of a model: its renamed table, else its default one.
    pub fn score_table(&self, model: &str) -> Result<ModelTable> {
        if let Some(table) = self.score_tables.iter().find(|table| table.model == model) {
            return Ok(table.clone());
        }
        Ok(ModelTable::by_model(model)?.clone())
    }

    /// Every model's score table, in [`MODEL_TABLES`] order.
    pub fn all_score_tables(&self) -> Vec<ModelTable> {
        MODEL_TABLES
            .iter()
            .map(|default| {
                self.score_tables.iter().find(|table| table.model == default.model).unwrap_or(default).clone()
            })
            .collect()
    }

    /// Checks the names (tables and columns are written into SQL) and that
    /// no model has two tables.
    pub fn validate(&self) -> Result<()> {
        self.tweets.validate()?;
        for (index, table) in self.score_tables.iter().enumerate() {
            validate::model_table(table)?;
            if self.score_tables[..index].iter().any(|other| other.model == table.model) {
                return Err(Error::InvalidInput { what: format!("model {} is given two score tables", table.model) });
            }
        }
        Ok(())
    }
}

/// Text ids are INT64 in every backend.
pub type TextId = i64;

/// One imported tweet: a row of the `tweets` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tweet {
    /// The tweet's id; must be non-negative.
    pub status_id: i64,
    /// The author's id.
    pub user_id: i64,
    /// The text, exactly as collected (no normalisation, no trimming).
    pub status_text: String,
    /// When the tweet was created, in microseconds since the Unix epoch (UTC).
    pub created_at: Option<i64>,
}

/// A distinct text waiting to be scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRow {
    /// Its stable id.
    pub status_text_id: TextId,
    /// The text.
    pub status_text: String,
}

/// A shard `index/count`: the texts whose id modulo `count` equals `index`.
///
/// `count` workers with indexes `0..count` partition the texts: their pages
/// never overlap and together cover everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This worker's index, `0..count`.
    pub index: u32,
    /// The number of workers, at least 1.
    pub count: u32,
}

impl Shard {
    /// Builds a shard, checking `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::InvalidInput {
                what: format!("shard {index}/{count}: the index must be below the count, and the count at least 1"),
            });
        }
        Ok(Self { index, count })
    }

    /// Whether a text id falls in this shard.
    pub fn contains(&self, id: TextId) -> bool {
        id.rem_euclid(i64::from(self.count)) == i64::from(self.index)
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;

    /// Parses `K/N`.
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || Error::InvalidInput { what: format!("shard {text:?}: expected K/N, for example 0/4") };
        let (index, count) = text.split_once('/').ok_or_else(invalid)?;
        let index = index.trim().parse().map_err(|_| invalid())?;
        let count = count.trim().parse().map_err(|_| invalid())?;
        Shard::new(index, count)
    }
}

/// Which page of unscored texts to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnscoredQuery {
    /// Only texts with an id strictly greater than this (keyset paging, so
    /// that a reader can run ahead of the writes of earlier pages).
    pub after: Option<TextId>,
    /// At most this many texts.
    pub limit: usize,
    /// Only this shard's texts.
    pub shard: Option<Shard>,
}

/// A row of `status_texts`: a distinct text, its id and how many status ids
/// carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextCount {
    /// Its stable id.
    pub status_text_id: TextId,
    /// The text.
    pub status_text: String,
    /// The number of distinct status ids joined to it.
    pub status_count: u64,
}

/// The scores of one text by one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// The scored text.
    pub status_text_id: TextId,
    /// One value per column of the model's [`ModelTable`], in its order.
    pub scores: Vec<f64>,
}

/// A batch of scores to write.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreBatch<'a> {
    /// The model's score table.
    pub table: &'a ModelTable,
    /// The SHA-256 (hex) of the checkpoint that produced the scores.
    pub checkpoint_sha256: &'a str,
    /// The rows.
    pub rows: &'a [ScoreRow],
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows written to `tweets` (rows already present are not written twice).
    pub inserted: u64,
    /// Rows that were already present (same status id and text).
    pub already_present: u64,
}

/// How to migrate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrateOptions {
    /// Change nothing: only read what is there, and list in
    /// [`MigrateReport::statements`] what a real run would send.
    pub dry_run: bool,
}

/// What `migrate` did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// File names of the migrations applied by this call.
    pub applied: Vec<String>,
    /// File names of the migrations that were already applied.
    pub already_applied: Vec<String>,
    /// What was done to tables toxscore did not create (columns added to a
    /// score table the Python pipeline made), one sentence each.
    pub adopted: Vec<String>,
    /// Every statement sent that changes something, in order (in a dry run:
    /// every statement a real run would send, the de-duplication's included).
    pub statements: Vec<String>,
    /// What this call created that holds tables, one name each: a BigQuery
    /// dataset that did not exist (`PROJECT.DATASET`). A user who meant to
    /// adopt an existing dataset learns here that another one was named.
    pub created: Vec<String>,
}

/// Counts for the `status` command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Distinct status ids (rows of `statuses_texts`).
    pub statuses: u64,
    /// Distinct texts (rows of `status_texts`).
    pub texts: u64,
    /// Distinct status ids in `tweets`: more than [`statuses`](Self::statuses)
    /// when tweets were imported and not de-duplicated yet
    /// ([`Store::refresh_texts`] joins them). `None` on BigQuery, where
    /// counting them would scan the whole tweets table (its ids and texts,
    /// about 11 GB for the impeachment dataset) at every `status` and at the
    /// start of every scoring worker.
    pub imported_statuses: Option<u64>,
    /// One entry per model table, in `toxdedup::MODEL_TABLES` order.
    pub models: Vec<ModelProgress>,
}

/// Progress of one model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelProgress {
    /// The Detoxify model name.
    pub model: String,
    /// Distinct texts with a score.
    pub scored: u64,
    /// Distinct texts without one.
    pub remaining: u64,
}

/// One exported row: a status id joined to its text's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    /// The tweet.
    pub status_id: i64,
    /// Its author; `None` when a BigQuery source's user id is NULL or not a
    /// number.
    pub user_id: Option<i64>,
    /// Its text's id.
    pub status_text_id: TextId,
    /// The model's class columns, in [`ModelTable::columns`] order.
    pub scores: Vec<f64>,
}

/// One row of [`Store::aggregate`]: the scored statuses of one user or day.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    /// The user id, or the UTC day (`YYYY-MM-DD`) of `created_at`; `None`
    /// for the statuses without one.
    pub key: Option<String>,
    /// Distinct status ids (each counted once, however often imported).
    pub n_statuses: u64,
    /// The mean of each class column, in [`ModelTable::columns`] order.
    pub averages: Vec<f64>,
    /// The highest `toxicity`.
    pub max_toxicity: f64,
    /// The share of the statuses whose `toxicity` is at least the threshold.
    pub share_toxic: f64,
}

/// How the in-memory store writes `scored_at`, as SQLite's
/// `strftime('%Y-%m-%dT%H:%M:%fZ')` does and [`CheckpointUse`] reports it.
pub(crate) const SCORED_AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// The UTC civil time of a time in microseconds since 1970, for the years
/// -9999 to 9999 (computed on civil times: `jiff::Timestamp` stops a day
/// short of 9999-12-31, which BigQuery's TIMESTAMP reaches).
pub(crate) fn utc_datetime(micros: i64) -> Option<jiff::civil::DateTime> {
    jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0).checked_add(jiff::SignedDuration::from_micros(micros)).ok()
}

/// What [`Store::summary`] computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SummaryQuery {
    /// Bins of each class's histogram, from 1 to [`SummaryQuery::MAX_BINS`].
    pub bins: usize,
    /// The toxicity from which a status counts as toxic (finite).
    pub threshold: f64,
    /// Users with fewer scored statuses are left out of the top users.
    pub min_statuses: u64,
    /// How many top users and top texts, at most [`SummaryQuery::MAX_TOP`].
    pub top: usize,
}

impl SummaryQuery {
    /// The most histogram bins (each is one column of a one-row query).
    pub const MAX_BINS: usize = 100;
    /// The most top users and texts.
    pub const MAX_TOP: usize = 1_000;
}

impl Default for SummaryQuery {
    fn default() -> Self {
        Self { bins: 20, threshold: 0.5, min_statuses: 10, top: 20 }
    }
}

/// One model's scores, summed up in the store ([`Store::summary`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Distinct user ids of the tweets.
    pub users: u64,
    /// Scored statuses, each counted once (the rows of [`Store::export`]).
    pub scored_statuses: u64,
    /// Which checkpoints scored the texts, most texts first.
    pub checkpoints: Vec<CheckpointUse>,
    /// Per class column (in [`ModelTable::columns`] order), how many scored
    /// statuses fall in each of [`SummaryQuery::bins`] equal bins of
    /// `[0, 1]`: bin `floor(score * bins)`, the last one closed.
    pub histograms: Vec<Vec<u64>>,
    /// The users with at least [`SummaryQuery::min_statuses`] scored
    /// statuses, highest mean toxicity first (ties by user id).
    pub top_users: Vec<AggregateRow>,
    /// The texts with the highest toxicity (ties by text id).
    pub top_texts: Vec<TopText>,
}

/// The texts one checkpoint scored ([`Summary::checkpoints`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointUse {
    /// Its SHA-256; `None` for scores written without one (the Python
    /// pipeline's).
    pub checkpoint_sha256: Option<String>,
    /// Distinct texts whose score it wrote.
    pub n_texts: u64,
    /// When the first and the last of them were scored, as
    /// `YYYY-MM-DDTHH:MM:SS.sssZ` (UTC); `None` where not recorded.
    pub first_scored_at: Option<String>,
    /// See [`first_scored_at`](Self::first_scored_at).
    pub last_scored_at: Option<String>,
}

/// One of [`Summary::top_texts`].
#[derive(Debug, Clone, PartialEq)]
pub struct TopText {
    /// Its id.
    pub status_text_id: TextId,
    /// The text.
    pub text: String,
    /// The statuses that carry it.
    pub n_statuses: u64,
    /// Its scores, in [`ModelTable::columns`] order.
    pub scores: Vec<f64>,
}

/// What [`Store::sample_scores`] draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleQuery {
    /// How many stored scores, 1 to [`SampleQuery::MAX_ROWS`].
    pub rows: usize,
    /// Which texts are drawn: the same seed draws the same texts on every
    /// backend and at every call (`toxdedup::queries::sample_key`).
    pub seed: u32,
    /// Whose scores are drawn from.
    pub scored_by: ScoredBy,
}

impl SampleQuery {
    /// The most rows of one sample.
    pub const MAX_ROWS: usize = 100_000;
}

/// One stored score with its text ([`Store::sample_scores`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredScore {
    /// The text's id.
    pub status_text_id: TextId,
    /// The text.
    pub status_text: String,
    /// The checkpoint that wrote the score; `None` for the Python
    /// pipeline's rows.
    pub checkpoint_sha256: Option<String>,
    /// The scores, in [`ModelTable::columns`] order; `None` where the
    /// column is NULL (a BigQuery table the Python pipeline made has
    /// NULLABLE class columns; toxscore never writes one).
    pub scores: Vec<Option<f64>>,
}

/// The storage operations of the scoring pipeline.
///
/// # Contract
/// - **Migrations.** [`migrate`](Store::migrate) applies the pending schema
///   migrations of `toxdedup` in version order, each in its own transaction
///   where the backend has them, and records each one with its checksum.
///   Calling it twice is a no-op. An applied migration whose file has since
///   been edited is an [`Error::Migration`] holding
///   `toxdedup::Error::MigrationEdited`, which names the file, and nothing is
///   applied; a store migrated by a newer toxscore is
///   `toxdedup::Error::UnknownMigration`.
/// - **Before migrating**, every other operation fails with
///   [`Error::NotFound`] (the tables do not exist yet).
/// - **Import.** [`import_tweets`](Store::import_tweets) is atomic per call on
///   SQLite and in memory (all rows or none) and idempotent: importing the same
///   `(status_id, status_text)` twice stores it once. On BigQuery each row
///   carries an insert id derived from its content, so a retried batch is
///   de-duplicated by BigQuery on a best-effort basis and by
///   [`refresh_texts`](Store::refresh_texts) in any case.
/// - **De-duplication.** [`refresh_texts`](Store::refresh_texts) brings
///   `status_texts` and `statuses_texts` up to date with `tweets`. Existing
///   text ids and join rows are never changed; new texts get ids after the
///   current maximum, in the order of the smallest status id carrying them.
///   It is idempotent, and a crash in the middle leaves either the old or the
///   new state (SQLite, memory) or a state the next call completes (BigQuery).
/// - **Unscored pages.** [`unscored_texts`](Store::unscored_texts) returns
///   texts without a score for the model, in increasing id order, after
///   `query.after`, at most `query.limit`, in `query.shard` only. Fewer than
///   `query.limit` means there were no more when it was read.
/// - **Scores.** [`write_scores`](Store::write_scores) is idempotent: writing
///   the same text's scores twice leaves one row (SQLite, memory), or two rows
///   that every read counts once (BigQuery streaming inserts). A retry may
///   repeat a whole batch; it never loses one silently. It is atomic per batch
///   on SQLite and in memory.
/// - **Validation.** A negative status id, a score row whose length is not
///   the model's number of columns, a score that is not finite, an empty
///   checkpoint hash, or a model table that is not one of
///   `toxdedup::MODEL_TABLES` is an [`Error::InvalidInput`] naming the row,
///   and nothing of the call is written.
/// - **Reads** ([`text_page`](Store::text_page), [`progress`](Store::progress),
///   [`export`](Store::export)) never count a text twice.
/// - Transient failures (network, 429, 5xx, a busy database) are retried
///   inside the backend with a bounded backoff, then surface as
///   [`Error::Unavailable`]: the operation may be retried as a whole.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The tables this store reads and writes.
    fn layout(&self) -> &Layout;

    /// Applies the pending schema migrations, then adopts the tables of the
    /// layout that toxscore did not create: a score table without
    /// `checkpoint_sha256` or `scored_at` gets them as NULLABLE columns, and
    /// nothing else of it changes; a table whose columns do not fit (a
    /// missing class column, a text id that is not INT64) is an
    /// [`Error::Schema`]. With [`MigrateOptions::dry_run`] nothing changes.
    async fn migrate_with(&self, options: MigrateOptions) -> Result<MigrateReport>;

    /// [`migrate_with`](Self::migrate_with) the default options.
    async fn migrate(&self) -> Result<MigrateReport> {
        self.migrate_with(MigrateOptions::default()).await
    }

    /// Imports a batch of tweets into `tweets`.
    async fn import_tweets(&self, tweets: &[Tweet]) -> Result<ImportReport>;

    /// How many tweets an [`import_tweets`](Self::import_tweets) call should
    /// carry: 5,000 by default; BigQuery wants larger calls, each a load job.
    fn import_batch_rows(&self) -> usize {
        5_000
    }

    /// Brings `status_texts` and `statuses_texts` up to date with `tweets`.
    async fn refresh_texts(&self) -> Result<DedupReport>;

    /// Reads a page of `status_texts` in increasing id order: the texts with
    /// an id above `after`, at most `limit`, with their `status_count`.
    async fn text_page(&self, after: Option<TextId>, limit: usize) -> Result<Vec<TextCount>>;

    /// Reads a page of texts the model has not scored.
    async fn unscored_texts(&self, table: &ModelTable, query: UnscoredQuery) -> Result<Vec<TextRow>>;

    /// Writes a batch of scores.
    async fn write_scores(&self, batch: ScoreBatch<'_>) -> Result<()>;

    /// Counts statuses, texts, and scored and remaining texts per model.
    async fn progress(&self) -> Result<Progress>;

    /// Streams one row per status id whose text the model has scored, in
    /// increasing status id order, without holding the export in memory.
    fn export<'a>(&'a self, table: &'a ModelTable) -> BoxStream<'a, Result<ExportRow>>;

    /// Writes the rows of [`export`](Self::export) (`status_id, user_id,
    /// status_text_id`, then the class columns) or of
    /// [`aggregate`](Self::aggregate) (the columns of
    /// `toxdedup::queries::aggregate_columns`) into a table of the store named
    /// `name`, inside the store: on BigQuery with one `CREATE TABLE AS
    /// SELECT`, so no row leaves it. Returns the number of rows.
    ///
    /// A table of that name that an earlier export created is replaced; any
    /// other table of that name is never touched: that is an
    /// [`Error::AlreadyExists`].
    async fn export_to_table(&self, table: &ModelTable, rows: ExportRows, name: &str) -> Result<u64>;

    /// Streams the scored statuses grouped by user or by UTC day, in key
    /// order (`None` first; users by id), computed in the store (SQL on
    /// SQLite and BigQuery): the same numbers on every backend. `threshold`
    /// (for [`AggregateRow::share_toxic`]) must be finite.
    fn aggregate<'a>(
        &'a self,
        table: &'a ModelTable,
        grouping: Grouping,
        threshold: f64,
    ) -> BoxStream<'a, Result<AggregateRow>>;

    /// Sums up one model's scores for a report: users, the checkpoints that
    /// scored, a histogram per class, the top users and the top texts, each
    /// computed in the store (a few small queries on SQLite and BigQuery;
    /// nothing of the size of the data is read out of it). The same numbers
    /// on every backend.
    async fn summary(&self, table: &ModelTable, query: SummaryQuery) -> Result<Summary>;

    /// [`Summary::checkpoints`] alone: which checkpoints scored the model's
    /// texts, most texts first, each text counted once (for the score every
    /// read gives it). One query on SQLite and BigQuery, reading only the
    /// score table.
    async fn checkpoints(&self, table: &ModelTable) -> Result<Vec<CheckpointUse>>;

    /// Draws up to [`SampleQuery::rows`] of the model's stored scores (the
    /// score every read gives a text), with their texts, in the order of
    /// `toxdedup::queries::sample_key`: a seeded pseudo-random sample, the
    /// same texts on every backend for a seed. For checking stored scores
    /// against the model (`toxcli verify`). One query on SQLite and BigQuery
    /// (there: the score table, then the drawn texts alone).
    async fn sample_scores(&self, table: &ModelTable, query: SampleQuery) -> Result<Vec<StoredScore>>;
}
