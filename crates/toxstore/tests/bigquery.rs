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
