//! `toxcli report`: one self-contained HTML page of what a model's scores
//! say: the counts and the checkpoints that scored, a histogram per class,
//! toxicity per day, the most toxic users and texts.
//!
//! Everything comes from the store's aggregate queries
//! ([`Store::summary`](toxstore::Store::summary), the per-day
//! [`Store::aggregate`](toxstore::Store::aggregate) and
//! [`Store::progress`](toxstore::Store::progress)): a few hundred rows at
//! most, whatever the number of scores. The charts are SVG drawn by plotters
//! ([`charts`]), inline in the page ([`page`]): nothing is fetched when it
//! is opened, and there is no script.

mod charts;
mod page;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use futures::TryStreamExt;
use toxstore::{AggregateRow, Grouping, ModelTable, Progress, Store, Summary, SummaryQuery};

use crate::exit::UsageError;
use crate::store_spec::StoreSettings;

/// `toxcli report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The model whose scores to report
    #[arg(long, env = "MODEL_NAME", default_value = "original", value_name = "NAME")]
    pub model: String,

    /// The HTML file to write (replaced atomically)
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    pub output: PathBuf,

    /// A status counts as toxic when its toxicity is at least this
    #[arg(long, default_value_t = 0.5, value_name = "SCORE", value_parser = crate::export::parse_threshold)]
    pub threshold: f64,

    /// The top users are chosen among users with at least this many scored
    /// statuses
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub min_statuses: u64,

    /// How many top users and top texts to list
    #[arg(long, default_value_t = 20, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=SummaryQuery::MAX_TOP as u64))]
    pub top: u64,

    /// Bins of each class's histogram
    #[arg(long, default_value_t = 20, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=SummaryQuery::MAX_BINS as u64))]
    pub bins: u64,
}

/// What the page shows, read from the store.
#[derive(Debug)]
pub struct ReportData<'a> {
    /// The model's score table.
    pub table: &'a ModelTable,
    /// Which store, as the user named it.
    pub store: String,
    /// When the report was made (UTC).
    pub generated_at: String,
    /// The query the summary answered.
    pub query: SummaryQuery,
    /// Distinct status ids.
    pub statuses: u64,
    /// Distinct texts.
    pub texts: u64,
    /// Texts the model has scored.
    pub scored_texts: u64,
    /// Texts it has not scored yet.
    pub remaining_texts: u64,
    /// Users, checkpoints, histograms, top users and texts.
    pub summary: Summary,
    /// One row per UTC day with scored statuses, in day order; the statuses
    /// without `created_at` (key `None`) are not in it.
    pub days: Vec<AggregateRow>,
    /// The scored statuses without `created_at`.
    pub statuses_without_day: u64,
}

/// Runs `toxcli report`.
pub async fn run(settings: &StoreSettings, args: ReportArgs) -> anyhow::Result<()> {
    crate::export::model_table(&args.model)?;
    crate::output::check_output(&args.output)?;
    let store = settings.open_existing(true).await?;
    let table = store.layout().score_table(&args.model)?;
    let query = SummaryQuery {
        bins: usize::try_from(args.bins).map_err(|_| UsageError(format!("--bins {}: too many", args.bins)))?,
        threshold: args.threshold,
        min_statuses: args.min_statuses,
        top: usize::try_from(args.top).map_err(|_| UsageError(format!("--top {}: too many", args.top)))?,
    };
    let data = read(store.as_ref(), &table, query, settings.spec.to_string()).await?;
    let html = page::render(&data)?;
    crate::output::write_file_atomically(&args.output, html.as_bytes())?;
    eprintln!(
        "wrote the report of model {} ({} scored statuses) to {}",
        table.model,
        data.summary.scored_statuses,
        args.output.display()
    );
    Ok(())
}

/// Reads everything the page shows.
pub async fn read<'a>(
    store: &dyn Store,
    table: &'a ModelTable,
    query: SummaryQuery,
    store_name: String,
) -> anyhow::Result<ReportData<'a>> {
    let progress: Progress = store.progress().await.with_context(|| {
        format!("reading the counts of {store_name} (run `toxcli import` and `toxcli migrate` first)")
    })?;
    let model = progress.models.iter().find(|model| model.model == table.model);
    let summary = store
        .summary(table, query)
        .await
        .with_context(|| format!("summing up the scores of model {} in {store_name}", table.model))?;
    let mut days: Vec<AggregateRow> = store
        .aggregate(table, Grouping::Day, query.threshold)
        .try_collect()
        .await
        .with_context(|| format!("aggregating the scores of model {} per day in {store_name}", table.model))?;
    let statuses_without_day = match days.first() {
        Some(row) if row.key.is_none() => days.remove(0).n_statuses,
        _ => 0,
    };
    Ok(ReportData {
        table,
        store: store_name,
        generated_at: jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        query,
        statuses: progress.statuses,
        texts: progress.texts,
        scored_texts: model.map_or(0, |model| model.scored),
        remaining_texts: model.map_or(0, |model| model.remaining),
        summary,
        days,
        statuses_without_day,
    })
}
