//! Pure analysis: a [`Snapshot`](crate::snapshot::Snapshot) (plus the manifest and options)
//! in, findings out.
//!
//! Nothing here performs I/O or reads the clock: "now" is passed in (the snapshot's
//! `taken_at`), so every result can be reproduced from a snapshot months later. One file per
//! concern; each finding carries a stable kebab-case id listed in the README.

use serde::Serialize;

pub mod compat;
pub mod jobs;
pub mod migrations;
pub mod queues;
pub mod recover;
pub mod rollback;
pub mod shards;
pub mod traces;
pub mod upgrade;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    /// The lower-case name used in every format.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// What a difference or a check means for rolling back: the words of `rollback-check` and
/// `schema diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    /// Breaks the older code: a rollback is unsafe.
    Blocker,
    /// Worth knowing before a rollback.
    Warning,
    /// Tolerated, shown for completeness.
    Info,
}

impl Impact {
    /// The lower-case name used in every format.
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::Blocker => "blocker",
            Impact::Warning => "warning",
            Impact::Info => "info",
        }
    }
}

/// Something an analysis noticed, with a stable id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable kebab-case id, e.g. `migration-failed`.
    pub id: &'static str,
    pub severity: Severity,
    /// One sentence: what is wrong and, where it helps, what to do.
    pub message: String,
    /// The post-deploy migration concerned, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

impl Finding {
    /// A finding about the database as a whole.
    pub fn new(id: &'static str, severity: Severity, message: impl Into<String>) -> Finding {
        Finding {
            id,
            severity,
            message: message.into(),
            version: None,
        }
    }

    /// A finding about post-deploy migration `version`.
    pub fn about(
        version: u32,
        id: &'static str,
        severity: Severity,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            version: Some(version),
            ..Finding::new(id, severity, message)
        }
    }
}
