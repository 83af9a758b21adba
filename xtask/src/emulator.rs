//! The BigQuery emulator (PyPI `bqemulator`): installed into
//! `target/bqemulator/venv`, started on free loopback ports, stopped by its
//! process id.
//!
//! The install follows `shared/notes/bigquery-offline.md`: pinned versions
//! (`scripts/bqemulator-requirements.txt`), and the DuckDB extension files,
//! shipped as wheels, copied to where DuckDB looks for them under a scratch
//! `HOME`, so that the emulator downloads nothing at start-up and runs with
//! loopback only.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The environment variable that tells the BigQuery tests where the emulator
/// listens, for example `http://127.0.0.1:9050`.
pub const EMULATOR_URL_VAR: &str = "TOXSCORE_BIGQUERY_EMULATOR";

/// The environment variable naming the emulator's Python interpreter, whose
/// virtual environment holds sqlglot (`scripts/bq_typecheck.py` runs on it).
pub const EMULATOR_PYTHON_VAR: &str = "TOXSCORE_BIGQUERY_PYTHON";

/// The project id the emulator is started with (any id works; requests name
/// their project).
const PROJECT: &str = "test-project";

/// How long the emulator may take to answer `/healthz`. It takes 2 to 4 s on
/// an idle machine; a parallel release build can slow it down a lot.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// How long it may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the emulator's files live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `target/bqemulator`.
    pub dir: PathBuf,
    /// The virtual environment.
    pub venv: PathBuf,
    /// The scratch `HOME` that holds the DuckDB extensions.
    pub home: PathBuf,
    /// The emulator's log of its last start.
    pub log: PathBuf,
}

impl Paths {
    /// The paths under a workspace root.
    pub fn new(workspace_root: &Path) -> Self {
        let dir = workspace_root.join("target").join("bqemulator");
        Self { venv: dir.join("venv"), home: dir.join("home"), log: dir.join("emulator.log"), dir }
    }

    fn executable(&self) -> PathBuf {
        self.venv.join("bin").join("bqemulator")
    }

    /// The virtual environment's Python.
    pub fn python(&self) -> PathBuf {
        self.venv.join("bin").join("python")
    }

    /// A file holding the requirements the venv was built from: when it equals
    /// the committed requirements, the install is complete and current.
    fn marker(&self) -> PathBuf {
        self.dir.join("installed-requirements.txt")
    }
}

/// Installs the emulator unless the same pinned install is already there.
/// Returns whether it installed anything.
pub fn ensure_installed(workspace_root: &Path) -> Result<bool> {
    let paths = Paths::new(workspace_root);
    let requirements_path = workspace_root.join("scripts").join("bqemulator-requirements.txt");
    let requirements =
        fs::read_to_string(&requirements_path).with_context(|| format!("reading {}", requirements_path.display()))?;
    let installed = fs::read_to_string(paths.marker()).unwrap_or_default();
    if installed == requirements && paths.executable().is_file() {
        return Ok(false);
    }

    // Start from scratch: a half-built venv from an interrupted install is
    // not worth repairing.
    let _ = fs::remove_file(paths.marker());
    if paths.venv.exists() {
        fs::remove_dir_all(&paths.venv).with_context(|| format!("removing {}", paths.venv.display()))?;
    }
    fs::create_dir_all(&paths.dir).with_context(|| format!("creating {}", paths.dir.display()))?;

    run(Command::new("python3").arg("-m").arg("venv").arg(&paths.venv)).context(
        "creating the emulator's Python virtual environment (python3 with the venv module is needed; \
         on Debian or Ubuntu: apt-get install python3-venv)",
    )?;
    run(Command::new(paths.venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements_path))
    .context("installing the emulator's pinned Python packages")?;
    copy_duckdb_extensions(&paths)?;

    fs::write(paths.marker(), requirements).with_context(|| format!("writing {}", paths.marker().display()))?;
    Ok(true)
}

/// Copies the extension files of the `duckdb_extension_*` wheels to
/// `$HOME/.duckdb/extensions/<version>/<platform>/`, where DuckDB looks
/// before it tries to download them.
fn copy_duckdb_extensions(paths: &Paths) -> Result<()> {
    let platform = match std::env::consts::ARCH {
        "x86_64" => "linux_amd64",
        "aarch64" => "linux_arm64",
        other => bail!("no DuckDB extension platform known for the architecture {other}"),
    };
    let lib = paths.venv.join("lib");
    let mut copied = 0;
    for python in read_dir(&lib)? {
        let site_packages = python.join("site-packages");
        if !site_packages.is_dir() {
            continue;
        }
        for package in read_dir(&site_packages)? {
            let is_extension_wheel = package
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("duckdb_extension_"));
            let versions = package.join("extensions");
            if !is_extension_wheel || !versions.is_dir() {
                continue;
            }
            for version_dir in read_dir(&versions)? {
                let Some(version) = version_dir.file_name() else {
                    continue;
                };
                let target = paths.home.join(".duckdb").join("extensions").join(version).join(platform);
                fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
                for file in read_dir(&version_dir)? {
                    let Some(name) = file.file_name() else {
                        continue;
                    };
                    if name.to_string_lossy().ends_with(".duckdb_extension") {
                        fs::copy(&file, target.join(name))
                            .with_context(|| format!("copying {} to {}", file.display(), target.display()))?;
                        copied += 1;
                    }
                }
            }
        }
    }
    if copied == 0 {
        bail!("no DuckDB extension files found under {}; the emulator would try to download them", lib.display());
    }
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        entries.push(entry.with_context(|| format!("listing {}", dir.display()))?.path());
    }
    entries.sort();
    Ok(entries)
}

fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// A running emulator, stopped (by process id) when dropped.
#[derive(Debug)]
pub struct Emulator {
    child: Option<Child>,
    rest_port: u16,
    log: PathBuf,
}

impl Emulator {
    /// Starts the emulator on free loopback ports and waits for its health
    /// check.
    pub fn start(workspace_root: &Path) -> Result<Self> {
        let paths = Paths::new(workspace_root);
        let rest_port = free_loopback_port()?;
        let mut grpc_port = free_loopback_port()?;
        while grpc_port == rest_port {
            grpc_port = free_loopback_port()?;
        }
        fs::create_dir_all(&paths.home).with_context(|| format!("creating {}", paths.home.display()))?;
        let log = fs::File::create(&paths.log).with_context(|| format!("creating {}", paths.log.display()))?;
        let log_err = log.try_clone().context("duplicating the emulator log handle")?;
        let child = Command::new(paths.executable())
            .args(["start", "--rest-host", "127.0.0.1", "--grpc-host", "127.0.0.1"])
            .args(["--rest-port", &rest_port.to_string(), "--grpc-port", &grpc_port.to_string()])
            .args(["--project", PROJECT, "--log-level", "warning", "--ephemeral"])
            // DuckDB finds its extensions under $HOME; a scratch HOME also
            // keeps them out of the user's real one.
            .env("HOME", &paths.home)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("starting {}", paths.executable().display()))?;
        let mut emulator = Self { child: Some(child), rest_port, log: paths.log };

        let started = Instant::now();
        loop {
            if healthy(rest_port) {
                return Ok(emulator);
            }
            if let Some(child) = emulator.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                emulator.child = None;
                bail!("the BigQuery emulator exited with {status} before it was healthy\n{}", emulator.log_tail());
            }
            if started.elapsed() > START_TIMEOUT {
                let tail = emulator.log_tail();
                emulator.stop();
                bail!(
                    "the BigQuery emulator did not answer http://127.0.0.1:{rest_port}/healthz within {} s\n{tail}",
                    START_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The REST endpoint's root, for example `http://127.0.0.1:9050`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_port)
    }

    /// The emulator's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines of the emulator's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        // The emulator logs its SQL translation rules at start-up whatever
        // the log level: one very long line of no use here.
        let lines: Vec<&str> = text.lines().filter(|line| !line.contains("sql.translator.init")).collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("--- last lines of {} ---\n{tail}", self.log.display())
    }

    /// Stops the emulator: SIGTERM to its process id, then SIGKILL if it has
    /// not exited within a few seconds.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).stderr(Stdio::null()).status();
        let asked = Instant::now();
        while asked.elapsed() < STOP_TIMEOUT {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that was free a moment ago.
fn free_loopback_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr().context("reading the free port")?.port())
}

/// Whether `GET /healthz` answers 200 with `"status":"ok"`.
fn healthy(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut response = String::new();
    if stream.read_to_string(&mut response).is_err() && response.is_empty() {
        return false;
    }
    response.starts_with("HTTP/1.")
        && response.lines().next().is_some_and(|line| line.contains(" 200"))
        && response.contains("\"ok\"")
}
