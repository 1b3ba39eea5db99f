//! One chronological story of the incident: each job's transitions from `AsyncJob_History`
//! and the migration messages and errors of the server logs, merged by time.
//!
//! This module owns the timeline's event kinds: which kind each of Medplum's log messages is
//! ([`LOG_KINDS`], the README's table of log kinds), and which post-deploy migration a log
//! event concerns. Which lines reach it is decided in `logs.rs`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::logs::{migration_number, LogEvent};
use crate::analyze::migrations::StatusReport;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEvent {
    /// When; `null` for log lines without a readable time (listed last).
    pub at: Option<DateTime<Utc>>,
    /// `database` or `log`.
    pub source: &'static str,
    /// `job-accepted`, `job-error`, … for jobs; one of [`LOG_KINDS`], `warning` or `error`
    /// for log lines.
    pub kind: String,
    /// The post-deploy migration concerned, when known.
    pub version: Option<u32>,
    /// In a sharded deployment, the database a job event happened in: `global` or the
    /// shard's id (absent for a deployment of one database, and for log lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub message: String,
}

/// A kind of log event: the phrases that make a message one.
pub struct LogKind {
    /// The stable id written in `timeline.json`.
    pub id: &'static str,
    /// Phrases, lower case; a `*` stands for any text (a number, a migration type). A message
    /// is of this kind when one phrase appears in it.
    pub phrases: &'static [&'static str],
    /// A migration number the line names is a post-deploy migration's (the `version`).
    pub post_deploy: bool,
    /// The line reports an error raised elsewhere: when the error it carries is of another
    /// kind, that kind is the line's (a refusal of the startup gate is logged as a
    /// `Database schema migration error` whose error is the refusal).
    pub carrier: bool,
}

const fn kind(
    id: &'static str,
    post_deploy: bool,
    carrier: bool,
    phrases: &'static [&'static str],
) -> LogKind {
    LogKind {
        id,
        phrases,
        post_deploy,
        carrier,
    }
}

/// The kinds of log events, most specific first: the first with a phrase in the message
/// decides. Messages overlap (`Not auto-queueing pending post-deploy migration` holds
/// `pending post-deploy migration`; `Post-deploy migration v51 delayed since …` is not a
/// post-deploy error), so the order matters. Lines that are none of these are `warning` or
/// `error` by their level.
pub const LOG_KINDS: &[LogKind] = &[
    kind(
        "startup-gate",
        true,
        false,
        &[
            "unable to run this version of medplum server",
            "unable to run data migration against the current server version",
            "unable to run post-deploy migration v",
        ],
    ),
    kind(
        "migration-error",
        false,
        true,
        &[
            "database schema migration error",
            "pre-deploy migration definition not found",
        ],
    ),
    kind(
        "pre-deploy-migration",
        false,
        false,
        &["database pre-deploy migration", "database schema migration"],
    ),
    kind(
        "migration-lock",
        false,
        false,
        &["failed to acquire migration lock"],
    ),
    kind(
        "reindex-skipped",
        true,
        false,
        &["skipping reindex post-deploy migration"],
    ),
    kind(
        "post-deploy-skipped",
        true,
        false,
        &["skipping custom post-deploy migration"],
    ),
    kind(
        "post-deploy-delayed",
        true,
        false,
        &[
            "post-deploy migration delayed since",
            "delayed since the server cluster is not compatible",
            "reindex job delayed since",
            "reindexjob delayed since",
            "reindex job detected queue is closing",
            "since job.token is not available",
        ],
    ),
    kind(
        "post-deploy-completed",
        true,
        false,
        &["marking post-deploy migration complete"],
    ),
    kind(
        "post-deploy-worker",
        true,
        false,
        &[
            "postdeploymigrationqueue worker:",
            "postdeploymigrationqueue processor skipping job",
        ],
    ),
    kind(
        "post-deploy-error",
        true,
        false,
        &[
            "post-deploy migration threw an error",
            "migration definition not found",
            "post-deploy migration number (asyncjob.dataversion) not found",
            "unexpected postdeploymigration.run(",
            "post-deploy migration * is not a * migration",
        ],
    ),
    kind(
        "post-deploy-not-queued",
        true,
        false,
        &[
            "not auto-queueing pending post-deploy migration",
            "unable to add post-deploy migration job",
            "unable to start post-deploy migration",
            "data migration unable to start",
            "cannot run post-deploy migration",
            "cannot run data migration",
            "requested post-deploy migration v",
            "post-deploy migration assertion failed",
            "data migration assertion failed",
            "post-deploy migration number must be greater than zero",
            "job queue postdeploymigrationqueue not available",
        ],
    ),
    kind(
        "post-deploy-queued",
        true,
        false,
        &[
            "auto-queueing pending post-deploy migration",
            "adding post-deploy migration job",
            "added post-deploy migration job",
        ],
    ),
    kind(
        "post-deploy-none-pending",
        true,
        false,
        &["no pending post-deploy migrations"],
    ),
    kind(
        "post-deploy-pending",
        true,
        false,
        &[
            "pending post-deploy migration",
            "data migration ready to run",
        ],
    ),
    kind(
        "reindex",
        true,
        false,
        &[
            "reindex in progress",
            "reindex completed",
            "reindex iteration failed",
            "reindexqueue worker:",
        ],
    ),
    kind(
        "async-job",
        false,
        true,
        &[
            "asyncjob execution",
            "async job starting",
            "async job completed",
            "async job failed",
        ],
    ),
    kind(
        "post-deploy-migration",
        true,
        false,
        &[
            "post-deploy migration",
            "postdeploymigrationqueue",
            "data migration",
        ],
    ),
    kind("server-start", false, false, &["starting medplum server"]),
];

/// The release a `server-start` line says the server runs: its `version` field
/// (`Starting Medplum Server... version=5.2.2-8f1e2a3`), the build after `-` or `+` left out.
/// `None` when the line names no release (servers before 4.x logged none).
pub fn started_release(message: &str) -> Option<semver::Version> {
    let at = message.find("version=")? + "version=".len();
    let word = message[at..].split_whitespace().next()?;
    let release = word
        .trim_start_matches(['v', 'V'])
        .split(['-', '+'])
        .next()?
        .trim_end_matches([',', '.', ';']);
    semver::Version::parse(release).ok()
}

/// Merges the job transitions of `status` (the global database's), of each shard's status
/// in `shards` (each event naming its shard), and the log events, oldest first.
pub fn timeline(
    status: Option<&StatusReport>,
    shards: &[(&str, &StatusReport)],
    logs: &[LogEvent],
) -> Vec<TimelineEvent> {
    let mut events = Vec::new();
    let sharded = !shards.is_empty();
    let global = status.map(|s| (crate::snapshot::GLOBAL_SHARD, s));
    for (shard, status) in global.into_iter().chain(shards.iter().copied()) {
        let shard = sharded.then(|| shard.to_string());
        job_events(Some(status), shard, &mut events);
    }
    log_and_sort(logs, events)
}

/// The job transitions and maintenance jobs of one database's status.
fn job_events(
    status: Option<&StatusReport>,
    shard: Option<String>,
    events: &mut Vec<TimelineEvent>,
) {
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
                    shard: shard.clone(),
                    message,
                });
            }
        }
    }
    // Schema maintenance jobs (schema-drift repair and kin) are no migration: their own kinds,
    // with what they dropped.
    for job in status
        .map(|s| s.maintenance_jobs.as_slice())
        .unwrap_or_default()
    {
        let requested = job
            .requested_at
            .map(|at| (at, "accepted".to_string(), String::new()));
        let finished = job.finished_at.map(|at| {
            let mut detail = String::new();
            if !job.dropped_indexes.is_empty() {
                detail = format!(": dropped {}", job.dropped_indexes.join(", "));
            }
            if let Some(error) = &job.error {
                detail.push_str(&format!(": {}", crate::text::shorten(error, 200)));
            }
            (at, job.status.clone(), detail)
        });
        for (at, status, detail) in requested.into_iter().chain(finished) {
            events.push(TimelineEvent {
                at: Some(at),
                source: "database",
                kind: format!("maintenance-job-{status}"),
                version: None,
                shard: shard.clone(),
                message: format!("{} job {} {status}{detail}", job.request, job.job_id),
            });
        }
    }
}

/// The log events added to `events`, and all sorted.
fn log_and_sort(logs: &[LogEvent], mut events: Vec<TimelineEvent>) -> Vec<TimelineEvent> {
    for event in logs {
        events.push(TimelineEvent {
            at: event.at,
            source: "log",
            kind: event.kind.to_string(),
            version: event.version,
            shard: None,
            message: format!("{}{}", event.message, event.fields),
        });
    }
    events.sort_by_key(|e| (e.at.is_none(), e.at));
    events
}

/// The kind of a log line and the post-deploy migration it concerns, from its message, the
/// ` key=value` text of its fields, its level and the number its fields name, as the line was
/// written: `logs.rs` asks before it redacts, so that no `--keyword` changes what a line is.
pub fn classify(
    message: &str,
    fields: &str,
    level: Option<&str>,
    field_version: Option<u32>,
) -> (&'static str, Option<u32>) {
    let kind = log_kind(message, fields, level);
    (
        kind,
        post_deploy_version(kind, field_version, message, fields),
    )
}

/// The kind of a log line: its message's, or that of the error it carries (in `fields`)
/// when the message only reports an error; `warning` or `error` by level otherwise.
fn log_kind(message: &str, fields: &str, level: Option<&str>) -> &'static str {
    match kind_of(message) {
        Some(own) if !own.carrier => own.id,
        own => match kind_of(fields).filter(|carried| !carried.carrier) {
            Some(carried) => carried.id,
            None => match (own, level) {
                (Some(own), _) => own.id,
                (None, Some("warn" | "warning")) => "warning",
                (None, _) => "error",
            },
        },
    }
}

/// The first of [`LOG_KINDS`] with a phrase in `text`.
fn kind_of(text: &str) -> Option<&'static LogKind> {
    let lower = text.to_lowercase();
    LOG_KINDS.iter().find(|kind| {
        kind.phrases
            .iter()
            .any(|phrase| contains_in_order(&lower, phrase))
    })
}

/// Whether the parts of `phrase` between `*` appear in `text` in that order.
fn contains_in_order(text: &str, phrase: &str) -> bool {
    let mut rest = text;
    for part in phrase.split('*') {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// The post-deploy migration a log event concerns: the number its `version` or
/// `dataVersion` field names, else the first its message (then its fields) names, for
/// kinds about post-deploy migrations only (a pre-deploy line's `version` is its own).
fn post_deploy_version(
    kind: &str,
    field_version: Option<u32>,
    message: &str,
    fields: &str,
) -> Option<u32> {
    let post_deploy = LOG_KINDS
        .iter()
        .any(|known| known.id == kind && known.post_deploy);
    if !post_deploy {
        return None;
    }
    field_version
        .or_else(|| named_version(message))
        .or_else(|| named_version(fields))
}

/// The first migration number `text` names: `v51` as a word (not the `v5` of `v5.2.2`), or
/// the number right after `post-deploy migration ` (`Post-deploy migration 13 is not a …`)
/// or `PostDeployMigration.run(`.
fn named_version(text: &str) -> Option<u32> {
    const AFTER: [&[u8]; 2] = [b"post-deploy migration ", b"postdeploymigration.run("];
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if !bytes[start].is_ascii_digit() {
            start += 1;
            continue;
        }
        let end = bytes[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(bytes.len(), |n| start + n);
        let word_v = start >= 1
            && bytes[start - 1].eq_ignore_ascii_case(&b'v')
            && (start == 1 || !bytes[start - 2].is_ascii_alphanumeric());
        let after_phrase = AFTER.iter().any(|phrase| {
            start >= phrase.len() && bytes[start - phrase.len()..start].eq_ignore_ascii_case(phrase)
        });
        let ends_word = match bytes.get(end) {
            None => true,
            Some(b'.') => !bytes.get(end + 1).is_some_and(u8::is_ascii_digit),
            Some(b) => !b.is_ascii_alphanumeric(),
        };
        if (word_v || after_phrase) && ends_word {
            // Digits are ASCII, so this slice falls on character boundaries.
            if let Some(number) = migration_number(&text[start..end]) {
                return Some(number);
            }
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::logs::{LineFilter, MIGRATION_MESSAGES};

    /// A message as Medplum logs it, at its level, with the fields medmig shows beside it
    /// and the number those fields name; then the kind and version the timeline must give.
    struct Case {
        level: &'static str,
        message: &'static str,
        fields: &'static str,
        field_version: Option<u32>,
        kind: &'static str,
        version: Option<u32>,
    }

    const fn case(
        level: &'static str,
        message: &'static str,
        fields: &'static str,
        field_version: Option<u32>,
        kind: &'static str,
        version: Option<u32>,
    ) -> Case {
        Case {
            level,
            message,
            fields,
            field_version,
            kind,
            version,
        }
    }

    const GATE: &str = "Unable to run this version of Medplum server. Pending post-deploy migration v45 requires server at version 5.1.37 <= version < 5.2.0, but current server version is 5.2.2";

    /// Every message of `MIGRATION_MESSAGES` in its full wording (as in the notes), and the
    /// lines that carry one in their error. Paths are under Medplum's `packages/server/src/`.
    const CASES: &[Case] = &[
        // database.ts: pre-deploy migrations, the lock, the startup gate (every wording)
        case("info", "Database pre-deploy migration", " version=v121 duration=1800 ms", Some(121), "pre-deploy-migration", None),
        case("info", "Database schema migration", " version=v98 duration=20 ms", Some(98), "pre-deploy-migration", None),
        case("error", "Database schema migration error", " error=error: relation \"Foo\" does not exist", None, "migration-error", None),
        case("error", "Failed to acquire migration lock", "", None, "migration-lock", None),
        case("info", "Pending post-deploy migration", " version=v45", Some(45), "post-deploy-pending", Some(45)),
        case("info", "Data migration ready to run", " dataVersion=45", Some(45), "post-deploy-pending", Some(45)),
        case("error", GATE, "", None, "startup-gate", Some(45)),
        case("error", "Unable to run data migration against the current server version. Migration requires server at version 3.3.0 <= version < 4.0.0, but current server version is 4.0.0", "", None, "startup-gate", None),
        case("error", "Unable to run post-deploy migration v12 on this server. v12 requires server at version 4.1.12 <= version < 4.2.0, but current server version is 4.2.0", "", None, "startup-gate", Some(12)),
        // database.ts: the gate's refusal and the lock's failure as Medplum logs them, the
        // error of 'Database schema migration error'
        case("error", "Database schema migration error", " error=Error: Unable to run this version of Medplum server. Pending post-deploy migration v45 requires server at version 5.1.37 <= version < 5.2.0, but current server version is 5.2.2", None, "startup-gate", Some(45)),
        case("error", "Database schema migration error", " error=Error: Failed to acquire migration lock", None, "migration-lock", None),
        // database.ts, older releases: starting a post-deploy migration by hand
        case("error", "Cannot run post-deploy migration since pre-deploy migrations did not run", "", None, "post-deploy-not-queued", None),
        case("error", "Post-deploy migration assertion failed. Expected pending migration to be migration 2, server has no pending post-deploy migration", "", None, "post-deploy-not-queued", None),
        case("error", "Cannot run data migration; schema migrations did not run", "", None, "post-deploy-not-queued", None),
        case("error", "Data migration assertion failed. Expected pending migration to be migration 2, server has current pending data migration 1", "", None, "post-deploy-not-queued", None),
        case("error", "Data migration unable to start due to more than one existing data-migration AsyncJob with accepted status", "", None, "post-deploy-not-queued", None),
        // migrations/migration-utils.ts: queueing the pending post-deploy migration
        case("info", "Not auto-queueing pending post-deploy migration because auto-run is disabled", " version=v46", Some(46), "post-deploy-not-queued", Some(46)),
        case("debug", "Auto-queueing pending post-deploy migration", " version=v46", Some(46), "post-deploy-queued", Some(46)),
        case("error", "Unable to add post-deploy migration job", " version=46", Some(46), "post-deploy-not-queued", Some(46)),
        case("error", "Unable to start post-deploy migration since there are more than one existing data-migration AsyncJob with accepted status", "", None, "post-deploy-not-queued", None),
        case("error", "Data migration unable to start due to existing data-migration AsyncJob with accepted status in a project", "", None, "post-deploy-not-queued", None),
        case("error", "Cannot run post-deploy migration since pre-deploy migrations are disabled", "", None, "post-deploy-not-queued", None),
        case("error", "Cannot run post-deploy migration since post-deploy version is unknown", "", None, "post-deploy-not-queued", None),
        case("error", "Cannot run post-deploy migrations; next post-deploy migration version is unknown", "", None, "post-deploy-not-queued", None),
        case("error", "post-deploy migration number must be greater than zero.", "", None, "post-deploy-not-queued", None),
        case("error", "Requested post-deploy migration v2, but there are no pending post-deploy migrations.", "", None, "post-deploy-not-queued", Some(2)),
        case("error", "Requested post-deploy migration v2, but the pending post-deploy migration is v1.", "", None, "post-deploy-not-queued", Some(2)),
        case("error", "Migration definition not found for v54", "", None, "post-deploy-error", Some(54)),
        // server-registry.ts, an older release
        case("info", "Not auto-queueing pending post-deploy migration because cluster is not homogeneous", " version=v17", Some(17), "post-deploy-not-queued", Some(17)),
        case("debug", "No pending post-deploy migrations", "", None, "post-deploy-none-pending", None),
        // workers/post-deploy-migration.ts: the queue and its worker
        case("debug", "Adding post-deploy migration job", " version=v46", Some(46), "post-deploy-queued", Some(46)),
        case("debug", "Added post-deploy migration job", "", None, "post-deploy-queued", None),
        case("error", "Job queue PostDeployMigrationQueue not available", "", None, "post-deploy-not-queued", None),
        case("info", "PostDeployMigrationQueue processor skipping job since AsyncJob is not active", "", None, "post-deploy-worker", None),
        case("info", "Post-deploy migration delayed since this worker is not compatible", "", None, "post-deploy-delayed", None),
        case("info", "Post-deploy migration delayed since migration definition was not found on this worker", "", None, "post-deploy-delayed", None),
        case("info", "Post-deploy migration v51 delayed since the server cluster is not compatible", "", None, "post-deploy-delayed", Some(51)),
        case("info", "Post-deploy migration delayed since worker is not eligible to execute it", "", None, "post-deploy-delayed", None),
        case("error", "Post-deploy migration threw an error", " dataVersion=45 error=canceling statement due to statement timeout", Some(45), "post-deploy-error", Some(45)),
        case("error", "Post-deploy migration number (AsyncJob.dataVersion) not found in AsyncJob/5f1c", "", None, "post-deploy-error", None),
        case("error", "Unexpected PostDeployMigration.run(45) result: undefined", "", None, "post-deploy-error", Some(45)),
        case("error", "Post-deploy migration 13 is not a reindex migration", "", None, "post-deploy-error", Some(13)),
        case("info", "Skipping custom post-deploy migration since server is in firstBoot mode", "", None, "post-deploy-skipped", None),
        // any other wording that names a post-deploy migration (a future release's)
        case("debug", "Post-deploy migration v9 did something new", "", None, "post-deploy-migration", Some(9)),
        // workers/utils.ts: worker events, all at info level; delaying a job
        case("info", "PostDeployMigrationQueue worker: active", "", None, "post-deploy-worker", None),
        case("info", "PostDeployMigrationQueue worker: completed", "", None, "post-deploy-worker", None),
        case("info", "PostDeployMigrationQueue worker: failed", " error=Post-deploy migration 13 is not a reindex migration", None, "post-deploy-worker", Some(13)),
        case("info", "PostDeployMigrationQueue worker: error", " error=Connection is closed.", None, "post-deploy-worker", None),
        case("info", "PostDeployMigrationQueue worker: stalled", "", None, "post-deploy-worker", None),
        case("info", "PostDeployMigrationQueue worker: closing", "", None, "post-deploy-worker", None),
        case("info", "PostDeployMigrationQueue worker: closed", "", None, "post-deploy-worker", None),
        case("info", "ReindexQueue worker: active", "", None, "reindex", None),
        case("info", "ReindexQueue worker: completed", "", None, "reindex", None),
        case("info", "ReindexQueue worker: failed", " error=canceling statement due to statement timeout", None, "reindex", None),
        case("info", "ReindexQueue worker: error", "", None, "reindex", None),
        case("info", "ReindexQueue worker: stalled", "", None, "reindex", None),
        case("info", "ReindexQueue worker: closing", "", None, "reindex", None),
        case("info", "ReindexQueue worker: closed", "", None, "reindex", None),
        case("error", "Cannot delay job since job.token is not available", "", None, "post-deploy-delayed", None),
        case("error", "Cannot delay Post-deploy migration job since job.token is not available", "", None, "post-deploy-delayed", None),
        // workers/reindex.ts: reindex migrations
        case("info", "Reindex in progress", "", None, "reindex", None),
        case("info", "Reindex completed", "", None, "reindex", None),
        case("info", "Reindex completed for resourceType", "", None, "reindex", None),
        case("warn", "Reindex iteration failed, retrying", " error=canceling statement due to statement timeout", None, "reindex", None),
        case("info", "Reindex job delayed since worker is not eligible to execute it", "", None, "post-deploy-delayed", None),
        case("info", "ReindexJob delayed since queue is closing", "", None, "post-deploy-delayed", None),
        case("info", "Reindex job detected queue is closing", "", None, "post-deploy-delayed", None),
        case("info", "Skipping reindex post-deploy migration since server is in firstBoot mode", " version=v52", Some(52), "reindex-skipped", Some(52)),
        // fhir/operations/utils/asyncjobexecutor.ts: completing a post-deploy job; admin jobs
        case("info", "Marking post-deploy migration complete", " version=v45", Some(45), "post-deploy-completed", Some(45)),
        case("info", "AsyncJob execution starting", "", None, "async-job", None),
        case("info", "AsyncJob execution completed", " duration=12 ms", None, "async-job", None),
        case("error", "AsyncJob execution failed", " error=boom", None, "async-job", None),
        case("error", "AsyncJob execution failed", " error=Cannot run post-deploy migration since pre-deploy migrations are disabled", None, "post-deploy-not-queued", None),
        case("info", "Async job starting", "", None, "async-job", None),
        case("info", "Async job completed", " duration=12 ms", None, "async-job", None),
        case("error", "Async job failed", "", None, "async-job", None),
        // index.ts: a server starting, with its release (never a migration number)
        case("info", "Starting Medplum Server...", " version=5.2.2-8f1e2a3", None, "server-start", None),
    ];

    fn event(case: &Case) -> LogEvent {
        let (kind, version) = classify(
            case.message,
            case.fields,
            Some(case.level),
            case.field_version,
        );
        LogEvent {
            at: Some("2026-03-01T10:00:00Z".parse().unwrap()),
            level: Some(case.level.into()),
            kind,
            version,
            message: case.message.into(),
            fields: case.fields.into(),
            source: "server.log".into(),
        }
    }

    #[test]
    fn every_migration_message_has_its_kind_and_version() {
        let filter = LineFilter::new().unwrap();
        for case in CASES {
            let what = format!("{} [{}]{}", case.message, case.level, case.fields);
            assert_eq!(
                log_kind(case.message, case.fields, Some(case.level)),
                case.kind,
                "{what}"
            );
            let events = timeline(None, &[], &[event(case)]);
            assert_eq!(events[0].kind, case.kind, "{what}");
            assert_eq!(events[0].version, case.version, "{what}");
            // Kept by its text, whatever its level.
            let line = format!(
                r#"{{"level":"{}","timestamp":"2026-03-01T10:00:00.000Z","msg":{}}}"#,
                case.level.to_uppercase(),
                serde_json::to_string(case.message).unwrap()
            );
            assert_eq!(filter.classify(line.as_bytes()), Some(true), "{what}");
        }
    }

    #[test]
    fn the_cases_cover_every_kept_message_and_every_kind() {
        for message in MIGRATION_MESSAGES {
            let lower = message.to_lowercase();
            assert!(
                CASES
                    .iter()
                    .any(|c| c.message.to_lowercase().contains(&lower)),
                "no case for {message:?}"
            );
            // Even alone, a kept message is never just a warning or an error.
            let kind = log_kind(message, "", Some("error"));
            assert!(kind != "error" && kind != "warning", "{message:?}: {kind}");
        }
        for kind in LOG_KINDS {
            assert!(
                CASES.iter().any(|c| c.kind == kind.id),
                "no case of kind {}",
                kind.id
            );
        }
    }

    #[test]
    fn the_readme_lists_the_kinds_in_the_order_they_are_tried() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("### Log kinds").unwrap()..];
        let section = &section[..section.find("\n`version`").unwrap()];
        let documented: Vec<&str> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|line| line.split('`').next())
            .collect();
        let mut ids: Vec<&str> = LOG_KINDS.iter().map(|kind| kind.id).collect();
        ids.push("warning");
        assert_eq!(documented, ids);
    }

    #[test]
    fn lines_of_no_migration_are_warnings_or_errors() {
        assert_eq!(log_kind("Request failed", "", Some("error")), "error");
        assert_eq!(log_kind("Slow query", "", Some("warn")), "warning");
        assert_eq!(log_kind("disk almost full", "", None), "error");
        // A plain line that carries a migration message is of its kind.
        assert_eq!(
            log_kind(&format!("Error: {GATE}"), "", Some("error")),
            "startup-gate"
        );
        assert_eq!(
            classify("Request failed", " version=v3", Some("error"), Some(3)),
            ("error", None)
        );
    }

    #[test]
    fn versions_are_read_as_words_and_within_bounds() {
        assert_eq!(named_version("migration v45."), Some(45));
        assert_eq!(named_version("(V7)"), Some(7));
        assert_eq!(named_version("server v5.2.2 then v9"), Some(9));
        assert_eq!(named_version("dev45 v12b v3"), Some(3));
        assert_eq!(named_version("v0"), None);
        assert_eq!(named_version("v99999999999999999999999999"), None);
        assert_eq!(named_version("v4294967296 v8"), Some(8));
        assert_eq!(
            named_version("Post-deploy migration 13 is not a custom migration"),
            Some(13)
        );
        assert_eq!(named_version("version 5.1.37 <= version < 5.2.0"), None);
        assert_eq!(named_version("ünïcödé v6 ✓"), Some(6));
    }

    #[test]
    fn a_server_start_names_its_release_without_the_build() {
        let release = |m: &str| started_release(m).map(|v| v.to_string());
        assert_eq!(
            release("Starting Medplum Server... version=5.2.2-8f1e2a3").as_deref(),
            Some("5.2.2")
        );
        assert_eq!(
            release("Starting Medplum Server... version=v4.3.12").as_deref(),
            Some("4.3.12")
        );
        assert_eq!(release("Starting Medplum Server..."), None);
        assert_eq!(release("Starting Medplum Server... version=banana"), None);
    }

    #[test]
    fn undated_events_come_last() {
        let event = |at: Option<&str>, message: &str| LogEvent {
            at: at.map(|t| t.parse().unwrap()),
            level: Some("error".into()),
            kind: "error",
            message: message.into(),
            fields: String::new(),
            version: None,
            source: "server.log".into(),
        };
        let events = timeline(
            None,
            &[],
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
