//! `toxcli status`: the counts per model.

use std::io::Write;

use anyhow::Context;

use crate::store_spec::StoreSettings;

/// Runs `toxcli status`.
pub async fn run(settings: &StoreSettings) -> anyhow::Result<()> {
    let store = settings.open_existing(true).await?;
    let progress = store.progress().await.with_context(|| {
        format!("reading the counts of {} (run `toxcli import` and `toxcli migrate` first)", settings.spec)
    })?;
    let tables = store.layout().all_score_tables();
    let mut out = crate::output::stdout();
    writeln!(out, "store: {}", settings.spec)?;
    if let Some(source) = &store.layout().tweets.table {
        writeln!(out, "tweets read from: {source}")?;
    }
    writeln!(out, "status ids: {}", progress.statuses)?;
    let waiting = progress.imported_statuses.map_or(0, |imported| imported.saturating_sub(progress.statuses));
    if waiting > 0 {
        writeln!(
            out,
            "imported, not de-duplicated yet: {waiting} status ids (`toxcli migrate` or `toxcli score` joins them)"
        )?;
    }
    writeln!(out, "distinct texts: {}", progress.texts)?;
    writeln!(out)?;
    let width = progress.models.iter().map(|model| model.model.len()).max().unwrap_or(5).max(5);
    writeln!(out, "{:<width$}  {:>12}  {:>12}  {:>12}  {:>7}  table", "model", "texts", "scored", "remaining", "done")?;
    for model in &progress.models {
        let texts = model.scored + model.remaining;
        let done = if texts == 0 { 0.0 } else { 100.0 * model.scored as f64 / texts as f64 };
        let table = tables.iter().find(|table| table.model == model.model).map_or("", |table| table.table.as_ref());
        writeln!(
            out,
            "{:<width$}  {:>12}  {:>12}  {:>12}  {:>6.1}%  {table}",
            model.model, texts, model.scored, model.remaining, done
        )?;
    }
    out.flush()?;
    Ok(())
}
