//! `medmig upgrade-plan` and `medmig recover`, asserted from the real binary's JSON.

use serde::Deserialize;
use serde_json::Value;

use crate::harness::{medmig, unique_name, TestDb};

#[derive(Debug, Deserialize)]
struct Plan {
    from: String,
    to: String,
    gate_assumes: String,
    direct_deploy_refused: Option<String>,
    direct_deploy_restart_refused_on: Vec<u32>,
    hops: Vec<Hop>,
    findings: Vec<PlanFinding>,
}

#[derive(Debug, Deserialize)]
struct PlanFinding {
    id: String,
    message: String,
}

#[derive(Debug, Deserialize)]
struct Hop {
    release: String,
    pick: String,
    restart_refused_on: Vec<u32>,
    complete_before: Vec<u32>,
    introduces: Vec<u32>,
    rollback_window: String,
}

/// A database where `data_version` migrations completed, their jobs made by `server`.
fn at(data_version: u32, server: &str) -> TestDb {
    TestDb::build(
        &["schema"],
        &format!(
            "INSERT INTO \"DatabaseMigration\" VALUES (1, 90, {data_version}, false);
             SELECT fixture.completed_jobs(1, {data_version}, interval '30 days', '{server}')"
        ),
    )
}

fn plan(db: &TestDb, from: &str, to: &str) -> Plan {
    plan_with(db, from, to, &[])
}

fn plan_with(db: &TestDb, from: &str, to: &str, extra: &[&str]) -> Plan {
    let url = db.url();
    let mut args = vec![
        "upgrade-plan",
        "--format",
        "json",
        "--database-url",
        &url,
        "--from",
        from,
        "--to",
        to,
    ];
    args.extend_from_slice(extra);
    let run = medmig(&args);
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn releases(plan: &Plan) -> Vec<&str> {
    plan.hops.iter().map(|h| h.release.as_str()).collect()
}

#[test]
fn from_4_1_3_to_4_4_0() {
    // Manifest: v8–v9 4.1.8, v10 4.1.9, v11–v12 4.1.12, all required before 4.2.0; no
    // migration in 4.2.x; v13–v28 4.3.0–4.3.14, required before 4.4.0. A 4.1.3 server knows
    // v1–v7 only, so it must first become 4.1.12 to run v8–v12 before 4.2.
    let db = at(7, "4.1.3");
    let plan = plan(&db, "4.1.3", "4.4.0");
    assert_eq!((plan.from.as_str(), plan.to.as_str()), ("4.1.3", "4.4.0"));
    assert_eq!(releases(&plan), ["4.1.12", "4.2.0", "4.3.14", "4.4.0"]);
    assert_eq!(plan.hops[0].introduces, (8..=12).collect::<Vec<_>>());
    assert_eq!(plan.hops[1].complete_before, (8..=12).collect::<Vec<_>>());
    assert!(plan.hops[1].introduces.is_empty());
    assert_eq!(plan.hops[2].introduces, (13..=28).collect::<Vec<_>>());
    assert!(plan.hops[2]
        .rollback_window
        .starts_with("opens: 4.3.14 can go back to the latest 4.2.x patch until v13 starts"));
    assert_eq!(plan.hops[3].complete_before, (13..=28).collect::<Vec<_>>());
    assert_eq!(
        plan.direct_deploy_refused.as_deref(),
        Some("Unable to run this version of Medplum server. Pending post-deploy migration v8 requires server at version 4.1.8 <= version < 4.2.0, but current server version is 4.4.0")
    );
}

#[test]
fn from_4_5_2_to_5_2_4_across_a_major() {
    // Manifest: v29 4.5.2 (required before 5.0.0); v30–v31 5.0.0, v32 5.0.11 (before 5.1.0);
    // v33–v48 5.1.7–5.1.42 (no requiredBefore), v49–v50 5.1.43–5.1.44 (before 5.2.0);
    // v51–v53 5.2.1–5.2.4. Migrations run in order, so v33–v48 must finish before v49–v50.
    let db = at(29, "4.5.2");
    let plan = plan(&db, "4.5.2", "5.2.4");
    assert_eq!(releases(&plan), ["5.0.11", "5.1.44", "5.2.4"]);
    assert!(plan.hops[0].complete_before.is_empty());
    assert_eq!(plan.hops[0].introduces, [30, 31, 32]);
    assert_eq!(plan.hops[1].complete_before, [30, 31, 32]);
    assert_eq!(plan.hops[2].complete_before, (33..=50).collect::<Vec<_>>());
    assert_eq!(plan.hops[2].introduces, [51, 52, 53]);
    assert!(plan
        .direct_deploy_refused
        .unwrap()
        .contains("v30 requires server at version 5.0.0 <= version < 5.1.0"));
}

#[test]
fn from_5_2_2_to_5_2_4_is_one_patch() {
    // Manifest: v53 5.2.4, required before 5.3.0; 5.2.2 knows up to v52.
    let db = at(52, "5.2.2");
    let plan = plan(&db, "5.2.2", "5.2.4");
    assert_eq!(releases(&plan), ["5.2.4"]);
    assert!(plan.hops[0].complete_before.is_empty());
    assert_eq!(plan.hops[0].introduces, [53]);
    assert_eq!(plan.direct_deploy_refused, None);
}

#[test]
fn an_older_target_is_a_rollback_and_is_refused() {
    let run = medmig(&[
        "upgrade-plan",
        "--snapshot",
        "fixtures/snapshots/steady-state.json",
        "--from",
        "5.2.4",
        "--to",
        "5.1.44",
    ]);
    let line = run.single_error();
    assert!(
        line.contains("rollback") && line.contains("rollback-check"),
        "{line}"
    );
}

#[derive(Debug, Deserialize)]
struct Steps {
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Step {
    step: usize,
    id: String,
    title: String,
    evidence: Vec<String>,
    risk: String,
    explanation: String,
    commands: Vec<String>,
    check: String,
}

fn recover(args: &[&str]) -> Vec<Step> {
    let mut all = vec!["recover", "--format", "json"];
    all.extend_from_slice(args);
    let run = medmig(&all);
    assert_eq!(run.code, 0, "{run:?}");
    let steps: Steps =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    for (i, step) in steps.steps.iter().enumerate() {
        assert_eq!(step.step, i + 1);
        assert!(
            !step.evidence.is_empty() && !step.check.is_empty(),
            "{step:?}"
        );
    }
    steps.steps
}

/// The `deploy-required-release` step.
fn gate_step(steps: &[Step]) -> &Step {
    steps
        .iter()
        .find(|s| s.id == "deploy-required-release")
        .expect("a gate step")
}

fn ids(steps: &[Step]) -> Vec<&str> {
    steps.iter().map(|s| s.id.as_str()).collect()
}

#[test]
fn a_failed_migration_is_re_run_with_its_cause_named() {
    let steps = recover(&["--snapshot", "fixtures/snapshots/failed-with-retry.json"]);
    assert_eq!(ids(&steps), ["rerun-failed-migration"]);
    let step = &steps[0];
    assert!(step.evidence[0].contains("canceling statement due to lock timeout"));
    assert!(
        step.explanation.contains("lock timeout") && step.explanation.contains("pg_blocking_pids")
    );
    assert!(
        step.commands[0].contains("/admin/super/migrate")
            && step.commands[0].contains("{\"dataVersion\": 45}")
    );
    assert!(
        step.commands[0].contains("Prefer: respond-async")
            && step.commands[0].contains("$MEDPLUM_TOKEN")
    );
}

#[test]
fn a_stale_job_is_investigated_and_an_active_one_is_not_cancelled() {
    // An "active" job, as servers before 4.x wrote them: $cancel refuses anything but
    // accepted (packages/server/src/fhir/operations/asyncjobcancel.ts).
    let db = TestDb::with(&["schema", "old-server-active-job"]);
    let steps = recover(&["--database-url", &db.url()]);
    assert_eq!(ids(&steps), ["investigate-stale-job"]);
    assert!(
        steps[0]
            .evidence
            .iter()
            .any(|e| e.contains("no session ran migration DDL or a long write")),
        "{:?}",
        steps[0]
    );
    assert!(!steps[0].commands.iter().any(|c| c.contains("$cancel")));
    assert!(steps[0]
        .commands
        .iter()
        .any(|c| c.contains("{\"dataVersion\": 48}")));
}

#[test]
fn of_two_accepted_jobs_the_older_is_cancelled() {
    let db = TestDb::with(&["schema", "two-accepted"]);
    let steps = recover(&["--database-url", &db.url()]);
    assert_eq!(ids(&steps), ["defer-post-deploy", "cancel-duplicate-job"]);
    let cancel = &steps[1];
    assert_eq!(cancel.commands.len(), 1);
    assert!(
        cancel.commands[0].contains("AsyncJob/e4900000-0000-4000-8000-000000000001/\\$cancel"),
        "{}",
        cancel.commands[0]
    );
    assert!(cancel
        .title
        .contains("e4900000-0000-4000-8000-000000000002"));
}

#[test]
fn an_invalid_index_is_dropped_before_its_migration_is_re_run() {
    let db = TestDb::with(&["schema", "invalid-index"]);
    let steps = recover(&["--database-url", &db.url()]);
    assert_eq!(
        ids(&steps),
        ["drop-invalid-index", "rerun-failed-migration"]
    );
    assert_eq!(
        steps[0].commands,
        ["DROP INDEX CONCURRENTLY IF EXISTS public.\"Observation_subject_code_idx\";"]
    );
    assert!(steps[0].explanation.contains("re-run v50"));
    assert!(steps[1].explanation.contains("lost connection"));
}

#[test]
fn the_startup_gate_names_the_release_to_deploy_first() {
    let steps = recover(&[
        "--snapshot",
        "fixtures/snapshots/deferred-new-minor.json",
        "--deploying",
        "5.3.0",
    ]);
    let gate = gate_step(&steps);
    // dataVersion 50: the gate of 5.3.0 checks v51 only (no requiredBefore) and starts
    // (packages/server/src/database.ts, migrate()); v53, which 5.3.0 requires, is the refusal
    // at a later restart. medmig used to print a refusal on v53 that never happens.
    assert_eq!(
        gate.evidence[0],
        "5.3.0 would start (the gate checks only v51), but its code requires v53 which has not run: once the migrations before v53 complete, a restart of 5.3.0 is refused on v53"
    );
    assert_eq!(
        gate.title,
        "Deploy the latest 5.2.x patch (at least 5.2.4) and let v51–v53 complete"
    );
}

#[test]
fn every_hop_of_a_recovery_can_run_what_it_is_asked_to() {
    // dataVersion 44. v45–v48 came with 5.1.37–5.1.42, v49–v50 with 5.1.43–5.1.44 (required
    // before 5.2.0), v51–v53 with 5.2.1–5.2.4 (v53 required before 5.3.0). 5.1.44 cannot run
    // v51–v53: the 5.2 line must run them.
    let steps = recover(&[
        "--snapshot",
        "fixtures/snapshots/failed-with-retry.json",
        "--deploying",
        "5.3.0",
    ]);
    let gate = gate_step(&steps);
    assert!(
        gate.explanation.contains(
            "deploy the latest 5.1.x patch (at least 5.1.44) and let v45–v50 complete; then \
             deploy the latest 5.2.x patch (at least 5.2.4) and let v51–v53 complete, then deploy 5.3.0"
        ),
        "{}",
        gate.explanation
    );
    assert!(gate.explanation.contains("strict version checks assumed"));
}

#[test]
fn the_gate_checks_only_the_pending_migration() {
    // packages/server/src/database.ts, migrate(): only dataVersion + 1 is checked. At
    // dataVersion 38, 5.2.4 checks v39 (no requiredBefore) and starts; v49 and v50 (required
    // before 5.2.0) are the latent hazard, for the restart after v48 completes.
    let db = at(38, "5.1.23");
    let plan = plan(&db, "5.1.23", "5.2.4");
    assert_eq!(plan.direct_deploy_refused, None);
    assert_eq!(plan.direct_deploy_restart_refused_on, [49, 50]);
    let latent = plan
        .findings
        .iter()
        .find(|f| f.id == "latent-gate-refusal")
        .expect("the latent hazard is a finding");
    assert!(
        latent.message.contains("refused on v49"),
        "{}",
        latent.message
    );
    let target = plan.hops.last().unwrap();
    assert_eq!(target.restart_refused_on, [49, 50]);
    assert!(plan
        .gate_assumes
        .starts_with("strict version checks assumed"));
}

#[test]
fn without_strict_checks_the_gate_does_not_refuse() {
    // migration-utils.ts, enforceStrictMigrationVersionChecks(): the refusal needs
    // NODE_ENV=production or MEDPLUM_ENABLE_STRICT_MIGRATION_VERSION_CHECKS.
    let db = at(48, "5.1.42");
    let strict = plan(&db, "5.1.42", "5.2.4");
    assert_eq!(
        strict.direct_deploy_refused.as_deref(),
        Some("Unable to run this version of Medplum server. Pending post-deploy migration v49 requires server at version 5.1.43 <= version < 5.2.0, but current server version is 5.2.4")
    );
    let lenient = plan_with(
        &db,
        "5.1.42",
        "5.2.4",
        &["--strict-version-checks", "false"],
    );
    assert_eq!(lenient.direct_deploy_refused, None);
    assert!(lenient
        .gate_assumes
        .starts_with("strict version checks off"));
}

#[test]
fn first_boot_skips_the_gate() {
    // migrate(): getPostDeployVersion answers FIRST_BOOT while "firstBoot" is true.
    let db = TestDb::build(
        &["schema"],
        "INSERT INTO \"DatabaseMigration\" VALUES (1, 90, 0, true)",
    );
    let plan = plan(&db, "5.2.4", "5.2.4");
    assert_eq!(plan.direct_deploy_refused, None);
    assert!(plan.direct_deploy_restart_refused_on.is_empty());
}

#[test]
fn intermediate_releases_are_the_latest_patch_of_their_minor() {
    // The manifest names 4.2.0 only as a requiredBefore: it is the lowest 4.2 release medmig
    // can name, not the latest 4.2.x patch.
    let db = at(7, "4.1.3");
    let plan = plan(&db, "4.1.3", "4.4.0");
    assert_eq!(plan.hops[1].release, "4.2.0");
    assert_eq!(plan.hops[1].pick, "the latest 4.2.x patch (at least 4.2.0)");
    assert_eq!(plan.hops[3].pick, "the target");
}

#[test]
fn a_from_that_contradicts_the_database_is_a_finding() {
    // dataVersion 44: v44 (introduced in 5.1.33) ran, so 4.5.2 is not what is deployed.
    let db = at(44, "5.1.33");
    let plan = plan(&db, "4.5.2", "5.2.4");
    let finding = plan
        .findings
        .iter()
        .find(|f| f.id == "from-contradicts-evidence")
        .expect("a finding");
    assert!(
        finding.message.contains("--from 4.5.2"),
        "{}",
        finding.message
    );
    for hop in &plan.hops {
        assert!(
            hop.introduces.iter().all(|n| *n > 44),
            "completed migrations listed as to run: {hop:?}"
        );
    }
}

#[test]
fn an_open_rollback_window_is_protected_unless_the_config_defers() {
    let config = |text: &str| {
        let path = std::env::temp_dir().join(format!("{}.json", unique_name("medplum_config")));
        std::fs::write(&path, text).unwrap();
        path
    };
    let snapshot = "fixtures/snapshots/deferred-new-minor.json";
    let open = config(r#"{"disablePostDeployMigrations": true, "database": {}}"#);
    let steps = recover(&[
        "--snapshot",
        snapshot,
        "--medplum-config",
        open.to_str().unwrap(),
    ]);
    assert_eq!(ids(&steps), ["defer-post-deploy"]);
    assert!(steps[0]
        .evidence
        .iter()
        .any(|e| e.contains("does not read")));
    assert!(steps[0]
        .commands
        .iter()
        .any(|c| c.contains("disableRunPostDeployMigrations")));
    let deferred = config(r#"{"database": {"disableRunPostDeployMigrations": true}}"#);
    let steps = recover(&[
        "--snapshot",
        snapshot,
        "--medplum-config",
        deferred.to_str().unwrap(),
    ]);
    assert_eq!(ids(&steps), ["nothing-to-recover"]);
    std::fs::remove_file(open).unwrap();
    std::fs::remove_file(deferred).unwrap();
}

#[test]
fn contradicting_evidence_is_escalated_with_a_bundle_not_guessed() {
    let db = TestDb::with(&["schema", "malformed-job"]);
    let steps = recover(&["--database-url", &db.url()]);
    assert_eq!(steps[0].id, "collect-and-escalate");
    assert!(steps[0].commands[0].starts_with("medmig bundle"));
    assert!(steps[0]
        .evidence
        .iter()
        .any(|e| e.contains("not valid JSON")));
}

#[test]
fn a_healthy_database_needs_nothing_and_markdown_is_ready_to_paste() {
    let steps = recover(&["--snapshot", "fixtures/snapshots/steady-state.json"]);
    assert_eq!(ids(&steps), ["nothing-to-recover"]);
    let run = medmig(&[
        "recover",
        "--format",
        "markdown",
        "--snapshot",
        "fixtures/snapshots/failed-with-retry.json",
    ]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("## Recovery plan"), "{}", run.stdout);
    assert!(
        run.stdout.contains("1. **Re-run v45") && run.stdout.contains("```sh"),
        "{}",
        run.stdout
    );
    let json: Value = serde_json::from_str(
        &medmig(&[
            "upgrade-plan",
            "--format",
            "json",
            "--snapshot",
            "fixtures/snapshots/steady-state.json",
            "--from",
            "5.2.2",
            "--to",
            "5.2.4",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(json["format_version"], 1);
}
