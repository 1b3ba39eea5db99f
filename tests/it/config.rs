//! `--medplum-config` read as the Medplum server loads and evaluates it: JSON values without
//! coercion, config names with several sources merged left to right, the `env` source, and
//! sources medmig cannot read — through rollback-check, recover, bundle and the connection,
//! with the real binary against a real PostgreSQL.
//!
//! Each test names the Medplum source its expectation comes from (paths in the
//! `medplum/medplum` repository).

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{medmig, medmig_with_env, server_user, unique_name, Run, TestDb};

const DEFERRED: [&str; 2] = ["schema", "deferred-new-minor"];
const BACK: [&str; 4] = ["--to", "5.1.44", "--from", "5.2.2"];

/// A config file in the temporary directory, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        let path = std::env::temp_dir().join(format!("{}.json", unique_name("medplum_config")));
        std::fs::write(&path, text).unwrap();
        ConfigFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `rollback-check --format json` of `db` (connecting with `--database-url` unless
/// `through_config`) with `--medplum-config config` and `env` as the only `MEDPLUM_*`
/// variables; the exit code must match the verdict.
fn rollback(db: &TestDb, config: &str, env: &[(&str, &str)], through_config: bool) -> Value {
    let url = db.url();
    let mut args = vec![
        "rollback-check",
        "--format",
        "json",
        "--medplum-config",
        config,
    ];
    if !through_config {
        args.extend(["--database-url", url.as_str()]);
    }
    args.extend_from_slice(&BACK);
    let run = medmig_with_env(&args, env);
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("{err}: {run:?}"));
    let expected = match report["verdict"].as_str() {
        Some("SAFE") => 0,
        Some("UNSAFE") => 1,
        Some("UNKNOWN") => 3,
        other => panic!("verdict {other:?}"),
    };
    assert_eq!(run.code, expected, "{run:?}");
    report
}

/// The check `id` of a rollback report.
fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {report:#}"))
}

fn outcome<'a>(report: &'a Value, id: &str) -> &'a str {
    check(report, id)["outcome"].as_str().unwrap()
}

fn evidence(report: &Value, id: &str) -> Vec<String> {
    check(report, id)["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_string_false_for_disable_run_post_deploy_migrations_defers() {
    // packages/server/src/migrations/migration-utils.ts, maybeAutoRunPendingPostDeployMigration:
    // `isDisabled = runMigrations === false || disableRunPostDeployMigrations`, a truthiness
    // test; the file is read with JSON.parse (config/loader.ts, loadFileConfig), so "false"
    // stays a non-empty, truthy string.
    let db = TestDb::with(&DEFERRED);
    let config = ConfigFile::new(r#"{"database": {"disableRunPostDeployMigrations": "false"}}"#);
    let report = rollback(&db, config.path(), &[], false);
    assert_eq!(
        outcome(&report, "post-deploy-auto-run"),
        "pass",
        "{report:#}"
    );
    assert_eq!(outcome(&report, "run-migrations-false"), "pass");
    assert_eq!(outcome(&report, "defer-key-not-read"), "pass");
    let evidence = evidence(&report, "post-deploy-auto-run");
    assert!(
        evidence.contains(
            &"database.disableRunPostDeployMigrations is the string \"false\", which the server \
              treats as true: post-deploy migrations are deferred"
                .to_string()
        ),
        "{evidence:?}"
    );
    assert_eq!(report["verdict"], "SAFE");
}

#[test]
fn the_string_false_for_run_migrations_defers_nothing() {
    // packages/server/src/migrations/migration-utils.ts (maybeAutoRunPendingPostDeployMigration,
    // maybeStartPostDeployMigration) and packages/server/src/database.ts (initDatabase) test
    // `runMigrations === false` / `!== false`: the string "false" is neither, so every
    // migration runs, post-deploy ones by themselves.
    let db = TestDb::with(&DEFERRED);
    let config = ConfigFile::new(r#"{"database": {"runMigrations": "false"}}"#);
    let report = rollback(&db, config.path(), &[], false);
    assert_eq!(
        outcome(&report, "post-deploy-auto-run"),
        "fail",
        "{report:#}"
    );
    assert_eq!(outcome(&report, "run-migrations-false"), "pass");
    assert!(evidence(&report, "post-deploy-auto-run").contains(
        &"database.runMigrations is the string \"false\", which is not === false: migrations run"
            .to_string()
    ));
    assert_eq!(
        report["verdict"], "SAFE",
        "warnings never decide the verdict"
    );
}

#[test]
fn run_migrations_false_defers_but_is_warned_about() {
    // packages/server/src/database.ts, initDatabase: `runMigrations !== false` gates the
    // pre-deploy migrations (and so the startup gate); migration-utils.ts,
    // maybeStartPostDeployMigration: `runMigrations === false` answers 400 "Cannot run
    // post-deploy migration since pre-deploy migrations are disabled".
    let db = TestDb::with(&DEFERRED);
    let config = ConfigFile::new(r#"{"database": {"runMigrations": false}}"#);
    let report = rollback(&db, config.path(), &[], false);
    assert_eq!(
        outcome(&report, "post-deploy-auto-run"),
        "pass",
        "{report:#}"
    );
    let warning = check(&report, "run-migrations-false");
    assert_eq!(warning["outcome"], "fail");
    assert_eq!(warning["severity"], "warning");
    let message = warning["message"].as_str().unwrap();
    assert!(
        message
            .contains("Cannot run post-deploy migration since pre-deploy migrations are disabled")
            && message.contains("startup gate"),
        "{message}"
    );
    assert_eq!(report["verdict"], "SAFE");

    // recover never advises runMigrations: false, and says what it costs.
    let steps = recover(&db, config.path());
    let step = steps
        .iter()
        .find(|s| s["id"] == "defer-post-deploy")
        .unwrap_or_else(|| panic!("no defer-post-deploy step: {steps:#?}"));
    let text = step.to_string();
    assert!(
        text.contains("disableRunPostDeployMigrations\\\": true"),
        "{text}"
    );
    assert!(
        text.contains("pre-deploy migrations are disabled"),
        "{text}"
    );
    assert!(
        step["commands"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c.as_str().unwrap().contains("\"runMigrations\": false}")),
        "{text}"
    );
}

/// `recover --format json` of `db` with `--medplum-config config`: its steps.
fn recover(db: &TestDb, config: &str) -> Vec<Value> {
    let run = medmig(&[
        "recover",
        "--format",
        "json",
        "--database-url",
        &db.url(),
        "--medplum-config",
        config,
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    report["steps"].as_array().unwrap().clone()
}

#[test]
fn file_then_env_connects_and_defers_with_the_environment_s_overrides() {
    // packages/server/src/config/loader.ts: loadConfig splits "file:base.json,env" on commas
    // and deep-merges left to right (later wins); loadEnvConfig maps
    // MEDPLUM_DATABASE_DISABLE_RUN_POST_DEPLOY_MIGRATIONS to
    // database.disableRunPostDeployMigrations, a boolean key of config/utils.ts ("true" →
    // true), and MEDPLUM_DATABASE_DBNAME to database.dbname.
    let db = TestDb::with(&DEFERRED);
    let base = ConfigFile::new(&format!(
        r#"{{"baseUrl":"http://localhost:8103/","database":{{{endpoint},
            "dbname":"not_this_one","username":"{}","disableRunPostDeployMigrations":false}}}}"#,
        server_user(),
        endpoint = crate::harness::config_endpoint()
    ));
    let name = format!("file:{},env", base.path());
    let env = [
        ("MEDPLUM_DATABASE_DBNAME", db.name.as_str()),
        (
            "MEDPLUM_DATABASE_DISABLE_RUN_POST_DEPLOY_MIGRATIONS",
            "true",
        ),
    ];
    // No --database-url: medmig connects with the merged database section.
    let report = rollback(&db, &name, &env, true);
    assert_eq!(report["source"]["database"], db.name.as_str());
    assert_eq!(
        outcome(&report, "post-deploy-auto-run"),
        "pass",
        "{report:#}"
    );
    assert!(evidence(&report, "post-deploy-auto-run")
        .contains(&"database.disableRunPostDeployMigrations: true (from env)".to_string()));

    // Without env in the name, MEDPLUM_* variables change nothing: the base file's false.
    let report = rollback(&db, base.path(), &env, false);
    assert_eq!(outcome(&report, "post-deploy-auto-run"), "fail");
    // loadEnvConfig types the variable by `value === 'true'`: "TRUE" is false.
    let env = [(
        "MEDPLUM_DATABASE_DISABLE_RUN_POST_DEPLOY_MIGRATIONS",
        "TRUE",
    )];
    let report = rollback(&db, &name, &env, false);
    assert_eq!(outcome(&report, "post-deploy-auto-run"), "fail");
}

#[test]
fn a_source_medmig_cannot_read_skips_the_checks_and_names_the_gap() {
    // packages/server/src/config/loader.ts, loadSingleConfig: "aws:…" loads from AWS
    // (cloud/aws/config.ts), which medmig cannot read; being later, it may override the file.
    let db = TestDb::with(&DEFERRED);
    let file = ConfigFile::new(r#"{"database": {"disableRunPostDeployMigrations": true}}"#);
    let name = format!("file:{},aws:/medplum/prod/", file.path());
    let report = rollback(&db, &name, &[], false);
    for id in [
        "post-deploy-auto-run",
        "defer-key-not-read",
        "run-migrations-false",
    ] {
        let check = check(&report, id);
        assert_eq!(check["outcome"], "skipped", "{check:#}");
        let message = check["message"].as_str().unwrap();
        assert!(
            message.contains("aws:/medplum/prod/") && message.contains("resolved values"),
            "{message}"
        );
    }
    assert!(evidence(&report, "post-deploy-auto-run")
        .iter()
        .any(|e| e.contains("not read: aws:/medplum/prod/")));
    assert_eq!(
        report["verdict"], "SAFE",
        "a gap in the config is not UNKNOWN"
    );

    // recover: the answer may be incomplete, so the step is given, naming the gap.
    let steps = recover(&db, &name);
    let step = steps
        .iter()
        .find(|s| s["id"] == "defer-post-deploy")
        .unwrap_or_else(|| panic!("{steps:#?}"));
    assert!(step["evidence"].as_array().unwrap().iter().any(|e| e
        .as_str()
        .unwrap()
        .contains("cannot read aws:/medplum/prod/")));
}

#[test]
fn a_config_name_the_server_would_refuse_is_refused_in_one_line() {
    // packages/server/src/config/loader.ts, loadConfig: segments are not trimmed, so " env"
    // throws "Unrecognized config type:  env"; an all-empty name throws "Empty config name".
    let file = ConfigFile::new("{}");
    let spaced = format!("file:{}, env", file.path());
    let line = medmig(&[
        "rollback-check",
        "--snapshot",
        "fixtures/snapshots/deferred-new-minor.json",
        "--to",
        "5.1.44",
        "--medplum-config",
        &spaced,
    ])
    .argument_error()
    .to_string();
    assert!(line.contains("Unrecognized config type:  env"), "{line}");
    assert!(
        line.contains(&format!("\"file:{},env\"", file.path())),
        "{line}"
    );
    let run = medmig(&[
        "status",
        "--snapshot",
        "fixtures/snapshots/deferred-new-minor.json",
        "--medplum-config",
        ",",
    ]);
    assert!(
        run.argument_error().contains("Empty config name"),
        "{run:?}"
    );
}

#[test]
fn an_object_variable_that_is_not_json_is_one_error_line() {
    // packages/server/src/config/loader.ts, loadEnvConfig: "ssl" is an object key of
    // config/utils.ts, parsed with JSON.parse, which throws on this.
    let db = TestDb::with(&DEFERRED);
    let run: Run = medmig_with_env(
        &[
            "rollback-check",
            "--database-url",
            &db.url(),
            "--medplum-config",
            "env",
            "--to",
            "5.1.44",
        ],
        &[
            ("MEDPLUM_DATABASE_SSL", "{require: true, password: hunter2}"),
            ("MEDPLUM_DATABASE_RUN_MIGRATIONS", "false"),
        ],
    );
    let line = run.single_error();
    assert!(
        line.contains("MEDPLUM_DATABASE_SSL is not valid JSON"),
        "{line}"
    );
    assert!(!line.contains("hunter2"), "{line}");
}

#[test]
fn the_bundle_holds_the_merged_config_and_which_sources_were_read() {
    // packages/server/src/config/loader.ts: "file:…,env,aws:…" merges the file and the
    // environment (env wins); the aws source is not read by medmig and is named as a gap.
    let db = TestDb::with(&DEFERRED);
    let base = ConfigFile::new(&format!(
        r#"{{"baseUrl":"http://localhost:8103/","database":{{{endpoint},
            "dbname":"{}","username":"{}","runMigrations":false}}}}"#,
        db.name,
        server_user(),
        endpoint = crate::harness::config_endpoint()
    ));
    let out = std::env::temp_dir().join(format!("{}.tar.gz", unique_name("medmig_bundle")));
    let name = format!("file:{},env,aws:/medplum/prod/", base.path());
    let run = medmig_with_env(
        &[
            "bundle",
            "--out",
            out.to_str().unwrap(),
            "--medplum-config",
            &name,
        ],
        &[
            ("MEDPLUM_DATABASE_PASSWORD", "env-Pa55word"),
            (
                "MEDPLUM_DATABASE_DISABLE_RUN_POST_DEPLOY_MIGRATIONS",
                "true",
            ),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("cannot read aws:/medplum/prod/"),
        "{run:?}"
    );
    let files = crate::bundle::unpack(&out);
    std::fs::remove_file(&out).unwrap();
    for (file, bytes) in &files {
        assert!(
            !String::from_utf8_lossy(bytes).contains("env-Pa55word"),
            "the password leaked into {file}"
        );
    }
    let merged: Value = serde_json::from_slice(&files["config/medplum.config.json"]).unwrap();
    assert_eq!(merged["database"]["disableRunPostDeployMigrations"], true);
    assert_eq!(merged["database"]["runMigrations"], false);
    assert_eq!(merged["database"]["dbname"], db.name.as_str());
    let sources: Value = serde_json::from_slice(&files["config/sources.json"]).unwrap();
    assert_eq!(sources["complete"], false);
    assert_eq!(sources["read"].as_array().unwrap().len(), 2);
    assert_eq!(sources["read"][1], "env");
    assert_eq!(sources["not_read"][0]["source"], "aws:/medplum/prod/");
    let post_deploy: Value = serde_json::from_slice(&files["config/post-deploy.json"]).unwrap();
    assert_eq!(
        post_deploy["server_defers_post_deploy_migrations"],
        Value::Null
    );
    assert_eq!(post_deploy["defers_by_the_sources_read"], true);
    assert_eq!(
        post_deploy["switches"]["database.disableRunPostDeployMigrations"],
        true
    );
    assert_eq!(
        post_deploy["set_by"]["database.disableRunPostDeployMigrations"],
        "env"
    );
    assert!(post_deploy["meaning"]
        .as_str()
        .unwrap()
        .contains("aws:/medplum/prod/"));
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert!(manifest["not_collected"]
        .as_array()
        .unwrap()
        .iter()
        .any(|gap| gap["what"] == "config source aws:/medplum/prod/"));
}
