//! Where every migration stands: the state of each post-deploy migration, its runs and
//! their timelines, and the findings about the whole (`medmig status`).
//!
//! Input is a snapshot, the manifest and [`StatusOptions`] (with "now"); output is a
//! [`StatusReport`]. The rules for each state are in the README's "States" table and in
//! [`MigrationState`]; this module is the one place that applies them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use semver::Version;
use serde::Serialize;

use super::jobs::{
    maintenance_job, parse_job, DataMigrationJob, JobDefect, JobStatus, MaintenanceJob,
    ReindexCounts,
};
use super::queues::{QueueFacts, QueuedJob};
use super::traces::{traces, MigrationTraces, TraceReport};
use super::{Finding, Severity};
use crate::medplum::catalogue::{Catalogue, MigrationType};
use crate::medplum::manifest::{
    data_version_number, Manifest, MAX_DATA_VERSION, MAX_PRE_DEPLOY_VERSION,
};
use crate::snapshot::{InvalidIndex, JobVersion, MigrationActivity, Snapshot};
use crate::text::{count, elapsed, plural};

/// The state of one post-deploy migration (`--fail-on` takes the same names, and
/// `commands/status.rs` maps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Its number is at or below `dataVersion`.
    Completed,
    /// Its work is evidenced: a session runs it, its newest job recorded progress (a reindex)
    /// or is `active` (written by servers before 4.x only).
    Running,
    /// Its BullMQ job waits in Redis (waiting, delayed, paused or prioritized): queued, not
    /// running. Only with Redis read.
    Queued,
    /// Its newest job is `accepted` and nothing shows work: queued or running, PostgreSQL
    /// cannot tell (a custom migration writes nothing to its job until it ends); Redis, when
    /// read, tells (then `queued` or `running`).
    Accepted,
    /// Its newest job is `accepted` or `active`, was not updated for longer than the stale
    /// limit, and no session ran migration work while every session was visible.
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
    /// The evidence was not read: `"DatabaseMigration"`, or its jobs in `"AsyncJob"` (a
    /// migration held them locked); the detail says which and why.
    Unknown,
}

impl MigrationState {
    /// The lower-case name used in every format.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Completed => "completed",
            MigrationState::Running => "running",
            MigrationState::Queued => "queued",
            MigrationState::Accepted => "accepted",
            MigrationState::Stale => "stale",
            MigrationState::Failed => "failed",
            MigrationState::Cancelled => "cancelled",
            MigrationState::Pending => "pending",
            MigrationState::Waiting => "waiting",
            MigrationState::Inconsistent => "inconsistent",
            MigrationState::Unknown => "unknown",
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
    /// The statement timeout of the server's ordinary connections (`database.queryTimeout`,
    /// 60 s by default: `packages/server/src/database.ts`): a write running longer comes
    /// from a client that raised it, as the post-deploy migration client does.
    pub statement_limit: Duration,
}

impl StatusOptions {
    /// The options for a snapshot taken at `now`: Medplum's default statement limit.
    pub fn at(now: DateTime<Utc>, stale_after: Duration) -> StatusOptions {
        StatusOptions {
            now,
            stale_after,
            statement_limit: Duration::seconds(60),
        }
    }
}

/// Everything `medmig status` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub pre_deploy: PreDeploy,
    pub post_deploy: PostDeploy,
    pub migrations: Vec<MigrationStatus>,
    /// Jobs of the server's schema maintenance endpoints (schema-drift repair and kin): not
    /// numbered migrations, shown apart.
    pub maintenance_jobs: Vec<MaintenanceJob>,
    /// Data-migration jobs inside a project, which the server ignores, and so does medmig.
    pub ignored_jobs: Vec<IgnoredJob>,
    pub invalid_indexes: Vec<InvalidIndexStatus>,
    /// How the schema was compared with the migration catalogue.
    pub schema_traces: SchemaTraces,
    pub findings: Vec<Finding>,
}

/// An index left invalid, and the post-deploy migration that creates it, by the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidIndexStatus {
    #[serde(flatten)]
    pub found: InvalidIndex,
    pub created_by: Option<u32>,
}

/// Whether the schema was compared with the catalogue of what each migration does to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaTraces {
    /// `embedded` or the `--migration-catalogue` file.
    pub catalogue: String,
    pub compared: bool,
    /// Why not, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<String>,
}

/// A job the server ignores, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IgnoredJob {
    pub job_id: String,
    pub data_version: u32,
    pub status: String,
    pub reason: String,
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
    /// Why the state is what it is, where a sentence helps (`inconsistent`, `stale`,
    /// `accepted`, a cancelled job whose work still runs).
    pub detail: Option<String>,
    /// Sessions seen doing its work when the evidence was read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub work_evidence: Vec<String>,
    /// Custom or reindex, by the catalogue.
    pub migration_type: Option<MigrationType>,
    /// Its effects the schema shows (above `dataVersion`) or misses (at or below), by the
    /// catalogue; absent where the schema was not compared or the catalogue lacks it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traces: Option<MigrationTraces>,
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
    /// A reindex's progress in numbers (`progress` says the same in words).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reindex: Option<ReindexCounts>,
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

/// The findings of numbers in the database that no migration can have (past the bounds of
/// `medplum::manifest`, or below zero): the answers that stand on those numbers repeat them
/// and do not vouch for what they would imply.
pub const ODD_NUMBER_FINDINGS: [&str; 3] = [
    "odd-data-version",
    "odd-pre-deploy-version",
    "odd-job-version",
];

/// The findings of jobs that cannot be placed before or after any migration: unreadable, or
/// naming a number no migration has.
pub const UNPLACED_JOB_FINDINGS: [&str; 2] = ["job-unreadable", "odd-job-version"];

/// Works out the state of every post-deploy migration.
pub fn analyze(
    snapshot: &Snapshot,
    manifest: &Manifest,
    catalogue: &Catalogue,
    options: StatusOptions,
) -> StatusReport {
    let mut findings = Vec::new();
    let unread = Unread::of(snapshot, &mut findings);
    let row = match unread.migration {
        Some(_) => None,
        None => migration_row(snapshot, &mut findings),
    };
    let data_version = row.and_then(|r| r.data_version);
    let done = u32::try_from(data_version.unwrap_or(0).max(0)).unwrap_or(u32::MAX);
    let schema_traces = match &unread.migration {
        Some(_) => TraceReport {
            gap: Some("dataVersion could not be read".into()),
            origin: catalogue.origin.clone(),
            ..TraceReport::default()
        },
        None => traces(catalogue, snapshot.schema.as_deref(), done),
    };

    let mut jobs: BTreeMap<u32, Vec<DataMigrationJob>> = BTreeMap::new();
    let mut defects: BTreeMap<Option<u32>, Vec<JobDefect>> = BTreeMap::new();
    let mut maintenance_jobs = Vec::new();
    let mut ignored_jobs = Vec::new();
    for record in &snapshot.jobs {
        if let Some(job) = maintenance_job(record) {
            maintenance_jobs.push(job);
            continue;
        }
        match parse_job(record) {
            Ok(job) => match &job.project {
                Some(project) => ignored_jobs.push(IgnoredJob {
                    job_id: job.id.clone(),
                    data_version: job.data_version,
                    status: job.status.as_str().to_string(),
                    reason: format!(
                        "it belongs to project {project}: the server looks only at system jobs \
                         (_project:missing=true) and ignores it"
                    ),
                }),
                None => jobs.entry(job.data_version).or_default().push(job),
            },
            Err(defect) => defects.entry(defect.data_version).or_default().push(defect),
        }
    }
    let evidence = work_evidence(snapshot.activity.as_ref(), &options);
    let queue_facts = snapshot.redis.as_ref().map(|redis| QueueFacts { redis });
    let history = history_by_job(&snapshot.job_history);
    for runs in jobs.values_mut() {
        runs.sort_by_key(|job| (created_at(job, &history), job.last_updated));
    }

    // Only numbers that can be migrations reach here (`data_version_number`): a dataVersion
    // past the bound counts every listed migration completed, as the server would, but adds
    // none to the list.
    let done_listed = data_version_number(i64::from(done));
    let highest = [
        manifest.highest(),
        jobs.keys().next_back().copied().unwrap_or(0),
        defects.keys().flatten().max().copied().unwrap_or(0),
        done_listed.unwrap_or(0),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let pending = (unread.migration.is_none() && done < highest).then(|| done + 1);
    // The migrations something names (the manifest, a job, dataVersion) and the next one,
    // never a range counted up to a number read from outside.
    let versions: BTreeSet<u32> = manifest
        .numbers()
        .chain(jobs.keys().copied())
        .chain(defects.keys().flatten().copied())
        .chain(done_listed)
        .chain(pending)
        .collect();

    let mut migrations = Vec::new();
    for version in versions {
        let runs = jobs.get(&version).map(Vec::as_slice).unwrap_or_default();
        let damaged = defects
            .get(&Some(version))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let facts: Vec<(RunFacts, Vec<Transition>)> = runs
            .iter()
            .map(|job| run_facts(job, history.get(job.id.as_str()), options.now))
            .collect();
        let traces = schema_traces.get(version);
        let queued = queue_facts
            .and_then(|facts| runs.last().and_then(|job| facts.job_for(&job.id, version)));
        let delay_reason = queue_facts.and_then(|facts| facts.delay_reason(manifest, version));
        let (state, detail, work_evidence) = match unread.state_of(version, done) {
            Some(why) => (MigrationState::Unknown, Some(why), Vec::new()),
            None => decide(
                version,
                done,
                runs,
                damaged,
                &facts,
                Outside {
                    evidence: &evidence,
                    traces,
                    queued,
                    delay_reason: delay_reason.as_deref(),
                },
                options,
            ),
        };
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
            work_evidence,
            migration_type: catalogue.get(version).map(|e| e.kind),
            traces: traces.cloned(),
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

    let mut about_jobs = Vec::new();
    job_findings(&jobs, &defects, done, pending, &mut about_jobs);
    // Without dataVersion, where a job stands in the order is not known.
    findings.extend(
        about_jobs
            .into_iter()
            .filter(|f| unread.migration.is_none() || f.id != "out-of-order-job"),
    );
    other_job_findings(&ignored_jobs, &maintenance_jobs, &mut findings);
    migration_findings(&migrations, row.and_then(|r| r.first_boot), &mut findings);
    trace_findings(&migrations, done, &schema_traces, &mut findings);
    let system_jobs: Vec<(String, Option<u32>, String)> = jobs
        .iter()
        .flat_map(|(v, runs)| {
            runs.iter()
                .map(move |j| (j.id.clone(), Some(*v), j.status.as_str().to_string()))
        })
        .chain(
            maintenance_jobs
                .iter()
                .map(|j| (j.job_id.clone(), None, j.status.clone())),
        )
        .chain(
            ignored_jobs
                .iter()
                .map(|j| (j.job_id.clone(), None, j.status.clone())),
        )
        .collect();
    super::queues::findings(
        snapshot.redis.as_ref(),
        snapshot.redis_gap.as_deref(),
        &system_jobs,
        pending,
        manifest,
        &mut findings,
    );
    manifest_findings(manifest, done, highest, &mut findings);
    let invalid_indexes: Vec<InvalidIndexStatus> = snapshot
        .invalid_indexes
        .iter()
        .map(|index| InvalidIndexStatus {
            found: index.clone(),
            created_by: (index.schema == "public")
                .then(|| catalogue.creator_of_index(&index.table, &index.index))
                .flatten(),
        })
        .collect();
    for index in &invalid_indexes {
        let (found, by) = (&index.found, index.created_by);
        let creator = by.map_or(String::new(), |v| {
            let state = migrations
                .iter()
                .find(|m| m.version == v)
                .map_or("", |m| m.state.as_str());
            format!("; post-deploy migration v{v} ({state}) creates it")
        });
        findings.push(Finding {
            version: by,
            ..Finding::new(
                "invalid-index",
                Severity::Warning,
                format!(
                    "index \"{}\" on \"{}\" is invalid{}: an interrupted CREATE INDEX \
                     CONCURRENTLY leaves this; it is not used and slows writes{creator}",
                    found.index,
                    found.table,
                    if found.ready { "" } else { " and not ready" }
                ),
            )
        });
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
        maintenance_jobs,
        ignored_jobs,
        invalid_indexes,
        schema_traces: SchemaTraces {
            catalogue: schema_traces.origin.clone(),
            compared: schema_traces.gap.is_none(),
            gap: schema_traces.gap.clone(),
        },
        findings,
    }
}

/// The migration tables that were not read, as far as states rest on them.
struct Unread {
    /// Why `"DatabaseMigration"` was not read: no state is known.
    migration: Option<String>,
    /// Why the jobs were not read: no state beyond `dataVersion` is known.
    jobs: Option<String>,
}

impl Unread {
    /// What `snapshot` misses, with an `evidence-unreadable` finding for each table.
    fn of(snapshot: &Snapshot, findings: &mut Vec<Finding>) -> Unread {
        for missing in snapshot.missing_tables() {
            let lost = match missing.table.as_str() {
                "\"DatabaseMigration\"" => {
                    "dataVersion and the pre-deploy version are unknown, and so is the state of \
                     every post-deploy migration"
                }
                "\"AsyncJob\"" => {
                    "the post-deploy jobs are unknown, and so is the state of every migration \
                     after dataVersion"
                }
                _ => "the jobs' timelines are missing",
            };
            findings.push(Finding::new(
                "evidence-unreadable",
                Severity::Error,
                format!(
                    "{} could not be read, so {lost}: {}",
                    missing.table, missing.why
                ),
            ));
        }
        Unread {
            migration: snapshot.missing("\"DatabaseMigration\""),
            jobs: snapshot.missing("\"AsyncJob\""),
        }
    }

    /// Why migration `version` has no known state (`done` is `dataVersion`), if it has none.
    fn state_of(&self, version: u32, done: u32) -> Option<String> {
        if let Some(why) = &self.migration {
            return Some(format!(
                "\"DatabaseMigration\" could not be read, so dataVersion is unknown: {why}"
            ));
        }
        let why = self.jobs.as_ref().filter(|_| version > done)?;
        Some(format!("its jobs in \"AsyncJob\" could not be read: {why}"))
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
    } else if let Some(value) = row
        .data_version
        .filter(|v| *v > i64::from(MAX_DATA_VERSION))
    {
        findings.push(Finding::new(
            "odd-data-version",
            Severity::Error,
            format!(
                "\"dataVersion\" is {value}, past any post-deploy migration (medmig believes \
                 1 to {MAX_DATA_VERSION}): set by hand or damaged. The server takes every \
                 migration as completed and will never run one again, and so does this report; \
                 only the jobs show which truly completed"
            ),
        ));
    }
    if let Some(value) = row
        .version
        .filter(|v| *v < 0 || *v > MAX_PRE_DEPLOY_VERSION)
    {
        findings.push(Finding::new(
            "odd-pre-deploy-version",
            Severity::Warning,
            format!(
                "\"DatabaseMigration\".\"version\" is {value}, which no pre-deploy migration \
                 is (medmig believes 0 to {MAX_PRE_DEPLOY_VERSION}): set by hand or damaged; the \
                 server runs only the pre-deploy migrations numbered above it"
            ),
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
        reindex: job.output.reindex_counts,
        error: job.output.error.clone(),
    };
    (facts, timeline)
}

/// What the sessions seen when the evidence was read say about post-deploy work.
struct WorkEvidence {
    /// Sessions doing post-deploy migration work, described.
    sessions: Vec<String>,
    /// Whether every session could be seen (activity recorded, none hidden).
    visible: bool,
    /// Why not, when not.
    blind_spot: Option<String>,
}

/// Sessions running migration DDL outside the startup migration lock (pre-deploy migrations
/// hold advisory lock 1; post-deploy and maintenance jobs do not), or a write for longer than
/// the server's ordinary statement limit: only a client with `statement_timeout` raised runs
/// that long, and the post-deploy migration client sets it to 0
/// (`packages/server/src/migrations/migration-utils.ts`, `withLongRunningDatabaseClient`;
/// every pool connects as `application_name` `medplum-server`, `database.ts`).
fn work_evidence(activity: Option<&MigrationActivity>, options: &StatusOptions) -> WorkEvidence {
    let Some(activity) = activity else {
        return WorkEvidence {
            sessions: Vec::new(),
            visible: false,
            blind_spot: Some(
                "this snapshot records no database activity (taken by an older medmig)".into(),
            ),
        };
    };
    let mut sessions = Vec::new();
    for session in &activity.sessions {
        // Lock holders are the startup's pre-deploy migrations, not post-deploy work.
        if session.holds_migration_lock || !is_migrating(session, options) {
            continue;
        }
        let who = session
            .application_name
            .as_deref()
            .filter(|a| !a.is_empty())
            .unwrap_or("unnamed");
        let query = crate::text::shorten(session.query.as_deref().unwrap_or(""), 100);
        let for_how_long = session
            .query_start
            .map(|start| options.now - start)
            .filter(|ran| *ran >= Duration::zero())
            .map(|r| format!(" for {}", elapsed(r.num_seconds() as f64)))
            .unwrap_or_default();
        if session.ddl() {
            sessions.push(format!(
                "session {} ({who}) runs `{query}`{for_how_long}: migration DDL outside the \
                 startup migration lock",
                session.pid
            ));
        } else {
            sessions.push(format!(
                "session {} ({who}) has run `{query}`{for_how_long}, longer than the server's \
                 statement limit ({}): only a client with statement_timeout raised runs that \
                 long, as the post-deploy migration client does",
                session.pid,
                elapsed(options.statement_limit.num_seconds() as f64)
            ));
        }
    }
    let blind_spot = (activity.hidden_sessions > 0).then(|| {
        let n = activity.hidden_sessions;
        format!(
            "{} {} hidden from medmig's role (grant pg_read_all_stats)",
            count(n, "session's statement", "sessions' statements"),
            plural(n, "was", "were")
        )
    });
    WorkEvidence {
        sessions,
        visible: blind_spot.is_none(),
        blind_spot,
    }
}

/// Whether a session seen when the evidence was read is migrating: it holds the startup
/// migration lock, runs migration DDL, or has run a write for longer than the server's
/// ordinary statement limit (see [`StatusOptions::statement_limit`]).
pub fn is_migrating(session: &crate::snapshot::MigratingSession, options: &StatusOptions) -> bool {
    session.holds_migration_lock
        || session.ddl()
        || session
            .query_start
            .is_some_and(|start| options.now - start > options.statement_limit)
}

/// What tells a queued post-deploy job from a running one when PostgreSQL cannot.
const TELL_APART: &str = "the worker's session in pg_stat_activity (application medplum-server, \
    running the migration's statements) or the BullMQ job in Redis (PostDeployMigrationQueue: \
    active, waiting or delayed) would tell them apart";

/// What shows a migration's work outside its jobs: sessions, and its traces in the schema.
#[derive(Clone, Copy)]
struct Outside<'a> {
    evidence: &'a WorkEvidence,
    traces: Option<&'a MigrationTraces>,
    /// Its BullMQ job, when Redis was read and holds one; and why it may be delayed.
    queued: Option<QueuedJob<'a>>,
    delay_reason: Option<&'a str>,
}

fn describe_queued(queued: &QueuedJob<'_>, delay_reason: Option<&str>) -> String {
    super::queues::describe(queued, delay_reason)
}

/// Applies the state rules to one migration. `runs` are its readable jobs, oldest first;
/// `damaged` the jobs that seem to be its but cannot be read. Returns the state, the detail
/// and the sessions seen doing its work.
fn decide(
    version: u32,
    done: u32,
    runs: &[DataMigrationJob],
    damaged: &[JobDefect],
    facts: &[(RunFacts, Vec<Transition>)],
    outside: Outside<'_>,
    options: StatusOptions,
) -> (MigrationState, Option<String>, Vec<String>) {
    let Outside {
        evidence,
        traces,
        queued,
        delay_reason,
    } = outside;
    let in_redis = queued.map(|q| describe_queued(&q, delay_reason));
    use MigrationState::*;
    let inconsistent = |why: String| (Inconsistent, Some(why), Vec::new());
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
            _ => (Completed, None, Vec::new()),
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
            (Pending, None, Vec::new())
        } else {
            (Waiting, None, Vec::new())
        };
    };
    // Post-deploy migrations run one at a time, strictly in order: work seen now is the next
    // one's.
    let seen = if version == done + 1 {
        evidence.sessions.clone()
    } else {
        Vec::new()
    };
    let quiet = options.now - job.last_updated;
    let quiet_text = elapsed(quiet.num_seconds().max(0) as f64);
    let started = job.status == JobStatus::Active
        || job.output.work_started
        || facts.last().is_some_and(|(f, _)| f.started_at.is_some());
    match &job.status {
        JobStatus::Completed => inconsistent(format!(
            "job {} completed v{version}, but dataVersion is still {done}",
            job.id
        )),
        JobStatus::Error => (Failed, None, Vec::new()),
        JobStatus::Cancelled if !seen.is_empty() => (
            Running,
            Some(format!(
                "job {} is cancelled, but a session still runs migration work: $cancel does not \
                 stop a running custom migration, which finishes, overwrites the job as \
                 completed and raises dataVersion",
                job.id
            )),
            seen,
        ),
        JobStatus::Cancelled if queued.is_some_and(|q| q.runs()) => (
            Running,
            Some(format!(
                "job {} is cancelled, but {}: $cancel does not stop a running custom \
                 migration, which finishes, overwrites the job as completed and raises \
                 dataVersion",
                job.id,
                in_redis.unwrap_or_default()
            )),
            Vec::new(),
        ),
        JobStatus::Cancelled => (Cancelled, None, Vec::new()),
        JobStatus::Other(status) => inconsistent(format!(
            "job {} has status \"{status}\", which Medplum does not write",
            job.id
        )),
        JobStatus::Active | JobStatus::Accepted if version > done + 1 => inconsistent(format!(
            "job {} for v{version} is {}, but v{} has not completed: post-deploy migrations \
             run strictly in order",
            job.id,
            job.status.as_str(),
            done + 1
        )),
        JobStatus::Active | JobStatus::Accepted if !seen.is_empty() => (Running, None, seen),
        // Redis tells what PostgreSQL cannot: a worker holds the job, or it waits.
        JobStatus::Active | JobStatus::Accepted if queued.is_some_and(|q| q.runs()) => {
            (Running, in_redis, Vec::new())
        }
        JobStatus::Active | JobStatus::Accepted if queued.is_some_and(|q| q.stalled()) => {
            (Stale, in_redis, Vec::new())
        }
        JobStatus::Active | JobStatus::Accepted
            if queued.is_some_and(|q| q.waits())
                && !started
                && !traces.is_some_and(MigrationTraces::shows_a_run) =>
        {
            (Queued, in_redis, Vec::new())
        }
        JobStatus::Active | JobStatus::Accepted
            if quiet > options.stale_after && evidence.visible =>
        {
            let kind = if job.output.reindex {
                "a reindex writes its progress as it goes"
            } else {
                "a custom migration writes nothing to its job until it ends, so only its \
                 session shows it works"
            };
            (
                Stale,
                Some(format!(
                    "job {} is {} and has not been updated for {quiet_text}, and no session ran \
                     migration DDL or a long write when medmig read (every session was visible; \
                     {kind}); the worker may have died, or may be delaying it (an older server \
                     still registered, in strict mode): Redis's PostDeployMigrationQueue would \
                     tell",
                    job.id,
                    job.status.as_str()
                )),
                Vec::new(),
            )
        }
        JobStatus::Active | JobStatus::Accepted => {
            let blind = evidence
                .blind_spot
                .clone()
                .filter(|_| quiet > options.stale_after)
                .map(|why| {
                    format!(
                        "; not updated for {quiet_text}, and {why}, so medmig cannot tell a slow \
                         run from a dead one"
                    )
                })
                .unwrap_or_default();
            // A custom migration writes nothing to its job until it ends: what it did to the
            // schema shows it started (a reindex leaves no schema trace).
            let work_in_schema = traces.filter(|t| t.shows_a_run()).map(|t| {
                format!(
                    "job {} is {} with no recorded work, but the schema shows the migration's \
                     work ({}): it is running, or died part-way; not queued",
                    job.id,
                    job.status.as_str(),
                    list_traces(&t.present, 3)
                )
            });
            if let Some(detail) = work_in_schema.filter(|_| !started) {
                (Running, Some(format!("{detail}{blind}")), Vec::new())
            } else if started {
                let detail = (!blind.is_empty()).then(|| format!("job {}{blind}", job.id));
                (Running, detail, Vec::new())
            } else {
                (
                    Accepted,
                    Some(format!(
                        "job {} is accepted with no recorded work: queued or running — \
                         PostgreSQL cannot tell, since a custom migration writes nothing to its \
                         job until it ends; {TELL_APART}{blind}",
                        job.id
                    )),
                    Vec::new(),
                )
            }
        }
    }
}

/// Findings about jobs as such: damaged ones, status-column drift, out-of-order runs, more
/// than one in progress or the one the server will reuse, migrations counted complete though
/// their last run failed.
fn job_findings(
    jobs: &BTreeMap<u32, Vec<DataMigrationJob>>,
    defects: &BTreeMap<Option<u32>, Vec<JobDefect>>,
    done: u32,
    pending: Option<u32>,
    findings: &mut Vec<Finding>,
) {
    for (version, list) in defects {
        for defect in list {
            let message = match version {
                _ if defect.finding != "job-unreadable" => {
                    format!("job {}: {}", defect.job_id, defect.reason)
                }
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
                ..Finding::new(defect.finding, Severity::Error, message)
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
                in_progress.push(job);
            }
            if *version > done.saturating_add(1) && matches!(job.status, JobStatus::Error) {
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
    // preparePostDeployMigrationAsyncJob (packages/server/src/migrations/migration-utils.ts)
    // searches system data-migration jobs that are accepted or active, of any dataVersion: two
    // or more and it refuses; exactly one is rewritten in place for the migration it queues
    // (its dataVersion and request changed, its output — recorded reindex progress — cleared).
    match (in_progress.as_slice(), pending) {
        ([job], Some(pending)) if job.data_version != pending => findings.push(Finding::about(
            job.data_version,
            "job-will-be-reused",
            Severity::Warning,
            format!(
                "job {} (v{}) is {}: the next time the server queues v{pending} it reuses \
                 this job, rewriting its dataVersion and clearing its output, instead of \
                 creating one",
                job.id,
                job.data_version,
                job.status.as_str()
            ),
        )),
        ([_, _, ..], _) => findings.push(Finding::new(
            "several-jobs-in-progress",
            Severity::Error,
            format!(
                "{} system post-deploy jobs are accepted or active at once ({}): the server \
                 refuses to queue another post-deploy migration (\"Unable to start post-deploy \
                 migration since there are more than one existing data-migration AsyncJob with \
                 accepted status\"), and a server that auto-runs them fails to start, until all \
                 but one are cancelled",
                in_progress.len(),
                in_progress
                    .iter()
                    .map(|j| format!("{} (v{})", j.id, j.data_version))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        _ => {}
    }
}

/// The jobs the server ignores (inside a project), and the maintenance jobs that run on the
/// post-deploy queue.
fn other_job_findings(
    ignored: &[IgnoredJob],
    maintenance: &[MaintenanceJob],
    findings: &mut Vec<Finding>,
) {
    if !ignored.is_empty() {
        findings.push(Finding::new(
            "project-jobs-ignored",
            Severity::Info,
            format!(
                "{} data-migration {} inside a project ignored, as the server ignores them \
                 (listed under ignored_jobs): {}",
                ignored.len(),
                if ignored.len() == 1 {
                    "job is"
                } else {
                    "jobs are"
                },
                ignored
                    .iter()
                    .take(5)
                    .map(|j| j.job_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    for job in maintenance {
        let in_progress = matches!(job.status.as_str(), "accepted" | "active");
        let dropped = if job.dropped_indexes.is_empty() {
            String::new()
        } else {
            format!(
                "; it dropped {}",
                job.dropped_indexes
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        findings.push(Finding::new(
            "maintenance-job",
            if in_progress {
                Severity::Warning
            } else {
                Severity::Info
            },
            format!(
                "job {} ({}) is {}: a schema maintenance job, not a numbered migration; it runs \
                 on the post-deploy queue and may drop indexes the server's schema does not \
                 name{dropped}",
                job.job_id, job.request, job.status
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
                format!("v{v} is stale: {}", m.detail.as_deref().unwrap_or("")),
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
                    "v{v} is running (job {job}){}{}",
                    m.current
                        .progress
                        .as_ref()
                        .map(|p| format!(": {p}"))
                        .unwrap_or_default(),
                    m.work_evidence
                        .first()
                        .map(|s| format!("; {s}"))
                        .unwrap_or_default()
                ),
            )),
            MigrationState::Accepted => Some((
                "migration-accepted",
                Severity::Info,
                format!(
                    "v{v} is accepted (job {job}): queued or running, PostgreSQL cannot tell; \
                     if queued it may start at any moment"
                ),
            )),
            MigrationState::Queued => Some((
                "migration-queued",
                Severity::Info,
                format!("v{v} is queued: {}", m.detail.as_deref().unwrap_or("")),
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

/// The ids of the findings about schema traces.
pub const TRACE_FINDINGS: [&str; 3] = [
    "migration-traces-present",
    "migration-effects-missing",
    "traces-not-compared",
];

/// What the schema shows of each migration against what `dataVersion` says: work of a
/// migration not applied (run without its record, or part-way), and effects of an applied one
/// that are missing (skipped, or undone by hand).
fn trace_findings(
    migrations: &[MigrationStatus],
    done: u32,
    report: &TraceReport,
    findings: &mut Vec<Finding>,
) {
    if let Some(gap) = &report.gap {
        findings.push(Finding::new(
            "traces-not-compared",
            Severity::Info,
            format!(
                "the schema was not compared with the catalogue of what each post-deploy \
                 migration does to it: {gap}"
            ),
        ));
        return;
    }
    for m in migrations {
        let Some(traces) = &m.traces else { continue };
        let v = m.version;
        if m.version > done && !traces.present.is_empty() {
            let strong = traces.shows_a_run();
            let why = if strong {
                "it ran, at least in part: its job record was lost or removed, the work was \
                 done by hand, or it is running or died part-way"
            } else {
                "weak evidence alone: these objects are created IF NOT EXISTS, which a \
                 pre-deploy migration or a fresh install may also have done; its job, a session \
                 running it or the server's logs would tell whether it ran"
            };
            findings.push(Finding::about(
                v,
                "migration-traces-present",
                if strong {
                    Severity::Warning
                } else {
                    Severity::Info
                },
                format!(
                    "v{v} is {} and not applied (dataVersion {done}), yet the schema shows {} of \
                     its {} effects: {}; {why}",
                    m.state.as_str(),
                    traces.present.len(),
                    traces.effects,
                    list_traces(&traces.present, 3)
                ),
            ));
        }
        if m.version <= done && !traces.missing.is_empty() {
            findings.push(Finding::about(
                v,
                "migration-effects-missing",
                Severity::Warning,
                format!(
                    "dataVersion {done} counts v{v} as applied, but {} of its {} effects are not \
                     what it leaves: {}; skipped (setdataversion), undone by hand, stopped \
                     part-way, or changed again by a later release's pre-deploy migration",
                    traces.missing.len(),
                    traces.effects,
                    list_traces(&traces.missing, 3)
                ),
            ));
        }
    }
}

/// The first `n` traces, as the schema shows them, and how many more.
pub fn list_traces(traces: &[super::traces::Trace], n: usize) -> String {
    let mut text = traces
        .iter()
        .take(n)
        .map(|t| t.seen.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if traces.len() > n {
        text.push_str(&format!(" and {} more", traces.len() - n));
    }
    text
}

/// A database or jobs beyond what the manifest knows mean a newer server than the manifest;
/// keys no migration can have mean a damaged manifest.
fn manifest_findings(manifest: &Manifest, done: u32, highest: u32, findings: &mut Vec<Finding>) {
    if let Some(first) = manifest.odd_keys.first() {
        findings.push(Finding::new(
            "odd-manifest-key",
            Severity::Warning,
            format!(
                "the {} manifest has {} no migration can have (medmig believes v1 to \
                 v{MAX_DATA_VERSION}), left out: \"{}\"{}; is it Medplum's \
                 data-version-manifest.json?",
                manifest.origin,
                if manifest.odd_keys.len() == 1 {
                    "a key"
                } else {
                    "keys"
                },
                crate::text::shorten(first, 40),
                match manifest.odd_keys.len() {
                    1 => String::new(),
                    n => format!(" and {} more", n - 1),
                }
            ),
        ));
    }
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
    use crate::snapshot::{
        ConnectionSource, DatabaseMigrationRow, JobRecord, MigrationActivity, SnapshotSource,
        SslMode,
    };

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn options() -> StatusOptions {
        StatusOptions::at(now(), Duration::hours(1))
    }

    /// A job for `version` in `status`, last updated `minutes_ago`.
    fn job(id: &str, version: u32, status: &str, minutes_ago: i64) -> JobRecord {
        let at = now() - Duration::minutes(minutes_ago);
        JobRecord {
            id: id.into(),
            last_updated: at,
            status_column: Some(status.into()),
            project_id: None,
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
            redis: None,
            redis_gap: None,
            shards: Vec::new(),
            only_shard: None,
            activity: None,
            unreadable_tables: vec![],
            unread_tables: vec![],
        }
    }

    fn report(snapshot: &Snapshot) -> StatusReport {
        analyze(
            snapshot,
            &Manifest::embedded(),
            &Catalogue::embedded(),
            options(),
        )
    }

    fn state(report: &StatusReport, version: u32) -> MigrationState {
        report.migrations[version as usize - 1].state
    }

    fn has(report: &StatusReport, id: &str) -> bool {
        report.findings.iter().any(|f| f.id == id)
    }

    #[test]
    fn tables_not_read_leave_the_states_that_rest_on_them_unknown() {
        let locked = |table: &str| crate::snapshot::UnreadTable {
            table: table.into(),
            why: "another session holds a lock on it".into(),
        };
        // Without the jobs: what dataVersion counts is known, the rest is not.
        let mut s = snapshot(Some(47), vec![]);
        s.unread_tables = vec![locked("\"AsyncJob\"")];
        let r = report(&s);
        assert_eq!(state(&r, 47), MigrationState::Completed);
        assert_eq!(state(&r, 48), MigrationState::Unknown);
        assert!(r.migrations[47]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("holds a lock")));
        assert_eq!(r.post_deploy.pending, Some(48));
        assert!(has(&r, "evidence-unreadable") && !has(&r, "migration-pending"));
        // Without "DatabaseMigration": nothing is known, and its emptiness is no finding.
        let mut s = snapshot(Some(47), vec![]);
        s.database_migration.clear();
        s.unread_tables = vec![locked("\"DatabaseMigration\"")];
        let r = report(&s);
        assert!(r
            .migrations
            .iter()
            .all(|m| m.state == MigrationState::Unknown));
        assert_eq!(r.post_deploy.pending, None);
        assert!(!has(&r, "no-migration-row"));
        // A failed job is out of order only against a known dataVersion.
        let mut s = snapshot(Some(47), vec![job("j1", 49, "error", 5)]);
        s.database_migration.clear();
        s.unread_tables = vec![locked("\"DatabaseMigration\"")];
        assert!(!has(&report(&s), "out-of-order-job"));
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

    fn seen(
        mut s: Snapshot,
        sessions: Vec<crate::snapshot::MigratingSession>,
        hidden: u32,
    ) -> Snapshot {
        s.activity = Some(MigrationActivity {
            sessions,
            hidden_sessions: hidden,
        });
        s
    }

    fn session(query: &str, minutes_ago: i64, ddl: bool) -> crate::snapshot::MigratingSession {
        crate::snapshot::MigratingSession {
            pid: 4242,
            application_name: Some("medplum-server".into()),
            state: Some("active".into()),
            query_start: Some(now() - Duration::minutes(minutes_ago)),
            query: Some(query.into()),
            holds_migration_lock: false,
            runs_ddl: Some(ddl),
        }
    }

    // workers/post-deploy-migration.ts, runCustomMigration: an accepted custom migration is
    // written nothing until it ends, so its job alone cannot tell queued from running.
    #[test]
    fn an_accepted_job_is_queued_or_running_until_evidence_tells() {
        let base = || snapshot(Some(40), vec![job("j1", 41, "accepted", 5)]);
        let r = report(&seen(base(), vec![], 0));
        assert_eq!(state(&r, 41), MigrationState::Accepted);
        assert!(r.migrations[40]
            .detail
            .as_deref()
            .unwrap()
            .contains("queued or running"));
        // Old and quiet, every session visible, none working: stale, with the evidence named.
        let old = || snapshot(Some(40), vec![job("j1", 41, "accepted", 61)]);
        let r = report(&seen(old(), vec![], 0));
        assert_eq!(state(&r, 41), MigrationState::Stale);
        assert!(r.migrations[40]
            .detail
            .as_deref()
            .unwrap()
            .contains("every session was visible"));
        // Old and quiet, but sessions hidden or not recorded: no claim that nothing works.
        let r = report(&seen(old(), vec![], 3));
        assert_eq!(state(&r, 41), MigrationState::Accepted);
        assert!(r.migrations[40]
            .detail
            .as_deref()
            .unwrap()
            .contains("cannot tell"));
        assert_eq!(state(&report(&old()), 41), MigrationState::Accepted);
        // Old and quiet, but a session runs a write longer than the server's statement limit.
        let long = session("UPDATE \"Observation\" SET \"__version\" = 9", 90, false);
        let r = report(&seen(old(), vec![long], 0));
        assert_eq!(state(&r, 41), MigrationState::Running);
        assert_eq!(r.migrations[40].work_evidence.len(), 1);
        // A short write is ordinary traffic; DDL outside the startup lock is migration work.
        let short = session("UPDATE \"Observation\" SET x = 1", 0, false);
        assert_eq!(
            state(&report(&seen(old(), vec![short], 0)), 41),
            MigrationState::Stale
        );
        let ddl = session("CREATE INDEX CONCURRENTLY x ON y (z)", 0, true);
        assert_eq!(
            state(&report(&seen(old(), vec![ddl], 0)), 41),
            MigrationState::Running
        );
        // Jobs written "active" by older servers still read as running while fresh.
        let r = report(&seen(
            snapshot(Some(40), vec![job("j1", 41, "active", 59)]),
            vec![],
            0,
        ));
        assert_eq!(state(&r, 41), MigrationState::Running);
    }

    // asyncjobcancel.ts: $cancel does not stop a running custom migration.
    #[test]
    fn a_cancelled_job_whose_work_still_runs_is_running() {
        let cancelled = snapshot(Some(40), vec![job("j1", 41, "cancelled", 5)]);
        let ddl = session("CREATE INDEX CONCURRENTLY x ON y (z)", 2, true);
        let r = report(&seen(cancelled.clone(), vec![ddl], 0));
        assert_eq!(state(&r, 41), MigrationState::Running);
        assert!(r.migrations[40]
            .detail
            .as_deref()
            .unwrap()
            .contains("$cancel does not"));
        assert_eq!(
            state(&report(&seen(cancelled, vec![], 0)), 41),
            MigrationState::Cancelled
        );
    }

    // migration-utils.ts, preparePostDeployMigrationAsyncJob: system jobs only, any version.
    #[test]
    fn the_server_counts_system_jobs_in_progress_of_any_version() {
        let mut project_job = job("p1", 41, "accepted", 5);
        project_job.project_id = Some("0b0e6e2f-6a36-4c55-9f1d-8f1b0a3c2d4e".into());
        let mut system_job = job("s1", 41, "accepted", 3);
        system_job.project_id = Some(crate::analyze::jobs::SYSTEM_PROJECT_ID.into());
        let r = report(&snapshot(
            Some(40),
            vec![project_job.clone(), system_job.clone()],
        ));
        assert!(!has(&r, "several-jobs-in-progress"));
        assert!(has(&r, "project-jobs-ignored"));
        assert_eq!(r.ignored_jobs.len(), 1);
        assert_eq!(r.migrations[40].current.job_id.as_deref(), Some("s1"));
        // Two system jobs in progress for different versions: the server refuses.
        let r = report(&snapshot(
            Some(40),
            vec![job("a", 39, "accepted", 50), system_job],
        ));
        assert!(has(&r, "several-jobs-in-progress"));
        // One left behind for another version: the server reuses it for the next.
        let r = report(&snapshot(Some(41), vec![job("a", 38, "accepted", 50)]));
        assert!(has(&r, "job-will-be-reused"));
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
        // v1–v53 of the manifest and v60 of dataVersion: nothing names v54–v59.
        assert_eq!(versions(&r), [(1..=53).collect(), vec![60]].concat());
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

    fn versions(report: &StatusReport) -> Vec<u32> {
        report.migrations.iter().map(|m| m.version).collect()
    }

    fn finding<'a>(report: &'a StatusReport, id: &str) -> &'a Finding {
        report
            .findings
            .iter()
            .find(|f| f.id == id)
            .unwrap_or_else(|| panic!("no {id}: {:#?}", report.findings))
    }

    /// A system job whose `dataVersion` is `value` as written.
    fn job_naming(id: &str, value: serde_json::Value, status: &str) -> JobRecord {
        let mut record = job(id, 41, status, 5);
        let mut content: serde_json::Value = serde_json::from_str(&record.content).unwrap();
        content["dataVersion"] = value;
        record.content = content.to_string();
        record
    }

    #[test]
    fn the_listed_migrations_are_those_something_names_and_the_next() {
        // dataVersion 56 past the manifest, a failed job for v58: v57 is next.
        let r = report(&snapshot(Some(56), vec![job("j1", 58, "error", 5)]));
        assert_eq!(
            versions(&r),
            [(1..=53).collect(), vec![56, 57, 58]].concat()
        );
        assert_eq!(r.post_deploy.pending, Some(57));
        assert_eq!(r.migrations[54].state, MigrationState::Pending);
        assert_eq!(r.migrations[55].state, MigrationState::Failed);
    }

    // Issue 13: one number from outside made medmig count (and allocate) up to it.
    #[test]
    fn a_data_version_past_the_bound_is_a_finding_and_counts_nothing() {
        for value in [
            i64::from(MAX_DATA_VERSION) + 1,
            1_000_000,
            2_147_483_647,
            4_294_967_295,
            4_294_967_296,
            i64::MAX,
        ] {
            // An in-progress job and a failed one ahead: the comparisons with dataVersion + 1
            // must not overflow.
            let r = report(&snapshot(
                Some(value),
                vec![job("a", 41, "active", 5), job("e", 45, "error", 5)],
            ));
            let odd = finding(&r, "odd-data-version");
            assert_eq!(odd.severity, Severity::Error);
            assert!(odd.message.contains(&value.to_string()), "{}", odd.message);
            assert_eq!(versions(&r), (1..=53).collect::<Vec<_>>(), "{value}");
            assert_eq!(r.post_deploy.data_version, Some(value));
            assert_eq!(r.post_deploy.pending, None);
            assert_eq!(state(&r, 41), MigrationState::Inconsistent);
            assert_eq!(state(&r, 45), MigrationState::Completed);
            assert!(!has(&r, "manifest-outdated"));
        }
        // The bound itself is a number medmig believes, and lists.
        let r = report(&snapshot(Some(i64::from(MAX_DATA_VERSION)), vec![]));
        assert!(!has(&r, "odd-data-version"));
        assert_eq!(versions(&r).last(), Some(&MAX_DATA_VERSION));
        assert_eq!(r.migrations.len(), 54);
    }

    #[test]
    fn zero_and_negative_data_versions() {
        let r = report(&snapshot(Some(0), vec![]));
        assert!(!has(&r, "odd-data-version"));
        assert_eq!(r.post_deploy.pending, Some(1));
        assert_eq!(versions(&r), (1..=53).collect::<Vec<_>>());
        for value in [-1, -2_147_483_648, i64::MIN] {
            let r = report(&snapshot(Some(value), vec![]));
            assert_eq!(finding(&r, "odd-data-version").severity, Severity::Warning);
            assert_eq!(state(&r, 1), MigrationState::Pending);
            assert_eq!(r.migrations.len(), 53);
        }
    }

    #[test]
    fn an_odd_pre_deploy_version_is_a_finding() {
        for (value, odd) in [
            (0, false),
            (123, false),
            (MAX_PRE_DEPLOY_VERSION, false),
            (MAX_PRE_DEPLOY_VERSION + 1, true),
            (2_147_483_647, true),
            (i64::MAX, true),
            (-1, true),
            (i64::MIN, true),
        ] {
            let mut s = snapshot(Some(53), vec![]);
            s.database_migration[0].version = Some(value);
            let r = report(&s);
            assert_eq!(has(&r, "odd-pre-deploy-version"), odd, "{value}");
            assert_eq!(r.pre_deploy.version, Some(value));
            assert_eq!(r.migrations.len(), 53);
        }
    }

    #[test]
    fn a_job_naming_no_possible_migration_is_a_finding_and_listed_nowhere() {
        use serde_json::json;
        for value in [
            json!(2_147_483_647),
            json!(4_294_967_295_u64),
            json!(u64::MAX),
            json!(1_000_000),
            json!(MAX_DATA_VERSION + 1),
            json!(0),
            json!(-1),
            json!(i64::MIN),
            json!(41.5),
            json!(1e300),
        ] {
            let r = report(&snapshot(
                Some(40),
                vec![job_naming("odd", value.clone(), "error")],
            ));
            let odd = finding(&r, "odd-job-version");
            assert_eq!(odd.version, None, "{value}");
            assert!(odd.message.contains("job odd"), "{}", odd.message);
            assert_eq!(versions(&r), (1..=53).collect::<Vec<_>>(), "{value}");
            assert_eq!(state(&r, 41), MigrationState::Pending);
        }
        // Older jobs name it in their request only.
        let mut old = job("old", 41, "completed", 5);
        old.content = serde_json::json!({
            "resourceType": "AsyncJob", "status": "completed",
            "request": format!("data-migration-v{}", "9".repeat(5000)),
        })
        .to_string();
        let r = report(&snapshot(Some(40), vec![old]));
        let odd = finding(&r, "odd-job-version");
        assert!(odd.message.len() < 400, "{}", odd.message);
        assert_eq!(r.migrations.len(), 53);
        // A damaged job is attributed only to a number a migration can have.
        let mut broken = job("b", 41, "active", 2);
        broken.content = "{\"resourceType\":\"AsyncJob\",\"dataVersion\": 2147483647,".into();
        let r = report(&snapshot(Some(40), vec![broken]));
        assert_eq!(finding(&r, "job-unreadable").version, None);
        assert_eq!(r.migrations.len(), 53);
    }

    #[test]
    fn the_readme_documents_the_bounds_and_their_findings() {
        let readme = include_str!("../../README.md");
        let others = ["odd-manifest-key"];
        for id in ODD_NUMBER_FINDINGS
            .iter()
            .chain(&others)
            .chain(&TRACE_FINDINGS)
        {
            assert!(
                readme.contains(&format!("| `{id}` |")),
                "README lacks `{id}`"
            );
        }
        for bound in [i64::from(MAX_DATA_VERSION), MAX_PRE_DEPLOY_VERSION] {
            let shown = crate::text::group_thousands(bound.unsigned_abs());
            assert!(
                readme.contains(&format!("to {shown}")),
                "README lacks {shown}"
            );
        }
    }

    #[test]
    fn manifest_keys_no_migration_can_have_are_a_finding() {
        let manifest = Manifest::parse(
            r#"{"v1": {"serverVersion": "4.0.0"}, "v2": {"serverVersion": "4.1.0"},
                "v4294967295": {"serverVersion": "4.2.0"}, "v0": {"serverVersion": "4.2.0"}}"#,
            "m.json",
        )
        .unwrap();
        let r = analyze(
            &snapshot(Some(1), vec![]),
            &manifest,
            &Catalogue::embedded(),
            options(),
        );
        let odd = finding(&r, "odd-manifest-key");
        assert!(odd.message.contains("v0"), "{}", odd.message);
        assert!(odd.message.contains("1 more"), "{}", odd.message);
        assert_eq!(versions(&r), [1, 2]);
        assert_eq!(r.post_deploy.pending, Some(2));
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
