//! Schema traces of post-deploy migrations, from the real binary against databases built with
//! the tables and indexes as Medplum's generated schema has them (`catalogue-tables.sql`,
//! transcribed from `packages/server/src/migrations/schema/schema.sql`): v30 dropping the
//! PasswordChangeRequest tables (`packages/server/src/migrations/data/v30.ts`), v17 creating
//! three trigram indexes on "HumanName" (`.../data/v17.ts`).

use serde_json::Value;

use crate::harness::{medmig, status_json, take_snapshot, unique_name, StatusJson, TestDb};

/// The three tables v30.ts drops.
const V30_TABLES: &str = r#"
    DROP TABLE "PasswordChangeRequest_References";
    DROP TABLE "PasswordChangeRequest_History";
    DROP TABLE "PasswordChangeRequest";"#;

/// v17.ts's indexes, as its statements create them.
const V17_INDEXES: &str = r#"
    CREATE INDEX "HumanName_nameTrgm_idx" ON "HumanName" USING gin ("name" gin_trgm_ops);
    CREATE INDEX "HumanName_givenTrgm_idx" ON "HumanName" USING gin ("given" gin_trgm_ops);
    CREATE INDEX "HumanName_familyTrgm_idx" ON "HumanName" USING gin ("family" gin_trgm_ops);"#;

/// A database at `data_version`, every migration up to it completed by a job of `server`.
fn at(data_version: u32, server: &str, extra: &str) -> TestDb {
    TestDb::build(
        &["schema", "catalogue-tables"],
        &format!(
            r#"INSERT INTO "DatabaseMigration" VALUES (1, 100, {data_version}, false);
               SELECT fixture.completed_jobs(1, {data_version}, interval '5 days', '{server}');
               {extra}"#
        ),
    )
}

fn rollback(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["rollback-check", "--format", "json"];
    all.extend_from_slice(args);
    let run = medmig(&all);
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("{err}: {run:?}"));
    (run.code, report)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {report:#}"))
}

fn findings<'a>(report: &'a StatusJson, id: &str, version: u32) -> Vec<&'a str> {
    report
        .findings
        .iter()
        .filter(|f| f.id == id && f.version == Some(version))
        .map(|f| f.severity.as_str())
        .collect()
}

#[test]
fn before_v30_its_tables_are_there_and_nothing_is_traced() {
    let db = at(29, "4.5.2", "");
    let report = status_json(&db.url(), &[]);
    assert!(report.schema_traces.compared, "{:?}", report.schema_traces);
    let v30 = report.migration(30);
    assert_eq!(v30.state, "pending");
    assert_eq!(v30.migration_type.as_deref(), Some("custom"));
    assert!(v30.traces.as_ref().unwrap().present.is_empty());
    assert!(findings(&report, "migration-traces-present", 30).is_empty());

    let (code, verdict) = rollback(&[
        "--to",
        "4.5.2",
        "--from",
        "5.0.0",
        "--database-url",
        &db.url(),
    ]);
    assert_eq!(check(&verdict, "schema-breaking-traces")["outcome"], "pass");
    assert_eq!(
        check(&verdict, "schema-not-compared")["outcome"],
        "fail",
        "v41, v45, v52 are not catalogued"
    );
    assert_eq!(code, 0, "{verdict:#}");
    assert!(verdict["headline"]
        .as_str()
        .unwrap()
        .contains("compared with the migration catalogue"));
}

#[test]
fn after_v30_ran_without_its_job_record_the_dropped_tables_make_a_rollback_unsafe() {
    // v30's work done (the tables are gone), its job record missing, dataVersion still 29.
    let db = at(29, "4.5.2", V30_TABLES);
    let report = status_json(&db.url(), &[]);
    let v30 = report.migration(30);
    assert_eq!((v30.state.as_str(), v30.attempts), ("pending", 0));
    let traces = v30.traces.as_ref().unwrap();
    assert_eq!(traces.present.len(), 3);
    assert!(traces
        .present
        .iter()
        .all(|t| t.effect == "table-dropped" && t.strength == "strong" && t.breaking));
    assert_eq!(
        findings(&report, "migration-traces-present", 30),
        ["warning"]
    );

    // No job started, yet the schema shows v30's work: UNSAFE, with the tables as evidence.
    let args = [
        "--to",
        "4.5.2",
        "--from",
        "5.0.0",
        "--database-url",
        &db.url(),
    ];
    let (code, verdict) = rollback(&args);
    assert_eq!(code, 1, "{verdict:#}");
    assert_eq!(check(&verdict, "post-deploy-started")["outcome"], "pass");
    let breaking = check(&verdict, "schema-breaking-traces");
    assert_eq!(breaking["outcome"], "fail");
    let evidence = breaking["evidence"].to_string();
    for table in [
        "PasswordChangeRequest",
        "PasswordChangeRequest_History",
        "PasswordChangeRequest_References",
    ] {
        assert!(
            evidence.contains(&format!("table \\\"{table}\\\" is gone")),
            "{evidence}"
        );
    }
    assert!(evidence.contains("v30 (introduced in 5.0.0)"), "{evidence}");
    assert!(verdict["headline"]
        .as_str()
        .unwrap()
        .starts_with("UNSAFE: the schema already shows"));

    // The same answer offline, from a snapshot.
    let (snapshot, _) = take_snapshot(&db.url());
    let (code, offline) = rollback(&[
        "--to",
        "4.5.2",
        "--from",
        "5.0.0",
        "--snapshot",
        snapshot.to_str().unwrap(),
    ]);
    std::fs::remove_file(&snapshot).unwrap();
    assert_eq!((code, &offline["checks"]), (1, &verdict["checks"]));
}

#[test]
fn v30_counted_applied_with_its_tables_still_there_is_missing_its_effects() {
    let db = at(30, "5.0.0", "");
    let report = status_json(&db.url(), &[]);
    assert_eq!(report.migration(30).state, "completed");
    assert_eq!(
        findings(&report, "migration-effects-missing", 30),
        ["warning"]
    );
    let missing = &report.migration(30).traces.as_ref().unwrap().missing;
    assert_eq!(missing.len(), 3);
    assert!(missing.iter().all(|t| t.seen.ends_with("still exists")));
}

#[test]
fn an_interrupted_v17_leaves_an_invalid_index_tied_to_it_and_recover_reruns_v17() {
    // v17's job failed while its second index was being built concurrently.
    let db = at(
        16,
        "4.3.2",
        &format!(
            r#"{V17_INDEXES}
            SELECT fixture.job('e1700000-0000-4000-8000-000000000017', 17,
              ARRAY['accepted', 'error'],
              ARRAY[now() - interval '3 hours', now() - interval '2 hours'],
              '{{"resourceType":"Parameters","parameter":[{{"name":"error","valueString":"canceling statement due to user request"}}]}}',
              '4.3.2');
            UPDATE pg_index SET indisvalid = false
            WHERE indexrelid = '"HumanName_givenTrgm_idx"'::regclass;"#
        ),
    );
    let report = status_json(&db.url(), &[]);
    assert_eq!(report.migration(17).state, "failed");
    assert_eq!(report.invalid_indexes.len(), 1);
    let invalid = &report.invalid_indexes[0];
    assert_eq!(
        (invalid.index.as_str(), invalid.created_by),
        ("HumanName_givenTrgm_idx", Some(17))
    );
    let tied = report
        .findings
        .iter()
        .find(|f| f.id == "invalid-index")
        .unwrap();
    assert_eq!(tied.version, Some(17));
    assert!(
        tied.message
            .contains("post-deploy migration v17 (failed) creates it"),
        "{}",
        tied.message
    );
    // The invalid index shows v17 ran part-way: strong, where valid indexes alone are not.
    assert_eq!(
        findings(&report, "migration-traces-present", 17),
        ["warning"]
    );
    let v17 = report.migration(17).traces.as_ref().unwrap();
    let invalid: Vec<&str> = v17
        .present
        .iter()
        .filter(|t| t.invalid)
        .map(|t| t.object.as_str())
        .collect();
    assert_eq!(invalid, ["\"HumanName\".\"HumanName_givenTrgm_idx\""]);

    let run = medmig(&["recover", "--format", "json", "--database-url", &db.url()]);
    assert_eq!(run.code, 0, "{run:?}");
    let steps: Value = serde_json::from_str(&run.stdout).unwrap();
    let drop = steps["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "drop-invalid-index")
        .expect("a drop step");
    assert!(
        drop["title"].as_str().unwrap().ends_with("left by v17"),
        "{drop:#}"
    );
    assert!(
        drop["explanation"]
            .as_str()
            .unwrap()
            .contains("then re-run v17"),
        "{drop:#}"
    );
}

#[test]
fn an_accepted_v17_whose_index_is_being_built_is_running_not_queued() {
    // A custom migration writes nothing to its job until it ends; the index it is building
    // (invalid until the build ends) shows it runs.
    let db = at(
        16,
        "4.3.2",
        &format!(
            r#"{V17_INDEXES}
            SELECT fixture.job('e1700000-0000-4000-8000-000000000017', 17,
              ARRAY['accepted'], ARRAY[now() - interval '5 minutes'], NULL, '4.3.2');
            UPDATE pg_index SET indisvalid = false
            WHERE indexrelid = '"HumanName_familyTrgm_idx"'::regclass;"#
        ),
    );
    let report = status_json(&db.url(), &[]);
    let v17 = report.migration(17);
    assert_eq!(v17.state, "running", "{v17:?}");
    assert!(
        v17.detail.as_deref().unwrap().contains("not queued"),
        "{v17:?}"
    );
}

#[test]
fn v17_indexes_without_any_job_are_weak_traces_never_a_blocker() {
    // The indexes exist while dataVersion is 16 and no job for v17 was ever recorded: a
    // pre-deploy migration or a fresh install may have made them (IF NOT EXISTS).
    let db = at(16, "4.3.2", V17_INDEXES);
    let report = status_json(&db.url(), &[]);
    let v17 = report.migration(17);
    assert_eq!((v17.state.as_str(), v17.attempts), ("pending", 0));
    let traces = v17.traces.as_ref().unwrap();
    assert_eq!(traces.present.len(), 3);
    assert!(traces
        .present
        .iter()
        .all(|t| t.strength == "weak" && !t.breaking));
    assert_eq!(findings(&report, "migration-traces-present", 17), ["info"]);

    let (_, verdict) = rollback(&[
        "--to",
        "4.2.6",
        "--from",
        "4.3.2",
        "--database-url",
        &db.url(),
    ]);
    // Medplum's tables here are past v13 (columns dropped) and v16 (NOT NULL set), which
    // 4.2.6 does not know either: those break it; v17's indexes never do.
    let breaking = check(&verdict, "schema-breaking-traces")["evidence"].to_string();
    assert!(breaking.contains("v13 (introduced in 4.3.0)"), "{breaking}");
    assert!(!breaking.contains("v17"), "{breaking}");
    let additive = check(&verdict, "schema-additive-traces");
    assert_eq!(
        (&additive["severity"], &additive["outcome"]),
        (&"warning".into(), &"fail".into())
    );
    assert!(additive["evidence"]
        .to_string()
        .contains("HumanName_nameTrgm_idx"));
}

#[test]
fn a_replaced_catalogue_is_used_and_a_bad_one_is_refused_in_one_line() {
    let db = at(29, "4.5.2", V30_TABLES);
    let file = |name: &str| std::env::temp_dir().join(unique_name(name));
    // A catalogue that knows nothing of v30's effects: no trace, no blocker.
    let silent = file("medmig_catalogue");
    std::fs::write(
        &silent,
        r#"{"format": "medmig-migration-catalogue", "format_version": 1, "migrations": {
            "v30": {"type": "custom", "confidence": "high",
                    "source": ["packages/server/src/migrations/data/v30.ts@0000000000000000000000000000000000000000"]}}}"#,
    )
    .unwrap();
    let catalogue = silent.to_str().unwrap();
    let report = status_json(&db.url(), &["--migration-catalogue", catalogue]);
    assert_eq!(report.schema_traces.catalogue, catalogue);
    assert!(findings(&report, "migration-traces-present", 30).is_empty());

    let bad = file("medmig_bad_catalogue");
    std::fs::write(
        &bad,
        r#"{"format": "medmig-migration-catalogue", "format_version": 1, "migrations": {
            "v30": {"type": "custom", "confidence": "high", "source": []}}}"#,
    )
    .unwrap();
    let run = medmig(&[
        "status",
        "--database-url",
        &db.url(),
        "--migration-catalogue",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty());
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("v30 names no source file"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(&silent).unwrap();
    std::fs::remove_file(&bad).unwrap();
}

#[test]
fn upgrade_plan_says_what_each_hop_s_migrations_will_do() {
    let db = at(29, "4.5.2", "");
    let run = medmig(&[
        "upgrade-plan",
        "--format",
        "json",
        "--to",
        "5.1.0",
        "--from",
        "4.5.2",
        "--database-url",
        &db.url(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    let work = |hop: usize| plan["hops"][hop]["work"].as_array().unwrap().clone();
    let first = work(0);
    let versions: Vec<u64> = first
        .iter()
        .map(|w| w["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [30, 31, 32]);
    assert_eq!(first[0]["migration_type"], "custom");
    let v30 = first[0]["summary"].as_str().unwrap();
    assert!(v30.starts_with("custom: drops 3 tables"), "{v30}");
    assert!(v30.contains("\"PasswordChangeRequest\""), "{v30}");
    // v31 rebuilds ValueSets (a backfill), v32 creates indexes only.
    assert_eq!(
        (
            first[1]["rewrites_data"].as_bool(),
            first[2]["rewrites_data"].as_bool()
        ),
        (Some(true), Some(false))
    );
    // Told once: the next hop, which must wait for them, does not repeat them.
    assert!(work(1).is_empty(), "{plan:#}");
}
