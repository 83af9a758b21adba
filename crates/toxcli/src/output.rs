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

use crate::exit::{OutputError, UsageError};

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
        OutputError::new(Path::new("stdout"), "cannot write it", error).into_io()
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
fn check_output_folder(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(UsageError(format!("{}: the folder {} does not exist", path.display(), parent.display())).into());
    }
    Ok(())
}

/// How an output file is written.
#[derive(Debug, PartialEq, Eq)]
enum Destination {
    /// A regular file, or a new one: written beside this path (the end of
    /// the given one's symlinks) and renamed over it when complete.
    Replace(PathBuf),
    /// Anything else (a FIFO, a device, `/dev/stdout`, `/dev/fd/N`): written
    /// in place, since a rename would replace the node itself.
    InPlace,
}

/// Where the bytes for `given` go: a folder (or a symlink to one) is refused
/// before anything is written, and a symlink is followed, so that its
/// target is what gets replaced and the link stays a link.
fn destination(given: &Path) -> anyhow::Result<Destination> {
    let mut path = given.to_path_buf();
    // As the kernel does, give up on a loop of links after 40.
    for _ in 0..40 {
        // The process's own descriptors (`/dev/stdout`, a shell's
        // `>(gzip > x.gz)`) are no file to put another beside.
        if path.starts_with("/proc") || path.starts_with("/dev/fd") {
            return Ok(Destination::InPlace);
        }
        let metadata = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                check_output_folder(&path)?;
                return Ok(Destination::Replace(path));
            }
            Err(error) => return Err(OutputError::new(given, "cannot read what it is", error).into()),
        };
        let file_type = metadata.file_type();
        if file_type.is_symlink() {
            let target =
                std::fs::read_link(&path).map_err(|error| OutputError::new(given, "cannot read the symlink", error))?;
            path = match path.parent() {
                Some(parent) if target.is_relative() => parent.join(target),
                _ => target,
            };
        } else if file_type.is_dir() {
            return Err(UsageError(format!("{}: is a folder; name a file to write", given.display())).into());
        } else if file_type.is_file() {
            return Ok(Destination::Replace(path));
        } else {
            return Ok(Destination::InPlace);
        }
    }
    Err(UsageError(format!("{}: too many levels of symlinks", given.display())).into())
}

/// Checks an output path before any work: a usage error for a folder, or a
/// file in a folder that does not exist.
pub fn check_output(path: &Path) -> anyhow::Result<()> {
    destination(path).map(drop)
}

/// An output file being written. A regular file (or a new path) is written
/// to a temporary file beside it, renamed over it by [`OutputFile::commit`]:
/// a reader never sees a half-written file under that name, and a failure
/// leaves what was there before, and no temporary file. Anything else (a
/// FIFO, a device, `/dev/stdout`) is written straight through.
pub struct OutputFile {
    /// The path as given, for messages.
    given: PathBuf,
    writer: BufWriter<std::fs::File>,
    /// The final path and the temporary file, until the rename.
    replace: Option<(PathBuf, PathBuf)>,
}

impl OutputFile {
    /// Opens `path` for writing as described on [`OutputFile`].
    pub fn create(path: &Path) -> anyhow::Result<OutputFile> {
        let (file, replace) = match destination(path)? {
            Destination::InPlace => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(path)
                    .map_err(|error| OutputError::new(path, "cannot open it", error))?;
                (file, None)
            }
            Destination::Replace(target) => {
                let temporary = temporary_beside(&target);
                let file = std::fs::File::create(&temporary).map_err(|error| {
                    OutputError::new(path, &format!("cannot create {} beside it", temporary.display()), error)
                })?;
                (file, Some((target, temporary)))
            }
        };
        Ok(OutputFile { given: path.to_owned(), writer: BufWriter::with_capacity(1 << 16, file), replace })
    }

    /// Flushes the file and, for a replaced one, syncs it and renames it into place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        self.flush()?;
        if let Some((target, temporary)) = &self.replace {
            self.writer.get_ref().sync_all().map_err(|error| OutputError::new(&self.given, "cannot sync it", error))?;
            std::fs::rename(temporary, target).map_err(|error| {
                OutputError::new(&self.given, &format!("cannot rename {} to it", temporary.display()), error)
            })?;
            self.replace = None;
        }
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.writer.write(bytes).map_err(|error| OutputError::new(&self.given, "cannot write it", error).into_io())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush().map_err(|error| OutputError::new(&self.given, "cannot write it", error).into_io())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        // Not committed: the temporary file goes, whatever failed.
        if let Some((_, temporary)) = self.replace.take() {
            let _ = std::fs::remove_file(temporary);
        }
    }
}

/// The temporary file beside `path` that a whole output is written to
/// before it is renamed to `path`.
fn temporary_beside(path: &Path) -> PathBuf {
    let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` through an [`OutputFile`].
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = OutputFile::create(path)?;
    file.write_all(bytes).context("writing the output")?;
    file.commit()
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
