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
//!   reported, never dropped; SQL errors in a 200 body are errors. A `no such
//!   field` for a field the table has (checked first with `tables.get`) is
//!   retried: streaming sees a column `migrate` just added minutes late.
//! - 429, 5xx, connection failures and timeouts are retried with bounded
//!   exponential backoff and jitter ([`RetryPolicy`]), then become
//!   [`Error::Unavailable`]; refused credentials are
//!   [`Error::Unauthenticated`], whose message names the setting to check
//!   and never the token.
//!
//! # Costs and speed
//! BigQuery has no indexes and bills the bytes of the columns a query reads.
//! [`import_tweets`](Store::import_tweets) runs one query per 10,000 tweets,
//! whatever the call's size, reading `tweets.status_id` (8 bytes a row; the
//! Python pipeline's STRING ids about 20) to find the pairs already
//! present, and reads texts only for ids that are; an import of 67M tweets
//! into a table of 67M STRING ids reads about 9 TB in all. Streaming inserts go 500 rows a request, 4
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
use toxdedup::schema::{EXPORTS, MIGRATIONS, STATUS_TEXTS, STATUSES_TEXTS, TWEETS};
use toxdedup::{Conflict, DedupReport, MODEL_TABLES, ModelTable};

pub use auth::Credentials;
use rest::{Column, InsertRow, QueryPage, Rest};
pub use rest::{RequestLog, RetryPolicy};

use crate::{
    AggregateRow, CheckpointUse, Error, ExportRow, ExportRows, Grouping, ImportReport, Layout, MigrateOptions,
    MigrateReport, ModelProgress, Progress, Result, SampleQuery, ScoreBatch, Store, StoredScore, Summary, SummaryQuery,
    TextCount, TextId, TextRow, TopText, Tweet, UnscoredQuery, validate,
};

const BACKEND: &str = "bigquery";

/// BigQuery's TIMESTAMP range: 0001-01-01 to 9999-12-31 23:59:59.999999 UTC.
const MIN_TIMESTAMP_MICROS: i64 = -62_135_596_800_000_000;
const MAX_TIMESTAMP_MICROS: i64 = 253_402_300_799_999_999;

/// Status ids per existence check of an import: one query per 10,000
/// tweets (an array parameter of about 200 KB).
const IMPORT_CHECK_IDS: usize = 10_000;

/// From this many new rows in one import call on, the rows go in one load
/// job (free, atomic, no streaming buffer) rather than streaming inserts
/// (billed per byte, visible at once, best-effort de-duplication). BigQuery
/// allows 1,500 load jobs per table a day, so callers should send large
/// batches (`toxcli import` sends 200,000 rows a call).
pub const LOAD_JOB_MIN_ROWS: usize = 1_000;

/// Tweets per import call ([`Store::import_batch_rows`]): 67M tweets in 340
/// load jobs, each about 40 MB of JSON.
const IMPORT_BATCH_ROWS: usize = 200_000;

/// The columns toxscore adds to a score table the Python pipeline made.
const BOOKKEEPING_COLUMNS: [(&str, &str); 2] = [("checkpoint_sha256", "STRING"), ("scored_at", "TIMESTAMP")];

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
    /// The dataset's tables, when the Python pipeline made them.
    pub layout: Layout,
    /// Where every statement and insert is recorded, if anywhere.
    pub request_log: Option<RequestLog>,
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
            layout: Layout::default(),
            request_log: None,
        }
    }

    /// Sets the layout: renamed score tables, a tweets table elsewhere.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Records every statement and insert in `log`, one JSON object a line.
    pub fn with_request_log(mut self, log: RequestLog) -> Self {
        self.request_log = Some(log);
        self
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
    layout: Layout,
    /// `tables.get` answers, by table: the insert checks read them.
    columns: std::sync::Mutex<std::collections::HashMap<String, Vec<Column>>>,
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
        config.layout.validate()?;
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
        )?
        .with_log(config.request_log);
        Ok(Self {
            rest,
            project,
            dataset: config.dataset,
            location: config.location,
            export_page_rows: config.export_page_rows.max(1),
            layout: config.layout,
            columns: std::sync::Mutex::default(),
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
        // `tweets` may be the Python pipeline's, with STRING ids: SAFE_CAST
        // types the comparison for both (BigQuery refuses STRING = INT64).
        let ids_query = |columns: &str| {
            self.sql(&format!(
                "SELECT DISTINCT {columns} FROM {{dataset}}.{TWEETS} WHERE SAFE_CAST(status_id AS INT64) IN UNNEST(@ids)"
            ))
        };
        let page = self
            .rest
            .query_all(
                &ids_query("SAFE_CAST(status_id AS INT64) AS status_id")?,
                &[rest::int64_array("ids", status_ids.iter().copied())],
            )
            .await?;
        let present: Vec<i64> = page.rows.iter().map(|row| int(row, 0, "status_id")).collect::<Result<_>>()?;
        let mut pairs = BTreeSet::new();
        if present.is_empty() {
            return Ok(pairs);
        }
        let page = self
            .rest
            .query_all(
                &ids_query("SAFE_CAST(status_id AS INT64) AS status_id, status_text AS status_text")?,
                &[rest::int64_array("ids", present)],
            )
            .await?;
        for row in &page.rows {
            pairs.insert((int(row, 0, "status_id")?, text(row, 1, "status_text")?));
        }
        Ok(pairs)
    }

    /// A table's columns (`tables.get`, cached), `None` if it does not exist.
    async fn columns_of(&self, table: &str) -> Result<Option<Vec<Column>>> {
        if let Some(columns) = self.columns.lock().ok().and_then(|cache| cache.get(table).cloned()) {
            return Ok(Some(columns));
        }
        let columns = self.rest.table_columns(None, &self.dataset, table).await?;
        if let (Some(columns), Ok(mut cache)) = (&columns, self.columns.lock()) {
            cache.insert(table.to_owned(), columns.clone());
        }
        Ok(columns)
    }

    fn forget_columns(&self) {
        if let Ok(mut cache) = self.columns.lock() {
            cache.clear();
        }
    }

    /// Checks that `table` has every field the rows name, before they are
    /// sent: BigQuery refuses a row with an unknown field (the emulator drops
    /// the field silently), and toxscore would rather say which column is
    /// missing, once, than have every row refused.
    async fn check_insert_fields(&self, table: &str, fields: &[&str]) -> Result<()> {
        let Some(columns) = self.columns_of(table).await? else {
            return Err(Error::NotFound {
                what: format!("table {}.{table} (run migrate first)", self.dataset),
                source: None,
            });
        };
        let missing: Vec<&str> =
            fields.iter().copied().filter(|field| !columns.iter().any(|column| column.name == *field)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::Schema {
            table: format!("{}.{table}", self.dataset),
            problem: format!(
                "it has no column {} for the rows toxscore writes (its columns: {}); `toxcli migrate` adds \
                 toxscore's bookkeeping columns to score tables it adopts",
                missing.join(", "),
                columns.iter().map(|column| column.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Adopts the score tables that exist without toxscore's bookkeeping
    /// columns (the Python pipeline's), and checks that every table the
    /// layout reads has the columns and types toxscore needs.
    async fn adopt(&self, dry_run: bool, report: &mut MigrateReport) -> Result<()> {
        let schema_error =
            |table: &str, problem: String| Error::Schema { table: format!("{}.{table}", self.dataset), problem };
        for table in self.layout.all_score_tables() {
            let renamed = !MODEL_TABLES.contains(&table);
            let Some(columns) = self.rest.table_columns(None, &self.dataset, &table.table).await? else {
                if renamed {
                    return Err(schema_error(
                        &table.table,
                        format!(
                            "it does not exist; --score-table names an existing score table of model {}",
                            table.model
                        ),
                    ));
                }
                // Created by a pending migration (in a dry run).
                continue;
            };
            let type_of = |name: &str| columns.iter().find(|column| column.name == name).map(Column::sql_type);
            match type_of("status_text_id") {
                Some("INT64") => {}
                found => {
                    return Err(schema_error(
                        &table.table,
                        format!("status_text_id must be INT64, found {}", found.unwrap_or("no such column")),
                    ));
                }
            }
            for class in table.columns {
                match type_of(class) {
                    Some("FLOAT64" | "NUMERIC" | "BIGNUMERIC") => {}
                    found => {
                        return Err(schema_error(
                            &table.table,
                            format!(
                                "model {}'s class column {class} must be FLOAT64, found {} (its classes: {})",
                                table.model,
                                found.unwrap_or("no such column"),
                                table.columns.join(", ")
                            ),
                        ));
                    }
                }
            }
            let missing: Vec<(&str, &str)> =
                BOOKKEEPING_COLUMNS.iter().copied().filter(|(name, _)| type_of(name).is_none()).collect();
            if missing.is_empty() {
                continue;
            }
            for (name, column_type) in &missing {
                // One column per statement: the emulator takes no more.
                let statement = format!(
                    "ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS {name} {column_type}",
                    self.dataset, table.table
                );
                if !dry_run {
                    self.rest.query(&statement, None).await?;
                }
                report.statements.push(statement);
            }
            if !dry_run {
                // The emulator's tables.get (and its insertAll) do not see
                // columns added by DDL until the schema is patched too; on
                // BigQuery the columns are there already and nothing is sent.
                let current = self.rest.table_columns(None, &self.dataset, &table.table).await?.unwrap_or_default();
                let unseen: Vec<(&str, &str)> = missing
                    .iter()
                    .copied()
                    .filter(|(name, _)| !current.iter().any(|column| column.name == *name))
                    .collect();
                if !unseen.is_empty() {
                    self.rest.add_nullable_columns(&self.dataset, &table.table, &current, &unseen).await?;
                }
            }
            report.adopted.push(format!(
                "{}.{}: {} NULLABLE {} (rows scored before toxscore keep NULL there, and count as older than any toxscore row)",
                self.dataset,
                table.table,
                if dry_run { "would add" } else { "added" },
                missing.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(" and ")
            ));
        }
        self.forget_columns();
        self.check_tweets_source().await?;
        for (table, column) in
            [(STATUSES_TEXTS, "status_id"), (STATUSES_TEXTS, "status_text_id"), (STATUS_TEXTS, "status_text_id")]
        {
            if let Some(columns) = self.rest.table_columns(None, &self.dataset, table).await? {
                let found = columns.iter().find(|c| c.name == column).map(Column::sql_type);
                if found != Some("INT64") {
                    return Err(schema_error(
                        table,
                        format!("{column} must be INT64, found {}", found.unwrap_or("no such column")),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks that the tweets source has the mapped columns, with ids that
    /// are INT64 or STRING (read with `SAFE_CAST`).
    async fn check_tweets_source(&self) -> Result<()> {
        let source = &self.layout.tweets;
        let (project, dataset, table) = match &source.table {
            Some(table) => (table.project.as_deref(), table.dataset.as_str(), table.table.as_str()),
            None => (None, self.dataset.as_str(), TWEETS),
        };
        let name = match project {
            Some(project) => format!("{project}.{dataset}.{table}"),
            None => format!("{dataset}.{table}"),
        };
        let Some(columns) = self.rest.table_columns(project, dataset, table).await? else {
            if source.table.is_some() {
                return Err(Error::NotFound { what: format!("tweets table {name} (--tweets-table)"), source: None });
            }
            // toxscore's own, created by a pending migration (in a dry run).
            return Ok(());
        };
        let mut checks = vec![
            (&source.status_id, &["INT64", "STRING"][..], "--status-id-column"),
            (&source.user_id, &["INT64", "STRING"][..], "--user-id-column"),
            (&source.status_text, &["STRING"][..], "--text-column"),
        ];
        if let Some(created_at) = &source.created_at {
            checks.push((created_at, &["TIMESTAMP"][..], "--created-at-column"));
        }
        for (column, types, flag) in checks {
            let found = columns.iter().find(|c| &c.name == column).map(Column::sql_type);
            if !found.is_some_and(|found| types.contains(&found)) {
                return Err(Error::Schema {
                    table: name.clone(),
                    problem: format!(
                        "column {column} must be {}, found {} (name the right column with {flag}; its columns: {})",
                        types.join(" or "),
                        found.unwrap_or("no such column"),
                        columns.iter().map(|c| format!("{} {}", c.name, c.sql_type())).collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// One page of the export, and where the next one is.
    /// Streams the rows of a query page by page (one page in memory at a
    /// time: the first from jobs.query, the rest from getQueryResults with
    /// the page token), each parsed by `parse`.
    fn paged<'a, T, F>(&'a self, sql: Result<String>, parse: F) -> BoxStream<'a, Result<T>>
    where
        T: Send + 'a,
        F: Fn(&[Option<String>]) -> Result<T> + Send + Sync + 'a,
    {
        enum State {
            First(String),
            Next(rest::NextPage),
            Done,
        }
        let sql = match sql {
            Ok(sql) => sql,
            Err(error) => return stream::once(async move { Err(error) }).boxed(),
        };
        let parse = std::sync::Arc::new(parse);
        stream::try_unfold(State::First(sql), move |state| {
            let parse = std::sync::Arc::clone(&parse);
            async move {
                let page = match state {
                    State::Done => return Ok::<_, Error>(None),
                    State::First(sql) => self.rest.query(&sql, Some(self.export_page_rows)).await?,
                    State::Next(next) => self.rest.next_page(&next, Some(self.export_page_rows)).await?,
                };
                let rows = page.rows.iter().map(|row| parse(row)).collect::<Result<Vec<T>>>()?;
                let state = page.next.map_or(State::Done, State::Next);
                Ok(Some((stream::iter(rows.into_iter().map(Ok::<_, Error>)), state)))
            }
        })
        .try_flatten()
        .boxed()
    }
}

#[async_trait]
impl Store for BigQuery {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    async fn migrate_with(&self, options: MigrateOptions) -> Result<MigrateReport> {
        let dry_run = options.dry_run;
        let mut report = MigrateReport::default();
        let bootstrap = self.sql(bootstrap_sql(Dialect::BigQuery))?;
        let records = if dry_run {
            // Read only: a dataset or migrations table that is not there yet
            // has no records.
            match self.applied_migrations().await {
                Ok(records) => records,
                Err(Error::NotFound { .. }) => {
                    report
                        .statements
                        .push(format!("-- datasets.insert {}.{} (if missing)", self.project, self.dataset));
                    report.statements.push(bootstrap);
                    Vec::new()
                }
                Err(error) => return Err(error),
            }
        } else {
            if self.rest.create_dataset(&self.dataset, self.location.as_deref()).await? {
                report.created.push(format!("{}.{}", self.project, self.dataset));
            }
            self.rest.query(&bootstrap, None).await?;
            self.applied_migrations().await?
        };
        let plan = MigrationPlan::new(Dialect::BigQuery, &records)?;
        report.already_applied = plan.applied.iter().map(|migration| migration.name.to_owned()).collect();
        for migration in plan.pending {
            // BigQuery has no transactions around DDL; the files use
            // `CREATE TABLE IF NOT EXISTS`, so a migration cut in the middle
            // is completed by the next call, and a table the Python pipeline
            // made is left as it is (adopted below).
            for statement in migration.statements() {
                let statement = self.sql(statement)?;
                if !dry_run {
                    self.rest.query(&statement, None).await?;
                }
                report.statements.push(statement);
            }
            let record = AppliedMigration::of(migration);
            // Embedded file names and hex checksums: checked anyway, as they
            // are written into the SQL text.
            let safe = |value: &str| value.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"_.-".contains(&byte));
            if !safe(&record.name) || !safe(&record.checksum) {
                return Err(Error::InvalidInput { what: format!("migration file name {:?}", record.name) });
            }
            // DML, not a streaming insert, so the record is visible at once.
            let insert = self.sql(&format!(
                "INSERT INTO {{dataset}}.{MIGRATIONS} (version, name, checksum, applied_at) \
                 VALUES ({}, '{}', '{}', CURRENT_TIMESTAMP())",
                record.version, record.name, record.checksum
            ))?;
            if !dry_run {
                self.rest.query(&insert, None).await?;
            }
            report.statements.push(insert);
            report.applied.push(migration.name.to_owned());
        }
        self.adopt(dry_run, &mut report).await?;
        if dry_run {
            for statement in queries::refresh(Dialect::BigQuery, &self.layout.tweets, &self.layout.all_score_tables()) {
                report.statements.push(self.sql(&statement.sql)?);
            }
        }
        Ok(report)
    }

    fn import_batch_rows(&self) -> usize {
        IMPORT_BATCH_ROWS
    }

    async fn import_tweets(&self, tweets: &[Tweet]) -> Result<ImportReport> {
        validate::tweets(tweets)?;
        if let Some(table) = &self.layout.tweets.table {
            return Err(Error::InvalidInput {
                what: format!(
                    "the tweets are read from {table} (--tweets-table), which toxscore never writes to; \
                     import into a dataset's own tweets table instead"
                ),
            });
        }
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
        let mut rows = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(IMPORT_CHECK_IDS) {
            let ids: BTreeSet<i64> = chunk.iter().map(|tweet| tweet.status_id).collect();
            let existing = self.existing_pairs(&ids).await?;
            for tweet in chunk {
                if existing.contains(&(tweet.status_id, tweet.status_text.clone())) {
                    report.already_present += 1;
                } else {
                    rows.push(tweet_row(tweet));
                }
            }
        }
        if rows.is_empty() {
            return Ok(report);
        }
        let fields = ["status_id", "user_id", "status_text", "created_at"];
        self.check_insert_fields(TWEETS, &fields).await?;
        if rows.len() >= LOAD_JOB_MIN_ROWS {
            let mut ndjson = Vec::with_capacity(rows.len() * 160);
            for row in &rows {
                serde_json::to_writer(&mut ndjson, &row.json).map_err(|error| Error::Backend {
                    backend: BACKEND,
                    what: "encoding tweets as JSON".to_owned(),
                    source: Some(Box::new(error)),
                })?;
                ndjson.push(b'\n');
            }
            let job_id = import_job_id(&self.project, &self.dataset, &ndjson);
            self.rest
                .record(json!({ "load": format!("{}.{}.{TWEETS}", self.project, self.dataset), "fields": fields }));
            self.rest.load_ndjson(&self.dataset, TWEETS, &job_id, &ndjson).await?;
        } else {
            self.rest.insert_all(&self.dataset, TWEETS, &rows).await?;
        }
        report.inserted += rows.len() as u64;
        Ok(report)
    }

    async fn refresh_texts(&self) -> Result<DedupReport> {
        let mut report = DedupReport::default();
        let source = &self.layout.tweets;
        for statement in queries::refresh(Dialect::BigQuery, source, &self.layout.all_score_tables()) {
            let page = self.rest.query(&self.sql(&statement.sql)?, None).await?;
            let affected = page.affected_rows.unwrap_or(0);
            match statement.affects {
                Affects::NewTexts => report.new_texts += affected,
                Affects::NewStatuses => report.new_statuses += affected,
                Affects::Nothing => {}
            }
        }
        let page = self.query_all(&queries::conflict_count(Dialect::BigQuery, source)).await?;
        report.conflicts = match page.rows.first() {
            Some(row) => u64::try_from(int(row, 0, "conflicts")?).unwrap_or(0),
            None => 0,
        };
        if report.conflicts > 0 {
            let page =
                self.query_all(&queries::conflict_examples(Dialect::BigQuery, MAX_CONFLICT_EXAMPLES, source)).await?;
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
        let page = self.query_all(&queries::skipped_tweets(source)).await?;
        report.skipped_tweets = match page.rows.first() {
            Some(row) => u64::try_from(int(row, 0, "skipped")?).unwrap_or(0),
            None => 0,
        };
        if report.skipped_tweets > 0 {
            let page = self.query_all(&queries::skipped_tweet_examples(source, MAX_CONFLICT_EXAMPLES)).await?;
            report.skipped_examples = page
                .rows
                .iter()
                .map(|row| row.first().cloned().flatten().unwrap_or_else(|| "NULL".to_owned()))
                .collect();
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

    async fn unscored_texts(&self, table: &ModelTable, query: UnscoredQuery) -> Result<Vec<TextRow>> {
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
        let mut fields = vec!["status_text_id"];
        fields.extend(batch.table.columns.iter().copied());
        fields.extend(BOOKKEEPING_COLUMNS.iter().map(|(name, _)| *name));
        self.check_insert_fields(&batch.table.table, &fields).await?;
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
        self.rest.insert_all(&self.dataset, &batch.table.table, &rows).await
    }

    async fn progress(&self) -> Result<Progress> {
        let tables = self.layout.all_score_tables();
        let page = self.query_all(&queries::progress(Dialect::BigQuery, &self.layout.tweets, &tables)).await?;
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
        let models = tables
            .iter()
            .enumerate()
            .map(|(index, table)| {
                let scored = count(2 + index, &table.table)?;
                Ok(ModelProgress { model: table.model.to_owned(), scored, remaining: texts.saturating_sub(scored) })
            })
            .collect::<Result<_>>()?;
        Ok(Progress { statuses, texts, imported_statuses: None, models })
    }

    async fn export_to_table(&self, table: &ModelTable, rows: ExportRows, name: &str) -> Result<u64> {
        validate::export_rows(table, rows)?;
        validate::export_table_name(name)?;
        let is_source = self.layout.tweets.table.as_ref().is_some_and(|source| {
            source.dataset == self.dataset
                && source.project.as_deref().is_none_or(|project| project == self.project)
                && source.table == name
        });
        let is_own = is_source
            || toxdedup::schema::is_fixed_table(name)
            || self.layout.all_score_tables().iter().chain(MODEL_TABLES).any(|known| known.table == name);
        if is_own {
            return Err(Error::AlreadyExists {
                what: format!("table {}.{name} (one the scores are read from)", self.dataset),
            });
        }
        let recorded = {
            let sql = self.sql(&format!("SELECT COUNT(*) AS n FROM {{dataset}}.{EXPORTS} WHERE table_name = @name"))?;
            let page = self.rest.query_all(&sql, &[rest::string_parameter("name", name)]).await?;
            page.rows.first().map(|row| int(row, 0, "n")).transpose()?.unwrap_or(0) > 0
        };
        if !recorded {
            if self.rest.table_columns(None, &self.dataset, name).await?.is_some() {
                return Err(Error::AlreadyExists {
                    what: format!(
                        "table {}.{name} (not made by an export, so it is left alone: choose another name)",
                        self.dataset
                    ),
                });
            }
            // Recorded before it is created: a crash in between leaves a
            // record of a table that does not exist, which the next export
            // of that name creates.
            let insert = self.sql(&format!(
                "INSERT INTO {{dataset}}.{EXPORTS} (table_name, model, created_at) VALUES (@name, @model, CURRENT_TIMESTAMP())"
            ))?;
            self.rest
                .query_with(
                    &insert,
                    None,
                    &[rest::string_parameter("name", name), rest::string_parameter("model", table.model)],
                )
                .await?;
        }
        let create = self.sql(&queries::export_to_table(Dialect::BigQuery, table, &self.layout.tweets, rows, name))?;
        self.rest.query(&create, None).await?;
        // COUNT(*) of a table is answered from its metadata: free.
        let page = self.query_all(&format!("SELECT COUNT(*) AS n FROM {{dataset}}.{name}")).await?;
        let rows = page.rows.first().map(|row| int(row, 0, "n")).transpose()?.unwrap_or(0);
        Ok(u64::try_from(rows).unwrap_or(0))
    }

    fn export<'a>(&'a self, table: &'a ModelTable) -> BoxStream<'a, Result<ExportRow>> {
        let sql = validate::model_table(table)
            .and_then(|()| self.sql(&queries::export(Dialect::BigQuery, table, &self.layout.tweets)));
        self.paged(sql, move |row| {
            Ok(ExportRow {
                status_id: int(row, 0, "status_id")?,
                user_id: optional_int(row, 1, "user_id")?,
                status_text_id: int(row, 2, "status_text_id")?,
                scores: (0..table.columns.len())
                    .map(|column| float(row, 3 + column, table.columns[column]))
                    .collect::<Result<_>>()?,
            })
        })
    }

    fn aggregate<'a>(
        &'a self,
        table: &'a ModelTable,
        grouping: Grouping,
        threshold: f64,
    ) -> BoxStream<'a, Result<AggregateRow>> {
        let sql = validate::aggregate(table, threshold).and_then(|()| {
            self.sql(&queries::aggregate(Dialect::BigQuery, table, &self.layout.tweets, grouping, threshold))
        });
        self.paged(sql, move |row| aggregate_row(table, row))
    }

    async fn summary(&self, table: &ModelTable, query: SummaryQuery) -> Result<Summary> {
        validate::summary(table, &query)?;
        let source = &self.layout.tweets;
        let n_columns = table.columns.len();
        let users = async {
            let page = self.query_all(&queries::users(Dialect::BigQuery, source)).await?;
            first_row(&page, "users").and_then(|row| count(row, 0, "n_users"))
        };
        let histograms = async {
            let page = self.query_all(&queries::histograms(Dialect::BigQuery, table, source, query.bins)).await?;
            let row = first_row(&page, "histograms")?;
            let mut histograms = Vec::with_capacity(n_columns);
            for (column, name) in table.columns.iter().enumerate() {
                let mut bins = Vec::with_capacity(query.bins);
                for bin in 0..query.bins {
                    let index = 1 + column * query.bins + bin;
                    // SUM over no rows is NULL.
                    bins.push(if row.get(index).is_some_and(Option::is_none) { 0 } else { count(row, index, name)? });
                }
                histograms.push(bins);
            }
            Ok((count(row, 0, "n_statuses")?, histograms))
        };
        let checkpoints = self.checkpoints(table);
        let top_users = async {
            let sql =
                queries::top_users(Dialect::BigQuery, table, source, query.threshold, query.min_statuses, query.top);
            let page = self.query_all(&sql).await?;
            page.rows.iter().map(|row| aggregate_row(table, row)).collect::<Result<Vec<_>>>()
        };
        let top_texts = async {
            let page = self.query_all(&queries::top_texts(Dialect::BigQuery, table, query.top)).await?;
            page.rows
                .iter()
                .map(|row| {
                    Ok(TopText {
                        status_text_id: int(row, 0, "status_text_id")?,
                        text: text(row, 1, "status_text")?,
                        n_statuses: count(row, 2, "n_statuses")?,
                        scores: (0..n_columns)
                            .map(|column| float(row, 3 + column, table.columns[column]))
                            .collect::<Result<_>>()?,
                    })
                })
                .collect::<Result<Vec<_>>>()
        };
        let (users, (scored_statuses, histograms), checkpoints, top_users, top_texts) =
            futures::try_join!(users, histograms, checkpoints, top_users, top_texts)?;
        Ok(Summary { users, scored_statuses, checkpoints, histograms, top_users, top_texts })
    }

    async fn checkpoints(&self, table: &ModelTable) -> Result<Vec<CheckpointUse>> {
        validate::model_table(table)?;
        let page = self.query_all(&queries::checkpoints(Dialect::BigQuery, table)).await?;
        page.rows
            .iter()
            .map(|row| {
                Ok(CheckpointUse {
                    checkpoint_sha256: row.first().cloned().flatten(),
                    n_texts: count(row, 1, "n_texts")?,
                    first_scored_at: optional_int(row, 2, "first_scored_at")?.and_then(format_scored_at),
                    last_scored_at: optional_int(row, 3, "last_scored_at")?.and_then(format_scored_at),
                })
            })
            .collect()
    }

    async fn sample_scores(&self, table: &ModelTable, query: SampleQuery) -> Result<Vec<StoredScore>> {
        validate::sample(table, &query)?;
        let sql = queries::sample_scores(Dialect::BigQuery, table, query.rows, query.seed, &query.scored_by);
        let page = self.query_all(&sql).await?;
        page.rows
            .iter()
            .map(|row| {
                Ok(StoredScore {
                    status_text_id: int(row, 0, "status_text_id")?,
                    status_text: text(row, 1, "status_text")?,
                    checkpoint_sha256: row.get(2).cloned().flatten(),
                    scores: (0..table.columns.len())
                        .map(|column| optional_float(row, 3 + column, table.columns[column]))
                        .collect::<Result<_>>()?,
                })
            })
            .collect()
    }
}

/// A row of [`queries::aggregate`] (or [`queries::top_users`]).
fn aggregate_row(table: &ModelTable, row: &[Option<String>]) -> Result<AggregateRow> {
    let n_columns = table.columns.len();
    Ok(AggregateRow {
        key: row.first().cloned().flatten(),
        n_statuses: count(row, 1, "n_statuses")?,
        averages: (0..n_columns).map(|column| float(row, 2 + column, table.columns[column])).collect::<Result<_>>()?,
        max_toxicity: float(row, 2 + n_columns, "max_toxicity")?,
        share_toxic: float(row, 3 + n_columns, "share_toxic")?,
    })
}

/// The one row of a one-row query.
fn first_row<'a>(page: &'a QueryPage, what: &str) -> Result<&'a [Option<String>]> {
    page.rows.first().map(Vec::as_slice).ok_or_else(|| Error::Backend {
        backend: BACKEND,
        what: format!("the {what} query returned no row"),
        source: None,
    })
}

/// A count: a non-negative INT64.
fn count(row: &[Option<String>], index: usize, column: &str) -> Result<u64> {
    u64::try_from(int(row, index, column)?).map_err(|_| bad_value(column, row))
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
    match crate::utc_datetime(micros) {
        Some(datetime) => datetime.strftime("%Y-%m-%d %H:%M:%S%.6f UTC").to_string(),
        // Beyond the years -9999 to 9999, so beyond BigQuery's TIMESTAMP
        // range too: BigQuery refuses the row, naming the value.
        None => micros.to_string(),
    }
}

/// A `scored_at` as [`CheckpointUse`] reports it.
fn format_scored_at(micros: i64) -> Option<String> {
    crate::utc_datetime(micros).map(|datetime| datetime.strftime(crate::SCORED_AT_FORMAT).to_string())
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

fn optional_int(row: &[Option<String>], index: usize, column: &str) -> Result<Option<i64>> {
    match row.get(index) {
        Some(None) => Ok(None),
        Some(Some(_)) => int(row, index, column).map(Some),
        None => Err(bad_value(column, row)),
    }
}

fn float(row: &[Option<String>], index: usize, column: &str) -> Result<f64> {
    cell(row, index, column)?.parse().map_err(|_| bad_value(column, row))
}

fn optional_float(row: &[Option<String>], index: usize, column: &str) -> Result<Option<f64>> {
    match row.get(index) {
        Some(None) => Ok(None),
        Some(Some(_)) => float(row, index, column).map(Some),
        None => Err(bad_value(column, row)),
    }
}

fn text(row: &[Option<String>], index: usize, column: &str) -> Result<String> {
    cell(row, index, column).map(str::to_owned)
}

/// The id of a load job of `ndjson` into the tweets table: one per call, so
/// that a resent upload finds its job instead of loading twice (the rows'
/// hash names them in the job history). Not the same id for the same rows in
/// a later call: that one would find a job that failed (and fail again, at
/// every rerun), or one whose rows went into a table since deleted (and load
/// nothing). A rerun after a crash loads only the rows the existence check
/// does not find; a pair loaded twice by a job still running then is read
/// once, as every read counts a pair once.
fn import_job_id(project: &str, dataset: &str, ndjson: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("{project}.{dataset}.{TWEETS}\n"));
    hasher.update(ndjson);
    format!("toxscore_import_{}_{:016x}", &hex::encode(hasher.finalize())[..32], rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_job_id_is_the_calls_own_and_names_its_rows() {
        let rows = b"{\"status_id\":\"1\"}\n";
        let first = import_job_id("p", "d", rows);
        let again = import_job_id("p", "d", rows);
        assert_ne!(first, again, "a later call of the same rows would find the first call's job");
        let prefix = |id: &str| id.rsplit_once('_').map(|(prefix, _)| prefix.to_owned()).expect("a suffix");
        assert_eq!(prefix(&first), prefix(&again), "the rows' hash");
        assert_ne!(prefix(&first), prefix(&import_job_id("p", "e", rows)));
        // BigQuery's rule for job ids.
        assert!(
            first.len() <= 1024 && first.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)),
            "{first}"
        );
    }

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
