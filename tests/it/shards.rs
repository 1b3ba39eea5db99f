//! Sharded deployments: a Medplum config with `shards` over several real databases, read at
//! once; one shard unreachable; one shard with a started post-deploy migration while the
//! others have not. With MEDMIG_TEST_SECOND_DATABASE_URL (scripts/test-matrix sets it to the
//! machine's own server while the matrix runs another major), one shard lives on that second
//! server, so one deployment spans two PostgreSQL majors.

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{medmig, server_url, unique_name, TestDb};

/// The server of the second shard: another server when the matrix gives one, else the same.
fn second_server() -> String {
    std::env::var("MEDMIG_TEST_SECOND_DATABASE_URL").unwrap_or_else(|_| server_url())
}

/// 5.1.44 upgraded to 5.2.2, post-deploy migrations deferred: v51 has no job on any database.
const DEFERRED: [&str; 2] = ["schema", "deferred-new-minor"];

/// v51's job, accepted three minutes ago by a 5.2.2 server: a started post-deploy migration.
const V51_STARTED: &str = "SELECT fixture.job('e5100000-0000-4000-8000-000000000051', 51,
    ARRAY['accepted'], ARRAY[now() - interval '3 minutes'], NULL, '5.2.2');";

/// A database section of a Medplum config for the database at `url`.
fn section(url: &str) -> Value {
    let parsed = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .expect("a postgres:// URL");
    let (auth, rest) = parsed.split_once('@').expect("a user in the URL");
    let (user, password) = match auth.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (auth, None),
    };
    let (host_port, dbname) = rest.split_once('/').expect("a database in the URL");
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "5432"));
    let mut section = serde_json::json!({
        "host": host, "port": port.parse::<u16>().unwrap(), "dbname": dbname, "username": user,
    });
    if let Some(password) = password {
        section["password"] = Value::from(password);
    }
    section
}

/// A deployment: the global database, shards a and b, and optionally shard c, which nothing
/// listens for.
struct Deployment {
    _databases: Vec<TestDb>,
    config: PathBuf,
    names: Vec<String>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

fn deployment(b_extra: &str, with_unreachable: bool) -> Deployment {
    let global = TestDb::build(&DEFERRED, "");
    let a = TestDb::build(&DEFERRED, "");
    let b = TestDb::build_on(&second_server(), &DEFERRED, b_extra);
    let mut shards = serde_json::json!({
        "shard-a": {"database": section(&a.url())},
        "shard-b": {"database": section(&b.url())},
    });
    if with_unreachable {
        shards["shard-c"] = serde_json::json!({"database": {
            "host": "127.0.0.1", "port": 1, "dbname": "nowhere", "username": "medmig"}});
    }
    let config = serde_json::json!({"database": section(&global.url()), "shards": shards});
    let path = std::env::temp_dir().join(format!("{}.json", unique_name("medplum-sharded")));
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let names = vec![global.name.clone(), a.name.clone(), b.name.clone()];
    Deployment {
        _databases: vec![global, a, b],
        config: path,
        names,
    }
}

impl Deployment {
    fn run(&self, args: &[&str]) -> crate::harness::Run {
        let config = self.config.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--medplum-config", &config, "--connect-timeout", "3s"]);
        medmig(&all)
    }
}

#[test]
fn status_reads_every_shard_and_says_where_they_differ() {
    let deployment = deployment(V51_STARTED, true);
    let run = deployment.run(&["status", "--format", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["source"]["database"], deployment.names[0]);
    assert_eq!(status["post_deploy"]["data_version"], 50);
    let shards = status["shards"].as_array().unwrap();
    let ids: Vec<&str> = shards.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["shard-a", "shard-b", "shard-c"]);
    // shard-a stands where the global database does.
    assert!(shards[0].get("differences").is_none(), "{}", shards[0]);
    assert_eq!(shards[0]["source"]["database"], deployment.names[1]);
    // shard-b has started v51.
    assert_eq!(
        shards[1]["differences"],
        serde_json::json!(["v51 accepted (global pending)"])
    );
    assert_eq!(shards[1]["source"]["database"], deployment.names[2]);
    if std::env::var("MEDMIG_TEST_SECOND_DATABASE_URL").is_ok_and(|second| second != server_url()) {
        // In the matrix, shard-b is on the machine's own server and the others on the
        // matrix's: two servers (of two majors, but where the matrix runs the machine's own
        // major, 15, the same one).
        let port = |url: &str| {
            url.rsplit_once(':')
                .unwrap()
                .1
                .split('/')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            shards[1]["source"]["port"].to_string(),
            port(&second_server())
        );
        assert_eq!(status["source"]["port"].to_string(), port(&server_url()));
        assert_ne!(
            shards[1]["source"]["port"], status["source"]["port"],
            "{status}"
        );
    }
    // shard-c is a gap, not an abort.
    assert!(
        shards[2]["gap"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{}",
        shards[2]
    );
    let findings: Vec<&str> = status["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(findings.contains(&"shards-differ"), "{findings:?}");
    assert!(findings.contains(&"shard-not-read"), "{findings:?}");
    assert_eq!(
        status["shard_summary"],
        "3 shards besides the global database, 2 read; differing from the global database: \
         shard-b; not read: shard-c"
    );

    // --fail-on looks at every database: only shard-b's v51 is accepted.
    let run = deployment.run(&["status", "--fail-on", "accepted"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run
        .stdout
        .contains("Shard shard-a: as the global database (dataVersion 50)"));
    assert!(run.stdout.contains(
        "Shard shard-b: differs from the global database: v51 accepted (global pending)"
    ));
    // CSV: a shard column, the global database's rows first.
    let run = deployment.run(&["status", "--format", "csv"]);
    let mut lines = run.stdout.lines();
    assert!(lines.next().unwrap().starts_with("shard,version,state,"));
    assert!(run.stdout.contains("\nshard-b,51,accepted,"), "{run:?}");
    assert!(run.stdout.contains("\nglobal,51,pending,"), "{run:?}");
}

#[test]
fn rollback_check_is_unsafe_when_one_shard_started_a_newer_migration() {
    let deployment = deployment(V51_STARTED, false);
    let run = deployment.run(&["rollback-check", "--to", "5.1.44", "--from", "5.2.2"]);
    assert_eq!(run.code, 1, "{run:?}");
    let headline = run.stdout.lines().next().unwrap();
    assert!(
        headline.starts_with("UNSAFE: shard shard-b: post-deploy migration v51"),
        "{run:?}"
    );
    // The evidence names the shard.
    assert!(
        run.stdout
            .contains("- shard-b: job e5100000-0000-4000-8000-000000000051 for v51"),
        "{run:?}"
    );
}

#[test]
fn rollback_check_is_unknown_when_a_shard_cannot_be_read_and_safe_when_all_agree() {
    let deployment = deployment("", true);
    let run = deployment.run(&[
        "rollback-check",
        "--to",
        "5.1.44",
        "--from",
        "5.2.2",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["verdict"], "UNKNOWN");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "shard-not-read")
        .unwrap();
    assert_eq!(check["outcome"], "unknown");
    assert!(check["evidence"][0]
        .as_str()
        .unwrap()
        .starts_with("shard shard-c: cannot connect"));

    let deployment = deployment_all_safe();
    let run = deployment.run(&["rollback-check", "--to", "5.1.44", "--from", "5.2.2"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .lines()
            .next()
            .unwrap()
            .ends_with("(on every database: the global database, shard shard-a, shard shard-b)"),
        "{run:?}"
    );
}

fn deployment_all_safe() -> Deployment {
    deployment("", false)
}

#[test]
fn one_shard_can_be_chosen_live_or_from_a_snapshot() {
    let deployment = deployment(V51_STARTED, false);
    let run = deployment.run(&["status", "--format", "json", "--shard", "shard-b"]);
    assert_eq!(run.code, 0, "{run:?}");
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["source"]["database"], deployment.names[2]);
    assert!(status.get("shards").is_none());

    let run = deployment.run(&["status", "--shard", "nowhere"]);
    assert!(
        run.single_error()
            .contains("--shard nowhere: the deployment has no such shard; its databases are global, shard-a, shard-b"),
        "{run:?}"
    );

    // A snapshot keeps one section per database (format 3), each shard's schema contract
    // written once where it is the global database's (format 4), and --shard picks one.
    let file = std::env::temp_dir().join(format!("{}.json", unique_name("sharded")));
    let out = file.display().to_string();
    let run = deployment.run(&["snapshot", "--out", &out]);
    assert_eq!(run.code, 0, "{run:?}");
    let snapshot: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(snapshot["format_version"], 4);
    assert_eq!(snapshot["shards"].as_array().unwrap().len(), 2);
    // shard-a shares the global database's server, so its contract is the global one's;
    // shard-b, which the matrix puts on a server of another major, may have its own.
    for shard in snapshot["shards"].as_array().unwrap() {
        let own = shard["snapshot"].get("schema").is_some();
        match shard["schema_same_as"].as_str() {
            Some(named) => assert!(named == "global" && !own, "{shard:#}"),
            None => assert!(own && shard["id"] == "shard-b", "{}", shard["id"]),
        }
    }
    assert_eq!(snapshot["shards"][0]["schema_same_as"], "global");
    assert!(!snapshot["schema"]["tables"].as_object().unwrap().is_empty());
    assert_eq!(
        snapshot["shards"][1]["snapshot"]["source"]["database"],
        deployment.names[2]
    );
    let run = medmig(&[
        "status",
        "--snapshot",
        &out,
        "--shard",
        "shard-b",
        "--format",
        "json",
    ]);
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["source"]["database"], deployment.names[2]);
    assert_eq!(status["post_deploy"]["pending"], 51);
    let run = medmig(&[
        "rollback-check",
        "--snapshot",
        &out,
        "--to",
        "5.1.44",
        "--from",
        "5.2.2",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn a_bundle_carries_every_shard_redacted_as_the_global_database() {
    let deployment = deployment(V51_STARTED, true);
    let file = std::env::temp_dir().join(format!("{}.tar.gz", unique_name("sharded-bundle")));
    let out = file.display().to_string();
    // The shard's database name as a keyword: it must not survive anywhere in the bundle.
    let run = deployment.run(&["bundle", "--out", &out, "--keyword", &deployment.names[2]]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = medmig(&["status", "--bundle", &out, "--format", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    let shards = status["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    assert_eq!(shards[1]["differences"][0], "v51 accepted (global pending)");
    let database = shards[1]["source"]["database"].as_str().unwrap();
    assert!(database.starts_with("[keyword-"), "{database}");
    assert!(!run.stdout.contains(&deployment.names[2]));

    // One timeline, each job event naming its database; the unread shard is a gap.
    let files = crate::bundle::unpack(&file);
    let timeline: Vec<Value> = serde_json::from_slice(&files["timeline.json"]).unwrap();
    let v51: Vec<&Value> = timeline
        .iter()
        .filter(|e| e["version"] == 51 && e["source"] == "database")
        .collect();
    assert_eq!(v51.len(), 1, "{timeline:?}");
    assert_eq!(v51[0]["shard"], "shard-b");
    assert!(timeline
        .iter()
        .filter(|e| e["source"] == "database")
        .all(|e| e["shard"].is_string()));
    // Each shard read has its own diagnostics, redacted as the global database's.
    for shard in ["01", "02"] {
        let server = &files[&format!("diagnostics/shards/{shard}/server.json")];
        let server: Value = serde_json::from_slice(server).unwrap();
        assert!(server["server_version_num"].is_number(), "{server}");
        assert!(files.contains_key(&format!("diagnostics/shards/{shard}/activity.json")));
    }
    let b_server = String::from_utf8_lossy(&files["diagnostics/shards/02/server.json"]);
    assert!(!b_server.contains(&deployment.names[2]), "{b_server}");
    assert!(!files
        .keys()
        .any(|name| name.starts_with("diagnostics/shards/03")));
    let verify = medmig(&["bundle", "verify", &out]);
    assert_eq!(verify.code, 0, "{verify:?}");
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert!(manifest.to_string().contains("shard shard-c"), "{manifest}");
    assert!(!String::from_utf8_lossy(&files["snapshot.json"]).contains(&deployment.names[2]));
    let _ = std::fs::remove_file(&file);
}

/// The config loader of Medplum's sharding line refuses `shards.global`
/// (`packages/server/src/config/loader.ts` @a0b9cff1; see /work/notes/h17-facts.md).
#[test]
fn a_config_with_a_global_shard_is_refused() {
    let path = std::env::temp_dir().join(format!("{}.json", unique_name("global-shard")));
    std::fs::write(
        &path,
        r#"{"database": {"host": "127.0.0.1", "dbname": "x"},
            "shards": {"global": {"database": {"host": "127.0.0.1", "dbname": "y"}}}}"#,
    )
    .unwrap();
    let config = path.display().to_string();
    let run = medmig(&["status", "--medplum-config", &config]);
    assert!(
        run.single_error()
            .contains("has a shard \"global\": that id is reserved"),
        "{run:?}"
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn upgrade_plan_and_recover_give_each_shard_whose_plan_differs() {
    let deployment = deployment(V51_STARTED, true);
    let run = deployment.run(&["recover", "--format", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let steps: Value = serde_json::from_str(&run.stdout).unwrap();
    let shards: Vec<(&str, &str)> = steps["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["comparison"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shards,
        [
            ("shard-a", "same"),
            ("shard-b", "different"),
            ("shard-c", "not_known")
        ]
    );
    // shard-b, which started v51, has its own steps.
    assert!(steps["shards"][1]["plan"]["steps"].is_array(), "{steps}");
    assert_ne!(steps["shards"][1]["plan"]["steps"], steps["steps"]);

    let run = deployment.run(&["upgrade-plan", "--to", "5.2.4", "--from", "5.2.2"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("Shard shard-a: the same as the global database"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("Shard shard-c: not known: the shard was not read: cannot connect"),
        "{run:?}"
    );
    let run = deployment.run(&[
        "upgrade-plan",
        "--to",
        "5.2.4",
        "--from",
        "5.2.2",
        "--format",
        "markdown",
    ]);
    assert!(
        run.stdout
            .contains("\n## Shard shard-a: the same as the global database\n"),
        "{run:?}"
    );
}

#[test]
fn wait_follows_every_shard_and_names_the_one_that_failed() {
    // Every database at dataVersion 50: v50 is complete everywhere.
    let all_done = deployment("", false);
    let run = all_done.run(&["wait", "--until", "v50"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("has completed on all 3 databases (the global one and every shard)"),
        "{run:?}"
    );
    // shard-b's v51 failed; the others have not started it.
    let one_failed = deployment(
        "SELECT fixture.job('e5100000-0000-4000-8000-000000000051', 51,
           ARRAY['accepted', 'error'], ARRAY[now() - interval '9 minutes', now() - interval '2 minutes'],
           NULL, '5.2.2');",
        false,
    );
    let run = one_failed.run(&[
        "wait",
        "--until",
        "v51",
        "--format",
        "json",
        "--interval",
        "1s",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let events: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let started = &events[0];
    let followed: Vec<String> = started["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} v{} {}",
                m["shard"].as_str().unwrap(),
                m["version"],
                m["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        followed,
        [
            "global v51 pending",
            "shard-a v51 pending",
            "shard-b v51 failed"
        ]
    );
    let finished = events.last().unwrap();
    assert!(
        finished["reason"]
            .as_str()
            .unwrap()
            .starts_with("shard-b v51 is failed"),
        "{finished}"
    );
}

#[test]
fn rollback_check_is_never_safe_for_a_deployment_whose_shards_were_not_all_read() {
    let deployment = deployment("", false);
    let config = deployment.config.display().to_string();
    let global = crate::harness::url_for(&server_url(), &deployment.names[0]);
    // The global database through --database-url, the config for its settings only: the
    // config's shards are not in the evidence.
    let run = medmig(&[
        "rollback-check",
        "--to",
        "5.1.44",
        "--from",
        "5.2.2",
        "--database-url",
        &global,
        "--medplum-config",
        &config,
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .contains("shard shard-a: named by the --medplum-config but not in the evidence"),
        "{run:?}"
    );
    // One database chosen with --shard: the others were not read.
    let run = deployment.run(&[
        "rollback-check",
        "--to",
        "5.1.44",
        "--from",
        "5.2.2",
        "--shard",
        "global",
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .contains("shard shard-b: not read, since only the global database was (--shard)"),
        "{run:?}"
    );
    // …also from the snapshot such a run writes.
    let file = std::env::temp_dir().join(format!("{}.json", unique_name("one-shard")));
    let out = file.display().to_string();
    assert_eq!(
        deployment
            .run(&["snapshot", "--out", &out, "--shard", "shard-a"])
            .code,
        0
    );
    let run = medmig(&[
        "rollback-check",
        "--snapshot",
        &out,
        "--to",
        "5.1.44",
        "--from",
        "5.2.2",
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .contains("the global database: not read, since only shard shard-a was"),
        "{run:?}"
    );
    let _ = std::fs::remove_file(&file);

    // --shard names the config's shards: with another connection source it is refused.
    let run = medmig(&["status", "--database-url", &global, "--shard", "shard-a"]);
    assert!(
        run.single_error()
            .contains("--shard shard-a: the shards are those of the --medplum-config"),
        "{run:?}"
    );
}

#[test]
fn without_from_each_database_infers_the_release_as_one_database_would() {
    let deployment = deployment("", false);
    let global = crate::harness::url_for(&server_url(), &deployment.names[0]);
    let alone = medmig(&[
        "rollback-check",
        "--to",
        "5.1.44",
        "--database-url",
        &global,
    ]);
    let sharded = deployment.run(&["rollback-check", "--to", "5.1.44"]);
    assert_eq!(sharded.code, alone.code, "{sharded:?}\n{alone:?}");
}

#[test]
fn an_unread_shard_is_unknown_to_fail_on_and_csv_and_a_bad_snapshot_is_refused() {
    let deployment = deployment("", true);
    let run = deployment.run(&["status", "--fail-on", "unknown"]);
    assert_eq!(run.code, 1, "{run:?}");
    let run = deployment.run(&["status", "--format", "csv"]);
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("shard-c,"))
        .unwrap();
    assert!(row.starts_with("shard-c,,unknown,"), "{row}");
    assert!(row.contains("connection refused"), "{row}");

    let file = std::env::temp_dir().join(format!("{}.json", unique_name("bad-shards")));
    for (shards, why) in [
        (
            r#"[{"id": "global", "gap": "x"}]"#,
            "a shard named \"global\"",
        ),
        (
            r#"[{"id": "a", "gap": "x"}, {"id": "a", "gap": "y"}]"#,
            "two shards named \"a\"",
        ),
    ] {
        let text = std::fs::read_to_string(crate::harness::fixture_path(
            "snapshots/deferred-new-minor.json",
        ))
        .unwrap();
        let mut value: Value = serde_json::from_str(&text).unwrap();
        value["format_version"] = Value::from(3);
        value["shards"] = serde_json::from_str(shards).unwrap();
        std::fs::write(&file, value.to_string()).unwrap();
        let run = medmig(&["status", "--snapshot", &file.display().to_string()]);
        assert!(run.single_error().contains(why), "{run:?}");
    }
    let _ = std::fs::remove_file(&file);
}
