//! `medmig status` against Medplum-shaped databases in known states: the state of each
//! migration, the run history, the findings and the exit codes, read from the JSON output.

use crate::harness::{every_output, medmig, status_json, StatusJson, TestDb};

fn states(report: &StatusJson, versions: std::ops::RangeInclusive<u32>) -> Vec<String> {
    versions
        .map(|v| report.migration(v).state.clone())
        .collect()
}

#[test]
fn fresh_first_boot_has_v1_pending_and_the_rest_waiting() {
    let db = TestDb::with(&["schema", "fresh-first-boot"]);
    let report = status_json(&db.url(), &[]);
    assert_eq!(report.format_version, 1);
    assert_eq!(report.source.kind, "live");
    assert_eq!(report.source.database, db.name);
    assert_eq!(report.source.manifest, "embedded");
    assert_eq!(report.pre_deploy.version, Some(123));
    assert_eq!(report.post_deploy.data_version, Some(0));
    assert_eq!(report.post_deploy.first_boot, Some(true));
    assert_eq!(report.post_deploy.pending, Some(1));
    assert_eq!(report.migrations.len(), 53);
    assert_eq!(report.migration(1).state, "pending");
    assert!(states(&report, 2..=53).iter().all(|s| s == "waiting"));
    assert!(report.finding_ids().contains(&"first-boot"));
}

#[test]
fn steady_state_is_all_completed_with_run_facts() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let report = status_json(&db.url(), &[]);
    assert_eq!(report.post_deploy.pending, None);
    assert!(states(&report, 1..=53).iter().all(|s| s == "completed"));
    // Jobs of v1–v39 were pruned: completed by dataVersion, no run facts.
    let v1 = report.migration(1);
    assert_eq!((v1.attempts, v1.current.job_id.as_deref()), (0, None));
    assert_eq!(v1.server_version.as_deref(), Some("3.3.0"));
    assert_eq!(v1.required_before.as_deref(), Some("4.0.0"));
    let v53 = report.migration(53);
    assert_eq!(v53.current.job_status.as_deref(), Some("completed"));
    assert_eq!(v53.attempts, 1);
    assert_eq!(v53.current.duration_seconds, Some(95.0));
    assert_eq!(
        v53.current.progress.as_deref(),
        Some("2 actions done in 1m 34s, last: ANALYZE \"Patient\"")
    );
    assert!(v53.current.requested_at.as_deref().unwrap().ends_with('Z'));
    assert!(v53.current.finished_at.is_some());
    let timeline: Vec<&str> = v53.runs[0]
        .timeline
        .iter()
        .map(|t| t.status.as_str())
        .collect();
    assert_eq!(timeline, ["accepted", "completed"]);
    assert!(report
        .findings
        .iter()
        .all(|f| f.severity != "error" && f.severity != "warning"));
}

#[test]
fn table_folds_completed_runs_unless_all() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let run = medmig(&["status", "--database-url", &db.url()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("v1–v53"), "{}", run.stdout);
    assert!(
        run.stdout.contains("Post-deploy version  v53"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("| v27 "), "{}", run.stdout);
    let run = medmig(&["status", "--all", "--database-url", &db.url()]);
    assert!(
        run.stdout.lines().any(|l| l.contains(" v27 ")),
        "{}",
        run.stdout
    );
}

#[test]
fn new_minor_with_post_deploy_deferred_is_pending() {
    let db = TestDb::with(&["schema", "deferred-new-minor"]);
    let report = status_json(&db.url(), &[]);
    assert_eq!(report.pre_deploy.version, Some(121));
    assert_eq!(report.post_deploy.pending, Some(51));
    assert_eq!(
        states(&report, 49..=53),
        ["completed", "completed", "pending", "waiting", "waiting"]
    );
    assert!(report.finding_ids().contains(&"migration-pending"));
}

#[test]
fn running_reindex_reports_per_type_progress() {
    let db = TestDb::with(&["schema", "reindex-running"]);
    let report = status_json(&db.url(), &[]);
    let v53 = report.migration(53);
    // Reindex jobs stay "accepted" while they work; recorded progress makes them running.
    assert_eq!(v53.state, "running");
    assert_eq!(v53.current.job_status.as_deref(), Some("accepted"));
    assert_eq!(
        v53.current.progress.as_deref(),
        Some("reindex: 2 types done (183,281 rows), in progress: Observation")
    );
    assert!(v53.current.started_at.is_some() && v53.current.finished_at.is_none());
    assert!(v53.current.duration_seconds.unwrap() >= 29.0 * 60.0);
    assert_eq!(report.post_deploy.pending, Some(53));
}

#[test]
fn failed_migration_shows_newest_error_and_earlier_attempts() {
    let db = TestDb::with(&["schema", "failed-with-retry"]);
    let report = status_json(&db.url(), &[]);
    let v45 = report.migration(45);
    assert_eq!(v45.state, "failed");
    assert_eq!(v45.attempts, 2);
    assert_eq!(
        v45.current.job_id.as_deref(),
        Some("e4500000-0000-4000-8000-000000000002")
    );
    assert_eq!(
        v45.current.error.as_deref(),
        Some("canceling statement due to lock timeout")
    );
    let (older, newer) = (&v45.runs[0], &v45.runs[1]);
    assert!(!older.current && newer.current);
    assert_eq!(
        older.facts.error.as_deref(),
        Some("canceling statement due to statement timeout")
    );
    assert_eq!(older.min_server_version.as_deref(), Some("5.1.37"));
    // v44 failed once, then a retry completed it.
    let v44 = report.migration(44);
    assert_eq!((v44.state.as_str(), v44.attempts), ("completed", 2));
    assert_eq!(v44.current.job_status.as_deref(), Some("completed"));
    assert_eq!(states(&report, 46..=47), ["waiting", "waiting"]);
    assert!(report.finding_ids().contains(&"migration-failed"));
}

#[test]
fn fail_on_sets_exit_code_one_only_for_the_named_states() {
    let db = TestDb::with(&["schema", "failed-with-retry"]);
    let url = db.url();
    let run = medmig(&[
        "status",
        "--database-url",
        &url,
        "--fail-on",
        "failed,stale",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!run.stdout.is_empty());
    let run = medmig(&[
        "status",
        "--database-url",
        &url,
        "--fail-on",
        "stale,inconsistent",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = medmig(&["status", "--database-url", &url, "--fail-on", "broken"]);
    assert!(run.argument_error().contains("broken"));
}

#[test]
fn job_without_updates_is_stale_until_the_limit_is_raised() {
    let db = TestDb::with(&["schema", "stale-job"]);
    let report = status_json(&db.url(), &[]);
    let v48 = report.migration(48);
    assert_eq!(v48.state, "stale");
    assert!(v48.detail.as_deref().unwrap().contains("5h"), "{v48:?}");
    assert!(report.finding_ids().contains(&"migration-stale"));
    let report = status_json(&db.url(), &["--stale-after", "6h"]);
    assert_eq!(report.migration(48).state, "accepted");
}

#[test]
fn an_old_server_active_job_is_read_running_then_stale() {
    // Servers before 4.x wrote "active"; old databases keep such jobs.
    let db = TestDb::with(&["schema", "old-server-active-job"]);
    let report = status_json(&db.url(), &["--stale-after", "6h"]);
    assert_eq!(report.migration(48).state, "running");
    let report = status_json(&db.url(), &[]);
    assert_eq!(report.migration(48).state, "stale");
}

#[test]
fn two_system_jobs_in_progress_make_the_server_refuse_to_queue() {
    // packages/server/src/migrations/migration-utils.ts, preparePostDeployMigrationAsyncJob:
    // two or more system data-migration jobs accepted or active, of any dataVersion, and the
    // server refuses to queue ("Multiple data migration jobs with accepted status" in its
    // database.test.ts). The newest job decides the migration's state.
    let db = TestDb::with(&["schema", "two-accepted"]);
    let report = status_json(&db.url(), &[]);
    let v49 = report.migration(49);
    assert_eq!(v49.state, "accepted");
    assert_eq!(v49.attempts, 2);
    assert_eq!(
        v49.current.job_id.as_deref(),
        Some("e4900000-0000-4000-8000-000000000002")
    );
    let finding = report
        .findings
        .iter()
        .find(|f| f.id == "several-jobs-in-progress")
        .expect("the server's refusal is a finding");
    assert!(finding
        .message
        .contains("e4900000-0000-4000-8000-000000000001"));
    assert!(finding
        .message
        .contains("Unable to start post-deploy migration"));
}

#[test]
fn cancelled_job_is_cancelled() {
    let db = TestDb::with(&["schema", "cancelled-job"]);
    let report = status_json(&db.url(), &[]);
    let v51 = report.migration(51);
    assert_eq!(v51.state, "cancelled");
    assert_eq!(v51.current.job_status.as_deref(), Some("cancelled"));
    assert!(v51.current.finished_at.is_some());
    assert_eq!(report.post_deploy.pending, Some(51));
}

#[test]
fn invalid_index_is_reported_with_its_definition() {
    let db = TestDb::with(&["schema", "invalid-index"]);
    let report = status_json(&db.url(), &[]);
    assert_eq!(report.invalid_indexes.len(), 1);
    let index = &report.invalid_indexes[0];
    assert_eq!(
        (index.table.as_str(), index.index.as_str()),
        ("Observation", "Observation_subject_code_idx")
    );
    assert!(index
        .definition
        .starts_with("CREATE INDEX \"Observation_subject_code_idx\""));
    assert_eq!(report.migration(50).state, "failed");
    assert!(report.finding_ids().contains(&"invalid-index"));
}

#[test]
fn database_without_first_boot_column_still_reads() {
    let db = TestDb::with(&["schema", "no-first-boot"]);
    let report = status_json(&db.url(), &[]);
    assert_eq!(report.post_deploy.first_boot, None);
    assert_eq!(report.post_deploy.data_version, Some(1));
    assert_eq!(states(&report, 1..=3), ["completed", "pending", "waiting"]);
    assert!(report.finding_ids().contains(&"no-first-boot-column"));
}

#[test]
fn malformed_job_json_is_a_finding_not_a_crash() {
    let db = TestDb::with(&["schema", "malformed-job"]);
    let report = status_json(&db.url(), &[]);
    let v53 = report.migration(53);
    assert_eq!(v53.state, "inconsistent");
    assert!(
        v53.detail.as_deref().unwrap().contains("not valid JSON"),
        "{v53:?}"
    );
    assert_eq!(v53.attempts, 1);
    let finding = report
        .findings
        .iter()
        .find(|f| f.id == "job-unreadable")
        .expect("a job-unreadable finding");
    assert_eq!(
        (finding.severity.as_str(), finding.version),
        ("error", Some(53))
    );
    assert!(finding
        .message
        .contains("e5300000-0000-4000-8000-00000000bad1"));
}

#[test]
fn other_job_types_and_deleted_jobs_are_ignored() {
    let db = TestDb::with(&["schema", "other-jobs"]);
    let run = medmig(&["status", "--format", "json", "--database-url", &db.url()]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = crate::harness::parse_status(&run.stdout);
    assert_eq!(report.migration(53).state, "pending");
    assert_eq!(report.migration(53).attempts, 0);
    for ignored in [
        "b0000000-0000-4000-8000-000000000001",
        "b0000000-0000-4000-8000-000000000002",
        "e5300000-0000-4000-8000-0000000de1e7",
    ] {
        assert!(
            !run.stdout.contains(ignored),
            "{ignored} leaked into the report"
        );
    }
    // The job inside a project is ignored as the server ignores it, and listed as such.
    assert_eq!(
        report
            .ignored_jobs
            .iter()
            .map(|j| j.job_id.as_str())
            .collect::<Vec<_>>(),
        ["e5300000-0000-4000-8000-00000000b0b0"]
    );
    assert!(report.finding_ids().contains(&"project-jobs-ignored"));
    assert!(!report.finding_ids().contains(&"several-jobs-in-progress"));
}

#[test]
fn a_schema_repair_job_is_shown_apart_never_as_a_migration() {
    // packages/server/src/admin/super.ts: reconcile-db-schema-drift creates an AsyncJob with
    // no type and no dataVersion, run on the post-deploy queue as a dynamic job.
    let db = TestDb::with(&["schema", "schema-repair-job"]);
    let report = status_json(&db.url(), &[]);
    assert_eq!(report.migration(53).state, "pending");
    assert_eq!(report.migration(53).attempts, 0);
    let [job] = report.maintenance_jobs.as_slice() else {
        panic!("one maintenance job: {:?}", report.maintenance_jobs)
    };
    assert_eq!(job.request, "/admin/super/reconcile-db-schema-drift");
    assert_eq!(job.status, "completed");
    assert_eq!(job.dropped_indexes, ["\"Observation_legacy_idx\""]);
    assert!(report.finding_ids().contains(&"maintenance-job"));
    assert!(!report.finding_ids().contains(&"job-unreadable"));
}

#[test]
fn csv_has_a_header_and_one_row_per_migration() {
    let db = TestDb::with(&["schema", "failed-with-retry"]);
    let run = medmig(&["status", "--format", "csv", "--database-url", &db.url()]);
    assert_eq!(run.code, 0, "{run:?}");
    let mut reader = csv::Reader::from_reader(run.stdout.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[0], "version");
    assert_eq!(&header[1], "state");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 53);
    let v45 = &rows[44];
    let field = |name: &str| &v45[header.iter().position(|h| h == name).unwrap()];
    assert_eq!(field("version"), "45");
    assert_eq!(field("state"), "failed");
    assert_eq!(field("attempts"), "2");
    assert_eq!(field("error"), "canceling statement due to lock timeout");
}

#[test]
fn patient_data_never_reaches_any_output() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let everything = every_output(&db.url());
    for secret in ["Quackenbush", "Zebulon", "1961-04-12", "example.org"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}
