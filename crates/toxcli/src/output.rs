//! Standard output for every command that prints results.
//!
//! A reader that closes the pipe early (`toxcli export | head`) is not a
//! failure: the write error is marked here as [`StdoutClosed`], and `main`
//! ends such a run quietly with success, whatever the command (ripgrep does
//! the same). Only stdout's errors are marked, so a broken network socket
//! is still reported.

use std::io::{self, BufWriter, StdoutLock, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::exit::UsageError;

/// The marker inside the `io::Error` of a write to a closed stdout.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Buffered, locked stdout whose closed-pipe errors carry [`StdoutClosed`].
pub struct Stdout(BufWriter<StdoutLock<'static>>);

/// Opens stdout for a command's results.
pub fn stdout() -> Stdout {
    Stdout(BufWriter::with_capacity(1 << 16, io::stdout().lock()))
}

fn mark(error: io::Error) -> io::Error {
    if error.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        error
    }
}

impl Write for Stdout {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write(bytes).map_err(mark)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark)
    }
}

/// Whether an error comes from writing to a closed stdout.
pub fn is_stdout_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.downcast_ref::<StdoutClosed>().is_some())
    })
}

/// A usage error unless the folder of an output file exists.
pub fn check_output_folder(flag: &str, path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(
            UsageError(format!("{flag} {}: the folder {} does not exist", path.display(), parent.display())).into()
        );
    }
    Ok(())
}

/// The temporary file beside `path` that a whole output is written to
/// before it is renamed to `path`.
pub fn temporary_beside(path: &Path) -> PathBuf {
    let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` through [`temporary_beside`] and a rename: a
/// reader never sees a half-written file under that name, and a failure
/// leaves what was there before.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = temporary_beside(path);
    let written = std::fs::File::create(&temporary)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .with_context(|| format!("writing {}", temporary.display()))
        .and_then(|()| {
            std::fs::rename(&temporary, path)
                .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn only_a_closed_stdout_is_marked() {
        let closed = anyhow::Error::new(mark(io::Error::from(io::ErrorKind::BrokenPipe))).context("writing the export");
        assert!(is_stdout_closed(&closed));
        let socket: anyhow::Result<()> = Err(io::Error::from(io::ErrorKind::BrokenPipe)).context("sending a request");
        assert!(!is_stdout_closed(&socket.expect_err("an error")));
        assert!(!is_stdout_closed(&anyhow::Error::new(mark(io::Error::from(io::ErrorKind::WriteZero)))));
    }
}
