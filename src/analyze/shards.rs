//! A sharded deployment as a whole: the status of every shard beside the global database's,
//! and where they differ.
//!
//! Each database of a sharded Medplum deployment has its own `"DatabaseMigration"` row and
//! its own post-deploy jobs (the server's `initDatabase` migrates the global database, then
//! each shard: `packages/server/src/database.ts`, sharding line). This module analyses each
//! shard as `migrations.rs` analyses one database, and says what differs from the global one
//! (the common case is that nothing does) and which shards could not be read.

use serde::Serialize;

use super::migrations::{analyze, StatusOptions, StatusReport};
use super::{Finding, Severity};
use crate::medplum::catalogue::Catalogue;
use crate::medplum::manifest::Manifest;
use crate::snapshot::Snapshot;

/// One shard's status, or why it is not known.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardStatus {
    pub id: String,
    /// Where the shard's evidence was read, and when (its own transaction's time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::snapshot::SnapshotSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
    /// Why the shard could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<String>,
    /// How it differs from the global database; empty when it does not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
}

/// The status of every shard of `snapshot` (none for a deployment of one database), each at
/// its own snapshot's time, with how it differs from `global`.
pub fn analyze_shards(
    snapshot: &Snapshot,
    global: &StatusReport,
    manifest: &Manifest,
    catalogue: &Catalogue,
    options: StatusOptions,
) -> Vec<ShardStatus> {
    snapshot
        .databases()
        .into_iter()
        .skip(1)
        .map(|(id, read)| match read {
            Ok(shard) => {
                let status = analyze(
                    shard,
                    manifest,
                    catalogue,
                    StatusOptions {
                        now: shard.taken_at,
                        ..options
                    },
                );
                ShardStatus {
                    id: id.to_string(),
                    source: Some(shard.source.clone()),
                    taken_at: Some(shard.taken_at),
                    differences: differences(global, &status),
                    status: Some(status),
                    gap: None,
                }
            }
            Err(why) => ShardStatus {
                id: id.to_string(),
                source: None,
                taken_at: None,
                status: None,
                gap: Some(why.to_string()),
                differences: Vec::new(),
            },
        })
        .collect()
}

/// What differs between the global database's status and a shard's: the pre-deploy version,
/// `dataVersion`, and the state of each migration either lists.
pub fn differences(global: &StatusReport, shard: &StatusReport) -> Vec<String> {
    let shown = |v: Option<i64>| v.map_or("unknown".to_string(), |v| v.to_string());
    let mut out = Vec::new();
    if global.pre_deploy.version != shard.pre_deploy.version {
        out.push(format!(
            "pre-deploy version {} (global {})",
            shown(shard.pre_deploy.version),
            shown(global.pre_deploy.version)
        ));
    }
    if global.post_deploy.data_version != shard.post_deploy.data_version {
        out.push(format!(
            "dataVersion {} (global {})",
            shown(shard.post_deploy.data_version),
            shown(global.post_deploy.data_version)
        ));
    }
    for m in &shard.migrations {
        let theirs = global.migrations.iter().find(|g| g.version == m.version);
        match theirs {
            Some(g) if g.state == m.state => {}
            Some(g) => out.push(format!(
                "v{} {} (global {})",
                m.version,
                m.state.as_str(),
                g.state.as_str()
            )),
            None => out.push(format!(
                "v{} {} (global: not listed)",
                m.version,
                m.state.as_str()
            )),
        }
    }
    out
}

/// The findings about the deployment as a whole: `shards-differ` for each shard whose
/// migrations stand elsewhere than the global database's, `shard-not-read` for each shard
/// that could not be read.
pub fn findings(shards: &[ShardStatus]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for shard in shards {
        if let Some(gap) = &shard.gap {
            findings.push(Finding::new(
                "shard-not-read",
                Severity::Warning,
                format!(
                    "shard {} could not be read, so where its migrations stand is not known: {gap}",
                    shard.id
                ),
            ));
        } else if !shard.differences.is_empty() {
            findings.push(Finding::new(
                "shards-differ",
                Severity::Warning,
                format!(
                    "shard {} differs from the global database: {}",
                    shard.id,
                    shard.differences.join(", ")
                ),
            ));
        }
    }
    findings
}

/// One line on the deployment: how many databases, and where they differ.
pub fn summary(shards: &[ShardStatus]) -> String {
    let read = shards.iter().filter(|s| s.status.is_some()).count();
    let differing: Vec<&str> = shards
        .iter()
        .filter(|s| !s.differences.is_empty())
        .map(|s| s.id.as_str())
        .collect();
    let unread: Vec<&str> = shards
        .iter()
        .filter(|s| s.gap.is_some())
        .map(|s| s.id.as_str())
        .collect();
    let mut text = format!(
        "{} besides the global database, {read} read",
        crate::text::count(shards.len(), "shard", "shards")
    );
    match differing.is_empty() {
        true if unread.is_empty() => {
            text.push_str("; every shard stands where the global database does")
        }
        true => {}
        false => text.push_str(&format!(
            "; differing from the global database: {}",
            differing.join(", ")
        )),
    }
    if !unread.is_empty() {
        text.push_str(&format!("; not read: {}", unread.join(", ")));
    }
    text
}
