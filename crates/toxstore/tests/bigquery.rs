//! The conformance suite against the real BigQuery emulator (PyPI
//! `bqemulator`), each check in a fresh dataset of its own.
//!
//! `cargo xtask test` installs and starts the emulator and sets
//! `TOXSCORE_BIGQUERY_EMULATOR` to its URL. Without that variable these tests
//! fail (they are never skipped): run them through `cargo xtask test`.

use std::sync::atomic::{AtomicU32, Ordering};

use toxstore::bigquery::{BigQuery, BigQueryConfig, RetryPolicy};

/// Set by `cargo xtask test`: the emulator's root URL.
const EMULATOR_URL_VAR: &str = "TOXSCORE_BIGQUERY_EMULATOR";

/// The project every dataset lives in (the emulator accepts any).
const PROJECT: &str = "test-project";

fn emulator_url() -> String {
    match std::env::var(EMULATOR_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{EMULATOR_URL_VAR} is not set: the BigQuery tests need the emulator. \
             Run the tests with `cargo xtask test` (it installs and starts the emulator), \
             or set {EMULATOR_URL_VAR} to a running emulator's URL such as http://127.0.0.1:9050"
        ),
    }
}

/// A dataset name unique to this process and check.
fn fresh_dataset(purpose: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{purpose}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

async fn fresh_store() -> (BigQuery, ()) {
    // Short waits: the emulator is local, and a test should not sit in a
    // backoff for long.
    let retry = RetryPolicy {
        max_attempts: 4,
        base_delay: std::time::Duration::from_millis(50),
        max_delay: std::time::Duration::from_millis(500),
    };
    let config = BigQueryConfig::emulator(emulator_url(), PROJECT, fresh_dataset("conformance")).with_retry(retry);
    let store = BigQuery::connect(config).await.expect("connect to the emulator");
    (store, ())
}

toxstore::conformance_tests!(fresh_store());

/// The export streams page by page (jobs.query, then getQueryResults with
/// page tokens) and keeps the status id order across pages; duplicate score
/// rows left by repeated streaming inserts are exported once.
#[tokio::test]
async fn export_streams_pages_in_order_and_counts_duplicates_once() {
    use futures::TryStreamExt;
    use toxstore::{ScoreBatch, ScoreRow, Store, Tweet};

    let config = BigQueryConfig::emulator(emulator_url(), PROJECT, fresh_dataset("paged")).with_export_page_rows(4);
    let store = BigQuery::connect(config).await.expect("connect to the emulator");
    store.migrate().await.expect("migrate");
    let tweets: Vec<Tweet> = (0..23)
        .map(|index| Tweet {
            status_id: 100 - index,
            user_id: index,
            status_text: format!("text {}", index % 9),
            created_at: None,
        })
        .collect();
    store.import_tweets(&tweets).await.expect("import");
    store.refresh_texts().await.expect("refresh");
    let table = toxstore::ModelTable::by_model("unbiased").expect("model");
    let rows: Vec<ScoreRow> = (1..=9)
        .map(|id| ScoreRow { status_text_id: id, scores: vec![id as f64 / 16.0; table.columns.len()] })
        .collect();
    let batch = ScoreBatch { table, checkpoint_sha256: "abc", rows: &rows };
    // The same batch twice: the emulator keeps both copies (it ignores
    // insert ids), as BigQuery may.
    store.write_scores(batch.clone()).await.expect("write");
    store.write_scores(batch).await.expect("write again");

    let exported: Vec<toxstore::ExportRow> = store.export(table).try_collect().await.expect("export");
    let status_ids: Vec<i64> = exported.iter().map(|row| row.status_id).collect();
    assert_eq!(status_ids, (78..=100).collect::<Vec<_>>(), "every status id once, in order, across 6 pages");
    for row in &exported {
        assert_eq!(row.user_id, Some(100 - row.status_id));
        assert_eq!(row.scores, vec![row.status_text_id as f64 / 16.0; table.columns.len()]);
    }
    let progress = store.progress().await.expect("progress");
    assert_eq!(progress.models[1].scored, 9);
    assert_eq!(progress.models[1].remaining, 0);
}
