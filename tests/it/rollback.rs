//! `medmig rollback-check`: every check both ways, verdicts and exit codes from the real
//! binary, live and from a snapshot of the same database.

use serde::Deserialize;

use crate::harness::{
    admin, connect, medmig, runtime, take_snapshot, unique_name, url_as, SourceJson, TestDb,
};
use crate::schema::capture;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RollbackJson {
    format_version: u32,
    source: SourceJson,
    verdict: String,
    headline: String,
    to: String,
    from: Option<String>,
    from_inferred_by: Option<String>,
    checks: Vec<CheckJson>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct CheckJson {
    id: String,
    severity: String,
    outcome: String,
    message: String,
    evidence: Vec<String>,
}

impl RollbackJson {
    fn check(&self, id: &str) -> &CheckJson {
        self.checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id}: {:#?}", self.checks))
    }

    fn outcome(&self, id: &str) -> &str {
        &self.check(id).outcome
    }
}

/// Runs rollback-check with JSON output; returns the exit code and the parsed report.
fn rollback(args: &[&str]) -> (i32, RollbackJson) {
    let mut all = vec!["rollback-check", "--format", "json"];
    all.extend_from_slice(args);
    let run = medmig(&all);
    let report: RollbackJson =
        serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("{err}: {run:?}"));
    assert_eq!(report.format_version, 1);
    let expected = match report.verdict.as_str() {
        "SAFE" => 0,
        "UNSAFE" => 1,
        "UNKNOWN" => 3,
        other => panic!("verdict {other}"),
    };
    assert_eq!(run.code, expected, "{run:?}");
    assert!(
        report.headline.starts_with(&report.verdict),
        "{}",
        report.headline
    );
    (run.code, report)
}

fn live(db: &TestDb, args: &[&str]) -> RollbackJson {
    let url = db.url();
    let mut all = vec!["--database-url", url.as_str()];
    all.extend_from_slice(args);
    rollback(&all).1
}

/// The same check from a snapshot of the database: verdict and every outcome must agree.
fn assert_snapshot_agrees(db: &TestDb, args: &[&str], live_report: &RollbackJson) {
    let (path, _) = take_snapshot(&db.url());
    let mut all = vec!["--snapshot", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let (_, offline) = rollback(&all);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(offline.verdict, live_report.verdict);
    let outcomes = |r: &RollbackJson| -> Vec<(String, String)> {
        r.checks
            .iter()
            .map(|c| (c.id.clone(), c.outcome.clone()))
            .collect()
    };
    assert_eq!(outcomes(&offline), outcomes(live_report));
}

const DEFERRED: [&str; 2] = ["schema", "deferred-new-minor"];
const BACK: [&str; 4] = ["--to", "5.1.44", "--from", "5.2.2"];

#[test]
fn additive_upgrade_with_post_deploy_deferred_is_safe() {
    let db = TestDb::with(&DEFERRED);
    let baseline = capture(&db);
    // What 5.2's pre-deploy migrations do: additive only.
    db.execute(
        "ALTER TABLE \"Patient\" ADD COLUMN IF NOT EXISTS \"__genderSort\" TEXT;
         CREATE TABLE IF NOT EXISTS \"Task\" (\"id\" UUID NOT NULL PRIMARY KEY, \"content\" TEXT NOT NULL);
         UPDATE \"DatabaseMigration\" SET \"version\" = 123;",
    );
    let mut args = BACK.to_vec();
    args.extend(["--baseline", baseline.to_str().unwrap()]);
    let report = live(&db, &args);
    assert_eq!(report.verdict, "SAFE", "{:#?}", report.checks);
    assert_eq!(
        (report.to.as_str(), report.from.as_deref()),
        ("5.1.44", Some("5.2.2"))
    );
    assert_eq!(report.from_inferred_by, None);
    for id in [
        "target-in-manifest",
        "post-deploy-started",
        "post-deploy-queued",
        "post-deploy-applied",
        "migration-in-progress",
        "not-previous-minor",
        "not-latest-patch",
        "column-dropped",
        "table-dropped",
        "invalid-index",
    ] {
        assert_eq!(report.outcome(id), "pass", "{id}");
    }
    assert_eq!(report.check("column-added").severity, "info");
    assert!(report.checks.iter().all(|c| c.id != "schema-not-compared"));
    assert_eq!(report.outcome("post-deploy-auto-run"), "skipped");
    assert_snapshot_agrees(&db, &args, &report);
    std::fs::remove_file(baseline).unwrap();
}

#[test]
fn each_breaking_schema_change_is_unsafe() {
    for (id, sql, _) in crate::schema::BREAKING_CHANGES {
        if ["index-dropped", "index-invalid", "constraint-not-validated"].contains(&id) {
            continue;
        }
        let db = TestDb::with(&DEFERRED);
        let baseline = capture(&db);
        db.execute(sql);
        let mut args = BACK.to_vec();
        args.extend(["--baseline", baseline.to_str().unwrap()]);
        let report = live(&db, &args);
        std::fs::remove_file(baseline).unwrap();
        assert_eq!(report.verdict, "UNSAFE", "{id}");
        assert_eq!(report.outcome(id), "fail", "{id}");
        assert!(!report.check(id).evidence.is_empty(), "{id}");
        assert_eq!(report.outcome("post-deploy-started"), "pass", "{id}");
    }
}

/// A job for v51 (introduced in 5.2.1, unknown to 5.1.44) in the given statuses.
fn new_minor_job(statuses: &str, output: &str) -> TestDb {
    TestDb::build(
        &DEFERRED,
        &format!(
            "SELECT fixture.job('e5100000-0000-4000-8000-0000000000aa', 51, ARRAY[{statuses}],
               (SELECT array_agg(now() - (n * interval '3 minutes') ORDER BY n DESC)
                FROM generate_series(0, array_length(ARRAY[{statuses}], 1) - 1) n),
               {output}, '5.2.2')"
        ),
    )
}

#[test]
fn a_new_minor_job_that_started_even_partially_is_unsafe() {
    let reindex = "'{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"result\",\"part\":[{\"name\":\"resourceType\",\"valueCode\":\"Patient\"},{\"name\":\"nextTimestamp\",\"valueDateTime\":\"2024-01-01T00:00:00.000Z\"}]}]}'";
    for (statuses, output) in [
        ("'accepted','active'", "NULL"),
        ("'accepted','error'", "'{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"error\",\"valueString\":\"boom\"}]}'"),
        ("'accepted','completed'", "NULL"),
        ("'accepted','accepted'", reindex),
    ] {
        let db = new_minor_job(statuses, output);
        let report = live(&db, &BACK);
        assert_eq!(report.verdict, "UNSAFE", "{statuses}");
        let started = report.check("post-deploy-started");
        assert_eq!(started.outcome, "fail", "{statuses}");
        assert!(started.message.contains("v51 (introduced in 5.2.1) started at"), "{}", started.message);
        assert!(started.evidence[0].contains("e5100000-0000-4000-8000-0000000000aa"));
        assert!(report.headline.contains("v51"), "{}", report.headline);
        if statuses.contains("active") {
            assert_snapshot_agrees(&db, &BACK, &report);
        }
    }
}

#[test]
fn a_queued_new_minor_job_names_the_job_to_cancel() {
    let db = new_minor_job("'accepted'", "NULL");
    let report = live(&db, &BACK);
    assert_eq!(report.verdict, "UNSAFE");
    assert_eq!(report.outcome("post-deploy-started"), "pass");
    let queued = report.check("post-deploy-queued");
    assert_eq!(queued.outcome, "fail");
    assert!(queued.evidence[0].contains("AsyncJob/e5100000-0000-4000-8000-0000000000aa/$cancel"));
    // Turned off, the same state is SAFE, and the output says the check was ignored.
    let url = db.url();
    let mut args = vec![
        "--database-url",
        url.as_str(),
        "--ignore",
        "post-deploy-queued",
    ];
    args.extend_from_slice(&BACK);
    let (code, report) = rollback(&args);
    assert_eq!((code, report.outcome("post-deploy-queued")), (0, "ignored"));
    let run = medmig(&[
        "rollback-check",
        "--to",
        "5.1.44",
        "--snapshot",
        "x.json",
        "--ignore",
        "no-such-check",
    ]);
    assert!(run.single_error().contains("no-such-check"));
}

#[test]
fn a_cancelled_new_minor_job_never_ran_and_is_shown() {
    let db = new_minor_job("'accepted','cancelled'", "NULL");
    let report = live(&db, &BACK);
    assert_eq!(report.verdict, "SAFE", "{:#?}", report.checks);
    let cancelled = report.check("post-deploy-cancelled");
    assert_eq!(
        (cancelled.severity.as_str(), cancelled.outcome.as_str()),
        ("info", "pass")
    );
    assert_eq!(cancelled.evidence.len(), 1);
}

#[test]
fn data_version_beyond_the_target_is_unsafe() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let report = live(&db, &["--to", "5.1.44", "--from", "5.2.4"]);
    assert_eq!(report.verdict, "UNSAFE");
    let applied = report.check("post-deploy-applied");
    assert_eq!(applied.outcome, "fail");
    assert!(
        applied.message.contains("dataVersion is 53"),
        "{}",
        applied.message
    );
    assert!(
        applied.message.contains("v51 (introduced in 5.2.1)"),
        "{}",
        applied.message
    );
}

#[test]
fn a_session_holding_the_migration_lock_is_unsafe_until_it_lets_go() {
    let db = TestDb::with(&DEFERRED);
    let rt = runtime();
    rt.block_on(async {
        let migrator = connect(&db.url()).await;
        migrator
            .batch_execute("SET application_name = 'medplum-server'; SELECT pg_advisory_lock(1)")
            .await
            .unwrap();
        let report = live(&db, &BACK);
        assert_eq!(report.verdict, "UNSAFE");
        let check = report.check("migration-in-progress");
        assert_eq!(check.outcome, "fail");
        assert!(
            check.evidence[0].contains("(medplum-server) holds Medplum's migration lock"),
            "{check:?}"
        );
        migrator
            .batch_execute("SELECT pg_advisory_unlock(1)")
            .await
            .unwrap();
    });
    assert_eq!(live(&db, &BACK).outcome("migration-in-progress"), "pass");
}

#[test]
fn the_rollback_must_go_to_the_previous_minor() {
    let db = TestDb::with(&DEFERRED);
    let skip = live(&db, &["--to", "5.0.11", "--from", "5.2.2"]);
    assert_eq!(skip.verdict, "UNSAFE");
    assert!(skip
        .check("not-previous-minor")
        .message
        .contains("skips minor 5.1"));
    let none = live(&db, &["--to", "5.2.2", "--from", "5.2.2"]);
    assert_eq!(none.outcome("not-previous-minor"), "fail");
    // Across a major boundary the previous minor of 5.0 is 4.5.
    let across = live(&db, &["--to", "4.5.2", "--from", "5.0.11"]);
    assert_eq!(across.outcome("not-previous-minor"), "pass");
    // An older patch of the right minor passes, with a warning.
    let patch = live(&db, &["--to", "5.1.40", "--from", "5.2.2"]);
    assert_eq!(patch.outcome("not-latest-patch"), "fail");
    assert_eq!(patch.check("not-latest-patch").severity, "warning");
}

#[test]
fn without_from_the_evidence_gives_a_lower_bound_and_says_so() {
    let db = TestDb::with(&DEFERRED);
    let report = live(&db, &["--to", "5.1.44"]);
    assert_eq!(report.verdict, "UNKNOWN");
    let how = report.from_inferred_by.as_deref().unwrap();
    assert!(
        how.starts_with("at least 5.1.44") && how.contains("created by server 5.1.44"),
        "{how}"
    );
    assert_eq!(report.outcome("not-previous-minor"), "unknown");
    assert!(report
        .check("not-previous-minor")
        .message
        .contains("pass --from"));
    // A lower bound can still prove a skip.
    let skip = live(&db, &["--to", "4.5.2"]);
    assert_eq!(
        (skip.verdict.as_str(), skip.outcome("not-previous-minor")),
        ("UNSAFE", "fail")
    );
}

#[test]
fn a_target_the_manifest_does_not_cover_is_unknown() {
    let db = TestDb::with(&DEFERRED);
    let report = live(&db, &["--to", "5.3.1", "--from", "5.4.0"]);
    assert_eq!(report.verdict, "UNKNOWN");
    assert_eq!(report.outcome("target-in-manifest"), "unknown");
    assert!(
        report.headline.contains("--manifest"),
        "{}",
        report.headline
    );
}

#[test]
fn a_role_that_cannot_read_async_job_gets_unknown_not_safe() {
    let db = TestDb::with(&DEFERRED);
    let role = unique_name("medmig_half");
    admin(&format!("CREATE ROLE \"{role}\" LOGIN"));
    db.execute(&format!(
        "GRANT CONNECT ON DATABASE \"{}\" TO \"{role}\"; GRANT SELECT ON \"DatabaseMigration\" TO \"{role}\";",
        db.name
    ));
    let url = url_as(&role, None, &db.name);
    let mut args = vec!["--database-url", url.as_str()];
    args.extend_from_slice(&BACK);
    let (code, report) = rollback(&args);
    db.execute(&format!("DROP OWNED BY \"{role}\""));
    admin(&format!("DROP ROLE \"{role}\""));
    assert_eq!((code, report.verdict.as_str()), (3, "UNKNOWN"));
    assert_eq!(report.outcome("evidence-unreadable"), "unknown");
    assert_eq!(report.outcome("post-deploy-started"), "unknown");
    assert!(report
        .check("evidence-unreadable")
        .evidence
        .contains(&"\"AsyncJob\"".to_string()));
}

#[test]
fn an_invalid_index_is_a_warning() {
    let db = TestDb::with(&["schema", "invalid-index"]);
    let report = live(&db, &BACK);
    assert_eq!(report.outcome("invalid-index"), "fail");
    assert!(report.check("invalid-index").evidence[0].contains("Observation_subject_code_idx"));
    assert_eq!(report.verdict, "SAFE", "{:#?}", report.checks);
    assert_eq!(report.outcome("schema-not-compared"), "fail");
}

#[test]
fn the_config_says_whether_post_deploy_migrations_are_deferred() {
    let snapshot = "fixtures/snapshots/deferred-new-minor.json";
    // As packages/server/src/migrations/migration-utils.ts evaluates them
    // (maybeAutoRunPendingPostDeployMigration); the top-level key is read by no server code.
    for (config, auto_run, not_read, run_migrations_false) in [
        (r#"{"database": {"host": "db"}}"#, "fail", "pass", "pass"),
        (
            r#"{"disablePostDeployMigrations": true, "database": {}}"#,
            "fail",
            "fail",
            "pass",
        ),
        (
            r#"{"database": {"disableRunPostDeployMigrations": true}}"#,
            "pass",
            "pass",
            "pass",
        ),
        (
            r#"{"disablePostDeployMigrations": true, "database": {"runMigrations": false}}"#,
            "pass",
            "fail",
            "fail",
        ),
    ] {
        let path = std::env::temp_dir().join(format!("{}.json", unique_name("medplum_config")));
        std::fs::write(&path, config).unwrap();
        let mut args = vec![
            "--snapshot",
            snapshot,
            "--medplum-config",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(&BACK);
        let (_, report) = rollback(&args);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(report.outcome("post-deploy-auto-run"), auto_run, "{config}");
        assert_eq!(report.outcome("defer-key-not-read"), not_read, "{config}");
        assert_eq!(
            report.outcome("run-migrations-false"),
            run_migrations_false,
            "{config}"
        );
        let evidence = &report.check("post-deploy-auto-run").evidence;
        assert!(
            evidence[0].starts_with("database.disableRunPostDeployMigrations: ")
                && evidence[1].starts_with("database.runMigrations: ")
                && evidence[2].starts_with("disablePostDeployMigrations (top level"),
            "{evidence:?}"
        );
        assert_eq!(
            report.verdict, "SAFE",
            "{config}: warnings never decide the verdict"
        );
    }
}

#[test]
fn the_table_answers_on_its_first_line() {
    let run = medmig(&[
        "rollback-check",
        "--snapshot",
        "fixtures/snapshots/reindex-running.json",
        "--to",
        "5.2.2",
        "--from",
        "5.3.0",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let first = run.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("UNSAFE: post-deploy migration v53 (introduced in 5.2.4) started at"),
        "{first}"
    );
}

#[test]
fn a_session_running_migration_ddl_is_seen() {
    let db = TestDb::with(&DEFERRED);
    let rt = runtime();
    rt.block_on(async {
        // A reader holds Observation, so the migration's ALTER TABLE waits, visibly active.
        let reader = connect(&db.url()).await;
        reader
            .batch_execute("BEGIN; LOCK TABLE \"Observation\" IN ACCESS SHARE MODE")
            .await
            .unwrap();
        let migrator = connect(&db.url()).await;
        let alter = tokio::spawn(async move {
            migrator
                .batch_execute("ALTER TABLE \"Observation\" ADD COLUMN \"__performerSort\" TEXT")
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let report = live(&db, &BACK);
        let check = report.check("migration-in-progress");
        assert_eq!(check.outcome, "fail", "{check:?}");
        assert!(
            check.evidence[0].contains("runs `ALTER TABLE \"Observation\""),
            "{check:?}"
        );
        reader.batch_execute("ROLLBACK").await.unwrap();
        alter.await.unwrap().unwrap();
    });
}

/// The issue's case: a custom post-deploy migration that runs for hours writes nothing to its
/// job (packages/server/src/workers/post-deploy-migration.ts, runCustomMigration: one write at
/// the end), and ignores $cancel (asyncjobcancel.ts patches the status; nothing in the
/// running migration reads it, and completeJob overwrites it). A real session under the
/// worker's application name holds the work, past the server's statement limit.
#[test]
fn a_running_custom_migration_is_running_and_cancelling_it_does_not_make_it_safe() {
    let db = TestDb::build(
        &DEFERRED,
        "SELECT fixture.job('e5100000-0000-4000-8000-00000000c0de', 51, ARRAY['accepted'],
           ARRAY[now() - interval '2 hours'], NULL, '5.2.1')",
    );
    let url = db.url();
    let limit = ["--server-statement-timeout", "1s"];
    let rt = runtime();
    rt.block_on(async {
        let worker = connect(&url).await;
        worker
            .batch_execute("SET application_name = 'medplum-server'; SET statement_timeout = 0")
            .await
            .unwrap();
        let work = tokio::spawn(async move {
            // A backfill that takes a while: the kind of statement a custom migration runs.
            let _ = worker
                .batch_execute(
                    "UPDATE \"Patient\" SET \"__version\" = \"__version\" \
                     WHERE pg_sleep(30) IS NOT NULL",
                )
                .await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

        // status: running, with the session as evidence, though the job is two hours quiet.
        let status = crate::harness::status_json(&url, &limit);
        let v51 = status.migration(51);
        assert_eq!(v51.state, "running", "{v51:?}");
        assert!(
            v51.work_evidence[0].contains("(medplum-server) has run `UPDATE \"Patient\""),
            "{v51:?}"
        );
        // recover: no $cancel for work that is running, no stale-job step.
        let run = medmig(&["recover", "--format", "json", "--database-url", &url, "--server-statement-timeout", "1s"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(!run.stdout.contains("$cancel"), "{}", run.stdout);
        assert!(!run.stdout.contains("investigate-stale-job"), "{}", run.stdout);
        // rollback-check: UNSAFE, because v51 started.
        let mut args = vec!["--database-url", url.as_str()];
        args.extend_from_slice(&limit);
        args.extend_from_slice(&BACK);
        let (code, report) = rollback(&args);
        assert_eq!((code, report.verdict.as_str()), (1, "UNSAFE"));
        assert_eq!(report.outcome("post-deploy-started"), "fail", "{:#?}", report.checks);

        // $cancel, as the server does it (a JSON patch of the status; a new version).
        let operator = connect(&url).await;
        operator.batch_execute(
            "UPDATE \"AsyncJob\" SET \"content\" = jsonb_set(\"content\"::jsonb, '{status}', '\"cancelled\"')::text,
                 \"status\" = 'cancelled', \"lastUpdated\" = now()
             WHERE \"id\" = 'e5100000-0000-4000-8000-00000000c0de';
             INSERT INTO \"AsyncJob_History\" (\"versionId\", \"id\", \"content\", \"lastUpdated\")
             SELECT gen_random_uuid(), \"id\", \"content\", \"lastUpdated\" FROM \"AsyncJob\"
             WHERE \"id\" = 'e5100000-0000-4000-8000-00000000c0de'",
        ).await.unwrap();
        let (code, report) = rollback(&args);
        assert_eq!((code, report.verdict.as_str()), (1, "UNSAFE"), "{:#?}", report.checks);
        let started = report.check("post-deploy-started");
        assert_eq!(started.outcome, "fail");
        assert!(started.evidence.iter().any(|e| e.contains("is cancelled") || e.contains("has run `UPDATE")), "{started:?}");
        assert_eq!(crate::harness::status_json(&url, &limit).migration(51).state, "running");

        // Once nothing runs it any more, the cancelled job never ran: SAFE.
        operator
            .batch_execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'medplum-server'",
            )
            .await
            .unwrap();
        work.await.unwrap();
    });
    let mut args = vec!["--database-url", url.as_str()];
    args.extend_from_slice(&limit);
    args.extend_from_slice(&BACK);
    let (code, report) = rollback(&args);
    assert_eq!(
        (code, report.verdict.as_str()),
        (0, "SAFE"),
        "{:#?}",
        report.checks
    );
    assert_eq!(report.outcome("post-deploy-cancelled"), "pass");
}
