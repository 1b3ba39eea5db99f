//! What a bundle holds, read back for `medmig report`: the manifest, the snapshot, the
//! timeline, the diagnostics, the config's post-deploy switches and the log counts, each parsed
//! from the bytes the archive stores (checked against the manifest by `archive.rs`).
//!
//! `bundle` builds the same thing from the files it has just staged, so the report it packs
//! and the one `medmig report` makes later rest on the same bytes: everything a report shows
//! has been through the bundle's redaction. This module parses; it judges nothing.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::archive::{self, BundleManifest};
use crate::snapshot::Snapshot;

/// The incident report every bundle carries, listed in its manifest like any file.
pub const REPORT: &str = "report.html";

/// The most bytes one diagnostics file, `config/post-deploy.json` or `logs/ingest.json` may
/// have for the report: `bundle` writes them in kilobytes; each is parsed into a JSON tree,
/// which takes many times its size.
const SMALL_FILE_MAX_BYTES: u64 = 4 << 20;

/// The most bytes the report reads from a bundle in all: the snapshot and the timeline at
/// their own limit, and 16 MiB of the small files together.
const REPORT_INPUT_MAX_BYTES: u64 = 2 * crate::limits::SNAPSHOT_MAX_BYTES + (16 << 20);

/// Whether the report reads the bundle file at `path`, and then the most bytes it may have.
pub fn report_input_limit(path: &str) -> Option<u64> {
    match path {
        "snapshot.json" | "timeline.json" => Some(crate::limits::SNAPSHOT_MAX_BYTES),
        "config/post-deploy.json" | "logs/ingest.json" => Some(SMALL_FILE_MAX_BYTES),
        _ if path.starts_with("diagnostics/") && path.ends_with(".json") => {
            Some(SMALL_FILE_MAX_BYTES)
        }
        _ => None,
    }
}

/// Whether the report reads the bundle file at `path`.
pub fn is_report_input(path: &str) -> bool {
    report_input_limit(path).is_some()
}

/// One event of `timeline.json` as read back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BundledEvent {
    pub at: Option<DateTime<Utc>>,
    /// `database` or `log`.
    pub source: String,
    pub kind: String,
    pub version: Option<u32>,
    pub message: String,
}

/// What a report is made of.
#[derive(Debug, Clone)]
pub struct BundleContents {
    pub manifest: BundleManifest,
    /// `None` for a bundle made with `--no-db`.
    pub snapshot: Option<Snapshot>,
    pub timeline: Vec<BundledEvent>,
    /// `diagnostics/KIND.json` by kind.
    pub diagnostics: BTreeMap<String, Value>,
    /// `config/post-deploy.json`, when the bundle was made with `--medplum-config`.
    pub post_deploy: Option<Value>,
    /// The `totals` of `logs/ingest.json`.
    pub log_totals: Option<Value>,
}

impl BundleContents {
    /// Reads the bundle at `path` through the bundle reader (checksums, size caps, entries
    /// that are not plain files refused).
    pub fn read(path: &Path) -> Result<BundleContents> {
        let (manifest, files) =
            archive::read_files(path, report_input_limit, REPORT_INPUT_MAX_BYTES)?;
        let small: u64 = files
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "snapshot.json" | "timeline.json"))
            .map(|(_, bytes)| bytes.len() as u64)
            .sum();
        if small > 16 << 20 {
            anyhow::bail!(
                "cannot read bundle {}: its diagnostics are {}",
                path.display(),
                crate::limits::over(16 << 20, "the diagnostics together")
            );
        }
        BundleContents::from_files(manifest, &files)
            .with_context(|| format!("bundle {} is unusable", path.display()))
    }

    /// Parses the files of a bundle (by path; others are ignored).
    pub fn from_files(
        manifest: BundleManifest,
        files: &BTreeMap<String, Vec<u8>>,
    ) -> Result<BundleContents> {
        let json = |name: &str| -> Result<Option<Value>> {
            files
                .get(name)
                .map(|bytes| serde_json::from_slice(bytes).with_context(|| name.to_string()))
                .transpose()
        };
        let snapshot = files
            .get("snapshot.json")
            .map(|bytes| Snapshot::parse_bytes(bytes).context("snapshot.json"))
            .transpose()?;
        let timeline = files
            .get("timeline.json")
            .map(|bytes| serde_json::from_slice(bytes).context("timeline.json"))
            .transpose()?
            .unwrap_or_default();
        let mut diagnostics = BTreeMap::new();
        for name in files.keys() {
            if let Some(kind) = name
                .strip_prefix("diagnostics/")
                .and_then(|rest| rest.strip_suffix(".json"))
            {
                if let Some(value) = json(name)? {
                    diagnostics.insert(kind.to_string(), value);
                }
            }
        }
        Ok(BundleContents {
            manifest,
            snapshot,
            timeline,
            diagnostics,
            post_deploy: json("config/post-deploy.json")?,
            log_totals: json("logs/ingest.json")?.and_then(|v| v.get("totals").cloned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_reads_the_evidence_and_not_the_logs() {
        for wanted in [
            "snapshot.json",
            "timeline.json",
            "diagnostics/migration_lock.json",
            "config/post-deploy.json",
            "logs/ingest.json",
        ] {
            assert!(is_report_input(wanted), "{wanted}");
        }
        for not in [
            "logs/01-server.log",
            "config/medplum.config.json",
            "report.html",
            "manifest.json",
            "summary.txt",
        ] {
            assert!(!is_report_input(not), "{not}");
        }
    }
}
