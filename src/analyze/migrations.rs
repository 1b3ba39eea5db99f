//! Where every migration stands: the state of each post-deploy migration, its runs and
//! their timelines, and the findings about the whole (`medmig status`).
//!
//! Input is a snapshot, the manifest and [`StatusOptions`] (with "now"); output is a
//! [`StatusReport`]. The rules for each state are in the README's "States" table and in
//! [`MigrationState`]; this module is the one place that applies them.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use semver::Version;
use serde::Serialize;

use super::jobs::{parse_job, DataMigrationJob, JobDefect, JobStatus};
use super::{Finding, Severity};
use crate::medplum::manifest::Manifest;
use crate::snapshot::{InvalidIndex, JobVersion, Snapshot};
use crate::text::elapsed;

/// The state of one post-deploy migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Its number is at or below `dataVersion`.
    Completed,
    /// Its newest job is at work (`active`, or `accepted` with progress recorded) and was
    /// updated within the stale limit.
    Running,
    /// Its newest job is `accepted`, shows no work yet, and was updated within the limit.
    Queued,
    /// Its newest job is `accepted` or `active` but has not been updated for longer than the
    /// stale limit.
    Stale,
    /// Its newest job is `error`.
    Failed,
    /// Its newest job is `cancelled`.
    Cancelled,
    /// It is the next to run (`dataVersion` + 1) and has no job yet.
    Pending,
    /// It comes after the next one and has no job yet.
    Waiting,
    /// The evidence contradicts itself; the report says what contradicts what.
    Inconsistent,
}

impl MigrationState {
    /// The lower-case name used in every format.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Completed => "completed",
            MigrationState::Running => "running",
            MigrationState::Queued => "queued",
            MigrationState::Stale => "stale",
            MigrationState::Failed => "failed",
            MigrationState::Cancelled => "cancelled",
            MigrationState::Pending => "pending",
            MigrationState::Waiting => "waiting",
            MigrationState::Inconsistent => "inconsistent",
        }
    }
}

/// Settings of the analysis.
#[derive(Debug, Clone, Copy)]
pub struct StatusOptions {
    /// The moment ages are measured from (the snapshot's `taken_at`).
    pub now: DateTime<Utc>,
    /// How long an in-progress job may go without an update before it is stale.
    pub stale_after: Duration,
}

/// Everything `medmig status` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub pre_deploy: PreDeploy,
    pub post_deploy: PostDeploy,
    pub migrations: Vec<MigrationStatus>,
    pub invalid_indexes: Vec<InvalidIndex>,
    pub findings: Vec<Finding>,
}

/// Pre-deploy ("schema") migrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreDeploy {
    /// `"DatabaseMigration"."version"`: the last pre-deploy migration applied.
    pub version: Option<i64>,
}

/// Post-deploy ("data") migrations as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostDeploy {
    /// `"DatabaseMigration"."dataVersion"` as stored (`null` where the column is missing).
    pub data_version: Option<i64>,
    /// `"DatabaseMigration"."firstBoot"` (`null` where the column is missing).
    pub first_boot: Option<bool>,
    /// The next migration to run, if one is known.
    pub pending: Option<u32>,
}

/// One post-deploy migration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationStatus {
    pub version: u32,
    pub state: MigrationState,
    /// The release that introduced it (manifest).
    pub server_version: Option<String>,
    /// The release that will not start while it is pending (manifest).
    pub required_before: Option<String>,
    /// Facts of the newest job: the run that decides the state.
    #[serde(flatten)]
    pub current: RunFacts,
    /// Number of jobs for this migration, damaged ones included.
    pub attempts: usize,
    /// Why the state is `inconsistent`, or other evidence worth a sentence.
    pub detail: Option<String>,
    /// Every job for it, oldest first; the newest has `current: true`.
    pub runs: Vec<JobRun>,
}

/// What is known of one job's run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunFacts {
    pub job_id: Option<String>,
    pub job_status: Option<String>,
    pub requested_at: Option<DateTime<Utc>>,
    /// When work began, where the history shows it (an `active` version or recorded progress).
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_updated: Option<DateTime<Utc>>,
    /// From start (or request, when the start was not recorded) to finish, or to the snapshot
    /// while still in progress.
    pub duration_seconds: Option<f64>,
    pub progress: Option<String>,
    pub error: Option<String>,
}

/// One job of a migration, with its timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRun {
    /// Whether this is the newest job, the one that decides the state.
    pub current: bool,
    pub min_server_version: Option<String>,
    #[serde(flatten)]
    pub facts: RunFacts,
    /// Each change of status, from `"AsyncJob_History"`.
    pub timeline: Vec<Transition>,
}

/// A job entered `status` at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub at: DateTime<Utc>,
    pub status: String,
}

/// Works out the state of every post-deploy migration.
pub fn analyze(snapshot: &Snapshot, manifest: &Manifest, options: StatusOptions) -> StatusReport {
    let mut findings = Vec::new();
    let row = migration_row(snapshot, &mut findings);
    let data_version = row.and_then(|r| r.data_version);
    let done = u32::try_from(data_version.unwrap_or(0).max(0)).unwrap_or(u32::MAX);

    let mut jobs: BTreeMap<u32, Vec<DataMigrationJob>> = BTreeMap::new();
    let mut defects: BTreeMap<Option<u32>, Vec<JobDefect>> = BTreeMap::new();
    for record in &snapshot.jobs {
        match parse_job(record) {
            Ok(job) => jobs.entry(job.data_version).or_default().push(job),
            Err(defect) => defects.entry(defect.data_version).or_default().push(defect),
        }
    }
    let history = history_by_job(&snapshot.job_history);
    for runs in jobs.values_mut() {
        runs.sort_by_key(|job| (created_at(job, &history), job.last_updated));
    }

    let highest = [
        manifest.highest(),
        jobs.keys().next_back().copied().unwrap_or(0),
        defects.keys().flatten().max().copied().unwrap_or(0),
        done,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);

    let mut migrations = Vec::new();
    for version in 1..=highest {
        let runs = jobs.get(&version).map(Vec::as_slice).unwrap_or_default();
        let damaged = defects
            .get(&Some(version))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let facts: Vec<(RunFacts, Vec<Transition>)> = runs
            .iter()
            .map(|job| run_facts(job, history.get(job.id.as_str()), options.now))
            .collect();
        let (state, detail) = decide(version, done, runs, damaged, &facts, options);
        let entry = manifest.get(version);
        let current = facts.last().map(|(f, _)| f.clone()).unwrap_or_default();
        migrations.push(MigrationStatus {
            version,
            state,
            server_version: entry.map(|e| e.server_version.to_string()),
            required_before: entry.and_then(|e| e.required_before.as_ref().map(|v| v.to_string())),
            current,
            attempts: runs.len() + damaged.len(),
            detail,
            runs: runs
                .iter()
                .zip(facts)
                .enumerate()
                .map(|(i, (job, (facts, timeline)))| JobRun {
                    current: i + 1 == runs.len(),
                    min_server_version: job.min_server_version.clone(),
                    facts,
                    timeline,
                })
                .collect(),
        });
    }

    let pending = (done < highest).then_some(done + 1);
    job_findings(&jobs, &defects, done, &mut findings);
    migration_findings(&migrations, row.and_then(|r| r.first_boot), &mut findings);
    manifest_findings(manifest, done, highest, &mut findings);
    for index in &snapshot.invalid_indexes {
        findings.push(Finding::new(
            "invalid-index",
            Severity::Warning,
            format!(
                "index \"{}\" on \"{}\" is invalid{}: an interrupted CREATE INDEX CONCURRENTLY \
                 leaves this; it is not used and slows writes",
                index.index,
                index.table,
                if index.ready { "" } else { " and not ready" }
            ),
        ));
    }
    findings.sort_by_key(|f| (f.severity, f.version));

    StatusReport {
        pre_deploy: PreDeploy {
            version: row.and_then(|r| r.version),
        },
        post_deploy: PostDeploy {
            data_version,
            first_boot: row.and_then(|r| r.first_boot),
            pending,
        },
        migrations,
        invalid_indexes: snapshot.invalid_indexes.clone(),
        findings,
    }
}

/// The `id = 1` row (or the only one), with findings about missing or odd values.
fn migration_row<'a>(
    snapshot: &'a Snapshot,
    findings: &mut Vec<Finding>,
) -> Option<&'a crate::snapshot::DatabaseMigrationRow> {
    let rows = &snapshot.database_migration;
    let row = rows.iter().find(|r| r.id == Some(1)).or(rows.first());
    let Some(row) = row else {
        findings.push(Finding::new(
            "no-migration-row",
            Severity::Error,
            "\"DatabaseMigration\" has no row: the Medplum server has never finished starting \
             on this database; every post-deploy migration counts as not run",
        ));
        return None;
    };
    if rows.len() > 1 {
        findings.push(Finding::new(
            "extra-migration-rows",
            Severity::Warning,
            format!(
                "\"DatabaseMigration\" has {} rows where Medplum keeps one (id 1); the row with \
                 id {} was used",
                rows.len(),
                row.id.map_or("?".to_string(), |id| id.to_string())
            ),
        ));
    }
    if !row.has_column("dataVersion") {
        findings.push(Finding::new(
            "no-data-version-column",
            Severity::Warning,
            "\"DatabaseMigration\" has no \"dataVersion\" column: this database predates \
             post-deploy migrations; every one counts as not run",
        ));
    } else if let Some(value) = row.data_version.filter(|v| *v < 0) {
        findings.push(Finding::new(
            "odd-data-version",
            Severity::Warning,
            format!("\"dataVersion\" is {value}, below zero; it was read as 0"),
        ));
    }
    if !row.has_column("firstBoot") {
        findings.push(Finding::new(
            "no-first-boot-column",
            Severity::Info,
            "\"DatabaseMigration\" has no \"firstBoot\" column (a server older than 4.x wrote it)",
        ));
    }
    Some(row)
}

fn history_by_job(history: &[JobVersion]) -> BTreeMap<&str, Vec<&JobVersion>> {
    let mut by_job: BTreeMap<&str, Vec<&JobVersion>> = BTreeMap::new();
    for version in history {
        by_job
            .entry(version.job_id.as_str())
            .or_default()
            .push(version);
    }
    for versions in by_job.values_mut() {
        versions.sort_by_key(|v| v.last_updated);
    }
    by_job
}

/// When a job was created: its `requestTime`, else its first stored version.
fn created_at(job: &DataMigrationJob, history: &BTreeMap<&str, Vec<&JobVersion>>) -> DateTime<Utc> {
    job.request_time
        .or_else(|| {
            history
                .get(job.id.as_str())
                .and_then(|h| h.first())
                .map(|v| v.last_updated)
        })
        .unwrap_or(job.last_updated)
}

/// The facts and timeline of one job.
fn run_facts(
    job: &DataMigrationJob,
    history: Option<&Vec<&JobVersion>>,
    now: DateTime<Utc>,
) -> (RunFacts, Vec<Transition>) {
    let versions = history.map(Vec::as_slice).unwrap_or_default();
    let mut timeline: Vec<Transition> = Vec::new();
    for version in versions {
        let status = version.status.clone().unwrap_or_else(|| "unknown".into());
        if timeline.last().map(|t| &t.status) != Some(&status) {
            timeline.push(Transition {
                at: version.last_updated,
                status,
            });
        }
    }
    let requested_at = job
        .request_time
        .or_else(|| versions.first().map(|v| v.last_updated));
    let started_at = versions
        .iter()
        .find(|v| {
            v.status.as_deref() == Some("active")
                || (v.status.as_deref() == Some("accepted") && v.has_output)
        })
        .map(|v| v.last_updated);
    let finished_at = if job.status.ended() {
        job.transaction_time
            .or_else(|| {
                versions
                    .iter()
                    .find(|v| v.status.as_deref() == Some(job.status.as_str()))
                    .map(|v| v.last_updated)
            })
            .or(Some(job.last_updated))
    } else {
        None
    };
    let duration_seconds = started_at.or(requested_at).and_then(|from| {
        let to = finished_at.unwrap_or(now);
        let ms = (to - from).num_milliseconds();
        (ms >= 0).then(|| ms as f64 / 1000.0)
    });
    let facts = RunFacts {
        job_id: Some(job.id.clone()),
        job_status: Some(job.status.as_str().to_string()),
        requested_at,
        started_at,
        finished_at,
        last_updated: Some(job.last_updated),
        duration_seconds,
        progress: job.output.progress.clone(),
        error: job.output.error.clone(),
    };
    (facts, timeline)
}

/// Applies the state rules to one migration. `runs` are its readable jobs, oldest first;
/// `damaged` the jobs that seem to be its but cannot be read.
fn decide(
    version: u32,
    done: u32,
    runs: &[DataMigrationJob],
    damaged: &[JobDefect],
    facts: &[(RunFacts, Vec<Transition>)],
    options: StatusOptions,
) -> (MigrationState, Option<String>) {
    use MigrationState::*;
    let inconsistent = |why: String| (Inconsistent, Some(why));
    let newest = runs.last();

    if version <= done {
        return match newest {
            Some(job) if job.status.in_progress() => inconsistent(format!(
                "dataVersion {done} counts v{version} as completed, but its job {} is still {} \
                 (seen for a moment while a job completes; if it persists the job was left \
                 behind, e.g. by setdataversion)",
                job.id,
                job.status.as_str()
            )),
            _ => (Completed, None),
        };
    }
    if let Some(defect) = damaged.first() {
        return inconsistent(format!(
            "job {} seems to be for v{version} but cannot be read: {}",
            defect.job_id, defect.reason
        ));
    }
    let Some(job) = newest else {
        return if version == done + 1 {
            (Pending, None)
        } else {
            (Waiting, None)
        };
    };
    let accepted: Vec<&str> = runs
        .iter()
        .filter(|j| j.status == JobStatus::Accepted)
        .map(|j| j.id.as_str())
        .collect();
    if accepted.len() > 1 {
        return inconsistent(format!(
            "{} jobs are accepted for v{version} ({}): the server refuses to start post-deploy \
             migrations until all but one are cancelled",
            accepted.len(),
            accepted.join(", ")
        ));
    }
    let quiet = options.now - job.last_updated;
    let stale = quiet > options.stale_after;
    let state = match &job.status {
        JobStatus::Completed => {
            return inconsistent(format!(
                "job {} completed v{version}, but dataVersion is still {done}",
                job.id
            ))
        }
        JobStatus::Error => Failed,
        JobStatus::Cancelled => Cancelled,
        JobStatus::Other(status) => {
            return inconsistent(format!(
                "job {} has status \"{status}\", which Medplum does not write",
                job.id
            ))
        }
        JobStatus::Active | JobStatus::Accepted if stale => Stale,
        JobStatus::Active => Running,
        JobStatus::Accepted
            if job.output.work_started
                || facts.last().is_some_and(|(f, _)| f.started_at.is_some()) =>
        {
            Running
        }
        JobStatus::Accepted => Queued,
    };
    if version > done + 1 && matches!(state, Running | Queued | Stale) {
        return inconsistent(format!(
            "job {} for v{version} is {}, but v{} has not completed: post-deploy migrations \
             run strictly in order",
            job.id,
            job.status.as_str(),
            done + 1
        ));
    }
    let detail = (state == Stale).then(|| {
        format!(
            "job {} is {} but has not been updated for {}",
            job.id,
            job.status.as_str(),
            elapsed(quiet.num_seconds() as f64)
        )
    });
    (state, detail)
}

/// Findings about jobs as such: damaged ones, status-column drift, out-of-order runs, more
/// than one in progress, migrations counted complete though their last run failed.
fn job_findings(
    jobs: &BTreeMap<u32, Vec<DataMigrationJob>>,
    defects: &BTreeMap<Option<u32>, Vec<JobDefect>>,
    done: u32,
    findings: &mut Vec<Finding>,
) {
    for (version, list) in defects {
        for defect in list {
            let message = match version {
                Some(v) => format!(
                    "job {} (apparently for v{v}) cannot be read: {}",
                    defect.job_id, defect.reason
                ),
                None => format!(
                    "job {} cannot be read and names no migration: {}",
                    defect.job_id, defect.reason
                ),
            };
            findings.push(Finding {
                version: *version,
                ..Finding::new("job-unreadable", Severity::Error, message)
            });
        }
    }
    let mut in_progress = Vec::new();
    for (version, runs) in jobs {
        for job in runs {
            if let Some(column) = &job.status_column_mismatch {
                findings.push(Finding::about(
                    *version,
                    "status-column-mismatch",
                    Severity::Warning,
                    format!(
                        "job {} says \"{}\" in its JSON but \"{column}\" in the status column",
                        job.id,
                        job.status.as_str()
                    ),
                ));
            }
            if job.status.in_progress() {
                in_progress.push(format!("{} (v{version})", job.id));
            }
            if *version > done + 1 && matches!(job.status, JobStatus::Error) {
                findings.push(Finding::about(
                    *version,
                    "out-of-order-job",
                    Severity::Warning,
                    format!(
                        "job {} ran v{version} before v{} had completed",
                        job.id,
                        done + 1
                    ),
                ));
            }
        }
        let newest = runs.last().map(|j| &j.status);
        if *version <= done
            && !runs.iter().any(|j| j.status == JobStatus::Completed)
            && matches!(newest, Some(JobStatus::Error | JobStatus::Cancelled))
        {
            findings.push(Finding::about(
                *version,
                "completed-without-success",
                Severity::Warning,
                format!(
                    "dataVersion {done} counts v{version} as completed, but no job for it \
                     completed (the newest is {}): was it skipped with setdataversion?",
                    newest.map_or("", |s| s.as_str())
                ),
            ));
        }
    }
    if in_progress.len() > 1 {
        findings.push(Finding::new(
            "several-jobs-in-progress",
            Severity::Error,
            format!(
                "{} post-deploy jobs are accepted or active at once ({}): the server expects at \
                 most one and refuses to queue another",
                in_progress.len(),
                in_progress.join(", ")
            ),
        ));
    }
}

/// One finding per migration whose state calls for attention.
fn migration_findings(
    migrations: &[MigrationStatus],
    first_boot: Option<bool>,
    findings: &mut Vec<Finding>,
) {
    if first_boot == Some(true) {
        findings.push(Finding::new(
            "first-boot",
            Severity::Info,
            "the database is in first-boot mode: the server skips its version gate and \
             completes reindex migrations at once as skipped",
        ));
    }
    for m in migrations {
        let v = m.version;
        let job = m.current.job_id.as_deref().unwrap_or("?");
        let finding = match m.state {
            MigrationState::Failed => Some((
                "migration-failed",
                Severity::Error,
                format!(
                    "v{v} failed (job {job}): {}",
                    m.current
                        .error
                        .as_deref()
                        .unwrap_or("no error message recorded")
                ),
            )),
            MigrationState::Stale => Some((
                "migration-stale",
                Severity::Warning,
                format!(
                    "v{v} is stale: {}; the worker may have died",
                    m.detail.as_deref().unwrap_or("")
                ),
            )),
            MigrationState::Inconsistent => Some((
                "migration-inconsistent",
                Severity::Error,
                format!("v{v}: {}", m.detail.as_deref().unwrap_or("")),
            )),
            MigrationState::Running => Some((
                "migration-running",
                Severity::Info,
                format!(
                    "v{v} is running (job {job}){}",
                    m.current
                        .progress
                        .as_ref()
                        .map(|p| format!(": {p}"))
                        .unwrap_or_default()
                ),
            )),
            MigrationState::Queued => Some((
                "migration-queued",
                Severity::Info,
                format!("v{v} is queued (job {job}) and may start at any moment"),
            )),
            MigrationState::Pending => Some((
                "migration-pending",
                Severity::Info,
                format!(
                    "v{v} is next and has not been started (post-deploy migrations deferred, or \
                     not yet queued)"
                ),
            )),
            _ => None,
        };
        if let Some((id, severity, message)) = finding {
            findings.push(Finding::about(v, id, severity, message));
        }
    }
}

/// A database or jobs beyond what the manifest knows mean a newer server than the manifest.
fn manifest_findings(manifest: &Manifest, done: u32, highest: u32, findings: &mut Vec<Finding>) {
    if highest > manifest.highest() {
        findings.push(Finding::new(
            "manifest-outdated",
            Severity::Warning,
            format!(
                "the database knows post-deploy migrations up to v{highest} (dataVersion {done}), \
                 but the {} manifest ends at v{}{}: pass --manifest with \
                 data-version-manifest.json from the release you run to know what comes next",
                manifest.origin,
                manifest.highest(),
                manifest
                    .newest_release()
                    .map(|r| format!(" (server {r})"))
                    .unwrap_or_default()
            ),
        ));
    }
}

/// The deployed release as far as the evidence shows: at least the newest server that created
/// a migration job, and at least the release that introduced the last applied migration.
pub fn infer_from(status: &StatusReport, manifest: &Manifest) -> (Option<Version>, Option<String>) {
    let newest_job = status
        .migrations
        .iter()
        .flat_map(|m| m.runs.iter())
        .filter_map(|run| {
            let version =
                Version::parse(run.min_server_version.as_deref()?.trim_start_matches('v')).ok()?;
            Some((version, run.facts.job_id.clone().unwrap_or_default()))
        })
        .max_by(|a, b| a.0.cmp(&b.0));
    let applied = status
        .post_deploy
        .data_version
        .and_then(|v| u32::try_from(v).ok())
        .and_then(|v| manifest.get(v).map(|e| (v, e.server_version.clone())));
    let mut reasons = Vec::new();
    let mut from: Option<Version> = None;
    if let Some((version, job)) = &newest_job {
        reasons.push(format!("job {job} was created by server {version}"));
        from = Some(version.clone());
    }
    if let Some((number, version)) = &applied {
        reasons.push(format!("v{number}, applied, was introduced in {version}"));
        if from.as_ref().is_none_or(|f| version > f) {
            from = Some(version.clone());
        }
    }
    match from {
        Some(version) => {
            let how = format!("at least {version}: {}", reasons.join("; "));
            (Some(version), Some(how))
        }
        None => (
            None,
            Some("not inferable: no job names its server and no migration is applied".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::cli::SslMode;
    use crate::connect::ConnectionSource;
    use crate::snapshot::{DatabaseMigrationRow, JobRecord, SnapshotSource};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn options() -> StatusOptions {
        StatusOptions {
            now: now(),
            stale_after: Duration::hours(1),
        }
    }

    /// A job for `version` in `status`, last updated `minutes_ago`.
    fn job(id: &str, version: u32, status: &str, minutes_ago: i64) -> JobRecord {
        let at = now() - Duration::minutes(minutes_ago);
        JobRecord {
            id: id.into(),
            last_updated: at,
            status_column: Some(status.into()),
            content: serde_json::json!({
                "resourceType": "AsyncJob", "type": "data-migration", "status": status,
                "dataVersion": version, "request": format!("data-migration-v{version}"),
                "requestTime": (at - Duration::minutes(1)).to_rfc3339(),
            })
            .to_string(),
        }
    }

    fn snapshot(data_version: Option<i64>, jobs: Vec<JobRecord>) -> Snapshot {
        let mut columns = vec![
            "id".to_string(),
            "version".to_string(),
            "firstBoot".to_string(),
        ];
        if data_version.is_some() {
            columns.push("dataVersion".into());
        }
        Snapshot {
            format_version: 1,
            medmig_version: "test".into(),
            taken_at: now(),
            source: SnapshotSource {
                host: "db".into(),
                port: 5432,
                database: "medplum".into(),
                user: "medmig".into(),
                connected_via: ConnectionSource::DatabaseUrlFlag,
                ssl_mode: SslMode::Require,
                server_version: "16.2".into(),
                server_version_num: 160002,
            },
            database_migration: vec![DatabaseMigrationRow {
                id: Some(1),
                version: Some(120),
                data_version,
                first_boot: Some(false),
                columns,
            }],
            async_job_table: true,
            jobs,
            job_history: vec![],
            invalid_indexes: vec![],
            schema: None,
            activity: None,
            unreadable_tables: vec![],
        }
    }

    fn report(snapshot: &Snapshot) -> StatusReport {
        analyze(snapshot, &Manifest::embedded(), options())
    }

    fn state(report: &StatusReport, version: u32) -> MigrationState {
        report.migrations[version as usize - 1].state
    }

    fn has(report: &StatusReport, id: &str) -> bool {
        report.findings.iter().any(|f| f.id == id)
    }

    #[test]
    fn a_completed_job_above_data_version_is_inconsistent() {
        let r = report(&snapshot(Some(40), vec![job("j1", 41, "completed", 5)]));
        assert_eq!(state(&r, 41), MigrationState::Inconsistent);
        let detail = r.migrations[40].detail.as_deref().unwrap();
        assert!(detail.contains("dataVersion is still 40"), "{detail}");
    }

    #[test]
    fn an_active_job_at_or_below_data_version_is_inconsistent() {
        let r = report(&snapshot(Some(41), vec![job("j1", 41, "active", 5)]));
        assert_eq!(state(&r, 41), MigrationState::Inconsistent);
        assert_eq!(state(&r, 42), MigrationState::Pending);
    }

    #[test]
    fn queued_running_and_stale_follow_the_age_of_the_newest_job() {
        let r = report(&snapshot(Some(40), vec![job("j1", 41, "accepted", 5)]));
        assert_eq!(state(&r, 41), MigrationState::Queued);
        let r = report(&snapshot(Some(40), vec![job("j1", 41, "active", 59)]));
        assert_eq!(state(&r, 41), MigrationState::Running);
        let r = report(&snapshot(Some(40), vec![job("j1", 41, "accepted", 61)]));
        assert_eq!(state(&r, 41), MigrationState::Stale);
    }

    #[test]
    fn the_newest_job_decides_and_older_ones_are_history() {
        let r = report(&snapshot(
            Some(40),
            vec![job("new", 41, "active", 2), job("old", 41, "error", 300)],
        ));
        let m = &r.migrations[40];
        assert_eq!(m.state, MigrationState::Running);
        assert_eq!(m.current.job_id.as_deref(), Some("new"));
        assert_eq!(m.attempts, 2);
        assert_eq!(
            m.runs.iter().map(|r| r.current).collect::<Vec<_>>(),
            [false, true]
        );
    }

    #[test]
    fn work_ahead_of_the_next_migration_is_inconsistent() {
        let r = report(&snapshot(Some(40), vec![job("j1", 43, "active", 2)]));
        assert_eq!(state(&r, 41), MigrationState::Pending);
        assert_eq!(state(&r, 43), MigrationState::Inconsistent);
        let r = report(&snapshot(Some(40), vec![job("j1", 43, "error", 2)]));
        assert_eq!(state(&r, 43), MigrationState::Failed);
        assert!(has(&r, "out-of-order-job"));
    }

    #[test]
    fn an_unknown_job_status_is_inconsistent() {
        let r = report(&snapshot(Some(40), vec![job("j1", 41, "paused", 2)]));
        assert_eq!(state(&r, 41), MigrationState::Inconsistent);
    }

    #[test]
    fn a_data_version_beyond_the_manifest_lists_no_phantom_migration() {
        let r = report(&snapshot(Some(60), vec![]));
        assert_eq!(r.migrations.len(), 60);
        assert_eq!(r.post_deploy.pending, None);
        assert!(r
            .migrations
            .iter()
            .all(|m| m.state == MigrationState::Completed));
        assert!(has(&r, "manifest-outdated"));
        let r = report(&snapshot(Some(53), vec![]));
        assert_eq!(r.migrations.len(), 53);
        assert!(!has(&r, "manifest-outdated"));
    }

    #[test]
    fn odd_and_missing_data_versions_are_findings() {
        let r = report(&snapshot(Some(-2), vec![]));
        assert!(has(&r, "odd-data-version"));
        assert_eq!(r.post_deploy.data_version, Some(-2));
        assert_eq!(state(&r, 1), MigrationState::Pending);
        let r = report(&snapshot(None, vec![]));
        assert!(has(&r, "no-data-version-column"));
        assert_eq!(state(&r, 1), MigrationState::Pending);
        let mut s = snapshot(Some(3), vec![]);
        s.database_migration.clear();
        let r = report(&s);
        assert!(has(&r, "no-migration-row"));
        assert_eq!(r.pre_deploy.version, None);
    }

    #[test]
    fn a_completed_migration_whose_only_job_failed_is_flagged() {
        let r = report(&snapshot(Some(41), vec![job("j1", 41, "error", 90)]));
        assert_eq!(state(&r, 41), MigrationState::Completed);
        assert!(has(&r, "completed-without-success"));
    }

    #[test]
    fn a_damaged_job_without_a_version_is_still_reported() {
        let mut broken = job("j1", 41, "active", 2);
        broken.content = "{\"resourceType\":\"AsyncJob\",".into();
        let r = report(&snapshot(Some(40), vec![broken]));
        assert!(has(&r, "job-unreadable"));
        assert_eq!(state(&r, 41), MigrationState::Pending);
    }
}
