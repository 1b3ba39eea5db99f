//! One chronological story of the incident: each job's transitions from `AsyncJob_History`
//! and the migration messages and errors of the server logs, merged by time.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::logs::LogEvent;
use crate::analyze::migrations::StatusReport;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEvent {
    /// When; `null` for log lines without a readable time (listed last).
    pub at: Option<DateTime<Utc>>,
    /// `database` or `log`.
    pub source: &'static str,
    /// `job-accepted`, `job-error`, `pre-deploy-migration`, `startup-gate`, …
    pub kind: String,
    /// The post-deploy migration concerned, when known.
    pub version: Option<u32>,
    pub message: String,
}

/// Merges the job transitions of `status` and the log events, oldest first.
pub fn timeline(status: Option<&StatusReport>, logs: &[LogEvent]) -> Vec<TimelineEvent> {
    let mut events = Vec::new();
    for migration in status.map(|s| s.migrations.as_slice()).unwrap_or_default() {
        for run in &migration.runs {
            let job = run.facts.job_id.as_deref().unwrap_or("?");
            for transition in &run.timeline {
                let mut message = format!("v{} job {job} {}", migration.version, transition.status);
                let detail = match transition.status.as_str() {
                    "error" => run.facts.error.as_deref(),
                    "completed" => run.facts.progress.as_deref(),
                    _ => None,
                };
                if let Some(detail) = detail {
                    message.push_str(&format!(": {}", crate::text::shorten(detail, 200)));
                }
                events.push(TimelineEvent {
                    at: Some(transition.at),
                    source: "database",
                    kind: format!("job-{}", transition.status),
                    version: Some(migration.version),
                    message,
                });
            }
        }
    }
    for event in logs {
        events.push(TimelineEvent {
            at: event.at,
            source: "log",
            kind: log_kind(&event.message, event.level.as_deref()).to_string(),
            version: None,
            message: event.message.clone(),
        });
    }
    events.sort_by_key(|e| (e.at.is_none(), e.at));
    events
}

/// What a log message is about.
fn log_kind(message: &str, level: Option<&str>) -> &'static str {
    let lower = message.to_lowercase();
    if lower.contains("unable to run this version of medplum server") {
        "startup-gate"
    } else if lower.contains("pre-deploy migration") || lower.contains("schema migration") {
        "pre-deploy-migration"
    } else if lower.contains("migration lock") {
        "migration-lock"
    } else if lower.contains("reindex") {
        "reindex"
    } else if lower.contains("post-deploy")
        || lower.contains("postdeploymigrationqueue")
        || lower.contains("data migration")
    {
        "post-deploy-migration"
    } else if lower.contains("asyncjob execution") {
        "async-job"
    } else if matches!(level, Some("warn" | "warning")) {
        "warning"
    } else {
        "error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_messages_are_sorted_into_kinds() {
        assert_eq!(
            log_kind(
                "Unable to run this version of Medplum server. Pending post-deploy migration v14 …",
                Some("error")
            ),
            "startup-gate"
        );
        assert_eq!(
            log_kind("Database pre-deploy migration version=v120", None),
            "pre-deploy-migration"
        );
        assert_eq!(
            log_kind("PostDeployMigrationQueue worker: failed", Some("error")),
            "post-deploy-migration"
        );
        assert_eq!(log_kind("Request failed", Some("error")), "error");
    }

    #[test]
    fn undated_events_come_last() {
        let event = |at: Option<&str>, message: &str| LogEvent {
            at: at.map(|t| t.parse().unwrap()),
            level: Some("error".into()),
            message: message.into(),
            source: "server.log".into(),
        };
        let events = timeline(
            None,
            &[
                event(None, "undated"),
                event(Some("2025-06-02T10:05:00Z"), "second"),
                event(Some("2025-06-02T10:04:00Z"), "first"),
            ],
        );
        let order: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(order, ["first", "second", "undated"]);
    }
}
