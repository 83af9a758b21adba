//! The embedded backend: one SQLite file (the bundled SQLite of rusqlite).
//!
//! # Durability and concurrency
//! - **WAL** journal: readers never block the writer, and a process killed at
//!   any point (kill -9) leaves the file consistent; the transaction it was
//!   in is rolled back when the file is next opened.
//! - **`synchronous = NORMAL`**: in WAL mode a commit is written to the
//!   operating system before the call returns, so a crash of the process loses
//!   nothing committed and never corrupts the file. Only a power loss or an
//!   operating-system crash may roll back the last commits (never corrupt
//!   them). `FULL` would add an fsync per batch for that case alone, which the
//!   pipeline does not need: a lost batch is simply scored again.
//! - **One transaction per call**, begun `IMMEDIATE` so that two writers
//!   queue on the busy timeout instead of failing to upgrade a read lock.
//! - **Busy timeout** of [`BUSY_TIMEOUT`]: a second process on the same file
//!   waits that long for the lock, then gets [`Error::Unavailable`].
//! - Every blocking call runs on tokio's blocking pool through one helper,
//!   `Sqlite::blocking`; the export reads on its own connection and feeds a
//!   bounded channel, so it never holds the whole export in memory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use toxdedup::dedup::MAX_CONFLICT_EXAMPLES;
use toxdedup::migrations::{AppliedMigration, Dialect, MigrationPlan, bootstrap_sql};
use toxdedup::queries::{self, Affects};
use toxdedup::{Conflict, DedupReport, MODEL_TABLES, ModelTable};

use crate::{
    AggregateRow, CheckpointUse, Error, ExportRow, ExportRows, Grouping, ImportReport, Layout, MigrateOptions,
    MigrateReport, ModelProgress, Progress, Result, SampleQuery, ScoreBatch, ScoreRow, Store, StoredScore, Summary,
    SummaryQuery, TextCount, TextId, TextRow, TopText, Tweet, TweetSource, UnscoredQuery, validate,
};

const BACKEND: &str = "sqlite";

/// How long a call waits for another connection's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The page cache of each connection, in KiB (as a negative `cache_size`),
/// for everyday reads and writes: small, so that a long scoring run's memory
/// stays flat instead of growing as the cache fills.
const CACHE_SIZE_KIB: i64 = -8_192;

/// The page cache during de-duplication. SQLite's default of 2 MiB makes the
/// refresh's index lookups and inserts go to the operating system for most
/// pages (a 4M-tweet refresh took 52 s instead of 40 s).
const REFRESH_CACHE_SIZE_KIB: i64 = -65_536;

/// Export rows buffered between the reading thread and the consumer.
const EXPORT_CHANNEL_ROWS: usize = 4096;

/// A store in one SQLite file.
#[derive(Debug, Clone)]
pub struct Sqlite {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
    /// Always toxscore's own layout: renamed tables are for BigQuery
    /// datasets that the Python pipeline made.
    layout: Layout,
}

impl Sqlite {
    /// Opens the file at `path`, creating it if it is missing (its folder must
    /// exist), and switches it to WAL. Opening is quick and blocking.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let connection = open_connection(&path, false)?;
        Ok(Self { path, connection: Arc::new(Mutex::new(connection)), layout: Layout::default() })
    }

    /// Opens the file at `path` read-only, for commands that only read: it
    /// must exist, and is never created or changed.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let connection = open_connection(&path, true)?;
        Ok(Self { path, connection: Arc::new(Mutex::new(connection)), layout: Layout::default() })
    }

    /// Checks that a layout is toxscore's own, the only one an SQLite file
    /// has.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for renamed score tables or another tweets
    /// table.
    pub fn with_layout(self, layout: Layout) -> Result<Self> {
        if layout != Layout::default() {
            return Err(Error::InvalidInput {
                what: "an SQLite store has toxscore's own tables: --tweets-table and --score-table are for \
                       BigQuery datasets made by the Python pipeline"
                    .to_owned(),
            });
        }
        Ok(self)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` with the connection on tokio's blocking pool: the one way
    /// this backend blocks.
    async fn blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().map_err(|_| Error::Backend {
                backend: BACKEND,
                what: "the connection lock was poisoned by a panic in another thread".to_owned(),
                source: None,
            })?;
            work(&mut connection)
        })
        .await
        .map_err(|error| Error::Backend {
            backend: BACKEND,
            what: "a blocking database task failed".to_owned(),
            source: Some(Box::new(error)),
        })?
    }
}

/// Opens a connection with this backend's settings.
fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let what = || format!("opening {}", path.display());
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    // SQLite opens lazily: a WAL file it cannot read shows at the first statement.
    let open = |path: &Path| {
        Connection::open_with_flags(path, flags).and_then(|connection| {
            connection.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
            Ok(connection)
        })
    };
    let connection = match open(path) {
        Err(_) if read_only && is_on_read_only_file_system(path) => open_immutable(path, flags),
        opened => opened,
    }
    .map_err(|error| map_error(what(), error))?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(|error| map_error(what(), error))?;
    if !read_only {
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|error| map_error(what(), error))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Backend {
                backend: BACKEND,
                what: format!("{}: the file refused WAL mode (journal mode {mode})", what()),
                source: None,
            });
        }
    }
    connection.pragma_update(None, "cache_size", CACHE_SIZE_KIB).map_err(|error| map_error(what(), error))?;
    connection.pragma_update(None, "synchronous", "NORMAL").map_err(|error| map_error(what(), error))?;
    Ok(connection)
}

/// Whether the file sits on a read-only file system. There SQLite cannot
/// read a WAL file the usual way (it creates the `-shm` file beside it), and
/// nobody can change the file, so it is safe to open it as immutable.
fn is_on_read_only_file_system(path: &Path) -> bool {
    // Opening for writing changes nothing: the file is neither created nor truncated.
    matches!(
        std::fs::OpenOptions::new().write(true).open(path),
        Err(error) if error.kind() == std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Opens the file with SQLite's `immutable` URI parameter: no lock, no
/// `-shm`, no `-wal` (SQLite folds the WAL into the file when the last
/// connection closes; a `-wal` that a crash left behind is not read).
fn open_immutable(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut uri = String::from("file:");
    for character in absolute.to_string_lossy().chars() {
        match character {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            other => uri.push(other),
        }
    }
    uri.push_str("?immutable=1");
    Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
}

/// Maps a SQLite error onto the shared variants.
fn map_error(what: String, error: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    if let rusqlite::Error::SqliteFailure(failure, message) = &error {
        match failure.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return Error::Unavailable { backend: BACKEND, what, source: Some(Box::new(error)) };
            }
            ErrorCode::CannotOpen => {
                return Error::NotFound { what: format!("{what}: the file"), source: Some(Box::new(error)) };
            }
            _ => {}
        }
        // The message is all there is to say: SQLite's own error adds only
        // "SQL logic error".
        if let Some(table) = message.as_deref().and_then(|message| message.strip_prefix("no such table: ")) {
            return Error::NotFound {
                what: format!("{what}: table {table} (the store is not migrated: run `toxcli migrate` first)"),
                source: None,
            };
        }
    }
    Error::Backend { backend: BACKEND, what, source: Some(Box::new(error)) }
}

/// Shorthand: `.map_err(sql("doing what"))`.
fn sql(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |error| map_error(what.to_owned(), error)
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn migrate_blocking(connection: &mut Connection, options: MigrateOptions) -> Result<MigrateReport> {
    if options.dry_run {
        return migrate_dry_run(connection);
    }
    connection.execute_batch(bootstrap_sql(Dialect::Sqlite)).map_err(sql("creating the migrations table"))?;
    let mut report = MigrateReport::default();
    let mut first = true;
    // One transaction per migration; the plan is read again inside each, so
    // that two processes migrating the same file apply each migration once.
    loop {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("starting a migration"))?;
        let records = applied_migrations(&transaction)?;
        let plan = MigrationPlan::new(Dialect::Sqlite, &records)?;
        if first {
            report.already_applied = plan.applied.iter().map(|m| m.name.to_owned()).collect();
            first = false;
        }
        let Some(migration) = plan.pending.first() else {
            break;
        };
        transaction
            .execute_batch(migration.sql)
            .map_err(|error| map_error(format!("applying migration {}", migration.name), error))?;
        transaction
            .execute(
                "INSERT INTO toxscore_migrations (version, name, checksum) VALUES (?1, ?2, ?3)",
                params![migration.version, migration.name, migration.checksum()],
            )
            .map_err(sql("recording a migration"))?;
        transaction.commit().map_err(sql("committing a migration"))?;
        report.applied.push(migration.name.to_owned());
        report.statements.push(migration.sql.trim().to_owned());
    }
    Ok(report)
}

/// What [`migrate_blocking`] would do, read without writing.
fn migrate_dry_run(connection: &mut Connection) -> Result<MigrateReport> {
    let has_records: bool = connection
        .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'toxscore_migrations')", [], |row| {
            row.get(0)
        })
        .map_err(sql("reading the migrations table"))?;
    let mut report = MigrateReport::default();
    let records = if has_records {
        applied_migrations(connection)?
    } else {
        report.statements.push(bootstrap_sql(Dialect::Sqlite).to_owned());
        Vec::new()
    };
    let plan = MigrationPlan::new(Dialect::Sqlite, &records)?;
    report.already_applied = plan.applied.iter().map(|m| m.name.to_owned()).collect();
    for migration in plan.pending {
        report.applied.push(migration.name.to_owned());
        report.statements.push(migration.sql.trim().to_owned());
    }
    report
        .statements
        .extend(queries::refresh(Dialect::Sqlite, &TweetSource::default(), &[]).into_iter().map(|s| s.sql));
    Ok(report)
}

fn applied_migrations(connection: &Connection) -> Result<Vec<AppliedMigration>> {
    let mut statement = connection
        .prepare("SELECT version, name, checksum FROM toxscore_migrations ORDER BY version")
        .map_err(sql("reading the migrations table"))?;
    let rows = statement
        .query_map([], |row| Ok(AppliedMigration { version: row.get(0)?, name: row.get(1)?, checksum: row.get(2)? }))
        .map_err(sql("reading the migrations table"))?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql("reading the migrations table"))
}

fn import_blocking(connection: &mut Connection, tweets: &[Tweet]) -> Result<ImportReport> {
    let transaction =
        connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql("starting an import"))?;
    let mut inserted = 0u64;
    {
        let mut statement = transaction
            .prepare_cached(
                "INSERT OR IGNORE INTO tweets (status_id, user_id, status_text, created_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql("importing tweets"))?;
        for tweet in tweets {
            inserted += statement
                .execute(params![tweet.status_id, tweet.user_id, tweet.status_text, tweet.created_at])
                .map_err(sql("importing tweets"))? as u64;
        }
    }
    transaction.commit().map_err(sql("committing an import"))?;
    Ok(ImportReport { inserted, already_present: tweets.len() as u64 - inserted })
}

fn refresh_blocking(connection: &mut Connection) -> Result<DedupReport> {
    connection.pragma_update(None, "cache_size", REFRESH_CACHE_SIZE_KIB).map_err(sql("sizing the page cache"))?;
    let result = refresh_in_transaction(connection);
    // Give the large cache back whatever happened.
    connection.pragma_update(None, "cache_size", CACHE_SIZE_KIB).map_err(sql("sizing the page cache"))?;
    connection.execute_batch("PRAGMA shrink_memory").map_err(sql("releasing the page cache"))?;
    result
}

fn refresh_in_transaction(connection: &mut Connection) -> Result<DedupReport> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("starting the de-duplication"))?;
    let mut report = DedupReport::default();
    for statement in queries::refresh(Dialect::Sqlite, &TweetSource::default(), &[]) {
        let changed = transaction.execute(&statement.sql, []).map_err(sql("de-duplicating texts"))? as u64;
        match statement.affects {
            Affects::NewTexts => report.new_texts += changed,
            Affects::NewStatuses => report.new_statuses += changed,
            Affects::Nothing => {}
        }
    }
    let conflicts: i64 = transaction
        .query_row(&queries::conflict_count(Dialect::Sqlite, &TweetSource::default()), [], |row| row.get(0))
        .map_err(sql("counting conflicts"))?;
    report.conflicts = count(conflicts);
    if report.conflicts > 0 {
        let mut statement = transaction
            .prepare(&queries::conflict_examples(Dialect::Sqlite, MAX_CONFLICT_EXAMPLES, &TweetSource::default()))
            .map_err(sql("reading conflicts"))?;
        let rows = statement
            .query_map([], |row| Ok(Conflict { status_id: row.get(0)?, kept: row.get(1)?, rejected: row.get(2)? }))
            .map_err(sql("reading conflicts"))?;
        report.conflict_examples = rows.collect::<rusqlite::Result<_>>().map_err(sql("reading conflicts"))?;
    }
    transaction.commit().map_err(sql("committing the de-duplication"))?;
    Ok(report)
}

fn text_page_blocking(connection: &mut Connection, after: Option<TextId>, limit: usize) -> Result<Vec<TextCount>> {
    let mut statement =
        connection.prepare(&queries::text_page(Dialect::Sqlite, after, limit)).map_err(sql("reading status_texts"))?;
    let rows = statement
        .query_map([], |row| {
            Ok(TextCount { status_text_id: row.get(0)?, status_text: row.get(1)?, status_count: count(row.get(2)?) })
        })
        .map_err(sql("reading status_texts"))?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql("reading status_texts"))
}

fn unscored_blocking(connection: &mut Connection, table: &ModelTable, query: UnscoredQuery) -> Result<Vec<TextRow>> {
    let shard = query.shard.map(|shard| (shard.index, shard.count));
    let mut statement = connection
        .prepare(&queries::unscored(Dialect::Sqlite, table, query.after, query.limit, shard))
        .map_err(sql("reading unscored texts"))?;
    let rows = statement
        .query_map([], |row| Ok(TextRow { status_text_id: row.get(0)?, status_text: row.get(1)? }))
        .map_err(sql("reading unscored texts"))?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql("reading unscored texts"))
}

fn write_scores_blocking(
    connection: &mut Connection,
    table: &ModelTable,
    checkpoint_sha256: &str,
    rows: &[ScoreRow],
) -> Result<()> {
    let columns = table.columns.join(", ");
    let placeholders: String = (0..table.columns.len()).map(|index| format!(", ?{}", index + 2)).collect();
    let updates: String = table.columns.iter().map(|column| format!("{column} = excluded.{column}, ")).collect();
    let checkpoint_param = table.columns.len() + 2;
    let upsert = format!(
        "INSERT INTO {table_name} (status_text_id, {columns}, checkpoint_sha256, scored_at)
VALUES (?1{placeholders}, ?{checkpoint_param}, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
ON CONFLICT (status_text_id) DO UPDATE SET {updates}checkpoint_sha256 = excluded.checkpoint_sha256,
  scored_at = excluded.scored_at",
        table_name = table.table
    );
    let transaction =
        connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql("starting a score batch"))?;
    {
        let mut exists = transaction
            .prepare_cached("SELECT 1 FROM status_texts WHERE status_text_id = ?1")
            .map_err(sql("checking score rows"))?;
        let mut statement = transaction.prepare_cached(&upsert).map_err(sql("writing scores"))?;
        for row in rows {
            let known = exists
                .query_row([row.status_text_id], |_| Ok(()))
                .optional()
                .map_err(sql("checking score rows"))?
                .is_some();
            if !known {
                // Dropping the transaction rolls the batch back.
                return Err(Error::InvalidInput {
                    what: format!("score row for status_text_id {}: no such text in status_texts", row.status_text_id),
                });
            }
            let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(table.columns.len() + 2);
            values.push(row.status_text_id.into());
            values.extend(row.scores.iter().map(|&score| rusqlite::types::Value::from(score)));
            values.push(checkpoint_sha256.to_owned().into());
            statement.execute(rusqlite::params_from_iter(values)).map_err(sql("writing scores"))?;
        }
    }
    transaction.commit().map_err(sql("committing a score batch"))?;
    Ok(())
}

fn progress_blocking(connection: &mut Connection) -> Result<Progress> {
    connection
        .query_row(&queries::progress(Dialect::Sqlite, &TweetSource::default(), MODEL_TABLES), [], |row| {
            let statuses = count(row.get(0)?);
            let texts = count(row.get(1)?);
            let imported_statuses = count(row.get(2)?);
            let mut models = Vec::with_capacity(MODEL_TABLES.len());
            for (index, table) in MODEL_TABLES.iter().enumerate() {
                let scored = count(row.get(index + 3)?);
                models.push(ModelProgress {
                    model: table.model.to_owned(),
                    scored,
                    remaining: texts.saturating_sub(scored),
                });
            }
            Ok(Progress { statuses, texts, imported_statuses: Some(imported_statuses), models })
        })
        .map_err(sql("counting progress"))
}

/// Writes the export into table `name` in one transaction: a table an
/// earlier export created (recorded in `toxscore_exports`) is replaced, any
/// other table of that name is left alone.
fn export_to_table_blocking(
    connection: &mut Connection,
    table: &ModelTable,
    rows: ExportRows,
    name: &str,
) -> Result<u64> {
    let transaction =
        connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql("starting an export"))?;
    let exists: bool = transaction
        .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = ?1 COLLATE NOCASE)", [name], |row| {
            row.get(0)
        })
        .map_err(sql("looking up the export table"))?;
    if exists {
        let ours: bool = transaction
            .query_row("SELECT EXISTS (SELECT 1 FROM toxscore_exports WHERE table_name = ?1)", [name], |row| row.get(0))
            .map_err(sql("reading toxscore_exports"))?;
        if !ours {
            return Err(Error::AlreadyExists {
                what: format!("table {name} (not made by an export, so it is left alone: choose another name)"),
            });
        }
        transaction.execute_batch(&format!("DROP TABLE {name}")).map_err(sql("replacing the export table"))?;
    }
    transaction
        .execute_batch(&queries::export_to_table(Dialect::Sqlite, table, &TweetSource::default(), rows, name))
        .map_err(sql("writing the export table"))?;
    transaction
        .execute(
            "INSERT OR REPLACE INTO toxscore_exports (table_name, model) VALUES (?1, ?2)",
            params![name, table.model],
        )
        .map_err(sql("recording the export table"))?;
    let rows: i64 = transaction
        .query_row(&format!("SELECT COUNT(*) FROM {name}"), [], |row| row.get(0))
        .map_err(sql("counting the export table"))?;
    transaction.commit().map_err(sql("committing the export table"))?;
    Ok(count(rows))
}

/// Runs a query on its own read-only connection and sends its rows, each
/// parsed by `parse`, one by one; stops early when the consumer goes away.
fn stream_blocking<T>(
    path: &Path,
    query: &str,
    what: &'static str,
    parse: &dyn Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    sender: &tokio::sync::mpsc::Sender<Result<T>>,
) {
    let result = (|| -> Result<()> {
        let connection = open_connection(path, true)?;
        let mut statement = connection.prepare(query).map_err(sql(what))?;
        let mut rows = statement.query([]).map_err(sql(what))?;
        while let Some(row) = rows.next().map_err(sql(what))? {
            let parsed = parse(row).map_err(sql(what))?;
            if sender.blocking_send(Ok(parsed)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    })();
    if let Err(error) = result {
        // The consumer may be gone already; then nobody is left to tell.
        let _ = sender.blocking_send(Err(error));
    }
}

impl Sqlite {
    /// Streams a query's rows from a blocking reader through a bounded
    /// channel, so that a long result never sits in memory. The reader
    /// starts on the first poll, so that the call itself needs no runtime.
    fn stream<T, F>(&self, sql: Result<String>, what: &'static str, parse: F) -> BoxStream<'static, Result<T>>
    where
        T: Send + 'static,
        F: Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let path = self.path.clone();
        stream::once(async move {
            let (sender, mut receiver) = tokio::sync::mpsc::channel(EXPORT_CHANNEL_ROWS);
            let sql = match sql {
                Ok(sql) => sql,
                Err(error) => return stream::iter([Err(error)]).left_stream(),
            };
            tokio::task::spawn_blocking(move || stream_blocking(&path, &sql, what, &parse, &sender));
            stream::poll_fn(move |context| receiver.poll_recv(context)).right_stream()
        })
        .flatten()
        .boxed()
    }
}

#[async_trait]
impl Store for Sqlite {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    async fn migrate_with(&self, options: MigrateOptions) -> Result<MigrateReport> {
        self.blocking(move |connection| migrate_blocking(connection, options)).await
    }

    async fn import_tweets(&self, tweets: &[Tweet]) -> Result<ImportReport> {
        validate::tweets(tweets)?;
        let tweets = tweets.to_vec();
        self.blocking(move |connection| import_blocking(connection, &tweets)).await
    }

    async fn refresh_texts(&self) -> Result<DedupReport> {
        self.blocking(refresh_blocking).await
    }

    async fn text_page(&self, after: Option<TextId>, limit: usize) -> Result<Vec<TextCount>> {
        self.blocking(move |connection| text_page_blocking(connection, after, limit)).await
    }

    async fn unscored_texts(&self, table: &ModelTable, query: UnscoredQuery) -> Result<Vec<TextRow>> {
        validate::model_table(table)?;
        let table = table.clone();
        self.blocking(move |connection| unscored_blocking(connection, &table, query)).await
    }

    async fn write_scores(&self, batch: ScoreBatch<'_>) -> Result<()> {
        validate::score_batch(&batch)?;
        let table = batch.table.clone();
        let checkpoint_sha256 = batch.checkpoint_sha256.to_owned();
        let rows = batch.rows.to_vec();
        self.blocking(move |connection| write_scores_blocking(connection, &table, &checkpoint_sha256, &rows)).await
    }

    async fn progress(&self) -> Result<Progress> {
        self.blocking(progress_blocking).await
    }

    async fn export_to_table(&self, table: &ModelTable, rows: ExportRows, name: &str) -> Result<u64> {
        validate::export_rows(table, rows)?;
        validate::export_table_name(name)?;
        if toxdedup::schema::is_fixed_table(name) || MODEL_TABLES.iter().any(|known| known.table == name) {
            return Err(Error::AlreadyExists { what: format!("table {name} (one of toxscore's own)") });
        }
        let table = table.clone();
        let name = name.to_owned();
        self.blocking(move |connection| export_to_table_blocking(connection, &table, rows, &name)).await
    }

    fn export<'a>(&'a self, table: &'a ModelTable) -> BoxStream<'a, Result<ExportRow>> {
        let sql =
            validate::model_table(table).map(|()| queries::export(Dialect::Sqlite, table, &TweetSource::default()));
        let n_columns = table.columns.len();
        self.stream(sql, "exporting scores", move |row| {
            let mut scores = Vec::with_capacity(n_columns);
            for index in 0..n_columns {
                scores.push(row.get(index + 3)?);
            }
            Ok(ExportRow { status_id: row.get(0)?, user_id: row.get(1)?, status_text_id: row.get(2)?, scores })
        })
    }

    fn aggregate<'a>(
        &'a self,
        table: &'a ModelTable,
        grouping: Grouping,
        threshold: f64,
    ) -> BoxStream<'a, Result<AggregateRow>> {
        let sql = validate::aggregate(table, threshold)
            .map(|()| queries::aggregate(Dialect::Sqlite, table, &TweetSource::default(), grouping, threshold));
        let n_columns = table.columns.len();
        self.stream(sql, "aggregating scores", move |row| aggregate_row(row, grouping, n_columns))
    }

    async fn summary(&self, table: &ModelTable, query: SummaryQuery) -> Result<Summary> {
        validate::summary(table, &query)?;
        let table = table.clone();
        self.blocking(move |connection| summary_blocking(connection, &table, query)).await
    }

    async fn checkpoints(&self, table: &ModelTable) -> Result<Vec<CheckpointUse>> {
        validate::model_table(table)?;
        let table = table.clone();
        self.blocking(move |connection| checkpoints_in(connection, &table)).await
    }

    async fn sample_scores(&self, table: &ModelTable, query: SampleQuery) -> Result<Vec<StoredScore>> {
        validate::sample(table, &query)?;
        let text = queries::sample_scores(Dialect::Sqlite, table, query.rows, query.seed, &query.scored_by);
        let n_columns = table.columns.len();
        self.blocking(move |connection| {
            let mut statement = connection.prepare(&text).map_err(sql("drawing a sample of scores"))?;
            statement
                .query_map([], |row| {
                    let mut scores = Vec::with_capacity(n_columns);
                    for index in 0..n_columns {
                        scores.push(row.get(3 + index)?);
                    }
                    Ok(StoredScore {
                        status_text_id: row.get(0)?,
                        status_text: row.get(1)?,
                        checkpoint_sha256: row.get(2)?,
                        scores,
                    })
                })
                .and_then(Iterator::collect)
                .map_err(sql("drawing a sample of scores"))
        })
        .await
    }
}

/// A row of [`queries::aggregate`] (or [`queries::top_users`]).
fn aggregate_row(row: &rusqlite::Row<'_>, grouping: Grouping, n_columns: usize) -> rusqlite::Result<AggregateRow> {
    let key = match grouping {
        Grouping::User => row.get::<_, Option<i64>>(0)?.map(|id| id.to_string()),
        Grouping::Day => row.get(0)?,
    };
    let mut averages = Vec::with_capacity(n_columns);
    for index in 0..n_columns {
        averages.push(row.get(index + 2)?);
    }
    Ok(AggregateRow {
        key,
        n_statuses: count(row.get(1)?),
        averages,
        max_toxicity: row.get(2 + n_columns)?,
        share_toxic: row.get(3 + n_columns)?,
    })
}

/// [`Store::checkpoints`].
fn checkpoints_in(connection: &Connection, table: &ModelTable) -> Result<Vec<CheckpointUse>> {
    let mut statement =
        connection.prepare(&queries::checkpoints(Dialect::Sqlite, table)).map_err(sql("listing checkpoints"))?;
    statement
        .query_map([], |row| {
            Ok(CheckpointUse {
                checkpoint_sha256: row.get(0)?,
                n_texts: count(row.get(1)?),
                first_scored_at: row.get(2)?,
                last_scored_at: row.get(3)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(sql("listing checkpoints"))
}

/// The queries of [`Store::summary`], in one read transaction: one snapshot.
fn summary_blocking(connection: &mut Connection, table: &ModelTable, query: SummaryQuery) -> Result<Summary> {
    let transaction = connection.transaction().map_err(sql("starting a summary"))?;
    let source = TweetSource::default();
    let n_columns = table.columns.len();
    let users = transaction
        .query_row(&queries::users(Dialect::Sqlite, &source), [], |row| row.get(0))
        .map(count)
        .map_err(sql("counting users"))?;
    let (scored_statuses, histograms) = transaction
        .query_row(&queries::histograms(Dialect::Sqlite, table, &source, query.bins), [], |row| {
            let mut histograms = Vec::with_capacity(n_columns);
            for column in 0..n_columns {
                let mut bins = Vec::with_capacity(query.bins);
                for bin in 0..query.bins {
                    // SUM over no rows is NULL.
                    bins.push(count(row.get::<_, Option<i64>>(1 + column * query.bins + bin)?.unwrap_or(0)));
                }
                histograms.push(bins);
            }
            Ok((count(row.get(0)?), histograms))
        })
        .map_err(sql("computing histograms"))?;
    let checkpoints = checkpoints_in(&transaction, table)?;
    let top_users = {
        let sql_text =
            queries::top_users(Dialect::Sqlite, table, &source, query.threshold, query.min_statuses, query.top);
        let mut statement = transaction.prepare(&sql_text).map_err(sql("finding the top users"))?;
        statement
            .query_map([], |row| aggregate_row(row, Grouping::User, n_columns))
            .and_then(Iterator::collect)
            .map_err(sql("finding the top users"))?
    };
    let top_texts = {
        let mut statement = transaction
            .prepare(&queries::top_texts(Dialect::Sqlite, table, query.top))
            .map_err(sql("finding the top texts"))?;
        statement
            .query_map([], |row| {
                let mut scores = Vec::with_capacity(n_columns);
                for index in 0..n_columns {
                    scores.push(row.get(3 + index)?);
                }
                Ok(TopText { status_text_id: row.get(0)?, text: row.get(1)?, n_statuses: count(row.get(2)?), scores })
            })
            .and_then(Iterator::collect)
            .map_err(sql("finding the top texts"))?
    };
    Ok(Summary { users, scored_statuses, checkpoints, histograms, top_users, top_texts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Sqlite) {
        let folder = tempfile::tempdir().expect("temporary folder");
        let store = Sqlite::open(folder.path().join("toxscore.db")).expect("open");
        (folder, store)
    }

    #[tokio::test]
    async fn an_edited_migration_is_refused_naming_the_file() {
        let (_folder, store) = store();
        store.migrate().await.expect("migrate");
        let connection = Connection::open(store.path()).expect("open");
        connection.execute("UPDATE toxscore_migrations SET checksum = 'edited' WHERE version = 2", []).expect("tamper");
        let error = store.migrate().await.expect_err("edited migration");
        assert!(
            matches!(&error, Error::Migration(toxdedup::Error::MigrationEdited { file, .. }) if file.ends_with("0002_status_texts.sql")),
            "{error:?}"
        );
        assert!(error.to_string().contains("0002_status_texts.sql"), "{error}");
    }

    #[tokio::test]
    async fn a_newer_migration_is_refused() {
        let (_folder, store) = store();
        store.migrate().await.expect("migrate");
        let connection = Connection::open(store.path()).expect("open");
        connection
            .execute(
                "INSERT INTO toxscore_migrations (version, name, checksum) VALUES (99, '0099_future.sql', 'x')",
                [],
            )
            .expect("insert");
        let error = store.migrate().await.expect_err("unknown migration");
        assert!(matches!(error, Error::Migration(toxdedup::Error::UnknownMigration { version: 99 })), "{error:?}");
    }

    #[tokio::test]
    async fn the_file_is_in_wal_mode_and_reopens_with_its_data() {
        let (_folder, store) = store();
        store.migrate().await.expect("migrate");
        let tweet = Tweet { status_id: 1, user_id: 2, status_text: "x".into(), created_at: Some(3) };
        store.import_tweets(&[tweet]).await.expect("import");
        store.refresh_texts().await.expect("refresh");
        let reopened = Sqlite::open(store.path()).expect("reopen");
        assert_eq!(reopened.progress().await.expect("progress").texts, 1);
        let connection = Connection::open(store.path()).expect("open");
        let mode: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0)).expect("mode");
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_failed_score_batch_writes_nothing() {
        let (_folder, store) = store();
        store.migrate().await.expect("migrate");
        let tweet = Tweet { status_id: 1, user_id: 2, status_text: "x".into(), created_at: None };
        store.import_tweets(&[tweet]).await.expect("import");
        store.refresh_texts().await.expect("refresh");
        let table = &MODEL_TABLES[0];
        let rows = [
            ScoreRow { status_text_id: 1, scores: vec![0.5; 6] },
            ScoreRow { status_text_id: 2, scores: vec![0.5; 6] },
        ];
        let error = store
            .write_scores(ScoreBatch { table, checkpoint_sha256: "ab", rows: &rows })
            .await
            .expect_err("text 2 does not exist");
        assert!(matches!(error, Error::InvalidInput { .. }), "{error:?}");
        assert_eq!(store.progress().await.expect("progress").models[0].scored, 0);
    }

    #[tokio::test]
    async fn a_missing_folder_is_not_found() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let error = Sqlite::open(folder.path().join("missing").join("toxscore.db")).expect_err("no folder");
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn two_connections_write_the_same_file() {
        let (_folder, first) = store();
        first.migrate().await.expect("migrate");
        let second = Sqlite::open(first.path()).expect("second connection");
        let batch = |offset: i64| -> Vec<Tweet> {
            (0..200)
                .map(|index| Tweet {
                    status_id: offset + index,
                    user_id: 1,
                    status_text: format!("text {}", index % 50),
                    created_at: None,
                })
                .collect()
        };
        let (batch_a, batch_b) = (batch(0), batch(1000));
        let (a, b) = tokio::join!(first.import_tweets(&batch_a), second.import_tweets(&batch_b));
        assert_eq!(a.expect("first").inserted + b.expect("second").inserted, 400);
        let (a, b) = tokio::join!(first.refresh_texts(), second.refresh_texts());
        assert_eq!(a.expect("first").new_statuses + b.expect("second").new_statuses, 400);
        let progress = first.progress().await.expect("progress");
        assert_eq!((progress.statuses, progress.texts), (400, 50));
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_an_error_naming_it() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let path = folder.path().join("notes.txt");
        std::fs::write(&path, "these are not the pages you are looking for\n".repeat(100)).expect("write");
        let error = Sqlite::open(&path).expect_err("not a database");
        assert!(error.to_string().contains("notes.txt"), "{error}");
    }

    #[tokio::test]
    async fn an_export_dropped_early_stops_its_reader() {
        let (_folder, store) = store();
        store.migrate().await.expect("migrate");
        let tweets: Vec<Tweet> = (0..20_000)
            .map(|index| Tweet {
                status_id: index,
                user_id: 1,
                status_text: format!("t{}", index % 100),
                created_at: None,
            })
            .collect();
        store.import_tweets(&tweets).await.expect("import");
        store.refresh_texts().await.expect("refresh");
        let table = &MODEL_TABLES[0];
        let rows: Vec<ScoreRow> = (1..=100).map(|id| ScoreRow { status_text_id: id, scores: vec![0.5; 6] }).collect();
        store.write_scores(ScoreBatch { table, checkpoint_sha256: "ab", rows: &rows }).await.expect("scores");
        // More rows than the channel holds, so the reader is blocked on a
        // full channel when the consumer goes away.
        let first: Vec<ExportRow> = store.export(table).take(3).map(|row| row.expect("row")).collect().await;
        assert_eq!(first.iter().map(|row| row.status_id).collect::<Vec<_>>(), [0, 1, 2]);
        // The store goes on working, and a full export sees every status id.
        store.write_scores(ScoreBatch { table, checkpoint_sha256: "cd", rows: &rows }).await.expect("scores again");
        let mut n_rows = 0;
        let mut export = store.export(table);
        while let Some(row) = export.next().await {
            assert_eq!(row.expect("row").status_id, n_rows);
            n_rows += 1;
        }
        assert_eq!(n_rows, 20_000);
    }

    /// `(status_id, status_text_id)` and `(status_text_id, status_text,
    /// status_count)` as stored in the file.
    fn tables(path: &Path) -> (Vec<(i64, i64)>, Vec<(i64, String, u64)>) {
        let connection = Connection::open(path).expect("open");
        let mut statement =
            connection.prepare("SELECT status_id, status_text_id FROM statuses_texts ORDER BY status_id").expect("sql");
        let joins = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows");
        let mut statement = connection
            .prepare("SELECT status_text_id, status_text, status_count FROM status_texts ORDER BY status_text_id")
            .expect("sql");
        let texts = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, count(row.get(2)?))))
            .expect("query")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows");
        (joins, texts)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// The SQL of the refresh agrees with `toxdedup::Dedup`, the reference,
        /// over two increments of arbitrary tweets (repeated texts and status
        /// ids, the empty text, look-alikes).
        #[test]
        fn the_sql_refresh_matches_the_reference(
            rows in proptest::collection::vec(
                (0i64..30, proptest::sample::select(vec!["", " ", "a", "a ", "A", "\u{e9}", "e\u{301}", "b", "ab"])),
                0..60,
            ),
            split in 0usize..60,
        ) {
            let split = split.min(rows.len());
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let (_folder, store) = store();
            let mut reference = toxdedup::Dedup::new();
            runtime.block_on(store.migrate()).expect("migrate");
            for end in [split, rows.len()] {
                let tweets: Vec<Tweet> = rows[..end]
                    .iter()
                    .map(|(status_id, text)| Tweet { status_id: *status_id, user_id: 1, status_text: (*text).to_owned(), created_at: None })
                    .collect();
                runtime.block_on(store.import_tweets(&tweets)).expect("import");
                let report = runtime.block_on(store.refresh_texts()).expect("refresh");
                let expected = reference.refresh(rows[..end].iter().map(|(id, text)| (*id, *text)));
                proptest::prop_assert_eq!(report, expected);
                let (joins, texts) = tables(store.path());
                proptest::prop_assert_eq!(joins, reference.statuses().collect::<Vec<_>>());
                let expected_texts: Vec<(i64, String, u64)> = reference
                    .texts()
                    .map(|entry| (entry.status_text_id, entry.status_text.to_owned(), entry.status_count))
                    .collect();
                proptest::prop_assert_eq!(texts, expected_texts);
            }
        }
    }
}
