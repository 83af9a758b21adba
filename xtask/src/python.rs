//! The Python package's tests, a step of `cargo xtask test`: creates the
//! virtual environment `target/pyenv` if it is missing, installs
//! `./python` (built by maturin, from PyPI, inside the workspace, so the
//! extension reuses target/'s release build of burn and the other
//! dependencies) with pytest and pandas, then runs `pytest python/tests`.
//!
//! pytest's exit status is the step's: 5 ("no tests collected") fails too,
//! so a suite that silently stops being collected cannot pass.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// What the step installs besides the package: the test runner and the
/// optional dependencies `score_frame` and `progress=True` use.
const TEST_REQUIREMENTS: &[&str] = &["pytest", "pandas", "tqdm"];

/// The virtual environment's folder, under the workspace root.
pub fn venv_dir(root: &Path) -> PathBuf {
    root.join("target").join("pyenv")
}

/// Runs the step; `Ok(status)` is pytest's, errors are failures to run.
pub fn run_tests(root: &Path) -> Result<ExitStatus> {
    let venv = venv_dir(root);
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        let step = Instant::now();
        checked(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            &format!("creating the virtual environment {}", venv.display()),
        )?;
        eprintln!("xtask: created {} in {:.1} s", venv.display(), step.elapsed().as_secs_f64());
    }

    let step = Instant::now();
    // --force-reinstall of the package alone: pip would otherwise keep an
    // installed toxscore of the same version and skip the build, testing
    // stale code. Cargo rebuilds only what changed.
    checked(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(TEST_REQUIREMENTS)
            .current_dir(root),
        "installing pytest, pandas and tqdm",
    )?;
    // The extension gets the test build's features (wgpu), passed to maturin
    // by its PEP 517 backend, so that it reuses that build's compiled graph,
    // and so that its wgpu test runs rather than skips.
    let features = crate::test::features_of("toxpy").join(",");
    checked(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--force-reinstall", "--no-deps"])
            .arg(root.join("python"))
            .env("MATURIN_PEP517_ARGS", format!("--features {features}"))
            .current_dir(root),
        "building and installing ./python",
    )?;
    eprintln!("xtask: built and installed ./python in {:.1} s", step.elapsed().as_secs_f64());

    let step = Instant::now();
    let status = Command::new(&python)
        .args(["-m", "pytest", "-q", "python/tests"])
        .env("TOXSCORE_TEST_WGPU", if features.contains("wgpu") { "1" } else { "0" })
        .envs(crate::test::gpu_test_environment())
        .current_dir(root)
        .status()
        .context("running pytest python/tests")?;
    eprintln!("xtask: pytest python/tests finished in {:.1} s with {status}", step.elapsed().as_secs_f64());
    if status.code() == Some(5) {
        eprintln!("xtask: pytest collected no tests in python/tests: that is a failure");
    }
    Ok(status)
}

fn checked(command: &mut Command, what: &str) -> Result<()> {
    let status = command.status().with_context(|| what.to_owned())?;
    if !status.success() {
        bail!("{what} failed with {status}");
    }
    Ok(())
}
