//! The conformance suite against the SQLite backend, each check on a fresh
//! file in its own temporary folder (removed when the check ends).

async fn fresh_store() -> (toxstore::Sqlite, tempfile::TempDir) {
    let folder = tempfile::tempdir().expect("temporary folder");
    let store = toxstore::Sqlite::open(folder.path().join("toxscore.db")).expect("open a fresh SQLite file");
    (store, folder)
}

toxstore::conformance_tests!(fresh_store());

/// Set in the child process of `kill_9_leaves_the_file_consistent`: the file
/// it writes to.
const CHILD_DATABASE: &str = "TOXSTORE_TEST_CHILD_DATABASE";

/// Tweets per import batch in the crash test.
const BATCH: i64 = 500;

/// The child process of `kill_9_leaves_the_file_consistent`: imports,
/// de-duplicates and scores batches until it is killed. Without the
/// environment variable (an ordinary test run) it does nothing.
#[test]
fn crash_child_writes_until_killed() {
    use toxstore::{ScoreBatch, ScoreRow, Store, Tweet, UnscoredQuery};
    let Ok(path) = std::env::var(CHILD_DATABASE) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = toxstore::Sqlite::open(&path).expect("open");
        let connection = rusqlite::Connection::open(&path).expect("open");
        let next: i64 = connection
            .query_row("SELECT COALESCE(MAX(status_id), -1) + 1 FROM tweets", [], |row| row.get(0))
            .expect("max");
        let table = &toxdedup::MODEL_TABLES[0];
        for round in 0.. {
            let start = next + round * BATCH;
            let tweets: Vec<Tweet> = (start..start + BATCH)
                .map(|status_id| Tweet {
                    status_id,
                    user_id: status_id % 13,
                    status_text: format!("text {}", status_id % 997),
                    created_at: None,
                })
                .collect();
            store.import_tweets(&tweets).await.expect("import");
            store.refresh_texts().await.expect("refresh");
            let page = store
                .unscored_texts(table, UnscoredQuery { after: None, limit: 100, shard: None })
                .await
                .expect("unscored");
            let rows: Vec<ScoreRow> = page
                .iter()
                .map(|text| ScoreRow { status_text_id: text.status_text_id, scores: vec![0.25; 6] })
                .collect();
            store.write_scores(ScoreBatch { table, checkpoint_sha256: "ab", rows: &rows }).await.expect("scores");
        }
    });
}

/// A writer killed with SIGKILL at arbitrary points leaves a file that passes
/// SQLite's integrity check, holds whole batches only, keeps the
/// de-duplication invariants, and carries on.
#[test]
fn kill_9_leaves_the_file_consistent() {
    use toxstore::Store;
    if std::env::var(CHILD_DATABASE).is_ok() {
        return;
    }
    let folder = tempfile::tempdir().expect("temporary folder");
    let path = folder.path().join("toxscore.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let store = toxstore::Sqlite::open(&path).expect("open");
    runtime.block_on(store.migrate()).expect("migrate");

    let count = |sql: &str| -> i64 {
        let connection = rusqlite::Connection::open(&path).expect("open");
        connection.query_row(sql, [], |row| row.get(0)).expect(sql)
    };
    for kill in 1..=3 {
        let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "crash_child_writes_until_killed", "--test-threads", "1"])
            .env(CHILD_DATABASE, &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the writer");
        // Let it write a few batches (each kill at a later point), then kill
        // it wherever it is.
        let target = kill * 3 * BATCH;
        let mut waited = 0;
        while count("SELECT COUNT(*) FROM statuses_texts") < target {
            if let Some(status) = child.try_wait().expect("poll the writer") {
                panic!("the writer exited by itself ({status}) before it was killed");
            }
            waited += 1;
            assert!(waited < 12_000, "the writer wrote fewer than {target} statuses in 2 minutes");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.kill().expect("SIGKILL the writer");
        child.wait().expect("reap the writer");

        let connection = rusqlite::Connection::open(&path).expect("reopen after the kill");
        let integrity: String = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).expect("check");
        assert_eq!(integrity, "ok", "after kill {kill}");
        let tweets = count("SELECT COUNT(*) FROM tweets");
        assert_eq!(tweets % BATCH, 0, "after kill {kill}: a partial batch of tweets survived ({tweets} rows)");
        assert_eq!(
            count("SELECT COALESCE(SUM(status_count), 0) FROM status_texts"),
            count("SELECT COUNT(*) FROM statuses_texts"),
            "after kill {kill}: status counts do not add up"
        );
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM toxicity_scores_original WHERE status_text_id NOT IN (SELECT status_text_id FROM status_texts)"
            ),
            0
        );
        assert!(count("SELECT COUNT(*) FROM statuses_texts") <= count("SELECT COUNT(DISTINCT status_id) FROM tweets"));
    }
    // The store carries on: a refresh joins whatever the last kill left unjoined.
    runtime.block_on(store.refresh_texts()).expect("refresh after the kills");
    let progress = runtime.block_on(store.progress()).expect("progress");
    assert_eq!(progress.statuses as i64, count("SELECT COUNT(DISTINCT status_id) FROM tweets"));
    assert_eq!(progress.texts, 997);
}
