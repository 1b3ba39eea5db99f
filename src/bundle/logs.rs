//! Server logs into a bundle: of every line `sources/logs.rs` reads (from plain files, `.gz`,
//! or a directory of them), keep the lines that matter — the migration messages of Medplum's
//! logger, and every warning and error — within the time window, redact them, write them into
//! the bundle, and count what was read, kept and dropped.
//!
//! This module owns which lines are kept (the keep-patterns, [`MIGRATION_MESSAGES`] and
//! [`LEVEL_MARKERS`]) and what is read from a kept line for the timeline: its time, level,
//! message, the fields that say which migration, and the migration number those fields name.
//! What a message means (its kind) is the timeline's business (`timeline.rs`), asked here on
//! the line as it was written, before redaction.
//!
//! Memory stays bounded whatever the size: lines are read one at a time into a capped
//! buffer (`sources/logs.rs`), a multi-pattern search decides before anything is parsed, and
//! only kept lines are parsed for their time. A truncated `.gz` or a binary file is noted and
//! skipped, never fatal.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;

use super::redact::{Document, Redactor};
use crate::limits::{self, BUNDLE_ENTRY_MAX_BYTES};
use crate::sources::logs::{files_under, LogInput, LogReader};

/// The timeline keeps at most this many log events; the rest are counted.
const MAX_EVENTS: usize = 20_000;

/// Every message Medplum's server writes about migrations, or its constant part where the
/// message carries a number (see `shared/medplum.md`, "Log lines worth keeping"). Matched
/// case-insensitively anywhere in a line, whatever its level: several are logged at info
/// level, some even for failures. Grouped by the server source file that writes them
/// (under `packages/server/src/`); older wordings are kept beside current ones. The
/// timeline sorts them into kinds (`timeline.rs`); a test checks that each one gets one.
pub const MIGRATION_MESSAGES: [&str; 72] = [
    // database.ts: pre-deploy migrations at startup, the migration lock, the startup gate
    "Database pre-deploy migration",
    "Database schema migration",
    "Database schema migration error",
    "Failed to acquire migration lock",
    "Pending post-deploy migration",
    "Data migration ready to run",
    "Unable to run this version of Medplum server",
    "Unable to run data migration against the current server version",
    "Unable to run post-deploy migration v",
    // database.ts, older releases: starting a post-deploy migration by hand
    "Cannot run post-deploy migration since pre-deploy migrations did not run",
    "Post-deploy migration assertion failed",
    "Cannot run data migration; schema migrations did not run",
    "Data migration assertion failed",
    "Data migration unable to start due to more than one existing data-migration AsyncJob with accepted status",
    // migrations/migration-utils.ts: queueing the pending post-deploy migration
    "Not auto-queueing pending post-deploy migration because auto-run is disabled",
    "Auto-queueing pending post-deploy migration",
    "Unable to add post-deploy migration job",
    "Unable to start post-deploy migration since there are more than one existing data-migration AsyncJob with accepted status",
    "Data migration unable to start due to existing data-migration AsyncJob with accepted status in a project",
    "Cannot run post-deploy migration since pre-deploy migrations are disabled",
    "Cannot run post-deploy migration since post-deploy version is unknown",
    "Cannot run post-deploy migrations; next post-deploy migration version is unknown",
    "post-deploy migration number must be greater than zero",
    "Requested post-deploy migration v",
    "Migration definition not found",
    // server-registry.ts, older releases
    "Not auto-queueing pending post-deploy migration because cluster is not homogeneous",
    "No pending post-deploy migrations",
    // workers/post-deploy-migration.ts: the queue and its worker
    "Adding post-deploy migration job",
    "Added post-deploy migration job",
    "PostDeployMigrationQueue processor skipping job since AsyncJob is not active",
    "Post-deploy migration delayed since this worker is not compatible",
    "Post-deploy migration delayed since migration definition was not found on this worker",
    "delayed since the server cluster is not compatible",
    "Post-deploy migration delayed since worker is not eligible to execute it",
    "Post-deploy migration threw an error",
    "Post-deploy migration number (AsyncJob.dataVersion) not found",
    "Unexpected PostDeployMigration.run(",
    "Skipping custom post-deploy migration since server is in firstBoot mode",
    // workers/post-deploy-migration.ts: any other line naming the queue or a post-deploy
    // migration, such as Post-deploy migration N is not a reindex migration
    "PostDeployMigrationQueue",
    "Post-deploy migration",
    // workers/utils.ts: the queues' worker events (all at info level) and delaying a job
    "PostDeployMigrationQueue worker: active",
    "PostDeployMigrationQueue worker: completed",
    "PostDeployMigrationQueue worker: failed",
    "PostDeployMigrationQueue worker: error",
    "PostDeployMigrationQueue worker: stalled",
    "PostDeployMigrationQueue worker: closing",
    "PostDeployMigrationQueue worker: closed",
    "ReindexQueue worker: active",
    "ReindexQueue worker: completed",
    "ReindexQueue worker: failed",
    "ReindexQueue worker: error",
    "ReindexQueue worker: stalled",
    "ReindexQueue worker: closing",
    "ReindexQueue worker: closed",
    "Cannot delay job since job.token is not available",
    "Cannot delay Post-deploy migration job since job.token is not available",
    // workers/reindex.ts: reindex migrations
    "Reindex in progress",
    "Reindex completed",
    "Reindex completed for resourceType",
    "Reindex iteration failed, retrying",
    "Reindex job delayed since worker is not eligible to execute it",
    "ReindexJob delayed since queue is closing",
    "Reindex job detected queue is closing",
    "Skipping reindex post-deploy migration since server is in firstBoot mode",
    // fhir/operations/utils/asyncjobexecutor.ts: completing a post-deploy job, other admin
    // jobs (older releases said Async job)
    "Marking post-deploy migration complete",
    "AsyncJob execution starting",
    "AsyncJob execution completed",
    "AsyncJob execution failed",
    "Async job starting",
    "Async job completed",
    "Async job failed",
    // index.ts: a server starting, with the release it runs (`version`): when each release
    // was deployed
    "Starting Medplum Server",
];

/// How warnings and errors look in JSON and plain-text logs.
pub const LEVEL_MARKERS: [&str; 14] = [
    "\"level\":\"error\"",
    "\"level\":\"warn",
    "\"level\":\"fatal\"",
    "\"level\": \"error\"",
    "\"level\": \"warn",
    "\"level\":50",
    "\"level\":40",
    "\"level\":60",
    " ERROR ",
    " WARN ",
    "[ERROR]",
    "[WARN",
    "level=error",
    "level=warn",
];

/// The time window of kept lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWindow {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl LogWindow {
    fn contains(&self, at: DateTime<Utc>) -> bool {
        self.since.is_none_or(|s| at >= s) && self.until.is_none_or(|u| at <= u)
    }
}

/// What happened to one input file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogFileReport {
    /// The input path.
    pub source: String,
    /// Where its kept lines are in the bundle, if any were kept.
    pub bundled_as: Option<String>,
    /// Bytes read (decompressed).
    pub bytes_read: u64,
    pub lines_read: u64,
    pub lines_kept: u64,
    /// Lines that matched but lie outside the window.
    pub lines_outside_window: u64,
    /// Kept lines with no time medmig could read (kept: they cannot be placed outside).
    pub lines_undated: u64,
    /// Kept lines in which something was redacted.
    pub lines_redacted: u64,
    /// Lines longer than 64 KiB, cut.
    pub lines_cut: u64,
    /// Why the file was skipped or read only in part.
    pub note: Option<String>,
}

/// A migration-related line, for the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEvent {
    pub at: Option<DateTime<Utc>>,
    pub level: Option<String>,
    /// Its kind (`timeline.rs`), read from the line as it was written.
    pub kind: &'static str,
    /// The post-deploy migration it concerns (`timeline.rs`), read from the line as it was
    /// written.
    pub version: Option<u32>,
    /// The logger's message (`msg`), redacted; a line without one, whole.
    pub message: String,
    /// The fields of a JSON line that say which migration and why, as ` key=value` (version,
    /// dataVersion, duration, err, error), their values redacted; empty when there are none.
    pub fields: String,
    pub source: String,
}

/// Everything log ingestion produced.
#[derive(Debug, Default)]
pub struct LogIngest {
    pub files: Vec<LogFileReport>,
    pub events: Vec<LogEvent>,
    /// Events beyond the timeline's cap, counted only.
    pub events_dropped: u64,
}

impl LogIngest {
    /// The sum of one count over every file.
    pub fn total(&self, count: fn(&LogFileReport) -> u64) -> u64 {
        self.files.iter().map(count).sum()
    }
}

/// Decides which lines are kept.
pub struct LineFilter {
    keep: AhoCorasick,
    migration_patterns: usize,
}

impl LineFilter {
    /// The keep-patterns: the migration messages and the level markers.
    pub fn new() -> Result<LineFilter> {
        let patterns: Vec<&str> = MIGRATION_MESSAGES
            .iter()
            .chain(LEVEL_MARKERS.iter())
            .copied()
            .collect();
        // A DFA: one table lookup per byte, whatever the number of patterns. No prefilter
        // applies to this many case-insensitive patterns, so the scan is the whole cost.
        let keep = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .context("the log keep-patterns")?;
        Ok(LineFilter {
            keep,
            migration_patterns: MIGRATION_MESSAGES.len(),
        })
    }

    /// `None` when the line is not kept; `Some(true)` for a migration message.
    pub(crate) fn classify(&self, line: &[u8]) -> Option<bool> {
        let mut kept = None;
        for found in self.keep.find_iter(line) {
            if found.pattern().as_usize() < self.migration_patterns {
                return Some(true);
            }
            kept = Some(false);
        }
        kept
    }
}

/// Reads every file under `paths`, writes the kept lines of each to `out_dir`, and reports.
/// A file that cannot be read, and anything under a directory that is not a regular file, is
/// reported with a note and the rest is read (see [`files_under`]).
/// `progress` is told the bytes read so far, now and then.
pub fn ingest(
    paths: &[PathBuf],
    window: LogWindow,
    redactor: &mut Redactor,
    out_dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<LogIngest> {
    let filter = LineFilter::new()?;
    let found = files_under(paths);
    let mut ingest = LogIngest::default();
    let mut total = 0u64;
    for (index, input) in found.into_iter().enumerate() {
        let path = match input {
            LogInput::File(path) => path,
            LogInput::PassedOver(path, why) => {
                ingest.files.push(LogFileReport {
                    source: path.display().to_string(),
                    note: Some(why),
                    ..LogFileReport::default()
                });
                continue;
            }
        };
        let name = bundled_name(index, &path);
        let report = ingest_file(
            &path,
            &name,
            window,
            &filter,
            redactor,
            out_dir,
            BUNDLE_ENTRY_MAX_BYTES,
            &mut ingest,
            &mut |bytes| progress(total + bytes),
        )?;
        total += report.bytes_read;
        ingest.files.push(report);
    }
    Ok(ingest)
}

/// `03-server.log` for the third input `…/server.log.gz`; `.log` is added to names without
/// an extension.
fn bundled_name(index: usize, path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "log".into());
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let extension = if Path::new(&safe).extension().is_some() {
        ""
    } else {
        ".log"
    };
    format!("{:02}-{safe}{extension}", index + 1)
}

/// Reads one file into `out_dir/name`, keeping no more than `kept_max` bytes of lines. A
/// file that cannot be opened or read is reported with a note, never an error.
#[allow(clippy::too_many_arguments)]
fn ingest_file(
    path: &Path,
    name: &str,
    window: LogWindow,
    filter: &LineFilter,
    redactor: &mut Redactor,
    out_dir: &Path,
    kept_max: u64,
    ingest: &mut LogIngest,
    progress: &mut dyn FnMut(u64),
) -> Result<LogFileReport> {
    let source = path.display().to_string();
    let mut report = LogFileReport {
        source: source.clone(),
        ..LogFileReport::default()
    };
    let mut reader = match LogReader::open(path) {
        Ok(reader) => reader,
        Err(note) => {
            report.note = Some(note);
            return Ok(report);
        }
    };

    let bundled = out_dir.join(name);
    let mut output: Option<io::BufWriter<File>> = None;
    let mut line = Vec::with_capacity(4096);
    let mut next_progress = 64 << 20;
    let mut kept_bytes = 0u64;
    loop {
        let cut = match reader.next_line(&mut line) {
            Ok(Some(cut)) => cut,
            Ok(None) => break,
            Err(err) => {
                let what = if reader.is_gzip() {
                    "truncated or damaged gzip"
                } else {
                    "read error"
                };
                report.note = Some(format!(
                    "{what} after {} ({err}): the rest was not read",
                    crate::text::count(report.lines_read, "line", "lines")
                ));
                break;
            }
        };
        report.lines_read += 1;
        report.lines_cut += u64::from(cut);
        let bytes = reader.bytes_read();
        if bytes >= next_progress {
            progress(bytes);
            next_progress = bytes + (64 << 20);
        }
        let Some(migration) = filter.classify(&line) else {
            continue;
        };
        let text = String::from_utf8_lossy(&line);
        let parsed = parse_line(&text);
        match parsed.at {
            Some(at) if !window.contains(at) => {
                report.lines_outside_window += 1;
                continue;
            }
            None => report.lines_undated += 1,
            Some(_) => {}
        }
        let redacted = redactor.log_line(&text);
        if redacted != text {
            report.lines_redacted += 1;
        }
        let size = redacted.len() as u64 + 1;
        if kept_bytes + size > kept_max {
            report.note = Some(format!(
                "the kept lines reached {}, the most one bundled log holds: the rest of the file was not read",
                limits::size(kept_max)
            ));
            break;
        }
        kept_bytes += size;
        report.lines_kept += 1;
        let out = match &mut output {
            Some(out) => out,
            None => output
                .insert(io::BufWriter::new(File::create(&bundled).with_context(
                    || format!("cannot write {}", bundled.display()),
                )?)),
        };
        out.write_all(redacted.as_bytes())?;
        out.write_all(b"\n")?;
        if migration || parsed.is_error {
            if ingest.events.len() < MAX_EVENTS {
                ingest
                    .events
                    .push(event(parsed, &text, &redacted, &source, redactor));
            } else {
                ingest.events_dropped += 1;
            }
        }
    }
    if let Some(mut out) = output {
        out.flush()?;
        report.bundled_as = Some(format!("logs/{name}"));
    }
    report.bytes_read = reader.bytes_read();
    progress(report.bytes_read);
    Ok(report)
}

/// The timeline's event of a kept line (`text`, `redacted` by [`Redactor::log_line`]): its kind
/// and migration decided on the line as written, so that no keyword changes them; its message
/// and the values of its fields redacted.
fn event(
    parsed: ParsedLine,
    text: &str,
    redacted: &str,
    source: &str,
    redactor: &mut Redactor,
) -> LogEvent {
    let (message, shown) = match &parsed.message {
        Some(message) => (message.as_str(), redactor.text(message)),
        None => (text.trim(), redacted.trim().to_string()),
    };
    let mut fields = parsed.fields.clone();
    for (key, value) in &mut fields {
        redactor.document(value, Document::LogLine, &[key]);
    }
    let (kind, version) = super::timeline::classify(
        message,
        &fields_text(&parsed.fields),
        parsed.level.as_deref(),
        parsed.version,
    );
    LogEvent {
        at: parsed.at,
        level: parsed.level,
        kind,
        version,
        message: shown,
        fields: fields_text(&fields),
        source: source.to_string(),
    }
}

/// ` key=value` for each field, each value cut at 200 characters.
fn fields_text(fields: &[(&'static str, Value)]) -> String {
    let mut text = String::new();
    for (key, value) in fields {
        let shown = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        text.push_str(&format!(" {key}={}", crate::text::shorten(&shown, 200)));
    }
    text
}

/// What a kept line says about itself.
#[derive(Debug, Default, PartialEq)]
struct ParsedLine {
    at: Option<DateTime<Utc>>,
    level: Option<String>,
    message: Option<String>,
    /// The fields that say which migration and why, as written.
    fields: Vec<(&'static str, Value)>,
    /// The number a `version: "vN"` or `dataVersion: N` field names.
    version: Option<u32>,
    is_error: bool,
}

/// Reads the time, level and message of a JSON log line, or the leading timestamp of a plain
/// one.
fn parse_line(text: &str) -> ParsedLine {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(trimmed) {
            let at = ["timestamp", "time", "@timestamp", "ts"]
                .iter()
                .find_map(|key| object.get(*key).and_then(time_of));
            let level = object.get("level").map(|l| match l {
                Value::String(s) => s.to_lowercase(),
                Value::Number(n) => match n.as_u64() {
                    Some(60..) => "fatal".into(),
                    Some(50..=59) => "error".into(),
                    Some(40..=49) => "warn".into(),
                    _ => n.to_string(),
                },
                other => other.to_string(),
            });
            let message = ["msg", "message"]
                .iter()
                .find_map(|key| object.get(*key).and_then(Value::as_str))
                .map(str::to_string);
            // The fields that say which migration: version, duration, error.
            let mut fields = Vec::new();
            if message.is_some() {
                for key in ["version", "dataVersion", "duration", "err", "error"] {
                    if let Some(value) = object.get(key) {
                        fields.push((key, value.clone()));
                    }
                }
            }
            // `version: "v45"` (or the bare number some lines give), `dataVersion: 45`.
            let number = |value: &Value| match value {
                Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                Value::String(s) => migration_number(s.strip_prefix(['v', 'V']).unwrap_or(s)),
                _ => None,
            };
            let version = ["version", "dataVersion"]
                .iter()
                .find_map(|key| object.get(*key).and_then(number))
                .filter(|n| *n > 0);
            let is_error = level
                .as_deref()
                .is_some_and(|l| l == "error" || l == "fatal");
            return ParsedLine {
                at,
                level,
                message,
                fields,
                version,
                is_error,
            };
        }
    }
    let first: String = trimmed.chars().take(40).collect();
    let at = leading_time(&first);
    let upper = text.to_ascii_uppercase();
    let is_error = upper.contains("ERROR") || upper.contains("FATAL");
    ParsedLine {
        at,
        level: is_error.then(|| "error".to_string()),
        message: None,
        fields: Vec::new(),
        version: None,
        is_error,
    }
}

/// The number written in `digits` (ASCII digits only, nothing else), if it fits a `u32` and
/// is not 0. Parsing is bounded: a run of more than ten digits is refused unread.
pub(crate) fn migration_number(digits: &str) -> Option<u32> {
    if !(1..=10).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u32>().ok().filter(|n| *n > 0)
}

/// A JSON time: RFC 3339 text or epoch milliseconds.
fn time_of(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => n
            .as_i64()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        _ => None,
    }
}

/// `2025-06-02T10:04:05Z …`, `2025-06-02 10:04:05.123 …` at the start of a plain line.
fn leading_time(start: &str) -> Option<DateTime<Utc>> {
    let token: String = start
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let first = token.split(' ').next().unwrap_or("");
    if let Ok(at) = DateTime::parse_from_rfc3339(first.trim_matches(['[', ']'])) {
        return Some(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(token.trim_matches(['[', ']']), format) {
            return Some(Utc.from_utc_datetime(&naive));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified_by_message_and_level() {
        let filter = LineFilter::new().unwrap();
        let classify = |s: &str| filter.classify(s.as_bytes());
        assert_eq!(
            classify(r#"{"level":"INFO","msg":"Database pre-deploy migration","version":"v120"}"#),
            Some(true)
        );
        assert_eq!(
            classify(r#"{"level":"ERROR","msg":"Request failed"}"#),
            Some(false)
        );
        assert_eq!(classify(r#"{"level":"INFO","msg":"Request served"}"#), None);
        assert_eq!(classify("2025-06-02 10:04:05 INFO  served in 3 ms"), None);
        assert_eq!(classify("2025-06-02 10:04:05 WARN slow query"), Some(false));
        assert_eq!(
            classify("2025-06-02 10:04:05 [WARN] slow query"),
            Some(false)
        );
    }

    #[test]
    fn every_migration_message_is_kept_at_any_level() {
        // The messages come from several server files (database.ts, migration-utils.ts,
        // server-registry.ts, workers/post-deploy-migration.ts, workers/utils.ts,
        // workers/reindex.ts, asyncjobexecutor.ts; see MIGRATION_MESSAGES); several are
        // logged at info level, even failures (ReindexQueue worker: failed).
        let filter = LineFilter::new().unwrap();
        for message in MIGRATION_MESSAGES {
            let msg = serde_json::to_string(message).unwrap();
            for line in [
                format!(r#"{{"level":"INFO","timestamp":"2026-03-01T10:00:00.000Z","msg":{msg}}}"#),
                format!(r#"{{"level":"DEBUG","msg":{msg},"version":"v45"}}"#),
                format!(r#"{{"level":30,"time":1748858645000,"msg":{msg}}}"#),
                format!("2026-03-01 10:00:00 INFO {message}"),
                format!("2026-03-01 10:00:00 info {}", message.to_lowercase()),
            ] {
                assert_eq!(filter.classify(line.as_bytes()), Some(true), "{line}");
            }
        }
    }

    #[test]
    fn the_migration_number_of_a_line_comes_from_its_fields() {
        let version = |line: &str| parse_line(line).version;
        assert_eq!(
            version(r#"{"msg":"Pending post-deploy migration","version":"v45"}"#),
            Some(45)
        );
        assert_eq!(
            version(r#"{"msg":"Unable to add post-deploy migration job","version":46}"#),
            Some(46)
        );
        assert_eq!(
            version(r#"{"msg":"Post-deploy migration threw an error","dataVersion":47}"#),
            Some(47)
        );
        assert_eq!(version(r#"{"msg":"x","dataVersion":"48"}"#), Some(48));
        assert_eq!(
            version(r#"{"msg":"x","version":"5.2.2","dataVersion":49}"#),
            Some(49)
        );
        for absurd in [
            r#"{"msg":"x","version":"v99999999999999999999999"}"#,
            r#"{"msg":"x","dataVersion":4294967296}"#,
            r#"{"msg":"x","dataVersion":-1}"#,
            r#"{"msg":"x","dataVersion":0}"#,
            r#"{"msg":"x","dataVersion":4.5}"#,
            r#"{"msg":"x","version":"v"}"#,
            r#"{"msg":"x","version":"v4x"}"#,
            r#"{"msg":"x","version":{"n":4}}"#,
        ] {
            assert_eq!(version(absurd), None, "{absurd}");
        }
        assert_eq!(migration_number(&"9".repeat(100_000)), None);
    }

    #[test]
    fn json_and_plain_lines_give_their_time() {
        let parsed = parse_line(
            r#"{"level":"ERROR","timestamp":"2025-06-02T10:04:05.000Z","msg":"Post-deploy migration threw an error","err":"boom"}"#,
        );
        assert_eq!(parsed.at, Some("2025-06-02T10:04:05Z".parse().unwrap()));
        assert!(parsed.is_error);
        assert_eq!(
            parsed.message.as_deref(),
            Some("Post-deploy migration threw an error")
        );
        assert_eq!(fields_text(&parsed.fields), " err=boom");
        let plain = parse_line(
            "2025-06-02 10:04:05.250 ERROR Unable to run this version of Medplum server",
        );
        assert_eq!(plain.at, Some("2025-06-02T10:04:05.250Z".parse().unwrap()));
        assert!(plain.is_error);
        let pino = parse_line(r#"{"level":50,"time":1748858645000,"msg":"x"}"#);
        assert_eq!(pino.level.as_deref(), Some("error"));
        assert!(pino.at.is_some());
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("medmig-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_bundled_log_stops_keeping_lines_at_its_cap() {
        let dir = temp_dir("kept-cap");
        let line = "2026-03-01 10:00:00 ERROR something failed\n";
        std::fs::write(dir.join("server.log"), line.repeat(100)).unwrap();
        let mut ingest = LogIngest::default();
        let report = ingest_file(
            &dir.join("server.log"),
            "01-server.log",
            LogWindow::default(),
            &LineFilter::new().unwrap(),
            &mut Redactor::new(&Default::default()).unwrap(),
            &dir,
            10 * line.len() as u64,
            &mut ingest,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(report.lines_kept, 10);
        assert!(report
            .note
            .unwrap()
            .contains("the most one bundled log holds"));
        let kept = std::fs::read(dir.join("01-server.log")).unwrap();
        assert_eq!(kept.len(), 10 * line.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_event_is_classified_as_written_and_shown_redacted() {
        let mut redactor = Redactor::new(&crate::bundle::redact::RedactOptions {
            redact_ip: false,
            keywords: ["queue", "error", "version", "Mary"]
                .map(String::from)
                .to_vec(),
        })
        .unwrap();
        let line = r#"{"level":"error","msg":"Job queue PostDeployMigrationQueue not available","version":"v45","err":"Mary's error"}"#;
        let redacted = redactor.log_line(line);
        let event = event(
            parse_line(line),
            line,
            &redacted,
            "server.log",
            &mut redactor,
        );
        // Redacted first, the message would be of another kind (`post-deploy-migration`).
        assert_eq!(
            (event.kind, event.version),
            ("post-deploy-not-queued", Some(45))
        );
        assert_eq!(
            event.message,
            "Job [keyword-1] PostDeployMigrationQueue not available"
        );
        assert_eq!(event.fields, " version=v45 err=[keyword-2]'s [keyword-3]");
    }
}
