//! `toxcli import`: read a tweets file into the store's `tweets` table.
//!
//! The file is read on a blocking thread and handed to the store in batches
//! through a bounded channel, so memory stays flat whatever the file's size.
//! Bad rows are reported (`FILE:LINE: problem`) and skipped, or, with
//! `--strict`, the first one stops the import before anything is written.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use toxstore::{Store, Tweet};

use crate::exit::{InputError, UsageError};
use crate::store_spec::StoreSettings;
use crate::tweets::{BadRow, ColumnMapping, Row, TweetFile, TweetFormat};

/// Bad rows printed one by one; the rest are only counted.
const MAX_REPORTED_BAD_ROWS: u64 = 20;

/// How to read a tweets file (shared by `import` and `score --input`).
#[derive(Debug, Clone, Args)]
pub struct TweetFileArgs {
    /// The file's format [default: from the extension: .jsonl/.ndjson/.json
    /// are JSON lines, anything else CSV]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<TweetFormat>,

    /// Stop at the first bad row, before anything is imported (default: skip
    /// bad rows and report them)
    #[arg(long)]
    pub strict: bool,
}

/// The column names of the tweets, in a file (`import`, `score --input`) or
/// in a BigQuery table (`--tweets-table`). Global: they go before or after
/// the command.
#[derive(Debug, Clone, Args)]
pub struct ColumnArgs {
    /// The column (JSON: key; a.b reaches into objects) holding the status id
    #[arg(long, global = true, default_value = "status_id", value_name = "NAME")]
    pub status_id_column: String,

    /// The column holding the user id
    #[arg(long, global = true, default_value = "user_id", value_name = "NAME")]
    pub user_id_column: String,

    /// The column holding the text
    #[arg(long, global = true, default_value = "status_text", value_name = "NAME")]
    pub text_column: String,

    /// The column holding the creation time (optional unless named here)
    /// [default: created_at]
    #[arg(long, global = true, value_name = "NAME")]
    pub created_at_column: Option<String>,
}

impl ColumnArgs {
    fn mapping(&self) -> ColumnMapping {
        ColumnMapping {
            status_id: self.status_id_column.clone(),
            user_id: self.user_id_column.clone(),
            status_text: self.text_column.clone(),
            created_at: self.created_at_column.clone().unwrap_or_else(|| "created_at".to_owned()),
            created_at_required: self.created_at_column.is_some(),
        }
    }
}

/// `toxcli import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The tweets file
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,

    #[command(flatten)]
    pub file: TweetFileArgs,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Valid rows read.
    pub rows: u64,
    /// Rows skipped as bad.
    pub rejected: u64,
    /// Rows newly written.
    pub inserted: u64,
    /// Rows the store already held.
    pub already_present: u64,
}

/// Runs `toxcli import`.
pub async fn run(settings: &StoreSettings, args: ImportArgs) -> anyhow::Result<()> {
    if settings.is_ephemeral() {
        eprintln!(
            "note: the memory store lives only as long as this command; use `toxcli score --store memory --input FILE --export OUT` to import, score and export in one go"
        );
    }
    if let Some(table) = &settings.options.layout.tweets.table {
        return Err(UsageError(format!(
            "--tweets-table {table} is read-only: toxscore never writes to it; import into the dataset's own \
             tweets table (without --tweets-table)"
        ))
        .into());
    }
    check_header(&args.input, &args.file, &settings.columns)?;
    let store = settings.open().await?;
    prepare_schema(store.as_ref()).await?;
    let summary = import_file(store.as_ref(), &args.input, &args.file, &settings.columns).await?;
    // Rows read counts the rejected ones too: every data row of the file.
    let read = summary.rows + summary.rejected;
    eprintln!(
        "imported {}: {read} {} read, {} new, {} already present, {} rejected",
        args.input.display(),
        if read == 1 { "row" } else { "rows" },
        summary.inserted,
        summary.already_present,
        summary.rejected
    );
    eprintln!("next: `toxcli migrate` to de-duplicate the texts, then `toxcli score`");
    Ok(())
}

/// Opens the file and reads its header, so that an empty file or a missing
/// column is reported before the store is touched.
pub fn check_header(path: &Path, args: &TweetFileArgs, columns: &ColumnArgs) -> anyhow::Result<()> {
    let format = args.format.unwrap_or_else(|| TweetFormat::guess(path));
    TweetFile::open(path, format, &columns.mapping())?;
    Ok(())
}

/// Creates the tables if needed (applying the pending migrations) and says
/// so when it did.
pub async fn prepare_schema(store: &dyn Store) -> anyhow::Result<()> {
    let report = store.migrate().await.context("applying the schema migrations")?;
    if !report.applied.is_empty() {
        eprintln!("schema: applied {}", report.applied.join(", "));
    }
    Ok(())
}

/// Imports a tweets file into a migrated store.
pub async fn import_file(
    store: &dyn Store,
    path: &Path,
    args: &TweetFileArgs,
    columns: &ColumnArgs,
) -> anyhow::Result<ImportSummary> {
    let format = args.format.unwrap_or_else(|| TweetFormat::guess(path));
    let mapping = columns.mapping();
    if args.strict {
        // A first pass finds the first bad row before anything is written.
        let path = path.to_owned();
        let mapping = mapping.clone();
        tokio::task::spawn_blocking(move || validate_strictly(&path, format, &mapping))
            .await
            .context("the validating thread failed")??;
    }

    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<Tweet>>(2);
    let reader_path = path.to_owned();
    let batch_rows = store.import_batch_rows();
    let reader = tokio::task::spawn_blocking(move || read_batches(&reader_path, format, &mapping, batch_rows, &sender));

    let mut summary = ImportSummary::default();
    let mut store_error = None;
    while let Some(batch) = receiver.recv().await {
        match store.import_tweets(&batch).await {
            Ok(report) => {
                summary.inserted += report.inserted;
                summary.already_present += report.already_present;
            }
            Err(error) => {
                store_error = Some(error);
                break;
            }
        }
    }
    // Dropping the receiver stops the reader if the store failed.
    drop(receiver);
    let read = reader.await.context("the reading thread failed")?;
    if let Some(error) = store_error {
        return Err(anyhow::Error::new(error).context(format!("importing {}", path.display())));
    }
    let (rows, rejected) = read?;
    summary.rows = rows;
    summary.rejected = rejected;
    if rejected > MAX_REPORTED_BAD_ROWS {
        eprintln!("{}: ... and {} more bad rows", path.display(), rejected - MAX_REPORTED_BAD_ROWS);
    }
    if rejected > 0 {
        let noun = if rejected == 1 { "row" } else { "rows" };
        eprintln!("{}: {rejected} {noun} rejected (use --strict to stop at the first)", path.display());
    }
    Ok(summary)
}

fn no_rows(path: &Path, format: TweetFormat, rejected: u64) -> InputError {
    let display = path.display();
    match (rejected, format) {
        (0, TweetFormat::Csv) => InputError::new(format!("{display} has a header line but no rows")),
        (0, TweetFormat::Jsonl) => InputError::new(format!("{display} has no rows")),
        (rejected, _) => InputError::new(format!("{display} has no valid rows ({rejected} rejected)")),
    }
}

fn validate_strictly(path: &Path, format: TweetFormat, mapping: &ColumnMapping) -> Result<(), InputError> {
    let mut rows = 0u64;
    for row in TweetFile::open(path, format, mapping)? {
        match row? {
            Row::Tweet(_) => rows += 1,
            Row::Bad(bad) => {
                return Err(InputError::new(format!(
                    "{}:{}: {} (--strict: nothing was imported)",
                    path.display(),
                    bad.line,
                    bad.problem
                )));
            }
        }
    }
    if rows == 0 {
        return Err(no_rows(path, format, 0));
    }
    Ok(())
}

/// Reads the file and sends batches of tweets; returns (valid rows, rejected
/// rows). Stops early, without error, if the receiver is gone.
fn read_batches(
    path: &Path,
    format: TweetFormat,
    mapping: &ColumnMapping,
    batch_rows: usize,
    sender: &tokio::sync::mpsc::Sender<Vec<Tweet>>,
) -> Result<(u64, u64), InputError> {
    let mut rows = 0u64;
    let mut rejected = 0u64;
    let batch_rows = batch_rows.max(1);
    let mut batch = Vec::with_capacity(batch_rows.min(1 << 16));
    for row in TweetFile::open(path, format, mapping)? {
        match row? {
            Row::Tweet(tweet) => {
                rows += 1;
                batch.push(tweet);
                if batch.len() == batch_rows {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_rows.min(1 << 16)));
                    if sender.blocking_send(full).is_err() {
                        return Ok((rows, rejected));
                    }
                }
            }
            Row::Bad(BadRow { line, problem }) => {
                rejected += 1;
                if rejected <= MAX_REPORTED_BAD_ROWS {
                    eprintln!("{}:{line}: {problem} (row skipped)", path.display());
                }
            }
        }
    }
    if rows == 0 {
        return Err(no_rows(path, format, rejected));
    }
    if !batch.is_empty() {
        let _ = sender.blocking_send(batch);
    }
    Ok((rows, rejected))
}
