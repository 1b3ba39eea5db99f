//! The bundle file: a gzip-compressed tar whose first entry, `manifest.json`, lists every
//! other file with its size and SHA-256. Written through a staging directory and packed at
//! the end through `outfile.rs`, so an interrupted run leaves nothing that looks complete;
//! read back with the checksum of what is read checked against the manifest.

use std::collections::BTreeMap;
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
use crate::outfile::{Destination, Scratch};
use crate::snapshot::{Snapshot, SnapshotSource, FORMAT_VERSION};

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

/// An open bundle, positioned after its manifest.
struct OpenBundle {
    archive: tar::Archive<GzDecoder<BufReader<File>>>,
    manifest: BundleManifest,
}

/// Opens `path` and reads its manifest; any failure here means "not a readable bundle".
fn open(path: &Path) -> Result<OpenBundle> {
    let shown = path.display();
    let file = File::open(path).with_context(|| format!("cannot read bundle {shown}"))?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let not_bundle = |why: String| {
        anyhow!("{shown} is not a medmig bundle ({why}): pass a file written by `medmig bundle`")
    };
    let manifest = {
        let mut entries = archive
            .entries()
            .map_err(|err| not_bundle(err.to_string()))?;
        let mut first = entries
            .next()
            .ok_or_else(|| not_bundle("it is empty".into()))?
            .map_err(|err| not_bundle(err.to_string()))?;
        let name = first
            .path()
            .map_err(|err| not_bundle(err.to_string()))?
            .to_string_lossy()
            .into_owned();
        if name != MANIFEST {
            return Err(not_bundle(format!(
                "its first file is {name}, not {MANIFEST}"
            )));
        }
        let mut text = String::new();
        first
            .by_ref()
            .take(64 << 20)
            .read_to_string(&mut text)
            .map_err(|err| not_bundle(err.to_string()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|err| not_bundle(format!("unreadable manifest: {err}")))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some(BUNDLE_KIND) {
            return Err(not_bundle("its manifest is not a medmig bundle's".into()));
        }
        let version = value
            .get("format_version")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if version > u64::from(FORMAT_VERSION) {
            bail!("bundle {shown} has format_version {version} and this medmig reads up to {FORMAT_VERSION}: upgrade medmig");
        }
        serde_json::from_value(value)
            .map_err(|err| not_bundle(format!("unreadable manifest: {err}")))?
    };
    // `entries` borrowed the archive; a fresh pass starts after re-opening.
    let file = File::open(path).with_context(|| format!("cannot read bundle {shown}"))?;
    Ok(OpenBundle {
        archive: tar::Archive::new(GzDecoder::new(BufReader::new(file))),
        manifest,
    })
}

/// The snapshot inside a bundle, checked against its checksum.
pub fn read_snapshot(path: &Path) -> Result<Snapshot> {
    let shown = path.display();
    let mut bundle = open(path)?;
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
    for entry in bundle
        .archive
        .entries()
        .map_err(|e| damaged(e.to_string()))?
    {
        let mut entry = entry.map_err(|e| damaged(e.to_string()))?;
        if entry
            .path()
            .map_err(|e| damaged(e.to_string()))?
            .to_string_lossy()
            != "snapshot.json"
        {
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| damaged(e.to_string()))?;
        if hex(&Sha256::digest(&bytes)) != expected.sha256 {
            return Err(damaged("snapshot.json does not match its checksum".into()));
        }
        let text = String::from_utf8(bytes).map_err(|e| damaged(e.to_string()))?;
        return Snapshot::parse(&text)
            .with_context(|| format!("the snapshot in bundle {shown} is unusable"));
    }
    Err(damaged("snapshot.json is missing".into()))
}

/// What `bundle verify` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub manifest: BundleManifest,
    /// Each file of the manifest: `ok`, or what is wrong.
    pub files: Vec<(String, Result<u64, String>)>,
    /// Files in the archive the manifest does not list.
    pub unexpected: Vec<String>,
    /// Why reading stopped early, if it did.
    pub stopped: Option<String>,
}

impl Verification {
    /// Whether every file is present and matches.
    pub fn is_intact(&self) -> bool {
        self.files.iter().all(|(_, r)| r.is_ok())
            && self.unexpected.is_empty()
            && self.stopped.is_none()
    }
}

/// Recomputes every checksum. An error means the file is not a readable bundle at all.
pub fn verify(path: &Path) -> Result<Verification> {
    let mut bundle = open(path)?;
    let mut seen: BTreeMap<String, Result<u64, String>> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut stopped = None;
    let listed: BTreeMap<&str, &BundledFile> = bundle
        .manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    match bundle.archive.entries() {
        Err(err) => stopped = Some(err.to_string()),
        Ok(entries) => {
            for entry in entries {
                let mut entry = match entry {
                    Ok(entry) => entry,
                    Err(err) => {
                        stopped = Some(format!("the archive ends early ({err})"));
                        break;
                    }
                };
                let name = entry
                    .path()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name == MANIFEST {
                    continue;
                }
                let mut hasher = Sha256::new();
                let size = match io::copy(&mut entry, &mut hasher) {
                    Ok(size) => size,
                    Err(err) => {
                        seen.insert(name, Err(format!("cut off ({err})")));
                        stopped = Some("the archive is truncated".into());
                        break;
                    }
                };
                let outcome = match listed.get(name.as_str()) {
                    None => {
                        unexpected.push(name);
                        continue;
                    }
                    Some(file) if file.size != size => {
                        Err(format!("size {size}, the manifest says {}", file.size))
                    }
                    Some(file) if file.sha256 != hex(&hasher.finalize()) => {
                        Err("checksum differs".into())
                    }
                    Some(_) => Ok(size),
                };
                seen.insert(name, outcome);
            }
        }
    }
    let files = bundle
        .manifest
        .files
        .iter()
        .map(|f| {
            let outcome = seen
                .remove(&f.path)
                .unwrap_or_else(|| Err("missing".into()));
            (f.path.clone(), outcome)
        })
        .collect();
    Ok(Verification {
        manifest: bundle.manifest,
        files,
        unexpected,
        stopped,
    })
}
