//! `cargo xtask test [cargo test args]`: installs the BigQuery emulator if
//! needed, starts it on loopback, runs
//! `cargo test --release --workspace --all-features --no-fail-fast` with
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

pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|arg| arg == "-h" || arg == "--help") && !args.iter().any(|arg| arg == "--") {
        println!(
            "usage: cargo xtask test [cargo test args]\n\n\
             Installs the BigQuery emulator into target/bqemulator if needed, starts it on 127.0.0.1,\n\
             runs `cargo test --release --workspace --all-features --no-fail-fast [args]` with {EMULATOR_URL_VAR} set,\n\
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
    let names_packages = args.iter().take_while(|arg| *arg != "--").any(|arg| {
        arg == "-p" || arg == "--package" || arg.starts_with("--package=") || (arg.starts_with("-p") && arg.len() > 2)
    });
    if !names_packages {
        command.arg("--workspace");
    }
    // --no-fail-fast: CI shows every failing test binary, not only the first.
    command
        .args(["--all-features", "--no-fail-fast"])
        .args(args)
        .env(EMULATOR_URL_VAR, emulator.url())
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
    let names_toxpy = args
        .iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "toxpy" || arg == "--package=toxpy" || arg == "-ptoxpy");
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

fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}
