//! Scale benchmark of the embedded backend: imports N generated tweets into
//! a fresh SQLite file, de-duplicates them (`refresh_texts`), then imports and
//! de-duplicates another 10% (the incremental case), and prints the times,
//! the peak memory of the process and the file size.
//!
//! ```text
//! cargo bench -p toxstore --bench scale -- 1000000 [4000000 ...]
//! ```
//!
//! The tweets follow a Yule-Simon process: each tweet carries a new text with
//! probability 1/5, else the text of a uniformly chosen earlier tweet. That
//! gives about 5 tweets per distinct text with a heavy (power-law) tail, like
//! retweets. One tweet in a thousand repeats an earlier status id with
//! another text (a conflict). Texts are about 100 bytes. The generator is
//! seeded, so every run imports the same tweets.
//!
//! Each size runs in its own child process, so that the peak memory
//! (`VmHWM`) is that size's alone; the generator's own share is one `u32` per
//! tweet.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use toxstore::{Sqlite, Store, Tweet};

const IMPORT_BATCH: usize = 10_000;
const NEW_TEXT_PROBABILITY: f64 = 0.2;
const CONFLICT_PROBABILITY: f64 = 0.001;

/// Generates tweets `from..to` of the seeded stream, keeping the text id of
/// every tweet generated so far in `text_ids`.
struct Generator {
    rng: StdRng,
    text_ids: Vec<u32>,
    n_texts: u32,
}

impl Generator {
    fn new() -> Self {
        Self { rng: StdRng::seed_from_u64(20_240_601), text_ids: Vec::new(), n_texts: 0 }
    }

    fn next_batch(&mut self, size: usize) -> Vec<Tweet> {
        (0..size)
            .map(|_| {
                let index = self.text_ids.len();
                let text_id = if index == 0 || self.rng.random::<f64>() < NEW_TEXT_PROBABILITY {
                    self.n_texts += 1;
                    self.n_texts
                } else {
                    self.text_ids[self.rng.random_range(0..index)]
                };
                self.text_ids.push(text_id);
                let status_id = if index > 0 && self.rng.random::<f64>() < CONFLICT_PROBABILITY {
                    self.rng.random_range(0..index) as i64 * 3
                } else {
                    index as i64 * 3
                };
                Tweet {
                    status_id,
                    user_id: (status_id * 7919) % 100_003,
                    status_text: format!(
                        "RT @someone: this is generated tweet text number {text_id}, padded to look like a real tweet #{}",
                        text_id % 97
                    ),
                    created_at: Some(1_600_000_000_000_000 + status_id),
                }
            })
            .collect()
    }
}

/// The peak resident memory of this process, in MiB, from `/proc`.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn import(store: &Sqlite, generator: &mut Generator, n_tweets: usize) -> toxstore::Result<()> {
    let mut left = n_tweets;
    while left > 0 {
        let size = left.min(IMPORT_BATCH);
        store.import_tweets(&generator.next_batch(size)).await?;
        left -= size;
    }
    Ok(())
}

fn run_one(n_tweets: usize) -> Result<(), Box<dyn std::error::Error>> {
    let folder = tempfile::tempdir()?;
    let path = folder.path().join("toxscore.db");
    let store = Sqlite::open(&path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        store.migrate().await?;
        let mut generator = Generator::new();

        let started = Instant::now();
        import(&store, &mut generator, n_tweets).await?;
        let import_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let report = store.refresh_texts().await?;
        let refresh_s = started.elapsed().as_secs_f64();
        println!(
            "{n_tweets} tweets: import {import_s:.1} s ({:.0} tweets/s), refresh {refresh_s:.1} s: \
             {} texts, {} status ids, {} conflicts",
            n_tweets as f64 / import_s,
            report.new_texts,
            report.new_statuses,
            report.conflicts
        );

        let extra = n_tweets / 10;
        let started = Instant::now();
        import(&store, &mut generator, extra).await?;
        let import_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let report = store.refresh_texts().await?;
        let refresh_s = started.elapsed().as_secs_f64();
        println!(
            "  +{extra} tweets: import {import_s:.1} s, incremental refresh {refresh_s:.1} s: \
             {} new texts, {} new status ids",
            report.new_texts, report.new_statuses
        );
        Ok::<_, toxstore::Error>(())
    })?;
    let file_mib = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|metadata| metadata.len() as f64 / (1024.0 * 1024.0))
        .sum::<f64>();
    println!("  peak memory {:.0} MiB, file {file_mib:.0} MiB", peak_memory_mib().unwrap_or(f64::NAN));
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; sizes are the numeric arguments.
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|arg| arg.parse().ok()).collect();
    if let Ok(size) = std::env::var("TOXSTORE_SCALE_CHILD") {
        return run_one(size.parse()?);
    }
    let sizes = if sizes.is_empty() { vec![1_000_000] } else { sizes };
    for size in sizes {
        let status = std::process::Command::new(std::env::current_exe()?)
            .env("TOXSTORE_SCALE_CHILD", size.to_string())
            .status()?;
        if !status.success() {
            return Err(format!("the run with {size} tweets failed: {status}").into());
        }
    }
    Ok(())
}
