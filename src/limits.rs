//! How much medmig reads of what comes from outside, and the reads that keep to it.
//!
//! Every file medmig is handed may come from somebody else's machine, damaged or hostile: a
//! gzip bomb inside a bundle, `/dev/zero` as a snapshot, a FIFO nobody writes to in a log
//! directory. This module owns the caps on each kind of input (one place, each far above what
//! a real input needs), opening an input without hanging on a FIFO, and reading a file whole
//! within its cap, stopping at the cap with an error that names the cap. What the bytes mean
//! is each caller's business. The README's "Limits" section lists these numbers.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

/// A snapshot file (`--snapshot`), a schema baseline (`--baseline`) and the `snapshot.json`
/// of a bundle: read whole and parsed, so this also bounds the memory parsing takes. The
/// snapshot of Medplum's 497-table schema is 2.7 MB; this leaves room for a schema ten times
/// larger and twice over.
pub const SNAPSHOT_MAX_BYTES: u64 = 64 << 20;

/// The most shards a snapshot may hold. Each is analysed as a database of its own, with the
/// schema contract it shares (`schema_same_as`): some 15 ms each for Medplum's 450 tables, so
/// that a small hostile file of tiny shards naming one contract cannot keep medmig busy for
/// hours. A sharded Medplum deployment has a handful of shards, or dozens.
pub const SNAPSHOT_MAX_SHARDS: usize = 1_000;

/// Any entry of a bundle, decompressed. Entries other than the snapshot and the manifest are
/// only hashed as they stream by, never held; `bundle` stops keeping the lines of one log
/// file before its bundled copy reaches this, so that it never writes what it would refuse.
pub const BUNDLE_ENTRY_MAX_BYTES: u64 = 256 << 20;

/// A bundle's `manifest.json`: a few KB, one line per file and per gap; with the most log
/// files `bundle` reads ([`LOG_FILES_MAX`]) some 3 MB.
pub const BUNDLE_MANIFEST_MAX_BYTES: u64 = 16 << 20;

/// The entries of one bundle: some 25 files, plus one per log file.
pub const BUNDLE_ENTRIES_MAX: usize = LOG_FILES_MAX + 1_000;

/// A GNU long-name or pax header inside a bundle (for a name longer than 100 bytes): a path,
/// and Linux paths are at most 4 KiB. With [`BUNDLE_ENTRIES_MAX`] it bounds the names
/// `bundle verify` keeps to find a name stored twice.
pub const BUNDLE_NAME_MAX_BYTES: u64 = 4 << 10;

/// `medplum.config.json` (`--medplum-config`): a few KB.
pub const MEDPLUM_CONFIG_MAX_BYTES: u64 = 4 << 20;

/// A `data-version-manifest.json` (`--manifest`): the one medmig embeds is 3.5 KB.
pub const VERSION_MANIFEST_MAX_BYTES: u64 = 4 << 20;

/// A migration catalogue (`--migration-catalogue`): the one medmig embeds is 1 MB for 53
/// migrations and 4,600 effects; read whole and parsed, so this also bounds parsing.
pub const CATALOGUE_MAX_BYTES: u64 = 32 << 20;

/// A root certificate file (`--ssl-root-cert`, `PGSSLROOTCERT`): far above any CA bundle (the
/// system's is some 200 KB, RDS's 160 KB).
pub const ROOT_CERT_FILE_MAX_BYTES: u64 = 16 << 20;

/// One log line: longer lines are cut here (the rest is read and dropped).
pub const LOG_LINE_MAX_BYTES: usize = 64 << 10;

/// The files read under `--logs`; the rest are counted in one noted gap.
pub const LOG_FILES_MAX: usize = 10_000;

/// `64 MiB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// The words for an input over its cap: `larger than 64 MiB, the most medmig reads of a
/// snapshot`.
pub fn over(cap: u64, what: &str) -> String {
    format!("larger than {}, the most medmig reads of {what}", size(cap))
}

/// Opens `path` for reading without waiting for a writer: a FIFO nobody writes to reads as
/// empty instead of hanging the open. Reads block as usual afterwards (a pipe being written,
/// such as `<(zcat snapshot.json.gz)`, is read to its end).
pub fn open(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    fcntl_setfl(&file, fcntl_getfl(&file)? - OFlags::NONBLOCK)?;
    Ok(file)
}

/// Reads all of the file at `path`, or fails once it holds more than `cap` bytes (`what`
/// names the input in that error: `a snapshot`). A regular file over the cap is refused by
/// its size before anything is read; a pipe or a device is read up to the cap.
pub fn read_file(path: &Path, cap: u64, what: &str) -> io::Result<Vec<u8>> {
    let file = open(path)?;
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is a directory",
        ));
    }
    let expected = if metadata.is_file() {
        metadata.len()
    } else {
        0
    };
    read_within(file, cap, expected)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, over(cap, what)))
}

/// Reads `reader` to its end, or `None` as soon as it gave more than `cap` bytes. `expected`,
/// the size the caller was told (a file's length, an archive header's), sizes the buffer up
/// front, and one over the cap is refused unread; a wrong one costs only regrowing.
pub fn read_within(reader: impl Read, cap: u64, expected: u64) -> io::Result<Option<Vec<u8>>> {
    if expected > cap {
        return Ok(None);
    }
    // One more than the cap tells "exactly at the cap" from "over it".
    let mut bytes = Vec::with_capacity(usize::try_from(expected + 1).unwrap_or(0));
    reader.take(cap + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= cap).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_cap() {
        assert_eq!(
            read_within(&b"12345"[..], 5, 0).unwrap(),
            Some(b"12345".to_vec())
        );
        assert_eq!(read_within(&b"123456"[..], 5, 0).unwrap(), None);
        // A size announced over the cap is refused before anything is read.
        assert_eq!(read_within(io::repeat(0), 5, 1 << 40).unwrap(), None);
        // An endless stream stops one byte past the cap.
        assert_eq!(read_within(io::repeat(0), 1 << 20, 0).unwrap(), None);
        // A wrong, small announcement only costs regrowing.
        assert_eq!(read_within(&b"123"[..], 5, 1).unwrap().unwrap(), b"123");
    }

    #[test]
    fn caps_read_in_words() {
        assert_eq!(size(SNAPSHOT_MAX_BYTES), "64 MiB");
        assert_eq!(size(LOG_LINE_MAX_BYTES as u64), "64 KiB");
        assert_eq!(size(1000), "1000 bytes");
        assert_eq!(
            over(SNAPSHOT_MAX_BYTES, "a snapshot"),
            "larger than 64 MiB, the most medmig reads of a snapshot"
        );
    }
}
