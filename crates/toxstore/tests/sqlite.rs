//! The conformance suite against the SQLite backend, each check on a fresh
//! file in its own temporary folder (removed when the check ends).

async fn fresh_store() -> (toxstore::Sqlite, tempfile::TempDir) {
    let folder = tempfile::tempdir().expect("temporary folder");
    let store = toxstore::Sqlite::open(folder.path().join("toxscore.db"))
        .expect("open a fresh SQLite file");
    (store, folder)
}

toxstore::conformance_tests!(fresh_store());
