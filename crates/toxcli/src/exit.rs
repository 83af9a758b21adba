//! Exit codes, and the error types that choose them.
//!
//! Every failure reaches `main` as an `anyhow::Error`. Its exit code is chosen
//! by the first typed error found in its cause chain, outermost first, so that
//! a context line added on the way (`reading tweets.csv`) does not hide it.

use std::fmt;
use std::process::ExitCode;

/// The exit codes of `toxcli`, as documented in `--help` and `docs/cli.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success = 0,
    /// 1: any other failure (a bug, or an error nobody classified).
    Failure = 1,
    /// 2: the command line or a setting is wrong.
    Usage = 2,
    /// 3: an input file is unreadable or has bad rows (`--strict`), or the
    /// store refused an input value.
    Input = 3,
    /// 4: the store or the network failed (SQLite, BigQuery, a download).
    Store = 4,
    /// 5: the model could not be loaded or verified.
    Model = 5,
    /// 6: `verify` found stored scores that differ from the model's.
    Mismatch = 6,
    /// 130: stopped by Ctrl-C after committing what was scored.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// A wrong command line or setting, found after clap's own checks.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A problem with an input file: the message names the file, the line when
/// there is one, and the problem.
#[derive(Debug)]
pub struct InputError {
    /// The whole message, `FILE[:LINE]: problem`.
    pub message: String,
    /// The I/O error behind it, when there is one.
    pub source: Option<std::io::Error>,
}

impl InputError {
    /// An input error without an underlying I/O error.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), source: None }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// An output file (or stdout) that cannot be written: the message names it
/// and the problem, the I/O error says why.
#[derive(Debug)]
pub struct OutputError {
    message: String,
    source: std::io::Error,
}

impl OutputError {
    /// `PATH: problem`, caused by `source`.
    pub fn new(path: &std::path::Path, problem: &str, source: std::io::Error) -> Self {
        Self { message: format!("{}: {problem}", path.display()), source }
    }

    /// As an `io::Error` of the same kind, for a `Write` implementation;
    /// [`classify`] finds it inside.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::new(self.source.kind(), self)
    }
}

impl fmt::Display for OutputError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for OutputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Another process holds the work this one was asked to do (a second
/// `score` on the same SQLite file, model and shard).
#[derive(Debug)]
pub struct StoreBusy(pub String);

impl fmt::Display for StoreBusy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for StoreBusy {}

/// A command that reads the store found none (an SQLite file that does not
/// exist): nothing was created.
#[derive(Debug)]
pub struct StoreMissing(pub String);

impl fmt::Display for StoreMissing {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for StoreMissing {}

/// `verify` found stored scores that differ from what the model computes
/// for their texts; the report said which.
#[derive(Debug)]
pub struct Mismatch(pub String);

impl fmt::Display for Mismatch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// The run was stopped by Ctrl-C; what was scored is committed.
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Context for a failure to load the model: its exit code is
/// [`Exit::Model`] unless a more specific error lies under it (a download
/// that failed on the network, an unknown model name).
#[derive(Debug)]
pub struct ModelLoad;

impl fmt::Display for ModelLoad {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("loading the model")
    }
}

/// Chooses the exit code of an error from the first typed error in its chain.
pub fn classify(error: &anyhow::Error) -> Exit {
    // A context type is found through the error itself, not its chain.
    let fallback = if error.downcast_ref::<ModelLoad>().is_some() { Exit::Model } else { Exit::Failure };
    for cause in error.chain() {
        if cause.downcast_ref::<UsageError>().is_some() || cause.downcast_ref::<clap::Error>().is_some() {
            return Exit::Usage;
        }
        if cause.downcast_ref::<InputError>().is_some() || cause.downcast_ref::<OutputError>().is_some() {
            return Exit::Input;
        }
        // A `Write` implementation carries its typed error inside an `io::Error`,
        // whose `source()` skips it.
        if cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .is_some_and(|inner| inner.is::<OutputError>())
        {
            return Exit::Input;
        }
        if cause.downcast_ref::<StoreBusy>().is_some() || cause.downcast_ref::<StoreMissing>().is_some() {
            return Exit::Store;
        }
        if cause.downcast_ref::<Interrupted>().is_some() {
            return Exit::Interrupted;
        }
        if cause.downcast_ref::<Mismatch>().is_some() {
            return Exit::Mismatch;
        }
        if let Some(store_error) = cause.downcast_ref::<toxstore::Error>() {
            return match store_error {
                toxstore::Error::InvalidInput { .. } => Exit::Input,
                toxstore::Error::Migration(toxdedup::Error::InvalidIdentifier { .. }) => Exit::Usage,
                _ => Exit::Store,
            };
        }
        if let Some(dedup_error) = cause.downcast_ref::<toxdedup::Error>() {
            return match dedup_error {
                toxdedup::Error::InvalidIdentifier { .. } | toxdedup::Error::UnknownModel { .. } => Exit::Usage,
                _ => Exit::Store,
            };
        }
        if let Some(model_error) = cause.downcast_ref::<toxmodel::Error>() {
            return match model_error {
                toxmodel::Error::Download { .. } => Exit::Store,
                toxmodel::Error::UnknownModel { .. }
                | toxmodel::Error::Device { .. }
                | toxmodel::Error::UnknownPrecision { .. } => Exit::Usage,
                _ => Exit::Model,
            };
        }
    }
    // An I/O error nobody typed (a lock file beside the store that cannot be
    // created, a read-only folder) is the system's, not a bug of toxcli.
    if fallback == Exit::Failure && error.chain().any(|cause| cause.is::<std::io::Error>()) {
        return Exit::Store;
    }
    fallback
}

/// Prints an error and its causes on stderr, one per line, without a
/// backtrace. Causes whose text is already part of the line above (errors that
/// display their source inline) are skipped.
pub fn report(error: &anyhow::Error) {
    let mut lines: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if lines.last().is_some_and(|previous| previous.contains(&text)) {
            continue;
        }
        lines.push(text);
    }
    let mut lines = lines.into_iter();
    if let Some(first) = lines.next() {
        eprintln!("error: {first}");
    }
    for cause in lines {
        eprintln!("  caused by: {cause}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(error: anyhow::Error, expected: Exit) {
        assert_eq!(classify(&error), expected, "{error:#}");
    }

    #[test]
    fn typed_errors_choose_the_code_through_context() {
        check(anyhow::Error::new(InputError::new("a.csv:3: bad")).context("importing a.csv"), Exit::Input);
        check(anyhow::Error::new(UsageError("--shard".into())), Exit::Usage);
        check(
            anyhow::Error::new(toxstore::Error::Unavailable { backend: "sqlite", what: "busy".into(), source: None })
                .context("writing scores"),
            Exit::Store,
        );
        check(
            anyhow::Error::new(toxmodel::Error::InvalidBatch { problem: "empty".into() }).context("scoring"),
            Exit::Model,
        );
        check(anyhow::Error::new(Interrupted), Exit::Interrupted);
        check(anyhow::anyhow!("something else"), Exit::Failure);
        let unwritable = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        check(anyhow::Error::new(unwritable()).context("creating the lock file a.db.lock"), Exit::Store);
        check(
            anyhow::Error::new(
                OutputError::new(std::path::Path::new("out.csv"), "cannot write it", unwritable()).into_io(),
            )
            .context("writing the export"),
            Exit::Input,
        );
        check(anyhow::Error::new(OutputError::new(std::path::Path::new("o"), "x", unwritable())), Exit::Input);
        check(anyhow::anyhow!("bad hash").context(ModelLoad), Exit::Model);
        check(
            anyhow::Error::new(toxmodel::Error::Download { url: "u".into(), problem: "reset".into(), source: None })
                .context(ModelLoad),
            Exit::Store,
        );
    }
}
