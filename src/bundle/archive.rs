//! The bundle file: a gzip-compressed tar whose first entry, `manifest.json`, lists every
//! other file with its size and SHA-256. Written through a staging directory and packed at
//! the end through `outfile.rs`, so an interrupted run leaves nothing that looks complete;
//! read back with the checksum of what is read checked against the manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::diagnostics::Gap;
use crate::limits::{
    self, BUNDLE_ENTRIES_MAX, BUNDLE_ENTRY_MAX_BYTES, BUNDLE_MANIFEST_MAX_BYTES,
    BUNDLE_NAME_MAX_BYTES, SNAPSHOT_MAX_BYTES,
};
use crate::outfile::{Destination, Scratch};
use crate::snapshot::{Snapshot, SnapshotSource};

/// The bundle format (its `manifest.json`) this medmig writes and the newest it reads; the
/// snapshot inside has a format of its own.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;

/// What `manifest.json` says a bundle is.
pub const BUNDLE_KIND: &str = "medmig-support-bundle";

/// The name of the manifest entry, always first.
pub const MANIFEST: &str = "manifest.json";

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format_version: u32,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub medmig_version: String,
    /// The command that made it, redacted.
    pub command_line: Vec<String>,
    /// The database, without password; `null` with `--no-db`.
    pub source: Option<SnapshotSource>,
    /// The log window.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Every other file, in archive order.
    pub files: Vec<BundledFile>,
    /// Replacements made, per redaction rule.
    pub redactions: BTreeMap<String, u64>,
    /// What could not be collected, and why.
    pub not_collected: Vec<Gap>,
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundledFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// The files of a bundle being made, in a work directory beside the output (see
/// `outfile.rs`); removed when dropped, and on SIGINT or SIGTERM.
pub struct Staging {
    dir: Scratch,
    files: Vec<String>,
}

impl Staging {
    /// Creates the staging directory for `destination`.
    pub fn new(destination: &Destination) -> Result<Staging> {
        Ok(Staging {
            dir: destination.work_directory()?,
            files: Vec::new(),
        })
    }

    /// The directory `relative` (created), for writers that stream into it.
    pub fn directory(&self, relative: &str) -> Result<PathBuf> {
        self.make_directory(Path::new(relative))
    }

    /// Creates `relative` inside the staging directory, one level at a time and never the
    /// staging directory itself: once a signal has removed it, writing fails rather than
    /// make a new one that nothing would remove.
    fn make_directory(&self, relative: &Path) -> Result<PathBuf> {
        let mut path = self.dir.path().to_path_buf();
        for part in relative.components() {
            path.push(part);
            match fs::create_dir(&path) {
                Err(err) if !(err.kind() == io::ErrorKind::AlreadyExists && path.is_dir()) => {
                    bail!("cannot create {}: {err}", path.display())
                }
                _ => {}
            }
        }
        Ok(path)
    }

    /// Adds a file with `bytes` at `relative`.
    pub fn write(&mut self, relative: &str, bytes: &[u8]) -> Result<()> {
        let relative_path = Path::new(relative);
        if let Some(parent) = relative_path.parent() {
            self.make_directory(parent)?;
        }
        let path = self.dir.path().join(relative_path);
        fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        self.files.push(relative.to_string());
        Ok(())
    }

    /// Adds pretty JSON at `relative`.
    pub fn write_json(&mut self, relative: &str, value: &impl Serialize) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(value)?;
        text.push(b'\n');
        self.write(relative, &text)
    }

    /// The bytes of a file already added at `relative`: what goes into the archive.
    pub fn read(&self, relative: &str) -> Result<Vec<u8>> {
        let path = self.dir.path().join(relative);
        fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    }

    /// The files added so far, in archive order.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Adds a file a writer already put at `relative` inside the staging directory.
    pub fn adopt(&mut self, relative: &str) {
        self.files.push(relative.to_string());
    }

    /// Hashes every file into `manifest.files` and writes the archive to `destination`: the
    /// manifest first, then the files.
    pub fn finish(
        self,
        mut manifest: BundleManifest,
        destination: Destination,
    ) -> Result<BundleManifest> {
        let dir = self.dir.path();
        manifest.files.clear();
        for relative in &self.files {
            let path = dir.join(relative);
            let mut hasher = Sha256::new();
            let size = io::copy(&mut File::open(&path)?, &mut hasher)?;
            manifest.files.push(BundledFile {
                path: relative.clone(),
                size,
                sha256: hex(&hasher.finalize()),
            });
        }
        let mut manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
        manifest_bytes.push(b'\n');
        let mtime = u64::try_from(manifest.created_at.timestamp()).unwrap_or(0);
        let files = &self.files;
        destination.write_with(|out| {
            let encoder = GzEncoder::new(out, Compression::default());
            let mut tar = tar::Builder::new(encoder);
            append(
                &mut tar,
                MANIFEST,
                manifest_bytes.len() as u64,
                mtime,
                &manifest_bytes[..],
            )?;
            for relative in files {
                let source = File::open(dir.join(relative))?;
                let size = source.metadata()?.len();
                append(&mut tar, relative, size, mtime, BufReader::new(source))?;
            }
            tar.into_inner()?.finish()?.flush()
        })?;
        Ok(manifest)
    }
}

fn append(
    tar: &mut tar::Builder<GzEncoder<impl Write>>,
    path: &str,
    size: u64,
    mtime: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, data)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A bundle's archive, decompressed as it is read.
type Archive = tar::Archive<GzDecoder<BufReader<File>>>;

/// One entry of a bundle's archive, its data not yet read.
type RawEntry<'a> = tar::Entry<'a, GzDecoder<BufReader<File>>>;

fn open_archive(path: &Path) -> Result<Archive> {
    let file =
        limits::open(path).with_context(|| format!("cannot read bundle {}", path.display()))?;
    Ok(tar::Archive::new(GzDecoder::new(BufReader::new(file))))
}

/// One entry of the archive as stored, judged before any of its data is read.
struct Stored<'a> {
    entry: RawEntry<'a>,
    /// The name as stored, `./` and all.
    name: String,
    /// The name without leading `./`: where unpacking puts it.
    canonical: String,
    /// Why it is not what medmig writes (a plain file at a safe relative path), if it is not.
    refused: Option<String>,
}

/// The entries of an archive as stored. The tar crate's own iterator would read a long-name
/// or pax header of any size into memory; this one reads the raw headers and applies a long
/// name itself, within [`limits::BUNDLE_NAME_MAX_BYTES`], and stops after
/// [`limits::BUNDLE_ENTRIES_MAX`] entries.
struct StoredEntries<'a> {
    raw: tar::Entries<'a, GzDecoder<BufReader<File>>>,
    count: usize,
}

impl<'a> StoredEntries<'a> {
    fn new(archive: &'a mut Archive) -> io::Result<StoredEntries<'a>> {
        Ok(StoredEntries {
            raw: archive.entries()?.raw(true),
            count: 0,
        })
    }

    /// The next entry, or why the archive cannot be read further.
    fn next_stored(&mut self) -> Option<io::Result<Stored<'a>>> {
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let mut entry = match self.raw.next()? {
                Ok(entry) => entry,
                Err(err) => return Some(Err(err)),
            };
            let kind = entry.header().entry_type();
            if kind.is_gnu_longname()
                || kind.is_gnu_longlink()
                || kind.is_pax_local_extensions()
                || kind.is_pax_global_extensions()
            {
                let size = entry.size();
                let bytes = match limits::read_within(&mut entry, BUNDLE_NAME_MAX_BYTES, size) {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => {
                        return Some(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "a name header of {size} bytes, {}",
                                limits::over(BUNDLE_NAME_MAX_BYTES, "a name")
                            ),
                        )))
                    }
                    Err(err) => return Some(Err(err)),
                };
                let text = |bytes: &[u8]| bytes.strip_suffix(b"\0").unwrap_or(bytes).to_vec();
                if kind.is_gnu_longname() {
                    long_name = Some(text(&bytes));
                } else if kind.is_gnu_longlink() {
                    long_link = Some(text(&bytes));
                } else if kind.is_pax_local_extensions() {
                    for extension in tar::PaxExtensions::new(&bytes).flatten() {
                        match extension.key() {
                            Ok("path") => long_name = Some(extension.value_bytes().to_vec()),
                            Ok("linkpath") => long_link = Some(extension.value_bytes().to_vec()),
                            _ => {}
                        }
                    }
                }
                continue;
            }
            self.count += 1;
            if self.count > BUNDLE_ENTRIES_MAX {
                return Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("more than {BUNDLE_ENTRIES_MAX} entries, the most medmig reads"),
                )));
            }
            let name = long_name.unwrap_or_else(|| entry.path_bytes().into_owned());
            let link = long_link.or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
            let refused = refusal(kind, &name, link.as_deref());
            let name = String::from_utf8_lossy(&name).into_owned();
            return Some(Ok(Stored {
                entry,
                canonical: canonical(&name).to_string(),
                name,
                refused,
            }));
        }
    }
}

/// `name` without leading `./`.
fn canonical(mut name: &str) -> &str {
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    name
}

/// Why an entry is not what medmig writes, a plain file at a safe relative path, if it is
/// not. Links are named, never followed.
fn refusal(kind: tar::EntryType, name: &[u8], link: Option<&[u8]>) -> Option<String> {
    let target = || String::from_utf8_lossy(link.unwrap_or_default()).into_owned();
    let not_plain = match kind {
        tar::EntryType::Regular => None,
        tar::EntryType::Symlink => Some(format!("a symbolic link to {}", target())),
        tar::EntryType::Link => Some(format!("a hard link to {}", target())),
        tar::EntryType::Directory => Some("a directory".to_string()),
        tar::EntryType::Char | tar::EntryType::Block => Some("a device".to_string()),
        tar::EntryType::Fifo => Some("a FIFO".to_string()),
        other => Some(format!(
            "an entry of tar type {:?}",
            char::from(other.as_byte())
        )),
    };
    if let Some(what) = not_plain {
        return Some(format!("{what}, not a plain file"));
    }
    let Ok(name) = std::str::from_utf8(name) else {
        return Some("a name that is not UTF-8".to_string());
    };
    let parts: Vec<&str> = canonical(name).split('/').collect();
    if name.starts_with('/') {
        Some("an absolute path".to_string())
    } else if parts.contains(&"..") {
        Some("a path that leads out of the bundle (..)".to_string())
    } else if parts.iter().any(|p| p.is_empty() || *p == ".") {
        Some("a path with empty or . parts".to_string())
    } else {
        None
    }
}

/// What the walk over every entry found besides the files it handed over.
#[derive(Debug, Default)]
struct Walked {
    /// Entries not read, with why: see [`Verification::refused`].
    refused: Vec<(String, String)>,
    /// Why the walk stopped before the end, if it did.
    stopped: Option<String>,
}

/// Walks every entry of the bundle at `path` in archive order: `visit` gets each plain file
/// at a safe relative path stored once, with its name as stored and without `./`, except the
/// manifest; every other entry is refused unread. Stops at an entry over
/// [`limits::BUNDLE_ENTRY_MAX_BYTES`], where the archive cannot be read further, and where
/// `visit` fails (the entry ends early).
fn walk(
    path: &Path,
    mut visit: impl FnMut(&str, &str, &mut RawEntry<'_>) -> io::Result<()>,
) -> Result<Walked> {
    let mut archive = open_archive(path)?;
    let mut walked = Walked::default();
    let mut entries = match StoredEntries::new(&mut archive) {
        Ok(entries) => entries,
        Err(err) => {
            walked.stopped = Some(format!("the archive cannot be read ({err})"));
            return Ok(walked);
        }
    };
    let mut names = BTreeSet::new();
    let mut manifest_passed = false;
    while let Some(next) = entries.next_stored() {
        let mut stored = match next {
            Ok(stored) => stored,
            Err(err) => {
                walked.stopped = Some(format!("the archive cannot be read further: {err}"));
                break;
            }
        };
        let name = stored.name.clone();
        let first = names.insert(stored.canonical.clone());
        if stored.canonical == MANIFEST && stored.refused.is_none() && !manifest_passed {
            // Read by `open`, the first plain manifest.json of the archive.
            manifest_passed = true;
            continue;
        }
        if !first {
            walked.refused.push((
                name,
                "stored a second time: medmig stores each file once, and tools disagree on \
                 which copy is real"
                    .to_string(),
            ));
            continue;
        }
        if let Some(why) = stored.refused {
            walked.refused.push((name, why));
            continue;
        }
        let size = stored.entry.size();
        if size > BUNDLE_ENTRY_MAX_BYTES {
            walked.refused.push((
                name.clone(),
                format!(
                    "{size} bytes, {}",
                    limits::over(BUNDLE_ENTRY_MAX_BYTES, "one bundle entry")
                ),
            ));
            walked.stopped = Some(format!("nothing after {name} was read"));
            break;
        }
        if let Err(err) = visit(&stored.name, &stored.canonical, &mut stored.entry) {
            walked.stopped = Some(format!(
                "the archive is truncated or damaged in {name} ({err})"
            ));
            break;
        }
    }
    Ok(walked)
}

/// A bundle's manifest, and how it was stored when not as medmig stores it.
struct OpenBundle {
    manifest: BundleManifest,
    /// `stored as ./manifest.json, entry 7 and not the first`.
    manifest_stored: Option<String>,
}

/// Opens `path` and reads its manifest, the first plain `manifest.json` (or `./manifest.json`)
/// of the archive; any failure here means "not a readable bundle".
fn open(path: &Path) -> Result<OpenBundle> {
    let shown = path.display();
    let not_bundle = |why: String| {
        anyhow!("{shown} is not a medmig bundle ({why}): pass a file written by `medmig bundle`")
    };
    let mut archive = open_archive(path)?;
    let mut entries =
        StoredEntries::new(&mut archive).map_err(|err| not_bundle(err.to_string()))?;
    let mut position = 0;
    let mut passed = 0u64;
    let (mut entry, name) = loop {
        let stored = match entries.next_stored() {
            None if position == 0 => return Err(not_bundle("it is empty".into())),
            None => return Err(not_bundle(format!("it has no {MANIFEST}"))),
            Some(Err(err)) if position == 0 => {
                return Err(not_bundle(format!("it is not a readable tar.gz: {err}")))
            }
            Some(Err(err)) => {
                return Err(not_bundle(format!(
                    "it cannot be read past entry {position}: {err}"
                )))
            }
            Some(Ok(stored)) => stored,
        };
        position += 1;
        if stored.canonical == MANIFEST && stored.refused.is_none() {
            break (stored.entry, stored.name);
        }
        // What is passed over is decompressed: a bomb in front of the manifest ends the search.
        passed = passed.saturating_add(stored.entry.size());
        if passed > BUNDLE_ENTRY_MAX_BYTES {
            return Err(not_bundle(format!(
                "no {MANIFEST} in its first {}",
                limits::size(BUNDLE_ENTRY_MAX_BYTES)
            )));
        }
    };
    let size = entry.size();
    let text = limits::read_within(&mut entry, BUNDLE_MANIFEST_MAX_BYTES, size)
        .map_err(|err| not_bundle(err.to_string()))?
        .ok_or_else(|| {
            not_bundle(format!(
                "its {MANIFEST} is {size} bytes, {}",
                limits::over(BUNDLE_MANIFEST_MAX_BYTES, "a bundle's manifest")
            ))
        })?;
    let value: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|err| not_bundle(format!("unreadable manifest: {err}")))?;
    if value.get("kind").and_then(|k| k.as_str()) != Some(BUNDLE_KIND) {
        return Err(not_bundle("its manifest is not a medmig bundle's".into()));
    }
    let version = value
        .get("format_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if version > u64::from(BUNDLE_FORMAT_VERSION) {
        bail!("bundle {shown} has format_version {version} and this medmig reads up to {BUNDLE_FORMAT_VERSION}: upgrade medmig");
    }
    let manifest = serde_json::from_value(value)
        .map_err(|err| not_bundle(format!("unreadable manifest: {err}")))?;
    let mut how = Vec::new();
    if name != MANIFEST {
        how.push(format!("stored as {name}"));
    }
    if position > 1 {
        how.push(format!("entry {position} and not the first"));
    }
    let manifest_stored = (!how.is_empty()).then(|| {
        format!(
            "{}: medmig stores {MANIFEST} first (was the bundle unpacked and packed again?)",
            how.join(", ")
        )
    });
    Ok(OpenBundle {
        manifest,
        manifest_stored,
    })
}

/// The snapshot inside a bundle, checked against its checksum, no more than
/// [`limits::SNAPSHOT_MAX_BYTES`]. A bundle with any entry that is not a plain file at a
/// safe relative path, or a name stored twice, is refused: `bundle verify` names them.
pub fn read_snapshot(path: &Path) -> Result<Snapshot> {
    let shown = path.display();
    let bundle = open(path)?;
    let expected = bundle
        .manifest
        .files
        .iter()
        .find(|f| f.path == "snapshot.json")
        .cloned()
        .ok_or_else(|| {
            anyhow!("bundle {shown} has no database snapshot (it was made with --no-db)")
        })?;
    let damaged = |why: String| {
        anyhow!("bundle {shown} is damaged ({why}): run `medmig bundle verify {shown}`")
    };
    let mut found: Option<Result<Vec<u8>>> = None;
    let walked = walk(path, |name, _, entry| {
        if name != "snapshot.json" {
            return Ok(());
        }
        let size = entry.size();
        found = Some(if size != expected.size {
            Err(damaged(format!(
                "snapshot.json is {size} bytes, the manifest says {}",
                expected.size
            )))
        } else {
            limits::read_within(entry, SNAPSHOT_MAX_BYTES, size)?.ok_or_else(|| {
                anyhow!(
                    "cannot read the snapshot in bundle {shown}: snapshot.json is {}",
                    limits::over(SNAPSHOT_MAX_BYTES, "a snapshot")
                )
            })
        });
        Ok(())
    })?;
    if let Some((name, why)) = walked.refused.first() {
        bail!(
            "bundle {shown} has an entry medmig does not read, {name}: {why}: run `medmig bundle verify {shown}`"
        );
    }
    if let Some(why) = walked.stopped {
        return Err(damaged(why));
    }
    let bytes = found.unwrap_or_else(|| Err(damaged("snapshot.json is missing".into())))?;
    if hex(&Sha256::digest(&bytes)) != expected.sha256 {
        return Err(damaged("snapshot.json does not match its checksum".into()));
    }
    Snapshot::parse_bytes(&bytes)
        .with_context(|| format!("the snapshot in bundle {shown} is unusable"))
}

/// The files of a bundle that `wanted` names, with the manifest. `wanted` gives the most bytes
/// each may have (a bigger one refuses the bundle), and all together may have no more than
/// `total_max`: the manifest chooses how many files it lists. Each is checked against the size
/// and SHA-256 the manifest gives it. A wanted file the manifest does not list is left out (an
/// older bundle, or one made with `--no-db`); one it lists that is missing, damaged or changed
/// refuses the bundle, as does any entry that is not a plain file at a safe relative path.
pub fn read_files(
    path: &Path,
    wanted: impl Fn(&str) -> Option<u64>,
    total_max: u64,
) -> Result<(BundleManifest, BTreeMap<String, Vec<u8>>)> {
    let shown = path.display();
    let bundle = open(path)?;
    let listed: BTreeMap<&str, (&BundledFile, u64)> = bundle
        .manifest
        .files
        .iter()
        .filter_map(|f| wanted(&f.path).map(|max| (f.path.as_str(), (f, max))))
        .collect();
    // Judged by the manifest's sizes before anything is read; each read is held to them.
    let total: u64 = listed
        .values()
        .map(|(f, max)| f.size.min(max.saturating_add(1)))
        .fold(0, u64::saturating_add);
    if total > total_max {
        bail!(
            "cannot read bundle {shown}: the files medmig reads from it are {}",
            limits::over(total_max, "these files together")
        );
    }
    let damaged = |why: String| {
        anyhow!("bundle {shown} is damaged ({why}): run `medmig bundle verify {shown}`")
    };
    let mut found: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut problem: Option<anyhow::Error> = None;
    let walked = walk(path, |name, _, entry| {
        let Some(&(expected, max)) = listed.get(name) else {
            return Ok(());
        };
        let size = entry.size();
        if size != expected.size {
            problem.get_or_insert_with(|| {
                damaged(format!(
                    "{name} is {size} bytes, the manifest says {}",
                    expected.size
                ))
            });
            return Ok(());
        }
        match limits::read_within(entry, max, size)? {
            Some(bytes) if hex(&Sha256::digest(&bytes)) == expected.sha256 => {
                found.insert(name.to_string(), bytes);
            }
            Some(_) => {
                problem
                    .get_or_insert_with(|| damaged(format!("{name} does not match its checksum")));
            }
            None => {
                problem.get_or_insert_with(|| {
                    anyhow!(
                        "cannot read {name} in bundle {shown}: it is {}",
                        limits::over(max, "this bundle file")
                    )
                });
            }
        }
        Ok(())
    })?;
    if let Some((name, why)) = walked.refused.first() {
        bail!(
            "bundle {shown} has an entry medmig does not read, {name}: {why}: run `medmig bundle verify {shown}`"
        );
    }
    if let Some(why) = walked.stopped {
        return Err(damaged(why));
    }
    if let Some(problem) = problem {
        return Err(problem);
    }
    if let Some(missing) = listed.keys().find(|name| !found.contains_key(**name)) {
        return Err(damaged(format!("{missing} is missing")));
    }
    Ok((bundle.manifest, found))
}

/// What `bundle verify` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub manifest: BundleManifest,
    /// Each file of the manifest: its size when it matches, or what is wrong.
    pub files: Vec<(String, Result<u64, String>)>,
    /// Plain files in the archive the manifest does not list.
    pub unexpected: Vec<String>,
    /// Entries that were not read, with why: anything but a plain file at a safe relative
    /// path (a link, a directory, a device, an absolute path, `..`), a name stored a second
    /// time, an entry over [`limits::BUNDLE_ENTRY_MAX_BYTES`].
    pub refused: Vec<(String, String)>,
    /// How `manifest.json` was stored, when not first and under its own name.
    pub manifest_stored: Option<String>,
    /// Why reading stopped early, if it did.
    pub stopped: Option<String>,
}

impl Verification {
    /// Whether every file is present and matches, and nothing else is there.
    pub fn is_intact(&self) -> bool {
        self.problems() == 0 && self.stopped.is_none()
    }

    /// The files that do not match, the entries unlisted or refused, a moved manifest.
    pub fn problems(&self) -> usize {
        self.files.iter().filter(|(_, r)| r.is_err()).count()
            + self.unexpected.len()
            + self.refused.len()
            + usize::from(self.manifest_stored.is_some())
    }
}

/// Recomputes every checksum and judges every entry. An error means the file is not a
/// readable bundle at all.
pub fn verify(path: &Path) -> Result<Verification> {
    let bundle = open(path)?;
    let listed: BTreeMap<&str, &BundledFile> = bundle
        .manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let mut seen: BTreeMap<String, Result<u64, String>> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let walked = walk(path, |name, canonical, entry| {
        let mut hasher = Sha256::new();
        let size = match io::copy(entry, &mut hasher) {
            Ok(size) => size,
            Err(err) => {
                seen.insert(canonical.to_string(), Err(format!("cut off ({err})")));
                return Err(err);
            }
        };
        let Some(file) = listed.get(canonical) else {
            unexpected.push(name.to_string());
            return Ok(());
        };
        let content = if file.size != size {
            Some(format!("size {size}, the manifest says {}", file.size))
        } else if file.sha256 != hex(&hasher.finalize()) {
            Some("checksum differs".to_string())
        } else {
            None
        };
        let outcome = match (name == canonical, content) {
            (true, None) => Ok(size),
            (true, Some(problem)) => Err(problem),
            (false, None) => Err(format!("stored as {name}; its content matches")),
            (false, Some(problem)) => Err(format!("stored as {name}; {problem}")),
        };
        seen.insert(canonical.to_string(), outcome);
        Ok(())
    })?;
    let files = bundle
        .manifest
        .files
        .iter()
        .map(|f| {
            let outcome = seen.remove(&f.path).unwrap_or_else(|| {
                match walked
                    .refused
                    .iter()
                    .find(|(name, _)| canonical(name) == f.path)
                {
                    Some((_, why)) => Err(format!("not read: {why}")),
                    None => Err("missing".into()),
                }
            });
            (f.path.clone(), outcome)
        })
        .collect();
    Ok(Verification {
        manifest: bundle.manifest,
        files,
        unexpected,
        refused: walked.refused,
        manifest_stored: bundle.manifest_stored,
        stopped: walked.stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_files_at_safe_relative_paths_pass() {
        use tar::EntryType;
        let plain = |name: &[u8]| refusal(EntryType::Regular, name, None);
        assert_eq!(plain(b"logs/01-server.log"), None);
        // Stored as `./x`: safe to unpack; `bundle verify` says it was renamed.
        assert_eq!(plain(b"./snapshot.json"), None);
        for (name, why) in [
            (&b"/etc/passwd"[..], "an absolute path"),
            (b"../outside", "leads out of the bundle"),
            (b"logs/../../outside", "leads out of the bundle"),
            (b"./..", "leads out of the bundle"),
            (b"a//b", "empty or . parts"),
            (b"a/./b", "empty or . parts"),
            (b"logs/", "empty or . parts"),
            (b"", "empty or . parts"),
            (b"caf\xe9.json", "not UTF-8"),
        ] {
            let refused = plain(name).unwrap_or_default();
            assert!(refused.contains(why), "{name:?}: {refused}");
        }
        for (kind, why) in [
            (
                EntryType::Symlink,
                "a symbolic link to /etc/passwd, not a plain file",
            ),
            (
                EntryType::Link,
                "a hard link to /etc/passwd, not a plain file",
            ),
            (EntryType::Directory, "a directory"),
            (EntryType::Fifo, "a FIFO"),
            (EntryType::Char, "a device"),
            (EntryType::Block, "a device"),
            (EntryType::GNUSparse, "tar type 'S'"),
            (EntryType::Continuous, "tar type '7'"),
        ] {
            let refused = refusal(kind, b"snapshot.json", Some(b"/etc/passwd")).unwrap_or_default();
            assert!(refused.contains(why), "{kind:?}: {refused}");
        }
    }

    #[test]
    fn a_long_name_header_over_its_cap_stops_the_walk_unread() {
        let manifest = serde_json::json!({
            "format_version": 1, "kind": BUNDLE_KIND, "created_at": "2026-03-01T10:00:00Z",
            "medmig_version": "0.1.0", "command_line": [], "source": null, "since": null,
            "until": null, "files": [], "redactions": {}, "not_collected": [],
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let path =
            std::env::temp_dir().join(format!("medmig-longname-{}.tar.gz", std::process::id()));
        let mut tar = tar::Builder::new(GzEncoder::new(
            File::create(&path).unwrap(),
            Compression::default(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest.len() as u64);
        tar.append_data(&mut header, MANIFEST, &manifest[..])
            .unwrap();
        // A GNU long-name header that says a name of 1 GiB follows (the tar crate's own
        // iterator would try to hold it).
        let mut long_name = tar::Header::new_gnu();
        long_name.set_entry_type(tar::EntryType::GNULongName);
        long_name.set_size(1 << 30);
        long_name.set_cksum();
        tar.append(&long_name, io::empty()).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        let verification = verify(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let stopped = verification.stopped.unwrap_or_default();
        assert!(
            stopped.contains("a name header of 1073741824 bytes, larger than 4 KiB"),
            "{stopped}"
        );
    }

    #[test]
    fn leading_dot_slashes_are_what_unpacking_drops() {
        assert_eq!(canonical("./././snapshot.json"), "snapshot.json");
        assert_eq!(canonical("logs/./x"), "logs/./x");
        assert_eq!(canonical("./"), "");
    }
}
