//! Score writes per backend: [`Store::write_scores`] batches of 32 and 1024
//! rows of the `original` model's six scores.
//!
//! ```text
//! cargo bench -p toxstore --bench writes
//! TOXSCORE_BIGQUERY_EMULATOR=http://127.0.0.1:9050 cargo bench -p toxstore --bench writes
//! ```
//!
//! Backends: in memory, SQLite on a temporary file, and BigQuery on the
//! emulator only when `TOXSCORE_BIGQUERY_EMULATOR` names one (as `cargo xtask
//! test` sets it); without it the BigQuery group is skipped with a note, since
//! this is a measurement, not a test.
//!
//! Every store is first loaded with a pool of distinct texts (a score row
//! must name an existing text); the writes walk through the pool batch after
//! batch and wrap around. The first pass inserts rows, later passes replace
//! them (the idempotent path a retried batch takes); on SQLite both cost the
//! same B-tree work. Throughput is in score rows per second.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use toxstore::bigquery::{BigQuery, BigQueryConfig};
use toxstore::{InMemory, ModelTable, ScoreBatch, ScoreRow, Sqlite, Store, Tweet};

const BATCH_ROWS: [usize; 2] = [32, 1024];
/// Distinct texts loaded into each local store before measuring.
const LOCAL_POOL_TEXTS: usize = 65_536;
/// The same on the emulator, where every import is an HTTP round trip.
const BIGQUERY_POOL_TEXTS: usize = 4096;
/// Tweets per import call while loading the pool.
const IMPORT_BATCH: usize = 8192;
/// Set by `cargo xtask test`: the emulator's root URL.
const EMULATOR_URL_VAR: &str = "TOXSCORE_BIGQUERY_EMULATOR";
/// A made-up checkpoint hash (the column is a plain string).
const CHECKPOINT_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn original_table() -> &'static ModelTable {
    ModelTable::by_model("original").expect("original is a known model")
}

/// Migrates the store and loads `n_texts` distinct texts; returns their ids.
async fn load_pool(store: &dyn Store, n_texts: usize) -> Vec<i64> {
    store.migrate().await.expect("migrate");
    let tweets: Vec<Tweet> = (0..n_texts)
        .map(|idx| Tweet {
            status_id: idx as i64,
            user_id: 1,
            status_text: format!("benchmark text number {idx}, distinct from every other"),
            created_at: None,
        })
        .collect();
    for chunk in tweets.chunks(IMPORT_BATCH) {
        store.import_tweets(chunk).await.expect("import the pool");
    }
    store.refresh_texts().await.expect("de-duplicate the pool");
    let mut ids = Vec::with_capacity(n_texts);
    let mut after = None;
    loop {
        let page = store.text_page(after, 10_000).await.expect("read the pool's text ids");
        let Some(last) = page.last() else { break };
        after = Some(last.status_text_id);
        ids.extend(page.iter().map(|text| text.status_text_id));
    }
    assert_eq!(ids.len(), n_texts, "every pool text has an id");
    ids
}

/// Benchmarks one backend: `pool` holds the text ids already in `store`.
fn bench_backend(c: &mut Criterion, runtime: &tokio::runtime::Runtime, name: &str, store: &dyn Store, pool: &[i64]) {
    let table = original_table();
    let mut group = c.benchmark_group(format!("write_scores/{name}"));
    for batch_rows in BATCH_ROWS {
        let batches: Vec<Vec<ScoreRow>> = pool
            .chunks_exact(batch_rows)
            .enumerate()
            .map(|(batch_idx, ids)| {
                ids.iter()
                    .map(|&status_text_id| ScoreRow {
                        status_text_id,
                        scores: (0..table.columns.len()).map(|col| ((batch_idx + col) % 64) as f64 / 64.0).collect(),
                    })
                    .collect()
            })
            .collect();
        assert!(!batches.is_empty(), "the pool holds at least one batch");
        group.throughput(Throughput::Elements(batch_rows as u64));
        let mut next = 0;
        group.bench_function(BenchmarkId::from_parameter(format!("{batch_rows}_rows")), |bencher| {
            bencher.iter_custom(|iterations| {
                let start = Instant::now();
                for _ in 0..iterations {
                    let rows = &batches[next % batches.len()];
                    next += 1;
                    let batch = ScoreBatch { table, checkpoint_sha256: CHECKPOINT_SHA256, rows };
                    runtime.block_on(store.write_scores(batch)).expect("write scores");
                }
                black_box(start.elapsed())
            });
        });
    }
    group.finish();
}

fn writes(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");

    let memory = InMemory::new();
    let pool = runtime.block_on(load_pool(&memory, LOCAL_POOL_TEXTS));
    bench_backend(c, &runtime, "memory", &memory, &pool);
    drop(memory);

    let folder = tempfile::tempdir().expect("a temporary folder");
    let sqlite = Sqlite::open(folder.path().join("bench.db")).expect("open a SQLite file");
    let pool = runtime.block_on(load_pool(&sqlite, LOCAL_POOL_TEXTS));
    bench_backend(c, &runtime, "sqlite", &sqlite, &pool);
    drop(sqlite);

    match std::env::var(EMULATOR_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => {
            let dataset = format!("bench_writes_{}", std::process::id());
            let config = BigQueryConfig::emulator(url.trim(), "test-project", dataset);
            let bigquery = runtime.block_on(BigQuery::connect(config)).expect("connect to the BigQuery emulator");
            let pool = runtime.block_on(load_pool(&bigquery, BIGQUERY_POOL_TEXTS));
            bench_backend(c, &runtime, "bigquery-emulator", &bigquery, &pool);
        }
        _ => eprintln!("note: {EMULATOR_URL_VAR} is not set, so BigQuery writes are not measured"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = writes
}
criterion_main!(benches);
