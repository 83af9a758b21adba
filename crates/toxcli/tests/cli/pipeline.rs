//! The Python pipeline's own BigQuery dataset, adopted in place on the
//! emulator: its DDL and SQL (s2t2/tweet-analysis-2020, `app/toxicity/`)
//! build the tables, then `toxcli migrate`, `score`, `status` and `export`
//! finish the job with no flag beyond `--score-table`.
//!
//! The emulator runs on DuckDB and hides two classes of BigQuery errors: it
//! compares INT64 with STRING silently, and drops insert fields a table lacks.
//! So every statement and insert the runs send is recorded
//! (`TOXSCORE_BIGQUERY_LOG`) and typed against the tables' real schemas by
//! `scripts/bq_typecheck.py` (sqlglot's BigQuery dialect, in the emulator's
//! virtual environment: `TOXSCORE_BIGQUERY_PYTHON`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Run, model_flags, repo_path, run, score_args, toxcli};

const PROJECT: &str = "test-project";

fn endpoint() -> String {
    std::env::var("TOXSCORE_BIGQUERY_EMULATOR").expect(
        "TOXSCORE_BIGQUERY_EMULATOR is not set: run the tests with `cargo xtask test`, which starts the BigQuery emulator",
    )
}

/// A minimal REST client of the emulator, for seeding and reading back
/// what toxcli wrote, independently of toxscore's own client.
struct Emulator {
    project: String,
    base: String,
}

impl Emulator {
    fn new() -> Self {
        Emulator::in_project(PROJECT)
    }

    /// Requests (and their jobs) in another project.
    fn in_project(project: &str) -> Self {
        let base = format!("{}/bigquery/v2/projects/{project}", endpoint().trim_end_matches('/'));
        Emulator { project: project.to_owned(), base }
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        let url = format!("{}/{path}", self.base);
        let mut response = ureq::post(&url)
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap_or_else(|error| panic!("POST {url}: {error}"));
        let text = response.body_mut().read_to_string().expect("read the answer");
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("POST {url}: {error}: {text}"))
    }

    /// Runs SQL and returns the rows as nullable strings; panics on an error.
    fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let answer = self.post("queries", &json!({ "query": sql, "useLegacySql": false, "maxResults": 100_000 }));
        assert!(
            answer.get("errors").is_none_or(|errors| errors.as_array().is_none_or(Vec::is_empty)),
            "{sql}: {answer}"
        );
        answer["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|row| {
                        row["f"]
                            .as_array()
                            .expect("cells")
                            .iter()
                            .map(|cell| match &cell["v"] {
                                Value::Null => None,
                                Value::String(text) => Some(text.clone()),
                                other => Some(other.to_string()),
                            })
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn count(&self, sql: &str) -> u64 {
        self.query(sql)[0][0].as_deref().expect("a count").parse().expect("a number")
    }

    fn insert_all(&self, dataset: &str, table: &str, rows: &[Value]) {
        for chunk in rows.chunks(500) {
            let body = json!({ "rows": chunk.iter().map(|row| json!({ "json": row })).collect::<Vec<_>>() });
            let answer = self.post(&format!("datasets/{dataset}/tables/{table}/insertAll"), &body);
            assert!(
                answer.get("insertErrors").is_none_or(|errors| errors.as_array().is_none_or(Vec::is_empty)),
                "{answer}"
            );
        }
    }

    fn create_dataset(&self, dataset: &str) {
        self.post("datasets", &json!({ "datasetReference": { "projectId": self.project, "datasetId": dataset } }));
    }

    /// `(column, type, mode)` of a table, as tables.get says.
    fn schema(&self, dataset: &str, table: &str) -> Vec<(String, String, String)> {
        let url = format!("{}/datasets/{dataset}/tables/{table}", self.base);
        let mut response = ureq::get(&url).call().unwrap_or_else(|error| panic!("GET {url}: {error}"));
        let answer: Value = serde_json::from_str(&response.body_mut().read_to_string().expect("read")).expect("json");
        answer["schema"]["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|field| {
                let text = |key: &str| field[key].as_str().unwrap_or("NULLABLE").to_owned();
                (text("name"), text("type"), text("mode"))
            })
            .collect()
    }

    fn tables(&self, dataset: &str) -> Vec<String> {
        let url = format!("{}/datasets/{dataset}/tables", self.base);
        let mut response = ureq::get(&url).call().unwrap_or_else(|error| panic!("GET {url}: {error}"));
        let answer: Value = serde_json::from_str(&response.body_mut().read_to_string().expect("read")).expect("json");
        answer["tables"]
            .as_array()
            .map(|tables| {
                tables
                    .iter()
                    .filter_map(|table| table["tableReference"]["tableId"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A dataset name unique to this process.
fn dataset(purpose: &str) -> String {
    format!("{purpose}_{}", std::process::id())
}

/// The pipeline's `tweets` table (app/bq_service.py), column for column.
const TWEETS_DDL: &str = "status_id STRING, status_text STRING, truncated BOOLEAN, retweeted_status_id STRING, \
    retweeted_user_id STRING, retweeted_user_screen_name STRING, reply_status_id STRING, reply_user_id STRING, \
    is_quote BOOLEAN, geo STRING, created_at TIMESTAMP, user_id STRING, user_name STRING, user_screen_name STRING, \
    user_description STRING, user_location STRING, user_verified BOOLEAN, user_created_at TIMESTAMP";

/// Tweets as the collector streamed them: `n_texts` distinct texts, every
/// seventh retweeted under another status id, every eleventh stored twice
/// (the same row again). Ids are strings of digits.
fn pipeline_tweets(first_text: usize, n_texts: usize) -> Vec<Value> {
    let mut rows = Vec::new();
    for idx in first_text..first_text + n_texts {
        let text = format!("tweet {idx}: {}", ["you are a liar", "have a nice day", "shut up", "what a game"][idx % 4]);
        let row = |status_id: usize| {
            json!({
                "status_id": status_id.to_string(),
                "status_text": text,
                "user_id": (5_000 + idx % 97).to_string(),
                "user_screen_name": format!("user{}", idx % 97),
                "truncated": false,
                "is_quote": false,
                "created_at": format!("2020-01-{:02} 12:00:00 UTC", 1 + idx % 28),
            })
        };
        rows.push(row(1_000_000 + idx));
        if idx % 7 == 0 {
            rows.push(row(8_000_000 + idx));
        }
        if idx % 11 == 0 {
            rows.push(row(1_000_000 + idx));
        }
    }
    rows
}

/// Builds the pipeline's dataset as its README does it: `tweets`, then
/// `status_texts` (`ROW_NUMBER() OVER()` ids, `status_ids` array) and
/// `statuses_texts` (`UNNEST`), then `toxicity_scores_original_ckpt`, with
/// the scores of every third text streamed in, rounded to 8 decimals.
/// Returns the scores it wrote, by text id.
fn seed_pipeline(emulator: &Emulator, dataset: &str, n_texts: usize) -> BTreeMap<i64, Vec<f64>> {
    seed_pipeline_with(emulator, dataset, n_texts, &[])
}

/// [`seed_pipeline`], with `extra` tweets (each with a text of its own)
/// collected before the pipeline built its tables.
fn seed_pipeline_with(emulator: &Emulator, dataset: &str, n_texts: usize, extra: &[Value]) -> BTreeMap<i64, Vec<f64>> {
    let made_up = |id: i64, _: &str| -> Vec<f64> {
        (0..6).map(|class| ((id as f64 * 0.001_234_567_89 + class as f64 * 0.1) % 1.0 * 1e8).round() / 1e8).collect()
    };
    seed_pipeline_scored(emulator, dataset, n_texts, extra, &made_up)
}

/// [`seed_pipeline_with`], the scores of text `id` with text `text` being
/// `scores(id, text)`.
fn seed_pipeline_scored(
    emulator: &Emulator,
    dataset: &str,
    n_texts: usize,
    extra: &[Value],
    scores: &dyn Fn(i64, &str) -> Vec<f64>,
) -> BTreeMap<i64, Vec<f64>> {
    emulator.create_dataset(dataset);
    emulator.query(&format!("CREATE TABLE {dataset}.tweets ({TWEETS_DDL})"));
    let mut tweets = pipeline_tweets(0, n_texts);
    tweets.extend(extra.iter().cloned());
    emulator.insert_all(dataset, "tweets", &tweets);
    let n_texts = n_texts + extra.len();
    emulator.query(&format!(
        "CREATE TABLE IF NOT EXISTS {dataset}.status_texts as (
    SELECT
        ROW_NUMBER() OVER() status_text_id
        ,status_text
        ,status_ids
        ,status_count
    FROM (
        SELECT
            status_text
            ,array_agg(cast(status_id as int64)) as status_ids
            ,count(distinct status_id) as status_count
        FROM {dataset}.tweets
        GROUP BY 1
    )
)"
    ));
    emulator.query(&format!(
        "CREATE TABLE IF NOT EXISTS {dataset}.statuses_texts as (
    SELECT status_text_id, status_id
    FROM {dataset}.status_texts,
    UNNEST(status_ids) as status_id
)"
    ));
    emulator.query(&format!(
        "CREATE TABLE IF NOT EXISTS {dataset}.toxicity_scores_original_ckpt (
    status_text_id INT64,
    toxicity FLOAT64,
    severe_toxicity FLOAT64,
    obscene FLOAT64,
    threat FLOAT64,
    insult FLOAT64,
    identity_hate FLOAT64,
)"
    ));
    let texts: Vec<(i64, String)> = emulator
        .query(&format!("SELECT status_text_id, status_text FROM {dataset}.status_texts ORDER BY status_text_id"))
        .into_iter()
        .map(|row| {
            let id = row[0].as_deref().expect("an id").parse().expect("a number");
            (id, row[1].clone().expect("a text"))
        })
        .collect();
    assert_eq!(texts.len(), n_texts, "the pipeline's status_texts");
    let written = scores;
    let mut scores = BTreeMap::new();
    let mut rows = Vec::new();
    for (id, text) in texts.into_iter().filter(|(id, _)| id % 3 == 0) {
        let values = written(id, &text);
        rows.push(json!({
            "status_text_id": id,
            "toxicity": values[0], "severe_toxicity": values[1], "obscene": values[2],
            "threat": values[3], "insult": values[4], "identity_hate": values[5],
        }));
        scores.insert(id, values);
    }
    emulator.insert_all(dataset, "toxicity_scores_original_ckpt", &rows);
    scores
}

/// toxcli against `dataset`, with every statement and insert logged to `log`.
fn bigquery(dir: &Path, dataset: &str, log: &Path, args: &[&str]) -> Command {
    let mut command = toxcli(dir);
    command
        .args(["--store", &format!("bigquery:{PROJECT}.{dataset}"), "--bigquery-endpoint", &endpoint()])
        .args(args)
        .env("TOXSCORE_BIGQUERY_LOG", log);
    command
}

fn bigquery_run(dir: &Path, dataset: &str, log: &Path, args: &[&str], code: i32) -> Run {
    let result = run(&mut bigquery(dir, dataset, log, args));
    assert_eq!(result.code, code, "toxcli {args:?}\nstdout:\n{}\nstderr:\n{}", result.stdout, result.stderr);
    assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
    result
}

/// The score table's rows: text id to the six values and whether
/// `checkpoint_sha256` is set.
fn score_rows(emulator: &Emulator, dataset: &str, table: &str) -> Vec<(i64, Vec<String>, bool)> {
    emulator
        .query(&format!(
            "SELECT status_text_id, toxicity, severe_toxicity, obscene, threat, insult, identity_hate, \
             checkpoint_sha256 IS NOT NULL AS ours FROM {dataset}.{table} ORDER BY status_text_id, ours"
        ))
        .into_iter()
        .map(|row| {
            let id = row[0].as_deref().expect("id").parse().expect("a number");
            let values = row[1..7].iter().map(|value| value.clone().unwrap_or_default()).collect();
            (id, values, row[7].as_deref() == Some("true"))
        })
        .collect()
}

/// Types every statement and insert of `log` against the schemas of the
/// tables in `datasets`, with `scripts/bq_typecheck.py`; returns its exit
/// code and output.
fn typecheck(dir: &Path, datasets: &[(&Emulator, &str)], log: &Path, mutate: fn(&str) -> String) -> (i32, String) {
    let mut schemas = serde_json::Map::new();
    for (emulator, dataset) in datasets {
        for table in emulator.tables(dataset) {
            let columns: serde_json::Map<String, Value> = emulator
                .schema(dataset, &table)
                .into_iter()
                .map(|(name, column_type, mode)| {
                    let column_type = match column_type.as_str() {
                        "INTEGER" => "INT64".to_owned(),
                        "FLOAT" => "FLOAT64".to_owned(),
                        "BOOLEAN" => "BOOL".to_owned(),
                        other => other.to_owned(),
                    };
                    let column_type = if mode == "REPEATED" { format!("ARRAY<{column_type}>") } else { column_type };
                    (name, Value::String(column_type))
                })
                .collect();
            schemas.insert(format!("{}.{dataset}.{table}", emulator.project), Value::Object(columns));
        }
    }
    let mut statements = Vec::new();
    let mut inserts = Vec::new();
    let text = std::fs::read_to_string(log).expect("the request log");
    for line in text.lines() {
        let entry: Value = serde_json::from_str(line).expect("a JSON line");
        if let Some(sql) = entry["query"].as_str() {
            let parameters: Vec<Value> = entry["parameters"]
                .as_array()
                .map(|parameters| {
                    parameters
                        .iter()
                        .map(|parameter| {
                            let kind = &parameter["parameterType"];
                            let array = kind["type"] == "ARRAY";
                            let element = if array { &kind["arrayType"]["type"] } else { &kind["type"] };
                            json!({ "name": parameter["name"], "type": element, "array": array })
                        })
                        .collect()
                })
                .unwrap_or_default();
            statements.push(json!({ "sql": mutate(sql), "parameters": parameters }));
        }
        for key in ["insert", "load"] {
            if let Some(table) = entry[key].as_str() {
                inserts.push(json!({ "table": table, "fields": entry["fields"] }));
            }
        }
    }
    assert!(statements.len() > 10, "the log holds only {} statements", statements.len());
    let checked = dir.join(format!("typecheck-{}.json", statements.len()));
    std::fs::write(&checked, json!({ "schemas": schemas, "statements": statements, "inserts": inserts }).to_string())
        .expect("write the typecheck input");
    let python = std::env::var("TOXSCORE_BIGQUERY_PYTHON").expect(
        "TOXSCORE_BIGQUERY_PYTHON is not set: run the tests with `cargo xtask test` (the emulator's Python has sqlglot)",
    );
    let output = Command::new(python)
        .arg(repo_path("scripts/bq_typecheck.py"))
        .arg(&checked)
        .output()
        .expect("run scripts/bq_typecheck.py");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// Removes the first `SAFE_CAST(... AS INT64)` of a statement, keeping the
/// expression inside: what a careless edit of the queries would do.
fn without_first_safe_cast(sql: &str) -> String {
    let Some(start) = sql.find("SAFE_CAST(") else {
        return sql.to_owned();
    };
    let rest = &sql[start + "SAFE_CAST(".len()..];
    let Some(end) = rest.find(" AS INT64)") else {
        return sql.to_owned();
    };
    format!("{}{}{}", &sql[..start], &rest[..end], &rest[end + " AS INT64)".len()..])
}

#[test]
fn the_pipelines_dataset_is_adopted_in_place_and_finished() {
    let emulator = Emulator::new();
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let log = dir.join("requests.jsonl");
    let dataset = dataset("pipeline");
    let n_seeded = 120;
    let pipeline_scores = seed_pipeline(&emulator, &dataset, n_seeded);
    let flags = model_flags();
    let score_table = "--score-table=toxicity_scores_original_ckpt";

    // Tweets collected after the pipeline built its tables, one of them with
    // an id that is not a number and one without a text.
    let mut later = pipeline_tweets(n_seeded, 30);
    later.push(json!({ "status_id": "12x", "status_text": "a mangled id", "user_id": "1" }));
    later.push(json!({ "status_id": "77", "status_text": null, "user_id": "1" }));
    emulator.insert_all(&dataset, "tweets", &later);
    let max_pipeline_id = emulator.count(&format!("SELECT MAX(status_text_id) FROM {dataset}.status_texts"));
    let tweets_before = emulator.query(&format!("SELECT * FROM {dataset}.tweets ORDER BY status_id, status_text"));
    let joins_before = emulator.count(&format!("SELECT COUNT(*) FROM {dataset}.statuses_texts"));
    let scores_before: Vec<(i64, Vec<String>)> = emulator
        .query(&format!(
            "SELECT status_text_id, toxicity, severe_toxicity, obscene, threat, insult, identity_hate \
             FROM {dataset}.toxicity_scores_original_ckpt ORDER BY status_text_id"
        ))
        .into_iter()
        .map(|row| {
            let id = row[0].as_deref().expect("id").parse().expect("a number");
            (id, row[1..].iter().map(|value| value.clone().unwrap_or_default()).collect())
        })
        .collect();

    // A dry run reads, prints and changes nothing.
    let dry = bigquery_run(dir, &dataset, &log, &[score_table, "migrate", "--dry-run"], 0);
    let alter = format!(
        "ALTER TABLE {dataset}.toxicity_scores_original_ckpt ADD COLUMN IF NOT EXISTS checkpoint_sha256 STRING"
    );
    assert!(dry.stdout.contains(&alter), "{}", dry.stdout);
    assert!(dry.stdout.contains("CREATE TABLE IF NOT EXISTS"), "{}", dry.stdout);
    assert!(dry.stdout.contains("INSERT INTO"), "the dry run lists the de-duplication too:\n{}", dry.stdout);
    assert_eq!(emulator.schema(&dataset, "toxicity_scores_original_ckpt").len(), 7, "the dry run changed the table");
    assert!(!emulator.tables(&dataset).contains(&"toxscore_migrations".to_owned()), "the dry run created a table");

    let migrate = bigquery_run(dir, &dataset, &log, &[score_table, "migrate"], 0);
    assert!(migrate.stderr.contains("adopted"), "{}", migrate.stderr);
    assert!(migrate.stderr.contains("30 new distinct texts"), "{}", migrate.stderr);
    assert!(migrate.stderr.contains("2 tweets rows skipped"), "{}", migrate.stderr);
    assert!(migrate.stderr.contains("12x"), "{}", migrate.stderr);
    let schema = emulator.schema(&dataset, "toxicity_scores_original_ckpt");
    for column in ["checkpoint_sha256", "scored_at"] {
        let found =
            schema.iter().find(|(name, _, _)| name == column).unwrap_or_else(|| panic!("no {column}: {schema:?}"));
        assert_eq!(found.2, "NULLABLE", "{found:?}");
    }
    // Migrating again adds nothing.
    let again = bigquery_run(dir, &dataset, &log, &[score_table, "migrate"], 0);
    assert!(!again.stderr.contains("adopted"), "{}", again.stderr);
    assert!(again.stderr.contains("0 new distinct texts"), "{}", again.stderr);

    // Nothing the pipeline wrote changed; new texts got ids after its maximum.
    let tweets_after = emulator.query(&format!("SELECT * FROM {dataset}.tweets ORDER BY status_id, status_text"));
    assert_eq!(tweets_after, tweets_before, "migrate touched the pipeline's tweets");
    let new_ids = emulator
        .query(&format!("SELECT status_text_id FROM {dataset}.status_texts WHERE status_text_id > {max_pipeline_id}"));
    assert_eq!(new_ids.len(), 30);
    assert_eq!(
        emulator.count(&format!("SELECT COUNT(*) FROM {dataset}.status_texts")),
        n_seeded as u64 + 30,
        "the pipeline's texts kept their rows"
    );
    assert!(emulator.count(&format!("SELECT COUNT(*) FROM {dataset}.statuses_texts")) > joins_before);

    // The pipeline's scores count as scored.
    let status = bigquery_run(dir, &dataset, &log, &[score_table, "status"], 0);
    let original = status.stdout.lines().find(|line| line.starts_with("original ")).expect("an original row");
    let scored_before = pipeline_scores.len() as u64;
    let cells: Vec<&str> = original.split_whitespace().collect();
    let expected = [n_seeded as u64 + 30, scored_before, n_seeded as u64 + 30 - scored_before].map(|n| n.to_string());
    assert_eq!(cells[1..4].to_vec(), expected.iter().map(String::as_str).collect::<Vec<_>>(), "{original}");
    assert!(original.ends_with("toxicity_scores_original_ckpt"), "{original}");

    // Only the rest is scored; the pipeline's rows stay as they were.
    let mut args = vec![score_table];
    args.extend(score_args(&[], &flags));
    let score = bigquery_run(dir, &dataset, &log, &args, 0);
    assert!(
        score.stderr.contains(&format!("scored {} texts", n_seeded as u64 + 30 - scored_before)),
        "{}",
        score.stderr
    );
    let after = score_rows(&emulator, &dataset, "toxicity_scores_original_ckpt");
    let theirs: Vec<(i64, Vec<String>)> =
        after.iter().filter(|(_, _, ours)| !ours).map(|(id, values, _)| (*id, values.clone())).collect();
    assert_eq!(theirs, scores_before, "the pipeline's score rows changed");
    let distinct: BTreeSet<i64> = after.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(distinct.len(), n_seeded + 30, "a text is unscored");
    assert_eq!(after.len(), distinct.len(), "a text was scored twice");

    // The export joins every status id, with the pipeline's scores where it
    // scored, exactly as it stored them.
    bigquery_run(dir, &dataset, &log, &[score_table, "export", "--output", "adopted.csv"], 0);
    let export = std::fs::read_to_string(dir.join("adopted.csv")).expect("the export");
    let statuses = emulator.count(&format!(
        "SELECT COUNT(DISTINCT status_id) FROM {dataset}.tweets WHERE SAFE_CAST(status_id AS INT64) IS NOT NULL AND status_text IS NOT NULL"
    ));
    assert_eq!(export.lines().count() as u64, statuses + 1, "one row per status id, and a header");
    let mut seen_pipeline = 0;
    for line in export.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let text_id: i64 = cells[2].parse().expect("a text id");
        assert!(!cells[1].is_empty(), "no user id: {line}");
        if let Some(values) = pipeline_scores.get(&text_id) {
            let exported: Vec<f64> = cells[3..].iter().map(|cell| cell.parse().expect("a score")).collect();
            assert_eq!(&exported, values, "the pipeline's scores of text {text_id}");
            seen_pipeline += 1;
        }
    }
    assert!(seen_pipeline >= pipeline_scores.len(), "{seen_pipeline}");

    // The joined table inside BigQuery: created, then replaced; a table the
    // user made, or one the scores come from, is never touched.
    let to_table =
        bigquery_run(dir, &dataset, &log, &[score_table, "export", "--to-table", "tweet_toxicity_scores"], 0);
    assert!(to_table.stderr.contains(&format!("exported {statuses} rows")), "{}", to_table.stderr);
    bigquery_run(dir, &dataset, &log, &[score_table, "export", "--to-table", "tweet_toxicity_scores"], 0);
    assert_eq!(emulator.count(&format!("SELECT COUNT(*) FROM {dataset}.tweet_toxicity_scores")), statuses);
    let columns: Vec<String> =
        emulator.schema(&dataset, "tweet_toxicity_scores").into_iter().map(|(name, _, _)| name).collect();
    assert_eq!(columns[..3], ["status_id", "user_id", "status_text_id"]);
    emulator.query(&format!("CREATE TABLE {dataset}.user_made AS SELECT 1 AS x"));
    for name in ["user_made", "tweets", "toxicity_scores_original_ckpt", "statuses_texts"] {
        let refused = bigquery_run(dir, &dataset, &log, &[score_table, "export", "--to-table", name], 4);
        assert!(refused.stderr.contains("already exists"), "{}", refused.stderr);
    }
    assert_eq!(emulator.count(&format!("SELECT COUNT(*) FROM {dataset}.user_made")), 1);
    // The per-user aggregates as a table, as the pipeline's
    // `user_toxicity_scores` held them: one row per user, typed.
    let users = bigquery_run(
        dir,
        &dataset,
        &log,
        &[score_table, "export", "--by", "user", "--to-table", "user_toxicity_by_toxscore"],
        0,
    );
    assert!(users.stderr.contains("rows of model original to table user_toxicity_by_toxscore"), "{}", users.stderr);
    let schema = emulator.schema(&dataset, "user_toxicity_by_toxscore");
    let types: Vec<(&str, &str)> = schema.iter().map(|(name, kind, _)| (name.as_str(), kind.as_str())).collect();
    assert_eq!(types[..3], [("user_id", "INTEGER"), ("n_statuses", "INTEGER"), ("avg_toxicity", "FLOAT")], "{types:?}");
    let summed = emulator.count(&format!("SELECT SUM(n_statuses) FROM {dataset}.user_toxicity_by_toxscore"));
    assert_eq!(summed, statuses, "each scored status once");

    // Tweets imported into the pipeline's own `tweets` (STRING ids): a small
    // file streams, a large one goes in a load job; importing it again adds
    // nothing; `migrate` joins them (on BigQuery `score` does not look for
    // tweets imported since: that would scan the whole tweets table) and
    // `score` scores the new texts.
    let mut csv = String::from("status_id,user_id,status_text,created_at\n");
    for idx in 0..1_500 {
        csv.push_str(&format!(
            "{},{},imported text {idx},2020-02-0{} 10:00:00\n",
            50_000_000 + idx,
            7 + idx % 13,
            1 + idx % 9
        ));
    }
    std::fs::write(dir.join("more.csv"), csv).expect("write more.csv");
    let fixture = super::fixture_tweets();
    let small = bigquery_run(dir, &dataset, &log, &["import", "--input", &fixture], 0);
    assert!(small.stderr.contains("61 new"), "{}", small.stderr);
    let large = bigquery_run(dir, &dataset, &log, &["import", "--input", "more.csv"], 0);
    assert!(large.stderr.contains("1500 new"), "{}", large.stderr);
    let again = bigquery_run(dir, &dataset, &log, &["import", "--input", "more.csv"], 0);
    assert!(again.stderr.contains("0 new, 1500 already present"), "{}", again.stderr);
    let joined = bigquery_run(dir, &dataset, &log, &[score_table, "migrate"], 0);
    assert!(joined.stderr.contains("1548 new distinct texts"), "{}", joined.stderr);
    let mut args = vec![score_table];
    args.extend(score_args(&[], &flags));
    let more = bigquery_run(dir, &dataset, &log, &args, 0);
    assert!(more.stderr.contains("scored 1548 texts"), "{}", more.stderr);
    let imported: Vec<String> = emulator
        .query(&format!("SELECT user_id FROM {dataset}.tweets WHERE status_id = '50000007'"))
        .into_iter()
        .map(|row| row[0].clone().unwrap_or_default())
        .collect();
    assert_eq!(imported, ["14"], "the load job wrote the STRING column as digits");

    // Aggregates, computed in BigQuery.
    bigquery_run(dir, &dataset, &log, &[score_table, "export", "--by", "user", "--output", "users.csv"], 0);
    let users = std::fs::read_to_string(dir.join("users.csv")).expect("users.csv");
    let counted: u64 =
        users.lines().skip(1).map(|line| line.split(',').nth(1).expect("n").parse::<u64>().expect("n")).sum();
    let scored_statuses = emulator.count(&format!("SELECT COUNT(DISTINCT status_id) FROM {dataset}.statuses_texts"));
    assert_eq!(counted, scored_statuses, "each status counts once");
    let days = bigquery_run(dir, &dataset, &log, &[score_table, "export", "--by", "day"], 0);
    assert!(days.stdout.lines().any(|line| line.starts_with("2020-01-01,")), "{}", days.stdout);

    // Every statement is type-correct for BigQuery, and every insert names
    // only columns its table has. The check itself fails once a SAFE_CAST
    // is removed from what was sent.
    let (code, output) = typecheck(dir, &[(&emulator, &dataset)], &log, str::to_owned);
    assert_eq!(code, 0, "{output}");
    eprintln!("{output}");
    let (code, output) = typecheck(dir, &[(&emulator, &dataset)], &log, without_first_safe_cast);
    assert_eq!(code, 1, "removing a SAFE_CAST went unnoticed:\n{output}");
    assert!(output.contains("STRING"), "{output}");
}

#[test]
fn tweets_read_from_a_table_elsewhere_with_its_own_column_names() {
    let emulator = Emulator::new();
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let log = dir.join("requests.jsonl");
    // The tweets live in another project, as the pipeline's may.
    let other = Emulator::in_project("other-project");
    let source = dataset("source");
    let store = dataset("elsewhere");
    other.create_dataset(&source);
    other.query(&format!(
        "CREATE TABLE {source}.tweets_v2 (id_str STRING, author STRING, full_text STRING, collected TIMESTAMP)"
    ));
    let mut rows: Vec<Value> = pipeline_tweets(0, 40)
        .into_iter()
        .map(|row| {
            json!({ "id_str": row["status_id"], "author": row["user_id"], "full_text": row["status_text"],
                    "collected": row["created_at"] })
        })
        .collect();
    rows.push(json!({ "id_str": "not-a-number", "author": "1", "full_text": "x" }));
    rows.push(json!({ "id_str": "42", "author": "someone", "full_text": "an author id that is not a number" }));
    other.insert_all(&source, "tweets_v2", &rows);
    let before = other.query(&format!("SELECT * FROM {source}.tweets_v2 ORDER BY id_str, full_text"));

    let table = format!("other-project.{source}.tweets_v2");
    let mapping = [
        "--tweets-table",
        &table,
        "--status-id-column",
        "id_str",
        "--user-id-column",
        "author",
        "--text-column",
        "full_text",
    ];
    let with = |extra: &[&str]| -> Vec<String> { mapping.iter().chain(extra).map(|arg| (*arg).to_owned()).collect() };
    let call = |args: Vec<String>, code: i32| -> Run {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        bigquery_run(dir, &store, &log, &refs, code)
    };
    let migrate = call(with(&["migrate"]), 0);
    assert!(migrate.stderr.contains("41 new distinct texts"), "{}", migrate.stderr);
    assert!(
        migrate.stderr.contains("1 tweets rows skipped") && migrate.stderr.contains("not-a-number"),
        "{}",
        migrate.stderr
    );
    let flags = model_flags();
    let mut args = with(&[]);
    args.extend(score_args(&[], &flags).into_iter().map(str::to_owned));
    let score = call(args, 0);
    assert!(score.stderr.contains("scored 41 texts"), "{}", score.stderr);
    call(with(&["export", "--output", "elsewhere.csv"]), 0);
    let export = std::fs::read_to_string(dir.join("elsewhere.csv")).expect("the export");
    // 40 texts, 6 of them retweeted, and the status whose author id is no number.
    assert_eq!(export.lines().count(), 1 + 40 + 6 + 1, "{export}");
    assert!(
        export.lines().any(|line| line.starts_with("42,,")),
        "a user id that is no number exports empty:\n{export}"
    );
    // The source is read-only: toxcli never writes to it.
    let import = call(with(&["import", "--input", &super::fixture_tweets()]), 2);
    assert!(import.stderr.contains("never writes to"), "{}", import.stderr);
    let wrong = call(vec!["--tweets-table".into(), table.clone(), "migrate".into()], 4);
    assert!(wrong.stderr.contains("--status-id-column"), "{}", wrong.stderr);
    assert_eq!(other.query(&format!("SELECT * FROM {source}.tweets_v2 ORDER BY id_str, full_text")), before);

    let (code, output) = typecheck(dir, &[(&other, &source), (&emulator, &store)], &log, str::to_owned);
    assert_eq!(code, 0, "{output}");
}

/// How many distinct texts the score table holds, counted by toxscore's
/// rows only (`scored_at` set).
/// The pipeline's data as it can really be. A tweet collected twice with two
/// texts: its status id is in both texts' `status_ids`, so `statuses_texts`
/// joins it to both. And a score row whose text id no `status_texts` row
/// has (the pipeline renumbered its texts whenever it rebuilt that table).
/// Every read counts the status once, with its smaller text; the orphan row
/// counts as no text's score, and no new text takes its id (it would pass
/// for scored, with the orphan's scores); one page query finds all there is.
#[test]
fn a_status_joined_to_two_texts_and_an_orphan_score_in_the_pipelines_data() {
    let emulator = Emulator::new();
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let log = dir.join("requests.jsonl");
    let dataset = dataset("pipeline_quirks");
    let n_seeded = 12;
    let edited = "tweet 4: an edited text";
    let twice = json!({ "status_id": "1000004", "status_text": edited, "user_id": "5004", "created_at": "2020-01-05 12:00:00 UTC" });
    let pipeline_scores = seed_pipeline_with(&emulator, &dataset, n_seeded, &[twice]);
    let joins = emulator.count(&format!("SELECT COUNT(*) FROM {dataset}.statuses_texts WHERE status_id = 1000004"));
    assert_eq!(joins, 2, "the pipeline joined the status to both texts");
    let max_id = emulator.count(&format!("SELECT MAX(status_text_id) FROM {dataset}.status_texts"));
    let orphan = max_id + 1;
    emulator.insert_all(
        &dataset,
        "toxicity_scores_original_ckpt",
        &[json!({
            "status_text_id": orphan, "toxicity": 0.5, "severe_toxicity": 0.5, "obscene": 0.5,
            "threat": 0.5, "insult": 0.5, "identity_hate": 0.5,
        })],
    );
    emulator.insert_all(&dataset, "tweets", &pipeline_tweets(n_seeded, 3));
    let score_table = "--score-table=toxicity_scores_original_ckpt";
    let migrate = bigquery_run(dir, &dataset, &log, &[score_table, "migrate"], 0);
    assert!(migrate.stderr.contains("3 new distinct texts"), "{}", migrate.stderr);
    let new_ids: Vec<u64> = emulator
        .query(&format!("SELECT status_text_id FROM {dataset}.status_texts WHERE status_text_id > {max_id}"))
        .into_iter()
        .map(|row| row[0].as_deref().expect("an id").parse().expect("a number"))
        .collect();
    assert_eq!(new_ids.len(), 3);
    assert!(new_ids.iter().all(|&id| id > orphan), "a new text took the orphan score's id: {new_ids:?}");

    // The orphan row scores no text.
    let texts = n_seeded as u64 + 1 + 3;
    let scored = pipeline_scores.len() as u64;
    let status = bigquery_run(dir, &dataset, &log, &[score_table, "status"], 0);
    let original = status.stdout.lines().find(|line| line.starts_with("original ")).expect("an original row");
    let cells: Vec<&str> = original.split_whitespace().collect();
    let expected = [texts, scored, texts - scored].map(|n| n.to_string());
    assert_eq!(cells[1..4].to_vec(), expected.iter().map(String::as_str).collect::<Vec<_>>(), "{original}");

    let pages_before = unscored_page_queries(&log);
    let mut args = vec![score_table];
    let flags = model_flags();
    args.extend(score_args(&[], &flags));
    let score = bigquery_run(dir, &dataset, &log, &args, 0);
    assert!(score.stderr.contains(&format!("scored {} texts", texts - scored)), "{}", score.stderr);
    assert_eq!(unscored_page_queries(&log) - pages_before, 1, "a short page is the last");
    let note = format!(
        "note: toxicity_scores_original_ckpt holds {scored} texts scored by the Python pipeline (no checkpoint recorded)"
    );
    assert!(score.stderr.contains(&note), "{}", score.stderr);
    assert!(score.stderr.contains("`toxcli verify --scored-by unrecorded` rescores a sample"), "{}", score.stderr);
    // This dataset's pipeline scores are made up: none is its text's.
    let mut args = vec![score_table, "verify", "--scored-by", "unrecorded"];
    args.extend(flags.iter().map(String::as_str));
    let verify = bigquery_run(dir, &dataset, &log, &args, 6);
    assert!(verify.stdout.contains("most of the Python pipeline's scores differ"), "{}", verify.stdout);
    assert!(verify.stdout.contains("leave out --score-table"), "{}", verify.stdout);
    assert!(verify.stderr.contains(&format!("error: {scored} of {scored} drawn scores differ")), "{}", verify.stderr);

    bigquery_run(dir, &dataset, &log, &[score_table, "export", "--output", "export.csv"], 0);
    let export = std::fs::read_to_string(dir.join("export.csv")).expect("the export");
    let rows: Vec<Vec<&str>> = export.lines().skip(1).map(|line| line.split(',').collect()).collect();
    let statuses: BTreeSet<&str> = rows.iter().map(|cells| cells[0]).collect();
    assert_eq!(rows.len(), statuses.len(), "a status id exported twice:\n{export}");
    let expected_statuses = emulator.count(&format!("SELECT COUNT(DISTINCT status_id) FROM {dataset}.tweets"));
    assert_eq!(rows.len() as u64, expected_statuses, "{export}");
    let kept =
        emulator.count(&format!("SELECT status_text_id FROM {dataset}.status_texts WHERE status_text = '{edited}'"));
    let twice: Vec<&Vec<&str>> = rows.iter().filter(|cells| cells[0] == "1000004").collect();
    assert_eq!(twice.len(), 1);
    assert_eq!(twice[0][2], kept.to_string(), "the smaller text is the status's");
    assert!(rows.iter().all(|cells| cells[2] != orphan.to_string()), "the orphan's scores were exported");
    bigquery_run(dir, &dataset, &log, &[score_table, "export", "--by", "user", "--output", "users.csv"], 0);
    let users = std::fs::read_to_string(dir.join("users.csv")).expect("users.csv");
    let counted: u64 =
        users.lines().skip(1).map(|line| line.split(',').nth(1).expect("n").parse::<u64>().expect("n")).sum();
    assert_eq!(counted, expected_statuses, "each status counts once in the aggregates");
    let (code, output) = typecheck(dir, &[(&emulator, &dataset)], &log, str::to_owned);
    assert_eq!(code, 0, "{output}");
}

/// The pipeline's scores as its Detoxify computed them: the fixture
/// model's (`toxcli predict`), rounded to 8 decimals, by text.
fn pipeline_scores_of(dir: &Path, texts: &[String]) -> BTreeMap<String, Vec<f64>> {
    let flags = model_flags();
    let mut args = vec!["predict".to_owned()];
    args.extend(flags);
    args.extend(texts.iter().cloned());
    let predicted = run(toxcli(dir).args(&args));
    assert_eq!(predicted.code, 0, "{}", predicted.stderr);
    predicted
        .stdout
        .lines()
        .map(|line| {
            let object: Value = serde_json::from_str(line).expect("a JSON line");
            let values = ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"]
                .map(|class| (object[class].as_f64().expect("a score") * 1e8).round() / 1e8);
            (object["text"].as_str().expect("the text").to_owned(), values.to_vec())
        })
        .collect()
}

/// `verify` on an adopted dataset: the pipeline's rows that hold their own
/// texts' scores pass; rows left on ids that now name other texts (the
/// pipeline's `status_texts` rebuilt after scoring: `ROW_NUMBER() OVER()`
/// renumbers) are found and named, exit 6; toxscore's own rows pass.
#[test]
fn verify_tells_the_pipelines_scores_of_their_texts_from_scores_of_others() {
    let emulator = Emulator::new();
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let log = dir.join("requests.jsonl");
    let dataset = dataset("pipeline_verify");
    let n_texts = 12;
    let texts: BTreeSet<String> = pipeline_tweets(0, n_texts)
        .iter()
        .map(|tweet| tweet["status_text"].as_str().expect("a text").to_owned())
        .collect();
    let texts: Vec<String> = texts.into_iter().collect();
    let real = pipeline_scores_of(dir, &texts);
    assert_eq!(real.len(), n_texts);
    let scores = |_: i64, text: &str| real[text].clone();
    let adopted = seed_pipeline_scored(&emulator, &dataset, n_texts, &[], &scores);
    // Two more rows, with the scores of other texts: text 1 holds text 4's,
    // text 2 text 5's.
    let text_of = |id: i64| -> String {
        let rows =
            emulator.query(&format!("SELECT status_text FROM {dataset}.status_texts WHERE status_text_id = {id}"));
        rows[0][0].clone().expect("a text")
    };
    let mut shifted: Vec<Value> = [(1, 4), (2, 5)]
        .iter()
        .map(|&(id, other)| {
            let values = &real[&text_of(other)];
            json!({
                "status_text_id": id, "toxicity": values[0], "severe_toxicity": values[1], "obscene": values[2],
                "threat": values[3], "insult": values[4], "identity_hate": values[5],
            })
        })
        .collect();
    // And one with a NULL class (the pipeline's columns are NULLABLE): never a match.
    let values = &real[&text_of(7)];
    shifted.push(json!({
        "status_text_id": 7, "toxicity": values[0], "severe_toxicity": values[1], "obscene": values[2],
        "threat": values[3], "identity_hate": values[5],
    }));
    emulator.insert_all(&dataset, "toxicity_scores_original_ckpt", &shifted);
    let score_table = "--score-table=toxicity_scores_original_ckpt";
    let migrate = bigquery_run(dir, &dataset, &log, &[score_table, "migrate"], 0);
    assert!(migrate.stderr.contains("`toxcli verify --scored-by unrecorded` rescores a sample"), "{}", migrate.stderr);

    let verify = |extra: &[&str], code: i32| {
        let mut args = vec![score_table, "verify"];
        let flags = model_flags();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.extend(flags);
        args.extend_from_slice(extra);
        // `args` borrows `flags` only while the command runs.
        bigquery_run(dir, &dataset, &log, &args, code)
    };
    let found = verify(&["--scored-by", "unrecorded"], 6);
    let unrecorded = adopted.len() + shifted.len();
    assert!(
        found.stdout.contains(&format!("unrecorded (Python pipeline)  {unrecorded:>7}")),
        "the pipeline's rows, each once:\n{}",
        found.stdout
    );
    for id in [1, 2, 7] {
        assert!(found.stdout.contains(&format!("  text {id} (unrecorded (Python pipeline)): ")), "{}", found.stdout);
    }
    assert!(found.stdout.contains("some of the Python pipeline's scores differ"), "{}", found.stdout);
    assert!(found.stdout.contains("(unrecorded (Python pipeline)): insult stored NULL, rescored "), "{}", found.stdout);
    assert!(
        found.stderr.contains(&format!("error: 3 of {unrecorded} drawn scores differ from checkpoint 57246094f595")),
        "{}",
        found.stderr
    );
    // Within the pipeline's 8 decimals, its rows of their own texts pass.
    let own: Vec<String> = adopted.keys().map(i64::to_string).collect();
    for id in &own {
        assert!(!found.stdout.contains(&format!("  text {id} (")), "text {id} was named:\n{}", found.stdout);
    }

    let mut args = vec![score_table];
    let flags = model_flags();
    args.extend(score_args(&[], &flags));
    bigquery_run(dir, &dataset, &log, &args, 0);
    let ours = verify(&["--scored-by", "57246094f595"], 0);
    let scored_by_us = n_texts - unrecorded;
    assert!(
        ours.stdout.contains(&format!("all {scored_by_us} drawn scores match checkpoint 57246094f595 within 1e-4")),
        "{}",
        ours.stdout
    );
    let everything = verify(&["--sample", "100"], 6);
    assert!(
        everything.stdout.contains(&format!("57246094f595 (this checkpoint)  {scored_by_us:>7}")),
        "{}",
        everything.stdout
    );
    assert!(everything.stderr.contains(&format!("error: 3 of {n_texts} drawn scores")), "{}", everything.stderr);

    // Nothing was written by verify, and its queries type-check.
    let (code, output) = typecheck(dir, &[(&emulator, &dataset)], &log, str::to_owned);
    assert_eq!(code, 0, "{output}");
}

/// How many unscored-page queries `log` holds.
fn unscored_page_queries(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("\"query\"") && line.contains("s.status_text_id IS NULL"))
        .count()
}

fn our_scores(emulator: &Emulator, dataset: &str) -> u64 {
    emulator.count(&format!(
        "SELECT COUNT(DISTINCT status_text_id) FROM {dataset}.toxicity_scores_original_ckpt WHERE scored_at IS NOT NULL"
    ))
}

fn spawn_bigquery_score(dir: &Path, dataset: &str, log: &Path, extra: &[&str]) -> Child {
    let flags = model_flags();
    let mut args = vec!["--score-table=toxicity_scores_original_ckpt"];
    args.extend(score_args(extra, &flags));
    args.extend(["--page-size", "400", "--threads", "1"]);
    bigquery(dir, dataset, log, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn toxcli")
}

/// Waits until toxscore's rows cover more than `threshold` texts (or the
/// scorer exited); returns whether it is still running.
fn wait_for_scores(child: &mut Child, emulator: &Emulator, dataset: &str, threshold: u64) -> bool {
    let give_up = Instant::now() + Duration::from_secs(600);
    loop {
        if child.try_wait().expect("poll the child").is_some() {
            return false;
        }
        if our_scores(emulator, dataset) > threshold {
            return true;
        }
        assert!(Instant::now() < give_up, "the scorer made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The export of an adopted dataset, by status id.
fn export_of(dir: &Path, dataset: &str, log: &Path, name: &str) -> BTreeMap<i64, (i64, Vec<f64>)> {
    bigquery_run(dir, dataset, log, &["--score-table=toxicity_scores_original_ckpt", "export", "--output", name], 0);
    let text = std::fs::read_to_string(dir.join(name)).expect("the export");
    text.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let scores = cells[3..].iter().map(|cell| cell.parse().expect("a score")).collect();
            (cells[0].parse().expect("status id"), (cells[2].parse().expect("text id"), scores))
        })
        .collect()
}

fn assert_same_export(found: &BTreeMap<i64, (i64, Vec<f64>)>, expected: &BTreeMap<i64, (i64, Vec<f64>)>) {
    assert_eq!(found.len(), expected.len(), "exports of different lengths");
    for ((status, (text, scores)), (expected_status, (expected_text, expected_scores))) in found.iter().zip(expected) {
        assert_eq!((status, text), (expected_status, expected_text));
        for (score, expected) in scores.iter().zip(expected_scores) {
            assert!((score - expected).abs() <= super::SCORE_TOLERANCE, "status {status}: {score} vs {expected}");
        }
    }
}

/// Seeds an adopted dataset for the fault tests, migrated.
fn adopted(emulator: &Emulator, dir: &Path, purpose: &str, log: &Path, n_texts: usize) -> String {
    let dataset = dataset(purpose);
    seed_pipeline(emulator, &dataset, n_texts);
    bigquery_run(dir, &dataset, log, &["--score-table=toxicity_scores_original_ckpt", "migrate"], 0);
    dataset
}

#[test]
fn kill_9_at_random_points_on_bigquery_then_resume_scores_every_text_once() {
    let emulator = Emulator::new();
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let log = PathBuf::from("/dev/null");
    // Enough texts for several commits of up to 1,024 scores per run.
    let n_texts = 9_000;
    let reference = adopted(&emulator, dir, "killref", &log, n_texts);
    let mut run = spawn_bigquery_score(dir, &reference, &log, &[]);
    assert!(run.wait().expect("the reference run").success());
    let expected = export_of(dir, &reference, &log, "reference.csv");

    let dataset = adopted(&emulator, dir, "killed", &log, n_texts);
    let to_score = (n_texts - n_texts.div_ceil(3)) as u64;
    let mut random: u64 = 0x5851_F42D_4C95_7F2D;
    let mut kills = 0;
    for _ in 0..4 {
        random = random.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let threshold = our_scores(&emulator, &dataset) + (random >> 33) % 1500;
        let mut child = spawn_bigquery_score(dir, &dataset, &log, &[]);
        if wait_for_scores(&mut child, &emulator, &dataset, threshold) {
            child.kill().expect("SIGKILL the scorer");
            kills += 1;
        }
        child.wait().expect("reap the scorer");
    }
    assert!(kills >= 2, "only {kills} of the kills landed mid-run");
    let mut last = spawn_bigquery_score(dir, &dataset, &log, &[]);
    assert!(last.wait().expect("the final run").success());
    assert_eq!(our_scores(&emulator, &dataset), to_score);
    assert_same_export(&export_of(dir, &dataset, &log, "resumed.csv"), &expected);
    let status = bigquery_run(dir, &dataset, &log, &["--score-table=toxicity_scores_original_ckpt", "status"], 0);
    let original = status.stdout.lines().find(|line| line.starts_with("original ")).expect("an original row");
    assert!(original.contains(" 100.0%"), "{original}");
}

#[test]
fn four_shards_at_once_one_killed_and_restarted_cover_every_text_once() {
    let emulator = Emulator::new();
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let log = PathBuf::from("/dev/null");
    let n_texts = 1_200;
    let dataset = adopted(&emulator, dir, "shards", &log, n_texts);
    let to_score = (n_texts - n_texts.div_ceil(3)) as u64;
    let shards = ["0/4", "1/4", "2/4", "3/4"];
    let mut children: Vec<Child> =
        shards.iter().map(|shard| spawn_bigquery_score(dir, &dataset, &log, &["--shard", shard])).collect();
    // Shard 2 is killed once the shards together have written something.
    let killed = wait_for_scores(&mut children[2], &emulator, &dataset, 20);
    if killed {
        children[2].kill().expect("SIGKILL shard 2");
    }
    children[2].wait().expect("reap shard 2");
    children[2] = spawn_bigquery_score(dir, &dataset, &log, &["--shard", "2/4"]);
    for (shard, child) in shards.iter().zip(children) {
        let output = child.wait_with_output().expect("wait for a shard");
        assert!(output.status.success(), "shard {shard}: {}", String::from_utf8_lossy(&output.stderr));
    }
    assert_eq!(our_scores(&emulator, &dataset), to_score);
    let export = export_of(dir, &dataset, &log, "shards.csv");
    let texts: BTreeSet<i64> = export.values().map(|(text, _)| *text).collect();
    assert_eq!(texts.len(), n_texts, "every text exported once");
    let rows = emulator.count(&format!(
        "SELECT COUNT(*) FROM (SELECT DISTINCT status_text_id, checkpoint_sha256 FROM {dataset}.toxicity_scores_original_ckpt WHERE scored_at IS NOT NULL)"
    ));
    assert_eq!(rows, to_score, "a text was scored by two shards");
}
