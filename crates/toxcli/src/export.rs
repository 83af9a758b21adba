//! `toxcli export`: one row per status id with its text's scores.
//!
//! Rows are streamed from the store and written as they arrive, so an export
//! of tens of millions of rows never sits in memory. With `--output` they go
//! to a temporary file beside it, which is renamed into place only once it is
//! complete: a failed export never leaves a truncated file under that name.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use futures::StreamExt;
use toxstore::{ExportRows, Grouping, ModelTable, Store};

use crate::exit::UsageError;
use crate::store_spec::StoreSettings;

/// The format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl ExportFormat {
    /// From the output's extension: `.jsonl`, `.ndjson`, `.json` are JSON
    /// lines, anything else (and stdout) CSV.
    pub fn guess(path: Option<&Path>) -> ExportFormat {
        let extension = path.and_then(Path::extension).and_then(|extension| extension.to_str()).unwrap_or("");
        match extension.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" => ExportFormat::Jsonl,
            _ => ExportFormat::Csv,
        }
    }
}

/// `toxcli export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The model whose scores to export
    #[arg(long, env = "MODEL_NAME", default_value = "original", value_name = "NAME")]
    pub model: String,

    /// The file to write [default: stdout]
    #[arg(long, value_name = "FILE", conflicts_with = "to_table")]
    pub output: Option<PathBuf>,

    /// Write the rows into this table of the store instead (created, or
    /// replaced if an earlier export made it; any other table of that name is
    /// left alone). On BigQuery one CREATE TABLE AS SELECT: no row leaves it
    #[arg(long, value_name = "NAME", conflicts_with = "format")]
    pub to_table: Option<String>,

    /// The format [default: from the output's extension, else csv]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<ExportFormat>,

    /// Aggregate instead: one row per user (user_id, n_statuses, avg_<class>...,
    /// max_toxicity, share_toxic) or per UTC day of created_at (day,
    /// n_statuses, avg_<class>..., share_toxic; statuses without created_at
    /// on a row with an empty day), computed in the store; with --to-table,
    /// into a table of the store
    #[arg(long, value_enum, value_name = "GROUP")]
    pub by: Option<By>,

    /// With --by: a status counts as toxic (share_toxic) when its toxicity is
    /// at least this
    #[arg(long, default_value_t = 0.5, value_name = "SCORE", value_parser = parse_threshold, requires = "by")]
    pub threshold: f64,
}

/// `--by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// One row per user id.
    User,
    /// One row per UTC day of `created_at`.
    Day,
}

pub fn parse_threshold(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?}: expected a score from 0 to 1")),
    }
}

/// Runs `toxcli export`.
pub async fn run(settings: &StoreSettings, args: ExportArgs) -> anyhow::Result<()> {
    model_table(&args.model)?;
    if let Some(name) = &args.to_table
        && !toxdedup::schema::is_plain_identifier(name)
    {
        return Err(UsageError(format!(
            "--to-table {name:?}: expected letters, digits and _, not starting with a digit, at most 128 characters"
        ))
        .into());
    }
    if let Some(output) = &args.output {
        crate::output::check_output(output)?;
    }
    // Only `--to-table` writes (a table of the store).
    let store = settings.open_existing(args.to_table.is_none()).await?;
    let table = store.layout().score_table(&args.model)?;
    let what = match args.by {
        None => ExportRows::Statuses,
        Some(By::User) => ExportRows::Grouped { grouping: Grouping::User, threshold: args.threshold },
        Some(By::Day) => ExportRows::Grouped { grouping: Grouping::Day, threshold: args.threshold },
    };
    if let Some(name) = &args.to_table {
        let rows = store
            .export_to_table(&table, what, name)
            .await
            .with_context(|| format!("exporting the scores of model {} to table {name}", table.model))?;
        eprintln!("exported {rows} rows of model {} to table {name} of {}", table.model, settings.spec);
        return Ok(());
    }
    let format = args.format.unwrap_or_else(|| ExportFormat::guess(args.output.as_deref()));
    let rows = export_to(store.as_ref(), &table, what, args.output.as_deref(), format).await?;
    if let Some(output) = &args.output {
        eprintln!("exported {rows} rows of model {} to {}", table.model, output.display());
    }
    Ok(())
}

/// The score table of a model name, or a usage error listing the names.
pub fn model_table(name: &str) -> anyhow::Result<&'static ModelTable> {
    ModelTable::by_model(name).map_err(|error| UsageError(format!("--model: {error}")).into())
}

/// Exports a model's scores to a file (atomically) or to stdout; returns the
/// number of rows.
pub async fn export_to(
    store: &dyn Store,
    table: &ModelTable,
    what: ExportRows,
    output: Option<&Path>,
    format: ExportFormat,
) -> anyhow::Result<u64> {
    match output {
        None => {
            let mut writer = crate::output::stdout();
            write_rows(store, table, what, format, &mut writer).await
        }
        Some(path) => {
            let mut file = crate::output::OutputFile::create(path)?;
            let rows = write_rows(store, table, what, format, &mut file).await?;
            file.commit()?;
            Ok(rows)
        }
    }
}

async fn write_rows(
    store: &dyn Store,
    table: &ModelTable,
    what: ExportRows,
    format: ExportFormat,
    writer: &mut dyn Write,
) -> anyhow::Result<u64> {
    if let ExportRows::Grouped { grouping: by, threshold } = what {
        return write_aggregates(store, table, by, threshold, format, writer).await;
    }
    // The first row is read before the header is written, so that a store
    // that cannot be read prints nothing.
    let mut stream = store.export(table).peekable();
    if let Some(Err(_)) = std::pin::Pin::new(&mut stream).peek().await {
        let error = stream.next().await.expect("a peeked row").expect_err("a peeked error");
        return Err(anyhow::Error::new(error).context(format!("reading the scores of model {}", table.model)));
    }
    let mut line = String::with_capacity(256);
    if format == ExportFormat::Csv {
        line.push_str("status_id,user_id,status_text_id");
        for column in table.columns {
            line.push(',');
            line.push_str(column);
        }
        line.push('\n');
        writer.write_all(line.as_bytes()).context("writing the export")?;
    }
    let mut rows = 0u64;
    while let Some(row) = stream.next().await {
        let row = row.with_context(|| format!("reading the scores of model {}", table.model))?;
        line.clear();
        format_row(&mut line, format, table, &row);
        writer.write_all(line.as_bytes()).context("writing the export")?;
        rows += 1;
    }
    writer.flush().context("writing the export")?;
    Ok(rows)
}

/// The columns of an aggregate export, in order.
async fn write_aggregates(
    store: &dyn Store,
    table: &ModelTable,
    by: Grouping,
    threshold: f64,
    format: ExportFormat,
    writer: &mut dyn Write,
) -> anyhow::Result<u64> {
    use std::fmt::Write as _;
    let columns = toxdedup::queries::aggregate_columns(table, by);
    // As for the rows: nothing is written when the store cannot be read.
    let mut stream = store.aggregate(table, by, threshold).peekable();
    if let Some(Err(_)) = std::pin::Pin::new(&mut stream).peek().await {
        let error = stream.next().await.expect("a peeked row").expect_err("a peeked error");
        return Err(anyhow::Error::new(error).context(format!("aggregating the scores of model {}", table.model)));
    }
    if format == ExportFormat::Csv {
        writeln!(writer, "{}", columns.join(",")).context("writing the export")?;
    }
    let mut rows = 0u64;
    let mut line = String::with_capacity(256);
    while let Some(row) = stream.next().await {
        let row = row.with_context(|| format!("aggregating the scores of model {}", table.model))?;
        line.clear();
        // The values in column order; the key as text (empty, or JSON null, when missing).
        let mut values: Vec<String> = vec![row.n_statuses.to_string()];
        values.extend(row.averages.iter().map(f64::to_string));
        if by == Grouping::User {
            values.push(row.max_toxicity.to_string());
        }
        values.push(row.share_toxic.to_string());
        match format {
            ExportFormat::Csv => {
                let _ = write!(line, "{}", row.key.as_deref().unwrap_or(""));
                for value in &values {
                    let _ = write!(line, ",{value}");
                }
            }
            ExportFormat::Jsonl => {
                let key = match (&row.key, by) {
                    (None, _) => "null".to_owned(),
                    (Some(key), Grouping::User) => key.clone(),
                    (Some(key), Grouping::Day) => format!("\"{key}\""),
                };
                let _ = write!(line, "{{\"{}\":{key}", columns[0]);
                for (column, value) in columns[1..].iter().zip(&values) {
                    let _ = write!(line, ",\"{column}\":{value}");
                }
                line.push('}');
            }
        }
        line.push('\n');
        writer.write_all(line.as_bytes()).context("writing the export")?;
        rows += 1;
    }
    writer.flush().context("writing the export")?;
    Ok(rows)
}

fn format_row(line: &mut String, format: ExportFormat, table: &ModelTable, row: &toxstore::ExportRow) {
    use std::fmt::Write as _;
    // `{}` on f64 prints the shortest text that reads back as the same value.
    match format {
        ExportFormat::Csv => {
            let user_id = row.user_id.map(|id| id.to_string()).unwrap_or_default();
            let _ = write!(line, "{},{user_id},{}", row.status_id, row.status_text_id);
            for score in &row.scores {
                let _ = write!(line, ",{score}");
            }
        }
        ExportFormat::Jsonl => {
            let user_id = row.user_id.map_or_else(|| "null".to_owned(), |id| id.to_string());
            let _ = write!(
                line,
                "{{\"status_id\":{},\"user_id\":{user_id},\"status_text_id\":{}",
                row.status_id, row.status_text_id
            );
            for (column, score) in table.columns.iter().zip(&row.scores) {
                if score.is_finite() {
                    let _ = write!(line, ",\"{column}\":{score}");
                } else {
                    let _ = write!(line, ",\"{column}\":null");
                }
            }
            line.push('}');
        }
    }
    line.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_formatted_with_round_trip_floats() {
        let table = model_table("original").expect("table");
        let row = toxstore::ExportRow {
            status_id: 5,
            user_id: Some(7),
            status_text_id: 1,
            scores: vec![0.1, 0.25, 1e-7, 0.5, 1.0, 0.0],
        };
        let mut line = String::new();
        format_row(&mut line, ExportFormat::Csv, table, &row);
        assert_eq!(line, "5,7,1,0.1,0.25,0.0000001,0.5,1,0\n");
        line.clear();
        format_row(&mut line, ExportFormat::Jsonl, table, &row);
        let value: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(value["identity_hate"], 0.0);
        assert_eq!(value["severe_toxicity"], 0.25);
        assert!(model_table("nope").is_err());
    }
}
