//! The SQL of de-duplication and of the pipeline's reads, per dialect.
//!
//! Each function returns SQL text. BigQuery text writes tables as
//! `{dataset}.table`: pass it through
//! [`substitute_dataset`](crate::migrations::substitute_dataset). Numbers
//! (`after`, `limit`, shard) are typed integers written into the text, so
//! nothing a user types reaches the SQL unchecked; model tables must be
//! entries of [`MODEL_TABLES`](crate::MODEL_TABLES), possibly renamed (check
//! with [`ModelTable::check_known`]).
//!
//! The semantics are those of [`Dedup`](crate::Dedup); the conformance suite
//! of `toxstore` checks that every backend agrees with it.
//!
//! BigQuery tables may hold repeated rows (streaming inserts are
//! de-duplicated on a best-effort basis only), so every BigQuery read here
//! counts a `(status_id, status_text)` pair, a text and a score once.

use crate::migrations::Dialect;
use crate::schema::{ModelTable, TweetSource};

/// The table name as written in a dialect: `name` or `{dataset}.name`.
fn qualified(dialect: Dialect, name: &str) -> String {
    match dialect {
        Dialect::Sqlite => name.to_owned(),
        Dialect::BigQuery => format!("{{dataset}}.{name}"),
    }
}

/// The tweets as a dialect reads them: SQLite's own table, or BigQuery's
/// typed view of the source ([`TweetSource::view`]).
fn tweets(dialect: Dialect, source: &TweetSource) -> String {
    match dialect {
        Dialect::Sqlite => "tweets".to_owned(),
        Dialect::BigQuery => source.view(),
    }
}

/// The join of each status id to its one text: columns `status_id`,
/// `status_text_id`, `status_text`, one row per status id.
///
/// SQLite's `statuses_texts` holds one row per status id (its primary key).
/// The Python pipeline's BigQuery `statuses_texts` does not: it unnested
/// `status_texts.status_ids`, the status ids grouped by text, so a status id
/// stored in `tweets` with two texts (a tweet collected twice, say) is
/// joined to both. Every BigQuery read goes through this, which keeps the
/// smallest text (byte order, as [`refresh`] picks for a new status id), so
/// that a status counts once; the adopted rows themselves are left as they
/// are.
fn one_text_per_status(dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => {
            "(SELECT j.status_id AS status_id, j.status_text_id AS status_text_id, t.status_text AS status_text
      FROM statuses_texts AS j
      JOIN status_texts AS t ON t.status_text_id = j.status_text_id)"
                .to_owned()
        }
        Dialect::BigQuery => {
            "(SELECT j.status_id AS status_id, j.status_text_id AS status_text_id, t.status_text AS status_text
      FROM {dataset}.statuses_texts AS j
      JOIN (SELECT DISTINCT status_text_id, status_text FROM {dataset}.status_texts) AS t
        ON t.status_text_id = j.status_text_id
      WHERE TRUE
      QUALIFY ROW_NUMBER() OVER (PARTITION BY j.status_id ORDER BY t.status_text, j.status_text_id) = 1)"
                .to_owned()
        }
    }
}

/// BigQuery: one row, `skipped`: the rows of the tweets source that every
/// read leaves out, because their status id is NULL or does not convert to
/// INT64 (`SAFE_CAST`), or their text is NULL.
pub fn skipped_tweets(source: &TweetSource) -> String {
    format!("SELECT COUNT(*) AS skipped FROM {} WHERE {}", source.table_sql(), skipped_condition(source))
}

/// BigQuery: column `status_id` (as text, NULL for a NULL id): the first
/// `limit` of the rows [`skipped_tweets`] counts.
pub fn skipped_tweet_examples(source: &TweetSource, limit: usize) -> String {
    format!(
        "SELECT CAST(`{id}` AS STRING) AS status_id FROM {table} WHERE {condition} LIMIT {limit}",
        id = source.status_id,
        table = source.table_sql(),
        condition = skipped_condition(source)
    )
}

fn skipped_condition(source: &TweetSource) -> String {
    format!("SAFE_CAST(`{id}` AS INT64) IS NULL OR `{text}` IS NULL", id = source.status_id, text = source.status_text)
}

/// What the affected-row count of a [`RefreshStatement`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affects {
    /// Nothing reported.
    Nothing,
    /// Rows inserted into `status_texts`: [`DedupReport::new_texts`](crate::DedupReport::new_texts).
    NewTexts,
    /// Rows inserted into `statuses_texts`: [`DedupReport::new_statuses`](crate::DedupReport::new_statuses).
    NewStatuses,
}

/// One statement of the de-duplication step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshStatement {
    /// The SQL.
    pub sql: String,
    /// What its affected-row count measures.
    pub affects: Affects,
}

/// The statements that bring `status_texts` and `statuses_texts` up to date
/// with `tweets`, to run in order.
///
/// - **SQLite:** run them in one `BEGIN IMMEDIATE` transaction. They go
///   through temporary tables of the new joins (each text looked up once by
///   its bytes), and add the new joins to `status_count`.
/// - **BigQuery:** three DML statements, each atomic, that a later run
///   completes if one fails: new texts are inserted first (a rerun finds them
///   and inserts no other), then the join rows of status ids still unjoined,
///   then every changed `status_count` is recounted from the join table. Two
///   refreshes must not run at the same time.
///
/// After them, read [`conflict_count`] and [`conflict_examples`].
/// On BigQuery the tweets come from `source` (see [`TweetSource::view`]),
/// and new ids start after the largest id in `status_texts` and in
/// `score_tables`: an adopted score table may hold rows whose text id is
/// not in `status_texts` (the Python pipeline renumbered its texts whenever
/// it rebuilt that table), and a new text that took such an id would pass
/// for scored, with another text's scores. SQLite reads its own `tweets`,
/// whose score tables toxscore alone writes, for texts it holds.
pub fn refresh(dialect: Dialect, source: &TweetSource, score_tables: &[ModelTable]) -> Vec<RefreshStatement> {
    let statement = |sql: &str, affects| RefreshStatement { sql: sql.to_owned(), affects };
    match dialect {
        Dialect::Sqlite => vec![
            statement("DROP TABLE IF EXISTS temp.toxscore_new_joins", Affects::Nothing),
            // Each status id not yet joined, with the smallest of its texts
            // (SQLite's BINARY collation compares bytes).
            statement(
                "CREATE TEMP TABLE toxscore_new_joins AS
SELECT tw.status_id AS status_id, MIN(tw.status_text) AS status_text
FROM tweets AS tw
WHERE NOT EXISTS (SELECT 1 FROM statuses_texts AS j WHERE j.status_id = tw.status_id)
GROUP BY tw.status_id",
                Affects::Nothing,
            ),
            statement(
                "INSERT INTO status_texts (status_text_id, status_text, status_count)
SELECT base.max_id + ROW_NUMBER() OVER (ORDER BY n.first_status_id, n.status_text), n.status_text, 0
FROM (SELECT status_text, MIN(status_id) AS first_status_id
      FROM temp.toxscore_new_joins GROUP BY status_text) AS n
CROSS JOIN (SELECT MAX(COALESCE(MAX(status_text_id), 0), 0) AS max_id FROM status_texts) AS base
WHERE NOT EXISTS (SELECT 1 FROM status_texts AS t WHERE t.status_text = n.status_text)",
                Affects::NewTexts,
            ),
            // Each new join's text id, looked up once by text.
            statement(
                "CREATE TEMP TABLE toxscore_new_join_ids AS
SELECT n.status_id AS status_id, t.status_text_id AS status_text_id
FROM temp.toxscore_new_joins AS n
JOIN status_texts AS t ON t.status_text = n.status_text",
                Affects::Nothing,
            ),
            statement(
                "INSERT INTO statuses_texts (status_id, status_text_id)
SELECT status_id, status_text_id FROM temp.toxscore_new_join_ids ORDER BY status_id",
                Affects::NewStatuses,
            ),
            statement(
                "UPDATE status_texts SET status_count = status_count + c.n_statuses
FROM (SELECT status_text_id, COUNT(*) AS n_statuses
      FROM temp.toxscore_new_join_ids GROUP BY status_text_id) AS c
WHERE status_texts.status_text_id = c.status_text_id",
                Affects::Nothing,
            ),
            statement("DROP TABLE temp.toxscore_new_join_ids", Affects::Nothing),
            statement("DROP TABLE temp.toxscore_new_joins", Affects::Nothing),
        ],
        Dialect::BigQuery => {
            // The status ids not yet joined, each with its smallest text
            // (BigQuery compares strings by code point, which is UTF-8 byte
            // order).
            let unjoined = format!(
                "SELECT tw.status_id, MIN(tw.status_text) AS status_text
    FROM {} AS tw
    LEFT JOIN {{dataset}}.statuses_texts AS j ON j.status_id = tw.status_id
    WHERE j.status_id IS NULL
    GROUP BY tw.status_id",
                source.view()
            );
            // GREATEST is NULL if any argument is: each maximum defaults to 0.
            let largest = std::iter::once("status_texts")
                .chain(score_tables.iter().map(|table| table.table.as_ref()))
                .map(|table| format!("COALESCE((SELECT MAX(status_text_id) FROM {{dataset}}.{table}), 0)"))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                statement(
                    &format!(
                        "INSERT INTO {{dataset}}.status_texts (status_text_id, status_text, status_count)
SELECT base.max_id + ROW_NUMBER() OVER (ORDER BY n.first_status_id, n.status_text), n.status_text, 0
FROM (
  SELECT w.status_text, MIN(w.status_id) AS first_status_id
  FROM ({unjoined}) AS w
  LEFT JOIN {{dataset}}.status_texts AS t ON t.status_text = w.status_text
  WHERE t.status_text_id IS NULL
  GROUP BY w.status_text
) AS n
CROSS JOIN (SELECT GREATEST({largest}) AS max_id) AS base"
                    ),
                    Affects::NewTexts,
                ),
                statement(
                    &format!(
                        "INSERT INTO {{dataset}}.statuses_texts (status_text_id, status_id)
SELECT t.status_text_id, w.status_id
FROM ({unjoined}) AS w
JOIN (SELECT status_text, MIN(status_text_id) AS status_text_id
      FROM {{dataset}}.status_texts GROUP BY status_text) AS t
  ON t.status_text = w.status_text"
                    ),
                    Affects::NewStatuses,
                ),
                statement(
                    "UPDATE {dataset}.status_texts AS t
SET status_count = c.n_statuses
FROM (SELECT status_text_id, COUNT(DISTINCT status_id) AS n_statuses
      FROM {dataset}.statuses_texts GROUP BY status_text_id) AS c
WHERE t.status_text_id = c.status_text_id AND t.status_count <> c.n_statuses",
                    Affects::Nothing,
                ),
            ]
        }
    }
}

/// One row, one column `conflicts`: the distinct `(status_id, status_text)`
/// pairs of `tweets` minus its distinct status ids. After a refresh every
/// status id is joined to one of its pairs' texts, so this counts the pairs
/// whose text lost, [`DedupReport::conflicts`](crate::DedupReport::conflicts).
pub fn conflict_count(dialect: Dialect, source: &TweetSource) -> String {
    match dialect {
        // `tweets` holds each pair once (UNIQUE), and its index makes the
        // DISTINCT an index scan.
        Dialect::Sqlite => "SELECT COUNT(*) - COUNT(DISTINCT status_id) AS conflicts FROM tweets".to_owned(),
        Dialect::BigQuery => format!(
            "SELECT COUNT(*) - COUNT(DISTINCT status_id) AS conflicts
FROM (SELECT DISTINCT status_id, status_text FROM {})",
            source.view()
        ),
    }
}

/// Columns `status_id`, `kept`, `rejected`: the first `limit` conflicts in
/// `(status_id, rejected)` order, [`DedupReport::conflict_examples`](crate::DedupReport::conflict_examples).
pub fn conflict_examples(dialect: Dialect, limit: usize, source: &TweetSource) -> String {
    let tweets = tweets(dialect, source);
    let joins = one_text_per_status(dialect);
    format!(
        "SELECT DISTINCT tw.status_id AS status_id, j.status_text AS kept, tw.status_text AS rejected
FROM {tweets} AS tw
JOIN {joins} AS j ON j.status_id = tw.status_id
WHERE tw.status_text <> j.status_text
  AND tw.status_id IN (SELECT status_id FROM {tweets} GROUP BY status_id HAVING COUNT(DISTINCT status_text) > 1)
ORDER BY status_id, rejected
LIMIT {limit}"
    )
}

/// Columns `status_text_id`, `status_text`, `status_count`: the rows of
/// `status_texts` with an id above `after`, in increasing id order, at most
/// `limit`.
pub fn text_page(dialect: Dialect, after: Option<i64>, limit: usize) -> String {
    let texts = qualified(dialect, "status_texts");
    let distinct = match dialect {
        Dialect::Sqlite => "",
        Dialect::BigQuery => "DISTINCT ",
    };
    let after = after.map(|after| format!("WHERE status_text_id > {after}\n")).unwrap_or_default();
    format!(
        "SELECT {distinct}status_text_id, status_text, status_count
FROM {texts}
{after}ORDER BY status_text_id
LIMIT {limit}"
    )
}

/// Columns `status_text_id`, `status_text`: the texts `table` has not
/// scored, in increasing id order, with an id above `after`, in shard
/// `(index, count)` (id mod count = index), at most `limit`.
///
/// The anti-join (`LEFT JOIN ... IS NULL`) needs no de-duplication of the
/// score table: a text with any score row is excluded, however many.
pub fn unscored(
    dialect: Dialect,
    table: &ModelTable,
    after: Option<i64>,
    limit: usize,
    shard: Option<(u32, u32)>,
) -> String {
    let texts = qualified(dialect, "status_texts");
    let scores = qualified(dialect, &table.table);
    let mut conditions = vec!["s.status_text_id IS NULL".to_owned()];
    if let Some(after) = after {
        conditions.push(format!("t.status_text_id > {after}"));
    }
    if let Some((index, count)) = shard {
        conditions.push(match dialect {
            Dialect::Sqlite => format!("t.status_text_id % {count} = {index}"),
            Dialect::BigQuery => format!("MOD(t.status_text_id, {count}) = {index}"),
        });
    }
    let conditions = conditions.join("\n  AND ");
    format!(
        "SELECT t.status_text_id AS status_text_id, t.status_text AS status_text
FROM {texts} AS t
LEFT JOIN {scores} AS s ON s.status_text_id = t.status_text_id
WHERE {conditions}
ORDER BY t.status_text_id
LIMIT {limit}"
    )
}

/// One row: `statuses` (distinct status ids joined), `texts` (distinct
/// texts), on SQLite `imported_statuses` (distinct status ids in `tweets`:
/// more than `statuses` when tweets were imported and not de-duplicated
/// yet), then `scored_<table>`
/// (distinct texts with a score), for each of `tables` in order. Remaining
/// is `texts - scored`.
pub fn progress(dialect: Dialect, source: &TweetSource, tables: &[ModelTable]) -> String {
    let count = |column: &str, table: &str| match dialect {
        Dialect::Sqlite => format!("(SELECT COUNT(*) FROM {table})"),
        Dialect::BigQuery => format!("(SELECT COUNT(DISTINCT {column}) FROM {})", qualified(dialect, table)),
    };
    let mut columns = vec![
        format!("{} AS statuses", count("status_id", "statuses_texts")),
        format!("{} AS texts", count("status_text_id", "status_texts")),
    ];
    if dialect == Dialect::Sqlite {
        // BigQuery would scan all of `tweets` for it, at every call.
        columns
            .push(format!("(SELECT COUNT(DISTINCT status_id) FROM {}) AS imported_statuses", tweets(dialect, source)));
    }
    for model in tables {
        let scored = match dialect {
            Dialect::Sqlite => count("status_text_id", &model.table),
            // An adopted score table may hold rows whose text id is not in
            // `status_texts` (the pipeline renumbered its texts when it
            // rebuilt the table): they score no text, so they are not
            // counted, or `remaining` would come out short.
            Dialect::BigQuery => format!(
                "(SELECT COUNT(DISTINCT status_text_id) FROM {} WHERE status_text_id IN (SELECT status_text_id FROM {}))",
                qualified(dialect, &model.table),
                qualified(dialect, "status_texts")
            ),
        };
        columns.push(format!("{scored} AS scored_{}", model.table));
    }
    format!("SELECT\n  {}", columns.join(",\n  "))
}

/// Columns `status_id`, `user_id`, `status_text_id`, then the model's class
/// columns: one row per status id whose text `table` has scored, in
/// increasing status id order. `user_id` comes from the `tweets` row whose
/// text was joined (the smallest on ties). On BigQuery the latest
/// `scored_at` of a text wins.
pub fn export(dialect: Dialect, table: &ModelTable, source: &TweetSource) -> String {
    format!("{}\nORDER BY j.status_id", export_select(dialect, table, source))
}

/// What [`export_to_table`] writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExportRows {
    /// [`export`]'s rows: one per scored status.
    Statuses,
    /// [`aggregate`]'s rows, under the names of [`aggregate_columns`].
    Grouped {
        /// Per user or per day.
        grouping: Grouping,
        /// The toxicity from which a status counts as toxic (finite).
        threshold: f64,
    },
}

/// The statement that writes [`export`]'s or [`aggregate`]'s rows into
/// table `name` of the store (unordered): SQLite `CREATE TABLE name AS ...`
/// (the caller drops a table it created before, in the same transaction),
/// BigQuery `CREATE OR REPLACE TABLE {dataset}.name AS ...`. `name` must be
/// a plain identifier ([`is_plain_identifier`](crate::schema::is_plain_identifier)).
pub fn export_to_table(
    dialect: Dialect,
    table: &ModelTable,
    source: &TweetSource,
    rows: ExportRows,
    name: &str,
) -> String {
    let select = match rows {
        ExportRows::Statuses => export_select(dialect, table, source),
        ExportRows::Grouped { grouping, threshold } => {
            let columns = aggregate_columns(table, grouping);
            format!(
                "SELECT group_key AS {key}, {rest}\nFROM ({aggregate}) AS a",
                key = columns[0],
                rest = columns[1..].join(", "),
                aggregate = aggregate_select(dialect, table, source, grouping, threshold)
            )
        }
    };
    match dialect {
        Dialect::Sqlite => format!("CREATE TABLE {name} AS\n{select}"),
        Dialect::BigQuery => format!("CREATE OR REPLACE TABLE {{dataset}}.{name} AS\n{select}"),
    }
}

fn export_select(dialect: Dialect, table: &ModelTable, source: &TweetSource) -> String {
    statuses_scored(dialect, table, source, false)
}

/// How [`aggregate`] groups the scored statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// One row per `user_id`.
    User,
    /// One row per UTC day of `created_at` (`YYYY-MM-DD`); statuses without
    /// a `created_at` in a row of their own, with a NULL day.
    Day,
}

/// The columns of a per-user or per-day export: `user_id` or `day`,
/// `n_statuses`, `avg_<class>` for each class, per user `max_toxicity`,
/// and `share_toxic`.
pub fn aggregate_columns(table: &ModelTable, grouping: Grouping) -> Vec<String> {
    let key = match grouping {
        Grouping::User => "user_id",
        Grouping::Day => "day",
    };
    let mut columns = vec![key.to_owned(), "n_statuses".to_owned()];
    columns.extend(table.columns.iter().map(|column| format!("avg_{column}")));
    if grouping == Grouping::User {
        columns.push("max_toxicity".to_owned());
    }
    columns.push("share_toxic".to_owned());
    columns
}

/// Columns `group_key` (the user id, or the day as `YYYY-MM-DD`; NULL for
/// statuses without one), `n_statuses`, then `avg_<class>` for each class
/// column of `table`, `max_toxicity`, and `share_toxic` (the share of the
/// statuses whose `toxicity` is at least `threshold`): one row per key, in
/// key order (NULL first). Each status whose text `table` has scored counts
/// once, with the scores [`export`] gives it. `threshold` must be finite
/// (it is written into the SQL as a number).
pub fn aggregate(
    dialect: Dialect,
    table: &ModelTable,
    source: &TweetSource,
    grouping: Grouping,
    threshold: f64,
) -> String {
    format!("{}\nORDER BY group_key", aggregate_select(dialect, table, source, grouping, threshold))
}

/// The rows of [`aggregate`] by user, for the users with at least
/// `min_statuses` scored statuses (and a user id): the `limit` highest
/// `avg_toxicity` first, ties by user id.
pub fn top_users(
    dialect: Dialect,
    table: &ModelTable,
    source: &TweetSource,
    threshold: f64,
    min_statuses: u64,
    limit: usize,
) -> String {
    format!(
        "{}\nHAVING COUNT(*) >= {min_statuses} AND b.user_id IS NOT NULL\nORDER BY avg_toxicity DESC, group_key\nLIMIT {limit}",
        aggregate_select(dialect, table, source, Grouping::User, threshold)
    )
}

fn aggregate_select(
    dialect: Dialect,
    table: &ModelTable,
    source: &TweetSource,
    grouping: Grouping,
    threshold: f64,
) -> String {
    let key = match (grouping, dialect) {
        (Grouping::User, _) => "b.user_id".to_owned(),
        // Microseconds floored to seconds (also before 1970), then the UTC date.
        (Grouping::Day, Dialect::Sqlite) => {
            "date((b.created_at - ((b.created_at % 1000000) + 1000000) % 1000000) / 1000000, 'unixepoch')".to_owned()
        }
        (Grouping::Day, Dialect::BigQuery) => "CAST(DATE(b.created_at) AS STRING)".to_owned(),
    };
    let averages: String = table.columns.iter().map(|column| format!(",\n  AVG(b.{column}) AS avg_{column}")).collect();
    format!(
        "SELECT {key} AS group_key,
  COUNT(*) AS n_statuses{averages},
  MAX(b.toxicity) AS max_toxicity,
  AVG(CASE WHEN b.toxicity >= {threshold:?} THEN 1.0 ELSE 0.0 END) AS share_toxic
FROM ({base}) AS b
GROUP BY group_key",
        base = statuses_scored(dialect, table, source, true)
    )
}

/// One row: `n_statuses` (the scored statuses, each once, as [`export`]
/// counts them), then `h_<class>_<bin>` for each class column of `table` and
/// each bin from 0 to `bins - 1`: how many of those statuses have a score in
/// `[bin / bins, (bin + 1) / bins)`, the last bin closed (a score of 1 is
/// in it). The bin is `floor(score * bins)` in IEEE doubles on every
/// backend, clamped to the range. `bins` must be at least 1.
pub fn histograms(dialect: Dialect, table: &ModelTable, source: &TweetSource, bins: usize) -> String {
    let last = bins.saturating_sub(1);
    let mut columns = vec!["COUNT(*) AS n_statuses".to_owned()];
    for column in table.columns.iter() {
        let bin = match dialect {
            // Scores are at least 0, where CAST's truncation is the floor;
            // the clamp sends anything below to bin 0 as BigQuery's does.
            Dialect::Sqlite => format!("MIN(MAX(CAST(b.{column} * {bins} AS INTEGER), 0), {last})"),
            Dialect::BigQuery => format!("LEAST(GREATEST(CAST(FLOOR(b.{column} * {bins}) AS INT64), 0), {last})"),
        };
        for index in 0..bins {
            columns.push(format!("SUM(CASE WHEN {bin} = {index} THEN 1 ELSE 0 END) AS h_{column}_{index}"));
        }
    }
    format!("SELECT {}\nFROM ({}) AS b", columns.join(",\n  "), statuses_scored(dialect, table, source, false))
}

/// Columns `checkpoint_sha256` (NULL for the rows the Python pipeline
/// wrote), `n_texts`, `first_scored_at`, `last_scored_at` (SQLite: the
/// stored `YYYY-MM-DDTHH:MM:SS.sssZ` text; BigQuery: microseconds since
/// 1970; NULL where unknown): one row per checkpoint
/// that scored the texts of `table` (each text once, with the score every
/// read uses), most texts first, ties by hash.
pub fn checkpoints(dialect: Dialect, table: &ModelTable) -> String {
    let (scores, first, last) = match dialect {
        Dialect::Sqlite => (table.table.to_string(), "MIN(scored_at)".to_owned(), "MAX(scored_at)".to_owned()),
        Dialect::BigQuery => (
            format!("({})", latest_scores(table)),
            "UNIX_MICROS(MIN(scored_at))".to_owned(),
            "UNIX_MICROS(MAX(scored_at))".to_owned(),
        ),
    };
    format!(
        "SELECT checkpoint_sha256, COUNT(*) AS n_texts, {first} AS first_scored_at, {last} AS last_scored_at
FROM {scores} AS s
GROUP BY checkpoint_sha256
ORDER BY n_texts DESC, checkpoint_sha256"
    )
}

/// One row, `n_users`: the distinct user ids of the tweets.
pub fn users(dialect: Dialect, source: &TweetSource) -> String {
    format!("SELECT COUNT(DISTINCT user_id) AS n_users FROM {} AS tw", tweets(dialect, source))
}

/// Columns `status_text_id`, `status_text`, `n_statuses` (the statuses
/// that carry the text), then the class columns: the `limit` texts with the
/// highest `toxicity` that `table` scored, ties by text id.
pub fn top_texts(dialect: Dialect, table: &ModelTable, limit: usize) -> String {
    let score_columns: String = table.columns.iter().map(|column| format!(", s.{column}")).collect();
    match dialect {
        Dialect::Sqlite => format!(
            "SELECT s.status_text_id AS status_text_id, t.status_text AS status_text,
  (SELECT COUNT(*) FROM statuses_texts AS j WHERE j.status_text_id = s.status_text_id) AS n_statuses{score_columns}
FROM {scores} AS s
JOIN status_texts AS t ON t.status_text_id = s.status_text_id
ORDER BY s.toxicity DESC, s.status_text_id
LIMIT {limit}",
            scores = table.table
        ),
        Dialect::BigQuery => format!(
            "WITH s AS (SELECT * FROM ({latest}) ORDER BY toxicity DESC, status_text_id LIMIT {limit})
SELECT s.status_text_id AS status_text_id, t.status_text AS status_text,
  COALESCE(c.n_statuses, 0) AS n_statuses{score_columns}
FROM s
JOIN (SELECT DISTINCT status_text_id, status_text FROM {{dataset}}.status_texts
      WHERE status_text_id IN (SELECT status_text_id FROM s)) AS t
  ON t.status_text_id = s.status_text_id
LEFT JOIN (SELECT status_text_id, COUNT(*) AS n_statuses FROM {joins} AS j
      WHERE status_text_id IN (SELECT status_text_id FROM s) GROUP BY status_text_id) AS c
  ON c.status_text_id = s.status_text_id
ORDER BY s.toxicity DESC, s.status_text_id",
            joins = one_text_per_status(dialect),
            latest = latest_scores(table)
        ),
    }
}

/// Which stored scores [`sample_scores`] draws from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ScoredBy {
    /// Every text's score (the one every read uses).
    #[default]
    Any,
    /// Scores stored without a checkpoint: the Python pipeline's rows.
    Unrecorded,
    /// Scores of the checkpoints whose SHA-256 (lowercase hex) starts with
    /// this prefix: 1 to 64 hex digits, checked by [`ScoredBy::check`].
    Checkpoint(String),
}

impl ScoredBy {
    /// `Err` with the problem when a [`ScoredBy::Checkpoint`] prefix is not
    /// 1 to 64 hex digits (it is written into the SQL).
    pub fn check(&self) -> Result<(), String> {
        match self {
            ScoredBy::Checkpoint(prefix)
                if prefix.is_empty()
                    || prefix.len() > 64
                    || !prefix.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)) =>
            {
                Err(format!("checkpoint {prefix:?} is not 1 to 64 lowercase hex digits of a SHA-256"))
            }
            _ => Ok(()),
        }
    }

    /// The SQL condition on `s.checkpoint_sha256` (TRUE for any).
    fn condition(&self) -> String {
        match self {
            ScoredBy::Any => "TRUE".to_owned(),
            ScoredBy::Unrecorded => "s.checkpoint_sha256 IS NULL".to_owned(),
            ScoredBy::Checkpoint(prefix) => format!("SUBSTR(s.checkpoint_sha256, 1, {}) = '{prefix}'", prefix.len()),
        }
    }

    /// Whether a score stored by `checkpoint` (`None`: unrecorded) is drawn.
    pub fn matches(&self, checkpoint: Option<&str>) -> bool {
        match self {
            ScoredBy::Any => true,
            ScoredBy::Unrecorded => checkpoint.is_none(),
            ScoredBy::Checkpoint(prefix) => checkpoint.is_some_and(|sha| sha.starts_with(prefix.as_str())),
        }
    }
}

/// The multiplier of [`sample_key`]'s mixing steps (a well-mixing odd
/// 32-bit constant).
const SAMPLE_MIX: i64 = 0x045d_9f3b;
const LOW_32: i64 = 0xffff_ffff;

/// The order in which [`sample_scores`] draws texts: a 32-bit hash of the
/// text id and the seed, computed the same in Rust and in both SQL dialects
/// (64-bit integer arithmetic that never overflows), so that every backend
/// draws the same texts for a seed, and a seed draws the same ones every time.
pub fn sample_key(status_text_id: i64, seed: u32) -> i64 {
    let mut x = (status_text_id & LOW_32) ^ ((status_text_id >> 32) & LOW_32) ^ i64::from(seed);
    x = (((x >> 16) ^ x) * SAMPLE_MIX) & LOW_32;
    x = (((x >> 16) ^ x) * SAMPLE_MIX) & LOW_32;
    (x >> 16) ^ x
}

/// `a XOR b` in a dialect (SQLite has no XOR operator).
fn xor(dialect: Dialect, a: &str, b: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("(({a}) | ({b})) - (({a}) & ({b}))"),
        Dialect::BigQuery => format!("({a}) ^ ({b})"),
    }
}

/// Columns `status_text_id`, `status_text`, `checkpoint_sha256` (NULL for
/// the Python pipeline's rows), then the class columns: at most `rows`
/// stored scores of `table` drawn by [`sample_key`] with `seed` (smallest
/// key first, ties by id) among the texts' scores (the one every read uses)
/// that `scored_by` selects, with their texts.
pub fn sample_scores(dialect: Dialect, table: &ModelTable, rows: usize, seed: u32, scored_by: &ScoredBy) -> String {
    let score_columns: String = table.columns.iter().map(|column| format!(", s.{column}")).collect();
    let scores = match dialect {
        Dialect::Sqlite => table.table.to_string(),
        Dialect::BigQuery => format!("({})", latest_scores(table)),
    };
    let key = |x: &str| format!("((({}) * {SAMPLE_MIX}) & {LOW_32})", xor(dialect, &format!("{x} >> 16"), x));
    let id = "s.status_text_id";
    let start = xor(
        dialect,
        &xor(dialect, &format!("{id} & {LOW_32}"), &format!("({id} >> 32) & {LOW_32}")),
        &seed.to_string(),
    );
    let keyed = format!(
        "SELECT k2.*, {last} AS sample_key FROM (
  SELECT k1.*, {h2} AS h2 FROM (
    SELECT k0.*, {h1} AS h1 FROM (
      SELECT s.status_text_id AS status_text_id, s.checkpoint_sha256 AS checkpoint_sha256{score_columns},
        {start} AS h0
      FROM {scores} AS s
      WHERE {condition}) AS k0) AS k1) AS k2",
        last = xor(dialect, "h2 >> 16", "h2"),
        h2 = key("h1"),
        h1 = key("h0"),
        condition = scored_by.condition(),
    );
    match dialect {
        Dialect::Sqlite => format!(
            "SELECT s.status_text_id AS status_text_id, t.status_text AS status_text, s.checkpoint_sha256 AS checkpoint_sha256{score_columns}
FROM ({keyed}) AS s
JOIN status_texts AS t ON t.status_text_id = s.status_text_id
ORDER BY s.sample_key, s.status_text_id
LIMIT {rows}"
        ),
        // The draw reads only the score table; the texts are then read for
        // the drawn ids alone.
        Dialect::BigQuery => format!(
            "WITH s AS (SELECT * FROM ({keyed}) ORDER BY sample_key, status_text_id LIMIT {rows})
SELECT s.status_text_id AS status_text_id, t.status_text AS status_text, s.checkpoint_sha256 AS checkpoint_sha256{score_columns}
FROM s
JOIN (SELECT DISTINCT status_text_id, status_text FROM {{dataset}}.status_texts
      WHERE status_text_id IN (SELECT status_text_id FROM s)) AS t
  ON t.status_text_id = s.status_text_id
ORDER BY s.sample_key, s.status_text_id"
        ),
    }
}

/// BigQuery: the rows of a score table, one per text: the latest
/// `scored_at` wins, and a row without one (the Python pipeline's) counts
/// as oldest. Rows whose text id is in no `status_texts` row (see
/// [`refresh`]) score no text and are left out.
fn latest_scores(table: &ModelTable) -> String {
    format!(
        "SELECT * FROM {{dataset}}.{scores}
      WHERE status_text_id IN (SELECT status_text_id FROM {{dataset}}.status_texts)
      QUALIFY ROW_NUMBER() OVER (PARTITION BY status_text_id
                                 ORDER BY scored_at DESC NULLS LAST, checkpoint_sha256 NULLS LAST{columns}) = 1",
        scores = table.table,
        // The pipeline's rows have neither: ties between two of its rows for
        // one text are broken by the values, so that every read and every
        // run picks the same one.
        columns = table.columns.iter().map(|column| format!(", {column}")).collect::<String>()
    )
}

/// One row per status whose text `table` has scored: `status_id`,
/// `user_id`, `status_text_id`, `created_at` when asked for, then the class
/// columns. `user_id` and `created_at` come from the `tweets` row whose text
/// was joined (the smallest on ties); on BigQuery the latest `scored_at` of a
/// text wins, and a row without one (the Python pipeline's) counts as oldest.
fn statuses_scored(dialect: Dialect, table: &ModelTable, source: &TweetSource, created_at: bool) -> String {
    let score_columns: String = table.columns.iter().map(|column| format!(", s.{column}")).collect();
    match dialect {
        Dialect::Sqlite => {
            let joined = |column: &str| {
                format!(
                    "(SELECT MIN(tw.{column}) FROM tweets AS tw
   WHERE tw.status_id = j.status_id AND tw.status_text = t.status_text)"
                )
            };
            let created_at =
                if created_at { format!(",\n  {} AS created_at", joined("created_at")) } else { String::new() };
            format!(
                "SELECT j.status_id AS status_id,
  {user_id} AS user_id,
  j.status_text_id AS status_text_id{created_at}{score_columns}
FROM statuses_texts AS j
JOIN {scores} AS s ON s.status_text_id = j.status_text_id
JOIN status_texts AS t ON t.status_text_id = j.status_text_id",
                user_id = joined("user_id"),
                scores = table.table
            )
        }
        Dialect::BigQuery => {
            let (created_at_column, created_at_min) =
                if created_at { (", u.created_at AS created_at", ", MIN(created_at) AS created_at") } else { ("", "") };
            format!(
                "SELECT j.status_id AS status_id, u.user_id AS user_id, j.status_text_id AS status_text_id{created_at_column}{score_columns}
FROM {joins} AS j
JOIN ({latest}) AS s
  ON s.status_text_id = j.status_text_id
LEFT JOIN (SELECT status_id, status_text, MIN(user_id) AS user_id{created_at_min}
      FROM {view} AS tw GROUP BY status_id, status_text) AS u
  ON u.status_id = j.status_id AND u.status_text = j.status_text",
                joins = one_text_per_status(dialect),
                latest = latest_scores(table),
                view = source.view()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::substitute_dataset;
    use crate::schema::MODEL_TABLES;

    #[test]
    fn unscored_writes_the_page_conditions() {
        let table = &MODEL_TABLES[0];
        let sql = unscored(Dialect::Sqlite, table, Some(41), 500, Some((2, 8)));
        assert!(sql.contains("LEFT JOIN toxicity_scores_original AS s"), "{sql}");
        assert!(sql.contains("t.status_text_id > 41"), "{sql}");
        assert!(sql.contains("t.status_text_id % 8 = 2"), "{sql}");
        assert!(sql.ends_with("LIMIT 500"), "{sql}");
        let sql = unscored(Dialect::BigQuery, table, None, 10, Some((0, 1)));
        assert!(sql.contains("MOD(t.status_text_id, 1) = 0"), "{sql}");
        assert!(!sql.contains(" > "), "{sql}");
        assert!(substitute_dataset(&sql, "d").expect("valid").contains("LEFT JOIN d.toxicity_scores_original"));
    }

    #[test]
    fn bigquery_sql_names_every_table_with_the_dataset() {
        let table = &MODEL_TABLES[1];
        let mut all: Vec<String> =
            refresh(Dialect::BigQuery, &TweetSource::default(), MODEL_TABLES).into_iter().map(|s| s.sql).collect();
        all.extend([
            conflict_count(Dialect::BigQuery, &TweetSource::default()),
            conflict_examples(Dialect::BigQuery, 5, &TweetSource::default()),
            unscored(Dialect::BigQuery, table, Some(1), 1, None),
            text_page(Dialect::BigQuery, Some(3), 7),
            progress(Dialect::BigQuery, &TweetSource::default(), MODEL_TABLES),
            export(Dialect::BigQuery, table, &TweetSource::default()),
            sample_scores(Dialect::BigQuery, table, 5, 7, &ScoredBy::Unrecorded),
        ]);
        let names = ["tweets", "status_texts", "statuses_texts", "toxicity_scores_"];
        for sql in &all {
            for word in sql.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',') {
                if names.iter().any(|name| word.starts_with(name)) {
                    panic!("unqualified table {word:?} in {sql}");
                }
            }
        }
        for sql in refresh(Dialect::Sqlite, &TweetSource::default(), &[]).into_iter().map(|s| s.sql) {
            assert!(!sql.contains("{dataset}"), "{sql}");
        }
    }

    #[test]
    fn sample_keys_are_spread_and_distinct() {
        // Each step is a bijection of 32-bit values: ids below 2^32 never share a key.
        let keys: std::collections::BTreeSet<i64> = (0..100_000).map(|id| sample_key(id, 9)).collect();
        assert_eq!(keys.len(), 100_000);
        assert!(keys.iter().all(|key| (0..=LOW_32).contains(key)));
        // The 1,000 smallest keys of ids 0..100,000 come from all over the range.
        let mut ids: Vec<i64> = (0..100_000).collect();
        ids.sort_by_key(|&id| (sample_key(id, 9), id));
        let drawn = &ids[..1_000];
        for tenth in 0..10 {
            let n = drawn.iter().filter(|&&id| id / 10_000 == tenth).count();
            assert!((60..=140).contains(&n), "{n} of 1,000 drawn ids in the {tenth}th tenth");
        }
        assert_ne!(sample_key(5, 1), sample_key(5, 2), "the seed changes the draw");
        assert_ne!(sample_key(1 << 40, 0), sample_key(0, 0), "the high bits count");
    }

    #[test]
    fn a_checkpoint_filter_is_hex_before_it_reaches_the_sql() {
        for good in [ScoredBy::Any, ScoredBy::Unrecorded, ScoredBy::Checkpoint("0a9f".into())] {
            assert_eq!(good.check(), Ok(()));
        }
        for bad in ["", "0A", "ab' OR '1'='1", &"a".repeat(65)] {
            assert!(ScoredBy::Checkpoint(bad.into()).check().is_err(), "{bad:?}");
        }
        let sql = sample_scores(Dialect::Sqlite, &MODEL_TABLES[0], 3, 1, &ScoredBy::Checkpoint("0a9f".into()));
        assert!(sql.contains("SUBSTR(s.checkpoint_sha256, 1, 4) = '0a9f'") && sql.ends_with("LIMIT 3"), "{sql}");
        assert!(ScoredBy::Checkpoint("0a9f".into()).matches(Some("0a9f00")));
        assert!(!ScoredBy::Checkpoint("0a9f".into()).matches(None));
        assert!(ScoredBy::Unrecorded.matches(None) && !ScoredBy::Unrecorded.matches(Some("0a9f")));
    }

    #[test]
    fn progress_and_export_list_the_model_columns() {
        let sql = progress(Dialect::Sqlite, &TweetSource::default(), MODEL_TABLES);
        for model in MODEL_TABLES {
            assert!(sql.contains(&format!("AS scored_{}", model.table)), "{sql}");
        }
        let table = &MODEL_TABLES[0];
        let sql = export(Dialect::BigQuery, table, &TweetSource::default());
        assert!(sql.contains("s.toxicity, s.severe_toxicity, s.obscene, s.threat, s.insult, s.identity_hate"), "{sql}");
    }
}
