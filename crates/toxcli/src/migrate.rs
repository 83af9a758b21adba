//! `toxcli migrate`: apply the schema migrations, adopt the tables the
//! Python pipeline made (columns added, nothing rewritten), then
//! de-duplicate the imported tweets into `status_texts` and `statuses_texts`.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use toxstore::{DedupReport, MigrateOptions, Store};

use crate::store_spec::StoreSettings;
use crate::tweets::shorten;

/// `toxcli migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Change nothing: print every statement a real run would send (on
    /// stdout), after reading what is there
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `toxcli migrate`.
pub async fn run(settings: &StoreSettings, args: &MigrateArgs) -> anyhow::Result<()> {
    // A dry run must not even create the file.
    let store = if args.dry_run { settings.open_existing(true).await? } else { settings.open().await? };
    let report =
        store.migrate_with(MigrateOptions { dry_run: args.dry_run }).await.context("applying the schema migrations")?;
    if args.dry_run {
        let mut out = crate::output::stdout();
        writeln!(out, "-- toxcli migrate --dry-run on {}: nothing was changed; a real run sends:", settings.spec)?;
        for statement in &report.statements {
            writeln!(out, "{};\n", statement.trim_end_matches(';'))?;
        }
        out.flush()?;
    }
    let (applied, adopted) = if args.dry_run { ("would apply", "would adopt") } else { ("applied", "adopted") };
    if report.applied.is_empty() {
        eprintln!("schema: up to date ({} migrations applied before)", report.already_applied.len());
    } else {
        eprintln!("schema: {applied} {}", report.applied.join(", "));
    }
    for dataset in &report.created {
        eprintln!(
            "created dataset {dataset}: it did not exist (to adopt an existing dataset, name its project in \
             --store bigquery:PROJECT.DATASET or BIGQUERY_PROJECT_NAME)"
        );
    }
    for table in &report.adopted {
        eprintln!("{adopted} {table}");
    }
    if !report.adopted.is_empty() {
        eprintln!(
            "the scores already there are kept as they are; {}`toxcli verify --scored-by unrecorded` rescores a \
             sample of them to check that they are their texts' (docs/pipeline.md)",
            if args.dry_run { "after `toxcli migrate`, " } else { "" }
        );
    }
    if args.dry_run {
        return Ok(());
    }
    refresh(store.as_ref()).await?;
    Ok(())
}

/// De-duplicates the texts and prints the report.
pub async fn refresh(store: &dyn Store) -> anyhow::Result<DedupReport> {
    let report = store.refresh_texts().await.context("de-duplicating the imported texts")?;
    eprintln!("texts: {} new distinct texts, {} new status ids", report.new_texts, report.new_statuses);
    print_conflicts(&report);
    print_skipped(&report);
    Ok(report)
}

fn print_skipped(report: &DedupReport) {
    if report.skipped_tweets == 0 {
        return;
    }
    eprintln!(
        "warning: {} tweets rows skipped: their status id is not a whole number (or is NULL), or their text is NULL; \
         for example status ids {}",
        report.skipped_tweets,
        report.skipped_examples.iter().map(|id| shorten(id, 30)).collect::<Vec<_>>().join(", ")
    );
}

fn print_conflicts(report: &DedupReport) {
    if report.conflicts == 0 {
        return;
    }
    eprintln!(
        "warning: {} {} a status id already joined to another text; each status id keeps one text, for example:",
        report.conflicts,
        if report.conflicts == 1 { "row carries" } else { "rows carry" }
    );
    for conflict in &report.conflict_examples {
        eprintln!(
            "  status {}: kept {}, ignored {}",
            conflict.status_id,
            shorten(&conflict.kept, 50),
            shorten(&conflict.rejected, 50)
        );
    }
}
