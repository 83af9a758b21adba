//! `toxcli verify`: rescore a seeded sample of the stored scores and
//! compare them with what the model computes for their texts.
//!
//! A score table adopted from the Python pipeline holds rows that no
//! toxscore checkpoint wrote, keyed by text ids that `ROW_NUMBER() OVER()`
//! gave: if `status_texts` was rebuilt after they were written, they belong
//! to other texts now, and nothing in the table shows it. A sample of a few
//! hundred texts, rescored, does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use toxstore::{SampleQuery, ScoredBy, StoredScore};

use crate::exit::{Mismatch, UsageError};
use crate::model_args::{ModelArgs, short_sha};
use crate::store_spec::StoreSettings;

/// `toxcli verify` arguments.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// How many stored scores to rescore.
    #[arg(long, default_value_t = 200, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=SampleQuery::MAX_ROWS as u64))]
    pub sample: u64,
    /// Which texts are drawn: a seed draws the same texts every time, on every store.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Whose scores to draw from: any, unrecorded (stored without a
    /// checkpoint: the Python pipeline's rows), or a checkpoint's SHA-256
    /// (or its first hex digits, as `score` prints them).
    #[arg(long, default_value = "any", value_name = "WHO", value_parser = parse_scored_by)]
    pub scored_by: ScoredBy,
    /// The largest difference between a stored and a rescored score that
    /// still counts as the same (toxscore and PyTorch agree within 1e-5).
    #[arg(long, default_value_t = 1e-4, value_name = "X", value_parser = parse_tolerance)]
    pub tolerance: f64,
    /// Texts per model batch.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub batch_size: u64,
    /// Also write every drawn text with its stored and rescored scores (CSV).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn parse_scored_by(text: &str) -> Result<ScoredBy, String> {
    let scored_by = match text.trim() {
        "any" => ScoredBy::Any,
        "unrecorded" => ScoredBy::Unrecorded,
        other => ScoredBy::Checkpoint(other.to_ascii_lowercase()),
    };
    scored_by.check().map_err(|problem| format!("{problem}; or `any`, or `unrecorded`"))?;
    Ok(scored_by)
}

fn parse_tolerance(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?}: expected a difference from 0 to 1")),
    }
}

/// One drawn text, rescored.
struct Checked {
    stored: StoredScore,
    rescored: Vec<f64>,
    /// The largest absolute difference over the columns, and its column.
    max_diff: f64,
    worst_column: usize,
    /// A column whose score is on the other side of 0.5 once rescored.
    decision_differs: bool,
}

/// The drawn texts of one checkpoint (`None`: unrecorded).
#[derive(Default)]
struct Group {
    texts: u64,
    over: u64,
    decisions: u64,
    max_diff: f64,
}

/// Runs `toxcli verify`.
pub async fn run(settings: &StoreSettings, args: VerifyArgs) -> anyhow::Result<()> {
    if let Some(output) = &args.output {
        crate::output::check_output(output)?;
    }
    // It only reads: an SQLite file is opened read-only, and never created;
    // a store named wrong is said before a model is downloaded.
    let store = settings.open_existing(true).await?;
    let mut loaded =
        tokio::task::block_in_place(|| args.model.load(args.batch_size as usize)).context(crate::exit::ModelLoad)?;
    loaded.table = store.layout().score_table(loaded.table.model)?;
    let table = loaded.table.clone();
    let columns = crate::score::column_indexes(&loaded)?;
    let query = SampleQuery { rows: args.sample as usize, seed: args.seed, scored_by: args.scored_by.clone() };
    let sample = store.sample_scores(&table, query).await.with_context(|| {
        format!(
            "drawing {} stored scores of {} from {} (run `toxcli migrate` first: it adds the columns toxscore reads \
             to a score table it adopts)",
            args.sample, table.table, settings.spec
        )
    })?;
    let ours = loaded.checkpoint_sha256.clone();
    let whose = match &args.scored_by {
        ScoredBy::Any => String::new(),
        ScoredBy::Unrecorded => " stored without a checkpoint".to_owned(),
        ScoredBy::Checkpoint(prefix) => format!(" of checkpoint {prefix}"),
    };
    if sample.is_empty() {
        // Nothing verified is no success: a mistyped --scored-by must not pass a check.
        return Err(UsageError(format!(
            "nothing to verify: {} of {} holds no scores{whose} of texts it has (`toxcli report` lists the \
             checkpoints that scored them)",
            table.table, settings.spec
        ))
        .into());
    }
    eprintln!(
        "rescoring {} stored scores{whose} of {} (seed {}) with checkpoint {} on {}",
        sample.len(),
        table.table,
        args.seed,
        short_sha(&ours),
        loaded.model.device()
    );
    let texts: Vec<&str> = sample.iter().map(|stored| stored.status_text.as_str()).collect();
    let model = &loaded.model;
    let outputs =
        tokio::task::block_in_place(|| model.prepare(&texts).map(|prepared| model.predict_prepared(&prepared)))
            .context("rescoring the drawn texts")?;
    let checked: Vec<Checked> = sample
        .into_iter()
        .zip(outputs)
        .map(|(stored, output)| {
            let rescored: Vec<f64> = columns.iter().map(|&index| f64::from(output[index])).collect();
            let (worst_column, max_diff) = stored
                .scores
                .iter()
                .zip(&rescored)
                .map(|(stored, rescored)| difference(*stored, *rescored))
                .enumerate()
                .fold((0, 0.0), |best, (column, diff)| if diff > best.1 { (column, diff) } else { best });
            let decision_differs = stored
                .scores
                .iter()
                .zip(&rescored)
                .any(|(stored, rescored)| stored.is_none_or(|stored| (stored >= 0.5) != (*rescored >= 0.5)));
            Checked { stored, rescored, max_diff, worst_column, decision_differs }
        })
        .collect();

    if let Some(path) = &args.output {
        write_csv(path, table.columns, &checked)?;
    }

    let mut groups: BTreeMap<Option<String>, Group> = BTreeMap::new();
    for check in &checked {
        let group = groups.entry(check.stored.checkpoint_sha256.clone()).or_default();
        group.texts += 1;
        group.over += u64::from(check.max_diff > args.tolerance);
        group.decisions += u64::from(check.decision_differs);
        group.max_diff = group.max_diff.max(check.max_diff);
    }
    let label = |sha: &Option<String>| match sha {
        None => "unrecorded (Python pipeline)".to_owned(),
        Some(sha) if *sha == ours => format!("{} (this checkpoint)", short_sha(sha)),
        Some(sha) => format!("{} (another checkpoint)", short_sha(sha)),
    };
    let width = groups.keys().map(|sha| label(sha).len()).max().unwrap_or(0).max("scored by".len());
    let mut out = crate::output::stdout();
    writeln!(
        out,
        "{:<width$}  {:>7}  {:>10}  {:>14}  {:>9}",
        "scored by", "texts", "max |diff|", "over tolerance", "0.5 flips"
    )?;
    for (sha, group) in &groups {
        writeln!(
            out,
            "{:<width$}  {:>7}  {:>10}  {:>14}  {:>9}",
            label(sha),
            group.texts,
            if group.max_diff == 0.0 { "0".to_owned() } else { format!("{:.1e}", group.max_diff) },
            group.over,
            group.decisions
        )?;
    }
    let total = checked.len();
    let over: u64 = groups.values().map(|group| group.over).sum();
    if over == 0 {
        writeln!(out, "\nall {total} drawn scores match checkpoint {} within {:e}", short_sha(&ours), args.tolerance)?;
        out.flush()?;
        return Ok(());
    }
    let mut worst: Vec<&Checked> = checked.iter().filter(|check| check.max_diff > args.tolerance).collect();
    worst.sort_by(|a, b| b.max_diff.total_cmp(&a.max_diff));
    writeln!(out, "\nlargest differences:")?;
    for check in worst.iter().take(5) {
        let column = check.worst_column;
        writeln!(
            out,
            "  text {} ({}): {} stored {}, rescored {:.6}: {}",
            check.stored.status_text_id,
            label(&check.stored.checkpoint_sha256),
            table.columns[column],
            check.stored.scores[column].map_or("NULL".to_owned(), |score| format!("{score:.6}")),
            check.rescored[column],
            excerpt(&check.stored.status_text)
        )?;
    }
    for (sha, group) in &groups {
        if group.over == 0 {
            continue;
        }
        let why = match sha {
            // Most of a group off: not rounding, but other texts' scores or
            // another model's.
            None if group.over * 2 > group.texts => {
                "most of the Python pipeline's scores differ: they may belong to other texts (the pipeline's \
                 status_texts renumbers its ids with ROW_NUMBER() OVER() when rebuilt after scoring), or come \
                 from another checkpoint than this one; to score every text anew and leave its table as it is, \
                 score into toxscore's own table (leave out --score-table: toxicity_scores_<model>)"
            }
            None => {
                "some of the Python pipeline's scores differ: compare with --output, or rescore with the checkpoint it used"
            }
            Some(sha) if *sha == ours => {
                "this checkpoint's own stored scores differ from a rescoring: the stored values were changed, or \
                 another device or precision wrote them"
            }
            Some(_) => "another checkpoint wrote these: they differ as its weights do",
        };
        writeln!(out, "{}: {why}", label(sha))?;
    }
    out.flush()?;
    Err(Mismatch(format!(
        "{over} of {total} drawn scores differ from checkpoint {} by more than {:e}",
        short_sha(&ours),
        args.tolerance
    ))
    .into())
}

/// How far a stored score is from the rescored one: infinite where either is
/// not a number or the stored one is NULL (never a match).
fn difference(stored: Option<f64>, rescored: f64) -> f64 {
    match stored {
        Some(stored) if stored.is_finite() && rescored.is_finite() => (stored - rescored).abs(),
        _ => f64::INFINITY,
    }
}

/// The start of a text on one line, for the report.
fn excerpt(text: &str) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(60).collect();
    let more = if text.chars().count() > 60 { "…" } else { "" };
    format!("{one_line:?}{more}")
}

/// `status_text_id,checkpoint_sha256,max_abs_diff` (`inf` for a NULL or NaN
/// score), then `<class>_stored` (empty for NULL)
/// and `<class>_rescored` per class, then `status_text`: one row per drawn
/// text, largest difference first.
fn write_csv(path: &std::path::Path, columns: &[&str], checked: &[Checked]) -> anyhow::Result<()> {
    let mut order: Vec<&Checked> = checked.iter().collect();
    order.sort_by(|a, b| b.max_diff.total_cmp(&a.max_diff).then(a.stored.status_text_id.cmp(&b.stored.status_text_id)));
    let mut file = crate::output::OutputFile::create(path)?;
    {
        let mut writer = csv::Writer::from_writer(&mut file);
        let mut header = vec!["status_text_id".to_owned(), "checkpoint_sha256".to_owned(), "max_abs_diff".to_owned()];
        for column in columns {
            header.push(format!("{column}_stored"));
            header.push(format!("{column}_rescored"));
        }
        header.push("status_text".to_owned());
        writer.write_record(&header).context("writing the verify output")?;
        for check in order {
            let mut record = vec![
                check.stored.status_text_id.to_string(),
                check.stored.checkpoint_sha256.clone().unwrap_or_default(),
                check.max_diff.to_string(),
            ];
            for (stored, rescored) in check.stored.scores.iter().zip(&check.rescored) {
                record.push(stored.map(|stored| stored.to_string()).unwrap_or_default());
                record.push(rescored.to_string());
            }
            record.push(check.stored.status_text.clone());
            writer.write_record(&record).context("writing the verify output")?;
        }
        writer.flush().context("writing the verify output")?;
    }
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_or_nan_score_never_matches() {
        assert_eq!(difference(Some(0.25), 0.5), 0.25);
        for (stored, rescored) in
            [(None, 0.5), (Some(f64::NAN), 0.5), (Some(0.5), f64::NAN), (Some(f64::INFINITY), 1.0)]
        {
            assert_eq!(difference(stored, rescored), f64::INFINITY, "{stored:?} {rescored}");
        }
    }
}
