//! `cargo xtask test [cargo test args]`: installs the BigQuery emulator if
//! needed, starts it on loopback, runs
//! `cargo test --release --workspace --features TEST_FEATURES --no-fail-fast` with
//! `TOXSCORE_BIGQUERY_EMULATOR` pointing at it (and `TOXSCORE_BIGQUERY_PYTHON`
//! at its Python, which has sqlglot), stops it by process id (also
//! when the tests fail) and exits with cargo's status.
//!
//! Extra arguments go to `cargo test` unchanged, for example
//! `cargo xtask test -p toxstore -- --nocapture`. With `-p`/`--package` the
//! `--workspace` flag is left out.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::emulator::{EMULATOR_PYTHON_VAR, EMULATOR_URL_VAR, Emulator, Paths, ensure_installed};
use crate::python;

/// The features the tests are built with. `wgpu` is in: its tests run on
/// Mesa's software Vulkan driver. Left out, to keep a clean CI build well
/// under 45 minutes on 2 cores (wgpu alone adds about 15): `cuda` (another
/// GPU graph, and no NVIDIA GPU to run it on; `.ci/run` checks it), `fusion` (minutes
/// more, and lavapipe cannot show what it is worth) and `ndarray` (the
/// deprecated second CPU backend; `cargo test --release --workspace
/// --features toxmodel/ndarray` runs its parity test). The Python package
/// is built with toxpy's features from this list, so that both builds share
/// one compiled graph; `scripts/check_feature_unification.py` reads it.
pub const TEST_FEATURES: &str = "toxmodel/int8-experiment,toxmodel/wgpu,toxcli/wgpu,toxstore/conformance,toxpy/wgpu";

pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|arg| arg == "-h" || arg == "--help") && !args.iter().any(|arg| arg == "--") {
        println!(
            "usage: cargo xtask test [cargo test args]\n\n\
             Installs the BigQuery emulator into target/bqemulator if needed, starts it on 127.0.0.1,\n\
             runs `cargo test --release --workspace --features {TEST_FEATURES} --no-fail-fast [args]`\n\
             with {EMULATOR_URL_VAR} set,\n\
             stops the emulator, then installs ./python into target/pyenv and runs `pytest python/tests`."
        );
        return Ok(());
    }
    let root = workspace_root();

    let step = Instant::now();
    let installed = ensure_installed(&root)?;
    if installed {
        eprintln!("xtask: installed the BigQuery emulator in {:.1} s", step.elapsed().as_secs_f64());
    } else {
        eprintln!("xtask: the BigQuery emulator is already installed");
    }

    let step = Instant::now();
    let mut emulator = Emulator::start(&root)?;
    eprintln!(
        "xtask: the BigQuery emulator is up at {} (pid {}) after {:.1} s",
        emulator.url(),
        emulator.pid().map_or_else(|| "?".to_owned(), |pid| pid.to_string()),
        step.elapsed().as_secs_f64()
    );

    let step = Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(&root).args(["test", "--release"]);
    let named: Vec<&str> = named_packages(args);
    let names_packages = !named.is_empty();
    let features = if names_packages {
        // Only the named packages' features: Cargo refuses the others'.
        TEST_FEATURES
            .split(',')
            .filter(|feature| named.iter().any(|package| feature.starts_with(&format!("{package}/"))))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        command.arg("--workspace");
        TEST_FEATURES.to_owned()
    };
    // --no-fail-fast: CI shows every failing test binary, not only the first.
    command
        .args(["--features", &features, "--no-fail-fast"])
        .args(args)
        .env(EMULATOR_URL_VAR, emulator.url())
        .envs(gpu_test_environment())
        // Its Python has sqlglot, which the BigQuery type checks use.
        .env(EMULATOR_PYTHON_VAR, Paths::new(&root).python());
    let status = command.status().context("running cargo test");
    let tests_failed = !matches!(&status, Ok(status) if status.success());
    if tests_failed {
        // The emulator's side of a failure is often the useful one.
        eprintln!("{}", emulator.log_tail());
    }
    emulator.stop();
    let status = status?;
    eprintln!("xtask: cargo test finished in {:.1} s with {status}", step.elapsed().as_secs_f64());
    // The BigQuery type checker's own tests (Python, on the emulator's venv,
    // which has sqlglot): it must keep failing on what BigQuery refuses.
    let checker = Command::new(Paths::new(&root).python())
        .arg(root.join("scripts").join("test_bq_typecheck.py"))
        .current_dir(&root)
        .status()
        .context("running scripts/test_bq_typecheck.py")?;
    eprintln!("xtask: scripts/test_bq_typecheck.py finished with {checker}");
    // The Python package (crates/toxpy + python/): built after cargo test,
    // so maturin's cargo finds burn and the rest already compiled.
    // Skipped when other packages alone are named (`-p toxstore`).
    let names_toxpy = named.contains(&"toxpy");
    let pytest = if names_packages && !names_toxpy {
        eprintln!("xtask: packages named without toxpy: the Python tests are skipped");
        None
    } else {
        Some(python::run_tests(&root)?)
    };
    for step_status in [Some(status), Some(checker), pytest].into_iter().flatten() {
        if !step_status.success() {
            std::process::exit(step_status.code().filter(|&code| code != 0).unwrap_or(1));
        }
    }
    Ok(())
}

/// The GPU tests run on Mesa's software Vulkan driver, where autotune
/// (timing every candidate kernel of each new shape) costs minutes and
/// proves nothing the tests check: the minimal level takes each kernel's
/// default. A value the caller set wins.
pub fn gpu_test_environment() -> Vec<(&'static str, String)> {
    let level = std::env::var("CUBECL_AUTOTUNE_LEVEL").unwrap_or_else(|_| "minimal".to_owned());
    vec![("CUBECL_AUTOTUNE_LEVEL", level)]
}

/// The packages named by `-p NAME`, `-pNAME`, `--package NAME` or
/// `--package=NAME` before `--`.
fn named_packages(args: &[String]) -> Vec<&str> {
    let mut named = Vec::new();
    let mut args = args.iter().take_while(|arg| *arg != "--");
    while let Some(arg) = args.next() {
        if arg == "-p" || arg == "--package" {
            named.extend(args.next().map(String::as_str));
        } else if let Some(name) = arg.strip_prefix("--package=").or_else(|| arg.strip_prefix("-p")) {
            named.push(name);
        }
    }
    named
}

/// The features of `TEST_FEATURES` that belong to `package`, without its
/// prefix (`toxpy/wgpu` gives `wgpu` for toxpy).
pub fn features_of(package: &str) -> Vec<&'static str> {
    TEST_FEATURES.split(',').filter_map(|feature| feature.strip_prefix(package)?.strip_prefix('/')).collect()
}

fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}
