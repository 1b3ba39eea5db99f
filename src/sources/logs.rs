//! Server log files as medmig reads them for a bundle: what `--logs` names (files, FIFOs, and
//! directories walked without following links, at most [`LOG_FILES_MAX`] files), each opened
//! without waiting for a writer, decompressed when it is gzip, passed over when it is binary,
//! and read one line at a time.
//!
//! This module owns the reading only, and keeps memory bounded whatever the size: lines come
//! one at a time into a capped buffer. Which lines are kept, what is read from them, their
//! redaction and where they go in the bundle are `bundle/logs.rs`'s. Nothing here fails on a
//! file: what cannot be read is passed over with a note saying why.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use flate2::read::MultiGzDecoder;

use crate::limits::{self, LOG_FILES_MAX, LOG_LINE_MAX_BYTES};

/// Longer lines are cut here (the rest is read and dropped), so no line can exhaust memory.
pub const MAX_LINE: usize = LOG_LINE_MAX_BYTES;

/// The files under every path named with `--logs`, in order, and the paths passed over with
/// why: at most [`LOG_FILES_MAX`], then one note for the rest.
pub fn files_under(paths: &[PathBuf]) -> Vec<LogInput> {
    let mut found = Vec::new();
    for path in paths {
        collect_files(path, true, &mut found);
    }
    found
}

/// Something found under `--logs`: a file to read, or a path passed over unopened and why.
#[derive(Debug, PartialEq, Eq)]
pub enum LogInput {
    File(PathBuf),
    PassedOver(PathBuf, String),
}

/// The files under `path`, in name order, at most [`LOG_FILES_MAX`] (then one note for the
/// rest). A path named on the command line is followed when it is a link, and read when it is
/// a regular file or a FIFO (`--logs <(kubectl logs …)`). Inside a directory nothing is
/// followed: regular files are read, directories entered, and links, FIFOs, sockets and
/// devices passed over unopened, so that no entry can hang the bundle or loop it. Whatever
/// cannot be listed or examined is passed over with the reason; nothing here fails.
fn collect_files(path: &Path, named: bool, found: &mut Vec<LogInput>) {
    let passed_over = |found: &mut Vec<LogInput>, why: String| {
        found.push(LogInput::PassedOver(path.to_path_buf(), why));
    };
    if found.len() >= LOG_FILES_MAX {
        if found.len() == LOG_FILES_MAX {
            passed_over(
                found,
                format!(
                    "more than {LOG_FILES_MAX} files under --logs: this and the rest were not read"
                ),
            );
        }
        return;
    }
    let metadata = if named {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    let kind = match metadata {
        Ok(metadata) => metadata.file_type(),
        Err(err) => return passed_over(found, format!("cannot be examined ({err}): skipped")),
    };
    if kind.is_dir() {
        let listing = match std::fs::read_dir(path) {
            Ok(listing) => listing,
            Err(err) => {
                return passed_over(
                    found,
                    format!("directory cannot be listed ({err}): skipped"),
                )
            }
        };
        // Listed whole to read in name order; no more of a listing than can still be read.
        let mut entries = Vec::new();
        for entry in listing.take(LOG_FILES_MAX + 1 - found.len()) {
            match entry {
                Ok(entry) => entries.push(entry.path()),
                Err(err) => {
                    passed_over(found, format!("directory cannot be listed in full ({err})"))
                }
            }
        }
        entries.sort();
        for entry in entries {
            collect_files(&entry, false, found);
        }
    } else if kind.is_file() || (named && kind.is_fifo()) {
        found.push(LogInput::File(path.to_path_buf()));
    } else {
        let what = if kind.is_symlink() {
            "a symbolic link: links inside a --logs directory are not followed (name the target with --logs to read it)"
        } else if kind.is_fifo() {
            "a FIFO: special files inside a --logs directory are skipped unopened"
        } else if kind.is_socket() {
            "a socket: skipped unopened"
        } else {
            "a device: skipped unopened"
        };
        passed_over(found, what.to_string());
    }
}

/// One log file open for reading, line by line.
pub struct LogReader {
    reader: BufReader<CountingReader<Box<dyn Read>>>,
    gzip: bool,
}

impl LogReader {
    /// Opens `path`, gunzipping it when it starts as gzip does. `Err` is the note of a file
    /// passed over: one that is no longer a regular file or FIFO, cannot be opened or read, or
    /// holds binary content.
    pub fn open(path: &Path) -> Result<LogReader, String> {
        // Opened without waiting for a writer, and examined again once open: what was listed as
        // a file may have been replaced since.
        let file = match limits::open(path).and_then(|file| Ok((file.metadata()?, file))) {
            Ok((metadata, file)) if metadata.is_file() || metadata.file_type().is_fifo() => file,
            Ok(_) => return Err("not a regular file when opened: skipped".into()),
            Err(err) => return Err(format!("cannot be opened ({err}): skipped")),
        };
        let mut raw = BufReader::with_capacity(256 * 1024, file);
        let gzip = match raw.fill_buf() {
            Ok(head) => head.starts_with(&[0x1f, 0x8b]),
            Err(err) => return Err(format!("unreadable ({err}): skipped")),
        };
        let input: Box<dyn Read> = if gzip {
            Box::new(MultiGzDecoder::new(raw))
        } else {
            Box::new(raw)
        };
        let mut reader = BufReader::with_capacity(
            256 * 1024,
            CountingReader {
                inner: input,
                count: 0,
            },
        );
        let binary = match reader.fill_buf() {
            Ok(head) => head[..head.len().min(8192)].contains(&0),
            Err(err) => return Err(format!("unreadable ({err}): skipped")),
        };
        if binary {
            return Err("binary content: skipped".into());
        }
        Ok(LogReader { reader, gzip })
    }

    /// Reads the next line (without its newline) into `line`, keeping at most [`MAX_LINE`]
    /// bytes. `Ok(None)` at the end; `Ok(Some(true))` when the line was cut.
    pub fn next_line(&mut self, line: &mut Vec<u8>) -> io::Result<Option<bool>> {
        next_line(&mut self.reader, line)
    }

    /// Bytes read so far, decompressed.
    pub fn bytes_read(&self) -> u64 {
        self.reader.get_ref().count
    }

    /// Whether the file is gzip (a read error then means a truncated or damaged file).
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }
}

/// Counts the bytes that pass through.
struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Reads one line (without its newline) into `line`, keeping at most [`MAX_LINE`] bytes.
/// `Ok(None)` at the end; `Ok(Some(true))` when the line was cut.
fn next_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Option<bool>> {
    line.clear();
    let mut cut = false;
    let mut any = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(any.then_some(cut));
        }
        any = true;
        let (end, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&buf[..end.min(room)]);
        cut |= end > room;
        reader.consume(if done { end + 1 } else { end });
        if done {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(cut));
        }
    }
}

/// An error if a path named with `--logs` does not exist (checked before any database work).
/// One that exists but cannot be read, a link that leads nowhere included, is a noted gap of
/// the bundle instead.
pub fn check_paths(paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        match std::fs::symlink_metadata(path) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(anyhow!(
                    "--logs {}: no such file or directory",
                    path.display()
                ))
            }
            Err(err) => return Err(anyhow!("--logs {}: {err}", path.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("medmig-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_directory_gives_at_most_the_most_files_then_one_note() {
        let dir = temp_dir("many-files");
        for i in 0..LOG_FILES_MAX + 5 {
            std::fs::File::create(dir.join(format!("{i:05}.log"))).unwrap();
        }
        let mut found = Vec::new();
        collect_files(&dir, true, &mut found);
        assert_eq!(found.len(), LOG_FILES_MAX + 1);
        assert!(found[..LOG_FILES_MAX]
            .iter()
            .all(|f| matches!(f, LogInput::File(_))));
        assert!(
            matches!(&found[LOG_FILES_MAX], LogInput::PassedOver(_, why) if why.contains("the rest were not read")),
            "{:?}",
            found[LOG_FILES_MAX]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_lines_are_cut_and_reading_goes_on() {
        let mut data = vec![b'x'; MAX_LINE * 3];
        data.extend_from_slice(b"\nshort\n");
        let mut reader = BufReader::with_capacity(1024, &data[..]);
        let mut line = Vec::new();
        assert_eq!(next_line(&mut reader, &mut line).unwrap(), Some(true));
        assert_eq!(line.len(), MAX_LINE);
        assert_eq!(next_line(&mut reader, &mut line).unwrap(), Some(false));
        assert_eq!(line, b"short");
        assert_eq!(next_line(&mut reader, &mut line).unwrap(), None);
    }
}
