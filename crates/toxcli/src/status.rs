//! `toxcli status`: the counts per model.

use anyhow::Context;

use crate::store_spec::StoreSettings;

/// Runs `toxcli status`.
pub async fn run(settings: &StoreSettings) -> anyhow::Result<()> {
    let store = settings.open().await?;
    let progress = store.progress().await.with_context(|| {
        format!("reading the counts of {} (run `toxcli import` and `toxcli migrate` first)", settings.spec)
    })?;
    println!("store: {}", settings.spec);
    println!("status ids: {}", progress.statuses);
    println!("distinct texts: {}", progress.texts);
    println!();
    let width = progress.models.iter().map(|model| model.model.len()).max().unwrap_or(5).max(5);
    println!("{:<width$}  {:>12}  {:>12}  {:>12}  {:>7}", "model", "texts", "scored", "remaining", "done");
    for model in &progress.models {
        let texts = model.scored + model.remaining;
        let done = if texts == 0 { 0.0 } else { 100.0 * model.scored as f64 / texts as f64 };
        println!(
            "{:<width$}  {:>12}  {:>12}  {:>12}  {:>6.1}%",
            model.model, texts, model.scored, model.remaining, done
        );
    }
    Ok(())
}
