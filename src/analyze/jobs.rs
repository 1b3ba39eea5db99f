//! Reading post-deploy migration jobs: the `AsyncJob` JSON as Medplum writes it, and the
//! `output` Parameters it carries (custom-migration actions, reindex results, failures, the
//! first-boot skip).
//!
//! This module owns the knowledge of those shapes and nothing else: which state a migration
//! is in is decided by `migrations.rs`. A job that cannot be read becomes a [`JobDefect`]
//! (a finding), never a panic.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::medplum::manifest::{data_version_number, digits_value, MAX_DATA_VERSION};
use crate::snapshot::JobRecord;
use crate::text::{elapsed, group_thousands, plural, shorten};

/// The `status` of an `AsyncJob`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// Queued; reindex migrations also stay `accepted` while they work.
    Accepted,
    Active,
    Completed,
    Error,
    /// Cancelled with `$cancel` (only possible from `accepted`).
    Cancelled,
    /// Anything else, kept as written.
    Other(String),
}

impl JobStatus {
    /// Reads Medplum's spelling.
    pub fn parse(text: &str) -> JobStatus {
        match text {
            "accepted" => JobStatus::Accepted,
            "active" => JobStatus::Active,
            "completed" => JobStatus::Completed,
            "error" => JobStatus::Error,
            "cancelled" => JobStatus::Cancelled,
            other => JobStatus::Other(other.to_string()),
        }
    }

    /// Medplum's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            JobStatus::Accepted => "accepted",
            JobStatus::Active => "active",
            JobStatus::Completed => "completed",
            JobStatus::Error => "error",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Other(other) => other,
        }
    }

    /// Whether the server still counts the job as in progress (`accepted` or `active`).
    pub fn in_progress(&self) -> bool {
        matches!(self, JobStatus::Accepted | JobStatus::Active)
    }

    /// Whether the job has ended (`completed`, `error` or `cancelled`).
    pub fn ended(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Error | JobStatus::Cancelled
        )
    }
}

/// The `projectId` the server writes for system resources (a UUIDv5 of "systemResource";
/// `packages/server/src/constants.ts`, `systemResourceProjectId`). Older servers leave the
/// column null instead. Either way the job is a system job, which the server's search
/// `_project:missing=true` finds.
pub const SYSTEM_PROJECT_ID: &str = "65897e4f-7add-55f3-9b17-035b5a4e6d52";

/// A post-deploy migration job, read from its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct DataMigrationJob {
    pub id: String,
    /// The project it belongs to, when it belongs to one: the server ignores such jobs
    /// (`preparePostDeployMigrationAsyncJob` searches `_project:missing=true`), and so does
    /// medmig.
    pub project: Option<String>,
    pub status: JobStatus,
    /// The post-deploy migration it runs.
    pub data_version: u32,
    /// The server release that created the job.
    pub min_server_version: Option<String>,
    pub request_time: Option<DateTime<Utc>>,
    /// When it completed or failed.
    pub transaction_time: Option<DateTime<Utc>>,
    pub last_updated: DateTime<Utc>,
    /// The `"status"` search column, when it disagrees with the JSON.
    pub status_column_mismatch: Option<String>,
    pub output: OutputSummary,
}

/// A job whose JSON could not be read, or that names a number no migration has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDefect {
    /// The finding it makes: `job-unreadable`, or `odd-job-version` for a job whose
    /// `dataVersion` cannot be a migration's (see `medplum::manifest::MAX_DATA_VERSION`).
    pub finding: &'static str,
    pub job_id: String,
    /// The migration it seems to belong to, when that much could be recovered from the text.
    pub data_version: Option<u32>,
    /// What is wrong, e.g. "its content is not valid JSON (EOF while parsing at line 1 column 80)".
    pub reason: String,
}

/// What a job's `output` says, boiled down.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputSummary {
    /// A short progress text, e.g. "reindex: 3 types done (1,204 rows), in progress: Observation".
    pub progress: Option<String>,
    /// The failure message, e.g. "canceling statement due to statement timeout".
    pub error: Option<String>,
    /// Whether the output shows that work began (an action or a reindex result was recorded).
    pub work_started: bool,
    /// Whether the output is a reindex migration's (per-type `result` parameters).
    pub reindex: bool,
    /// A reindex's progress in numbers, where the output is a reindex's.
    pub reindex_counts: Option<ReindexCounts>,
}

/// How far a reindex got, by its `result` parameters: one per resource type begun.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReindexCounts {
    /// Types finished, and the rows they re-indexed.
    pub types_done: usize,
    pub rows_done: u64,
    /// Types begun and not finished.
    pub types_in_progress: usize,
    pub types_failed: usize,
}

/// A job of the server's schema maintenance endpoints (`POST /admin/super/reconcile-db-schema-drift`,
/// `rebuild-index`, `drop-invalid-indexes`): no type, no dataVersion, run on the post-deploy
/// queue as a `dynamic` job (`packages/server/src/admin/super.ts`,
/// `workers/post-deploy-migration.ts`, `runDynamicMigration`). Not a numbered migration.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MaintenanceJob {
    pub job_id: String,
    /// The endpoint that created it, e.g. `/admin/super/reconcile-db-schema-drift`.
    pub request: String,
    pub status: String,
    pub requested_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_updated: DateTime<Utc>,
    /// The statements it ran, as its output records them (each parameter's name is the SQL).
    pub statements: Vec<String>,
    /// The indexes it dropped, from those statements.
    pub dropped_indexes: Vec<String>,
    pub error: Option<String>,
}

/// Reads a job row as a schema maintenance job, if it is one.
pub fn maintenance_job(record: &JobRecord) -> Option<MaintenanceJob> {
    let resource: Value = serde_json::from_str(&record.content).ok()?;
    if resource.get("resourceType").and_then(Value::as_str) != Some("AsyncJob")
        || resource.get("type").is_some_and(|t| !t.is_null())
    {
        return None;
    }
    let request = resource.get("request").and_then(Value::as_str)?;
    let path = request.find("/admin/super/").map(|at| &request[at..])?;
    let time = |name: &str| time_field(&resource, name);
    let parameters = resource
        .pointer("/output/parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let statements: Vec<String> = parameters
        .iter()
        .filter_map(|p| p.get("name").and_then(Value::as_str))
        .filter(|name| !matches!(*name, "error" | "stack" | "outcome"))
        .take(1000)
        .map(|name| shorten(name, 300))
        .collect();
    let dropped_indexes = statements
        .iter()
        .filter_map(|sql| dropped_index(sql))
        .collect();
    let status = resource
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    let ended = matches!(status.as_str(), "completed" | "error" | "cancelled");
    Some(MaintenanceJob {
        job_id: record.id.clone(),
        request: shorten(path, 200),
        finished_at: if ended {
            time("transactionTime").or(Some(record.last_updated))
        } else {
            None
        },
        status,
        requested_at: time("requestTime"),
        last_updated: record.last_updated,
        statements,
        dropped_indexes,
        error: resource
            .get("output")
            .map(summarize_output)
            .and_then(|o| o.error),
    })
}

/// A resource's RFC 3339 time field, if it has a readable one.
fn time_field(resource: &Value, name: &str) -> Option<DateTime<Utc>> {
    resource
        .get(name)
        .and_then(Value::as_str)
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The index a `DROP INDEX [CONCURRENTLY] [IF EXISTS] name` statement drops.
fn dropped_index(sql: &str) -> Option<String> {
    let mut words = sql.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("DROP") || !words.next()?.eq_ignore_ascii_case("INDEX") {
        return None;
    }
    let mut word = words.next()?;
    if word.eq_ignore_ascii_case("CONCURRENTLY") {
        word = words.next()?;
    }
    if word.eq_ignore_ascii_case("IF") {
        words.next()?;
        word = words.next()?;
    }
    Some(word.trim_end_matches(';').to_string())
}

/// Reads one job row.
pub fn parse_job(record: &JobRecord) -> Result<DataMigrationJob, JobDefect> {
    let defect = |reason: String| JobDefect {
        finding: "job-unreadable",
        job_id: record.id.clone(),
        data_version: salvage_data_version(&record.content),
        reason,
    };
    let resource: Value = serde_json::from_str(&record.content)
        .map_err(|err| defect(format!("its content is not valid JSON ({err})")))?;
    if resource.get("resourceType").and_then(Value::as_str) != Some("AsyncJob") {
        return Err(defect("its content is not an AsyncJob resource".into()));
    }
    let status = resource
        .get("status")
        .and_then(Value::as_str)
        .map(JobStatus::parse)
        .ok_or_else(|| defect("its content has no status".into()))?;
    let data_version = data_version_of(&resource)
        .ok_or_else(|| {
            defect("its content names no post-deploy migration (no dataVersion, no request data-migration-vN)".into())
        })?
        .map_err(|written| JobDefect {
            finding: "odd-job-version",
            data_version: None,
            ..defect(format!(
                "it is {} and names post-deploy migration {written}, which cannot be one (medmig \
                 believes 1 to {MAX_DATA_VERSION}): it counts as no migration's job",
                status.as_str()
            ))
        })?;
    let time = |name: &str| time_field(&resource, name);
    let status_column_mismatch = record
        .status_column
        .clone()
        .filter(|column| column != status.as_str());
    let project = record
        .project_id
        .clone()
        .or_else(|| {
            resource
                .pointer("/meta/project")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|p| !p.is_empty() && p != SYSTEM_PROJECT_ID);
    Ok(DataMigrationJob {
        id: record.id.clone(),
        project,
        data_version,
        min_server_version: resource
            .get("minServerVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        request_time: time("requestTime"),
        transaction_time: time("transactionTime"),
        last_updated: record.last_updated,
        status_column_mismatch,
        output: resource
            .get("output")
            .map(summarize_output)
            .unwrap_or_default(),
        status,
    })
}

/// The post-deploy migration a job names: `dataVersion`, or the N of
/// `request: "data-migration-vN"` (older jobs). `Err` holds a number it names that no
/// migration has (0, negative, fractional, or past the bound), as written and shortened.
fn data_version_of(resource: &Value) -> Option<Result<u32, String>> {
    let written = |text: String| crate::text::shorten(&text, 30);
    if let Some(value) = resource.get("dataVersion") {
        let Value::Number(number) = value else {
            return None;
        };
        let n = number
            .as_i64()
            .or_else(|| number.as_u64().map(|_| i64::MAX));
        return Some(
            n.and_then(data_version_number)
                .ok_or_else(|| written(number.to_string())),
        );
    }
    let digits = resource
        .get("request")
        .and_then(Value::as_str)
        .and_then(|request| request.strip_prefix("data-migration-v"))?;
    let n = digits_value(digits)?;
    Some(data_version_number(n).ok_or_else(|| written(digits.to_string())))
}

/// Finds `"dataVersion": N` in text that is not valid JSON, so that a damaged job can still be
/// attributed to its migration (when N can be one).
fn salvage_data_version(text: &str) -> Option<u32> {
    let key = "\"dataVersion\"";
    let after = &text[text.find(key)? + key.len()..];
    let after = after.trim_start().strip_prefix(':')?.trim_start();
    let digits = after
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after.len());
    digits_value(&after[..digits]).and_then(data_version_number)
}

/// Boils a job's `output` (a FHIR Parameters resource) down to progress and error text.
pub fn summarize_output(output: &Value) -> OutputSummary {
    let parameters = output
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut errors = Vec::new();
    let mut skipped = None;
    let mut reindex = ReindexTally::default();
    let mut actions = ActionTally::default();
    for parameter in parameters {
        let name = parameter.get("name").and_then(Value::as_str).unwrap_or("");
        match name {
            "skipped" => {
                skipped = Some(
                    parameter
                        .get("valueString")
                        .and_then(Value::as_str)
                        .unwrap_or("skipped")
                        .to_string(),
                )
            }
            "outcome" => errors.extend(outcome_messages(parameter.get("resource"))),
            "error" => errors.extend(
                parameter
                    .get("valueString")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            "stack" => {}
            "result" => reindex.add(parameter, &mut errors),
            _ => actions.add(parameter),
        }
    }
    let progress = if let Some(reason) = skipped {
        Some(format!("skipped: {reason}"))
    } else if reindex.any() {
        Some(reindex.text())
    } else if actions.count > 0 {
        Some(actions.text())
    } else {
        None
    };
    OutputSummary {
        progress,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
        work_started: reindex.any() || actions.count > 0,
        reindex: reindex.any(),
        reindex_counts: reindex.any().then_some(ReindexCounts {
            types_done: reindex.done,
            rows_done: reindex.rows,
            types_in_progress: reindex.in_progress.len(),
            types_failed: reindex.failed.len(),
        }),
    }
}

/// The messages of an OperationOutcome: `details.text`, else `diagnostics`, else `code`.
fn outcome_messages(resource: Option<&Value>) -> Vec<String> {
    let issues = resource
        .and_then(|r| r.get("issue"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    issues
        .iter()
        .filter_map(|issue| {
            issue
                .pointer("/details/text")
                .or_else(|| issue.get("diagnostics"))
                .or_else(|| issue.get("code"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

/// The value of part `name` of a parameter.
fn part<'a>(parameter: &'a Value, name: &str) -> Option<&'a Value> {
    parameter
        .get("part")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
}

fn part_str<'a>(parameter: &'a Value, name: &str, value_key: &str) -> Option<&'a str> {
    part(parameter, name)?.get(value_key)?.as_str()
}

fn part_number(parameter: &Value, name: &str) -> Option<f64> {
    let p = part(parameter, name)?;
    p.get("valueInteger")
        .or_else(|| p.get("valueDecimal"))
        .or_else(|| p.pointer("/valueQuantity/value"))
        .and_then(Value::as_f64)
}

/// Reindex results: one `result` parameter per resource type.
#[derive(Default)]
struct ReindexTally {
    done: usize,
    rows: u64,
    in_progress: Vec<String>,
    failed: Vec<String>,
}

impl ReindexTally {
    fn add(&mut self, parameter: &Value, errors: &mut Vec<String>) {
        let resource_type = part_str(parameter, "resourceType", "valueCode")
            .or_else(|| part_str(parameter, "resourceType", "valueString"))
            .unwrap_or("?")
            .to_string();
        if let Some(error) = part_str(parameter, "error", "valueString") {
            errors.push(format!("{resource_type}: {error}"));
            self.failed.push(resource_type);
        } else if part(parameter, "nextTimestamp").is_some() {
            self.in_progress.push(resource_type);
        } else {
            self.done += 1;
            self.rows += part_number(parameter, "count").unwrap_or(0.0).max(0.0) as u64;
        }
    }

    fn any(&self) -> bool {
        self.done + self.in_progress.len() + self.failed.len() > 0
    }

    fn text(&self) -> String {
        let mut text = format!(
            "reindex: {} {} done ({} {})",
            self.done,
            plural(self.done, "type", "types"),
            group_thousands(self.rows),
            plural(self.rows, "row", "rows")
        );
        if !self.in_progress.is_empty() {
            text.push_str(&format!(", in progress: {}", self.in_progress.join(", ")));
        }
        if !self.failed.is_empty() {
            text.push_str(&format!(", failed: {}", self.failed.join(", ")));
        }
        text
    }
}

/// Custom-migration actions: one parameter per action, named after it, with `durationMs`.
#[derive(Default)]
struct ActionTally {
    count: usize,
    duration_ms: f64,
    last: Option<String>,
}

impl ActionTally {
    fn add(&mut self, parameter: &Value) {
        self.count += 1;
        self.duration_ms += part_number(parameter, "durationMs").unwrap_or(0.0);
        self.last = parameter
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string);
    }

    fn text(&self) -> String {
        let mut text = format!(
            "{} {} done in {}",
            self.count,
            plural(self.count, "action", "actions"),
            elapsed(self.duration_ms / 1000.0)
        );
        if let Some(last) = &self.last {
            text.push_str(&format!(", last: {}", shorten(last, 60)));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(content: &str) -> JobRecord {
        JobRecord {
            id: "0f8e7a52-4cde-4b39-9d5b-8a6f0e4c1d11".into(),
            last_updated: "2025-06-02T10:05:00Z".parse().unwrap(),
            status_column: Some("active".into()),
            project_id: None,
            content: content.into(),
        }
    }

    #[test]
    fn a_medplum_job_is_read() {
        let job = parse_job(&record(
            r#"{"resourceType":"AsyncJob","type":"data-migration","status":"active",
                "request":"data-migration-v14","dataVersion":14,"minServerVersion":"4.3.0",
                "requestTime":"2025-06-02T10:00:00.000Z"}"#,
        ))
        .unwrap();
        assert_eq!(job.data_version, 14);
        assert_eq!(job.status, JobStatus::Active);
        assert_eq!(job.min_server_version.as_deref(), Some("4.3.0"));
        assert_eq!(
            job.request_time,
            Some("2025-06-02T10:00:00Z".parse().unwrap())
        );
        assert_eq!(job.status_column_mismatch, None);
    }

    #[test]
    fn older_jobs_name_their_migration_in_request_only() {
        let job = parse_job(&record(
            r#"{"resourceType":"AsyncJob","status":"completed","request":"data-migration-v3"}"#,
        ))
        .unwrap();
        assert_eq!(job.data_version, 3);
        assert_eq!(job.status_column_mismatch.as_deref(), Some("active"));
    }

    #[test]
    fn a_number_no_migration_can_have_is_its_own_defect() {
        for (content, written) in [
            (r#""dataVersion":2147483647"#, "2147483647"),
            (r#""dataVersion":4294967295"#, "4294967295"),
            (
                r#""dataVersion":18446744073709551615"#,
                "18446744073709551615",
            ),
            (r#""dataVersion":0"#, "0"),
            (r#""dataVersion":-3"#, "-3"),
            (r#""dataVersion":14.5"#, "14.5"),
            (r#""request":"data-migration-v10001""#, "10001"),
            (r#""request":"data-migration-v0""#, "0"),
        ] {
            let text = format!(r#"{{"resourceType":"AsyncJob","status":"accepted",{content}}}"#);
            let defect = parse_job(&record(&text)).unwrap_err();
            assert_eq!(defect.finding, "odd-job-version", "{content}");
            assert_eq!(defect.data_version, None, "{content}");
            assert!(
                defect.reason.contains(&format!("migration {written},")),
                "{}",
                defect.reason
            );
            assert!(defect.reason.contains("accepted"), "{}", defect.reason);
        }
        // Not a number at all: no migration named, as before.
        let defect = parse_job(&record(
            r#"{"resourceType":"AsyncJob","status":"accepted","dataVersion":"14"}"#,
        ))
        .unwrap_err();
        assert_eq!(defect.finding, "job-unreadable");
        // Damaged JSON keeps only a number a migration can have.
        for (number, kept) in [("17", Some(17)), ("2147483647", None), ("0", None)] {
            let text = format!(r#"{{"resourceType":"AsyncJob","dataVersion": {number}, "status"#);
            let defect = parse_job(&record(&text)).unwrap_err();
            assert_eq!(defect.data_version, kept, "{number}");
            assert_eq!(defect.finding, "job-unreadable");
        }
    }

    #[test]
    fn malformed_jobs_are_defects_that_keep_their_migration_when_possible() {
        let defect = parse_job(&record(
            r#"{"resourceType":"AsyncJob","dataVersion": 17, "status":"act"#,
        ))
        .unwrap_err();
        assert_eq!(defect.data_version, Some(17));
        assert!(
            defect.reason.contains("not valid JSON"),
            "{}",
            defect.reason
        );
        let defect =
            parse_job(&record(r#"{"resourceType":"AsyncJob","status":"active"}"#)).unwrap_err();
        assert_eq!(defect.data_version, None);
        assert!(defect.reason.contains("no dataVersion"));
        assert!(parse_job(&record("[]")).is_err());
    }

    #[test]
    fn reindex_progress_counts_types_and_rows() {
        let summary = summarize_output(&json!({"resourceType":"Parameters","parameter":[
            {"name":"result","part":[{"name":"resourceType","valueCode":"Patient"},
                {"name":"count","valueInteger":1200},
                {"name":"elapsedTime","valueQuantity":{"value":812,"code":"ms"}}]},
            {"name":"result","part":[{"name":"resourceType","valueCode":"Condition"},
                {"name":"count","valueInteger":4},
                {"name":"elapsedTime","valueQuantity":{"value":12,"code":"ms"}}]},
            {"name":"result","part":[{"name":"resourceType","valueCode":"Observation"},
                {"name":"nextTimestamp","valueDateTime":"2024-03-01T00:00:00.000Z"}]}]}));
        assert_eq!(
            summary.progress.as_deref(),
            Some("reindex: 2 types done (1,204 rows), in progress: Observation")
        );
        assert!(summary.work_started);
        assert_eq!(summary.error, None);
    }

    #[test]
    fn failures_are_quoted_from_every_shape() {
        let outcome = summarize_output(&json!({"parameter":[{"name":"outcome","resource":{
            "resourceType":"OperationOutcome",
            "issue":[{"severity":"error","code":"invalid","details":{"text":"Lock timeout"}}]}}]}));
        assert_eq!(outcome.error.as_deref(), Some("Lock timeout"));
        let plain = summarize_output(&json!({"parameter":[
            {"name":"CREATE INDEX CONCURRENTLY x","part":[{"name":"durationMs","valueInteger":1500}]},
            {"name":"error","valueString":"canceling statement due to statement timeout"},
            {"name":"stack","valueString":"Error: canceling …\n at x"}]}));
        assert_eq!(
            plain.error.as_deref(),
            Some("canceling statement due to statement timeout")
        );
        assert_eq!(
            plain.progress.as_deref(),
            Some("1 action done in 1s, last: CREATE INDEX CONCURRENTLY x")
        );
        let reindex = summarize_output(&json!({"parameter":[{"name":"result","part":[
            {"name":"resourceType","valueCode":"Binary"},
            {"name":"error","valueString":"Cannot search on Binary resource type"}]}]}));
        assert_eq!(
            reindex.error.as_deref(),
            Some("Binary: Cannot search on Binary resource type")
        );
    }

    #[test]
    fn first_boot_skip_is_progress_not_work() {
        let s = summarize_output(
            &json!({"parameter":[{"name":"skipped","valueString":"In firstBoot mode"}]}),
        );
        assert_eq!(s.progress.as_deref(), Some("skipped: In firstBoot mode"));
        assert!(!s.work_started);
    }
}
