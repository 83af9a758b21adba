//! Standard output for every command that prints results.
//!
//! A reader that closes the pipe early (`toxcli export | head`) is not a
//! failure: the write error is marked here as [`StdoutClosed`], and `main`
//! ends such a run quietly with success, whatever the command (ripgrep does
//! the same). Only stdout's errors are marked, so a broken network socket
//! is still reported.

use std::io::{self, BufWriter, StdoutLock, Write};

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
