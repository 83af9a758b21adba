//! The in-memory backend, for tests, small jobs and embedding.
//!
//! It keeps every table in a `Mutex`, de-duplicates with
//! [`toxdedup::Dedup`] (the reference semantics), and runs the same
//! conformance suite as the databases. Every call is atomic: it validates its
//! whole input before changing anything, under one lock.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use toxdedup::migrations::{AppliedMigration, Dialect, MigrationPlan};
use toxdedup::{Dedup, DedupReport, ModelTable};

use crate::{
    AggregateRow, CheckpointUse, Error, ExportRow, ExportRows, Grouping, ImportReport, Layout, MigrateOptions,
    MigrateReport, ModelProgress, Progress, Result, SampleQuery, ScoreBatch, Store, StoredScore, Summary, SummaryQuery,
    TextCount, TextId, TextRow, TopText, Tweet, UnscoredQuery, validate,
};

const BACKEND: &str = "memory";

/// A store that lives in memory and disappears with it.
#[derive(Debug, Default)]
pub struct InMemory {
    state: Mutex<State>,
    layout: Layout,
}

/// The tables.
#[derive(Debug, Default)]
struct State {
    /// The migrations table; the other tables exist once every migration is
    /// recorded.
    migrations: Vec<AppliedMigration>,
    /// `tweets`, keyed like SQLite's UNIQUE constraint: `(status_id,
    /// status_text)` to `(user_id, created_at)`.
    tweets: BTreeMap<(i64, String), (i64, Option<i64>)>,
    /// `status_texts` and `statuses_texts`.
    dedup: Dedup,
    /// The score tables by name (those of `MODEL_TABLES`, and any renamed
    /// one once written to): text id to the class scores.
    scores: BTreeMap<String, BTreeMap<TextId, Scored>>,
    /// Tables written by `export_to_table`, by name.
    exports: BTreeMap<String, ExportTable>,
}

/// A table `export_to_table` wrote.
#[derive(Debug)]
enum ExportTable {
    /// Per status.
    Statuses(Vec<ExportRow>),
    /// Per user or day.
    Grouped(Vec<AggregateRow>),
}

impl ExportTable {
    fn len(&self) -> usize {
        match self {
            ExportTable::Statuses(rows) => rows.len(),
            ExportTable::Grouped(rows) => rows.len(),
        }
    }
}

/// One row of a score table.
#[derive(Debug, Clone)]
struct Scored {
    /// The class scores.
    values: Vec<f64>,
    /// The checkpoint that wrote them.
    checkpoint_sha256: String,
    /// When, as [`SCORED_AT_FORMAT`](crate::SCORED_AT_FORMAT) writes it.
    scored_at: String,
}

impl State {
    /// Fails with `NotFound` until `migrate` has run.
    fn migrated(&mut self) -> Result<&mut Self> {
        if self.migrations.len() < toxdedup::migrations::migrations(Dialect::Sqlite).len() {
            return Err(Error::NotFound {
                what: "table tweets (the in-memory store is not migrated; run migrate first)".to_owned(),
                source: None,
            });
        }
        Ok(self)
    }

    /// A score table's rows; a table never written to is empty.
    fn scores(&self, table: &ModelTable) -> &BTreeMap<TextId, Scored> {
        static EMPTY: BTreeMap<TextId, Scored> = BTreeMap::new();
        self.scores.get(table.table.as_ref()).unwrap_or(&EMPTY)
    }
}

/// [`Store::checkpoints`] of one score table: most texts first, ties by hash.
fn checkpoint_uses(scores: &BTreeMap<TextId, Scored>) -> Vec<CheckpointUse> {
    let mut by_checkpoint: BTreeMap<&str, CheckpointUse> = BTreeMap::new();
    for scored in scores.values() {
        let entry = by_checkpoint.entry(&scored.checkpoint_sha256).or_insert_with(|| CheckpointUse {
            checkpoint_sha256: Some(scored.checkpoint_sha256.clone()),
            n_texts: 0,
            first_scored_at: Some(scored.scored_at.clone()),
            last_scored_at: Some(scored.scored_at.clone()),
        });
        entry.n_texts += 1;
        entry.first_scored_at = entry.first_scored_at.take().min(Some(scored.scored_at.clone()));
        entry.last_scored_at = entry.last_scored_at.take().max(Some(scored.scored_at.clone()));
    }
    let mut checkpoints: Vec<CheckpointUse> = by_checkpoint.into_values().collect();
    checkpoints.sort_by(|a, b| b.n_texts.cmp(&a.n_texts).then_with(|| a.checkpoint_sha256.cmp(&b.checkpoint_sha256)));
    checkpoints
}

impl InMemory {
    /// An empty, unmigrated store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses renamed score tables. The tweets are always the store's own.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad layout or another tweets source.
    pub fn with_layout(mut self, layout: Layout) -> Result<Self> {
        layout.validate()?;
        if !layout.tweets.is_own_table() || layout.tweets != crate::TweetSource::default() {
            return Err(Error::InvalidInput {
                what: "the in-memory store reads its own tweets: a tweets table elsewhere is for BigQuery".to_owned(),
            });
        }
        self.layout = layout;
        Ok(self)
    }

    /// The store's own table names, which an export never takes.
    fn is_own_table(&self, name: &str) -> bool {
        let fixed = [
            toxdedup::schema::TWEETS,
            toxdedup::schema::STATUS_TEXTS,
            toxdedup::schema::STATUSES_TEXTS,
            toxdedup::schema::MIGRATIONS,
        ];
        fixed.contains(&name) || self.layout.all_score_tables().iter().any(|table| table.table == name)
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Error::Backend {
            backend: BACKEND,
            what: "the store's lock was poisoned by a panic in another thread".to_owned(),
            source: None,
        })
    }

    /// The aggregate rows of `table`, computed under one lock from the same
    /// joins as the export.
    fn aggregate_rows(&self, table: &ModelTable, grouping: Grouping, threshold: f64) -> Result<Vec<AggregateRow>> {
        validate::aggregate(table, threshold)?;
        let toxicity = table.columns.iter().position(|column| *column == "toxicity").expect("validated");
        let mut state = self.lock()?;
        let state = state.migrated()?;
        let scores = state.scores(table);
        // Keyed so that the order is SQL's: NULL first, users by id, days as
        // text. Per group: statuses, sums per class, highest toxicity, toxic statuses.
        type Key = (Option<i64>, Option<String>);
        let mut groups: BTreeMap<Key, (u64, Vec<f64>, f64, u64)> = BTreeMap::new();
        for (status_id, text_id) in state.dedup.statuses() {
            let Some(Scored { values, .. }) = scores.get(&text_id) else {
                continue;
            };
            let text = state.dedup.text(text_id).expect("joined texts exist");
            let (user_id, created_at) = state
                .tweets
                .get(&(status_id, text.to_owned()))
                .copied()
                .map_or((None, None), |(user, at)| (Some(user), at));
            let key = match grouping {
                Grouping::User => (user_id, None),
                Grouping::Day => (None, created_at.map(utc_day)),
            };
            let group = groups.entry(key).or_insert_with(|| (0, vec![0.0; values.len()], f64::NEG_INFINITY, 0));
            group.0 += 1;
            for (sum, value) in group.1.iter_mut().zip(values) {
                *sum += value;
            }
            group.2 = group.2.max(values[toxicity]);
            group.3 += u64::from(values[toxicity] >= threshold);
        }
        Ok(groups
            .into_iter()
            .map(|((user_id, day), (n_statuses, sums, max_toxicity, toxic))| AggregateRow {
                key: match grouping {
                    Grouping::User => user_id.map(|id| id.to_string()),
                    Grouping::Day => day,
                },
                n_statuses,
                averages: sums.into_iter().map(|sum| sum / n_statuses as f64).collect(),
                max_toxicity,
                share_toxic: toxic as f64 / n_statuses as f64,
            })
            .collect())
    }

    /// Every export row of `table`, read under one lock.
    fn export_rows(&self, table: &ModelTable) -> Result<Vec<ExportRow>> {
        validate::model_table(table)?;
        let mut state = self.lock()?;
        let state = state.migrated()?;
        let scores = state.scores(table);
        let mut rows = Vec::new();
        for (status_id, text_id) in state.dedup.statuses() {
            let Some(scored) = scores.get(&text_id) else {
                continue;
            };
            let text = state.dedup.text(text_id).expect("joined texts exist");
            let user_id = state.tweets.get(&(status_id, text.to_owned())).map(|(user_id, _)| *user_id);
            rows.push(ExportRow { status_id, user_id, status_text_id: text_id, scores: scored.values.clone() });
        }
        Ok(rows)
    }
}

#[async_trait]
impl Store for InMemory {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    async fn migrate_with(&self, options: MigrateOptions) -> Result<MigrateReport> {
        let mut state = self.lock()?;
        let plan = MigrationPlan::new(Dialect::Sqlite, &state.migrations)?;
        let report = MigrateReport {
            applied: plan.pending.iter().map(|m| m.name.to_owned()).collect(),
            already_applied: plan.applied.iter().map(|m| m.name.to_owned()).collect(),
            adopted: Vec::new(),
            statements: Vec::new(),
            created: Vec::new(),
        };
        if !options.dry_run {
            state.migrations.extend(plan.pending.iter().map(|m| AppliedMigration::of(m)));
        }
        Ok(report)
    }

    async fn import_tweets(&self, tweets: &[Tweet]) -> Result<ImportReport> {
        validate::tweets(tweets)?;
        let mut state = self.lock()?;
        let state = state.migrated()?;
        let mut report = ImportReport::default();
        for tweet in tweets {
            let key = (tweet.status_id, tweet.status_text.clone());
            match state.tweets.entry(key) {
                std::collections::btree_map::Entry::Occupied(_) => report.already_present += 1,
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert((tweet.user_id, tweet.created_at));
                    report.inserted += 1;
                }
            }
        }
        Ok(report)
    }

    async fn refresh_texts(&self) -> Result<DedupReport> {
        let mut state = self.lock()?;
        let state = state.migrated()?;
        let State { tweets, dedup, .. } = state;
        Ok(dedup.refresh(tweets.keys().map(|(status_id, text)| (*status_id, text.as_str()))))
    }

    async fn text_page(&self, after: Option<TextId>, limit: usize) -> Result<Vec<TextCount>> {
        let mut state = self.lock()?;
        let state = state.migrated()?;
        Ok(state
            .dedup
            .texts()
            .filter(|entry| after.is_none_or(|after| entry.status_text_id > after))
            .take(limit)
            .map(|entry| TextCount {
                status_text_id: entry.status_text_id,
                status_text: entry.status_text.to_owned(),
                status_count: entry.status_count,
            })
            .collect())
    }

    async fn unscored_texts(&self, table: &ModelTable, query: UnscoredQuery) -> Result<Vec<TextRow>> {
        validate::model_table(table)?;
        let mut state = self.lock()?;
        let state = state.migrated()?;
        let scores = state.scores(table);
        Ok(state
            .dedup
            .texts()
            .filter(|entry| query.after.is_none_or(|after| entry.status_text_id > after))
            .filter(|entry| query.shard.is_none_or(|shard| shard.contains(entry.status_text_id)))
            .filter(|entry| !scores.contains_key(&entry.status_text_id))
            .take(query.limit)
            .map(|entry| TextRow { status_text_id: entry.status_text_id, status_text: entry.status_text.to_owned() })
            .collect())
    }

    async fn write_scores(&self, batch: ScoreBatch<'_>) -> Result<()> {
        validate::score_batch(&batch)?;
        let mut state = self.lock()?;
        let state = state.migrated()?;
        for row in batch.rows {
            if state.dedup.text(row.status_text_id).is_none() {
                return Err(Error::InvalidInput {
                    what: format!("score row for status_text_id {}: no such text in status_texts", row.status_text_id),
                });
            }
        }
        let scores = state.scores.entry(batch.table.table.to_string()).or_default();
        let scored_at = jiff::Timestamp::now().strftime(crate::SCORED_AT_FORMAT).to_string();
        for row in batch.rows {
            let scored = Scored {
                values: row.scores.clone(),
                checkpoint_sha256: batch.checkpoint_sha256.to_owned(),
                scored_at: scored_at.clone(),
            };
            scores.insert(row.status_text_id, scored);
        }
        Ok(())
    }

    async fn progress(&self) -> Result<Progress> {
        let mut state = self.lock()?;
        let state = state.migrated()?;
        let texts = state.dedup.n_texts() as u64;
        // `tweets` is ordered by status id: count the runs.
        let mut imported_statuses = 0u64;
        let mut previous = None;
        for (status_id, _) in state.tweets.keys() {
            if previous != Some(*status_id) {
                imported_statuses += 1;
                previous = Some(*status_id);
            }
        }
        Ok(Progress {
            statuses: state.dedup.n_statuses() as u64,
            texts,
            imported_statuses: Some(imported_statuses),
            models: self
                .layout
                .all_score_tables()
                .iter()
                .map(|table| {
                    let scored = state.scores(table).len() as u64;
                    ModelProgress { model: table.model.to_owned(), scored, remaining: texts.saturating_sub(scored) }
                })
                .collect(),
        })
    }

    async fn export_to_table(&self, table: &ModelTable, rows: ExportRows, name: &str) -> Result<u64> {
        validate::export_table_name(name)?;
        if self.is_own_table(name) {
            return Err(Error::AlreadyExists { what: format!("table {name} (one of the store's own)") });
        }
        let rows = match rows {
            ExportRows::Statuses => ExportTable::Statuses(self.export_rows(table)?),
            ExportRows::Grouped { grouping, threshold } => {
                ExportTable::Grouped(self.aggregate_rows(table, grouping, threshold)?)
            }
        };
        let count = rows.len() as u64;
        self.lock()?.exports.insert(name.to_owned(), rows);
        Ok(count)
    }

    fn aggregate<'a>(
        &'a self,
        table: &'a ModelTable,
        grouping: Grouping,
        threshold: f64,
    ) -> BoxStream<'a, Result<AggregateRow>> {
        stream::once(async move { self.aggregate_rows(table, grouping, threshold) })
            .flat_map(|rows| match rows {
                Ok(rows) => stream::iter(rows.into_iter().map(Ok)).left_stream(),
                Err(error) => stream::iter([Err(error)]).right_stream(),
            })
            .boxed()
    }

    async fn summary(&self, table: &ModelTable, query: SummaryQuery) -> Result<Summary> {
        validate::summary(table, &query)?;
        let toxicity = table.columns.iter().position(|column| *column == "toxicity").expect("validated");
        let statuses = self.export_rows(table)?;
        let mut histograms = vec![vec![0u64; query.bins]; table.columns.len()];
        for row in &statuses {
            for (histogram, score) in histograms.iter_mut().zip(&row.scores) {
                // As the SQL computes it: floor(score * bins) in doubles, clamped.
                let bin = (score * query.bins as f64).floor().clamp(0.0, (query.bins - 1) as f64) as usize;
                histogram[bin] += 1;
            }
        }
        let mut top_users: Vec<AggregateRow> = self
            .aggregate_rows(table, Grouping::User, query.threshold)?
            .into_iter()
            .filter(|row| row.key.is_some() && row.n_statuses >= query.min_statuses)
            .collect();
        let user_id = |row: &AggregateRow| row.key.as_deref().and_then(|key| key.parse::<i64>().ok());
        top_users.sort_by(|a, b| {
            b.averages[toxicity].total_cmp(&a.averages[toxicity]).then_with(|| user_id(a).cmp(&user_id(b)))
        });
        top_users.truncate(query.top);

        let mut state = self.lock()?;
        let state = state.migrated()?;
        let users = state.tweets.values().map(|(user_id, _)| *user_id).collect::<std::collections::BTreeSet<_>>().len();
        let scores = state.scores(table);
        let checkpoints = checkpoint_uses(scores);
        let mut statuses_per_text: BTreeMap<TextId, u64> = BTreeMap::new();
        for (_, text_id) in state.dedup.statuses() {
            *statuses_per_text.entry(text_id).or_default() += 1;
        }
        let mut ranked: Vec<(&TextId, &Scored)> = scores.iter().collect();
        ranked.sort_by(|(a_id, a), (b_id, b)| {
            b.values[toxicity].total_cmp(&a.values[toxicity]).then_with(|| a_id.cmp(b_id))
        });
        let top_texts = ranked
            .into_iter()
            .take(query.top)
            .map(|(text_id, scored)| TopText {
                status_text_id: *text_id,
                text: state.dedup.text(*text_id).expect("scored texts exist").to_owned(),
                n_statuses: statuses_per_text.get(text_id).copied().unwrap_or(0),
                scores: scored.values.clone(),
            })
            .collect();
        Ok(Summary {
            users: users as u64,
            scored_statuses: statuses.len() as u64,
            checkpoints,
            histograms,
            top_users,
            top_texts,
        })
    }

    async fn checkpoints(&self, table: &ModelTable) -> Result<Vec<CheckpointUse>> {
        validate::model_table(table)?;
        let mut state = self.lock()?;
        let state = state.migrated()?;
        Ok(checkpoint_uses(state.scores(table)))
    }

    async fn sample_scores(&self, table: &ModelTable, query: SampleQuery) -> Result<Vec<StoredScore>> {
        validate::sample(table, &query)?;
        let mut state = self.lock()?;
        let state = state.migrated()?;
        let mut drawn: Vec<(i64, TextId, &Scored)> = state
            .scores(table)
            .iter()
            .filter(|(_, scored)| query.scored_by.matches(Some(&scored.checkpoint_sha256)))
            .map(|(&id, scored)| (toxdedup::queries::sample_key(id, query.seed), id, scored))
            .collect();
        drawn.sort_unstable_by_key(|&(key, id, _)| (key, id));
        drawn.truncate(query.rows);
        Ok(drawn
            .into_iter()
            .map(|(_, id, scored)| StoredScore {
                status_text_id: id,
                status_text: state.dedup.text(id).expect("scored texts exist").to_owned(),
                checkpoint_sha256: Some(scored.checkpoint_sha256.clone()),
                scores: scored.values.iter().copied().map(Some).collect(),
            })
            .collect())
    }

    fn export<'a>(&'a self, table: &'a ModelTable) -> BoxStream<'a, Result<ExportRow>> {
        // The rows are read on the first poll, then handed out one by one.
        stream::once(async move { self.export_rows(table) })
            .flat_map(|rows| match rows {
                Ok(rows) => stream::iter(rows.into_iter().map(Ok)).left_stream(),
                Err(error) => stream::iter([Err(error)]).right_stream(),
            })
            .boxed()
    }
}

/// The UTC day (`YYYY-MM-DD`) of a time in microseconds since 1970.
fn utc_day(micros: i64) -> String {
    // Outside the years -9999 to 9999 (validated imports never are): no day.
    crate::utc_datetime(micros).map(|datetime| datetime.date().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScoreRow;

    #[tokio::test]
    async fn scores_for_an_unknown_text_are_rejected() {
        let store = InMemory::new();
        store.migrate().await.expect("migrate");
        let rows = [ScoreRow { status_text_id: 99, scores: vec![0.5; 6] }];
        let batch = ScoreBatch { table: &toxdedup::MODEL_TABLES[0], checkpoint_sha256: "ab", rows: &rows };
        let error = store.write_scores(batch).await.expect_err("unknown text");
        assert!(matches!(error, Error::InvalidInput { .. }), "{error}");
        assert!(error.to_string().contains("99"), "{error}");
    }
}
