//! The conformance suite: the behaviour every [`Store`] must have, written
//! once (object_store's `integration.rs` does the same).
//!
//! Each check is an async function that takes a fresh, empty, unmigrated
//! store and panics, with a message naming what differed, when the store
//! misbehaves. [`conformance_tests!`](crate::conformance_tests) turns every
//! check into one `#[tokio::test]`, so a failure names its check:
//!
//! ```text
//! // tests/memory.rs
//! toxstore::conformance_tests!(async { (toxstore::InMemory::new(), ()) });
//! ```
//!
//! The expression gives a future of `(store, guard)`; the guard (a temporary
//! folder, an emulator dataset) lives as long as the test.
//!
//! The module is compiled only with the `conformance` feature, which the
//! backends' own test binaries turn on: release builds of the binaries
//! carry none of its panicking checks.
//!
//! Scores used here are multiples of 1/64, exact in every float format, so
//! that they can be compared with `==` after a round trip through JSON.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use toxdedup::{Conflict, MODEL_TABLES, ModelTable};

use crate::{
    AggregateRow, CheckpointUse, Error, ExportRow, ExportRows, Grouping, SampleQuery, ScoreBatch, ScoreRow, ScoredBy,
    Shard, Store, StoredScore, Summary, SummaryQuery, TextCount, TextId, TextRow, TopText, Tweet, UnscoredQuery,
};

/// Generates one `#[tokio::test]` per conformance check.
///
/// `$make` is an expression giving a future of `(store, guard)`, evaluated
/// once per test; the caller's crate needs `tokio` with the `macros` and
/// `rt` features.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@checks $make;
            migrate_twice_is_a_no_op,
            operations_before_migrate_are_not_found,
            import_is_idempotent,
            invalid_input_is_rejected_and_writes_nothing,
            refresh_groups_texts_by_bytes,
            incremental_import_keeps_ids,
            conflicting_texts_are_reported_and_resolved,
            unscored_pages_cover_every_shard_once,
            score_writes_are_idempotent,
            progress_counts_every_model,
            export_joins_scores_to_every_status_id,
            an_empty_store_reads_empty,
            a_dry_run_migration_changes_nothing,
            aggregates_by_user_and_day_match_hand_computed_numbers,
            export_to_table_creates_replaces_and_never_takes_an_own_table,
            summary_matches_hand_computed_numbers,
            a_seeded_sample_draws_the_same_stored_scores_everywhere,
        );
    };
    (@checks $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (store, _guard) = $make.await;
                $crate::conformance::$check(&store).await;
            }
        )*
    };
}

/// The `original` model's table.
fn original() -> &'static ModelTable {
    &MODEL_TABLES[0]
}

/// The `unbiased` model's table.
fn unbiased() -> &'static ModelTable {
    &MODEL_TABLES[1]
}

fn tweet(status_id: i64, user_id: i64, text: &str) -> Tweet {
    Tweet {
        status_id,
        user_id,
        status_text: text.to_owned(),
        // Within BigQuery's TIMESTAMP range (up to 9999-12-31) even for
        // the largest status ids used here.
        created_at: Some(1_600_000_000_000_000 + status_id % 1_000_000_000_000),
    }
}

/// Deterministic scores for a text, multiples of 1/64 in `[0, 1)`.
fn scores_for(table: &ModelTable, id: TextId, salt: i64) -> Vec<f64> {
    (0..table.columns.len() as i64).map(|column| ((id * 7 + column * 3 + salt).rem_euclid(64)) as f64 / 64.0).collect()
}

async fn migrate(store: &dyn Store) {
    store.migrate().await.expect("migrate a fresh store");
}

async fn import(store: &dyn Store, tweets: &[Tweet]) {
    store.import_tweets(tweets).await.expect("import tweets");
}

/// Every row of `status_texts`, read in pages of 3 to exercise `after`.
async fn all_texts(store: &dyn Store) -> Vec<TextCount> {
    let mut texts: Vec<TextCount> = Vec::new();
    loop {
        let after = texts.last().map(|text| text.status_text_id);
        let page = store.text_page(after, 3).await.expect("text page");
        assert!(page.len() <= 3, "text_page returned {} rows for limit 3", page.len());
        if page.is_empty() {
            return texts;
        }
        texts.extend(page);
    }
}

/// `text -> id` of every row of `status_texts`.
async fn ids_by_text(store: &dyn Store) -> BTreeMap<String, TextId> {
    all_texts(store).await.into_iter().map(|text| (text.status_text, text.status_text_id)).collect()
}

async fn unscored(store: &dyn Store, table: &ModelTable, query: UnscoredQuery) -> Vec<TextRow> {
    store.unscored_texts(table, query).await.expect("unscored texts")
}

async fn write(store: &dyn Store, table: &ModelTable, rows: &[ScoreRow]) {
    store.write_scores(ScoreBatch { table, checkpoint_sha256: CHECKPOINT, rows }).await.expect("write scores");
}

async fn export(store: &dyn Store, table: &ModelTable) -> Vec<ExportRow> {
    store.export(table).try_collect().await.expect("export")
}

const CHECKPOINT: &str = "0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000";

/// `migrate` applies every migration once; the second call applies nothing
/// and lists the same files as already applied.
pub async fn migrate_twice_is_a_no_op(store: &dyn Store) {
    let first = store.migrate().await.expect("first migrate");
    assert!(!first.applied.is_empty(), "the first migrate applied nothing");
    assert!(first.already_applied.is_empty(), "a fresh store had {:?} applied", first.already_applied);
    let second = store.migrate().await.expect("second migrate");
    assert!(second.applied.is_empty(), "the second migrate applied {:?}", second.applied);
    assert_eq!(second.already_applied, first.applied);
    // The tables work after the second call too.
    import(store, &[tweet(1, 1, "a")]).await;
    assert_eq!(store.refresh_texts().await.expect("refresh").new_texts, 1);
}

/// Before `migrate`, the tables do not exist: `NotFound`, not a panic or a
/// silent success.
pub async fn operations_before_migrate_are_not_found(store: &dyn Store) {
    let error = store.import_tweets(&[tweet(1, 1, "a")]).await.expect_err("import before migrate");
    assert!(matches!(error, Error::NotFound { .. }), "import before migrate: {error:?}");
    let error = store.progress().await.expect_err("progress before migrate");
    assert!(matches!(error, Error::NotFound { .. }), "progress before migrate: {error:?}");
}

/// Importing the same `(status_id, status_text)` twice stores it once.
pub async fn import_is_idempotent(store: &dyn Store) {
    migrate(store).await;
    let tweets = [tweet(1, 10, "a"), tweet(2, 20, "b"), tweet(3, 30, "a")];
    let first = store.import_tweets(&tweets).await.expect("import");
    assert_eq!((first.inserted, first.already_present), (3, 0));
    let second = store.import_tweets(&tweets).await.expect("import again");
    assert_eq!((second.inserted, second.already_present), (0, 3), "a repeated import wrote rows again");
    // A batch repeating a row within itself.
    let third = store.import_tweets(&[tweet(4, 40, "c"), tweet(4, 40, "c")]).await.expect("import a repeat");
    assert_eq!((third.inserted, third.already_present), (1, 1));
    store.refresh_texts().await.expect("refresh");
    let progress = store.progress().await.expect("progress");
    assert_eq!((progress.statuses, progress.texts), (4, 3));
    let texts = all_texts(store).await;
    let counts: Vec<(&str, u64)> = texts.iter().map(|t| (t.status_text.as_str(), t.status_count)).collect();
    assert_eq!(counts, [("a", 2), ("b", 1), ("c", 1)], "status counts after a repeated import");
}

/// Invalid rows are refused with `InvalidInput`, and nothing of the call is
/// written.
pub async fn invalid_input_is_rejected_and_writes_nothing(store: &dyn Store) {
    migrate(store).await;
    let error =
        store.import_tweets(&[tweet(1, 1, "fine"), tweet(-5, 1, "negative")]).await.expect_err("negative status id");
    assert!(matches!(error, Error::InvalidInput { .. }), "negative status id: {error:?}");
    assert!(error.to_string().contains("-5"), "the error does not name the row: {error}");
    store.refresh_texts().await.expect("refresh");
    assert_eq!(store.progress().await.expect("progress").statuses, 0, "a refused import wrote rows");

    import(store, &[tweet(1, 1, "fine")]).await;
    store.refresh_texts().await.expect("refresh");
    let table = original();
    let bad_rows = [
        vec![ScoreRow { status_text_id: 1, scores: vec![0.5; table.columns.len() - 1] }],
        vec![ScoreRow { status_text_id: 1, scores: vec![f64::NAN; table.columns.len()] }],
    ];
    for rows in &bad_rows {
        let error = store
            .write_scores(ScoreBatch { table, checkpoint_sha256: CHECKPOINT, rows })
            .await
            .expect_err("invalid score row");
        assert!(matches!(error, Error::InvalidInput { .. }), "{rows:?}: {error:?}");
    }
    let rows = [ScoreRow { status_text_id: 1, scores: scores_for(table, 1, 0) }];
    let error =
        store.write_scores(ScoreBatch { table, checkpoint_sha256: "", rows: &rows }).await.expect_err("empty hash");
    assert!(matches!(error, Error::InvalidInput { .. }), "empty checkpoint hash: {error:?}");
    let unknown = ModelTable { table: "x; DROP TABLE tweets".into(), ..original().clone() };
    let error = store
        .unscored_texts(&unknown, UnscoredQuery { after: None, limit: 1, shard: None })
        .await
        .expect_err("unknown model table");
    assert!(matches!(error, Error::InvalidInput { .. }), "unknown model table: {error:?}");
    assert_eq!(store.progress().await.expect("progress").models[0].scored, 0, "a refused batch wrote scores");
}

/// Texts are equal when their bytes are: NFC and NFD spellings, case and
/// whitespace stay distinct, the empty text is a text. Ids start at 1 and
/// follow the smallest status id carrying each text.
pub async fn refresh_groups_texts_by_bytes(store: &dyn Store) {
    migrate(store).await;
    let tweets = [
        tweet(50, 1, "caf\u{e9}"),
        tweet(10, 2, "cafe\u{301}"),
        tweet(20, 3, "caf\u{e9}"),
        tweet(30, 4, "hello "),
        tweet(40, 5, "hello"),
        tweet(45, 6, "Hello"),
        tweet(5, 7, ""),
        tweet(60, 8, ""),
        tweet(70, 9, "hello"),
        tweet(80, 10, "\u{1f600} multi\nline\ttext"),
    ];
    import(store, &tweets).await;
    let report = store.refresh_texts().await.expect("refresh");
    assert_eq!((report.new_texts, report.new_statuses, report.conflicts), (7, 10, 0), "{report:?}");
    let texts = all_texts(store).await;
    let expected = [
        (1, "", 2),
        (2, "cafe\u{301}", 1),
        (3, "caf\u{e9}", 2),
        (4, "hello ", 1),
        (5, "hello", 2),
        (6, "Hello", 1),
        (7, "\u{1f600} multi\nline\ttext", 1),
    ];
    let actual: Vec<(TextId, &str, u64)> =
        texts.iter().map(|t| (t.status_text_id, t.status_text.as_str(), t.status_count)).collect();
    assert_eq!(actual, expected);
    let progress = store.progress().await.expect("progress");
    assert_eq!((progress.statuses, progress.texts), (10, 7));
    // A second refresh with nothing new changes nothing.
    let again = store.refresh_texts().await.expect("refresh again");
    assert_eq!((again.new_texts, again.new_statuses, again.conflicts), (0, 0, 0), "{again:?}");
    assert_eq!(all_texts(store).await, texts);
}

/// New tweets never renumber existing texts: new texts continue after the
/// maximum id, existing texts gain the new status ids, and scores stay
/// joined to the right text.
pub async fn incremental_import_keeps_ids(store: &dyn Store) {
    migrate(store).await;
    import(store, &[tweet(100, 1, "alpha"), tweet(200, 2, "beta"), tweet(300, 3, "alpha")]).await;
    store.refresh_texts().await.expect("first refresh");
    let first = ids_by_text(store).await;
    assert_eq!(first, BTreeMap::from([("alpha".to_owned(), 1), ("beta".to_owned(), 2)]));
    let table = original();
    write(store, table, &[ScoreRow { status_text_id: 2, scores: scores_for(table, 2, 0) }]).await;

    // Smaller status ids than before, a known text on a new status id, and
    // new texts: none of it may move "alpha" or "beta".
    import(store, &[tweet(1, 4, "gamma"), tweet(2, 5, "beta"), tweet(400, 6, "delta"), tweet(3, 7, "alpha")]).await;
    let report = store.refresh_texts().await.expect("second refresh");
    assert_eq!((report.new_texts, report.new_statuses, report.conflicts), (2, 4, 0), "{report:?}");
    let second = ids_by_text(store).await;
    for (text, id) in &first {
        assert_eq!(second.get(text), Some(id), "the id of {text:?} changed");
    }
    assert_eq!(second.get("gamma"), Some(&3), "new texts continue after the maximum, by smallest status id");
    assert_eq!(second.get("delta"), Some(&4));
    let counts: BTreeMap<String, u64> =
        all_texts(store).await.into_iter().map(|t| (t.status_text, t.status_count)).collect();
    assert_eq!(counts["alpha"], 3);
    assert_eq!(counts["beta"], 2);
    // The score written before still belongs to "beta", now on two statuses.
    let exported = export(store, table).await;
    let exported: Vec<(i64, TextId)> = exported.iter().map(|row| (row.status_id, row.status_text_id)).collect();
    assert_eq!(exported, [(2, 2), (200, 2)]);
}

/// A status id seen with two texts gets the smallest text in byte order when
/// it is first joined, and keeps it; every conflict is counted and
/// exemplified, and no status id has two join rows.
pub async fn conflicting_texts_are_reported_and_resolved(store: &dyn Store) {
    migrate(store).await;
    import(store, &[tweet(7, 70, "zebra"), tweet(7, 71, "apple"), tweet(8, 80, "zebra")]).await;
    let report = store.refresh_texts().await.expect("refresh");
    assert_eq!((report.new_texts, report.new_statuses, report.conflicts), (2, 2, 1), "{report:?}");
    assert_eq!(report.conflict_examples, [Conflict { status_id: 7, kept: "apple".into(), rejected: "zebra".into() }]);
    // A smaller text arriving later does not move status 7.
    import(store, &[tweet(7, 72, "aardvark"), tweet(9, 90, "zebra")]).await;
    let report = store.refresh_texts().await.expect("refresh");
    assert_eq!((report.new_texts, report.new_statuses, report.conflicts), (0, 1, 2), "{report:?}");
    assert_eq!(
        report.conflict_examples,
        [
            Conflict { status_id: 7, kept: "apple".into(), rejected: "aardvark".into() },
            Conflict { status_id: 7, kept: "apple".into(), rejected: "zebra".into() },
        ]
    );
    let progress = store.progress().await.expect("progress");
    assert_eq!((progress.statuses, progress.texts), (3, 2), "one join row per status id");
    let texts = all_texts(store).await;
    let counts: Vec<(&str, u64)> = texts.iter().map(|t| (t.status_text.as_str(), t.status_count)).collect();
    assert_eq!(counts, [("apple", 1), ("zebra", 2)]);
    // The export carries the user of the joined text.
    let table = original();
    let rows: Vec<ScoreRow> = texts
        .iter()
        .map(|t| ScoreRow { status_text_id: t.status_text_id, scores: scores_for(table, t.status_text_id, 0) })
        .collect();
    write(store, table, &rows).await;
    let exported: Vec<(i64, Option<i64>)> =
        export(store, table).await.iter().map(|row| (row.status_id, row.user_id)).collect();
    assert_eq!(exported, [(7, Some(71)), (8, Some(80)), (9, Some(90))]);
}

/// Pages of unscored texts: increasing ids, at most `limit`, strictly after
/// `after`; `N` shards are disjoint and together cover every text.
pub async fn unscored_pages_cover_every_shard_once(store: &dyn Store) {
    migrate(store).await;
    let tweets: Vec<Tweet> = (0..23).map(|index| tweet(index, index, &format!("text {index:02}"))).collect();
    import(store, &tweets).await;
    store.refresh_texts().await.expect("refresh");
    let table = original();
    let all_ids: BTreeSet<TextId> = (1..=23).collect();

    let mut paged: Vec<TextRow> = Vec::new();
    loop {
        let after = paged.last().map(|row| row.status_text_id);
        let page = unscored(store, table, UnscoredQuery { after, limit: 5, shard: None }).await;
        assert!(page.len() <= 5, "a page of {} for limit 5", page.len());
        if page.is_empty() {
            break;
        }
        paged.extend(page);
    }
    let ids: Vec<TextId> = paged.iter().map(|row| row.status_text_id).collect();
    assert_eq!(ids, all_ids.iter().copied().collect::<Vec<_>>(), "paging missed or repeated texts");
    assert!(paged.iter().all(|row| row.status_text == format!("text {:02}", row.status_text_id - 1)));

    for count in [1u32, 2, 3, 7] {
        let mut union = BTreeSet::new();
        for index in 0..count {
            let shard = Shard::new(index, count).expect("shard");
            let page = unscored(store, table, UnscoredQuery { after: None, limit: 1000, shard: Some(shard) }).await;
            for row in page {
                assert!(
                    shard.contains(row.status_text_id),
                    "text {} outside shard {index}/{count}",
                    row.status_text_id
                );
                assert!(union.insert(row.status_text_id), "text {} in two shards of {count}", row.status_text_id);
            }
        }
        assert_eq!(union, all_ids, "the shards of {count} do not cover every text");
    }

    // Scored texts leave the pages; other models are unaffected.
    let rows: Vec<ScoreRow> =
        [2, 3, 10].into_iter().map(|id| ScoreRow { status_text_id: id, scores: scores_for(table, id, 0) }).collect();
    write(store, table, &rows).await;
    let page = unscored(store, table, UnscoredQuery { after: Some(1), limit: 3, shard: None }).await;
    assert_eq!(page.iter().map(|row| row.status_text_id).collect::<Vec<_>>(), [4, 5, 6]);
    let shard = Shard::new(1, 3).expect("shard");
    let page = unscored(store, table, UnscoredQuery { after: Some(4), limit: 100, shard: Some(shard) }).await;
    assert_eq!(page.iter().map(|row| row.status_text_id).collect::<Vec<_>>(), [7, 13, 16, 19, 22]);
    assert_eq!(unscored(store, unbiased(), UnscoredQuery { after: None, limit: 100, shard: None }).await.len(), 23);
    assert!(unscored(store, table, UnscoredQuery { after: None, limit: 0, shard: None }).await.is_empty());
}

/// Writing the same text's scores twice keeps one score per text; the
/// rewrite's values are the ones read back.
pub async fn score_writes_are_idempotent(store: &dyn Store) {
    migrate(store).await;
    import(store, &[tweet(1, 1, "a"), tweet(2, 2, "b"), tweet(3, 3, "a")]).await;
    store.refresh_texts().await.expect("refresh");
    let table = unbiased();
    let rows: Vec<ScoreRow> =
        [1, 2].into_iter().map(|id| ScoreRow { status_text_id: id, scores: scores_for(table, id, 0) }).collect();
    write(store, table, &rows).await;
    // A retried batch, then a rewrite of text 1 with other values.
    write(store, table, &rows).await;
    let rewrite = [ScoreRow { status_text_id: 1, scores: scores_for(table, 1, 5) }];
    write(store, table, &rewrite).await;
    let progress = store.progress().await.expect("progress");
    let model = progress.models.iter().find(|m| m.model == table.model).expect("the unbiased model");
    assert_eq!((model.scored, model.remaining), (2, 0), "a repeated write counted twice");
    let exported = export(store, table).await;
    assert_eq!(exported.len(), 3, "one export row per status id: {exported:?}");
    for row in &exported {
        let salt = if row.status_text_id == 1 { 5 } else { 0 };
        assert_eq!(row.scores, scores_for(table, row.status_text_id, salt), "status {}", row.status_id);
    }
    // An empty batch is fine.
    write(store, table, &[]).await;
}

/// Progress counts statuses, texts, and per model the scored and remaining
/// texts, in `MODEL_TABLES` order.
pub async fn progress_counts_every_model(store: &dyn Store) {
    migrate(store).await;
    let tweets: Vec<Tweet> = (0..12).map(|index| tweet(index, 1, &format!("t{}", index % 5))).collect();
    import(store, &tweets).await;
    store.refresh_texts().await.expect("refresh");
    let original = original();
    let unbiased = unbiased();
    let rows = |table: &ModelTable, ids: &[TextId]| -> Vec<ScoreRow> {
        ids.iter().map(|&id| ScoreRow { status_text_id: id, scores: scores_for(table, id, 1) }).collect()
    };
    write(store, original, &rows(original, &[1, 2, 3])).await;
    write(store, unbiased, &rows(unbiased, &[5])).await;
    let progress = store.progress().await.expect("progress");
    assert_eq!((progress.statuses, progress.texts), (12, 5));
    let models: Vec<(&str, u64, u64)> =
        progress.models.iter().map(|m| (m.model.as_str(), m.scored, m.remaining)).collect();
    let expected: Vec<(&str, u64, u64)> = MODEL_TABLES
        .iter()
        .map(|table| match table.model {
            "original" => (table.model, 3, 2),
            "unbiased" => (table.model, 1, 4),
            _ => (table.model, 0, 5),
        })
        .collect();
    assert_eq!(models, expected);
}

/// The export has one row per status id whose text is scored, in status id
/// order, with its user id and its text's scores.
pub async fn export_joins_scores_to_every_status_id(store: &dyn Store) {
    migrate(store).await;
    let tweets = [
        tweet(900, 9, "shared"),
        tweet(15, 1, "shared"),
        tweet(300, 3, "alone"),
        tweet(42, 4, "unscored"),
        tweet(7, 5, "shared"),
        tweet(1_000_000_000_000_000_000, 6, "alone"),
    ];
    import(store, &tweets).await;
    store.refresh_texts().await.expect("refresh");
    let ids = ids_by_text(store).await;
    let table = original();
    let scored = [ids["shared"], ids["alone"]];
    let rows: Vec<ScoreRow> =
        scored.iter().map(|&id| ScoreRow { status_text_id: id, scores: scores_for(table, id, 3) }).collect();
    write(store, table, &rows).await;
    let exported = export(store, table).await;
    let expected: Vec<ExportRow> = [
        (7, 5, "shared"),
        (15, 1, "shared"),
        (300, 3, "alone"),
        (900, 9, "shared"),
        (1_000_000_000_000_000_000, 6, "alone"),
    ]
    .into_iter()
    .map(|(status_id, user_id, text)| ExportRow {
        status_id,
        user_id: Some(user_id),
        status_text_id: ids[text],
        scores: scores_for(table, ids[text], 3),
    })
    .collect();
    assert_eq!(exported, expected);
    assert!(export(store, unbiased()).await.is_empty(), "a model with no scores exports nothing");
}

/// An empty, migrated store: refresh, pages, progress and export all work
/// and are empty.
pub async fn an_empty_store_reads_empty(store: &dyn Store) {
    migrate(store).await;
    let report = store.import_tweets(&[]).await.expect("empty import");
    assert_eq!((report.inserted, report.already_present), (0, 0));
    let report = store.refresh_texts().await.expect("refresh");
    assert_eq!((report.new_texts, report.new_statuses, report.conflicts), (0, 0, 0));
    assert!(all_texts(store).await.is_empty());
    assert!(unscored(store, original(), UnscoredQuery { after: None, limit: 10, shard: None }).await.is_empty());
    let progress = store.progress().await.expect("progress");
    assert_eq!((progress.statuses, progress.texts), (0, 0));
    assert_eq!(progress.models.len(), MODEL_TABLES.len());
    assert!(progress.models.iter().all(|m| m.scored == 0 && m.remaining == 0));
    assert!(export(store, original()).await.is_empty());
}

/// `migrate_with(dry_run)` says what it would apply and changes nothing: the
/// store is still unmigrated afterwards, and a real run applies the same.
pub async fn a_dry_run_migration_changes_nothing(store: &dyn Store) {
    let dry = store.migrate_with(crate::MigrateOptions { dry_run: true }).await.expect("dry run");
    assert!(!dry.applied.is_empty(), "a dry run on a fresh store would apply nothing");
    let error = store.import_tweets(&[tweet(1, 1, "a")]).await.expect_err("the dry run migrated the store");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    let real = store.migrate().await.expect("migrate");
    assert_eq!(real.applied, dry.applied, "the dry run and the real run disagree");
    let again = store.migrate_with(crate::MigrateOptions { dry_run: true }).await.expect("dry run");
    assert!(again.applied.is_empty(), "a migrated store would apply {:?}", again.applied);
}

/// `export_to_table` writes the export's rows into a table, replaces a table
/// it wrote before, and refuses the store's own tables.
pub async fn export_to_table_creates_replaces_and_never_takes_an_own_table(store: &dyn Store) {
    migrate(store).await;
    import(store, &[tweet(1, 10, "a"), tweet(2, 20, "b"), tweet(3, 30, "a"), tweet(4, 40, "unscored")]).await;
    store.refresh_texts().await.expect("refresh");
    let ids = ids_by_text(store).await;
    let table = original();
    let rows: Vec<ScoreRow> = [ids["a"], ids["b"]]
        .iter()
        .map(|&id| ScoreRow { status_text_id: id, scores: scores_for(table, id, 1) })
        .collect();
    write(store, table, &rows).await;
    assert_eq!(
        store.export_to_table(table, ExportRows::Statuses, "joined_scores").await.expect("export to a new table"),
        3
    );
    write(store, table, &[ScoreRow { status_text_id: ids["unscored"], scores: scores_for(table, ids["unscored"], 1) }])
        .await;
    assert_eq!(
        store
            .export_to_table(table, ExportRows::Statuses, "joined_scores")
            .await
            .expect("replace the export's own table"),
        4
    );
    for own in ["tweets", "status_texts", "statuses_texts", "toxicity_scores_original", "toxscore_migrations"] {
        let error = store.export_to_table(table, ExportRows::Statuses, own).await.expect_err(own);
        assert!(matches!(error, Error::AlreadyExists { .. }), "{own}: {error:?}");
    }
    let error = store
        .export_to_table(table, ExportRows::Statuses, "bad name; DROP TABLE tweets")
        .await
        .expect_err("a bad name");
    assert!(matches!(error, Error::InvalidInput { .. }), "{error:?}");
    assert_eq!(export(store, table).await.len(), 4, "a refused export changed the scores");
    // The aggregates too: users 10, 20, 30, 40; one day.
    let by_user = ExportRows::Grouped { grouping: Grouping::User, threshold: 0.5 };
    assert_eq!(store.export_to_table(table, by_user, "user_scores").await.expect("per user"), 4);
    let by_day = ExportRows::Grouped { grouping: Grouping::Day, threshold: 0.5 };
    assert_eq!(store.export_to_table(table, by_day, "user_scores").await.expect("replaced per day"), 1);
    let error = store
        .export_to_table(table, ExportRows::Grouped { grouping: Grouping::Day, threshold: f64::INFINITY }, "days")
        .await
        .expect_err("an infinite threshold");
    assert!(matches!(error, Error::InvalidInput { .. }), "{error:?}");
    let error = store.export_to_table(table, by_user, "tweets").await.expect_err("an own table");
    assert!(matches!(error, Error::AlreadyExists { .. }), "{error:?}");
}

/// Per-user and per-day aggregates, on a corpus whose numbers are worked out
/// by hand: each status counts once (a status imported twice, and a status
/// whose text other statuses share), unscored texts are left out, statuses
/// without `created_at` form a day of their own.
pub async fn aggregates_by_user_and_day_match_hand_computed_numbers(store: &dyn Store) {
    migrate(store).await;
    const DAY: i64 = 86_400_000_000;
    let row = |status_id: i64, user_id: i64, text: &str, created_at: Option<i64>| Tweet {
        status_id,
        user_id,
        status_text: text.to_owned(),
        created_at,
    };
    // 2020-01-01 is day 18262 since 1970.
    let jan1 = 18_262 * DAY;
    let tweets = [
        row(1, 7, "hate", Some(jan1 + 10)),
        row(1, 7, "hate", Some(jan1 + 10)),
        row(2, 7, "love", Some(jan1 + DAY - 1)),
        row(3, 8, "hate", Some(jan1 + DAY)),
        row(4, 8, "meh", None),
        row(5, 9, "unscored", Some(jan1)),
    ];
    import(store, &tweets).await;
    store.refresh_texts().await.expect("refresh");
    let ids = ids_by_text(store).await;
    let table = original();
    // toxicity first (the threshold's column), then the other five classes.
    let values = |toxicity: f64| vec![toxicity, 0.25, 0.5, 0.0, 1.0, 0.125];
    let rows: Vec<ScoreRow> = [("hate", 0.75), ("love", 0.25), ("meh", 0.5)]
        .iter()
        .map(|(text, toxicity)| ScoreRow { status_text_id: ids[*text], scores: values(*toxicity) })
        .collect();
    write(store, table, &rows).await;
    let collect = |grouping| async move {
        store.aggregate(table, grouping, 0.5).try_collect::<Vec<AggregateRow>>().await.expect("aggregate")
    };
    let expect = |key: Option<&str>, n: u64, toxicity: f64, max: f64, share: f64| AggregateRow {
        key: key.map(str::to_owned),
        n_statuses: n,
        averages: values(toxicity),
        max_toxicity: max,
        share_toxic: share,
    };
    // User 7: statuses 1 (0.75) and 2 (0.25); user 8: 3 (0.75) and 4 (0.5).
    assert_eq!(
        collect(Grouping::User).await,
        [expect(Some("7"), 2, 0.5, 0.75, 0.5), expect(Some("8"), 2, 0.625, 0.75, 1.0)],
        "per user"
    );
    // No day (status 4), 2020-01-01 (statuses 1 and 2), 2020-01-02 (status 3).
    assert_eq!(
        collect(Grouping::Day).await,
        [
            expect(None, 1, 0.5, 0.5, 1.0),
            expect(Some("2020-01-01"), 2, 0.5, 0.75, 0.5),
            expect(Some("2020-01-02"), 1, 0.75, 0.75, 1.0)
        ],
        "per day"
    );
    let error = store.aggregate(table, Grouping::User, f64::NAN).try_collect::<Vec<_>>().await.expect_err("NaN");
    assert!(matches!(error, Error::InvalidInput { .. }), "{error:?}");
}

/// The report's summary on a corpus whose numbers are worked out by hand:
/// users, checkpoints (a rewritten text counts for its latest checkpoint
/// only), histograms over the scored statuses (each once; a score of 1 in
/// the last bin), the top users (at least `min_statuses`, highest mean
/// toxicity first) and the top texts with their status counts.
pub async fn summary_matches_hand_computed_numbers(store: &dyn Store) {
    migrate(store).await;
    let table = original();
    let query = SummaryQuery { bins: 4, threshold: 0.5, min_statuses: 2, top: 2 };
    assert_eq!(store.checkpoints(table).await.expect("checkpoints of an empty store"), Vec::new());
    let empty = store.summary(table, query).await.expect("summary of an empty store");
    assert_eq!(
        empty,
        Summary {
            users: 0,
            scored_statuses: 0,
            checkpoints: Vec::new(),
            histograms: vec![vec![0; 4]; 6],
            top_users: Vec::new(),
            top_texts: Vec::new()
        }
    );
    let row = |status_id: i64, user_id: i64, text: &str| Tweet {
        status_id,
        user_id,
        status_text: text.to_owned(),
        created_at: Some(1_600_000_000_000_000),
    };
    let tweets = [
        row(1, 7, "hate"),
        row(1, 7, "hate"),
        row(2, 7, "love"),
        row(3, 8, "hate"),
        row(4, 8, "meh <b>&amp;</b>"),
        row(5, 9, "unscored"),
    ];
    import(store, &tweets).await;
    store.refresh_texts().await.expect("refresh");
    let ids = ids_by_text(store).await;
    let values = |toxicity: f64| vec![toxicity, 0.25, 0.5, 0.0, 1.0, 0.125];
    let score = |text: &str, toxicity: f64| ScoreRow { status_text_id: ids[text], scores: values(toxicity) };
    write(store, table, &[score("hate", 0.75), score("love", 0.25), score("meh <b>&amp;</b>", 0.5)]).await;
    const REWRITER: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    let rows = [score("meh <b>&amp;</b>", 0.5)];
    store.write_scores(ScoreBatch { table, checkpoint_sha256: REWRITER, rows: &rows }).await.expect("rewrite");

    let summary = store.summary(table, query).await.expect("summary");
    assert_eq!(summary.users, 3, "users 7, 8 and 9");
    assert_eq!(summary.scored_statuses, 4, "statuses 1 to 4, status 1 once");
    let uses: Vec<(Option<&str>, u64)> =
        summary.checkpoints.iter().map(|used| (used.checkpoint_sha256.as_deref(), used.n_texts)).collect();
    assert_eq!(uses, [(Some(CHECKPOINT), 2), (Some(REWRITER), 1)], "checkpoints");
    assert_eq!(store.checkpoints(table).await.expect("checkpoints"), summary.checkpoints, "checkpoints alone");
    for CheckpointUse { first_scored_at, last_scored_at, .. } in &summary.checkpoints {
        for at in [first_scored_at, last_scored_at] {
            let at = at.as_deref().expect("a scored_at");
            // YYYY-MM-DDTHH:MM:SS.sssZ
            assert!(at.len() == 24 && at.as_bytes()[10] == b'T' && at.ends_with('Z'), "scored_at {at:?}");
        }
        assert!(first_scored_at <= last_scored_at);
    }
    // Toxicity 0.75, 0.25, 0.75, 0.5 in bins of 0.25; the others constant.
    assert_eq!(
        summary.histograms,
        [vec![0, 1, 1, 2], vec![0, 4, 0, 0], vec![0, 0, 4, 0], vec![4, 0, 0, 0], vec![0, 0, 0, 4], vec![4, 0, 0, 0]],
        "histograms"
    );
    let user = |key: &str, toxicity: f64, max: f64, share: f64| AggregateRow {
        key: Some(key.to_owned()),
        n_statuses: 2,
        averages: values(toxicity),
        max_toxicity: max,
        share_toxic: share,
    };
    // User 8: 0.75 and 0.5; user 7: 0.75 and 0.25; user 9 has no score.
    assert_eq!(summary.top_users, [user("8", 0.625, 0.75, 1.0), user("7", 0.5, 0.75, 0.5)], "top users");
    let text = |text: &str, n_statuses: u64, toxicity: f64| TopText {
        status_text_id: ids[text],
        text: text.to_owned(),
        n_statuses,
        scores: values(toxicity),
    };
    assert_eq!(summary.top_texts, [text("hate", 2, 0.75), text("meh <b>&amp;</b>", 1, 0.5)], "top texts");

    let fewer = store.summary(table, SummaryQuery { min_statuses: 3, top: 1, ..query }).await.expect("summary");
    assert!(fewer.top_users.is_empty(), "no user has 3 statuses: {:?}", fewer.top_users);
    assert_eq!(fewer.top_texts, [text("hate", 2, 0.75)]);
    for bad in [SummaryQuery { bins: 0, ..query }, SummaryQuery { threshold: f64::NAN, ..query }] {
        let error = store.summary(table, bad).await.expect_err("a bad query");
        assert!(matches!(error, Error::InvalidInput { .. }), "{error:?}");
    }
}

/// `sample_scores` draws the stored scores with the smallest
/// `toxdedup::queries::sample_key`s, each text's latest score with its text
/// and checkpoint, the same for a seed at every call and on every backend;
/// a checkpoint prefix draws that checkpoint's only.
pub async fn a_seeded_sample_draws_the_same_stored_scores_everywhere(store: &dyn Store) {
    migrate(store).await;
    let table = original();
    let query = |rows: usize, seed: u32, scored_by: ScoredBy| SampleQuery { rows, seed, scored_by };
    let empty = store.sample_scores(table, query(5, 1, ScoredBy::Any)).await.expect("a sample of an empty store");
    assert_eq!(empty, Vec::new());
    let tweets: Vec<Tweet> = (1..=40).map(|id| tweet(id, id % 3, &format!("text {id}"))).collect();
    import(store, &tweets).await;
    store.refresh_texts().await.expect("refresh");
    let ids = ids_by_text(store).await;
    let mut texts: Vec<(&String, &TextId)> = ids.iter().collect();
    texts.sort_by_key(|(_, id)| **id);
    // 30 texts scored, 5 of them scored again by another checkpoint.
    let rows: Vec<ScoreRow> =
        texts[..30].iter().map(|&(_, &id)| ScoreRow { status_text_id: id, scores: scores_for(table, id, 0) }).collect();
    write(store, table, &rows).await;
    const REWRITER: &str = "ab0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000";
    let again: Vec<ScoreRow> = texts[10..15]
        .iter()
        .map(|&(_, &id)| ScoreRow { status_text_id: id, scores: scores_for(table, id, 5) })
        .collect();
    store.write_scores(ScoreBatch { table, checkpoint_sha256: REWRITER, rows: &again }).await.expect("rescore");

    let expected = |n: usize, seed: u32, rewriter_only: bool| -> Vec<StoredScore> {
        let mut drawn: Vec<(i64, &String, TextId)> = texts[..30]
            .iter()
            .enumerate()
            .filter(|(index, _)| !rewriter_only || (10..15).contains(index))
            .map(|(_, (text, id))| (toxdedup::queries::sample_key(**id, seed), *text, **id))
            .collect();
        drawn.sort_by_key(|&(key, _, id)| (key, id));
        drawn
            .into_iter()
            .take(n)
            .map(|(_, text, id)| {
                let rescored = again.iter().any(|row| row.status_text_id == id);
                StoredScore {
                    status_text_id: id,
                    status_text: text.clone(),
                    checkpoint_sha256: Some(if rescored { REWRITER } else { CHECKPOINT }.to_owned()),
                    scores: scores_for(table, id, if rescored { 5 } else { 0 }).into_iter().map(Some).collect(),
                }
            })
            .collect()
    };
    for seed in [0, 7, u32::MAX] {
        let sample = store.sample_scores(table, query(8, seed, ScoredBy::Any)).await.expect("a sample");
        assert_eq!(sample, expected(8, seed, false), "seed {seed}");
        let again = store.sample_scores(table, query(8, seed, ScoredBy::Any)).await.expect("a sample");
        assert_eq!(again, sample, "seed {seed} draws the same texts twice");
    }
    let all = store.sample_scores(table, query(1_000, 3, ScoredBy::Any)).await.expect("more than there are");
    assert_eq!(all, expected(30, 3, false), "every scored text once, unscored ones never");
    let rewriter = ScoredBy::Checkpoint(REWRITER[..12].to_owned());
    let theirs = store.sample_scores(table, query(3, 3, rewriter)).await.expect("one checkpoint's");
    assert_eq!(theirs, expected(3, 3, true));
    let unrecorded = store.sample_scores(table, query(5, 3, ScoredBy::Unrecorded)).await.expect("unrecorded");
    assert_eq!(unrecorded, Vec::new(), "toxscore records a checkpoint with every score");
    let unscored = store.sample_scores(unbiased(), query(5, 3, ScoredBy::Any)).await.expect("another model");
    assert_eq!(unscored, Vec::new());
    for bad in [query(0, 1, ScoredBy::Any), query(5, 1, ScoredBy::Checkpoint("x' OR TRUE --".to_owned()))] {
        let error = store.sample_scores(table, bad).await.expect_err("a bad sample");
        assert!(matches!(error, Error::InvalidInput { .. }), "{error:?}");
    }
}
