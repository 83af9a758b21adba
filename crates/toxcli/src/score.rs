//! `toxcli score`: the scoring pipeline.
//!
//! ```text
//!  reader (async)      tokenizer (thread)          model workers (threads)   writer (async)
//!  unscored pages  ->  tokenize in parallel,   ->  one batch each, side  ->  batched, idempotent
//!  keyset `after`      sort by length, cut         by side, one core         write_scores
//!                      batches of --batch-size     per worker
//! ```
//!
//! The stages are joined by bounded channels, so at most a few pages of texts
//! are in memory however large the store. Tokenizing runs on Rayon's global
//! pool, sized by `--threads`; the model runs whole batches side by side on
//! its workers (`Detoxify::forward_on`), one thread each.
//!
//! # Stopping and resuming
//! Scores are committed by the writer in batches ([`WRITE_ROWS`] rows, or
//! whatever is ready after [`FLUSH_INTERVAL`]). A text is "scored" once its
//! row is committed, so a run that stops for any reason (Ctrl-C, kill -9, a
//! store failure) loses at most the uncommitted batches, and the next run
//! reads the texts still without a score and scores them: writes are
//! idempotent, so a batch that was committed just before a crash and is
//! scored again is not counted twice.
//!
//! Ctrl-C stops the reader, lets the model finish the batch it is running,
//! drops the batches still queued, commits what was scored and exits with
//! code 130. A second Ctrl-C exits at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::mpsc;
use toxstore::{CheckpointUse, ModelTable, ScoreBatch, ScoreRow, Shard, Store, TextId, TextRow, UnscoredQuery};

use crate::exit::{Interrupted, ModelLoad, StoreBusy, UsageError};
use crate::export::{ExportFormat, export_to};
use crate::import::{self, TweetFileArgs};
use crate::migrate;
use crate::model_args::{LoadedModel, ModelArgs, short_sha};
use crate::progress::{ScoreProgress, format_duration};
use crate::store_spec::{StoreSettings, StoreSpec};

/// Texts read from the store per page (the unit of length bucketing) on
/// SQLite and in memory.
const PAGE_TEXTS: usize = 4096;
/// The same on BigQuery, where every page is one query that scans the text
/// and score tables whatever its `LIMIT`: fewer, larger pages cost less.
const BIGQUERY_PAGE_TEXTS: usize = 50_000;
/// Score rows per store write, at most (more only if one batch is larger).
const WRITE_ROWS: usize = 1024;
/// The longest time a scored row waits before it is written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// Tokenized batches queued before the model.
const QUEUED_BATCHES: usize = 8;

/// `toxcli score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// Import this tweets file and de-duplicate its texts first
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,

    #[command(flatten)]
    pub file: TweetFileArgs,

    /// Score at most N texts in this run
    #[arg(long, env = "LIMIT", value_name = "N")]
    pub limit: Option<u64>,

    /// Texts per model call
    #[arg(long, env = "BATCH_SIZE", default_value_t = 32, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,

    /// Threads for tokenizing and the model [default: the number of CPUs]
    #[arg(long, env = "MAX_THREADS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,

    /// Score only shard K of N (texts whose id modulo N is K), so that N
    /// workers share one store without overlap. Import and de-duplicate once
    /// before starting the shards (`toxcli import`, then `toxcli migrate`):
    /// not with --input
    #[arg(long, value_name = "K/N", conflicts_with = "input")]
    pub shard: Option<Shard>,

    /// Unscored texts read per store query; each page is sorted by length
    /// and cut into batches [default: 4096; 50000 on BigQuery]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub page_size: Option<u32>,

    /// After scoring, export the model's scores to this file (as `toxcli
    /// export --output`; useful with --store memory)
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,

    /// The export's format [default: from the extension, else csv]
    #[arg(long, value_enum, value_name = "FORMAT", requires = "export")]
    pub export_format: Option<ExportFormat>,
}

/// A batch of tokenized texts, sorted by length.
struct TextBatch {
    ids: Vec<TextId>,
    sequences: Vec<Vec<u32>>,
}

/// How a pipeline run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Every text that was read has been scored and committed.
    Finished,
    /// Ctrl-C: the reader stopped early; what was scored is committed.
    Interrupted,
}

/// Runs `toxcli score`.
pub async fn run(settings: &StoreSettings, args: ScoreArgs) -> anyhow::Result<()> {
    if let Some(input) = &args.input {
        import::check_header(input, &args.file, &settings.columns)?;
    }
    if let Some(threads) = args.threads {
        // Tokenizers and Burn's CPU backend both run on Rayon's global pool.
        // It can only be sized before its first use, which is now.
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads as usize)
            .build_global()
            .with_context(|| format!("starting {threads} threads (--threads)"))?;
    }
    let batch_size = args.batch_size as usize;
    let loaded = tokio::task::block_in_place(|| {
        args.model.load_with_workers(batch_size, args.threads.map(|threads| threads as usize))
    })
    .context(ModelLoad)?;
    let mut loaded = loaded;
    let columns = column_indexes(&loaded)?;
    let _lock = match &settings.spec {
        StoreSpec::Sqlite(database) => Some(lock_scoring(database, loaded.table.model, args.shard)?),
        StoreSpec::Memory | StoreSpec::BigQuery { .. } => None,
    };

    let store = settings.open().await?;
    // The model's table in this store: `--score-table` may rename it.
    loaded.table = store.layout().score_table(loaded.table.model)?;
    let table = loaded.table.clone();
    if let Some(input) = &args.input {
        import::prepare_schema(store.as_ref()).await?;
        let summary = import::import_file(store.as_ref(), input, &args.file, &settings.columns).await?;
        eprintln!(
            "imported {}: {} rows read, {} new, {} already present, {} rejected",
            input.display(),
            summary.rows,
            summary.inserted,
            summary.already_present,
            summary.rejected
        );
        migrate::refresh(store.as_ref()).await?;
    }

    let read_progress = || async {
        store.progress().await.with_context(|| {
            format!(
                "reading the counts of {} (import tweets and run `toxcli migrate` first, or use --input)",
                settings.spec
            )
        })
    };
    let mut progress = read_progress().await?;
    let not_deduplicated = progress.imported_statuses.map_or(0, |imported| imported.saturating_sub(progress.statuses));
    if not_deduplicated > 0 {
        if let Some(shard) = args.shard {
            // Shards run side by side, and two de-duplications must not.
            eprintln!(
                "warning: {not_deduplicated} imported status ids are not de-duplicated yet, so shard {}/{} leaves \
                 their texts out; run `toxcli migrate` once, then the shards",
                shard.index, shard.count
            );
        } else {
            // As after `score --input`: what was imported is scored too.
            migrate::refresh(store.as_ref()).await?;
            progress = read_progress().await?;
        }
    }
    let remaining = progress.models.iter().find(|model| model.model == table.model).map_or(0, |model| model.remaining);
    let expected = match args.shard {
        Some(shard) => remaining.div_ceil(u64::from(shard.count)),
        None => remaining,
    };
    let expected = args.limit.map_or(expected, |limit| expected.min(limit));
    let shard_note = args.shard.map(|shard| format!(" (shard {}/{})", shard.index, shard.count)).unwrap_or_default();

    // One worker of a sharded job says it for all (on BigQuery the query
    // reads the score table).
    if remaining > 0 && args.shard.is_none_or(|shard| shard.index == 0) {
        let uses =
            store.checkpoints(&table).await.with_context(|| format!("listing the checkpoints of {}", table.table))?;
        if let Some(message) = other_checkpoints(&uses, &loaded.checkpoint_sha256, &table.table, remaining) {
            eprintln!("{message}");
        }
    }

    let mut ending = Ending::Finished;
    let mut scored = 0;
    if remaining == 0 {
        if progress.texts == 0 {
            eprintln!(
                "nothing to score: the store holds no texts; import tweets (`toxcli import --input FILE`, then `toxcli migrate`) or use `toxcli score --input FILE`"
            );
        } else {
            eprintln!("nothing to score: all {} texts have scores from model {}", progress.texts, table.model);
        }
    } else {
        eprintln!(
            "scoring up to {expected} of {remaining} unscored texts with model {} (checkpoint sha256 {}){shard_note}, \
             batch size {batch_size}, on {}{} in {}{}",
            table.model,
            short_sha(&loaded.checkpoint_sha256),
            loaded.model.device(),
            loaded.model.device_identity().map(|identity| format!(" ({identity})")).unwrap_or_default(),
            loaded.model.precision(),
            loaded
                .model
                .device_memory()
                .map(|memory| format!("; batches sized by the device's memory ({memory})"))
                .unwrap_or_default(),
        );
        let pipeline = Pipeline {
            store: Arc::clone(&store),
            model: Arc::new(loaded),
            columns: Arc::new(columns),
            shard: args.shard,
            limit: args.limit,
            page_size: args.page_size.map_or(
                match settings.spec {
                    StoreSpec::BigQuery { .. } => BIGQUERY_PAGE_TEXTS,
                    StoreSpec::Sqlite(_) | StoreSpec::Memory => PAGE_TEXTS,
                },
                |size| size as usize,
            ),
            cancel: Arc::new(AtomicBool::new(false)),
        };
        let mut reporter = ScoreProgress::new(Some(expected));
        let signal_task = tokio::spawn(watch_ctrl_c(Arc::clone(&pipeline.cancel)));
        let result = pipeline.run(&mut reporter).await;
        signal_task.abort();
        reporter.finish();
        scored = reporter.done();
        let elapsed = reporter.elapsed();
        match result {
            Ok(end) => ending = end,
            Err(error) => {
                eprintln!("stopped after committing {scored} scores; run the same command again to score the rest");
                return Err(error);
            }
        }
        eprintln!(
            "scored {scored} texts in {} ({:.1} texts/s)",
            format_duration(elapsed),
            if elapsed.as_secs_f64() > 0.0 { scored as f64 / elapsed.as_secs_f64() } else { 0.0 }
        );
    }

    let left = store.progress().await.ok().and_then(|progress| {
        progress.models.into_iter().find(|model| model.model == table.model).map(|model| model.remaining)
    });
    if let Some(left) = left {
        let whose = if args.shard.is_some() { " (all shards together)" } else { "" };
        eprintln!("remaining for model {}{whose}: {left} texts", table.model);
    }
    if ending == Ending::Interrupted {
        eprintln!("interrupted: the {scored} scores of this run are committed; run the same command again to resume");
        return Err(Interrupted.into());
    }
    if let Some(output) = &args.export {
        let format = args.export_format.unwrap_or_else(|| ExportFormat::guess(Some(output)));
        let rows = export_to(store.as_ref(), &table, toxstore::ExportRows::Statuses, Some(output), format).await?;
        eprintln!("exported {rows} rows of model {} to {}", table.model, output.display());
    }
    Ok(())
}

/// Lock files that keep two `score` processes from doing the same work on one
/// SQLite file. The operating system releases them when the process ends,
/// however it ends (kill -9 included), so a stale lock cannot block a rerun.
struct ScoreLock {
    _files: Vec<std::fs::File>,
}

/// What to tell a run that adds `remaining` scores of checkpoint `ours` to
/// a score table already holding scores of others: it scores only the texts
/// without a score, so the table will mix checkpoints, which no export
/// column shows. A warning for another toxscore checkpoint; a note for the
/// Python pipeline's rows (no checkpoint recorded), which a run in place
/// finishes on purpose. `None` when every stored score is `ours`.
fn other_checkpoints(uses: &[CheckpointUse], ours: &str, table: &str, remaining: u64) -> Option<String> {
    let others: Vec<&CheckpointUse> =
        uses.iter().filter(|used| used.checkpoint_sha256.as_deref() != Some(ours)).collect();
    if others.is_empty() {
        return None;
    }
    let described: Vec<String> = others
        .iter()
        .map(|used| match &used.checkpoint_sha256 {
            Some(sha256) => format!("{} texts scored with checkpoint sha256 {}", used.n_texts, short_sha(sha256)),
            None => format!("{} texts scored by the Python pipeline (no checkpoint recorded)", used.n_texts),
        })
        .collect();
    let level = if others.iter().any(|used| used.checkpoint_sha256.is_some()) { "warning" } else { "note" };
    let check = if others.iter().any(|used| used.checkpoint_sha256.is_none()) {
        "; `toxcli verify --scored-by unrecorded` rescores a sample of the pipeline's to check that they belong \
         to their texts"
    } else {
        ""
    };
    Some(format!(
        "{level}: {table} holds {}; this run scores only the {remaining} texts without a score, with checkpoint \
         sha256 {}, so the table will hold the scores of {} checkpoints (`toxcli report` lists them; to score \
         every text with this checkpoint, use another store, or on BigQuery another --score-table){check}",
        described.join(", "),
        short_sha(ours),
        others.len() + 1
    ))
}

/// Takes the locks of a scoring run on an SQLite store: an unsharded run of
/// a model excludes every other run of that model; a run of shard K/N
/// excludes unsharded runs, other runs of the same K/N, and runs of shards
/// of another N (whose texts overlap K/N's).
///
/// The locks are `flock`s on files beside the database, released by the
/// system however the process ends. A run of shard K/N holds
/// `.MODEL.shards-of-N.score-lock` shared, then tries every other
/// `shards-of-M` file exclusively: one held by a running shard of M refuses
/// this run. Taking its own before looking at the others means two runs of
/// different N starting at once cannot both miss each other (both may
/// refuse, and a rerun starts).
fn lock_scoring(database: &Path, model: &str, shard: Option<Shard>) -> anyhow::Result<ScoreLock> {
    let open = |suffix: String| -> anyhow::Result<(std::fs::File, PathBuf)> {
        let mut name = database.file_name().map(|name| name.to_os_string()).unwrap_or_default();
        name.push(suffix);
        let path = database.with_file_name(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("creating the lock file {}", path.display()))?;
        Ok((file, path))
    };
    let busy = |what: String| {
        StoreBusy(format!(
            "another `toxcli score` is already scoring {what} in {}; wait for it to finish, or split the work \
             between processes with --shard K/N",
            database.display()
        ))
    };
    let check = |result: Result<(), std::fs::TryLockError>, path: &Path, what: String| -> anyhow::Result<()> {
        match result {
            Ok(()) => Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => Err(busy(what).into()),
            Err(std::fs::TryLockError::Error(error)) => {
                Err(anyhow::Error::new(error).context(format!("locking {}", path.display())))
            }
        }
    };
    let (model_file, model_path) = open(format!(".{model}.score-lock"))?;
    match shard {
        None => {
            check(model_file.try_lock(), &model_path, format!("model {model}"))?;
            Ok(ScoreLock { _files: vec![model_file] })
        }
        Some(shard) => {
            check(model_file.try_lock_shared(), &model_path, format!("model {model} without --shard"))?;
            let (shard_file, shard_path) =
                open(format!(".{model}.shard-{}-of-{}.score-lock", shard.index, shard.count))?;
            check(
                shard_file.try_lock(),
                &shard_path,
                format!("shard {}/{} of model {model}", shard.index, shard.count),
            )?;
            let count_prefix = format!(".{model}.shards-of-");
            let (count_file, count_path) = open(format!("{count_prefix}{}.score-lock", shard.count))?;
            check(count_file.try_lock_shared(), &count_path, format!("shards of {} of model {model}", shard.count))?;
            let folder = match database.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
                _ => PathBuf::from("."),
            };
            let mut prefix = database.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            prefix.push_str(&count_prefix);
            let entries = std::fs::read_dir(&folder).with_context(|| format!("listing {}", folder.display()))?;
            for entry in entries {
                let name = entry.with_context(|| format!("listing {}", folder.display()))?.file_name();
                let Some(other) = name
                    .to_str()
                    .and_then(|name| name.strip_prefix(&prefix))
                    .and_then(|rest| rest.strip_suffix(".score-lock"))
                    .and_then(|count| count.parse::<u32>().ok())
                    .filter(|&other| other != shard.count)
                else {
                    continue;
                };
                let (other_file, other_path) = open(format!("{count_prefix}{other}.score-lock"))?;
                check(
                    other_file.try_lock(),
                    &other_path,
                    format!(
                        "shards K/{other} of model {model} (texts that shard {}/{} shares; give every worker the same N)",
                        shard.index, shard.count
                    ),
                )?;
            }
            Ok(ScoreLock { _files: vec![model_file, shard_file, count_file] })
        }
    }
}

async fn watch_ctrl_c(cancel: Arc<AtomicBool>) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    cancel.store(true, Ordering::SeqCst);
    eprintln!(
        "\ninterrupt: finishing the batch in flight and committing what was scored (Ctrl-C again to quit at once)"
    );
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!("second interrupt: quitting; committed scores are kept, the rest is scored by the next run");
        std::process::exit(crate::exit::Exit::Interrupted as i32);
    }
}

/// For each column of the model's table, the index of its class among the
/// model's outputs.
pub(crate) fn column_indexes(loaded: &LoadedModel) -> anyhow::Result<Vec<usize>> {
    let names = loaded.model.all_class_names();
    let table = &loaded.table;
    table
        .columns
        .iter()
        .map(|&column| {
            // The original pipeline's tables keep Jigsaw's `identity_hate`
            // where Detoxify names the class `identity_attack`.
            let aliases: Vec<&str> = match column {
                "identity_hate" => vec!["identity_hate", "identity_attack"],
                "toxicity" => vec!["toxicity", "toxic"],
                "severe_toxicity" => vec!["severe_toxicity", "severe_toxic"],
                other => vec![other],
            };
            names.iter().position(|name| aliases.contains(&name.as_str())).ok_or_else(|| {
                UsageError(format!(
                    "the checkpoint's classes ({}) have no {column:?}, a column of model {}'s table {}; choose the --model that matches the checkpoint",
                    names.join(", "),
                    table.model,
                    table.table
                ))
                .into()
            })
        })
        .collect()
}

struct Pipeline {
    store: Arc<dyn Store>,
    model: Arc<LoadedModel>,
    columns: Arc<Vec<usize>>,
    shard: Option<Shard>,
    limit: Option<u64>,
    page_size: usize,
    cancel: Arc<AtomicBool>,
}

impl Pipeline {
    async fn run(&self, reporter: &mut ScoreProgress) -> anyhow::Result<Ending> {
        let (page_sender, page_receiver) = mpsc::channel::<Vec<TextRow>>(1);
        let (batch_sender, batch_receiver) = mpsc::channel::<TextBatch>(QUEUED_BATCHES);
        let (score_sender, mut score_receiver) = mpsc::channel::<Vec<ScoreRow>>(QUEUED_BATCHES);

        let reader = tokio::spawn(read_pages(
            Arc::clone(&self.store),
            self.model.table.clone(),
            self.shard,
            self.limit,
            self.page_size,
            Arc::clone(&self.cancel),
            page_sender,
        ));
        let tokenizer = {
            let model = Arc::clone(&self.model);
            let cancel = Arc::clone(&self.cancel);
            tokio::task::spawn_blocking(move || tokenize_pages(&model, &cancel, page_receiver, &batch_sender))
        };
        // One thread per model worker: whole batches run side by side, each
        // on its own core.
        let batch_receiver = Arc::new(std::sync::Mutex::new(batch_receiver));
        let scorers: Vec<_> = (0..self.model.model.workers().max(1))
            .map(|worker| {
                let model = Arc::clone(&self.model);
                let columns = Arc::clone(&self.columns);
                let cancel = Arc::clone(&self.cancel);
                let receiver = Arc::clone(&batch_receiver);
                let sender = score_sender.clone();
                tokio::task::spawn_blocking(move || {
                    score_batches(&model, worker, &columns, &cancel, &receiver, &sender)
                })
            })
            .collect();
        // Only the workers may hold the queue: when they stop (Ctrl-C, a
        // failure) it closes, and the tokenizer's sends fail instead of
        // blocking on a full queue.
        drop(batch_receiver);
        drop(score_sender);

        let write_result = self.write_scores(&mut score_receiver, reporter).await;
        // If the writer failed, closing its queue stops the other stages.
        drop(score_receiver);
        let mut scorer_result = Ok(());
        for scorer in scorers {
            let result = scorer.await.context("a model thread failed")?;
            if scorer_result.is_ok() {
                scorer_result = result;
            }
        }
        let tokenizer_result = tokenizer.await.context("the tokenizing thread failed")?;
        let reader_result = reader.await.context("the reading task failed")?;
        write_result?;
        scorer_result?;
        tokenizer_result?;
        reader_result?;
        Ok(if self.cancel.load(Ordering::SeqCst) { Ending::Interrupted } else { Ending::Finished })
    }

    /// Commits score rows as they come, merging what is ready into writes of
    /// up to [`WRITE_ROWS`] rows, and never holding a row longer than
    /// [`FLUSH_INTERVAL`].
    async fn write_scores(
        &self,
        receiver: &mut mpsc::Receiver<Vec<ScoreRow>>,
        reporter: &mut ScoreProgress,
    ) -> anyhow::Result<()> {
        let mut pending: Vec<ScoreRow> = Vec::with_capacity(WRITE_ROWS);
        let mut deadline = tokio::time::Instant::now();
        loop {
            let received = if pending.is_empty() {
                receiver.recv().await
            } else {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(received) => received,
                    Err(_elapsed) => {
                        self.flush(&mut pending, reporter).await?;
                        continue;
                    }
                }
            };
            match received {
                Some(rows) => {
                    if pending.is_empty() {
                        deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
                    }
                    pending.extend(rows);
                    if pending.len() >= WRITE_ROWS {
                        self.flush(&mut pending, reporter).await?;
                    }
                }
                None => {
                    self.flush(&mut pending, reporter).await?;
                    return Ok(());
                }
            }
        }
    }

    async fn flush(&self, pending: &mut Vec<ScoreRow>, reporter: &mut ScoreProgress) -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let batch =
            ScoreBatch { table: &self.model.table, checkpoint_sha256: &self.model.checkpoint_sha256, rows: pending };
        self.store
            .write_scores(batch)
            .await
            .with_context(|| format!("writing {} scores to {}", pending.len(), self.model.table.table))?;
        reporter.add(pending.len() as u64);
        pending.clear();
        Ok(())
    }
}

/// The reader: pages of unscored texts in id order, keyset-paged so that it
/// can run ahead of the writes.
async fn read_pages(
    store: Arc<dyn Store>,
    table: ModelTable,
    shard: Option<Shard>,
    limit: Option<u64>,
    page_size: usize,
    cancel: Arc<AtomicBool>,
    sender: mpsc::Sender<Vec<TextRow>>,
) -> anyhow::Result<()> {
    let mut after = None;
    let mut read = 0u64;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Ok(());
        }
        let wanted = match limit {
            Some(limit) => (limit.saturating_sub(read)).min(page_size as u64) as usize,
            None => page_size,
        };
        if wanted == 0 {
            return Ok(());
        }
        let page = store
            .unscored_texts(&table, UnscoredQuery { after, limit: wanted, shard })
            .await
            .with_context(|| format!("reading unscored texts of model {}", table.model))?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.status_text_id);
        read += page.len() as u64;
        // A short page is the last one (the store's contract): on BigQuery
        // asking again would scan the tables once more for nothing.
        let last_page = page.len() < wanted;
        if sender.send(page).await.is_err() || last_page {
            return Ok(());
        }
    }
}

/// The tokenizer: tokenizes each page (in parallel, on Rayon's pool) and
/// cuts it into batches by `Detoxify::plan_batches` (sorted by length, at
/// most the batch size, within the model's batch budget: the CPU's token
/// budget, or what the device's memory allows).
fn tokenize_pages(
    model: &LoadedModel,
    cancel: &AtomicBool,
    mut receiver: mpsc::Receiver<Vec<TextRow>>,
    sender: &mpsc::Sender<TextBatch>,
) -> anyhow::Result<()> {
    while let Some(page) = receiver.blocking_recv() {
        if cancel.load(Ordering::SeqCst) {
            return Ok(());
        }
        let texts: Vec<&str> = page.iter().map(|row| row.status_text.as_str()).collect();
        let sequences = model.model.tokenizer().encode_batch(&texts).context("tokenizing texts")?;
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let plan = model.model.plan_batches(&lengths);
        let mut sequences: Vec<Option<Vec<u32>>> = sequences.into_iter().map(Some).collect();
        for chunk in &plan {
            let batch = TextBatch {
                ids: chunk.iter().map(|&idx| page[idx].status_text_id).collect(),
                sequences: chunk.iter().map(|&idx| sequences[idx].take().unwrap_or_default()).collect(),
            };
            if sender.blocking_send(batch).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A model worker: one batch at a time, on its own core, taking the next batch
/// from the queue the workers share; after Ctrl-C it finishes the batch it is
/// running and drops the rest.
fn score_batches(
    model: &LoadedModel,
    worker: usize,
    columns: &[usize],
    cancel: &AtomicBool,
    receiver: &std::sync::Mutex<mpsc::Receiver<TextBatch>>,
    sender: &mpsc::Sender<Vec<ScoreRow>>,
) -> anyhow::Result<()> {
    loop {
        // The lock is held while waiting, so one worker waits on the queue
        // and the others on the lock.
        let next = match receiver.lock() {
            Ok(mut receiver) => receiver.blocking_recv(),
            Err(_) => anyhow::bail!("another model worker panicked"),
        };
        let Some(batch) = next else {
            return Ok(());
        };
        if cancel.load(Ordering::SeqCst) {
            return Ok(());
        }
        let token_batch = model.model.batch(&batch.sequences).context("building a batch for the model")?;
        let outputs = model.model.forward_on(worker, &token_batch);
        let rows = batch
            .ids
            .iter()
            .zip(outputs)
            .map(|(&status_text_id, output)| ScoreRow {
                status_text_id,
                scores: columns.iter().map(|&idx| f64::from(output[idx])).collect(),
            })
            .collect();
        if sender.blocking_send(rows).is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_of_other_checkpoints_is_said_before_it_is_mixed() {
        let ours = "a".repeat(64);
        let used = |sha256: Option<String>, n_texts: u64| CheckpointUse {
            checkpoint_sha256: sha256,
            n_texts,
            first_scored_at: None,
            last_scored_at: None,
        };
        assert_eq!(other_checkpoints(&[], &ours, "t", 5), None, "an empty table");
        assert_eq!(other_checkpoints(&[used(Some(ours.clone()), 3)], &ours, "t", 5), None, "a run resumed");
        let pipeline = other_checkpoints(&[used(None, 20), used(Some(ours.clone()), 3)], &ours, "t", 5)
            .expect("the pipeline's rows");
        assert!(pipeline.starts_with("note: t holds 20 texts scored by the Python pipeline"), "{pipeline}");
        assert!(pipeline.contains("the scores of 2 checkpoints"), "{pipeline}");
        assert!(pipeline.ends_with("`toxcli verify --scored-by unrecorded` rescores a sample of the pipeline's to check that they belong to their texts"), "{pipeline}");
        let toxscores = other_checkpoints(&[used(Some("b".repeat(64)), 2)], &ours, "t", 5).expect("another");
        assert!(!toxscores.contains("verify"), "{toxscores}");
        let other = "b".repeat(64);
        let mixed = other_checkpoints(&[used(Some(other), 20), used(None, 1)], &ours, "t", 28).expect("another");
        assert!(
            mixed.starts_with("warning: t holds 20 texts scored with checkpoint sha256 bbbbbbbbbbbb, 1 texts"),
            "{mixed}"
        );
        assert!(mixed.contains("only the 28 texts without a score, with checkpoint sha256 aaaaaaaaaaaa"), "{mixed}");
        assert!(mixed.contains("the scores of 3 checkpoints"), "{mixed}");
    }

    fn shard(text: &str) -> Option<Shard> {
        Some(text.parse().expect("a shard"))
    }

    #[test]
    fn shards_of_another_count_are_refused_while_shards_of_one_run() {
        let folder = tempfile::tempdir().expect("temp dir");
        let database = folder.path().join("toxscore.db");
        let first = lock_scoring(&database, "original", shard("0/2")).expect("0/2");
        let second = lock_scoring(&database, "original", shard("1/2")).expect("1/2 beside it");
        let refused = lock_scoring(&database, "original", shard("0/3")).err().expect("0/3 overlaps 0/2 and 1/2");
        assert!(refused.downcast_ref::<StoreBusy>().is_some(), "{refused:#}");
        assert!(format!("{refused:#}").contains("shards K/2 of model original"), "{refused:#}");
        let other_model = lock_scoring(&database, "unbiased", shard("0/3")).expect("another model's shards");
        assert!(lock_scoring(&database, "original", shard("1/2")).is_err(), "the same shard twice");
        drop((first, second));
        let third = lock_scoring(&database, "original", shard("0/3")).expect("0/3 once the shards of 2 ended");
        assert!(lock_scoring(&database, "original", shard("0/2")).is_err(), "0/2 overlaps 0/3");
        assert!(lock_scoring(&database, "original", None).is_err(), "an unsharded run overlaps every shard");
        drop((third, other_model));
        lock_scoring(&database, "original", None).expect("alone");
    }
}
