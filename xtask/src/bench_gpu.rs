//! `cargo xtask bench --device wgpu|cuda`: toxscore on a GPU against
//! Detoxify on torch CUDA, on the same GPU (issue #16).
//!
//! Each repeat runs, one after the other and each as its own process:
//! `toxcli predict --device D --precision P` and Detoxify's own `predict`
//! (`scripts/bench_detoxify.py run --device cuda:N`, in arrival order and
//! length-sorted), for P = f32 then f16 (Detoxify's model halved with
//! `model.model.half()`, as torch users do). Every run scores the same
//! texts: the large corpus (`fixtures/large/corpus.txt`, 10,000 tweets),
//! continued past its end with its own lines suffixed ` #2`, ` #3` ... up to
//! `--texts` (default 20,000), so that every text is distinct.
//!
//! Measured per run: texts per second over the whole process (start-up
//! included) and after the first burst of output, the time to the first
//! score, the peak RSS (GNU time), and the peak device memory: the GPU's
//! used memory (`nvidia-smi`, sampled every 100 ms) above what it used
//! before the run, the same gauge for both. Then it prints the ratios the
//! issue's targets name, the f16 drift (max and mean |f16 - f32|, agreement
//! of the 0.5 decision) and the projection for 13.5M texts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::{
    Measurement, PYTHON_VAR, PastLimit, Paths, SCORE_TOLERANCE, TIME, bench_field, ensure_large_fixtures, measure,
    median, read_corpus, shell_line, show, write_lines,
};

const USAGE: &str = "usage: cargo xtask bench --device DEVICE [options]

GPU benchmark: toxcli predict on DEVICE against Detoxify on torch CUDA, f32 and f16, alternating.

options:
  --device LIST       toxscore's devices, each a contender: wgpu, wgpu:N, cuda, cuda:N,
                      or a list (cuda,wgpu)
  --torch-device D    Detoxify's device [default: cuda:N for a cuda:N in the list, else cuda]
  --texts N           texts per run [default: 20000]
  --batch-size N      texts per batch, for both [default: 64]
  --precision LIST    f32, f16 or f32,f16 [default: f32,f16]
  --repeats R         alternate the runs R times and report medians [default: 2]
  --python PATH       a Python with torch (CUDA) and `detoxify` (or set TOXSCORE_BENCH_PYTHON);
                      without it only toxscore runs
  --toxcli PATH       a toxcli built with the devices' features, and f16-experiment for f16
                      [default: build target/release/toxcli with `--features DEVICES,fusion,f16-experiment`]
  --toxcli-spirv PATH also run this toxcli, built with `vulkan` (SPIR-V kernels instead of WGSL),
                      on the first wgpu device of the list, as one more contender
  --deadline SECONDS  start no run after SECONDS from the start, stop the one under way there,
                      and report what finished (for a machine lent by the minute); each run is
                      then in its own process group, which Ctrl-C does not reach

A contender that fails is reported and left out of later repeats; the others go on.
";

/// The scale: distinct texts of the first user's dataset.
const MISSION_TEXTS: f64 = 13.5e6;
/// Device-memory sampling period.
const GPU_SAMPLE_PERIOD: Duration = Duration::from_millis(100);
/// The f16 drift up to which f16 is worth keeping (issue #16).
const F16_TOLERANCE: f64 = 1e-3;

struct Options {
    /// toxscore's devices, in order: each is a contender.
    devices: Vec<String>,
    torch_device: String,
    n_texts: usize,
    batch_size: usize,
    precisions: Vec<String>,
    repeats: usize,
    python: Option<PathBuf>,
    toxcli: Option<PathBuf>,
    /// A second toxcli, built with `vulkan` (SPIR-V kernels), to race the
    /// WGSL one.
    toxcli_spirv: Option<PathBuf>,
    /// No run starts after this, counted from the start, and the one under
    /// way is stopped there.
    deadline: Option<Duration>,
}

impl Options {
    /// The first wgpu device: where the SPIR-V build runs.
    fn wgpu_device(&self) -> Option<&str> {
        self.devices.iter().map(String::as_str).find(|device| device_kind(device) == "wgpu")
    }
}

/// `wgpu` of `wgpu:1`.
fn device_kind(device: &str) -> &str {
    device.split(':').next().unwrap_or(device)
}

/// A toxscore contender: one build on one device.
struct Contender {
    /// Its rows in the table, before the precision: `toxscore cuda`,
    /// `toxscore wgpu spirv`.
    name: String,
    /// The stem of its files: `toxscore-cuda`, `toxscore-wgpu1-spirv`.
    stem: String,
    binary: PathBuf,
    device: String,
    /// The contender this one races, for the SPIR-V build: the WGSL one
    /// on the same device.
    races: Option<String>,
}

/// One contender per device with `toxcli`, then the SPIR-V build on the
/// first wgpu device.
fn contenders(options: &Options, toxcli: &Path) -> Vec<Contender> {
    let stem = |device: &str| format!("toxscore-{}", device.replace(':', ""));
    let mut contenders: Vec<Contender> = options
        .devices
        .iter()
        .map(|device| Contender {
            name: format!("toxscore {device}"),
            stem: stem(device),
            binary: toxcli.to_owned(),
            device: device.clone(),
            races: None,
        })
        .collect();
    if let (Some(spirv), Some(device)) = (&options.toxcli_spirv, options.wgpu_device()) {
        contenders.push(Contender {
            name: format!("toxscore {device} spirv"),
            stem: format!("{}-spirv", stem(device)),
            binary: spirv.clone(),
            device: device.to_owned(),
            races: Some(format!("toxscore {device}")),
        });
    }
    contenders
}

fn parse_options(args: &[String]) -> Result<Option<Options>> {
    let mut device = None;
    let mut torch_device = None;
    let mut options = Options {
        devices: Vec::new(),
        torch_device: String::new(),
        n_texts: 20_000,
        batch_size: 64,
        precisions: vec!["f32".into(), "f16".into()],
        repeats: 2,
        python: std::env::var_os(PYTHON_VAR).filter(|value| !value.is_empty()).map(PathBuf::from),
        toxcli: None,
        toxcli_spirv: None,
        deadline: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value =
            || inline.clone().or_else(|| args.next().cloned()).with_context(|| format!("{flag} needs a value"));
        let positive = |name: &str, value: String| -> Result<usize> {
            match value.parse::<usize>() {
                Ok(number) if number > 0 => Ok(number),
                _ => bail!("{name} {value:?}: expected a positive whole number"),
            }
        };
        match flag {
            "--device" => device = Some(value()?),
            "--torch-device" => torch_device = Some(value()?),
            "--texts" => options.n_texts = positive(flag, value()?)?,
            "--batch-size" => options.batch_size = positive(flag, value()?)?,
            "--repeats" => options.repeats = positive(flag, value()?)?,
            "--precision" => {
                options.precisions = value()?.split(',').map(|name| name.trim().to_owned()).collect();
                if let Some(bad) = options.precisions.iter().find(|name| !matches!(name.as_str(), "f32" | "f16")) {
                    bail!("--precision {bad:?}: expected f32, f16 or f32,f16");
                }
            }
            "--python" => options.python = Some(PathBuf::from(value()?)),
            "--toxcli" => options.toxcli = Some(PathBuf::from(value()?)),
            "--toxcli-spirv" => options.toxcli_spirv = Some(PathBuf::from(value()?)),
            "--deadline" => options.deadline = Some(Duration::from_secs(positive(flag, value()?)? as u64)),
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown option {other:?}\n\n{USAGE}"),
        }
    }
    let device: String = device.context("--device is needed")?;
    options.devices = device.split(',').map(|name| name.trim().to_owned()).collect();
    for device in &options.devices {
        if !matches!(device_kind(device), "wgpu" | "cuda") {
            bail!("--device {device:?}: the GPU benchmark runs on wgpu[:N] or cuda[:N] (or a list: cuda,wgpu)");
        }
    }
    if let Some(repeated) = options
        .devices
        .iter()
        .enumerate()
        .find_map(|(idx, device)| options.devices[..idx].contains(device).then_some(device))
    {
        bail!("--device lists {repeated:?} twice");
    }
    if options.toxcli_spirv.is_some() && options.wgpu_device().is_none() {
        bail!("--toxcli-spirv races wgpu's two shader languages: it needs a wgpu[:N] in --device");
    }
    // Detoxify on the GPU toxscore's CUDA device is on, else on torch's default.
    options.torch_device =
        torch_device.unwrap_or_else(|| match options.devices.iter().find_map(|device| device.strip_prefix("cuda:")) {
            Some(index) => format!("cuda:{index}"),
            None => "cuda".to_owned(),
        });
    Ok(Some(options))
}

/// The corpus, continued past its end with suffixed copies of its lines,
/// up to `n_texts` distinct texts.
fn texts_for(corpus: &[String], n_texts: usize) -> Vec<String> {
    (0..n_texts)
        .map(|idx| {
            let line = &corpus[idx % corpus.len()];
            match idx / corpus.len() {
                0 => line.clone(),
                round => format!("{line} #{}", round + 1),
            }
        })
        .collect()
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(options) = parse_options(args)? else { return Ok(()) };
    let started = Instant::now();
    let paths = Paths::new();
    if !Path::new(TIME).is_file() {
        eprintln!("xtask: {TIME} (GNU time) is missing: no peak RSS figures");
    }
    std::fs::create_dir_all(&paths.work).with_context(|| format!("creating {}", paths.work.display()))?;
    // A run compares only what it wrote: an earlier run's f16 or SPIR-V
    // scores (other texts, other count) must not meet this run's f32 ones.
    remove_earlier_outputs(&paths.work)?;
    let toxcli = match &options.toxcli {
        Some(path) => path.clone(),
        None => {
            let mut kinds: Vec<&str> = options.devices.iter().map(|device| device_kind(device)).collect();
            kinds.sort_unstable();
            kinds.dedup();
            build_toxcli(&paths, &kinds)?;
            paths.toxcli.clone()
        }
    };
    ensure_large_fixtures(&paths, options.python.as_deref())?;
    let corpus = read_corpus(&paths)?;
    if corpus.is_empty() {
        bail!("{} is empty", paths.corpus.display());
    }
    let texts = texts_for(&corpus, options.n_texts);
    let n_texts = texts.len();
    let texts_path = paths.work.join(format!("gpu_corpus_{n_texts}.txt"));
    write_lines(&texts_path, &texts)?;
    let gpu_index = options.torch_device.split_once(':').map_or("0", |(_, index)| index).to_owned();

    println!("{}", crate::bench::MachineInfo::read(&paths).describe());
    println!(
        "gpu: {}",
        nvidia_smi(&["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], &gpu_index)
            .unwrap_or_else(|| "nvidia-smi not available: no device-memory figures".to_owned())
    );
    let batch = options.batch_size.to_string();
    let toxscore_args = |device: &str, precision: &str| -> Vec<OsString> {
        let mut args = vec![OsString::from("predict")];
        args.extend(Paths::model_args(&paths.large));
        args.extend(["--device", device, "--precision", precision, "--batch-size", &batch].iter().map(OsString::from));
        args.extend(["--input".into(), texts_path.clone().into()]);
        args
    };
    let detoxify_args = |order: &str, precision: &str| -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![paths.script.clone().into(), "run".into()];
        args.extend(["--checkpoint".into(), paths.large.join("checkpoint.ckpt").into()]);
        args.extend(["--hf-folder".into(), paths.large.clone().into(), "--input".into(), texts_path.clone().into()]);
        args.extend(
            ["--batch-size", &batch, "--order", order, "--device", &options.torch_device, "--precision", precision]
                .iter()
                .map(OsString::from),
        );
        args
    };
    let contenders = contenders(&options, &toxcli);
    println!("commands (from {}):", paths.root.display());
    for precision in &options.precisions {
        for contender in &contenders {
            println!("  {}", shell_line(&contender.binary, &toxscore_args(&contender.device, precision)));
        }
        if let Some(python) = &options.python {
            println!("  HF_HUB_OFFLINE=1 {}", shell_line(python, &detoxify_args("arrival", precision)));
        }
    }
    if let Some(python) = &options.python {
        println!("  HF_HUB_OFFLINE=1 {}", shell_line(python, &detoxify_args("sorted", "f32")));
    } else {
        println!("  (no --python / {PYTHON_VAR}: Detoxify is not run, so there are no ratios)");
    }
    println!();

    // One repeat's runs, in order: per precision, the toxscore contenders,
    // then Detoxify (as run, and length-sorted in f32).
    let offline: &'static [(&'static str, &'static str)] = &[("HF_HUB_OFFLINE", "1")];
    let mut plan: Vec<Planned> = Vec::new();
    for precision in &options.precisions {
        for contender in &contenders {
            plan.push(Planned {
                name: format!("{} {precision}", contender.name),
                label: format!("gpu-{}-{precision}", contender.stem),
                program: contender.binary.clone(),
                args: toxscore_args(&contender.device, precision),
                envs: &[],
            });
        }
        if let Some(python) = &options.python {
            let orders: &[&str] = if precision == "f32" { &["arrival", "sorted"] } else { &["arrival"] };
            for order in orders {
                plan.push(Planned {
                    name: format!("detoxify {} {order} {precision}", options.torch_device),
                    label: format!("gpu-detoxify-{order}-{precision}"),
                    program: python.clone(),
                    args: detoxify_args(order, precision),
                    envs: offline,
                });
            }
        }
    }
    let outcome = run_alternating(&plan, options.repeats, options.deadline, started, |planned, limit| {
        // Written aside and renamed once the run succeeds, so that a stopped
        // or failed run leaves an earlier repeat's output whole.
        let partial = paths.work.join(format!("{}.partial", planned.label));
        let result = with_device_memory(&gpu_index, || {
            measure(&planned.label, &planned.program, &planned.args, planned.envs, &partial, &paths, limit)
        });
        let (run, peak) = result.inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })?;
        let out = paths.work.join(format!("{}.jsonl", planned.label));
        std::fs::rename(&partial, &out)
            .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
        eprintln!(
            "xtask: {}: {:.1} s, {:.1} texts/s, first score {}, device memory {}",
            planned.name,
            run.wall.as_secs_f64(),
            run.rate(n_texts),
            show(run.first_output.map_or(f64::NAN, |time| time.as_secs_f64()), 2, " s"),
            show(peak.unwrap_or(f64::NAN), 0, " MiB")
        );
        if let Some(peak) = bench_field(&run.stderr, "device_peak_mib").filter(|peak| peak.parse::<f64>().is_ok()) {
            eprintln!("xtask: {}: torch's own peak allocation {peak} MiB", planned.name);
        }
        Ok((run, peak))
    });
    let Outcome { variants, failures, stopped } = outcome;

    println!();
    println!("results: {n_texts} texts, batch {}, medians of {} run(s)", options.batch_size, options.repeats);
    println!(
        "{:<34} {:>9} {:>9} {:>12} {:>13} {:>10}",
        "", "texts/s", "steady/s", "first score", "device mem", "peak RSS"
    );
    let median_of = |values: &mut Vec<f64>| median(values);
    let rate = |name: &str| -> f64 {
        variants
            .iter()
            .find(|(existing, _, _)| existing == name)
            .map_or(f64::NAN, |(_, runs, _)| median_of(&mut runs.iter().map(|run| run.rate(n_texts)).collect()))
    };
    for (name, runs, peaks) in &variants {
        println!(
            "{:<34} {:>9} {:>9} {:>12} {:>13} {:>10}",
            name,
            show(median_of(&mut runs.iter().map(|run| run.rate(n_texts)).collect()), 1, ""),
            show(median_of(&mut runs.iter().filter_map(Measurement::steady_rate).collect()), 1, ""),
            show(
                median_of(&mut runs.iter().filter_map(|run| run.first_output.map(|time| time.as_secs_f64())).collect()),
                2,
                " s"
            ),
            show(median_of(&mut peaks.clone()), 0, " MiB"),
            show(
                median_of(
                    &mut runs
                        .iter()
                        .filter(|run| run.peak_rss_kib > 0)
                        .map(|run| run.peak_rss_kib as f64 / 1024.0)
                        .collect()
                ),
                0,
                " MiB"
            ),
        );
    }
    println!("  texts/s: over the whole process, start-up included; steady/s: after the first burst of output;");
    println!("  device mem: the GPU's used memory (nvidia-smi, every 100 ms) above its use before the run");
    // Which adapter each toxscore contender ran on, as toxcli names it (a
    // software driver would say so: then its figures are no GPU's).
    for (name, runs, _) in &variants {
        if let Some(line) = runs.first().and_then(|run| ran_on(&run.stderr)) {
            println!("  {name}: {line}");
        }
    }
    if let Some(stopped) = &stopped {
        println!("  deadline ({} s) reached: {stopped}", options.deadline.map_or(0, |deadline| deadline.as_secs()));
    }
    for (name, error) in &failures {
        println!("  FAILED: {name}: {}", failure_summary(error));
    }

    let detoxify_f32 = rate(&format!("detoxify {} arrival f32", options.torch_device));
    // The projection takes the fastest f32 contender: f16 is not offered.
    let best = contenders
        .iter()
        .map(|contender| rate(&format!("{} f32", contender.name)))
        .filter(|rate| rate.is_finite())
        .fold(f64::NAN, f64::max);
    println!();
    println!("ratios, target in brackets:");
    let line = |name: &str, value: f64, target: &str, met: bool| {
        let verdict = if !value.is_finite() {
            "n/a"
        } else if met {
            "met"
        } else {
            "NOT met"
        };
        println!("  {name:<58} {:>8}  [{target}] {verdict}", show(value, 2, "x"));
    };
    for contender in &contenders {
        let (full, half) = (rate(&format!("{} f32", contender.name)), rate(&format!("{} f16", contender.name)));
        let against_detoxify = full / detoxify_f32;
        let name = &contender.name;
        line(
            &format!("{name} f32 / Detoxify f32 (as run, same batch)"),
            against_detoxify,
            ">= 1.5",
            against_detoxify >= 1.5,
        );
        if options.precisions.iter().any(|precision| precision == "f16") {
            let f16_gain = half / full;
            line(&format!("{name} f16 / its f32"), f16_gain, ">= 2.5", f16_gain >= 2.5);
        }
    }
    for (contender, raced) in contenders.iter().filter_map(|contender| Some((contender, contender.races.as_ref()?))) {
        let spirv_gain = rate(&format!("{} f32", contender.name)) / rate(&format!("{raced} f32"));
        line("toxscore SPIR-V f32 / WGSL f32 (keep the faster)", spirv_gain, "> 1 keeps vulkan", spirv_gain > 1.0);
    }
    let hours = MISSION_TEXTS / best / 3600.0;
    println!(
        "  projection: 13.5M texts at {} texts/s take {} on one GPU [<= 1 h, >= 3,750 texts/s] {}",
        show(best, 0, ""),
        show(hours, 2, " h"),
        if !best.is_finite() {
            "n/a"
        } else if best >= 3750.0 {
            "met"
        } else {
            "NOT met"
        }
    );

    let mut failed = false;
    for contender in &contenders {
        let f32_out = paths.work.join(format!("gpu-{}-f32.jsonl", contender.stem));
        let f16_out = paths.work.join(format!("gpu-{}-f16.jsonl", contender.stem));
        if !(f32_out.is_file() && f16_out.is_file()) {
            continue;
        }
        let drift = Drift::between(&read_scores(&f32_out)?, &read_scores(&f16_out)?)?;
        println!(
            "  f16 drift from f32 ({}, {} texts): max |diff| {:.2e}, mean {:.2e}, 0.5 decision agrees on {:.3}% [max <= {F16_TOLERANCE:.0e}] {}",
            contender.name,
            drift.texts,
            drift.max,
            drift.mean,
            drift.agreement * 100.0,
            if drift.max <= F16_TOLERANCE { "met" } else { "NOT met" }
        );
    }
    if let Some(python) = &options.python {
        let detoxify_out = paths.work.join("gpu-detoxify-arrival-f32.jsonl");
        for contender in &contenders {
            let ours = paths.work.join(format!("gpu-{}-f32.jsonl", contender.stem));
            if !(ours.is_file() && detoxify_out.is_file()) {
                continue;
            }
            let output = Command::new(python)
                .current_dir(&paths.root)
                .arg(&paths.script)
                .args(["compare", "--toxscore"])
                .arg(&ours)
                .arg("--detoxify")
                .arg(&detoxify_out)
                .output()
                .with_context(|| format!("running {} compare", paths.script.display()))?;
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let max = stdout
                .split_whitespace()
                .find_map(|field| field.strip_prefix("max_abs_diff="))
                .and_then(|value| value.parse::<f64>().ok())
                .with_context(|| format!("unexpected compare output {stdout:?}"))?;
            println!(
                "  {} f32 scores against Detoxify on {}: max |diff| {max:.2e} [<= {SCORE_TOLERANCE:.0e}] {}",
                contender.name,
                options.torch_device,
                if max <= SCORE_TOLERANCE { "met" } else { "NOT met" }
            );
            failed |= max > SCORE_TOLERANCE;
        }
    }
    println!("outputs and logs: {}", paths.work.display());
    if failed {
        bail!("toxscore's scores differ from Detoxify's by more than {SCORE_TOLERANCE:.0e}");
    }
    if let Some((name, _)) = failures.first() {
        bail!("{} of the runs failed, {name} first (above)", failures.len());
    }
    Ok(())
}

/// toxcli's line naming the device it predicts on (`predicting on wgpu
/// (NVIDIA H200) in f32`), from a run's stderr.
fn ran_on(stderr: &str) -> Option<&str> {
    stderr.lines().find(|line| line.starts_with("predicting on "))
}

/// A failed run in one line: how it ended and the last line of its stderr
/// (the cause, as toxcli words it), from [`measure`]'s error.
fn failure_summary(error: &str) -> String {
    let mut lines = error.lines().map(str::trim).filter(|line| !line.is_empty());
    let first = lines.next().unwrap_or_default();
    let ended = first.split("; the end of its stderr").next().unwrap_or(first);
    match lines.next_back() {
        Some(last) => format!("{ended}: {last}"),
        None => ended.to_owned(),
    }
}

/// One run of a repeat.
struct Planned {
    /// Its row in the table.
    name: String,
    /// The stem of its output and log files.
    label: String,
    program: PathBuf,
    args: Vec<OsString>,
    envs: &'static [(&'static str, &'static str)],
}

/// What the runs of [`run_alternating`] came to.
#[derive(Debug, Default)]
struct Outcome {
    /// (name, runs, device peaks), in the plan's order.
    variants: Vec<(String, Vec<Measurement>, Vec<f64>)>,
    /// (name, error) of each run that failed: left out of later repeats.
    failures: Vec<(String, String)>,
    /// Set where the deadline stopped the runs: what did not run.
    stopped: Option<String>,
}

/// Runs the plan `repeats` times, alternating its runs, through `measure`
/// (given the time left before the deadline). A run that fails is reported
/// and left out of later repeats while the others go on; once the deadline
/// is reached, or a run was stopped at it ([`PastLimit`]), nothing more
/// runs.
fn run_alternating(
    plan: &[Planned],
    repeats: usize,
    deadline: Option<Duration>,
    started: Instant,
    mut measure: impl FnMut(&Planned, Option<Duration>) -> Result<(Measurement, Option<f64>)>,
) -> Outcome {
    let mut outcome = Outcome::default();
    for repeat in 1..=repeats {
        for planned in plan {
            if outcome.failures.iter().any(|(failed, _)| *failed == planned.name) {
                continue;
            }
            let limit = deadline.map(|deadline| deadline.saturating_sub(started.elapsed()));
            if limit == Some(Duration::ZERO) {
                outcome.stopped = Some(format!("run {repeat}: {} and the runs after it did not start", planned.name));
                return outcome;
            }
            match measure(planned, limit) {
                Ok((run, peak)) => match outcome.variants.iter_mut().find(|(name, _, _)| *name == planned.name) {
                    Some((_, runs, peaks)) => {
                        runs.push(run);
                        peaks.extend(peak);
                    }
                    None => outcome.variants.push((planned.name.clone(), vec![run], peak.into_iter().collect())),
                },
                Err(error) if error.downcast_ref::<PastLimit>().is_some() => {
                    outcome.stopped = Some(format!(
                        "run {repeat}: {} was stopped there; the runs after it did not start",
                        planned.name
                    ));
                    return outcome;
                }
                Err(error) => {
                    eprintln!("xtask: run {repeat}: {} failed; it is left out from here on: {error:#}", planned.name);
                    outcome.failures.push((planned.name.clone(), format!("{error:#}")));
                }
            }
        }
    }
    outcome
}

/// Deletes the `gpu-*` outputs and logs an earlier run left in `work`.
fn remove_earlier_outputs(work: &Path) -> Result<()> {
    let entries = std::fs::read_dir(work).with_context(|| format!("listing {}", work.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("listing {}", work.display()))?.path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        if name.starts_with("gpu-") && path.is_file() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

fn build_toxcli(paths: &Paths, kinds: &[&str]) -> Result<()> {
    // Kernel fusion: what a real GPU build uses (docs/gpu.md).
    // f16 is not offered (it drifts over 1e-3, docs/gpu.md); the benchmark
    // measures it, in a build that parses it.
    let devices: Vec<String> = kinds.iter().map(|kind| format!("toxcli/{kind}")).collect();
    let features = format!("{},toxcli/fusion,toxcli/f16-experiment", devices.join(","));
    eprintln!("xtask: cargo build --release -p toxcli --features {features}");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&paths.root)
        .args(["build", "--release", "-p", "toxcli", "--features", &features])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p toxcli --features {features} failed ({status})");
    }
    Ok(())
}

/// `nvidia-smi -i INDEX ARGS`, its output trimmed; `None` without it.
fn nvidia_smi(args: &[&str], gpu_index: &str) -> Option<String> {
    let output = Command::new("nvidia-smi").args(["-i", gpu_index]).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn used_mib(gpu_index: &str) -> Option<f64> {
    nvidia_smi(&["--query-gpu=memory.used", "--format=csv,noheader,nounits"], gpu_index)?.parse().ok()
}

/// Runs `work` while sampling the GPU's used memory; returns its result and
/// the peak above the use before it started (`None` without nvidia-smi).
fn with_device_memory<T>(gpu_index: &str, work: impl FnOnce() -> Result<T>) -> Result<(T, Option<f64>)> {
    let Some(before) = used_mib(gpu_index) else { return Ok((work()?, None)) };
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, gpu_index) = (Arc::clone(&stop), gpu_index.to_owned());
        std::thread::spawn(move || {
            let mut peak = before;
            while !stop.load(Ordering::Relaxed) {
                if let Some(used) = used_mib(&gpu_index) {
                    peak = peak.max(used);
                }
                std::thread::sleep(GPU_SAMPLE_PERIOD);
            }
            peak
        })
    };
    let result = work();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().ok();
    Ok((result?, peak.map(|peak| peak - before)))
}

/// Each text's scores from a `toxcli predict` output, in order.
fn read_scores(path: &Path) -> Result<Vec<Vec<(String, f64)>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(line_idx, line)| {
            let row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not a JSON object", path.display(), line_idx + 1))?;
            Ok(row.into_iter().filter_map(|(name, value)| Some((name, value.as_f64()?))).collect())
        })
        .collect()
}

/// How far f16 scores are from f32 ones.
#[derive(Debug, PartialEq)]
struct Drift {
    texts: usize,
    max: f64,
    mean: f64,
    /// The share of (text, class) pairs on the same side of 0.5.
    agreement: f64,
}

impl Drift {
    fn between(full: &[Vec<(String, f64)>], half: &[Vec<(String, f64)>]) -> Result<Drift> {
        if full.len() != half.len() {
            bail!("f32 scored {} texts, f16 {}", full.len(), half.len());
        }
        let (mut max, mut total, mut agree, mut count) = (0.0f64, 0.0, 0usize, 0usize);
        for (full_row, half_row) in full.iter().zip(half) {
            for ((name, full_value), (half_name, half_value)) in full_row.iter().zip(half_row) {
                if name != half_name {
                    bail!("the f32 and f16 outputs list classes in other orders ({name} and {half_name})");
                }
                let diff = (full_value - half_value).abs();
                max = max.max(diff);
                total += diff;
                agree += usize::from((*full_value >= 0.5) == (*half_value >= 0.5));
                count += 1;
            }
        }
        let count_f = count.max(1) as f64;
        Ok(Drift { texts: full.len(), max, mean: total / count_f, agreement: agree as f64 / count_f })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use anyhow::anyhow;

    use std::path::Path;

    use super::{
        Drift, Outcome, Planned, contenders, parse_options, ran_on, remove_earlier_outputs, run_alternating, texts_for,
    };
    use crate::bench::{Measurement, PastLimit};

    fn plan(names: &[&str]) -> Vec<Planned> {
        names
            .iter()
            .map(|name| Planned {
                name: (*name).to_owned(),
                label: format!("gpu-{name}"),
                program: "true".into(),
                args: Vec::new(),
                envs: &[],
            })
            .collect()
    }

    fn runs_of(outcome: &Outcome) -> Vec<(&str, usize)> {
        outcome.variants.iter().map(|(name, runs, _)| (name.as_str(), runs.len())).collect()
    }

    #[test]
    fn a_failing_contender_is_left_out_and_the_others_go_on() {
        let mut calls = Vec::new();
        let hour = Duration::from_secs(3600);
        let outcome = run_alternating(&plan(&["a", "b", "c"]), 2, Some(hour), Instant::now(), |planned, limit| {
            calls.push(planned.name.clone());
            assert!(limit.is_some_and(|limit| limit > Duration::ZERO && limit <= hour), "{limit:?}");
            match planned.name.as_str() {
                "b" => Err(anyhow!("b crashed")),
                _ => Ok((Measurement::with_lines_at(&[1000]), Some(100.0))),
            }
        });
        assert_eq!(calls, ["a", "b", "c", "a", "c"]);
        assert_eq!(runs_of(&outcome), [("a", 2), ("c", 2)]);
        assert_eq!(outcome.variants[0].2, [100.0, 100.0]);
        assert_eq!(outcome.failures, [("b".to_owned(), "b crashed".to_owned())]);
        assert!(outcome.stopped.is_none());
    }

    #[test]
    fn a_run_stopped_at_the_deadline_ends_the_benchmark_with_what_finished() {
        let mut calls = Vec::new();
        let outcome = run_alternating(&plan(&["a", "b", "c"]), 2, None, Instant::now(), |planned, limit| {
            calls.push(planned.name.clone());
            assert_eq!(limit, None);
            match planned.name.as_str() {
                "b" => Err(PastLimit { label: "gpu-b".into(), limit: Duration::from_secs(5) }.into()),
                _ => Ok((Measurement::with_lines_at(&[1000]), None)),
            }
        });
        assert_eq!(calls, ["a", "b"]);
        assert_eq!(runs_of(&outcome), [("a", 1)]);
        assert!(outcome.failures.is_empty());
        assert_eq!(outcome.stopped.as_deref(), Some("run 1: b was stopped there; the runs after it did not start"));
    }

    #[test]
    fn the_device_a_run_predicted_on_is_read_from_its_stderr() {
        let stderr = "warning: x\npredicting on wgpu (NVIDIA H200) in f32\nBENCH a=1\n";
        assert_eq!(ran_on(stderr), Some("predicting on wgpu (NVIDIA H200) in f32"));
        assert_eq!(ran_on("BENCH a=1\n"), None);
    }

    #[test]
    fn a_failure_is_summed_up_by_how_it_ended_and_its_last_words() {
        let error = "gpu-x failed (exit status: 2); the end of its stderr (w/gpu-x.stderr):\n\
                     error: loading model\n  caused by: device cuda: CUDA could not start\n";
        assert_eq!(
            super::failure_summary(error),
            "gpu-x failed (exit status: 2): caused by: device cuda: CUDA could not start"
        );
        assert_eq!(super::failure_summary("starting b/toxcli"), "starting b/toxcli");
    }

    #[test]
    fn nothing_starts_past_the_deadline() {
        let outcome = run_alternating(&plan(&["a", "b"]), 1, Some(Duration::ZERO), Instant::now(), |_, _| {
            panic!("no run may start")
        });
        assert!(outcome.variants.is_empty());
        assert_eq!(outcome.stopped.as_deref(), Some("run 1: a and the runs after it did not start"));
    }

    #[test]
    fn a_run_starts_without_an_earlier_runs_outputs() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        for name in ["gpu-toxscore-f16.jsonl", "gpu-toxscore-f32.stderr", "gpu_corpus_32.txt", "cpu-run.jsonl"] {
            std::fs::write(folder.path().join(name), "x").expect("writing");
        }
        remove_earlier_outputs(folder.path()).expect("removing");
        let mut left: Vec<String> = std::fs::read_dir(folder.path())
            .expect("listing")
            .map(|entry| entry.expect("entry").file_name().into_string().expect("UTF-8"))
            .collect();
        left.sort();
        assert_eq!(left, ["cpu-run.jsonl", "gpu_corpus_32.txt"]);
    }

    #[test]
    fn the_corpus_continues_with_distinct_suffixed_copies() {
        let corpus = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(texts_for(&corpus, 5), ["a", "b", "a #2", "b #2", "a #3"]);
    }

    #[test]
    fn detoxify_runs_on_the_same_cuda_device() {
        let options = |args: &[&str]| {
            parse_options(&args.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>())
                .expect("valid options")
                .expect("not --help")
        };
        assert_eq!(options(&["--device", "cuda:1"]).torch_device, "cuda:1");
        assert_eq!(options(&["--device=wgpu"]).torch_device, "cuda");
        assert_eq!(options(&["--device", "wgpu:1", "--torch-device", "cuda:1"]).torch_device, "cuda:1");
        assert!(parse_options(&["--device".to_owned(), "cpu".to_owned()]).is_err());
        assert!(parse_options(&["--device=wgpu".to_owned(), "--precision=bf16".to_owned()]).is_err());
        assert_eq!(options(&["--device=wgpu", "--toxcli-spirv", "b/toxcli"]).toxcli_spirv, Some("b/toxcli".into()));
        let error = parse_options(&["--device=cuda", "--toxcli-spirv=b/toxcli"].map(str::to_owned)).err();
        assert!(error.is_some_and(|error| error.to_string().contains("needs a wgpu[:N] in --device")));
        // A list of devices: Detoxify goes on the CUDA one.
        assert_eq!(options(&["--device", "wgpu,cuda:1"]).torch_device, "cuda:1");
        assert_eq!(options(&["--device", "cuda, wgpu"]).devices, ["cuda", "wgpu"]);
        for bad in ["cuda,cpu", "cuda,cuda", "wgpu,"] {
            assert!(parse_options(&["--device".to_owned(), bad.to_owned()]).is_err(), "{bad}");
        }
        assert_eq!(options(&["--device=wgpu", "--deadline", "420"]).deadline, Some(Duration::from_secs(420)));
        assert_eq!(options(&["--device=wgpu"]).deadline, None);
        assert!(parse_options(&["--device=wgpu", "--deadline=0"].map(str::to_owned)).is_err());
    }

    #[test]
    fn each_device_is_a_contender_and_spirv_runs_on_the_first_wgpu() {
        let options = parse_options(&["--device", "cuda,wgpu:1,wgpu", "--toxcli-spirv", "s/toxcli"].map(str::to_owned))
            .expect("valid options")
            .expect("not --help");
        let contenders = contenders(&options, Path::new("b/toxcli"));
        let seen: Vec<(&str, &str, &str, &str)> = contenders
            .iter()
            .map(|c| (c.name.as_str(), c.stem.as_str(), c.binary.to_str().expect("UTF-8"), c.device.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("toxscore cuda", "toxscore-cuda", "b/toxcli", "cuda"),
                ("toxscore wgpu:1", "toxscore-wgpu1", "b/toxcli", "wgpu:1"),
                ("toxscore wgpu", "toxscore-wgpu", "b/toxcli", "wgpu"),
                ("toxscore wgpu:1 spirv", "toxscore-wgpu1-spirv", "s/toxcli", "wgpu:1"),
            ]
        );
        // The SPIR-V build races the WGSL one on its device, and only it races.
        let races: Vec<Option<&str>> = contenders.iter().map(|c| c.races.as_deref()).collect();
        assert_eq!(races, [None, None, None, Some("toxscore wgpu:1")]);
    }

    #[test]
    fn drift_counts_the_decisions_that_flip() {
        let row = |values: &[f64]| -> Vec<(String, f64)> {
            values.iter().enumerate().map(|(idx, value)| (format!("c{idx}"), *value)).collect()
        };
        let full = vec![row(&[0.2, 0.6]), row(&[0.49, 0.9])];
        let half = vec![row(&[0.2, 0.6]), row(&[0.51, 0.9])];
        let drift = Drift::between(&full, &half).expect("same shape");
        assert_eq!(drift.texts, 2);
        assert!((drift.max - 0.02).abs() < 1e-12 && (drift.agreement - 0.75).abs() < 1e-12, "{drift:?}");
    }
}
