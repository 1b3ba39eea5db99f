//! What `medmig wait` prints: its events, as one plain line each (a CI log) or one JSON object
//! each (newline-delimited), and the text of each migration's line in the live display.
//!
//! This module owns presentation only: which migrations are followed, their states and when
//! to stop are decided in `commands/wait.rs` from the analysis of `analyze/migrations.rs`.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::analyze::jobs::ReindexCounts;
use crate::analyze::migrations::{MigrationState, MigrationStatus};
use crate::text::{count, elapsed};

/// The `format_version` of the JSON objects.
pub const FORMAT_VERSION: u32 = 1;

/// One followed migration as a poll found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Followed {
    /// In a sharded deployment, the database: `global` or the shard's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub version: u32,
    pub state: MigrationState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// A reindex's counts, with the number of types it re-indexes in all (the catalogue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reindex: Option<ReindexCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reindex_types_total: Option<usize>,
    /// Since the job started (or was requested, when its start was not recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_seconds: Option<f64>,
    /// Time left by the reindex's types done so far, where it allows an estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_seconds_left: Option<f64>,
}

impl Followed {
    /// `status` of one migration (of `shard`, in a sharded deployment); `types_total` from
    /// the catalogue for a reindex.
    pub fn of(
        shard: Option<&str>,
        status: &MigrationStatus,
        types_total: Option<usize>,
    ) -> Followed {
        let in_progress = matches!(
            status.state,
            MigrationState::Running
                | MigrationState::Accepted
                | MigrationState::Queued
                | MigrationState::Stale
        );
        let elapsed_seconds = in_progress
            .then_some(status.current.duration_seconds)
            .flatten();
        let reindex = status.current.reindex;
        let estimated_seconds_left = match (in_progress, reindex, types_total, elapsed_seconds) {
            (true, Some(counts), Some(total), Some(spent)) => estimate(counts, total, spent),
            _ => None,
        };
        Followed {
            shard: shard.map(str::to_string),
            version: status.version,
            state: status.state,
            job_id: status.current.job_id.clone(),
            detail: status.detail.clone(),
            progress: status.current.progress.clone(),
            reindex,
            reindex_types_total: reindex.and(types_total),
            elapsed_seconds,
            estimated_seconds_left,
        }
    }

    /// How it is named: `v51`, or `shard-a v51` in a sharded deployment.
    pub fn label(&self) -> String {
        match &self.shard {
            Some(shard) => format!("{shard} v{}", self.version),
            None => format!("v{}", self.version),
        }
    }

    /// The live display's text for it: state, elapsed, progress, estimate.
    pub fn summary(&self) -> String {
        let mut text = self.state.as_str().to_string();
        if let Some(seconds) = self.elapsed_seconds {
            text.push_str(&format!(" for {}", elapsed(seconds)));
        }
        if let Some(progress) = &self.progress {
            text.push_str(&format!(", {progress}"));
        }
        if let (Some(counts), Some(total)) = (self.reindex, self.reindex_types_total) {
            text.push_str(&format!(" ({} of {total} types)", counts.types_done));
        }
        if let Some(left) = self.estimated_seconds_left {
            text.push_str(&format!(", about {} left", elapsed(left)));
        }
        text
    }
}

/// Time left at the pace of the types done so far: the types differ in size, so it is rough,
/// and none is given before a type is done.
fn estimate(counts: ReindexCounts, total: usize, spent: f64) -> Option<f64> {
    if counts.types_done == 0 || counts.types_done >= total || spent <= 0.0 {
        return None;
    }
    let left = total - counts.types_done;
    Some(spent / counts.types_done as f64 * left as f64)
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every migration up to the target completed (exit 0).
    Completed,
    /// A migration up to the target reached a state of `--fail-on` (exit 1).
    Failed,
    /// `--timeout` passed (exit 4).
    TimedOut,
    /// SIGINT or SIGTERM (exit 130 or 143).
    Interrupted,
    /// No poll succeeded for ten minutes (exit 2).
    Unreadable,
}

/// What the load of the polls was: statements sent and rows returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PollLoad {
    pub statements: usize,
    pub rows: usize,
}

/// Something `wait` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The first poll: what is waited for, and where each followed migration stands.
    Started {
        at: DateTime<Utc>,
        target: u32,
        /// How the target was chosen.
        target_by: String,
        data_version: Option<i64>,
        migrations: Vec<Followed>,
    },
    /// A followed migration's state (or its job) changed.
    Changed {
        at: DateTime<Utc>,
        previous: MigrationState,
        #[serde(flatten)]
        migration: Followed,
    },
    /// Nothing changed for a while: where the migrations in progress stand.
    StillWaiting {
        at: DateTime<Utc>,
        migrations: Vec<Followed>,
    },
    /// A poll failed; the next tries again after `retry_in_seconds`.
    Reconnecting {
        at: DateTime<Utc>,
        error: String,
        retry_in_seconds: u64,
    },
    /// A poll succeeded again after failures.
    Reconnected {
        at: DateTime<Utc>,
        failed_polls: u32,
    },
    /// Redis could not be read (or can be again): the states rest on PostgreSQL alone.
    Redis {
        at: DateTime<Utc>,
        #[serde(skip_serializing_if = "Option::is_none")]
        gap: Option<String>,
    },
    /// The end.
    Finished {
        format_version: u32,
        at: DateTime<Utc>,
        outcome: Outcome,
        exit_code: u8,
        reason: String,
        target: u32,
        data_version: Option<i64>,
        polls: u32,
        /// The first poll (with the catalog and every job), and the smallest and largest of
        /// the later ones (only the jobs written since).
        first_poll: PollLoad,
        #[serde(skip_serializing_if = "Option::is_none")]
        later_polls_min: Option<PollLoad>,
        #[serde(skip_serializing_if = "Option::is_none")]
        later_polls_max: Option<PollLoad>,
        migrations: Vec<Followed>,
    },
}

/// Writes `event` as one JSON object on one line.
pub fn json_line(out: &mut impl Write, event: &Event) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes `event` as plain lines, each escaped, each starting with its time.
pub fn text_lines(out: &mut impl Write, event: &Event) -> std::io::Result<()> {
    for line in lines(event) {
        writeln_escaped!(out, "{line}")?;
    }
    out.flush()
}

/// An event's plain lines (the live display prints the same above its bars).
pub fn lines(event: &Event) -> Vec<String> {
    let time = |at: &DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
    match event {
        Event::Started {
            at,
            target,
            target_by,
            data_version,
            migrations,
        } => {
            let shown = data_version.map_or("unknown".to_string(), |v| v.to_string());
            let mut lines = vec![format!(
                "{} waiting for v{target} ({target_by}); dataVersion is {shown}",
                time(at)
            )];
            for m in migrations {
                lines.push(format!("{} {} {}", time(at), m.label(), m.summary()));
            }
            lines
        }
        Event::Changed {
            at,
            previous,
            migration,
        } => {
            let mut line = format!(
                "{} {} {} -> {}",
                time(at),
                migration.label(),
                previous.as_str(),
                migration.summary()
            );
            if let Some(detail) = &migration.detail {
                line.push_str(&format!(": {detail}"));
            }
            vec![line]
        }
        Event::StillWaiting { at, migrations } => migrations
            .iter()
            .map(|m| format!("{} still waiting: {} {}", time(at), m.label(), m.summary()))
            .collect(),
        Event::Reconnecting {
            at,
            error,
            retry_in_seconds,
        } => vec![format!(
            "{} could not read: {error}; trying again in {}",
            time(at),
            elapsed(*retry_in_seconds as f64)
        )],
        Event::Reconnected { at, failed_polls } => vec![format!(
            "{} reading again after {}",
            time(at),
            count(*failed_polls, "failed poll", "failed polls")
        )],
        Event::Redis { at, gap } => vec![match gap {
            Some(gap) => format!(
                "{} Redis not read ({gap}): queued and running are told apart by PostgreSQL alone",
                time(at)
            ),
            None => format!("{} Redis read again", time(at)),
        }],
        Event::Finished {
            at,
            outcome,
            exit_code,
            reason,
            polls,
            ..
        } => {
            let word = match outcome {
                Outcome::Completed => "completed",
                Outcome::Failed => "failed",
                Outcome::TimedOut => "timed out",
                Outcome::Interrupted => "interrupted",
                Outcome::Unreadable => "gave up",
            };
            vec![format!(
                "{} {word}: {reason} ({}, exit {exit_code})",
                time(at),
                count(*polls, "poll", "polls")
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(done: usize) -> ReindexCounts {
        ReindexCounts {
            types_done: done,
            rows_done: 10,
            types_in_progress: 1,
            types_failed: 0,
        }
    }

    #[test]
    fn the_estimate_follows_the_pace_of_the_types_done() {
        assert_eq!(estimate(counts(2), 10, 60.0), Some(240.0));
        assert_eq!(estimate(counts(0), 10, 60.0), None);
        assert_eq!(estimate(counts(10), 10, 60.0), None);
        assert_eq!(estimate(counts(12), 10, 60.0), None);
    }

    #[test]
    fn a_change_is_one_line_with_its_time_and_both_states() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let event = Event::Changed {
            at,
            previous: MigrationState::Pending,
            migration: Followed {
                shard: None,
                version: 53,
                state: MigrationState::Failed,
                job_id: Some("j".into()),
                detail: Some("line\nbreak".into()),
                progress: None,
                reindex: None,
                reindex_types_total: None,
                elapsed_seconds: None,
                estimated_seconds_left: None,
            },
        };
        let mut out = Vec::new();
        text_lines(&mut out, &event).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "2026-11-30T10:00:00Z v53 pending -> failed: line\\nbreak\n"
        );
        let mut out = Vec::new();
        json_line(&mut out, &event).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["event"], "changed");
        assert_eq!(value["previous"], "pending");
        assert_eq!(value["state"], "failed");
        assert_eq!(value["version"], 53);
    }
}
