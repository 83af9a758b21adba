//! The BigQuery backend: streaming inserts for tweets and scores, DML for
//! de-duplication, paged queries for every read.
//!
//! ```no_run
//! # async fn example() -> toxstore::Result<()> {
//! use toxstore::Store;
//! use toxstore::bigquery::{BigQuery, BigQueryConfig, Credentials};
//! // The key file is the path that GOOGLE_APPLICATION_CREDENTIALS names; the
//! // caller reads the variable, this crate does not.
//! let config = BigQueryConfig::new(
//!     None, // the project: from the key file
//!     "toxscore",
//!     Credentials::ServiceAccountKeyFile("/secrets/key.json".into()),
//! );
//! let store = BigQuery::connect(config).await?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```
//!
//! # Invariants
//! - Every project, dataset, location and endpoint is checked (see
//!   `names`) before a URL or SQL text is built from it; quotes, backticks,
//!   semicolons and spaces never pass. Tables come from `toxdedup::schema`;
//!   numbers are written into SQL as typed integers; texts never enter SQL
//!   text: they travel as streamed JSON rows.
//! - Streaming inserts may repeat rows (insert ids de-duplicate on a
//!   best-effort basis only), so every read counts a `(status_id,
//!   status_text)` pair, a text and a score once (the queries of
//!   `toxdedup::queries`), and the export takes one score per text: the latest
//!   `scored_at`.
//! - Every 200 answer is checked: per-row `insertErrors` are retried or
//!   reported, never dropped; SQL errors in a 200 body are errors.
//! - 429, 5xx, connection failures and timeouts are retried with bounded
//!   exponential backoff and jitter ([`RetryPolicy`]), then become
//!   [`Error::Unavailable`]; refused credentials are
//!   [`Error::Unauthenticated`], whose message names the setting to check
//!   and never the token.
//!
//! # Costs and speed
//! BigQuery has no indexes and bills the bytes of the columns a query reads.
//! [`import_tweets`](Store::import_tweets) runs one query per call (per
//! 10,000 tweets) reading `tweets.status_id` (8 bytes a row) to find the
//! pairs already present, and reads texts only for ids that are; an import
//! of 67M tweets in calls of 5,000 reads about 3.6 TB in all (calls of
//! 50,000: a tenth of that). Streaming inserts go 500 rows a request, 4
//! requests in flight. Each query job costs about a second of latency on
//! BigQuery, so readers should take large pages.
//!
//! # The emulator
//! The tests run against the `bqemulator` emulator (see `cargo xtask test`).
//! It differs from BigQuery in ways this backend absorbs: it ignores insert
//! ids (repeated rows land, and the reads count them once), it answers SQL
//! errors with HTTP 200 and an `errors` array (turned into errors here), and
//! it ignores `defaultDataset` (every table is written `dataset.table`).

mod auth;
mod names;
mod rest;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use toxdedup::dedup::MAX_CONFLICT_EXAMPLES;
use toxdedup::migrations::{AppliedMigration, Dialect, MigrationPlan, bootstrap_sql, substitute_dataset};
use toxdedup::queries::{self, Affects};
use toxdedup::schema::{MIGRATIONS, TWEETS};
use toxdedup::{Conflict, DedupReport, MODEL_TABLES, ModelTable};

pub use auth::Credentials;
pub use rest::RetryPolicy;
use rest::{InsertRow, QueryPage, Rest};

use crate::{
    Error, ExportRow, ImportReport, MigrateReport, ModelProgress, Progress, Result, ScoreBatch, Store, TextCount,
    TextId, TextRow, Tweet, UnscoredQuery, validate,
};

const BACKEND: &str = "bigquery";

/// BigQuery's TIMESTAMP range: 0001-01-01 to 9999-12-31 23:59:59.999999 UTC.
const MIN_TIMESTAMP_MICROS: i64 = -62_135_596_800_000_000;
const MAX_TIMESTAMP_MICROS: i64 = 253_402_300_799_999_999;

/// Status ids per existence check of an import: one query per 10,000
/// tweets (an array parameter of about 200 KB).
const IMPORT_CHECK_IDS: usize = 10_000;

/// How to reach a dataset.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BigQueryConfig {
    /// The Google Cloud project; `None` takes the `project_id` of the
    /// service-account key file.
    pub project: Option<String>,
    /// The dataset holding toxscore's tables; created by
    /// [`migrate`](Store::migrate) if missing.
    pub dataset: String,
    /// Another endpoint than Google's, such as an emulator: its root URL
    /// (`http://127.0.0.1:9050`) or its REST base ending with `/bigquery/v2`.
    pub endpoint: Option<String>,
    /// Where a new dataset is created (`US`, `EU`, `europe-west1`...);
    /// BigQuery's default when `None`.
    pub location: Option<String>,
    /// How to authenticate.
    pub credentials: Credentials,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// The longest one HTTP request may take.
    pub request_timeout: Duration,
    /// Rows per page of the export, which holds one page in memory at a time.
    pub export_page_rows: u32,
}

impl BigQueryConfig {
    /// A configuration for Google's endpoint, with the default retry policy
    /// and a 120 s request timeout.
    pub fn new(project: Option<String>, dataset: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            project,
            dataset: dataset.into(),
            endpoint: None,
            location: None,
            credentials,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(120),
            export_page_rows: 10_000,
        }
    }

    /// A configuration for an emulator at `endpoint` (for example
    /// `http://127.0.0.1:9050`), with a constant token, which an emulator
    /// ignores.
    pub fn emulator(endpoint: impl Into<String>, project: impl Into<String>, dataset: impl Into<String>) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            ..Self::new(Some(project.into()), dataset, Credentials::StaticToken("emulator".to_owned()))
        }
    }

    /// Sets the endpoint.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the location of a new dataset.
    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the rows per page of the export (at least 1).
    pub fn with_export_page_rows(mut self, rows: u32) -> Self {
        self.export_page_rows = rows.max(1);
        self
    }

    /// Sets the timeout of one HTTP request.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

/// A toxscore store in one BigQuery dataset.
#[derive(Debug)]
pub struct BigQuery {
    rest: Rest,
    project: String,
    dataset: String,
    location: Option<String>,
    export_page_rows: u32,
}

impl BigQuery {
    /// Checks the names, reads the credentials and prepares the client. No
    /// request is made yet: the dataset need not exist until
    /// [`migrate`](Store::migrate).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming a bad project, dataset, location or
    /// endpoint; [`Error::Unauthenticated`] for unreadable credentials.
    pub async fn connect(config: BigQueryConfig) -> Result<Self> {
        names::dataset(&config.dataset)?;
        if let Some(project) = &config.project {
            names::project(project)?;
        }
        if let Some(location) = &config.location {
            names::location(location)?;
        }
        let base_url = match &config.endpoint {
            Some(endpoint) => names::endpoint(endpoint)?,
            None => "https://bigquery.googleapis.com/bigquery/v2".to_owned(),
        };
        let tokens = auth::token_source(&config.credentials).await?;
        let project = match config.project.or(tokens.key_project) {
            Some(project) => project,
            None => {
                return Err(Error::InvalidInput {
                    what: format!(
                        "no BigQuery project for dataset {}: name it (bigquery:PROJECT.DATASET), \
                         or use a service-account key file that names one",
                        config.dataset
                    ),
                });
            }
        };
        names::project(&project)?;
        let rest = Rest::new(
            &base_url,
            project.clone(),
            tokens.authenticator,
            config.credentials.hint(),
            config.retry,
            config.request_timeout,
        )?;
        Ok(Self {
            rest,
            project,
            dataset: config.dataset,
            location: config.location,
            export_page_rows: config.export_page_rows.max(1),
        })
    }

    /// The project.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The dataset.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// `{dataset}` replaced by the (checked) dataset.
    fn sql(&self, text: &str) -> Result<String> {
        substitute_dataset(text, &self.dataset).map_err(|error| Error::InvalidInput { what: error.to_string() })
    }

    async fn query_all(&self, text: &str) -> Result<QueryPage> {
        self.rest.query_all(&self.sql(text)?, &[]).await
    }

    /// The migrations recorded in the dataset.
    async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>> {
        let page = self
            .query_all(&format!(
                "SELECT version AS version, name AS name, checksum AS checksum FROM {{dataset}}.{MIGRATIONS}"
            ))
            .await?;
        page.rows
            .iter()
            .map(|row| {
                Ok(AppliedMigration {
                    version: u32::try_from(int(row, 0, "version")?).map_err(|_| bad_value("version", row))?,
                    name: text(row, 1, "name")?,
                    checksum: text(row, 2, "checksum")?,
                })
            })
            .collect()
    }

    /// The distinct `(status_id, status_text)` pairs already in `tweets` for
    /// these status ids (at most [`IMPORT_CHECK_IDS`]).
    ///
    /// BigQuery has no indexes: a query bills every byte of the columns it
    /// reads. The first query reads only `status_id` (8 bytes a row); the
    /// texts are read only when some of the ids are present already, which
    /// is rare outside a re-import.
    async fn existing_pairs(&self, status_ids: &BTreeSet<i64>) -> Result<BTreeSet<(i64, String)>> {
        // The ids travel as an array parameter: no SQL text grows with them.
        let ids_query = |columns: &str| {
            self.sql(&format!("SELECT DISTINCT {columns} FROM {{dataset}}.{TWEETS} WHERE status_id IN UNNEST(@ids)"))
        };
        let page = self
            .rest
            .query_all(&ids_query("status_id AS status_id")?, &[rest::int64_array("ids", status_ids.iter().copied())])
            .await?;
        let present: Vec<i64> = page.rows.iter().map(|row| int(row, 0, "status_id")).collect::<Result<_>>()?;
        let mut pairs = BTreeSet::new();
        if present.is_empty() {
            return Ok(pairs);
        }
        let page = self
            .rest
            .query_all(
                &ids_query("status_id AS status_id, status_text AS status_text")?,
                &[rest::int64_array("ids", present)],
            )
            .await?;
        for row in &page.rows {
            pairs.insert((int(row, 0, "status_id")?, text(row, 1, "status_text")?));
        }
        Ok(pairs)
    }

    /// One page of the export, and where the next one is.
    async fn export_page(
        &self,
        table: &'static ModelTable,
        next: Option<rest::NextPage>,
    ) -> Result<(Vec<ExportRow>, Option<rest::NextPage>)> {
        let page = match next {
            None => {
                self.rest
                    .query(&self.sql(&queries::export(Dialect::BigQuery, table))?, Some(self.export_page_rows))
                    .await?
            }
            Some(next) => self.rest.next_page(&next, Some(self.export_page_rows)).await?,
        };
        let n_columns = table.columns.len();
        let rows = page
            .rows
            .iter()
            .map(|row| {
                Ok(ExportRow {
                    status_id: int(row, 0, "status_id")?,
                    user_id: int(row, 1, "user_id")?,
                    status_text_id: int(row, 2, "status_text_id")?,
                    scores: (0..n_columns)
                        .map(|column| float(row, 3 + column, table.columns[column]))
                        .collect::<Result<_>>()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((rows, page.next))
    }
}

#[async_trait]
impl Store for BigQuery {
    async fn migrate(&self) -> Result<MigrateReport> {
        self.rest.create_dataset(&self.dataset, self.location.as_deref()).await?;
        self.rest.query(&self.sql(bootstrap_sql(Dialect::BigQuery))?, None).await?;
        let records = self.applied_migrations().await?;
        let plan = MigrationPlan::new(Dialect::BigQuery, &records)?;
        let mut report = MigrateReport {
            applied: Vec::new(),
            already_applied: plan.applied.iter().map(|migration| migration.name.to_owned()).collect(),
        };
        for migration in plan.pending {
            // BigQuery has no transactions around DDL; the files use
            // `CREATE TABLE IF NOT EXISTS`, so a migration cut in the middle
            // is completed by the next call.
            for statement in migration.statements() {
                self.rest.query(&self.sql(statement)?, None).await?;
            }
            let record = AppliedMigration::of(migration);
            // Embedded file names and hex checksums: checked anyway, as they
            // are written into the SQL text.
            let safe = |value: &str| value.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"_.-".contains(&byte));
            if !safe(&record.name) || !safe(&record.checksum) {
                return Err(Error::InvalidInput { what: format!("migration file name {:?}", record.name) });
            }
            // DML, not a streaming insert, so the record is visible at once.
            self.rest
                .query(
                    &self.sql(&format!(
                        "INSERT INTO {{dataset}}.{MIGRATIONS} (version, name, checksum, applied_at) \
                         VALUES ({}, '{}', '{}', CURRENT_TIMESTAMP())",
                        record.version, record.name, record.checksum
                    ))?,
                    None,
                )
                .await?;
            report.applied.push(migration.name.to_owned());
        }
        Ok(report)
    }

    async fn import_tweets(&self, tweets: &[Tweet]) -> Result<ImportReport> {
        validate::tweets(tweets)?;
        for (index, tweet) in tweets.iter().enumerate() {
            if let Some(micros) = tweet.created_at
                && !(MIN_TIMESTAMP_MICROS..=MAX_TIMESTAMP_MICROS).contains(&micros)
            {
                return Err(Error::InvalidInput {
                    what: format!(
                        "tweet {index} of the batch (status id {}) has created_at {micros} microseconds, \
                         outside BigQuery's TIMESTAMP range (years 1 to 9999)",
                        tweet.status_id
                    ),
                });
            }
        }
        // The first row of each pair, in input order.
        let mut seen = BTreeSet::new();
        let mut unique: Vec<&Tweet> = Vec::with_capacity(tweets.len());
        for tweet in tweets {
            if seen.insert((tweet.status_id, tweet.status_text.as_str())) {
                unique.push(tweet);
            }
        }
        let mut report = ImportReport { inserted: 0, already_present: (tweets.len() - unique.len()) as u64 };
        for chunk in unique.chunks(IMPORT_CHECK_IDS) {
            let ids: BTreeSet<i64> = chunk.iter().map(|tweet| tweet.status_id).collect();
            let existing = self.existing_pairs(&ids).await?;
            let mut rows = Vec::with_capacity(chunk.len());
            for tweet in chunk {
                if existing.contains(&(tweet.status_id, tweet.status_text.clone())) {
                    report.already_present += 1;
                } else {
                    rows.push(tweet_row(tweet));
                }
            }
            self.rest.insert_all(&self.dataset, TWEETS, &rows).await?;
            report.inserted += rows.len() as u64;
        }
        Ok(report)
    }

    async fn refresh_texts(&self) -> Result<DedupReport> {
        let mut report = DedupReport::default();
        for statement in queries::refresh(Dialect::BigQuery) {
            let page = self.rest.query(&self.sql(&statement.sql)?, None).await?;
            let affected = page.affected_rows.unwrap_or(0);
            match statement.affects {
                Affects::NewTexts => report.new_texts += affected,
                Affects::NewStatuses => report.new_statuses += affected,
                Affects::Nothing => {}
            }
        }
        let page = self.query_all(&queries::conflict_count(Dialect::BigQuery)).await?;
        report.conflicts = match page.rows.first() {
            Some(row) => u64::try_from(int(row, 0, "conflicts")?).unwrap_or(0),
            None => 0,
        };
        if report.conflicts > 0 {
            let page = self.query_all(&queries::conflict_examples(Dialect::BigQuery, MAX_CONFLICT_EXAMPLES)).await?;
            report.conflict_examples = page
                .rows
                .iter()
                .map(|row| {
                    Ok(Conflict {
                        status_id: int(row, 0, "status_id")?,
                        kept: text(row, 1, "kept")?,
                        rejected: text(row, 2, "rejected")?,
                    })
                })
                .collect::<Result<_>>()?;
        }
        Ok(report)
    }

    async fn text_page(&self, after: Option<TextId>, limit: usize) -> Result<Vec<TextCount>> {
        let page = self.query_all(&queries::text_page(Dialect::BigQuery, after, limit)).await?;
        page.rows
            .iter()
            .map(|row| {
                Ok(TextCount {
                    status_text_id: int(row, 0, "status_text_id")?,
                    status_text: text(row, 1, "status_text")?,
                    status_count: u64::try_from(int(row, 2, "status_count")?)
                        .map_err(|_| bad_value("status_count", row))?,
                })
            })
            .collect()
    }

    async fn unscored_texts(&self, table: &'static ModelTable, query: UnscoredQuery) -> Result<Vec<TextRow>> {
        validate::model_table(table)?;
        let shard = query.shard.map(|shard| (shard.index, shard.count));
        let page =
            self.query_all(&queries::unscored(Dialect::BigQuery, table, query.after, query.limit, shard)).await?;
        page.rows
            .iter()
            .map(|row| {
                Ok(TextRow {
                    status_text_id: int(row, 0, "status_text_id")?,
                    status_text: text(row, 1, "status_text")?,
                })
            })
            .collect()
    }

    async fn write_scores(&self, batch: ScoreBatch<'_>) -> Result<()> {
        validate::score_batch(&batch)?;
        if batch.rows.is_empty() {
            return Ok(());
        }
        let scored_at = format_timestamp(next_timestamp_micros());
        let rows: Vec<InsertRow> = batch
            .rows
            .iter()
            .map(|row| {
                let mut json = serde_json::Map::new();
                json.insert("status_text_id".into(), json!(row.status_text_id.to_string()));
                for (column, score) in batch.table.columns.iter().zip(&row.scores) {
                    json.insert((*column).into(), json!(score));
                }
                json.insert("checkpoint_sha256".into(), json!(batch.checkpoint_sha256));
                json.insert("scored_at".into(), json!(scored_at));
                InsertRow {
                    insert_id: score_insert_id(batch.table, batch.checkpoint_sha256, row),
                    json: Value::Object(json),
                }
            })
            .collect();
        self.rest.insert_all(&self.dataset, batch.table.table, &rows).await
    }

    async fn progress(&self) -> Result<Progress> {
        let page = self.query_all(&queries::progress(Dialect::BigQuery)).await?;
        let row = page.rows.first().ok_or_else(|| Error::Backend {
            backend: BACKEND,
            what: "the progress query returned no row".to_owned(),
            source: None,
        })?;
        let count = |index: usize, name: &str| -> Result<u64> {
            u64::try_from(int(row, index, name)?).map_err(|_| bad_value(name, row))
        };
        let statuses = count(0, "statuses")?;
        let texts = count(1, "texts")?;
        let models = MODEL_TABLES
            .iter()
            .enumerate()
            .map(|(index, table)| {
                let scored = count(2 + index, table.table)?;
                Ok(ModelProgress { model: table.model.to_owned(), scored, remaining: texts.saturating_sub(scored) })
            })
            .collect::<Result<_>>()?;
        Ok(Progress { statuses, texts, models })
    }

    fn export(&self, table: &'static ModelTable) -> BoxStream<'_, Result<ExportRow>> {
        if let Err(error) = validate::model_table(table) {
            return stream::once(async move { Err(error) }).boxed();
        }
        // One page in memory at a time: the first from jobs.query, the rest
        // from getQueryResults with the page token.
        enum State {
            First,
            Next(rest::NextPage),
            Done,
        }
        stream::try_unfold(State::First, move |state| async move {
            let next = match state {
                State::Done => return Ok::<_, Error>(None),
                State::First => None,
                State::Next(next) => Some(next),
            };
            let (rows, next) = self.export_page(table, next).await?;
            let state = next.map_or(State::Done, State::Next);
            Ok(Some((stream::iter(rows.into_iter().map(Ok::<_, Error>)), state)))
        })
        .try_flatten()
        .boxed()
    }
}

/// A tweet as a streamed row. INT64 values travel as strings: the API reads
/// JSON numbers as doubles, which would round ids above 2^53.
fn tweet_row(tweet: &Tweet) -> InsertRow {
    let mut hasher = Sha256::new();
    for part in [
        b"tweet".as_slice(),
        &tweet.status_id.to_be_bytes(),
        &tweet.user_id.to_be_bytes(),
        &tweet.created_at.map_or([0xff; 9], |micros| {
            let mut bytes = [0; 9];
            bytes[1..].copy_from_slice(&micros.to_be_bytes());
            bytes
        }),
        tweet.status_text.as_bytes(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    InsertRow {
        insert_id: hex::encode(hasher.finalize()),
        json: json!({
            "status_id": tweet.status_id.to_string(),
            "user_id": tweet.user_id.to_string(),
            "status_text": tweet.status_text,
            "created_at": tweet.created_at.map(format_timestamp),
        }),
    }
}

/// The insert id of a score row: the model, the text and the values. A
/// retried batch repeats its ids, so BigQuery may drop the repeats; a
/// rewrite with other values gets another id, so it is never mistaken for a
/// repeat and dropped.
fn score_insert_id(table: &ModelTable, checkpoint_sha256: &str, row: &crate::ScoreRow) -> String {
    let mut hasher = Sha256::new();
    for part in
        [b"score".as_slice(), table.table.as_bytes(), &row.status_text_id.to_be_bytes(), checkpoint_sha256.as_bytes()]
    {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    for score in &row.scores {
        hasher.update(score.to_bits().to_be_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Now in microseconds, strictly increasing within the process, so that a
/// rewrite made right after a write always has the later `scored_at`.
fn next_timestamp_micros() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_micros() as i64);
    let previous = LAST.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now.max(last + 1))).unwrap_or(now);
    now.max(previous + 1)
}

/// `YYYY-MM-DD HH:MM:SS.ffffff UTC`, as BigQuery parses a TIMESTAMP.
fn format_timestamp(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{fraction:06} UTC",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

fn bad_value(column: &str, row: &[Option<String>]) -> Error {
    Error::Backend {
        backend: BACKEND,
        what: format!("unexpected value in column {column} of the row {row:?}"),
        source: None,
    }
}

fn cell<'a>(row: &'a [Option<String>], index: usize, column: &str) -> Result<&'a str> {
    match row.get(index) {
        Some(Some(value)) => Ok(value),
        _ => Err(bad_value(column, row)),
    }
}

fn int(row: &[Option<String>], index: usize, column: &str) -> Result<i64> {
    let value = cell(row, index, column)?;
    // INT64 comes as a decimal string; an emulator may write `3.0`.
    value
        .parse::<i64>()
        .ok()
        .or_else(|| {
            value
                .parse::<f64>()
                .ok()
                .filter(|float| float.fract() == 0.0 && float.abs() < 9.0e15)
                .map(|float| float as i64)
        })
        .ok_or_else(|| bad_value(column, row))
}

fn float(row: &[Option<String>], index: usize, column: &str) -> Result<f64> {
    cell(row, index, column)?.parse().map_err(|_| bad_value(column, row))
}

fn text(row: &[Option<String>], index: usize, column: &str) -> Result<String> {
    cell(row, index, column).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_bigquery_reads_them() {
        let check = |micros: i64, expected: &str| assert_eq!(format_timestamp(micros), expected, "{micros}");
        check(0, "1970-01-01 00:00:00.000000 UTC");
        check(1_600_000_000_000_001, "2020-09-13 12:26:40.000001 UTC");
        check(951_782_400_000_000, "2000-02-29 00:00:00.000000 UTC");
        check(-1, "1969-12-31 23:59:59.999999 UTC");
        check(MAX_TIMESTAMP_MICROS, "9999-12-31 23:59:59.999999 UTC");
        check(MIN_TIMESTAMP_MICROS, "0001-01-01 00:00:00.000000 UTC");
    }

    #[test]
    fn timestamps_strictly_increase() {
        let first = next_timestamp_micros();
        let second = next_timestamp_micros();
        assert!(second > first);
    }

    #[test]
    fn insert_ids_follow_content() {
        let tweet = |status_id, text: &str| Tweet { status_id, user_id: 1, status_text: text.into(), created_at: None };
        assert_eq!(tweet_row(&tweet(1, "a")).insert_id, tweet_row(&tweet(1, "a")).insert_id);
        assert_ne!(tweet_row(&tweet(1, "a")).insert_id, tweet_row(&tweet(1, "b")).insert_id);
        assert_ne!(tweet_row(&tweet(1, "a")).insert_id, tweet_row(&tweet(2, "a")).insert_id);
        assert_eq!(tweet_row(&tweet(i64::MAX, "a")).json["status_id"], i64::MAX.to_string());
        let table = &MODEL_TABLES[0];
        let row = |id, score| crate::ScoreRow { status_text_id: id, scores: vec![score; table.columns.len()] };
        assert_eq!(score_insert_id(table, "c", &row(1, 0.5)), score_insert_id(table, "c", &row(1, 0.5)));
        assert_ne!(score_insert_id(table, "c", &row(1, 0.5)), score_insert_id(table, "c", &row(1, 0.25)));
        assert_ne!(score_insert_id(table, "c", &row(1, 0.5)), score_insert_id(table, "c", &row(2, 0.5)));
        assert_ne!(score_insert_id(table, "c", &row(1, 0.5)), score_insert_id(&MODEL_TABLES[3], "c", &row(1, 0.5)));
    }

    #[tokio::test]
    async fn bad_names_are_refused_before_anything_is_built() {
        for (project, dataset, endpoint) in [
            ("test-project", "tox`score", "http://127.0.0.1:1"),
            ("test-project", "tox; DROP TABLE x", "http://127.0.0.1:1"),
            ("test-project", "tox score", "http://127.0.0.1:1"),
            ("test-project", "tox'score", "http://127.0.0.1:1"),
            ("test project", "toxscore", "http://127.0.0.1:1"),
            ("test-project\"", "toxscore", "http://127.0.0.1:1"),
            ("test-project", "toxscore", "http://127.0.0.1:1/v1"),
        ] {
            let error =
                BigQuery::connect(BigQueryConfig::emulator(endpoint, project, dataset)).await.expect_err("a bad name");
            assert!(matches!(error, Error::InvalidInput { .. }), "{error:?}");
        }
    }

    #[tokio::test]
    async fn a_project_is_required_without_a_key_file() {
        let config = BigQueryConfig::new(None, "toxscore", Credentials::StaticToken("t".into()));
        let error = BigQuery::connect(config).await.expect_err("no project");
        assert!(matches!(&error, Error::InvalidInput { what } if what.contains("PROJECT")), "{error:?}");
    }
}
