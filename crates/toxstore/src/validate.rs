//! Input checks shared by every backend, run before anything is written, so
//! that a bad call fails the same way everywhere and writes nothing.

use toxdedup::ModelTable;

use crate::{Error, Result, ScoreBatch, Tweet};

/// Status ids must be non-negative.
pub(crate) fn tweets(tweets: &[Tweet]) -> Result<()> {
    for (index, tweet) in tweets.iter().enumerate() {
        if tweet.status_id < 0 {
            return Err(Error::InvalidInput {
                what: format!(
                    "tweet {index} of the batch has status id {}: status ids must be non-negative",
                    tweet.status_id
                ),
            });
        }
    }
    Ok(())
}

/// The table must be one of `toxdedup::MODEL_TABLES`, so its names may reach
/// SQL.
pub(crate) fn model_table(table: &ModelTable) -> Result<()> {
    table.check_known().map_err(|error| Error::InvalidInput { what: error.to_string() })
}

/// A known table, a checkpoint hash, and one finite score per column in every
/// row.
pub(crate) fn score_batch(batch: &ScoreBatch<'_>) -> Result<()> {
    model_table(batch.table)?;
    if batch.checkpoint_sha256.trim().is_empty() {
        return Err(Error::InvalidInput {
            what: format!("score batch for {}: the checkpoint hash is empty", batch.table.table),
        });
    }
    let n_columns = batch.table.columns.len();
    for (index, row) in batch.rows.iter().enumerate() {
        if row.scores.len() != n_columns {
            return Err(Error::InvalidInput {
                what: format!(
                    "score row {index} (status_text_id {}) has {} scores, but {} has {n_columns} columns ({})",
                    row.status_text_id,
                    row.scores.len(),
                    batch.table.table,
                    batch.table.columns.join(", ")
                ),
            });
        }
        if let Some(score) = row.scores.iter().find(|score| !score.is_finite()) {
            return Err(Error::InvalidInput {
                what: format!(
                    "score row {index} (status_text_id {}) holds {score}: scores must be finite",
                    row.status_text_id
                ),
            });
        }
    }
    Ok(())
}

/// The name of a table `export_to_table` creates: a plain identifier, as it
/// is written into SQL.
pub(crate) fn export_table_name(name: &str) -> Result<()> {
    if toxdedup::schema::is_plain_identifier(name) {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            what: format!(
                "export table {name:?}: expected letters, digits and _, not starting with a digit, at most 128 characters"
            ),
        })
    }
}

/// A known table and a finite threshold (it is written into SQL as a number).
pub(crate) fn aggregate(table: &ModelTable, threshold: f64) -> Result<()> {
    model_table(table)?;
    if !threshold.is_finite() {
        return Err(Error::InvalidInput { what: format!("threshold {threshold}: expected a finite number") });
    }
    if !table.columns.contains(&"toxicity") {
        return Err(Error::InvalidInput { what: format!("table {} has no toxicity column", table.table) });
    }
    Ok(())
}

/// What an export to a table writes: a known table; grouped, a finite threshold.
pub(crate) fn export_rows(table: &ModelTable, rows: crate::ExportRows) -> Result<()> {
    match rows {
        crate::ExportRows::Statuses => model_table(table),
        crate::ExportRows::Grouped { threshold, .. } => aggregate(table, threshold),
    }
}

/// A summary query: bins and top within their bounds, a finite threshold,
/// a table with a toxicity column.
pub(crate) fn summary(table: &ModelTable, query: &crate::SummaryQuery) -> Result<()> {
    aggregate(table, query.threshold)?;
    if !(1..=crate::SummaryQuery::MAX_BINS).contains(&query.bins) {
        return Err(Error::InvalidInput {
            what: format!("{} histogram bins: expected 1 to {}", query.bins, crate::SummaryQuery::MAX_BINS),
        });
    }
    if query.top > crate::SummaryQuery::MAX_TOP {
        return Err(Error::InvalidInput {
            what: format!("top {}: expected at most {}", query.top, crate::SummaryQuery::MAX_TOP),
        });
    }
    Ok(())
}

pub(crate) fn sample(table: &ModelTable, query: &crate::SampleQuery) -> Result<()> {
    model_table(table)?;
    if !(1..=crate::SampleQuery::MAX_ROWS).contains(&query.rows) {
        return Err(Error::InvalidInput {
            what: format!("a sample of {} scores: expected 1 to {}", query.rows, crate::SampleQuery::MAX_ROWS),
        });
    }
    query.scored_by.check().map_err(|what| Error::InvalidInput { what })
}
