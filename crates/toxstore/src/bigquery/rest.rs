//! The few BigQuery REST calls the backend makes, with bounded retries.
//!
//! Why these calls are made here with reqwest rather than through
//! gcp-bigquery-client's API objects: the crate's `process_response` decodes
//! every non-2xx body as JSON, so a 429 or 503 whose body is not Google's
//! JSON (a proxy, a load balancer, a cut connection) becomes a decode error
//! and the status code is lost; its errors carry no status to tell a
//! retryable failure from a permanent one; it sets no timeouts and retries
//! nothing; and a `jobs.query` answer carrying SQL errors in a 200 body (as
//! the emulator sends them) comes back as `Ok`. The four endpoints used here
//! (datasets.insert, jobs.query, jobs.getQueryResults, tabledata.insertAll)
//! are plain JSON, called with the same reqwest the crate uses; the crate
//! still provides authentication (its `Authenticator` trait, over
//! yup-oauth2).

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use gcp_bigquery_client::auth::Authenticator;
use rand::Rng;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use super::BACKEND;
use super::auth::TOKEN_TIMEOUT;
use crate::{Error, Result};

/// Bounded exponential backoff with jitter, for 429, 5xx, connection errors
/// and timeouts.
///
/// Attempt `n` (counting from 1) waits, before it starts, a random duration
/// between half and all of `min(base_delay * 2^(n-2), max_delay)`; a
/// `Retry-After` header may lengthen that up to `max_delay`. After
/// `max_attempts` failed attempts the call fails with
/// [`Error::Unavailable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub max_attempts: u32,
    /// The wait before the first retry, before jitter.
    pub base_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, waits of at most 0.5, 1, 2, 4, 8, 16, then 30 s (about 1
    /// to 2 minutes in all, jittered): a BigQuery hiccup of a minute does not
    /// end a scoring run of hours (Google's own clients retry for up to 10).
    fn default() -> Self {
        Self { max_attempts: 10, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt` (2 for the first retry).
    fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(30);
        let ceiling = self.base_delay.saturating_mul(1 << doublings).min(self.max_delay);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_micros() as u64;
        let jitter = if spread == 0 { 0 } else { rand::rng().random_range(0..=spread) };
        half + Duration::from_micros(jitter)
    }

    fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

/// Reasons (BigQuery's `errors[].reason`) of transient failures.
/// `jobRateLimitExceeded`: too many jobs updating one table at once (many
/// workers' DML), which passes as the others finish.
const RETRYABLE_REASONS: &[&str] = &[
    "backendError",
    "internalError",
    "rateLimitExceeded",
    "jobRateLimitExceeded",
    "jobBackendError",
    "jobInternalError",
    "timeout",
];

/// Row-level reasons of `insertErrors` that a retry of the row may cure:
/// `stopped` rows were refused only because another row of the request failed.
const RETRYABLE_ROW_REASONS: &[&str] = &["stopped", "backendError", "internalError", "timeout", "rateLimitExceeded"];

/// How long a query job may run before the backend gives up waiting for it.
const QUERY_DEADLINE: Duration = Duration::from_secs(6 * 3600);

/// How long one `jobs.query` or `getQueryResults` call waits server-side for
/// the job to complete.
const SERVER_WAIT_MS: u64 = 10_000;

/// Rows and bytes of one `insertAll` request, under BigQuery's limits (50,000
/// rows and 10 MB) and its recommendation of about 500 rows.
pub(crate) const INSERT_BATCH_ROWS: usize = 500;
const INSERT_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// `insertAll` requests in flight at once.
const INSERT_CONCURRENCY: usize = 4;

/// A named `ARRAY<INT64>` query parameter (`@name` in the SQL). Values
/// travel as strings, so 64-bit ids stay exact.
pub(crate) fn int64_array(name: &str, values: impl IntoIterator<Item = i64>) -> Value {
    json!({
        "name": name,
        "parameterType": { "type": "ARRAY", "arrayType": { "type": "INT64" } },
        "parameterValue": { "arrayValues": values.into_iter().map(|value| json!({ "value": value.to_string() })).collect::<Vec<_>>() },
    })
}

/// A named `STRING` query parameter (`@name` in the SQL).
pub(crate) fn string_parameter(name: &str, value: &str) -> Value {
    json!({
        "name": name,
        "parameterType": { "type": "STRING" },
        "parameterValue": { "value": value },
    })
}

/// One row to stream.
#[derive(Debug, Clone)]
pub(crate) struct InsertRow {
    /// BigQuery's best-effort de-duplication key.
    pub(crate) insert_id: String,
    /// The row, column name to value.
    pub(crate) json: Value,
}

/// One page of query results: rows of nullable strings, as the REST API
/// encodes every scalar.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueryPage {
    pub(crate) rows: Vec<Vec<Option<String>>>,
    /// Where the next page is, if any.
    pub(crate) next: Option<NextPage>,
    /// `numDmlAffectedRows` of a DML statement.
    pub(crate) affected_rows: Option<u64>,
}

/// The job and page token of the next page.
#[derive(Debug, Clone)]
pub(crate) struct NextPage {
    job: JobReference,
    page_token: String,
}

#[derive(Debug, Clone)]
struct JobReference {
    job_id: String,
    location: Option<String>,
}

/// What went wrong in one attempt.
enum Failure {
    /// Try again (after a backoff), unless attempts are spent.
    Retry { message: String, retry_after: Option<Duration>, source: Option<BoxError> },
    /// Give up now.
    Fatal(Error),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A failure as BigQuery described it, kept as the `source` of the shared
/// error.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}{}: {message}", reason.as_deref().map(|reason| format!(" ({reason})")).unwrap_or_default())]
struct HttpError {
    status: u16,
    reason: Option<String>,
    message: String,
}

/// A job error reported in a 200 body.
#[derive(Debug, thiserror::Error)]
#[error("{reason}: {message}")]
struct JobError {
    reason: String,
    message: String,
}

/// A request body.
#[derive(Clone, Copy)]
enum Body<'a> {
    Json(&'a Value),
    Raw { content_type: &'a str, bytes: &'a [u8] },
}

/// A column of a table's schema, as `tables.get` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: String,
    /// `INTEGER`/`INT64`, `STRING`, `FLOAT`/`FLOAT64`, `TIMESTAMP`... as the
    /// API spells it (the legacy names).
    pub(crate) field_type: String,
    /// `NULLABLE`, `REQUIRED` or `REPEATED`.
    pub(crate) mode: String,
}

impl Column {
    /// The type in GoogleSQL's spelling: `INT64`, `FLOAT64`, `BOOL`...
    pub(crate) fn sql_type(&self) -> &str {
        match self.field_type.as_str() {
            "INTEGER" => "INT64",
            "FLOAT" => "FLOAT64",
            "BOOLEAN" => "BOOL",
            other => other,
        }
    }
}

/// Where every statement and insert the client sends is recorded, one JSON
/// object a line (`toxcli` sets it from `TOXSCORE_BIGQUERY_LOG`): for
/// checking them against the tables' real types, which the emulator does not.
#[derive(Clone)]
pub struct RequestLog(Arc<std::sync::Mutex<Box<dyn std::io::Write + Send>>>);

impl RequestLog {
    /// A log written to `writer` (a file, say).
    pub fn new(writer: impl std::io::Write + Send + 'static) -> Self {
        RequestLog(Arc::new(std::sync::Mutex::new(Box::new(writer))))
    }
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("RequestLog")
    }
}

/// The REST client of one project.
pub(crate) struct Rest {
    http: reqwest::Client,
    /// Ends with `/bigquery/v2`.
    base_url: Url,
    project: String,
    authenticator: Arc<dyn Authenticator>,
    /// What to check when the credentials are refused.
    credentials_hint: String,
    retry: RetryPolicy,
    log: Option<RequestLog>,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Rest")
            .field("base_url", &self.base_url.as_str())
            .field("project", &self.project)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Rest {
    /// `base_url` must be checked already (`names::endpoint`).
    pub(crate) fn new(
        base_url: &str,
        project: String,
        authenticator: Arc<dyn Authenticator>,
        credentials_hint: String,
        retry: RetryPolicy,
        request_timeout: Duration,
    ) -> Result<Self> {
        let base_url = Url::parse(base_url)
            .map_err(|error| Error::InvalidInput { what: format!("BigQuery endpoint {base_url:?}: {error}") })?;
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|error| Error::Backend {
                backend: BACKEND,
                what: "building the HTTP client".to_owned(),
                source: Some(Box::new(error)),
            })?;
        Ok(Self { http, base_url, project, authenticator, credentials_hint, retry, log: None })
    }

    /// Records every statement and insert in `log`.
    pub(crate) fn with_log(mut self, log: Option<RequestLog>) -> Self {
        self.log = log;
        self
    }

    /// Appends one record to the request log, if there is one. A log that
    /// cannot be written is not worth failing the work for: it is dropped.
    pub(crate) fn record(&self, entry: Value) {
        if let Some(log) = &self.log
            && let Ok(mut writer) = log.0.lock()
        {
            let _ = writeln!(writer, "{entry}").and_then(|()| writer.flush());
        }
    }

    /// `tables.get`: the table's columns, or `None` when it does not exist.
    /// `project` defaults to the client's.
    pub(crate) async fn table_columns(
        &self,
        project: Option<&str>,
        dataset: &str,
        table: &str,
    ) -> Result<Option<Vec<Column>>> {
        let url = self.project_url(project.unwrap_or(&self.project), &["datasets", dataset, "tables", table]);
        let response =
            match self.call(Method::GET, url, None, &format!("reading the schema of {dataset}.{table}")).await {
                Ok(response) => response,
                Err(Error::NotFound { .. }) => return Ok(None),
                Err(error) => return Err(error),
            };
        Ok(Some(parse_columns(&response)))
    }

    /// `tables.patch` with the table's whole schema: the columns it has,
    /// then `added` (NULLABLE). BigQuery adds NULLABLE columns this way
    /// without touching the data; toxscore calls it only when an `ALTER
    /// TABLE ... ADD COLUMN` did not show in `tables.get` (the emulator's
    /// metadata does not follow its DDL).
    pub(crate) async fn add_nullable_columns(
        &self,
        dataset: &str,
        table: &str,
        current: &[Column],
        added: &[(&str, &str)],
    ) -> Result<()> {
        let mut fields: Vec<Value> = current
            .iter()
            .map(|column| json!({ "name": column.name, "type": column.field_type, "mode": column.mode }))
            .collect();
        fields.extend(
            added.iter().map(|(name, field_type)| json!({ "name": name, "type": field_type, "mode": "NULLABLE" })),
        );
        let body = json!({ "schema": { "fields": fields } });
        let url = self.url(&["datasets", dataset, "tables", table]);
        self.call(Method::PATCH, url, Some(&body), &format!("adding columns to {dataset}.{table}")).await.map(|_| ())
    }

    /// Appends newline-delimited JSON rows to `dataset.table` with one load
    /// job (a multipart upload): free, and atomic (all rows or none).
    ///
    /// The job id is derived from the data, so an upload resent after a lost
    /// answer finds the job it started (409) instead of loading twice.
    pub(crate) async fn load_ndjson(&self, dataset: &str, table: &str, job_id: &str, ndjson: &[u8]) -> Result<()> {
        let what = format!("loading rows into {dataset}.{table}");
        let configuration = json!({
            "jobReference": { "projectId": self.project, "jobId": job_id },
            "configuration": { "load": {
                "destinationTable": { "projectId": self.project, "datasetId": dataset, "tableId": table },
                "sourceFormat": "NEWLINE_DELIMITED_JSON",
                "writeDisposition": "WRITE_APPEND",
                "createDisposition": "CREATE_NEVER",
                "ignoreUnknownValues": false,
                "maxBadRecords": 0,
            }},
        });
        let boundary = format!("toxscore-{:032x}", rand::rng().random::<u128>());
        let mut body = Vec::with_capacity(ndjson.len() + 1024);
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{configuration}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(ndjson);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut url = self.base_url.clone();
        let upload_path = format!("/upload{}", self.base_url.path().trim_end_matches('/'));
        url.set_path(&upload_path);
        if let Ok(mut path) = url.path_segments_mut() {
            path.push("projects").push(&self.project).push("jobs");
        }
        url.query_pairs_mut().append_pair("uploadType", "multipart");
        let content_type = format!("multipart/related; boundary={boundary}");
        let mut job = match self
            .call_with(Method::POST, url, Some(Body::Raw { content_type: &content_type, bytes: &body }), &what)
            .await
        {
            Ok(job) => job,
            // The job exists: this call's upload, resent after an answer was
            // lost (job ids are unique to a call). `jobs.get` needs the
            // job's location outside the US and EU multi-regions: the
            // dataset's.
            Err(Error::AlreadyExists { .. }) => {
                let location = self.dataset_location(dataset).await?;
                self.job(job_id, location.as_deref()).await?
            }
            Err(error) => return Err(error),
        };
        let started = Instant::now();
        loop {
            if let Err(failure) = job_errors(&job) {
                return Err(match failure {
                    Failure::Fatal(error) => error,
                    Failure::Retry { message, source, .. } => {
                        Error::Unavailable { backend: BACKEND, what: format!("{what}: {message}"), source }
                    }
                });
            }
            let state = job.get("status").and_then(|status| string_field(status, "state"));
            if state.as_deref() == Some("DONE") {
                return Ok(());
            }
            if started.elapsed() > QUERY_DEADLINE {
                return Err(Error::Unavailable {
                    backend: BACKEND,
                    what: format!("{what}: the load job did not complete"),
                    source: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let location = job.get("jobReference").and_then(|reference| string_field(reference, "location"));
            job = self.job(job_id, location.as_deref()).await?;
        }
    }

    /// The location of a dataset (`datasets.get`), where it says one.
    async fn dataset_location(&self, dataset: &str) -> Result<Option<String>> {
        let answer =
            self.call(Method::GET, self.url(&["datasets", dataset]), None, "reading a dataset's location").await?;
        Ok(string_field(&answer, "location"))
    }

    /// `jobs.get`.
    async fn job(&self, job_id: &str, location: Option<&str>) -> Result<Value> {
        let mut url = self.url(&["jobs", job_id]);
        if let Some(location) = location {
            url.query_pairs_mut().append_pair("location", location);
        }
        self.call(Method::GET, url, None, "reading a job's status").await
    }

    /// `base/projects/<project>/<segments...>`, each segment escaped.
    fn url(&self, segments: &[&str]) -> Url {
        self.project_url(&self.project, segments)
    }

    /// The same for another project.
    fn project_url(&self, project: &str, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("projects").push(project).extend(segments);
        }
        url
    }

    /// Creates the dataset unless it exists; whether it created it.
    pub(crate) async fn create_dataset(&self, dataset: &str, location: Option<&str>) -> Result<bool> {
        let mut body = json!({
            "datasetReference": { "projectId": self.project, "datasetId": dataset },
        });
        if let Some(location) = location {
            body["location"] = json!(location);
        }
        let url = self.url(&["datasets"]);
        match self.call(Method::POST, url, Some(&body), &format!("creating dataset {dataset}")).await {
            Ok(_) => Ok(true),
            Err(Error::AlreadyExists { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Runs a query and returns its first page (of at most `page_size` rows
    /// when given), after the job has completed. A job that fails with a
    /// transient reason is run again, with a new request id.
    pub(crate) async fn query(&self, sql: &str, page_size: Option<u32>) -> Result<QueryPage> {
        self.query_with(sql, page_size, &[]).await
    }

    /// [`query`](Self::query) with named parameters, such as
    /// [`int64_array`]'s.
    pub(crate) async fn query_with(
        &self,
        sql: &str,
        page_size: Option<u32>,
        parameters: &[Value],
    ) -> Result<QueryPage> {
        let mut last: Option<(String, Option<BoxError>)> = None;
        for attempt in 1..=self.retry.attempts() {
            if attempt > 1 {
                tokio::time::sleep(self.retry.delay(attempt)).await;
            }
            match self.query_once(sql, page_size, parameters).await? {
                Ok(page) => return Ok(page),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Retry { message, source, .. }) => last = Some((message, source)),
            }
        }
        let (message, source) = last.unwrap_or_default();
        Err(Error::Unavailable {
            backend: BACKEND,
            what: format!("query job failed {} times; last: {message}", self.retry.attempts()),
            source,
        })
    }

    /// One job: `Ok(Err(Retry))` when the job itself failed transiently
    /// (transport failures are retried inside [`call`](Self::call)).
    async fn query_once(
        &self,
        sql: &str,
        page_size: Option<u32>,
        parameters: &[Value],
    ) -> Result<std::result::Result<QueryPage, Failure>> {
        // The request id makes a resent `jobs.query` (after a lost answer)
        // return the first job instead of running the statement twice.
        // BigQuery takes at most 36 ASCII characters here: a random UUID.
        let request_id = {
            let hex = format!("{:032x}", rand::rng().random::<u128>());
            format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
        };
        let mut body = json!({
            "query": sql,
            "useLegacySql": false,
            "timeoutMs": SERVER_WAIT_MS,
            "requestId": request_id,
        });
        if let Some(page_size) = page_size {
            body["maxResults"] = json!(page_size);
        }
        if !parameters.is_empty() {
            body["parameterMode"] = json!("NAMED");
            body["queryParameters"] = json!(parameters);
        }
        self.record(json!({ "query": sql, "parameters": parameters }));
        let started = Instant::now();
        let mut response = self.call(Method::POST, self.url(&["queries"]), Some(&body), "running a query").await?;
        loop {
            if let Err(failure) = job_errors(&response) {
                return Ok(Err(failure));
            }
            if response.get("jobComplete").and_then(Value::as_bool) != Some(false) {
                return parse_page(&response).map(Ok);
            }
            if started.elapsed() > QUERY_DEADLINE {
                return Err(Error::Unavailable {
                    backend: BACKEND,
                    what: format!("the query job did not complete within {} s", QUERY_DEADLINE.as_secs()),
                    source: None,
                });
            }
            let job = job_reference(&response)?;
            response = self.results(&job, None, page_size).await?;
        }
    }

    /// The next page of a query's results.
    pub(crate) async fn next_page(&self, next: &NextPage, page_size: Option<u32>) -> Result<QueryPage> {
        let started = Instant::now();
        loop {
            let response = self.results(&next.job, Some(&next.page_token), page_size).await?;
            if let Err(failure) = job_errors(&response) {
                return Err(match failure {
                    Failure::Fatal(error) => error,
                    Failure::Retry { message, source, .. } => Error::Unavailable {
                        backend: BACKEND,
                        what: format!("reading query results: {message}"),
                        source,
                    },
                });
            }
            if response.get("jobComplete").and_then(Value::as_bool) != Some(false) {
                return parse_page(&response);
            }
            if started.elapsed() > QUERY_DEADLINE {
                return Err(Error::Unavailable {
                    backend: BACKEND,
                    what: "the query results did not become available".to_owned(),
                    source: None,
                });
            }
        }
    }

    /// Runs a query and reads every page.
    pub(crate) async fn query_all(&self, sql: &str, parameters: &[Value]) -> Result<QueryPage> {
        let mut page = self.query_with(sql, None, parameters).await?;
        while let Some(next) = page.next.take() {
            let more = self.next_page(&next, None).await?;
            page.rows.extend(more.rows);
            page.next = more.next;
        }
        Ok(page)
    }

    /// `jobs.getQueryResults`.
    async fn results(&self, job: &JobReference, page_token: Option<&str>, page_size: Option<u32>) -> Result<Value> {
        let mut url = self.url(&["queries", &job.job_id]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("timeoutMs", &SERVER_WAIT_MS.to_string());
            if let Some(location) = &job.location {
                query.append_pair("location", location);
            }
            if let Some(token) = page_token {
                query.append_pair("pageToken", token);
            }
            if let Some(page_size) = page_size {
                query.append_pair("maxResults", &page_size.to_string());
            }
        }
        self.call(Method::GET, url, None, "reading query results").await
    }

    /// Streams rows into `dataset.table` in batches, with their insert ids.
    ///
    /// Every answer's `insertErrors` is checked. Rows that failed for a
    /// transient reason (or were `stopped` because of another row) are sent
    /// again, up to the retry policy's attempts; rows BigQuery refuses as
    /// invalid fail the call at once, except `no such field` (the callers
    /// check the table's fields first: that is a column added moments ago,
    /// which streaming picks up late), retried as transient. Either way the
    /// error names the rows: no row is dropped silently.
    pub(crate) async fn insert_all(&self, dataset: &str, table: &str, rows: &[InsertRow]) -> Result<()> {
        if self.log.is_some() {
            let fields: std::collections::BTreeSet<&str> = rows
                .iter()
                .filter_map(|row| row.json.as_object())
                .flat_map(|object| object.keys().map(String::as_str))
                .collect();
            self.record(json!({ "insert": format!("{}.{dataset}.{table}", self.project), "fields": fields }));
        }
        let mut batches = Vec::new();
        let mut start = 0;
        while start < rows.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < rows.len() && end - start < INSERT_BATCH_ROWS {
                let size = rows[end].json.to_string().len() + rows[end].insert_id.len() + 32;
                if end > start && bytes + size > INSERT_BATCH_BYTES {
                    break;
                }
                bytes += size;
                end += 1;
            }
            batches.push(start..end);
            start = end;
        }
        // A few requests in flight: streaming inserts are latency-bound. On an
        // error the others are dropped; they may or may not have landed, which
        // the caller's retry and the set semantics of every read absorb.
        futures::stream::iter(batches)
            .map(|range| self.insert_batch(dataset, table, &rows[range.clone()], range.start))
            .buffer_unordered(INSERT_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// One batch; `offset` is its first row's index in the caller's rows, for
    /// messages.
    async fn insert_batch(&self, dataset: &str, table: &str, rows: &[InsertRow], offset: usize) -> Result<()> {
        let url = self.url(&["datasets", dataset, "tables", table, "insertAll"]);
        let what = format!("streaming rows into {dataset}.{table}");
        // Indexes (into `rows`) still to be written.
        let mut pending: Vec<usize> = (0..rows.len()).collect();
        let mut last_examples = String::new();
        // Whether the last attempt's retried rows include a field streaming
        // did not know yet.
        let mut lagging = false;
        for attempt in 1..=self.retry.attempts() {
            if attempt > 1 {
                tokio::time::sleep(self.retry.delay(attempt)).await;
            }
            let body = json!({
                "rows": pending.iter().map(|&index| json!({
                    "insertId": rows[index].insert_id,
                    "json": rows[index].json,
                })).collect::<Vec<_>>(),
                "skipInvalidRows": false,
                "ignoreUnknownValues": false,
            });
            let response = self.call(Method::POST, url.clone(), Some(&body), &what).await?;
            let errors = match response.get("insertErrors") {
                None | Some(Value::Null) => return Ok(()),
                Some(Value::Array(errors)) if errors.is_empty() => return Ok(()),
                Some(Value::Array(errors)) => errors,
                Some(other) => {
                    return Err(Error::Backend {
                        backend: BACKEND,
                        what: format!("{what}: unexpected insertErrors {other}"),
                        source: None,
                    });
                }
            };
            let mut retry = Vec::new();
            let mut refused = Vec::new();
            lagging = false;
            for entry in errors {
                let index =
                    entry.get("index").and_then(value_as_u64).and_then(|index| pending.get(index as usize).copied());
                let Some(index) = index else {
                    return Err(Error::Backend {
                        backend: BACKEND,
                        what: format!("{what}: insertErrors names a row that was not sent: {entry}"),
                        source: None,
                    });
                };
                let reasons: Vec<(String, String)> = entry
                    .get("errors")
                    .and_then(Value::as_array)
                    .map(|errors| {
                        errors
                            .iter()
                            .map(|error| {
                                (
                                    string_field(error, "reason").unwrap_or_default(),
                                    string_field(error, "message").unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let row_lags = reasons.iter().any(|(reason, message)| is_schema_lag(reason, message));
                let transient = !reasons.is_empty()
                    && reasons.iter().all(|(reason, message)| {
                        RETRYABLE_ROW_REASONS.contains(&reason.as_str()) || is_schema_lag(reason, message)
                    });
                lagging |= transient && row_lags;
                let described = describe_row(offset + index, &rows[index].insert_id, &reasons);
                if transient { retry.push((index, described)) } else { refused.push(described) }
            }
            if !refused.is_empty() {
                return Err(Error::Backend {
                    backend: BACKEND,
                    what: format!(
                        "{what}: BigQuery refused {} of {} rows; nothing of this batch was kept; {}",
                        refused.len(),
                        pending.len(),
                        examples(&refused)
                    ),
                    source: None,
                });
            }
            last_examples = examples(&retry.iter().map(|(_, described)| described.clone()).collect::<Vec<_>>());
            pending = retry.into_iter().map(|(index, _)| index).collect();
        }
        // Rows refused for a field the table has (its callers check the
        // schema first): the streaming system has not seen `migrate`'s
        // ALTER TABLE yet.
        let lag = if lagging {
            "; BigQuery's streaming inserts can lag a few minutes behind a column just added (`toxcli migrate` adds \
             checkpoint_sha256 and scored_at to adopted score tables): run the same command again in a few minutes"
        } else {
            ""
        };
        Err(Error::Unavailable {
            backend: BACKEND,
            what: format!(
                "{what}: {} rows still failed after {} attempts; {last_examples}{lag}",
                pending.len(),
                self.retry.attempts()
            ),
            source: None,
        })
    }

    /// One REST call with the retry policy: JSON in, JSON out.
    async fn call(&self, method: Method, url: Url, body: Option<&Value>, what: &str) -> Result<Value> {
        self.call_with(method, url, body.map(Body::Json), what).await
    }

    /// [`call`](Self::call) with any body.
    async fn call_with(&self, method: Method, url: Url, body: Option<Body<'_>>, what: &str) -> Result<Value> {
        let mut last: Option<(String, Option<BoxError>)> = None;
        let mut retry_after = None;
        for attempt in 1..=self.retry.attempts() {
            if attempt > 1 {
                let mut wait = self.retry.delay(attempt);
                if let Some(asked) = retry_after {
                    wait = wait.max(asked).min(self.retry.max_delay.max(wait));
                }
                tokio::time::sleep(wait).await;
            }
            match self.call_once(method.clone(), url.clone(), body).await {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Retry { message, retry_after: asked, source }) => {
                    retry_after = asked;
                    last = Some((message, source));
                }
            }
        }
        let (message, source) = last.unwrap_or_default();
        Err(Error::Unavailable {
            backend: BACKEND,
            what: format!("{what}: gave up after {} attempts; last: {message}", self.retry.attempts()),
            source,
        })
    }

    async fn call_once(&self, method: Method, url: Url, body: Option<Body<'_>>) -> std::result::Result<Value, Failure> {
        let token = match tokio::time::timeout(TOKEN_TIMEOUT, self.authenticator.access_token()).await {
            Ok(Ok(token)) => token,
            Ok(Err(error)) => {
                return Err(Failure::Fatal(Error::Unauthenticated {
                    backend: BACKEND,
                    what: format!("could not get an access token ({error}); {}", self.credentials_hint),
                }));
            }
            Err(_) => {
                return Err(Failure::Retry {
                    message: format!("getting an access token took over {} s", TOKEN_TIMEOUT.as_secs()),
                    retry_after: None,
                    source: None,
                });
            }
        };
        // Whatever the server or a proxy says, the token is never repeated.
        let redact = |text: String| {
            if token.len() >= 8 { text.replace(&token, "<redacted>") } else { text }
        };

        let mut request = self.http.request(method, url).bearer_auth(&token);
        match body {
            Some(Body::Json(value)) => request = request.json(value),
            Some(Body::Raw { content_type, bytes }) => {
                request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes.to_vec());
            }
            None => {}
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Err(Failure::Retry {
                    message: redact(transport_message(&error)),
                    retry_after: None,
                    source: Some(Box::new(error)),
                });
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // A connection cut in the middle of the body is a transport failure.
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => {
                return Err(Failure::Retry {
                    message: redact(format!("HTTP {status}, then the body was cut: {}", transport_message(&error))),
                    retry_after: None,
                    source: Some(Box::new(error)),
                });
            }
        };
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|error| {
                Failure::Fatal(Error::Backend {
                    backend: BACKEND,
                    what: format!("HTTP {status} with a body that is not JSON: {}", redact(snippet(&bytes))),
                    source: Some(Box::new(error)),
                })
            });
        }
        let (reason, message) = error_body(&bytes);
        let error = HttpError { status: status.as_u16(), reason: reason.clone(), message: redact(message) };
        Err(classify(status, error, retry_after, &self.credentials_hint))
    }
}

/// Maps a non-2xx answer onto a retry or a shared error.
fn classify(status: StatusCode, error: HttpError, retry_after: Option<Duration>, hint: &str) -> Failure {
    let reason = error.reason.clone().unwrap_or_default();
    let retryable_reason = RETRYABLE_REASONS.contains(&reason.as_str());
    match status.as_u16() {
        408 | 429 | 500 | 502 | 503 | 504 => {
            Failure::Retry { message: error.to_string(), retry_after, source: Some(Box::new(error)) }
        }
        // BigQuery answers some rate limits with 403 rateLimitExceeded.
        403 if retryable_reason => {
            Failure::Retry { message: error.to_string(), retry_after, source: Some(Box::new(error)) }
        }
        401 | 403 => Failure::Fatal(Error::Unauthenticated { backend: BACKEND, what: format!("{error}; {hint}") }),
        404 => Failure::Fatal(Error::NotFound { what: error.message.clone(), source: Some(Box::new(error)) }),
        409 => Failure::Fatal(Error::AlreadyExists { what: error.message }),
        _ => {
            Failure::Fatal(Error::Backend { backend: BACKEND, what: error.to_string(), source: Some(Box::new(error)) })
        }
    }
}

/// Google's error body `{"error": {"message", "errors": [{"reason"}]}}`,
/// or the start of whatever else came.
fn error_body(bytes: &[u8]) -> (Option<String>, String) {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    match error {
        Some(error) => {
            let message = string_field(error, "message").unwrap_or_else(|| error.to_string());
            let reason = error
                .get("errors")
                .and_then(Value::as_array)
                .and_then(|errors| errors.first())
                .and_then(|first| string_field(first, "reason"))
                .or_else(|| string_field(error, "status"));
            (reason, message)
        }
        None => (None, snippet(bytes)),
    }
}

/// SQL and job errors arriving in a 200 body (`errors`, or a job's
/// `status.errorResult`): a failure, never `Ok`.
fn job_errors(response: &Value) -> std::result::Result<(), Failure> {
    let mut errors: Vec<&Value> =
        response.get("errors").and_then(Value::as_array).map(|errors| errors.iter().collect()).unwrap_or_default();
    if let Some(result) = response.get("status").and_then(|status| status.get("errorResult")) {
        errors.insert(0, result);
    }
    let Some(first) = errors.first() else {
        return Ok(());
    };
    let reason = string_field(first, "reason").unwrap_or_default();
    let message = errors
        .iter()
        .map(|error| string_field(error, "message").unwrap_or_else(|| error.to_string()))
        .collect::<Vec<_>>()
        .join("; ");
    let error = JobError { reason: reason.clone(), message: message.clone() };
    if RETRYABLE_REASONS.contains(&reason.as_str()) {
        return Err(Failure::Retry { message: error.to_string(), retry_after: None, source: Some(Box::new(error)) });
    }
    Err(Failure::Fatal(match reason.as_str() {
        "notFound" => Error::NotFound { what: message, source: Some(Box::new(error)) },
        "duplicate" => Error::AlreadyExists { what: message },
        "accessDenied" => Error::Unauthenticated {
            backend: BACKEND,
            what: format!("{message}; check the credentials' BigQuery roles"),
        },
        // BigQuery does the last step of a sort on one slot, and caps a
        // query's result: an export file of every status, in status id
        // order, is the query of toxscore's that can meet either.
        "resourcesExceeded" | "responseTooLarge" => Error::Backend {
            backend: BACKEND,
            what: format!(
                "query failed: {error} (more than BigQuery gives one query; an export of a whole large \
                 dataset fits as `toxcli export --to-table NAME`, which writes the rows inside BigQuery \
                 unsorted, with no limit on their size)"
            ),
            source: Some(Box::new(error)),
        },
        _ => Error::Backend { backend: BACKEND, what: format!("query failed: {error}"), source: Some(Box::new(error)) },
    }))
}

/// The top-level columns of a `tables.get` answer.
fn parse_columns(response: &Value) -> Vec<Column> {
    response
        .get("schema")
        .and_then(|schema| schema.get("fields"))
        .and_then(Value::as_array)
        .map(|fields| {
            fields
                .iter()
                .map(|field| Column {
                    name: string_field(field, "name").unwrap_or_default(),
                    field_type: string_field(field, "type").unwrap_or_default().to_ascii_uppercase(),
                    mode: string_field(field, "mode").unwrap_or_else(|| "NULLABLE".to_owned()).to_ascii_uppercase(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn job_reference(response: &Value) -> Result<JobReference> {
    let reference = response.get("jobReference");
    let job_id = reference.and_then(|reference| string_field(reference, "jobId"));
    let Some(job_id) = job_id else {
        return Err(Error::Backend {
            backend: BACKEND,
            what: format!("a query answer without a job id: {}", snippet(response.to_string().as_bytes())),
            source: None,
        });
    };
    let location = reference.and_then(|reference| string_field(reference, "location"));
    Ok(JobReference { job_id, location })
}

/// The rows, the next page and the DML count of a `jobs.query` or
/// `getQueryResults` answer.
fn parse_page(response: &Value) -> Result<QueryPage> {
    let unexpected = |problem: &str| Error::Backend {
        backend: BACKEND,
        what: format!("unexpected query answer ({problem}): {}", snippet(response.to_string().as_bytes())),
        source: None,
    };
    let mut rows = Vec::new();
    if let Some(list) = response.get("rows").and_then(Value::as_array) {
        rows.reserve(list.len());
        for row in list {
            let cells = row.get("f").and_then(Value::as_array).ok_or_else(|| unexpected("a row without cells"))?;
            let mut values = Vec::with_capacity(cells.len());
            for cell in cells {
                values.push(match cell.get("v") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(text)) => Some(text.clone()),
                    Some(Value::Number(number)) => Some(number.to_string()),
                    Some(Value::Bool(flag)) => Some(flag.to_string()),
                    Some(_) => return Err(unexpected("a nested cell")),
                });
            }
            rows.push(values);
        }
    }
    let next = match string_field(response, "pageToken").filter(|token| !token.is_empty()) {
        Some(page_token) => Some(NextPage { job: job_reference(response)?, page_token }),
        None => None,
    };
    let affected_rows = response.get("numDmlAffectedRows").and_then(value_as_u64);
    Ok(QueryPage { rows, next, affected_rows })
}

fn describe_row(index: usize, insert_id: &str, reasons: &[(String, String)]) -> String {
    let reasons = reasons
        .iter()
        .map(|(reason, message)| if message.is_empty() { reason.clone() } else { format!("{reason}: {message}") })
        .collect::<Vec<_>>()
        .join(", ");
    format!("row {index} (insert id {insert_id}): {reasons}")
}

/// Whether an `insertErrors` entry refuses a field the streaming system does
/// not know yet. [`Rest::insert_all`]'s callers check with `tables.get`
/// that the table has every field they send, so such a field is one that an
/// `ALTER TABLE ... ADD COLUMN` (`migrate` adopting a score table) added
/// moments ago: BigQuery's streaming path picks up a schema change minutes
/// after the table's metadata does, and refuses the field until then.
fn is_schema_lag(reason: &str, message: &str) -> bool {
    reason == "invalid" && message.trim_start().to_ascii_lowercase().starts_with("no such field")
}

/// The first three descriptions, and how many more.
fn examples(described: &[String]) -> String {
    let mut text = described.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
    if described.len() > 3 {
        text.push_str(&format!("; and {} more", described.len() - 3));
    }
    text
}

fn transport_message(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the connection failed"
    };
    let mut message = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

fn string_field(value: &Value, name: &str) -> Option<String> {
    value.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// BigQuery writes 64-bit numbers as strings.
fn value_as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// The start of a body, for messages.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    if bytes.len() > 300 { format!("{text}...") } else { text }
}

#[cfg(test)]
mod tests {
    //! The client against a scripted HTTP server on 127.0.0.1: retries,
    //! giving up, insert errors, SQL errors in a 200 body, refused
    //! credentials. The policy's delays are zero, so nothing here depends on
    //! time.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{Shutdown, TcpListener};
    use std::sync::Mutex;

    use super::*;

    const TOKEN: &str = "ya29.test-secret-token-value";

    /// One scripted answer.
    #[derive(Clone)]
    enum Reply {
        /// A status, and a body.
        Json(u16, Value),
        /// A status, and a plain-text body.
        Text(u16, &'static str),
        /// Headers promising a long body, then the connection is closed.
        CutBody,
    }

    /// A request as the server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        authorization: Option<String>,
        body: Value,
    }

    /// Serves `replies` in order, one per connection, then 500s.
    struct Server {
        url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Server {
        fn start(replies: Vec<Reply>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
            let url = format!("http://{}/bigquery/v2", listener.local_addr().expect("address"));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut replies = replies.into_iter();
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let Some(request) = read_request(&mut stream) else {
                        continue;
                    };
                    log.lock().expect("log").push(request);
                    let reply = replies.next().unwrap_or(Reply::Text(500, "the script has no more answers"));
                    let _ = write_reply(&mut stream, reply);
                }
            });
            Self { url, seen }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().expect("log").clone()
        }
    }

    fn read_request(stream: &mut std::net::TcpStream) -> Option<Seen> {
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let mut parts = line.split_whitespace();
        let method = parts.next()?.to_owned();
        let path = parts.next()?.to_owned();
        let mut length = 0;
        let mut authorization = None;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).ok()?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':')?;
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().ok()?,
                "authorization" => authorization = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Some(Seen { method, path, authorization, body })
    }

    fn write_reply(stream: &mut std::net::TcpStream, reply: Reply) -> std::io::Result<()> {
        let (status, content_type, body) = match reply {
            Reply::Json(status, body) => (status, "application/json", body.to_string()),
            Reply::Text(status, body) => (status, "text/plain", body.to_owned()),
            Reply::CutBody => {
                stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n{\"kind\":")?;
                stream.flush()?;
                return stream.shutdown(Shutdown::Both);
            }
        };
        write!(
            stream,
            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()
    }

    fn client(server: &Server, max_attempts: u32) -> Rest {
        #[derive(Clone)]
        struct Fixed;
        #[async_trait::async_trait]
        impl Authenticator for Fixed {
            async fn access_token(&self) -> std::result::Result<String, gcp_bigquery_client::error::BQError> {
                Ok(TOKEN.to_owned())
            }
        }
        Rest::new(
            &server.url,
            "test-project".to_owned(),
            Arc::new(Fixed),
            "check GOOGLE_APPLICATION_CREDENTIALS".to_owned(),
            RetryPolicy { max_attempts, base_delay: Duration::ZERO, max_delay: Duration::ZERO },
            Duration::from_secs(30),
        )
        .expect("client")
    }

    fn select_one() -> Value {
        json!({
            "jobComplete": true,
            "jobReference": { "projectId": "test-project", "jobId": "job_1" },
            "schema": { "fields": [{ "name": "x", "type": "INTEGER" }] },
            "rows": [{ "f": [{ "v": "1" }] }],
            "totalRows": "1",
        })
    }

    fn google_error(code: u16, reason: &str, message: &str) -> Value {
        json!({ "error": { "code": code, "message": message, "errors": [{ "reason": reason, "message": message }] } })
    }

    fn rows(count: usize) -> Vec<InsertRow> {
        (0..count)
            .map(|index| InsertRow { insert_id: format!("id-{index}"), json: json!({ "n": index.to_string() }) })
            .collect()
    }

    #[tokio::test]
    async fn retries_429_and_503_then_succeeds() {
        let server = Server::start(vec![
            Reply::Json(429, google_error(429, "rateLimitExceeded", "slow down")),
            Reply::Text(503, "upstream unavailable"),
            Reply::Json(200, select_one()),
        ]);
        let page = client(&server, 5).query("SELECT 1 AS x", None).await.expect("the third attempt succeeds");
        assert_eq!(page.rows, [vec![Some("1".to_owned())]]);
        let seen = server.seen();
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|request| request.method == "POST"
            && request.path == "/bigquery/v2/projects/test-project/queries"));
        assert!(seen.iter().all(|request| request.authorization.as_deref() == Some(&format!("Bearer {TOKEN}")[..])));
        assert_eq!(seen[0].body["query"], "SELECT 1 AS x");
        assert_eq!(seen[0].body["useLegacySql"], false);
        // A resent request is the same request: BigQuery runs it once.
        assert_eq!(seen[0].body["requestId"], seen[2].body["requestId"]);
        assert_eq!(seen[0].body["requestId"].as_str().map(str::len), Some(36), "BigQuery's limit");
    }

    #[tokio::test]
    async fn retries_a_body_cut_in_the_middle_and_a_403_rate_limit() {
        let server = Server::start(vec![
            Reply::CutBody,
            Reply::Json(403, google_error(403, "rateLimitExceeded", "too many")),
            Reply::Json(200, select_one()),
        ]);
        client(&server, 3).query("SELECT 1 AS x", None).await.expect("the third attempt succeeds");
        assert_eq!(server.seen().len(), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_bound_with_unavailable() {
        let server = Server::start(vec![Reply::Text(503, "unavailable"); 10]);
        let error = client(&server, 4).query("SELECT 1 AS x", None).await.expect_err("every attempt fails");
        assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
        assert!(error.is_retryable());
        assert!(error.to_string().contains("4 attempts"), "{error}");
        assert_eq!(server.seen().len(), 4, "exactly max_attempts requests");
    }

    #[tokio::test]
    async fn array_parameters_travel_as_exact_strings() {
        let server = Server::start(vec![Reply::Json(200, select_one())]);
        let ids = [1, i64::MAX];
        client(&server, 1)
            .query_with("SELECT 1 AS x FROM t WHERE id IN UNNEST(@ids)", None, &[int64_array("ids", ids)])
            .await
            .expect("a query with parameters");
        let body = &server.seen()[0].body;
        assert_eq!(body["parameterMode"], "NAMED");
        assert_eq!(body["queryParameters"][0]["name"], "ids");
        assert_eq!(body["queryParameters"][0]["parameterType"]["arrayType"]["type"], "INT64");
        assert_eq!(
            body["queryParameters"][0]["parameterValue"]["arrayValues"],
            json!([{ "value": "1" }, { "value": "9223372036854775807" }])
        );
    }

    #[tokio::test]
    async fn a_sql_error_in_a_200_body_is_an_error() {
        let server = Server::start(vec![Reply::Json(
            200,
            json!({
                "jobComplete": true,
                "jobReference": { "jobId": "job_2" },
                "rows": [],
                "errors": [{ "reason": "invalidQuery", "message": "Syntax error: Unexpected identifier \"SELEC\" at [1:1]" }],
            }),
        )]);
        let error = client(&server, 3).query("SELEC 1", None).await.expect_err("a SQL error");
        assert!(matches!(error, Error::Backend { .. }), "{error:?}");
        assert!(error.to_string().contains("Syntax error"), "{error}");
        assert_eq!(server.seen().len(), 1, "a SQL error is not retried");
    }

    #[tokio::test]
    async fn a_missing_table_in_a_200_body_is_not_found() {
        let server = Server::start(vec![Reply::Json(
            200,
            json!({ "jobComplete": true, "errors": [{ "reason": "notFound", "message": "Not found: Table p.d.tweets" }] }),
        )]);
        let error = client(&server, 3).query("SELECT 1 FROM d.tweets", None).await.expect_err("not found");
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn refused_credentials_name_the_setting_and_never_the_token() {
        for status in [401, 403] {
            let server = Server::start(vec![Reply::Json(
                status,
                google_error(status, "authError", &format!("Invalid Credentials: token {TOKEN} expired")),
            )]);
            let error = client(&server, 5).query("SELECT 1 AS x", None).await.expect_err("refused");
            let message = format!("{error} {error:?}");
            assert!(matches!(error, Error::Unauthenticated { .. }), "{error:?}");
            assert!(message.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{message}");
            assert!(!message.contains(TOKEN), "the token leaked: {message}");
            assert_eq!(server.seen().len(), 1, "refused credentials are not retried");
        }
    }

    #[tokio::test]
    async fn a_slow_job_is_polled_and_results_are_paged() {
        let server = Server::start(vec![
            Reply::Json(200, json!({ "jobComplete": false, "jobReference": { "jobId": "job_3", "location": "EU" } })),
            Reply::Json(
                200,
                json!({
                    "jobComplete": true, "jobReference": { "jobId": "job_3", "location": "EU" },
                    "rows": [{ "f": [{ "v": "1" }] }], "pageToken": "token/2+=",
                }),
            ),
            Reply::Json(
                200,
                json!({ "jobComplete": true, "jobReference": { "jobId": "job_3", "location": "EU" }, "rows": [{ "f": [{ "v": null }] }] }),
            ),
        ]);
        let page = client(&server, 3).query_all("SELECT x", &[]).await.expect("two pages");
        assert_eq!(page.rows, [vec![Some("1".to_owned())], vec![None]]);
        let seen = server.seen();
        assert_eq!(seen[1].method, "GET");
        assert!(seen[1].path.starts_with("/bigquery/v2/projects/test-project/queries/job_3?"), "{}", seen[1].path);
        assert!(seen[1].path.contains("location=EU"), "{}", seen[1].path);
        assert!(seen[2].path.contains("pageToken=token%2F2%2B%3D"), "{}", seen[2].path);
    }

    #[tokio::test]
    async fn partial_insert_errors_are_retried_for_the_failed_rows_only() {
        let server = Server::start(vec![
            Reply::Json(
                200,
                json!({ "insertErrors": [
                    { "index": 1, "errors": [{ "reason": "backendError", "message": "try again" }] },
                    { "index": 3, "errors": [{ "reason": "stopped", "message": "" }] },
                ] }),
            ),
            Reply::Json(200, json!({ "kind": "bigquery#tableDataInsertAllResponse" })),
        ]);
        client(&server, 3).insert_all("d", "tweets", &rows(4)).await.expect("the failed rows are resent");
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].path, "/bigquery/v2/projects/test-project/datasets/d/tables/tweets/insertAll");
        let ids = |request: &Seen| -> Vec<String> {
            request.body["rows"]
                .as_array()
                .expect("rows")
                .iter()
                .map(|row| row["insertId"].as_str().expect("id").to_owned())
                .collect()
        };
        assert_eq!(ids(&seen[0]), ["id-0", "id-1", "id-2", "id-3"]);
        assert_eq!(ids(&seen[1]), ["id-1", "id-3"], "only the failed rows, with their insert ids");
        assert_eq!(seen[1].body["rows"][0]["json"], json!({ "n": "1" }));
    }

    #[tokio::test]
    async fn insert_errors_that_persist_are_reported_with_examples() {
        let failing = json!({ "insertErrors": [{ "index": 0, "errors": [{ "reason": "backendError", "message": "still down" }] }] });
        let server = Server::start(vec![Reply::Json(200, failing); 3]);
        let error = client(&server, 3).insert_all("d", "tweets", &rows(2)).await.expect_err("never written");
        assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("1 rows still failed after 3 attempts"), "{message}");
        assert!(message.contains("insert id id-0") && message.contains("still down"), "{message}");
        assert_eq!(server.seen().len(), 3);
    }

    #[tokio::test]
    async fn invalid_rows_fail_at_once_naming_them() {
        let server = Server::start(vec![Reply::Json(
            200,
            json!({ "insertErrors": [
                { "index": 0, "errors": [{ "reason": "stopped" }] },
                { "index": 1, "errors": [{ "reason": "invalid", "message": "Cannot convert value to integer.", "location": "n" }] },
            ] }),
        )]);
        let error = client(&server, 5).insert_all("d", "tweets", &rows(2)).await.expect_err("refused");
        assert!(matches!(error, Error::Backend { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("refused 1 of 2 rows")
                && message.contains("row 1 (insert id id-1): invalid: Cannot convert value to integer"),
            "{message}"
        );
        assert_eq!(server.seen().len(), 1, "an invalid row is not retried");
    }

    /// BigQuery's streaming path learns of `ALTER TABLE ADD COLUMN` minutes
    /// after `tables.get` shows the column, refusing it as `no such field`
    /// until then: the first scores after `migrate` adopted a table.
    #[tokio::test]
    async fn a_field_streaming_does_not_know_yet_is_retried() {
        let lagging = |field: &str| {
            json!({ "insertErrors": [
                { "index": 0, "errors": [{ "reason": "invalid", "message": format!("no such field: {field}."), "location": field }] },
                { "index": 1, "errors": [{ "reason": "stopped", "message": "" }] },
            ] })
        };
        let server = Server::start(vec![
            Reply::Json(200, lagging("scored_at")),
            // The message as some answers give it: no field named.
            Reply::Json(
                200,
                json!({ "insertErrors": [{ "index": 0, "errors": [{ "reason": "invalid", "message": "no such field." }] }] }),
            ),
            Reply::Json(200, json!({})),
        ]);
        client(&server, 5).insert_all("d", "scores", &rows(2)).await.expect("written once streaming knows the field");
        let sent: Vec<usize> =
            server.seen().iter().map(|request| request.body["rows"].as_array().map_or(0, Vec::len)).collect();
        assert_eq!(sent, [2, 2, 1], "the refused rows are sent again, and only they");

        let server = Server::start(vec![Reply::Json(200, lagging("checkpoint_sha256")); 3]);
        let error = client(&server, 3).insert_all("d", "scores", &rows(2)).await.expect_err("still lagging");
        assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("no such field: checkpoint_sha256")
                && message.contains("lag a few minutes behind a column just added")
                && message.contains("run the same command again"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn large_inserts_go_in_bounded_batches() {
        let replies = vec![Reply::Json(200, json!({})); 3];
        let server = Server::start(replies);
        client(&server, 1).insert_all("d", "t", &rows(INSERT_BATCH_ROWS * 2 + 1)).await.expect("three batches");
        let mut sizes: Vec<usize> =
            server.seen().iter().map(|request| request.body["rows"].as_array().map_or(0, Vec::len)).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [1, INSERT_BATCH_ROWS, INSERT_BATCH_ROWS]);
    }

    #[tokio::test]
    async fn a_resent_upload_finds_its_job_in_the_datasets_location() {
        let server = Server::start(vec![
            Reply::Json(409, google_error(409, "duplicate", "Already Exists: Job test-project:europe-west1.job_1")),
            Reply::Json(200, json!({ "datasetReference": { "datasetId": "d" }, "location": "europe-west1" })),
            Reply::Json(
                200,
                json!({ "jobReference": { "jobId": "job_1", "location": "europe-west1" }, "status": { "state": "DONE" } }),
            ),
        ]);
        let rest = client(&server, 3);
        rest.load_ndjson("d", "t", "job_1", b"{\"n\":\"1\"}\n").await.expect("the upload's job, done");
        let seen = server.seen();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen[1].path.ends_with("/datasets/d"), "{}", seen[1].path);
        assert!(seen[2].path.contains("/jobs/job_1?location=europe-west1"), "{}", seen[2].path);
    }

    #[tokio::test]
    async fn datasets_are_created_once_and_not_found_maps() {
        let server = Server::start(vec![
            Reply::Json(409, google_error(409, "duplicate", "Already Exists: dataset test-project:d")),
            Reply::Json(404, google_error(404, "notFound", "Not found: table test-project:d.t")),
        ]);
        let rest = client(&server, 3);
        let created = rest.create_dataset("d", None).await.expect("an existing dataset is fine");
        assert!(!created, "it existed");
        let error = rest.insert_all("d", "t", &rows(1)).await.expect_err("missing table");
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
        assert_eq!(server.seen()[0].body["datasetReference"]["datasetId"], "d");
    }

    #[test]
    fn a_query_over_bigquerys_resources_says_what_fits() {
        for reason in ["resourcesExceeded", "responseTooLarge"] {
            let answer = json!({
                "status": { "state": "DONE", "errorResult": { "reason": reason, "message": "Resources exceeded during query execution" } },
            });
            let Err(Failure::Fatal(error)) = job_errors(&answer) else { panic!("{reason}: not a fatal error") };
            assert!(matches!(error, Error::Backend { .. }), "{error:?}");
            let text = error.to_string();
            assert!(text.contains("Resources exceeded") && text.contains("export --to-table"), "{text}");
        }
    }

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for attempt in 2..12 {
            let ceiling = Duration::from_millis(100 * (1 << (attempt - 2)).min(10));
            let delay = policy.delay(attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        assert_eq!(RetryPolicy { max_attempts: 0, ..policy }.attempts(), 1);
    }
}
