//! May this deployment still be rolled back to `--to`? Every check, its outcome and its
//! evidence, and the verdict they add up to (`medmig rollback-check`).
//!
//! Medplum's rule: minor N+1 may go back to the latest patch of minor N while no post-deploy
//! migration introduced after N has started, even partially, and while the schema is still
//! what N's code expects. The checks are pure functions of the snapshot, the manifest, the
//! status analysis and the options; their ids are listed in [`CHECK_IDS`] and the README.

use chrono::{DateTime, Utc};
use semver::Version;
use serde::Serialize;

use super::compat::{diff, DIFFERENCE_IDS};
use super::migrations::{
    analyze, infer_from, is_migrating, JobRun, MigrationState, MigrationStatus, StatusOptions,
    StatusReport, UNPLACED_JOB_FINDINGS,
};
use super::Impact;
use crate::catalog::SchemaContract;
use crate::medplum::catalogue::Catalogue;
use crate::medplum::config::DeferSettings;
use crate::medplum::manifest::Manifest;
use crate::snapshot::Snapshot;

/// The checks of `rollback-check` beside the schema differences, with their impact.
pub const CHECK_IDS: [(&str, Impact); 18] = [
    ("target-in-manifest", Impact::Blocker),
    ("post-deploy-started", Impact::Blocker),
    ("post-deploy-queued", Impact::Blocker),
    ("post-deploy-applied", Impact::Blocker),
    ("migration-in-progress", Impact::Blocker),
    ("queue-job-active", Impact::Blocker),
    ("not-previous-minor", Impact::Blocker),
    ("not-latest-patch", Impact::Warning),
    ("schema-breaking-traces", Impact::Blocker),
    ("schema-additive-traces", Impact::Warning),
    ("schema-not-compared", Impact::Warning),
    ("invalid-index", Impact::Warning),
    ("post-deploy-auto-run", Impact::Warning),
    ("defer-key-not-read", Impact::Warning),
    ("run-migrations-false", Impact::Warning),
    ("post-deploy-cancelled", Impact::Info),
    ("evidence-unreadable", Impact::Blocker),
    ("shard-not-read", Impact::Blocker),
];

/// Every id `--ignore` can turn off: the checks, then the schema differences.
pub fn ignorable_ids() -> impl Iterator<Item = &'static str> {
    CHECK_IDS
        .iter()
        .chain(DIFFERENCE_IDS.iter())
        .map(|(id, _)| *id)
}

/// Whether `id` names a check (or a schema difference) that `--ignore` can turn off.
pub fn is_check_id(id: &str) -> bool {
    ignorable_ids().any(|known| known == id)
}

/// What the checks add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Every blocker passed and all evidence was read.
    Safe,
    /// A blocker failed.
    Unsafe,
    /// No blocker failed, but evidence a check needs could not be read.
    Unknown,
}

impl Verdict {
    /// `SAFE`, `UNSAFE` or `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Safe => "SAFE",
            Verdict::Unsafe => "UNSAFE",
            Verdict::Unknown => "UNKNOWN",
        }
    }

    /// The exit code: 0, 1 or 3.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Safe => 0,
            Verdict::Unsafe => 1,
            Verdict::Unknown => 3,
        }
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    /// The check found what it looks for (for a warning: something worth knowing).
    Fail,
    /// Not applicable to this input (e.g. no `--medplum-config`).
    Skipped,
    /// Turned off with `--ignore`.
    Ignored,
    /// The evidence it needs could not be read.
    Unknown,
}

/// One check with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub severity: Impact,
    pub outcome: Outcome,
    pub message: String,
    pub evidence: Vec<String>,
}

impl Check {
    fn new(
        id: &'static str,
        severity: Impact,
        outcome: Outcome,
        message: impl Into<String>,
    ) -> Check {
        Check {
            id,
            severity,
            outcome,
            message: message.into(),
            evidence: Vec::new(),
        }
    }

    fn with(mut self, evidence: Vec<String>) -> Check {
        self.evidence = evidence;
        self
    }
}

/// What to check against.
#[derive(Debug, Clone)]
pub struct RollbackOptions<'a> {
    /// The release to go back to.
    pub to: Version,
    /// The release deployed now, when the user knows it.
    pub from: Option<Version>,
    /// The schema the older release expects.
    pub baseline: Option<&'a SchemaContract>,
    /// The deferral switches of the server config, with `--medplum-config`.
    pub config: Option<DeferSettings>,
    /// Check ids turned off.
    pub ignore: &'a [String],
    pub status: StatusOptions,
    /// The shard ids the `--medplum-config` given names (`None` without one): a shard it
    /// names that the evidence does not hold was not read.
    pub config_shards: Option<Vec<String>>,
}

/// The answer of `rollback-check`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackReport {
    pub verdict: Verdict,
    /// The one-line answer, e.g. "UNSAFE: post-deploy migration v13 … started at …".
    pub headline: String,
    pub to: String,
    pub from: Option<String>,
    /// How `from` was worked out when `--from` was not given.
    pub from_inferred_by: Option<String>,
    pub checks: Vec<Check>,
}

/// Runs every check.
pub fn rollback_check(
    snapshot: &Snapshot,
    manifest: &Manifest,
    catalogue: &Catalogue,
    options: &RollbackOptions<'_>,
) -> RollbackReport {
    let status = analyze(snapshot, manifest, catalogue, options.status);
    let to = &options.to;
    let known = manifest.known_by(to);
    let covered = manifest.covers(to);
    let newer = NewerMigrations {
        status: &status,
        manifest,
        known,
        covered,
        to,
        activity_visible: snapshot
            .activity
            .as_ref()
            .is_some_and(|a| a.hidden_sessions == 0),
    };
    let missing = snapshot.missing_tables();
    let jobs_unreadable = missing.iter().any(|t| t.table.contains("AsyncJob"));

    let mut checks = vec![target_in_manifest(manifest, to, covered, known)];
    if !missing.is_empty() {
        let mut reasons = Vec::new();
        if !snapshot.unreadable_tables.is_empty() {
            reasons.push(format!(
                "user \"{}\" may not read {}: GRANT SELECT on them so that medmig can see what \
                 ran",
                snapshot.source.user,
                snapshot.unreadable_tables.join(", ")
            ));
        }
        for unread in &snapshot.unread_tables {
            reasons.push(format!(
                "{} could not be read: {}",
                unread.table, unread.why
            ));
        }
        checks.push(
            Check::new(
                "evidence-unreadable",
                Impact::Blocker,
                Outcome::Unknown,
                reasons.join("; "),
            )
            .with(missing.into_iter().map(|t| t.table).collect()),
        );
    }
    checks.push(newer.started(jobs_unreadable));
    checks.push(newer.queued(jobs_unreadable));
    checks.push(post_deploy_applied(snapshot, &status, manifest, known, to));
    checks.push(migration_in_progress(snapshot, &options.status));
    checks.push(newer.queue_job_active(snapshot));
    let (from, inferred_by) = match &options.from {
        Some(from) => (Some(from.clone()), None),
        None => infer_from(&status, manifest),
    };
    checks.push(not_previous_minor(
        manifest,
        to,
        from.as_ref(),
        inferred_by.as_deref(),
    ));
    checks.push(not_latest_patch(manifest, to));
    let catalogue_checks = newer.catalogue_checks(catalogue);
    let catalogue_compared = catalogue_checks.compared;
    checks.extend(catalogue_checks.checks);
    let compared = catalogue_compared.is_some();
    checks.extend(schema_checks(
        snapshot,
        options.baseline,
        catalogue_compared,
    ));
    checks.push(invalid_index(snapshot));
    checks.extend(config_checks(options.config.as_ref()));
    checks.extend(newer.cancelled());

    for check in &mut checks {
        if options.ignore.iter().any(|id| id == check.id) {
            check.outcome = Outcome::Ignored;
        }
    }
    let (verdict, headline) = match verdict_of(&checks) {
        Some(found) => found,
        None => (
            Verdict::Safe,
            format!(
                "SAFE: nothing {to} does not know has run: no post-deploy migration after v{known} \
                 has started{}",
                match (options.baseline.is_some(), compared) {
                    (true, _) => ", and the schema is still what the baseline expects",
                    (false, true) =>
                        ", and the schema shows no effect of theirs that breaks it \
                         (compared with the migration catalogue)",
                    (false, false) => " (schema not compared)",
                }
            ),
        ),
    };
    RollbackReport {
        verdict,
        headline,
        to: to.to_string(),
        from: from.map(|v| v.to_string()),
        from_inferred_by: inferred_by,
        checks,
    }
}

/// [`rollback_check`] for a whole deployment: the global database and every shard of the
/// snapshot, each checked on its own (every shard has its own `"DatabaseMigration"` row and
/// post-deploy jobs), then one verdict. Each check's outcome is the worst any database gave
/// it (a failure over evidence missing over a pass), its message that database's (named,
/// with the shard's id), its evidence every database's, each line naming its database. A
/// shard that could not be read fails `shard-not-read` with UNKNOWN: what it holds is not
/// known. UNSAFE when any database fails a blocker; UNKNOWN when none does but evidence, or
/// a shard, is missing.
pub fn rollback_check_deployment(
    snapshot: &Snapshot,
    manifest: &Manifest,
    catalogue: &Catalogue,
    options: &RollbackOptions<'_>,
) -> RollbackReport {
    let global = rollback_check(snapshot, manifest, catalogue, options);
    // Shards the config names that the evidence lacks: read through another source, or a
    // snapshot taken without them.
    let held: Vec<&str> = snapshot.shards.iter().map(|s| s.id.as_str()).collect();
    let missing: Vec<&String> = options
        .config_shards
        .iter()
        .flatten()
        .filter(|id| !held.contains(&id.as_str()))
        .filter(|id| snapshot.only_shard.as_ref().is_none_or(|o| &o.id != *id))
        .collect();
    if snapshot.shards.is_empty() && snapshot.only_shard.is_none() && missing.is_empty() {
        return global;
    }
    let mut unread = Vec::new();
    if let Some(only) = &snapshot.only_shard {
        for other in &only.others {
            unread.push(format!(
                "{}: not read, since only {} was (--shard)",
                database_name(other),
                database_name(&only.id)
            ));
        }
    }
    for id in missing {
        unread.push(format!(
            "shard {id}: named by the --medplum-config but not in the evidence (read through \
             another connection source, or a snapshot taken without the config): read the \
             deployment with --medplum-config alone"
        ));
    }
    let mut reports = vec![(crate::snapshot::GLOBAL_SHARD, global)];
    for (id, read) in snapshot.databases().into_iter().skip(1) {
        match read {
            Ok(shard) => {
                // Without --from, each database infers the deployed release from its own
                // jobs, and says how sure it is.
                let options = RollbackOptions {
                    status: StatusOptions {
                        now: shard.taken_at,
                        ..options.status
                    },
                    ..options.clone()
                };
                // The queues are the deployment's, read with the global database.
                let mut shard = shard.clone();
                shard.redis.clone_from(&snapshot.redis);
                shard.redis_gap.clone_from(&snapshot.redis_gap);
                reports.push((id, rollback_check(&shard, manifest, catalogue, &options)));
            }
            Err(why) => unread.push(format!("shard {id}: {why}")),
        }
    }
    // Every check any database has, in the order they first appear.
    let mut ids: Vec<&'static str> = Vec::new();
    for (_, report) in &reports {
        for check in &report.checks {
            if !ids.contains(&check.id) {
                ids.push(check.id);
            }
        }
    }
    let mut checks: Vec<Check> = Vec::new();
    for check_id in ids {
        let Some(check) = reports
            .iter()
            .find_map(|(_, r)| r.checks.iter().find(|c| c.id == check_id))
        else {
            continue;
        };
        let mut merged = check.clone();
        merged.evidence = Vec::new();
        let mut worst: Option<(&str, &Check)> = None;
        for (id, report) in &reports {
            let Some(theirs) = report.checks.iter().find(|c| c.id == check_id) else {
                continue;
            };
            merged
                .evidence
                .extend(theirs.evidence.iter().map(|line| format!("{id}: {line}")));
            if worst.is_none_or(|(_, w)| rank(theirs.outcome) > rank(w.outcome)) {
                worst = Some((id, theirs));
            }
        }
        if let Some((id, theirs)) = worst {
            merged.outcome = theirs.outcome;
            merged.message = format!("{}: {}", database_name(id), theirs.message);
        }
        checks.push(merged);
    }
    let ids: Vec<String> = reports.iter().map(|(id, _)| database_name(id)).collect();
    let mut not_read = Check::new(
        "shard-not-read",
        Impact::Blocker,
        Outcome::Pass,
        format!(
            "every database of the deployment was read: {}",
            ids.join(", ")
        ),
    );
    if !unread.is_empty() {
        not_read.outcome = Outcome::Unknown;
        not_read.message = format!(
            "{} of the deployment {} not read, so whether a post-deploy migration started \
             there is not known: {}",
            crate::text::count(unread.len(), "database", "databases"),
            if unread.len() == 1 { "was" } else { "were" },
            unread.join("; ")
        );
        not_read.evidence = unread;
    }
    if options.ignore.iter().any(|id| id == "shard-not-read") {
        not_read.outcome = Outcome::Ignored;
    }
    checks.push(not_read);
    let global = &reports[0].1;
    let (verdict, headline) = match verdict_of(&checks) {
        Some(found) => found,
        None => (
            Verdict::Safe,
            format!(
                "{} (on every database: {})",
                global.headline,
                ids.join(", ")
            ),
        ),
    };
    RollbackReport {
        verdict,
        headline,
        to: global.to.clone(),
        from: global.from.clone(),
        from_inferred_by: global.from_inferred_by.clone(),
        checks,
    }
}

/// The verdict the checks give when it is not SAFE, with its headline: UNSAFE on the first
/// blocker that failed, else UNKNOWN on the first check whose evidence is missing.
fn verdict_of(checks: &[Check]) -> Option<(Verdict, String)> {
    let failed_blocker = checks
        .iter()
        .find(|c| c.severity == Impact::Blocker && c.outcome == Outcome::Fail);
    let unknown = checks.iter().find(|c| c.outcome == Outcome::Unknown);
    match (failed_blocker, unknown) {
        (Some(check), _) => Some((Verdict::Unsafe, format!("UNSAFE: {}", check.message))),
        (None, Some(check)) => Some((Verdict::Unknown, format!("UNKNOWN: {}", check.message))),
        (None, None) => None,
    }
}

/// How a database is named in a deployment's messages.
fn database_name(id: &str) -> String {
    match id {
        crate::snapshot::GLOBAL_SHARD => "the global database".to_string(),
        shard => format!("shard {shard}"),
    }
}

/// How bad an outcome is, for [`rollback_check_deployment`]: a failure over evidence missing
/// over a pass over a check that did not apply.
fn rank(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Fail => 4,
        Outcome::Unknown => 3,
        Outcome::Pass => 2,
        Outcome::Skipped => 1,
        Outcome::Ignored => 0,
    }
}

fn target_in_manifest(manifest: &Manifest, to: &Version, covered: bool, known: u32) -> Check {
    let newest = manifest
        .newest_release()
        .map_or("nothing".to_string(), ToString::to_string);
    if let Some(key) = manifest.odd_keys.first() {
        Check::new(
            "target-in-manifest",
            Impact::Blocker,
            Outcome::Unknown,
            format!(
                "the {} manifest has keys no migration can have, such as \"{}\", so medmig \
                 cannot trust which post-deploy migrations {to} knows: pass Medplum's own \
                 data-version-manifest.json from {to} or newer",
                manifest.origin,
                crate::text::shorten(key, 40)
            ),
        )
    } else if covered {
        Check::new(
            "target-in-manifest",
            Impact::Blocker,
            Outcome::Pass,
            format!(
                "{to} is within the {} manifest (releases up to {newest}): it knows post-deploy \
                 migrations up to v{known}",
                manifest.origin
            ),
        )
    } else {
        Check::new(
            "target-in-manifest",
            Impact::Blocker,
            Outcome::Unknown,
            format!(
                "the {} manifest describes releases up to {newest}, so medmig cannot say which \
                 post-deploy migrations {to} knows: pass --manifest with \
                 data-version-manifest.json from {to} or newer",
                manifest.origin
            ),
        )
    }
}

/// The migrations the target release does not know, and the jobs that ran them.
struct NewerMigrations<'a> {
    status: &'a StatusReport,
    manifest: &'a Manifest,
    /// The highest migration the target knows.
    known: u32,
    /// Whether the manifest covers the target (else migrations past it are indeterminate).
    covered: bool,
    to: &'a Version,
    /// Whether every session was visible when the evidence was read.
    activity_visible: bool,
}

impl NewerMigrations<'_> {
    /// Every job of a migration newer than the target, with its migration.
    fn runs(&self) -> impl Iterator<Item = (&MigrationStatus, &JobRun)> {
        self.status
            .migrations
            .iter()
            .filter(|m| m.version > self.known)
            .flat_map(|m| m.runs.iter().map(move |run| (m, run)))
    }

    /// Whether this run did (or does) work: what the job records, or, for the current run, a
    /// `running` state (sessions seen doing its work, a worker holding its BullMQ job, its work
    /// in the schema: a custom migration writes nothing until it ends, and ignores $cancel
    /// once it runs).
    fn run_started(m: &MigrationStatus, run: &JobRun) -> bool {
        run_started(run) || (run.current && m.state == MigrationState::Running)
    }

    /// Whether migration `version` is certainly unknown to the target.
    fn certainly_newer(&self, version: u32) -> bool {
        self.covered || version <= self.manifest.highest()
    }

    fn introduced(&self, version: u32) -> String {
        match self.manifest.get(version) {
            Some(entry) => format!("v{version} (introduced in {})", entry.server_version),
            None => format!("v{version} (not in the manifest)"),
        }
    }

    fn describe(&self, version: u32, run: &JobRun) -> String {
        let facts = &run.facts;
        let mut text = format!(
            "job {} for {} is {}",
            facts.job_id.as_deref().unwrap_or("?"),
            self.introduced(version),
            facts.job_status.as_deref().unwrap_or("?"),
        );
        if let Some(at) = facts.started_at.or(facts.requested_at) {
            text.push_str(&format!(", since {}", minute(&at)));
        }
        if let Some(server) = &run.min_server_version {
            text.push_str(&format!(", created by server {server}"));
        }
        if let Some(progress) = &facts.progress {
            text.push_str(&format!("; {progress}"));
        }
        if let Some(error) = &facts.error {
            text.push_str(&format!("; error: {}", crate::text::shorten(error, 100)));
        }
        text
    }

    fn started(&self, jobs_unreadable: bool) -> Check {
        let id = "post-deploy-started";
        if jobs_unreadable {
            return Check::new(
                id,
                Impact::Blocker,
                Outcome::Unknown,
                "the post-deploy jobs could not be read, so medmig cannot tell whether one started",
            );
        }
        let mut started = Vec::new();
        let mut indeterminate = Vec::new();
        for (m, run) in self.runs() {
            let version = m.version;
            if !Self::run_started(m, run) {
                // A cancelled job is evidence of safety only when medmig saw every session
                // and none ran its work: a running custom migration ignores $cancel.
                if run.current
                    && run.facts.job_status.as_deref() == Some("cancelled")
                    && !self.activity_visible
                    && self.certainly_newer(version)
                {
                    indeterminate.push(format!(
                        "{}; medmig could not see every session, so it cannot tell whether its \
                         work still runs ($cancel does not stop a running custom migration)",
                        self.describe(version, run)
                    ));
                }
                continue;
            }
            if self.certainly_newer(version) {
                started.push((version, m, run));
            } else {
                indeterminate.push(self.describe(version, run));
            }
        }
        for finding in self
            .status
            .findings
            .iter()
            .filter(|f| UNPLACED_JOB_FINDINGS.contains(&f.id))
        {
            if finding.version.is_none_or(|v| v > self.known) {
                indeterminate.push(finding.message.clone());
            }
        }
        if let Some((version, _, run)) = started.first() {
            let facts = &run.facts;
            let when = facts
                .started_at
                .or(facts.requested_at)
                .map(|at| format!(" at {}", minute(&at)))
                .unwrap_or_default();
            let message = format!(
                "post-deploy migration {} started{when}; {} does not know it and its changes \
                 cannot be undone",
                self.introduced(*version),
                self.to
            );
            let evidence = started
                .iter()
                .flat_map(|(v, m, r)| {
                    let sessions = if r.current {
                        m.work_evidence.clone()
                    } else {
                        Vec::new()
                    };
                    std::iter::once(self.describe(*v, r)).chain(sessions)
                })
                .collect();
            return Check::new(id, Impact::Blocker, Outcome::Fail, message).with(evidence);
        }
        if !indeterminate.is_empty() {
            return Check::new(
                id,
                Impact::Blocker,
                Outcome::Unknown,
                "jobs exist whose migration medmig cannot place before or after the target",
            )
            .with(indeterminate);
        }
        Check::new(
            id,
            Impact::Blocker,
            Outcome::Pass,
            format!(
                "no job of a post-deploy migration after v{} (the last {} knows) has started",
                self.known, self.to
            ),
        )
    }

    fn queued(&self, jobs_unreadable: bool) -> Check {
        let id = "post-deploy-queued";
        if jobs_unreadable {
            return Check::new(id, Impact::Blocker, Outcome::Unknown,
                "the post-deploy jobs could not be read, so medmig cannot tell whether one is queued");
        }
        let queued: Vec<(u32, &JobRun)> = self
            .runs()
            .filter(|(m, run)| {
                self.certainly_newer(m.version)
                    && run.facts.job_status.as_deref() == Some("accepted")
                    && !Self::run_started(m, run)
            })
            .map(|(m, run)| (m.version, run))
            .collect();
        match queued.first() {
            Some((version, run)) => {
                let job = run.facts.job_id.as_deref().unwrap_or("?");
                let evidence = queued
                    .iter()
                    .map(|(v, r)| {
                        let job = r.facts.job_id.as_deref().unwrap_or("?");
                        format!(
                            "{}; queued or running (PostgreSQL cannot tell: a custom migration \
                             writes nothing to its job until it ends); once nothing runs it \
                             (check pg_stat_activity and the worker's logs, or Redis), cancel it \
                             before rolling back: curl -X POST -H \"Authorization: Bearer \
                             $MEDPLUM_TOKEN\" \"$MEDPLUM_BASE_URL/fhir/R4/AsyncJob/{job}/$cancel\"; \
                             $cancel does not stop a running custom migration",
                            self.describe(*v, r)
                        )
                    })
                    .collect();
                Check::new(
                    id,
                    Impact::Blocker,
                    Outcome::Fail,
                    format!(
                        "post-deploy migration {} is accepted (job {job}): queued, and can \
                         start at any moment, or already running",
                        self.introduced(*version)
                    ),
                )
                .with(evidence)
            }
            None => Check::new(
                id,
                Impact::Blocker,
                Outcome::Pass,
                format!(
                    "no job of a post-deploy migration after v{} is queued",
                    self.known
                ),
            ),
        }
    }

    /// The schema against the catalogue: effects of migrations the target does not know that
    /// are present (a blocker where they break the older code on strong evidence, a warning
    /// otherwise), and which newer migrations the catalogue cannot speak for.
    fn catalogue_checks(&self, catalogue: &Catalogue) -> CatalogueChecks {
        let (breaking_id, additive_id) = ("schema-breaking-traces", "schema-additive-traces");
        if let Some(gap) = &self.status.schema_traces.gap {
            let skipped = |id, impact| {
                Check::new(
                    id,
                    impact,
                    Outcome::Skipped,
                    format!("the schema was not compared with the migration catalogue: {gap}"),
                )
            };
            return CatalogueChecks {
                checks: vec![
                    skipped(breaking_id, Impact::Blocker),
                    skipped(additive_id, Impact::Warning),
                ],
                compared: None,
            };
        }
        let newer: Vec<&MigrationStatus> = self
            .status
            .migrations
            .iter()
            .filter(|m| m.version > self.known && self.certainly_newer(m.version))
            .collect();
        let mut breaking = Vec::new();
        let mut additive = Vec::new();
        let mut uncatalogued = Vec::new();
        for m in &newer {
            let entry = catalogue.get(m.version);
            let Some(traces) = m.traces.as_ref().filter(|_| {
                entry.is_some_and(|e| e.kind != crate::medplum::catalogue::MigrationType::Unknown)
            }) else {
                uncatalogued.push(m.version);
                continue;
            };
            for trace in &traces.present {
                let line = format!(
                    "{}, {}: {} ({} evidence: {})",
                    self.introduced(m.version),
                    traces.kind.as_str(),
                    trace.seen,
                    trace.strength.as_str(),
                    trace.effect.as_str()
                );
                if trace.breaking {
                    breaking.push(line);
                } else {
                    additive.push(line);
                }
            }
        }
        let range = match (newer.first(), newer.last()) {
            (Some(first), Some(last)) if first.version != last.version => {
                format!("v{} to v{}", first.version, last.version)
            }
            (Some(first), _) => format!("v{}", first.version),
            _ => "none".to_string(),
        };
        let breaking_check = match breaking.first() {
            Some(first) => Check::new(
                breaking_id,
                Impact::Blocker,
                Outcome::Fail,
                format!(
                    "the schema already shows the work of a migration {} does not know: {first}; \
                     the older code meets it and breaks",
                    self.to
                ),
            )
            .with(breaking),
            None => Check::new(
                breaking_id,
                Impact::Blocker,
                Outcome::Pass,
                format!(
                    "no table or column dropped and no NOT NULL set by a post-deploy migration {} \
                     does not know ({range}), by the {} catalogue",
                    self.to, catalogue.origin
                ),
            ),
        };
        let additive_check = match additive.len() {
            0 => Check::new(
                additive_id,
                Impact::Warning,
                Outcome::Pass,
                format!(
                    "no index or extension of a migration {} does not know",
                    self.to
                ),
            ),
            n => Check::new(
                additive_id,
                Impact::Warning,
                Outcome::Fail,
                format!(
                    "the schema shows {} of migrations {} does not know that the older code \
                     tolerates, or that are weak evidence (created IF NOT EXISTS, as a pre-deploy \
                     migration or a fresh install may also do): alone they do not make a rollback \
                     unsafe, but a created index hints that the migration started",
                    crate::text::count(n, "effect", "effects"),
                    self.to
                ),
            )
            .with(additive),
        };
        CatalogueChecks {
            checks: vec![breaking_check, additive_check],
            compared: Some(uncatalogued),
        }
    }

    /// A BullMQ job of a newer migration that a worker holds right now: its work runs,
    /// whatever its AsyncJob says (a cancelled one included). Unknown when the Redis given
    /// could not be read; skipped without Redis.
    fn queue_job_active(&self, snapshot: &Snapshot) -> Check {
        let id = "queue-job-active";
        if let Some(gap) = &snapshot.redis_gap {
            return Check::new(
                id,
                Impact::Blocker,
                Outcome::Unknown,
                format!(
                    "Redis was given but could not be read, so whether a worker runs a newer \
                     migration's BullMQ job is unknown: {gap}"
                ),
            );
        }
        let Some(redis) = &snapshot.redis else {
            return Check::new(
                id,
                Impact::Blocker,
                Outcome::Skipped,
                "no Redis given (--redis-url): BullMQ's queues, which show a job a worker runs \
                 even when its AsyncJob says otherwise, were not read",
            );
        };
        let version_of = |job: &crate::snapshot::BullJob| {
            job.async_job_id
                .as_deref()
                .and_then(|aj| {
                    self.status
                        .migrations
                        .iter()
                        .find(|m| m.runs.iter().any(|r| r.facts.job_id.as_deref() == Some(aj)))
                })
                .map(|m| m.version)
                .or_else(|| {
                    job.deduplication_id
                        .as_deref()
                        .and_then(|d| d.strip_prefix('v'))
                        .and_then(|n| n.parse().ok())
                })
        };
        let evidence: Vec<String> = redis
            .queues
            .iter()
            .flat_map(|q| q.jobs.iter().map(move |job| (q, job)))
            .filter(|(_, job)| job.state == "active" && job.lock_ttl_ms.is_some())
            .filter_map(|(q, job)| {
                let version = version_of(job)?;
                (version > self.known && self.certainly_newer(version)).then(|| {
                    format!(
                        "BullMQ job {} in {} runs {} for AsyncJob {} (a worker holds its lock)",
                        job.id,
                        q.name,
                        self.introduced(version),
                        job.async_job_id.as_deref().unwrap_or("?")
                    )
                })
            })
            .collect();
        match evidence.first() {
            Some(first) => Check::new(
                id,
                Impact::Blocker,
                Outcome::Fail,
                format!("{first}: its changes are being made now and cannot be undone"),
            )
            .with(evidence),
            None => Check::new(
                id,
                Impact::Blocker,
                Outcome::Pass,
                format!(
                    "no worker runs a BullMQ job of a migration after v{} (Redis read)",
                    self.known
                ),
            ),
        }
    }

    fn cancelled(&self) -> Option<Check> {
        if !self.activity_visible {
            return None;
        }
        let evidence: Vec<String> = self
            .runs()
            .filter(|(m, run)| {
                run.facts.job_status.as_deref() == Some("cancelled") && !Self::run_started(m, run)
            })
            .map(|(m, run)| self.describe(m.version, run))
            .collect();
        (!evidence.is_empty()).then(|| {
            Check::new(
                "post-deploy-cancelled",
                Impact::Info,
                Outcome::Pass,
                format!(
                    "{} cancelled {} of newer migrations never ran (no progress recorded, no \
                     session ran their work)",
                    evidence.len(),
                    if evidence.len() == 1 { "job" } else { "jobs" }
                ),
            )
            .with(evidence)
        })
    }
}

/// The catalogue checks, and, when the schema was compared, the newer migrations the
/// catalogue knows nothing of.
struct CatalogueChecks {
    checks: Vec<Check>,
    compared: Option<Vec<u32>>,
}

/// Whether a job recorded work: `active`, `completed`, `error`, or `accepted` or `cancelled`
/// with progress (reindex migrations stay `accepted` while they work; a reindex cancelled
/// after progress was partly done).
fn run_started(run: &JobRun) -> bool {
    match run.facts.job_status.as_deref() {
        Some("active" | "completed" | "error") => true,
        Some("accepted" | "cancelled") => {
            run.facts.started_at.is_some()
                || run
                    .facts
                    .progress
                    .as_deref()
                    .is_some_and(|p| !p.starts_with("skipped"))
        }
        _ => false,
    }
}

fn post_deploy_applied(
    snapshot: &Snapshot,
    status: &StatusReport,
    manifest: &Manifest,
    known: u32,
    to: &Version,
) -> Check {
    let id = "post-deploy-applied";
    if snapshot.database_migration.is_empty() {
        return Check::new(id, Impact::Blocker, Outcome::Unknown,
            "\"DatabaseMigration\" could not be read, so medmig cannot tell which post-deploy migrations are applied");
    }
    if let Some(odd) = status.findings.iter().find(|f| f.id == "odd-data-version") {
        return Check::new(
            id,
            Impact::Blocker,
            Outcome::Unknown,
            "\"dataVersion\" holds a number no post-deploy migration has, so medmig cannot tell \
             which are applied: the jobs, and whoever set it, can",
        )
        .with(vec![odd.message.clone()]);
    }
    let data_version = status.post_deploy.data_version.unwrap_or(0);
    if data_version > i64::from(known) {
        let first = known + 1;
        let introduced = manifest
            .get(first)
            .map(|e| format!(" (introduced in {})", e.server_version))
            .unwrap_or_default();
        Check::new(
            id,
            Impact::Blocker,
            Outcome::Fail,
            format!(
                "dataVersion is {data_version}: post-deploy migrations v{first}{introduced} to \
                 v{data_version} are applied, and {to} knows only up to v{known}"
            ),
        )
        .with(vec![format!(
            "\"DatabaseMigration\".\"dataVersion\" = {data_version}"
        )])
    } else {
        Check::new(
            id,
            Impact::Blocker,
            Outcome::Pass,
            format!("dataVersion is {data_version}, within what {to} knows (v{known})"),
        )
    }
}

fn migration_in_progress(snapshot: &Snapshot, status: &StatusOptions) -> Check {
    let id = "migration-in-progress";
    let Some(activity) = &snapshot.activity else {
        return Check::new(id, Impact::Blocker, Outcome::Unknown,
            "this snapshot does not record database activity (taken by an older medmig): take it again");
    };
    let mut evidence: Vec<String> = activity
        .sessions
        .iter()
        .filter(|s| is_migrating(s, status))
        .map(|s| {
            let who = s
                .application_name
                .as_deref()
                .filter(|a| !a.is_empty())
                .unwrap_or("unnamed");
            let what = if s.holds_migration_lock {
                "holds Medplum's migration lock (advisory lock 1)".to_string()
            } else if !s.ddl() {
                format!(
                    "has run `{}` for longer than the server's statement limit ({}), as only \
                     a migration client does",
                    crate::text::shorten(s.query.as_deref().unwrap_or(""), 120),
                    crate::text::elapsed(status.statement_limit.num_seconds() as f64)
                )
            } else {
                format!(
                    "runs `{}`",
                    crate::text::shorten(s.query.as_deref().unwrap_or(""), 120)
                )
            };
            let since = s
                .query_start
                .map(|t| format!(" since {}", minute(&t)))
                .unwrap_or_default();
            format!("session {} ({who}) {what}{since}", s.pid)
        })
        .collect();
    let hidden = (activity.hidden_sessions > 0).then(|| {
        let n = activity.hidden_sessions;
        format!(
            "{} {} hidden from this role (grant pg_read_all_stats to see them); the migration lock is visible regardless",
            crate::text::count(n, "other session's statement", "other sessions' statements"),
            crate::text::plural(n, "is", "are")
        )
    });
    if let Some(first) = evidence.first().cloned() {
        evidence.extend(hidden);
        return Check::new(
            id,
            Impact::Blocker,
            Outcome::Fail,
            format!("a migration is running right now: {first}"),
        )
        .with(evidence);
    }
    Check::new(
        id,
        Impact::Blocker,
        Outcome::Pass,
        "no session holds the migration lock, runs migration DDL or a write longer than the \
         server's statement limit",
    )
    .with(hidden.into_iter().collect())
}

fn not_previous_minor(
    manifest: &Manifest,
    to: &Version,
    from: Option<&Version>,
    inferred_by: Option<&str>,
) -> Check {
    let id = "not-previous-minor";
    let to_minor = (to.major, to.minor);
    let Some(from) = from else {
        return Check::new(
            id,
            Impact::Blocker,
            Outcome::Unknown,
            "the deployed release could not be inferred: pass --from with the release deployed now",
        );
    };
    let previous = manifest.previous_minor(from);
    let shown = |(major, minor): (u64, u64)| format!("{major}.{minor}");
    if let Some(how) = inferred_by {
        // The evidence gives a lower bound only; it can prove a skip, never the absence of one.
        if previous.is_some_and(|p| to_minor < p) {
            return Check::new(
                id,
                Impact::Blocker,
                Outcome::Fail,
                format!(
                "the deployed release is {how}, so going back to {to} skips at least minor {}: \
                 only the previous minor is a supported rollback",
                shown(previous.unwrap_or_default())
            ),
            );
        }
        return Check::new(
            id,
            Impact::Blocker,
            Outcome::Unknown,
            format!(
                "the deployed release is {how}; medmig cannot tell it exactly, so it cannot tell \
             whether {to} is the previous minor: pass --from with the release deployed now"
            ),
        );
    }
    if to >= from {
        return Check::new(id, Impact::Blocker, Outcome::Fail,
            format!("{to} is not older than the deployed {from}: this is no rollback (use upgrade-plan)"));
    }
    match previous {
        None => Check::new(id, Impact::Blocker, Outcome::Unknown,
            format!("the manifest does not say which minor came before {from}: pass a newer --manifest")),
        Some(previous) if previous == to_minor => Check::new(id, Impact::Blocker, Outcome::Pass,
            format!("{to} is in {}, the minor before the deployed {from}", shown(previous))),
        Some(previous) if to_minor == (from.major, from.minor) => Check::new(id, Impact::Blocker, Outcome::Fail,
            format!("{to} is in the deployed minor {}: the supported rollback goes to the latest patch of {}", shown(to_minor), shown(previous))),
        Some(previous) => Check::new(id, Impact::Blocker, Outcome::Fail,
            format!("{to} skips minor {} below the deployed {from}: only the previous minor is a supported rollback", shown(previous))),
    }
}

fn not_latest_patch(manifest: &Manifest, to: &Version) -> Check {
    let id = "not-latest-patch";
    match manifest.newest_patch(to.major, to.minor) {
        Some(newest) if to < newest => Check::new(id, Impact::Warning, Outcome::Fail, format!(
            "{to} is older than {newest}, the newest patch of {}.{} medmig knows: roll back to the latest patch",
            to.major, to.minor
        )),
        Some(newest) => Check::new(id, Impact::Warning, Outcome::Pass,
            format!("{to} is at least {newest}, the newest patch of {}.{} medmig knows", to.major, to.minor)),
        None => Check::new(id, Impact::Warning, Outcome::Skipped,
            format!("the manifest names no release of {}.{}", to.major, to.minor)),
    }
}

fn schema_checks(
    snapshot: &Snapshot,
    baseline: Option<&SchemaContract>,
    catalogue_compared: Option<Vec<u32>>,
) -> Vec<Check> {
    let id = "schema-not-compared";
    let Some(baseline) = baseline else {
        let capture = "capture a baseline with `medmig schema capture` before the next upgrade \
                       for the full diff";
        return vec![match catalogue_compared {
            None => Check::new(
                id,
                Impact::Warning,
                Outcome::Fail,
                format!(
                    "no --baseline, and the schema could not be compared with the migration \
                     catalogue: the verdict rests on the migration evidence alone ({capture})"
                ),
            ),
            Some(uncatalogued) if !uncatalogued.is_empty() => Check::new(
                id,
                Impact::Warning,
                Outcome::Fail,
                format!(
                    "no --baseline, and the migration catalogue does not say what {} to \
                     the schema: for {}, the verdict rests on the migration evidence alone \
                     ({capture})",
                    uncatalogued
                        .iter()
                        .map(|v| format!("v{v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if uncatalogued.len() == 1 {
                        "it"
                    } else {
                        "them"
                    }
                ),
            ),
            Some(_) => Check::new(
                id,
                Impact::Warning,
                Outcome::Pass,
                format!(
                    "no --baseline: the schema was compared with the migration catalogue, which \
                     covers every migration the target does not know ({capture})"
                ),
            ),
        }];
    };
    let Some(current) = &snapshot.schema else {
        return vec![Check::new("schema-not-compared", Impact::Warning, Outcome::Unknown,
            "this snapshot carries no schema (taken by an older medmig): take it again to compare with --baseline")];
    };
    let differences = diff(baseline, current);
    DIFFERENCE_IDS
        .iter()
        .filter_map(|(id, impact)| {
            let evidence: Vec<String> = differences
                .iter()
                .filter(|d| d.id == *id)
                .map(|d| d.message.clone())
                .collect();
            match (impact, evidence.first()) {
                (Impact::Info, None) => None,
                (Impact::Info, Some(_)) => Some(
                    Check::new(
                        id,
                        *impact,
                        Outcome::Pass,
                        format!(
                            "{} additive {} the older code tolerates",
                            evidence.len(),
                            id
                        ),
                    )
                    .with(evidence),
                ),
                (_, Some(first)) => {
                    Some(Check::new(id, *impact, Outcome::Fail, first.clone()).with(evidence))
                }
                (_, None) => Some(Check::new(
                    id,
                    *impact,
                    Outcome::Pass,
                    format!("no {id} since the baseline"),
                )),
            }
        })
        .collect()
}

fn invalid_index(snapshot: &Snapshot) -> Check {
    let evidence: Vec<String> = snapshot
        .invalid_indexes
        .iter()
        .map(|i| format!("{} on {}: {}", i.index, i.table, i.definition))
        .collect();
    match evidence.len() {
        0 => Check::new(
            "invalid-index",
            Impact::Warning,
            Outcome::Pass,
            "no invalid index",
        ),
        n => Check::new(
            "invalid-index",
            Impact::Warning,
            Outcome::Fail,
            format!(
                "{n} invalid {}: an interrupted CREATE INDEX CONCURRENTLY left them",
                if n == 1 { "index" } else { "indexes" }
            ),
        )
        .with(evidence),
    }
}

/// The server config's deferral switches, evaluated as the server does (the rules live in
/// `DeferSettings`, after `packages/server/src/migrations/migration-utils.ts`).
fn config_checks(config: Option<&DeferSettings>) -> Vec<Check> {
    use crate::medplum::config::DeferKey;

    const IDS: [&str; 3] = [
        "post-deploy-auto-run",
        "defer-key-not-read",
        "run-migrations-false",
    ];
    let Some(config) = config else {
        return IDS
            .into_iter()
            .map(|id| {
                Check::new(
                    id,
                    Impact::Warning,
                    Outcome::Skipped,
                    "no --medplum-config: how the server runs post-deploy migrations is not known",
                )
            })
            .collect();
    };
    // Each check shows the switches it is about.
    let evidence = [
        config.evidence(),
        config.evidence_about(&[DeferKey::DisableRun, DeferKey::Documented]),
        config.evidence_about(&[DeferKey::RunMigrations]),
    ];
    if let Some(gap) = config.gap() {
        return IDS
            .into_iter()
            .zip(evidence)
            .map(|(id, evidence)| {
                Check::new(id, Impact::Warning, Outcome::Skipped, gap.clone()).with(evidence)
            })
            .collect();
    }
    let auto_run = if config.key_read_defers() {
        Check::new(
            "post-deploy-auto-run",
            Impact::Warning,
            Outcome::Pass,
            "the config defers post-deploy migrations (database.disableRunPostDeployMigrations): \
             the rollback window stays open until someone starts them",
        )
    } else if config.defers() {
        Check::new(
            "post-deploy-auto-run",
            Impact::Warning,
            Outcome::Pass,
            "the config defers post-deploy migrations, but only by database.runMigrations: false, \
             which is not a safe deferral (see run-migrations-false)",
        )
    } else {
        Check::new("post-deploy-auto-run", Impact::Warning, Outcome::Fail,
            "nothing the server reads in this config defers post-deploy migrations: they start by \
             themselves and can close the rollback window at any moment (set database.disableRunPostDeployMigrations: true)")
    };
    let not_read = if config.relies_on_documented_key() {
        Check::new(
            "defer-key-not-read",
            Impact::Warning,
            Outcome::Fail,
            "the documented disablePostDeployMigrations asks for deferral, but no server code \
             reads it; the server reads database.disableRunPostDeployMigrations: set that too",
        )
    } else {
        Check::new(
            "defer-key-not-read",
            Impact::Warning,
            Outcome::Pass,
            "the config does not rely on the key the server ignores",
        )
    };
    let run_migrations = if config.run_migrations_off() {
        Check::new(
            "run-migrations-false",
            Impact::Warning,
            Outcome::Fail,
            "database.runMigrations is false, which is not a safe deferral: the server also skips \
             the pre-deploy migrations and the startup gate, and POST /admin/super/migrate answers \
             400 \"Cannot run post-deploy migration since pre-deploy migrations are disabled\" \
             until it is flipped back; defer with database.disableRunPostDeployMigrations: true",
        )
    } else {
        Check::new(
            "run-migrations-false",
            Impact::Warning,
            Outcome::Pass,
            "database.runMigrations is not false: pre-deploy migrations and the startup gate run",
        )
    };
    let [auto_run_evidence, not_read_evidence, run_migrations_evidence] = evidence;
    vec![
        auto_run.with(auto_run_evidence),
        not_read.with(not_read_evidence),
        run_migrations.with(run_migrations_evidence),
    ]
}

fn minute(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_documents_every_check_and_difference() {
        let readme = include_str!("../../README.md");
        for (id, _) in CHECK_IDS.iter().chain(DIFFERENCE_IDS.iter()) {
            assert!(readme.contains(&format!("`{id}`")), "README lacks `{id}`");
        }
    }

    #[test]
    fn ignore_accepts_exactly_the_known_ids() {
        assert!(is_check_id("post-deploy-started"));
        assert!(is_check_id("column-dropped"));
        assert!(!is_check_id("post-deploy"));
    }
}
