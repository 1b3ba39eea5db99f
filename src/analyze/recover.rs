//! What to do next: for everything abnormal that the status analysis finds, ordered steps
//! with the evidence behind each, its risk, the exact commands, and how to check it worked
//! (`medmig recover`). Nothing here writes to the database; the steps are for a person.
//!
//! The order is the safe one: escalate when the evidence contradicts itself; then stop things
//! getting worse (defer automatic runs, cancel duplicate jobs); then deal with stale jobs;
//! drop invalid indexes before re-running the migration that rebuilds them; re-run failures;
//! and finally deploy what the startup gate asks for. Step ids are listed in the README.

use semver::Version;
use serde::Serialize;

use super::migrations::infer_from;
use super::migrations::{
    JobRun, MigrationState, MigrationStatus, StatusReport, ODD_NUMBER_FINDINGS,
    UNPLACED_JOB_FINDINGS,
};
use super::upgrade::{latent_refusal, migration_row, plan, version_ranges};
use crate::medplum::config::DeferSettings;
use crate::medplum::gate::{predict, required_but_not_run, GatePrediction, GateSettings};
use crate::medplum::manifest::Manifest;
use crate::snapshot::Snapshot;

/// Every step id, in the order steps are given.
pub const STEP_IDS: [&str; 8] = [
    "collect-and-escalate",
    "defer-post-deploy",
    "cancel-duplicate-job",
    "investigate-stale-job",
    "drop-invalid-index",
    "rerun-failed-migration",
    "deploy-required-release",
    "nothing-to-recover",
];

/// How much a step can hurt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Position in the plan, from 1.
    pub step: usize,
    pub id: &'static str,
    pub title: String,
    /// What in the evidence called for it.
    pub evidence: Vec<String>,
    pub risk: Risk,
    /// Why the risk is what it is, and what else to know.
    pub explanation: String,
    /// Commands to run, ready to paste (`$MEDPLUM_BASE_URL` and `$MEDPLUM_TOKEN` to set).
    pub commands: Vec<String>,
    /// How to see that it worked.
    pub check: String,
}

/// What `recover` knows beyond the snapshot.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// The release being deployed, when the server refuses to start.
    pub deploying: Option<Version>,
    /// The config's deferral switches, with `--medplum-config`.
    pub config: Option<DeferSettings>,
    /// How the server that would start runs (strict version checks, `runMigrations`).
    pub gate: GateSettings,
}

/// The ordered steps for what `status` found.
pub fn recover(
    snapshot: &Snapshot,
    status: &StatusReport,
    manifest: &Manifest,
    options: &RecoverOptions,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let by_state =
        |state: MigrationState| status.migrations.iter().filter(move |m| m.state == state);

    let inconsistent: Vec<&MigrationStatus> = by_state(MigrationState::Inconsistent).collect();
    let in_progress = jobs_in_progress(status);
    let contradictions: Vec<String> = inconsistent
        .iter()
        .map(|m| format!("v{}: {}", m.version, m.detail.as_deref().unwrap_or("")))
        .chain(
            status
                .findings
                .iter()
                .filter(|f| {
                    UNPLACED_JOB_FINDINGS.contains(&f.id) || ODD_NUMBER_FINDINGS.contains(&f.id)
                })
                .map(|f| f.message.clone()),
        )
        .collect();
    if !contradictions.is_empty() {
        steps.push(Step {
            step: 0,
            id: "collect-and-escalate",
            title: "Collect a support bundle and escalate; do not guess".into(),
            evidence: contradictions,
            risk: Risk::Low,
            explanation: "The database contradicts itself; acting on a guess (setdataversion, \
                          deleting jobs) can turn a recoverable state into one that is not. A \
                          bundle has everything support needs."
                .into(),
            commands: vec![
                "medmig bundle --out medplum-support.tar.gz --database-url \"$DATABASE_URL\" --logs /var/log/medplum --since 72h".into(),
            ],
            check: "`medmig bundle verify medplum-support.tar.gz` says it is intact; attach it to the ticket".into(),
        });
    }

    let next_unstarted = status
        .migrations
        .iter()
        .find(|m| matches!(m.state, MigrationState::Pending | MigrationState::Accepted));
    if let Some(pending) = next_unstarted {
        // As the server evaluates the config (DeferSettings, after
        // packages/server/src/migrations/migration-utils.ts); unknown while a source is unread.
        let config = options.config.as_ref();
        let known = config.filter(|c| c.all_sources_read());
        let defers = known.map(|c| c.defers());
        let run_migrations_off = known.is_some_and(|c| c.run_migrations_off());
        if defers != Some(true) || run_migrations_off {
            let mut evidence = vec![if pending.state == MigrationState::Accepted {
                format!(
                    "v{} is accepted with no evidence of work: if it is still queued, the \
                     rollback window is still open",
                    pending.version
                )
            } else {
                format!(
                    "v{} is {} and has not started: the rollback window is still open",
                    pending.version,
                    pending.state.as_str()
                )
            }];
            match (config, known) {
                (Some(config), None) => evidence.extend(config.gap()),
                (Some(config), Some(_)) if run_migrations_off => evidence.push(format!(
                    "the config has database.runMigrations: false{}: the server skips the \
                     pre-deploy migrations and the startup gate, and POST /admin/super/migrate \
                     answers 400 \"Cannot run post-deploy migration since pre-deploy migrations \
                     are disabled\", so deferred migrations cannot be started until it is \
                     flipped back",
                    if config.key_read_defers() {
                        ""
                    } else {
                        ", which is what defers them now"
                    }
                )),
                (Some(config), Some(_)) if config.relies_on_documented_key() => evidence.push(
                    "the config sets only disablePostDeployMigrations, which the server code does not read".into(),
                ),
                (Some(_), Some(_)) => evidence.push("the config does not defer post-deploy migrations".into()),
                (None, _) => evidence.push("no --medplum-config given: whether automatic runs are deferred is unknown".into()),
            }
            if let Some(config) = config {
                use crate::medplum::config::DeferKey;
                evidence.extend(config.values());
                // The cost of runMigrations: false is said above, in full.
                evidence.extend(
                    DeferKey::ALL
                        .into_iter()
                        .filter(|key| !(run_migrations_off && *key == DeferKey::RunMigrations))
                        .filter_map(|key| config.note(key)),
                );
                evidence.push(config.sources());
            }
            let mut commands = vec![
                "# medplum.config.json: \"database\": {\"disableRunPostDeployMigrations\": true} (the key the server reads; the documented top-level \"disablePostDeployMigrations\" may be set too, but no server code reads it)".into(),
                "# environment, read only when the server's config name includes env (e.g. file:medplum.config.json,env): MEDPLUM_DATABASE_DISABLE_RUN_POST_DEPLOY_MIGRATIONS=true".into(),
            ];
            if run_migrations_off {
                let from = config.and_then(|c| c.set_by.get("database.runMigrations"));
                commands.push(match from.map(String::as_str) {
                    Some("env") => "# and unset MEDPLUM_DATABASE_RUN_MIGRATIONS (it makes database.runMigrations false)".to_string(),
                    Some(source) => format!("# and remove \"runMigrations\": false from \"database\" in {source}"),
                    None => "# and remove \"runMigrations\": false from \"database\"".to_string(),
                });
            }
            steps.push(Step {
                step: 0,
                id: "defer-post-deploy",
                title: if run_migrations_off {
                    "Defer automatic post-deploy runs with the key the server reads, not runMigrations: false".into()
                } else {
                    "Defer automatic post-deploy runs while a rollback may still be needed".into()
                },
                evidence,
                risk: Risk::Low,
                explanation: "Once a post-deploy migration starts, even partially, the rollback \
                              window closes. The server reads database.disableRunPostDeployMigrations \
                              (any JavaScript-truthy value defers, even the string \"false\"). Do not \
                              defer with database.runMigrations: false: it also skips the pre-deploy \
                              migrations and the startup gate, and blocks starting the deferred \
                              migrations by hand. Deferred migrations are then started by hand."
                    .into(),
                commands,
                check: "after a restart, the server logs \"Not auto-queueing pending post-deploy migration because auto-run is disabled\"; `medmig rollback-check --medplum-config …` passes post-deploy-auto-run and run-migrations-false".into(),
            });
        }
    }

    if in_progress.len() > 1 {
        steps.push(cancel_duplicates(status, &in_progress));
    }

    for m in by_state(MigrationState::Stale) {
        let job = m.current.job_id.as_deref().unwrap_or("?");
        let status_text = m.current.job_status.as_deref().unwrap_or("?");
        let reindex = is_reindex(m);
        let mut evidence = vec![m.detail.clone().unwrap_or_default()];
        if let Some(activity) = &snapshot.activity {
            evidence.extend(activity.sessions.iter().map(|s| {
                format!(
                    "session {} ({}) was {}",
                    s.pid,
                    s.application_name.as_deref().unwrap_or(""),
                    s.query.as_deref().map_or(
                        "holding the migration lock".to_string(),
                        |q| format!("running `{}`", crate::text::shorten(q, 80))
                    )
                )
            }));
        }
        let mut commands = vec![
            "# the worker's logs: look for \"PostDeployMigrationQueue worker\" and \"Post-deploy migration\" lines about this job".into(),
            "# pg_stat_activity: SELECT pid, state, query_start, left(query, 120) FROM pg_stat_activity WHERE application_name = 'medplum-server' AND state <> 'idle' ORDER BY query_start;".into(),
        ];
        if status_text == "accepted" {
            commands.push(cancel_command(job));
        }
        commands.push(rerun_command(m.version));
        let cancel_note = match (status_text, reindex) {
            ("accepted", true) => "It is a reindex: a cancel takes effect at its next progress write, so it is safe to cancel before re-running.",
            ("accepted", false) => "Cancel it only once the logs (or Redis's PostDeployMigrationQueue) confirm nothing runs it: $cancel does not stop a running custom migration, which would finish, overwrite the job as completed and raise dataVersion.",
            _ => "The job is active (written by an older server) and cannot be cancelled: re-running queues the same migration again once the worker is healthy.",
        };
        steps.push(Step {
            step: 0,
            id: "investigate-stale-job",
            title: format!(
                "Find out whether v{} is slow, delayed or dead, then restart it",
                m.version
            ),
            evidence,
            risk: Risk::Medium,
            explanation: format!(
                "No session ran its work when medmig read, and its job has not changed for \
                 longer than the stale limit. A custom migration writes nothing to its job while \
                 it runs, so the worker's logs (or Redis) tell a slow run from a dead worker or a \
                 job delayed because an older server is still registered. {cancel_note}"
            ),
            commands,
            check: format!(
                "`medmig status` shows v{} running, then completed",
                m.version
            ),
        });
    }

    let failed: Vec<&MigrationStatus> = by_state(MigrationState::Failed).collect();
    let rerun_after_index = failed
        .first()
        .map(|m| m.version)
        .or(next_unstarted.map(|m| m.version));
    for status_of in &status.invalid_indexes {
        let index = &status_of.found;
        // The catalogue names the migration that creates it; failing that, the one that failed
        // or runs next is the likely one.
        let (rerun, evidence) = match status_of.created_by {
            Some(v) => (
                Some(v),
                format!(
                    "{} on {}: {}; post-deploy migration v{v} creates it",
                    index.index, index.table, index.definition
                ),
            ),
            None => (
                rerun_after_index,
                format!("{} on {}: {}", index.index, index.table, index.definition),
            ),
        };
        steps.push(Step {
            step: 0,
            id: "drop-invalid-index",
            title: match status_of.created_by {
                Some(v) => format!("Drop the invalid index {} left by v{v}", index.index),
                None => format!("Drop the invalid index {}", index.index),
            },
            evidence: vec![evidence],
            risk: Risk::Low,
            explanation: format!(
                "An interrupted CREATE INDEX CONCURRENTLY leaves it invalid: unused by queries, \
                 still updated by every write. The migration creates it with IF NOT EXISTS, so it \
                 would skip the broken one: drop it first, then re-run {}.",
                rerun.map_or("the migration that creates it".to_string(), |v| format!(
                    "v{v}"
                ))
            ),
            commands: vec![format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}.{};",
                quote_identifier(&index.schema),
                quote_identifier(&index.index)
            )],
            check: "`medmig status` lists no invalid index".into(),
        });
    }

    for m in &failed {
        let error = m
            .current
            .error
            .as_deref()
            .unwrap_or("no error message recorded");
        let (class, causes) = error_class(error);
        steps.push(Step {
            step: 0,
            id: "rerun-failed-migration",
            title: format!("Re-run v{} after fixing what made it fail", m.version),
            evidence: vec![format!(
                "job {} failed: {error}",
                m.current.job_id.as_deref().unwrap_or("?")
            ), format!("{} attempt{} so far", m.attempts, if m.attempts == 1 { "" } else { "s" })],
            risk: Risk::Medium,
            explanation: format!("This looks like a {class}. Usual causes: {causes}"),
            commands: vec![rerun_command(m.version)],
            check: format!(
                "`medmig status` shows a new job for v{} running, then completed; dataVersion becomes {}",
                m.version, m.version
            ),
        });
    }

    if let Some(deploying) = &options.deploying {
        if let Some(step) = deploy_required_release(status, manifest, deploying, options.gate) {
            steps.push(step);
        }
    }

    if steps.is_empty() {
        steps.push(Step {
            step: 0,
            id: "nothing-to-recover",
            title: "Nothing to recover".into(),
            evidence: vec![format!(
                "every post-deploy migration is completed, queued, running, pending or waiting; dataVersion {}",
                status.post_deploy.data_version.map_or("unknown".into(), |v| v.to_string())
            )],
            risk: Risk::Low,
            explanation: "No failed, stale or inconsistent migration, no duplicate job, no invalid index.".into(),
            commands: Vec::new(),
            check: "`medmig status --fail-on failed,stale,inconsistent` exits 0".into(),
        });
    }
    steps.sort_by_key(|s| STEP_IDS.iter().position(|id| *id == s.id));
    for (i, step) in steps.iter_mut().enumerate() {
        step.step = i + 1;
    }
    steps
}

/// With `--deploying`: when that release's startup gate would refuse now, or would let it
/// start but refuse a later restart, the releases to deploy first and what each must run —
/// the hops of the upgrade plan, so that every hop knows the migrations it is asked to run.
fn deploy_required_release(
    status: &StatusReport,
    manifest: &Manifest,
    deploying: &Version,
    gate: GateSettings,
) -> Option<Step> {
    let row = migration_row(status);
    let data_version = status.post_deploy.data_version.unwrap_or(0);
    let (evidence, refused) = match predict(manifest, deploying, row, gate) {
        GatePrediction::Refuses { message, .. } => (message, true),
        GatePrediction::Starts { .. } => {
            let latent = required_but_not_run(manifest, deploying, data_version);
            if latent.is_empty() {
                return None;
            }
            (latent_refusal(deploying, data_version, &latent), false)
        }
        GatePrediction::NotChecked { .. } => return None,
    };
    let (from, inferred) = infer_from(status, manifest);
    let from = from.unwrap_or_else(|| Version::new(0, 0, 0));
    let path = plan(
        status,
        manifest,
        None,
        &from,
        inferred.clone(),
        deploying,
        gate,
    )
    .ok()?;
    let before_target: Vec<String> = path
        .hops
        .iter()
        .zip(path.hops.iter().skip(1))
        .filter(|(_, next)| !next.complete_before.is_empty())
        .map(|(hop, next)| {
            format!(
                "deploy {} and let {} complete",
                hop.pick,
                version_ranges(&next.complete_before)
            )
        })
        .collect();
    let needed: Vec<u32> = path
        .hops
        .iter()
        .flat_map(|h| h.complete_before.iter().copied())
        .collect();
    let title = match before_target.first() {
        Some(first) => {
            let mut first = first.clone();
            if let Some(c) = first.get_mut(0..1) {
                c.make_ascii_uppercase();
            }
            first
        }
        None => format!(
            "Let {} complete before deploying {deploying}",
            version_ranges(&needed)
        ),
    };
    let mut explanation = if refused {
        format!(
            "{deploying} refuses to start while the pending post-deploy migration it requires \
             has not run: minors were skipped, or the previous minor's migrations never ran. "
        )
    } else {
        format!(
            "{deploying} would start, then run the migrations it requires in the background; \
             but the gate checks the pending migration at every start, so a restart (a crash, \
             a scale-out, a config change) is refused until they have run. "
        )
    };
    explanation.push_str(&format!(
        "Minors are deployed in sequence: {}, then deploy {deploying}. Each release listed knows \
         the migrations it is asked to run; deploy its latest patch. {}. `medmig upgrade-plan \
         --to {deploying}` has every hop.",
        if before_target.is_empty() {
            format!("let {} complete", version_ranges(&needed))
        } else {
            before_target.join("; then ")
        },
        gate.describe()
    ));
    if let Some(how) = inferred {
        explanation.push_str(&format!(" The deployed release is {how}."));
    }
    Some(Step {
        step: 0,
        id: "deploy-required-release",
        title,
        evidence: vec![evidence],
        risk: Risk::Low,
        explanation,
        commands: needed
            .first()
            .map(|v| rerun_command(*v))
            .into_iter()
            .collect(),
        check: format!(
            "`medmig status` shows {} completed; `medmig upgrade-plan --to {deploying}` then \
             predicts that it starts",
            version_ranges(&needed)
        ),
    })
}

/// Every system post-deploy job the server counts as in progress (`accepted` or `active`,
/// any migration), with its migration, oldest request first.
fn jobs_in_progress(status: &StatusReport) -> Vec<(&MigrationStatus, &JobRun)> {
    let mut jobs: Vec<(&MigrationStatus, &JobRun)> = status
        .migrations
        .iter()
        .flat_map(|m| m.runs.iter().map(move |r| (m, r)))
        .filter(|(_, r)| matches!(r.facts.job_status.as_deref(), Some("accepted" | "active")))
        .collect();
    jobs.sort_by_key(|(_, r)| r.facts.requested_at);
    jobs
}

/// Whether the migration is a reindex, as far as its output shows.
fn is_reindex(m: &MigrationStatus) -> bool {
    m.current
        .progress
        .as_deref()
        .is_some_and(|p| p.starts_with("reindex"))
}

/// The server refuses to queue while two or more system jobs are in progress
/// (`preparePostDeployMigrationAsyncJob`): keep the one for the next migration and cancel the
/// rest — where a cancel takes effect.
fn cancel_duplicates(status: &StatusReport, jobs: &[(&MigrationStatus, &JobRun)]) -> Step {
    let pending = status.post_deploy.pending;
    let keep = jobs
        .iter()
        .rev()
        .find(|(m, _)| Some(m.version) == pending)
        .or(jobs.last())
        .map(|(_, r)| r.facts.job_id.clone().unwrap_or_default());
    let mut commands = Vec::new();
    let mut notes = Vec::new();
    for (m, run) in jobs {
        let id = run.facts.job_id.clone().unwrap_or_default();
        if Some(&id) == keep.as_ref() {
            continue;
        }
        let working = run.current && !m.work_evidence.is_empty();
        match run.facts.job_status.as_deref() {
            Some("accepted") if working => notes.push(format!(
                "job {id} (v{}) is being worked on by a session: $cancel would not stop it; let it end",
                m.version
            )),
            Some("accepted") => commands.push(cancel_command(&id)),
            _ => notes.push(format!(
                "job {id} (v{}) is active, written by an older server: $cancel refuses it (\"AsyncJob \
                 cannot be cancelled if status is not 'accepted'\"); it needs support",
                m.version
            )),
        }
    }
    Step {
        step: 0,
        id: "cancel-duplicate-job",
        title: format!(
            "Leave one post-deploy job in progress: keep {}, cancel the others",
            keep.as_deref().unwrap_or("the newest")
        ),
        evidence: status
            .findings
            .iter()
            .filter(|f| f.id == "several-jobs-in-progress")
            .map(|f| f.message.clone())
            .chain(notes)
            .collect(),
        risk: Risk::Low,
        explanation: "The server refuses to queue a post-deploy migration while two or more \
                      system data-migration jobs are accepted or active, of any migration, and a \
                      server that auto-runs them fails to start. Keep the job of the next \
                      migration; cancel the others that nothing runs (an accepted job a worker \
                      has not picked up has done no work)."
            .into(),
        commands,
        check: "`medmig status` no longer reports several-jobs-in-progress".into(),
    }
}

/// `POST /admin/super/migrate` for one migration, ready to paste.
fn rerun_command(version: u32) -> String {
    format!(
        "curl -X POST \"$MEDPLUM_BASE_URL/admin/super/migrate\" -H \"Authorization: Bearer $MEDPLUM_TOKEN\" \
         -H \"Content-Type: application/json\" -H \"Prefer: respond-async\" -d '{{\"dataVersion\": {version}}}'"
    )
}

/// `$cancel` of an accepted job, ready to paste.
fn cancel_command(job: &str) -> String {
    format!(
        "curl -X POST \"$MEDPLUM_BASE_URL/fhir/R4/AsyncJob/{job}/\\$cancel\" -H \"Authorization: Bearer $MEDPLUM_TOKEN\""
    )
}

/// `"Name"` unless it is a plain lower-case identifier. A snapshot does not carry the server's
/// keywords, so a keyword that needs quoting is not recognised here.
fn quote_identifier(name: &str) -> String {
    crate::catalog::quote_identifier(name, |_| false)
}

/// A class of failure medmig recognises in a job's error text.
pub struct ErrorClass {
    /// Phrases of PostgreSQL's (and Node's) messages, lower case: the class is the error's
    /// when one appears in it. Redaction never replaces a keyword inside one (see
    /// `bundle/redact.rs`), so a redacted bundle is classified as the database was.
    pub phrases: &'static [&'static str],
    /// The class, as `recover` names it.
    pub name: &'static str,
    /// Its usual causes and what to do.
    pub causes: &'static str,
}

/// The classes [`error_class`] tries, in this order: the first with a phrase in the error
/// decides.
pub const ERROR_CLASSES: [ErrorClass; 7] = [
    ErrorClass {
        phrases: &["statement timeout"],
        name: "statement timeout",
        causes: "a statement ran longer than statement_timeout (the server's, the role's or the database's): a large table, missing indexes, or a busy database. Raise the timeout for the migration's role or run it in a quiet hour",
    },
    ErrorClass {
        phrases: &["lock timeout", "could not obtain lock"],
        name: "lock timeout",
        causes: "another session held a lock on the table (long transactions, another migration, a manual job). Find it with pg_stat_activity and pg_blocking_pids, end it or wait, then re-run",
    },
    ErrorClass {
        phrases: &["duplicate key", "unique constraint"],
        name: "unique violation",
        causes: "rows that break a new unique index or constraint. Find the duplicates with the constraint's columns, resolve them with care (they may be patient data), then re-run",
    },
    ErrorClass {
        phrases: &["permission denied", "must be owner"],
        name: "permission problem",
        causes: "the server's database role lacks a privilege the migration needs (often ownership of the table, or CREATE on the schema). Grant it, then re-run",
    },
    ErrorClass {
        phrases: &["no space left", "could not extend file", "disk full"],
        name: "full disk",
        causes: "the database ran out of disk, often while building an index. Free or add space, drop any invalid index left behind, then re-run",
    },
    ErrorClass {
        phrases: &["deadlock"],
        name: "deadlock",
        causes: "the migration and application traffic locked the same rows in opposite order. Usually safe to re-run, ideally at a quiet hour",
    },
    ErrorClass {
        phrases: &[
            "terminating connection",
            "connection terminated",
            "administrator command",
        ],
        name: "lost connection",
        causes: "the database connection was cut (a restart, a failover, pg_terminate_backend). Re-run once the database is stable",
    },
];

/// The class of a failure and its usual causes, from the error text.
pub fn error_class(error: &str) -> (&'static str, &'static str) {
    let lower = error.to_lowercase();
    ERROR_CLASSES
        .iter()
        .find(|class| class.phrases.iter().any(|phrase| lower.contains(phrase)))
        .map_or(
            ("failure medmig does not recognise", "read the full error and the server logs around the job's time (a bundle collects both)"),
            |class| (class.name, class.causes),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        assert_eq!(
            error_class("canceling statement due to statement timeout").0,
            "statement timeout"
        );
        assert_eq!(
            error_class("canceling statement due to lock timeout").0,
            "lock timeout"
        );
        assert_eq!(
            error_class("duplicate key value violates unique constraint \"x\"").0,
            "unique violation"
        );
        assert_eq!(
            error_class("permission denied for table Patient").0,
            "permission problem"
        );
        assert_eq!(
            error_class("could not extend file \"base/1/2\": No space left on device").0,
            "full disk"
        );
        assert_eq!(error_class("deadlock detected").0, "deadlock");
        assert_eq!(
            error_class("terminating connection due to administrator command").0,
            "lost connection"
        );
        assert_eq!(error_class("boom").0, "failure medmig does not recognise");
    }

    #[test]
    fn identifiers_are_quoted_like_postgresql_does() {
        assert_eq!(quote_identifier("public"), "public");
        assert_eq!(
            quote_identifier("Observation_subject_idx"),
            "\"Observation_subject_idx\""
        );
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn the_readme_lists_every_step() {
        let readme = include_str!("../../README.md");
        for id in STEP_IDS {
            assert!(
                readme.contains(&format!("`{id}`")),
                "README lacks step `{id}`"
            );
        }
    }
}
