//! `cargo xtask bench`: the whole-process benchmark of toxscore against
//! PyTorch Detoxify (issue 6).
//!
//! It builds `toxcli` in release, writes the large fixtures if they are
//! missing (a bert-base-shape `original` checkpoint with random weights and a
//! tweet-like corpus, by `fixtures/generate.py --large`), and runs, each as a
//! separate process under `/usr/bin/time` (peak RSS) with its stdout read as
//! it streams (time to the first score):
//!
//! - `toxcli predict` on the first N texts of the corpus;
//! - `toxcli score --input` into a fresh SQLite file (the whole pipeline:
//!   import, de-duplication, scoring, writes);
//! - with a Python environment holding `detoxify` (`--python` or
//!   `TOXSCORE_BENCH_PYTHON`): `scripts/bench_detoxify.py`, which runs
//!   Detoxify's own `predict` on batches in arrival order ("as users run
//!   it") and on length-sorted batches.
//!
//! The runs alternate, R times, and the table gives medians and the ratios
//! the targets are stated in. The scores of toxscore and Detoxify
//! are compared text by text (max |difference| ≤ 1e-4); a larger difference
//! makes the command fail after printing the table.
//!
//! `--memory-flat` instead scores a 100k-text corpus with the tiny fixture
//! model and samples the process's RSS every 200 ms, to show memory stays
//! flat.
//!
//! Timings never go into tests: this command and the criterion benchmarks
//! are where speed is measured.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask bench [options]

Whole-process benchmark: toxcli against PyTorch Detoxify on a bert-base-shape checkpoint.

options:
  --texts N          texts scored per run, the first N lines of fixtures/large/corpus.txt [default: 2000]
  --batch-size N     texts per model batch, for both [default: 32]
  --repeats R        alternate the runs R times and report medians [default: 2]
  --python PATH      a Python with `detoxify` installed: also run Detoxify
                     (or set TOXSCORE_BENCH_PYTHON); it also writes missing large fixtures
  --skip-build       use target/release/toxcli as it is
  --memory-flat      instead: `toxcli score` on a 100k-text corpus with the tiny model,
                     RSS sampled every 200 ms, reported at 10% and 90% of the run
  --flat-texts N     texts for --memory-flat [default: 100000]
  --device DEVICE    instead: the GPU benchmark, toxscore on DEVICE (wgpu, wgpu:N, cuda, cuda:N)
                     against Detoxify on torch CUDA, f32 and f16 (see `cargo xtask bench --device wgpu --help`)
";

/// Environment variable naming the Python that has `detoxify`.
pub(crate) const PYTHON_VAR: &str = "TOXSCORE_BENCH_PYTHON";
/// Scores must agree within this (the parity target).
pub(crate) const SCORE_TOLERANCE: f64 = 1e-4;
/// Output lines arriving within this of the first belong to the first
/// burst; the steady rate counts from the end of that burst.
const BURST_GAP: Duration = Duration::from_millis(50);
/// RSS sampling period of `--memory-flat`.
const SAMPLE_PERIOD: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct Options {
    n_texts: usize,
    batch_size: usize,
    repeats: usize,
    python: Option<PathBuf>,
    skip_build: bool,
    memory_flat: bool,
    flat_texts: usize,
}

fn parse_options(args: &[String]) -> Result<Option<Options>> {
    let mut options = Options {
        n_texts: 2000,
        batch_size: 32,
        repeats: 2,
        python: std::env::var_os(PYTHON_VAR).filter(|value| !value.is_empty()).map(PathBuf::from),
        skip_build: false,
        memory_flat: false,
        flat_texts: 100_000,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize> {
            let value = args.next().with_context(|| format!("{name} needs a value"))?;
            match value.parse::<usize>() {
                Ok(number) if number > 0 => Ok(number),
                _ => bail!("{name} {value:?}: expected a positive whole number"),
            }
        };
        match arg.as_str() {
            "--texts" => options.n_texts = number("--texts")?,
            "--batch-size" => options.batch_size = number("--batch-size")?,
            "--repeats" => options.repeats = number("--repeats")?,
            "--flat-texts" => options.flat_texts = number("--flat-texts")?,
            "--python" => {
                options.python = Some(PathBuf::from(args.next().context("--python needs a path")?));
            }
            "--skip-build" => options.skip_build = true,
            "--memory-flat" => options.memory_flat = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown option {other:?}\n\n{USAGE}"),
        }
    }
    Ok(Some(options))
}

/// Where everything lives.
pub(crate) struct Paths {
    pub(crate) root: PathBuf,
    pub(crate) toxcli: PathBuf,
    pub(crate) large: PathBuf,
    pub(crate) corpus: PathBuf,
    tiny: PathBuf,
    pub(crate) script: PathBuf,
    pub(crate) work: PathBuf,
}

impl Paths {
    pub(crate) fn new() -> Paths {
        let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir);
        // A copied xtask binary (scripts/gpu-bench.sh) runs in another
        // checkout: the repository it is started in.
        let root = if root.join("Cargo.toml").is_file() { root } else { std::env::current_dir().unwrap_or(root) };
        Paths {
            toxcli: root.join("target/release/toxcli"),
            large: root.join("fixtures/large/original"),
            corpus: root.join("fixtures/large/corpus.txt"),
            tiny: root.join("fixtures/models/bert"),
            script: root.join("scripts/bench_detoxify.py"),
            work: root.join("target/xtask-bench"),
            root,
        }
    }

    /// The `toxcli` model flags for the model in `folder`.
    pub(crate) fn model_args(folder: &Path) -> Vec<OsString> {
        vec![
            "--checkpoint".into(),
            folder.join("checkpoint.ckpt").into(),
            "--hf-config".into(),
            folder.join("config.json").into(),
            "--tokenizer".into(),
            folder.into(),
        ]
    }
}

pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|arg| arg == "--device" || arg.starts_with("--device=")) {
        return crate::bench_gpu::run(args);
    }
    let Some(options) = parse_options(args)? else { return Ok(()) };
    let paths = Paths::new();
    if !Path::new(TIME).is_file() {
        bail!("{TIME} (GNU time) is missing: it measures peak RSS; install it (Debian: apt-get install time)");
    }
    fs::create_dir_all(&paths.work).with_context(|| format!("creating {}", paths.work.display()))?;
    if !options.skip_build {
        build_toxcli(&paths)?;
    }
    if !paths.toxcli.is_file() {
        bail!("{} is missing: run without --skip-build", paths.toxcli.display());
    }
    ensure_large_fixtures(&paths, options.python.as_deref())?;
    if options.memory_flat { memory_flat(&paths, &options) } else { compare_runs(&paths, &options) }
}

fn build_toxcli(paths: &Paths) -> Result<()> {
    eprintln!("xtask: cargo build --release -p toxcli");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&paths.root)
        .args(["build", "--release", "-p", "toxcli"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p toxcli failed ({status})");
    }
    Ok(())
}

pub(crate) fn ensure_large_fixtures(paths: &Paths, python: Option<&Path>) -> Result<()> {
    let needed = ["checkpoint.ckpt", "config.json", "vocab.txt", "tokenizer.json"];
    if needed.iter().all(|name| paths.large.join(name).is_file()) && paths.corpus.is_file() {
        return Ok(());
    }
    let Some(python) = python else {
        bail!(
            "the large fixtures ({} and {}) are missing; give a Python with torch and transformers \
             (--python PATH or {PYTHON_VAR}) to write them, or run \
             `HF_HUB_OFFLINE=1 python fixtures/generate.py --large` yourself",
            paths.large.display(),
            paths.corpus.display()
        );
    };
    eprintln!("xtask: writing the large fixtures: {} fixtures/generate.py --large", python.display());
    let status = Command::new(python)
        .current_dir(&paths.root)
        .args(["fixtures/generate.py", "--large"])
        .env("HF_HUB_OFFLINE", "1")
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    if !status.success() {
        bail!("fixtures/generate.py --large failed ({status})");
    }
    Ok(())
}

/// Reads the corpus, one text per line.
pub(crate) fn read_corpus(paths: &Paths) -> Result<Vec<String>> {
    let text = fs::read_to_string(&paths.corpus).with_context(|| format!("reading {}", paths.corpus.display()))?;
    Ok(text.lines().map(str::to_owned).collect())
}

/// Writes texts one per line (for `predict` and Detoxify).
pub(crate) fn write_lines(path: &Path, texts: &[String]) -> Result<()> {
    let mut out = BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
    for text in texts {
        writeln!(out, "{text}").with_context(|| format!("writing {}", path.display()))?;
    }
    out.flush().with_context(|| format!("writing {}", path.display()))
}

/// Writes texts as a tweets CSV (`status_id,user_id,status_text`) for
/// `toxcli score --input`.
fn write_tweets_csv(path: &Path, texts: &[String]) -> Result<()> {
    let mut out = BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
    writeln!(out, "status_id,user_id,status_text").with_context(|| format!("writing {}", path.display()))?;
    for (text_idx, text) in texts.iter().enumerate() {
        let quoted = text.replace('"', "\"\"");
        writeln!(out, "{},{},\"{quoted}\"", text_idx + 1, text_idx % 1000 + 1)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    out.flush().with_context(|| format!("writing {}", path.display()))
}

pub(crate) const TIME: &str = "/usr/bin/time";

/// What one measured process did.
#[derive(Debug, Clone)]
pub(crate) struct Measurement {
    /// Process start to exit.
    pub(crate) wall: Duration,
    /// Process start to the first line on stdout.
    pub(crate) first_output: Option<Duration>,
    /// Lines on stdout and the time each arrived.
    line_times: Vec<Duration>,
    /// Peak resident set size, KiB (GNU time's %M).
    pub(crate) peak_rss_kib: u64,
    /// User plus system CPU seconds.
    cpu_seconds: f64,
    /// The process's stderr.
    pub(crate) stderr: String,
}

impl Measurement {
    /// Texts per second over the whole process, start-up included.
    pub(crate) fn rate(&self, n_texts: usize) -> f64 {
        n_texts as f64 / self.wall.as_secs_f64()
    }

    /// Lines per second after the first burst of output: the scoring rate
    /// once the model is loaded and the first batch is out.
    pub(crate) fn steady_rate(&self) -> Option<f64> {
        let first = *self.line_times.first()?;
        let last = *self.line_times.last()?;
        // All the output in one burst: there is no steady part to measure.
        let (burst_end, _) = self
            .line_times
            .iter()
            .zip(self.line_times.iter().skip(1))
            .find(|(earlier, later)| **later - **earlier > BURST_GAP)?;
        let burst_end = (*burst_end).max(first);
        let after = self.line_times.iter().filter(|time| **time > burst_end).count();
        let span = last.saturating_sub(burst_end).as_secs_f64();
        (after > 0 && span > 0.0).then(|| after as f64 / span)
    }

    /// Cores kept busy on average.
    fn cores(&self) -> f64 {
        self.cpu_seconds / self.wall.as_secs_f64()
    }
}

/// A run stopped at its time limit ([`measure`]).
#[derive(Debug)]
pub(crate) struct PastLimit {
    pub(crate) label: String,
    pub(crate) limit: Duration,
}

impl std::fmt::Display for PastLimit {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} was stopped at its limit of {:.0} s", self.label, self.limit.as_secs_f64())
    }
}

impl std::error::Error for PastLimit {}

/// Runs `program args` under GNU time, copying its stdout to `stdout_path`
/// as it streams and timing each line. With a `limit`, the run and
/// everything it started are killed once it has run that long, and the
/// error is then a [`PastLimit`].
pub(crate) fn measure(
    label: &str,
    program: &Path,
    args: &[OsString],
    envs: &[(&str, &str)],
    stdout_path: &Path,
    paths: &Paths,
    limit: Option<Duration>,
) -> Result<Measurement> {
    let time_path = paths.work.join(format!("{label}.time"));
    let stderr_path = paths.work.join(format!("{label}.stderr"));
    let stderr_file = File::create(&stderr_path).with_context(|| format!("creating {}", stderr_path.display()))?;
    // Without GNU time (a bare GPU machine, say) the run goes on without
    // its peak RSS and CPU time.
    let timed = Path::new(TIME).is_file();
    let mut command = if timed {
        let mut command = Command::new(TIME);
        command.arg("-f").arg("%M %U %S").arg("-o").arg(&time_path).arg(program);
        command
    } else {
        Command::new(program)
    };
    command
        .current_dir(&paths.root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr_file));
    for (name, value) in envs {
        command.env(name, value);
    }
    if limit.is_some() {
        // Its own process group, so that a stop at the limit reaches all the
        // run started (the program under GNU time, its children), even those
        // started as it is stopped. So Ctrl-C at the terminal stops xtask but
        // not a run with a limit (it still ends at the limit); a run without
        // one stays in xtask's group.
        command.process_group(0);
    }
    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("starting {}", program.display()))?;
    let label_owned = label.to_owned();
    let watchdog = limit.map(|limit| {
        let (finished, waiting) = mpsc::channel::<()>();
        let group = format!("-{}", child.id());
        let watchdog = std::thread::spawn(move || {
            // A message or a hang-up: the run ended in time.
            if waiting.recv_timeout(limit) != Err(RecvTimeoutError::Timeout) {
                return false;
            }
            if let Err(error) = Command::new("kill").args(["-KILL", "--", &group]).status() {
                eprintln!("xtask: could not stop {label_owned} (process group {group}): {error}");
            }
            true
        });
        (finished, watchdog, limit)
    });
    let stdout = child.stdout.take().context("the child's stdout")?;
    let mut out =
        BufWriter::new(File::create(stdout_path).with_context(|| format!("creating {}", stdout_path.display()))?);
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let mut line_times = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).with_context(|| format!("reading the output of {label}"))?;
        if read == 0 {
            break;
        }
        line_times.push(started.elapsed());
        out.write_all(&line).with_context(|| format!("writing {}", stdout_path.display()))?;
    }
    out.flush().with_context(|| format!("writing {}", stdout_path.display()))?;
    let status = child.wait().with_context(|| format!("waiting for {label}"))?;
    let wall = started.elapsed();
    if let Some((finished, watchdog, limit)) = watchdog {
        let _ = finished.send(());
        if watchdog.join().unwrap_or(false) && !status.success() {
            return Err(PastLimit { label: label.to_owned(), limit }.into());
        }
    }
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        // Under GNU time a crash reads as exit status 128 + N: say which signal.
        let signal = fs::read_to_string(&time_path).ok().and_then(|report| ended_by_signal(&report));
        let how = signal.map(|signal| format!(", {signal}")).unwrap_or_default();
        bail!(
            "{label} failed ({status}{how}); the end of its stderr ({}):\n{}",
            stderr_path.display(),
            tail.join("\n")
        );
    }
    if !timed {
        return Ok(Measurement {
            wall,
            first_output: line_times.first().copied(),
            line_times,
            peak_rss_kib: 0,
            cpu_seconds: f64::NAN,
            stderr,
        });
    }
    let time_report = fs::read_to_string(&time_path).with_context(|| format!("reading {}", time_path.display()))?;
    let fields: Vec<&str> =
        time_report.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("").split_whitespace().collect();
    let parsed = match fields.as_slice() {
        [rss, user, system] => rss.parse::<u64>().ok().zip(user.parse::<f64>().ok()).zip(system.parse::<f64>().ok()),
        _ => None,
    };
    let Some(((peak_rss_kib, user), system)) = parsed else {
        bail!("{}: unexpected GNU time output {time_report:?}", time_path.display());
    };
    Ok(Measurement {
        wall,
        first_output: line_times.first().copied(),
        line_times,
        peak_rss_kib,
        cpu_seconds: user + system,
        stderr,
    })
}

#[cfg(test)]
impl Measurement {
    /// A 10 s run of 15 CPU seconds and 1 MiB whose lines came at these
    /// milliseconds.
    pub(crate) fn with_lines_at(line_times_ms: &[u64]) -> Measurement {
        Measurement {
            wall: Duration::from_secs(10),
            first_output: line_times_ms.first().map(|ms| Duration::from_millis(*ms)),
            line_times: line_times_ms.iter().map(|ms| Duration::from_millis(*ms)).collect(),
            peak_rss_kib: 1024,
            cpu_seconds: 15.0,
            stderr: String::new(),
        }
    }
}

pub(crate) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

/// The runs of one variant and its medians.
struct Variant {
    name: &'static str,
    runs: Vec<Measurement>,
}

impl Variant {
    /// Keeps one run's measurement, after printing it.
    fn record(&mut self, repeat: usize, n_texts: usize, run: Measurement) {
        report_run(repeat, self.name, &run, n_texts);
        self.runs.push(run);
    }

    fn median_of(&self, value: impl Fn(&Measurement) -> Option<f64>) -> f64 {
        let mut values: Vec<f64> = self.runs.iter().filter_map(value).collect();
        median(&mut values)
    }
    fn rate(&self, n_texts: usize) -> f64 {
        self.median_of(|run| Some(run.rate(n_texts)))
    }
    fn steady(&self) -> f64 {
        self.median_of(Measurement::steady_rate)
    }
    fn first_output(&self) -> f64 {
        self.median_of(|run| run.first_output.map(|time| time.as_secs_f64()))
    }
    fn rss_mib(&self) -> f64 {
        self.median_of(|run| Some(run.peak_rss_kib as f64 / 1024.0))
    }
    fn cores(&self) -> f64 {
        self.median_of(|run| Some(run.cores()))
    }
}

/// GNU time's note of the signal that ended a program (`Command terminated
/// by signal 11`), in words: `killed by signal 11 (SIGSEGV)`.
fn ended_by_signal(time_report: &str) -> Option<String> {
    let line = time_report.lines().find(|line| line.starts_with("Command terminated by signal "))?;
    let number: u32 = line.rsplit(' ').next()?.trim().parse().ok()?;
    let name = match number {
        4 => " (SIGILL)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => "",
    };
    Some(format!("killed by signal {number}{name}"))
}

/// A `key=value` field of the `BENCH` line that bench_detoxify.py prints.
pub(crate) fn bench_field(stderr: &str, key: &str) -> Option<String> {
    let line = stderr.lines().rev().find(|line| line.starts_with("BENCH "))?;
    line.split_whitespace().find_map(|field| field.strip_prefix(key)?.strip_prefix('=').map(str::to_owned))
}

fn compare_runs(paths: &Paths, options: &Options) -> Result<()> {
    let corpus = read_corpus(paths)?;
    if corpus.len() < options.n_texts {
        bail!("{} holds {} texts, fewer than --texts {}", paths.corpus.display(), corpus.len(), options.n_texts);
    }
    let texts = &corpus[..options.n_texts];
    let n_texts = texts.len();
    let texts_path = paths.work.join(format!("corpus_{n_texts}.txt"));
    let tweets_path = paths.work.join(format!("tweets_{n_texts}.csv"));
    write_lines(&texts_path, texts)?;
    write_tweets_csv(&tweets_path, texts)?;

    let machine = MachineInfo::read(paths);
    println!("{}", machine.describe());
    let batch = options.batch_size.to_string();

    let mut predict_args = vec![OsString::from("predict")];
    predict_args.extend(Paths::model_args(&paths.large));
    predict_args.extend(["--batch-size".into(), batch.clone().into(), "--input".into(), texts_path.clone().into()]);
    let db_path = paths.work.join("score.db");
    let mut score_args = vec![OsString::from("score")];
    score_args.extend(Paths::model_args(&paths.large));
    score_args.extend([
        "--batch-size".into(),
        batch.clone().into(),
        "--input".into(),
        tweets_path.clone().into(),
        "--store".into(),
        format!("sqlite:{}", db_path.display()).into(),
    ]);
    // Cold start on its own: one text, so the first score is the only one.
    let cold_path = paths.work.join("corpus_1.txt");
    write_lines(&cold_path, &texts[..1])?;
    let mut cold_args = vec![OsString::from("predict")];
    cold_args.extend(Paths::model_args(&paths.large));
    cold_args.extend(["--batch-size".into(), batch.clone().into(), "--input".into(), cold_path.clone().into()]);
    let detoxify_args = |order: &str, input: &Path| -> Vec<OsString> {
        vec![
            paths.script.clone().into(),
            "run".into(),
            "--checkpoint".into(),
            paths.large.join("checkpoint.ckpt").into(),
            "--hf-folder".into(),
            paths.large.clone().into(),
            "--input".into(),
            input.into(),
            "--batch-size".into(),
            batch.clone().into(),
            "--order".into(),
            order.into(),
        ]
    };

    println!("commands (from {}):", paths.root.display());
    println!("  {}", shell_line(&paths.toxcli, &predict_args));
    println!("  {}", shell_line(&paths.toxcli, &score_args));
    println!("  {}", shell_line(&paths.toxcli, &cold_args));
    if let Some(python) = &options.python {
        println!("  HF_HUB_OFFLINE=1 {}", shell_line(python, &detoxify_args("arrival", &texts_path)));
        println!("  HF_HUB_OFFLINE=1 {}", shell_line(python, &detoxify_args("sorted", &texts_path)));
        println!("  HF_HUB_OFFLINE=1 {}", shell_line(python, &detoxify_args("arrival", &cold_path)));
    } else {
        println!("  (no --python / {PYTHON_VAR}: Detoxify is not run, so there are no ratios)");
    }
    println!();

    let mut predict = Variant { name: "toxscore predict", runs: Vec::new() };
    let mut score = Variant { name: "toxscore score (sqlite)", runs: Vec::new() };
    let mut as_run = Variant { name: "detoxify as run", runs: Vec::new() };
    let mut sorted = Variant { name: "detoxify sorted", runs: Vec::new() };
    let mut toxscore_cold = Variant { name: "toxscore predict, 1 text", runs: Vec::new() };
    let mut detoxify_cold = Variant { name: "detoxify, 1 text", runs: Vec::new() };
    let mut load_averages = vec![machine.load_average.clone()];
    let offline = [("HF_HUB_OFFLINE", "1")];
    for repeat in 1..=options.repeats {
        let toxcli = &paths.toxcli;
        let predict_out = paths.work.join("toxscore.jsonl");
        predict.record(
            repeat,
            n_texts,
            measure("toxscore-predict", toxcli, &predict_args, &[], &predict_out, paths, None)?,
        );
        let cold_out = paths.work.join("toxscore-cold.jsonl");
        toxscore_cold.record(repeat, 1, measure("toxscore-cold", toxcli, &cold_args, &[], &cold_out, paths, None)?);

        for suffix in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(paths.work.join(format!("score.db{suffix}")));
        }
        let score_out = paths.work.join("score.stdout");
        score.record(repeat, n_texts, measure("toxscore-score", toxcli, &score_args, &[], &score_out, paths, None)?);

        if let Some(python) = &options.python {
            for (variant, label, order, input, texts) in [
                (&mut as_run, "detoxify-arrival", "arrival", &texts_path, n_texts),
                (&mut sorted, "detoxify-sorted", "sorted", &texts_path, n_texts),
                (&mut detoxify_cold, "detoxify-cold", "arrival", &cold_path, 1),
            ] {
                let out = paths.work.join(format!("{label}.jsonl"));
                variant.record(
                    repeat,
                    texts,
                    measure(label, python, &detoxify_args(order, input), &offline, &out, paths, None)?,
                );
            }
        }
        load_averages.push(read_load_average());
    }

    let mut parity = Vec::new();
    if let Some(python) = &options.python {
        for variant in ["arrival", "sorted"] {
            let output = Command::new(python)
                .current_dir(&paths.root)
                .arg(&paths.script)
                .arg("compare")
                .arg("--toxscore")
                .arg(paths.work.join("toxscore.jsonl"))
                .arg("--detoxify")
                .arg(paths.work.join(format!("detoxify-{variant}.jsonl")))
                .output()
                .with_context(|| format!("running {} compare", paths.script.display()))?;
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            if !output.status.success() {
                bail!("comparing the scores failed: {}{}", stdout, String::from_utf8_lossy(&output.stderr));
            }
            let max = stdout
                .split_whitespace()
                .find_map(|field| field.strip_prefix("max_abs_diff="))
                .and_then(|value| value.parse::<f64>().ok())
                .with_context(|| format!("unexpected compare output {stdout:?}"))?;
            let mean = stdout
                .split_whitespace()
                .find_map(|field| field.strip_prefix("mean_abs_diff="))
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(f64::NAN);
            parity.push((variant, max, mean));
        }
    }

    println!();
    println!(
        "results: {n_texts} texts, batch {}, medians of {} run(s); load average {}",
        options.batch_size,
        options.repeats,
        load_averages.join(" -> ")
    );
    println!("{:<26} {:>9} {:>9} {:>12} {:>10} {:>6}", "", "texts/s", "steady/s", "first score", "peak RSS", "cores");
    for (variant, n) in [
        (&predict, n_texts),
        (&score, n_texts),
        (&as_run, n_texts),
        (&sorted, n_texts),
        (&toxscore_cold, 1),
        (&detoxify_cold, 1),
    ] {
        if variant.runs.is_empty() {
            continue;
        }
        println!(
            "{:<26} {:>9} {:>9} {:>12} {:>10} {:>6}",
            variant.name,
            show(variant.rate(n), 2, ""),
            show(variant.steady(), 2, ""),
            show(variant.first_output(), 2, " s"),
            show(variant.rss_mib(), 0, " MiB"),
            show(variant.cores(), 2, "")
        );
    }
    println!("  texts/s: texts over the whole process, start-up included; steady/s: texts per second after the");
    println!("  first burst of output; first score: process start to the first line on stdout (toxcli predict");
    println!(
        "  prints after its first 8 texts, then after each chunk of 2,048); cores: (user + system CPU seconds) / wall seconds"
    );
    for variant in [&as_run, &sorted, &detoxify_cold] {
        let details: Vec<String> = variant
            .runs
            .iter()
            .map(|run| {
                ["import_s", "load_s", "threads"]
                    .iter()
                    .map(|key| format!("{key}={}", bench_field(&run.stderr, key).unwrap_or_else(|| "?".into())))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if !details.is_empty() {
            println!("  {}: {}", variant.name, details.join("; "));
        }
    }

    let binary_size = fs::metadata(&paths.toxcli).map(|meta| meta.len()).unwrap_or(0);
    println!();
    println!("release binary {}: {:.1} MB", paths.toxcli.display(), binary_size as f64 / 1e6);

    let mut failed = false;
    if !as_run.runs.is_empty() {
        println!();
        println!("ratios (toxscore predict against Detoxify), target in brackets:");
        let line = |name: &str, value: f64, target: &str, met: bool| {
            println!(
                "  {name:<46} {:>7}  [{target}] {}",
                show(value, 2, "x"),
                if !value.is_finite() {
                    "n/a"
                } else if met {
                    "met"
                } else {
                    "NOT met"
                }
            );
        };
        let rate_as_run = predict.rate(n_texts) / as_run.rate(n_texts);
        let rate_sorted = predict.rate(n_texts) / sorted.rate(n_texts);
        line("throughput / Detoxify as run", rate_as_run, ">= 2.0", rate_as_run >= 2.0);
        line("throughput / Detoxify sorted", rate_sorted, ">= 1.1", rate_sorted >= 1.1);
        let steady_as_run = predict.steady() / as_run.steady();
        let steady_sorted = predict.steady() / sorted.steady();
        line("steady throughput / Detoxify as run", steady_as_run, ">= 2.0", steady_as_run >= 2.0);
        line("steady throughput / Detoxify sorted", steady_sorted, ">= 1.1", steady_sorted >= 1.1);
        let rss = predict.rss_mib() / as_run.rss_mib().min(sorted.rss_mib());
        line("peak RSS / Detoxify's (its smaller variant)", rss, "<= 0.45", rss <= 0.45);
        let first = predict.first_output() / as_run.first_output();
        line("first score in the run / Detoxify as run", first, "<= 0.3", first <= 0.3);
        let cold = toxscore_cold.first_output() / detoxify_cold.first_output();
        line("cold start, 1 text / Detoxify's", cold, "<= 0.3", cold <= 0.3);
        for (variant, max, mean) in &parity {
            println!(
                "  scores against Detoxify {variant:<8}: max |diff| {max:.2e}, mean {mean:.2e} [<= {SCORE_TOLERANCE:.0e}] {}",
                if *max <= SCORE_TOLERANCE { "met" } else { "NOT met" }
            );
            failed |= *max > SCORE_TOLERANCE;
        }
    }
    println!("outputs and logs: {}", paths.work.display());
    if failed {
        bail!("toxscore's scores differ from Detoxify's by more than {SCORE_TOLERANCE:.0e}");
    }
    Ok(())
}

/// A figure with its unit, or `-` when there is none (NaN).
pub(crate) fn show(value: f64, decimals: usize, unit: &str) -> String {
    if value.is_finite() { format!("{value:.decimals$}{unit}") } else { "-".to_owned() }
}

fn report_run(repeat: usize, name: &str, run: &Measurement, n_texts: usize) {
    eprintln!(
        "xtask: run {repeat}: {name}: {:.1} s, {:.2} texts/s, first score {}, peak RSS {:.0} MiB, {:.2} cores",
        run.wall.as_secs_f64(),
        run.rate(n_texts),
        show(run.first_output.map_or(f64::NAN, |time| time.as_secs_f64()), 2, " s"),
        run.peak_rss_kib as f64 / 1024.0,
        run.cores()
    );
}

/// A command line a reader can paste (paths relative to the root when
/// inside it).
pub(crate) fn shell_line(program: &Path, args: &[OsString]) -> String {
    let root = Paths::new().root;
    let show = |value: &OsString| {
        let text = value.to_string_lossy().into_owned();
        let text = Path::new(&text).strip_prefix(&root).map(|path| path.display().to_string()).unwrap_or(text);
        if text.contains(' ') { format!("'{text}'") } else { text }
    };
    std::iter::once(show(&program.as_os_str().to_owned())).chain(args.iter().map(show)).collect::<Vec<_>>().join(" ")
}

/// The machine: cores, CPU model, load.
pub(crate) struct MachineInfo {
    cores: usize,
    cpu_model: String,
    load_average: String,
    date: String,
}

impl MachineInfo {
    pub(crate) fn read(_paths: &Paths) -> MachineInfo {
        let cpu_model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let date = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .ok()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .unwrap_or_default();
        MachineInfo {
            cores: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            cpu_model,
            load_average: read_load_average(),
            date,
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "machine: {} cores (nproc), {}; load average {} at {}",
            self.cores, self.cpu_model, self.load_average, self.date
        )
    }
}

/// The 1-minute load average.
fn read_load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// One reading of `/proc/PID/status`, sizes in KiB.
#[derive(Debug, Clone, Copy, Default)]
struct RssSample {
    seconds: f64,
    rss: u64,
    hwm: u64,
    anon: u64,
    file: u64,
}

/// `--memory-flat`: scores a large distinct-text corpus with the tiny model
/// and samples the scorer's RSS, to show memory does not grow with the
/// number of texts scored.
fn memory_flat(paths: &Paths, options: &Options) -> Result<()> {
    let corpus = read_corpus(paths)?;
    if corpus.is_empty() {
        bail!("{} holds no text", paths.corpus.display());
    }
    // Distinct texts: the corpus, then the corpus again with a suffix per
    // round, so de-duplication keeps every one of them.
    let mut seen = HashSet::with_capacity(options.flat_texts);
    let mut texts = Vec::with_capacity(options.flat_texts);
    let mut text_idx = 0usize;
    while texts.len() < options.flat_texts {
        let base = &corpus[text_idx % corpus.len()];
        let round = text_idx / corpus.len();
        let mut text = if round == 0 { base.clone() } else { format!("{base} #{round}") };
        if seen.contains(&text) {
            text = format!("{text} ({text_idx})");
        }
        if seen.insert(text.clone()) {
            texts.push(text);
        }
        text_idx += 1;
    }
    let tweets_path = paths.work.join(format!("tweets_flat_{}.csv", texts.len()));
    write_tweets_csv(&tweets_path, &texts)?;
    let db_path = paths.work.join("flat.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(paths.work.join(format!("flat.db{suffix}")));
    }
    let store = format!("sqlite:{}", db_path.display());
    println!("{}", MachineInfo::read(paths).describe());

    // Import and de-duplicate first, so that the measured process only scores.
    for args in [
        vec![
            OsString::from("import"),
            "--input".into(),
            tweets_path.clone().into(),
            "--store".into(),
            store.clone().into(),
        ],
        vec![OsString::from("migrate"), "--store".into(), store.clone().into()],
    ] {
        let output = Command::new(&paths.toxcli)
            .current_dir(&paths.root)
            .args(&args)
            .output()
            .with_context(|| format!("running {}", paths.toxcli.display()))?;
        if !output.status.success() {
            bail!("{} failed: {}", shell_line(&paths.toxcli, &args), String::from_utf8_lossy(&output.stderr));
        }
    }

    let mut score_args = vec![OsString::from("score")];
    score_args.extend(Paths::model_args(&paths.tiny));
    score_args.extend(["--batch-size".into(), options.batch_size.to_string().into(), "--store".into(), store.into()]);
    println!("command: {}", shell_line(&paths.toxcli, &score_args));
    let stderr_path = paths.work.join("flat.stderr");
    let stderr_file = File::create(&stderr_path).with_context(|| format!("creating {}", stderr_path.display()))?;
    let started = Instant::now();
    let mut child = Command::new(&paths.toxcli)
        .current_dir(&paths.root)
        .args(&score_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr_file))
        .spawn()
        .with_context(|| format!("starting {}", paths.toxcli.display()))?;
    let status_path = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut samples: Vec<RssSample> = Vec::new();
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for toxcli score")? {
            break status;
        }
        let mut text = String::new();
        if File::open(&status_path).and_then(|mut file| file.read_to_string(&mut text)).is_ok() {
            let field = |name: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(name))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|value| value.parse::<u64>().ok())
            };
            if let (Some(rss), Some(hwm), Some(anon), Some(file)) =
                (field("VmRSS:"), field("VmHWM:"), field("RssAnon:"), field("RssFile:"))
            {
                samples.push(RssSample { seconds: started.elapsed().as_secs_f64(), rss, hwm, anon, file });
            }
        }
        std::thread::sleep(SAMPLE_PERIOD);
    };
    let wall = started.elapsed().as_secs_f64();
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    if !status.success() {
        bail!("toxcli score failed ({status}):\n{stderr}");
    }
    if samples.len() < 10 {
        bail!("the run took {wall:.1} s, too short for RSS samples every 200 ms: use a larger --flat-texts");
    }
    // By time: the measured process only scores (the import ran before), at
    // a steady rate, so 10% of the time is about 10% of the texts.
    let at = |fraction: f64| {
        let target = wall * fraction;
        samples
            .iter()
            .min_by(|a, b| (a.seconds - target).abs().total_cmp(&(b.seconds - target).abs()))
            .copied()
            .unwrap_or_default()
    };
    let (at_10, at_90) = (at(0.1), at(0.9));
    let peak = samples.iter().map(|sample| sample.hwm).max().unwrap_or(0);
    let change = (at_90.rss as f64 - at_10.rss as f64) / at_10.rss as f64;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!();
    println!(
        "memory-flat: {} texts scored by the tiny model in {wall:.1} s ({:.0} texts/s)",
        texts.len(),
        texts.len() as f64 / wall
    );
    for (label, sample) in [("10%", at_10), ("90%", at_90)] {
        println!(
            "  RSS at {label} of the run ({:.1} s): {:.1} MiB (anonymous {:.1}, file-backed {:.1})",
            sample.seconds,
            mib(sample.rss),
            mib(sample.anon),
            mib(sample.file)
        );
    }
    println!(
        "  change {:+.1}% [target within 10%] {}; peak (VmHWM) {:.1} MiB",
        change * 100.0,
        if change.abs() <= 0.10 { "met" } else { "NOT met" },
        mib(peak)
    );
    println!("  (10% and 90% are taken by time: the process only scores, at a steady rate)");
    let samples_path = paths.work.join("flat-rss.tsv");
    let mut out =
        BufWriter::new(File::create(&samples_path).with_context(|| format!("creating {}", samples_path.display()))?);
    writeln!(out, "seconds\tvm_rss_kib\tvm_hwm_kib\trss_anon_kib\trss_file_kib")?;
    for sample in &samples {
        writeln!(out, "{:.2}\t{}\t{}\t{}\t{}", sample.seconds, sample.rss, sample.hwm, sample.anon, sample.file)?;
    }
    out.flush().with_context(|| format!("writing {}", samples_path.display()))?;
    println!("  samples: {}", samples_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(line_times_ms: &[u64]) -> Measurement {
        Measurement::with_lines_at(line_times_ms)
    }

    fn paths_in(folder: &Path) -> Paths {
        let at = |name: &str| folder.join(name);
        Paths {
            root: folder.to_owned(),
            toxcli: at("toxcli"),
            large: at("large"),
            corpus: at("corpus.txt"),
            tiny: at("tiny"),
            script: at("script.py"),
            work: folder.to_owned(),
        }
    }

    fn sh(script: &str) -> Vec<OsString> {
        vec!["-c".into(), script.into()]
    }

    #[test]
    fn a_run_past_its_limit_is_stopped_with_what_it_started() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let paths = paths_in(folder.path());
        let out = folder.path().join("out.txt");
        // A zero limit stops the run at once; `late` would come only from a
        // process below the one started that outlived the stop (the shell
        // under GNU time, or its `sleep` holding the output open).
        let error =
            measure("slow", Path::new("sh"), &sh("sleep 30; echo late"), &[], &out, &paths, Some(Duration::ZERO))
                .expect_err("stopped");
        let past = error.downcast_ref::<PastLimit>().expect("a PastLimit");
        assert_eq!(past.label, "slow");
        assert_eq!(error.to_string(), "slow was stopped at its limit of 0 s");
        assert_eq!(fs::read_to_string(&out).expect("the output file"), "");
    }

    #[test]
    fn a_run_within_its_limit_or_failing_is_not_past_it() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let paths = paths_in(folder.path());
        let out = folder.path().join("out.txt");
        let hour = Some(Duration::from_secs(3600));
        let run = measure("quick", Path::new("sh"), &sh("echo a; echo b"), &[], &out, &paths, hour).expect("runs");
        assert_eq!(run.line_times.len(), 2);
        assert_eq!(fs::read_to_string(&out).expect("the output file"), "a\nb\n");
        let error = measure("broken", Path::new("sh"), &sh("echo oops >&2; exit 3"), &[], &out, &paths, hour)
            .expect_err("fails");
        assert!(error.downcast_ref::<PastLimit>().is_none());
        assert!(error.to_string().contains("broken failed") && error.to_string().contains("oops"), "{error}");
    }

    #[test]
    fn a_run_that_crashes_names_its_signal() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let paths = paths_in(folder.path());
        let out = folder.path().join("out.txt");
        let error =
            measure("crash", Path::new("sh"), &sh("kill -SEGV $$"), &[], &out, &paths, None).expect_err("crashes");
        // Under GNU time, exit status 139 and its note; without, Rust's own words.
        assert!(error.to_string().contains("11 (SIGSEGV)"), "{error}");
        assert_eq!(
            ended_by_signal("Command terminated by signal 6\n0 0.01 0.00\n").as_deref(),
            Some("killed by signal 6 (SIGABRT)")
        );
        assert_eq!(ended_by_signal("Command terminated by signal 33").as_deref(), Some("killed by signal 33"));
        assert_eq!(ended_by_signal("1024 0.10 0.02\n"), None);
    }

    #[test]
    fn the_steady_rate_counts_after_the_first_burst() {
        // Two lines at once at 1 s, then one line a second for 4 s.
        let run = measurement(&[1000, 1001, 2000, 3000, 4000, 5000]);
        let rate = run.steady_rate().expect("a steady part");
        // 4 lines over the 3.999 s from the end of the burst to the last line.
        assert!((rate - 4.0 / 3.999).abs() < 1e-9, "{rate}");
        assert!((run.cores() - 1.5).abs() < 1e-9);
        assert!((run.rate(20) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn output_in_one_burst_has_no_steady_rate() {
        assert_eq!(measurement(&[1000, 1001, 1002]).steady_rate(), None);
        assert_eq!(measurement(&[]).steady_rate(), None);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
        assert_eq!(show(f64::NAN, 2, " s"), "-");
        assert_eq!(show(1.234, 2, " s"), "1.23 s");
    }

    #[test]
    fn the_python_summary_line_is_read() {
        let stderr =
            "Loading weights: 100%\nBENCH import_s=3.1 load_s=4.2 first_batch_s=9 score_s=100 texts=5 threads=2\n";
        assert_eq!(bench_field(stderr, "load_s").as_deref(), Some("4.2"));
        assert_eq!(bench_field(stderr, "threads").as_deref(), Some("2"));
        assert_eq!(bench_field(stderr, "missing"), None);
        assert_eq!(bench_field("no summary", "load_s"), None);
    }

    #[test]
    fn options_are_parsed_and_bad_values_named() {
        let args = |list: &[&str]| list.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
        let options = parse_options(&args(&["--texts", "64", "--repeats", "3", "--skip-build", "--python", "/py"]))
            .expect("valid options")
            .expect("not --help");
        assert_eq!((options.n_texts, options.repeats, options.batch_size), (64, 3, 32));
        assert!(options.skip_build && !options.memory_flat);
        assert_eq!(options.python.as_deref(), Some(Path::new("/py")));
        for (bad, expected) in [
            (vec!["--texts", "0"], "--texts \"0\""),
            (vec!["--batch-size", "many"], "--batch-size \"many\""),
            (vec!["--texts"], "--texts needs a value"),
            (vec!["--fast"], "unknown option \"--fast\""),
        ] {
            let error = parse_options(&args(&bad)).expect_err("rejected");
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    #[test]
    fn the_tweets_csv_quotes_every_text() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let path = folder.path().join("tweets.csv");
        write_tweets_csv(&path, &["plain".to_owned(), "say \"hi\", then go".to_owned()]).expect("written");
        let text = fs::read_to_string(&path).expect("read back");
        assert_eq!(text, "status_id,user_id,status_text\n1,1,\"plain\"\n2,2,\"say \"\"hi\"\", then go\"\n");
    }
}
