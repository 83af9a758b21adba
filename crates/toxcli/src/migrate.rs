//! `toxcli migrate`: apply the schema migrations, then de-duplicate the
//! imported tweets into `status_texts` and `statuses_texts`.

use anyhow::Context;
use toxstore::{DedupReport, Store};

use crate::store_spec::StoreSettings;
use crate::tweets::shorten;

/// Runs `toxcli migrate`.
pub async fn run(settings: &StoreSettings) -> anyhow::Result<()> {
    let store = settings.open().await?;
    let report = store.migrate().await.context("applying the schema migrations")?;
    if report.applied.is_empty() {
        eprintln!("schema: up to date ({} migrations applied before)", report.already_applied.len());
    } else {
        eprintln!("schema: applied {}", report.applied.join(", "));
    }
    refresh(store.as_ref()).await?;
    Ok(())
}

/// De-duplicates the texts and prints the report.
pub async fn refresh(store: &dyn Store) -> anyhow::Result<DedupReport> {
    let report = store.refresh_texts().await.context("de-duplicating the imported texts")?;
    eprintln!("texts: {} new distinct texts, {} new status ids", report.new_texts, report.new_statuses);
    print_conflicts(&report);
    Ok(report)
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
