//! Reading Medplum's Redis: queue states made by the real `bullmq` package (5.65.0, the
//! version Medplum's server pins) through `fixtures/bullmq/states.mjs`, on the machine's real
//! Redis, read by the real binary into the snapshot. Each test has a Redis database of its own
//! (flushed first); a test fails, never skips, when Redis or the package is missing.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::harness::{medmig, TestDb};

/// The Redis the tests use (MEDMIG_TEST_REDIS_URL, default the local server), with database
/// `db`.
fn redis_url(db: u32) -> String {
    let base = std::env::var("MEDMIG_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    format!("{}/{db}", base.trim_end_matches('/'))
}

/// Where `scripts/test-bullmq` installed bullmq (it installs it when missing).
fn bullmq_dir() -> String {
    let out = Command::new("scripts/test-bullmq")
        .output()
        .expect("scripts/test-bullmq runs");
    assert!(out.status.success(), "scripts/test-bullmq: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn states(db: u32, args: &[&str]) -> Command {
    let mut command = Command::new("node");
    command
        .arg("fixtures/bullmq/states.mjs")
        .arg(redis_url(db))
        .args(args)
        .env("MEDMIG_BULLMQ_DIR", bullmq_dir());
    command
}

/// Runs a scenario to its end; returns its JSON line.
fn scenario(db: u32, args: &[&str]) -> Value {
    let out = states(db, args).output().expect("node runs");
    assert!(out.status.success(), "states.mjs {args:?}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.lines().next().unwrap_or("")).unwrap_or(Value::Null)
}

/// A worker holding a job active until dropped.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hold_active(db: u32, args: &[&str]) -> Holder {
    let mut child = states(db, args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().unwrap();
    let holder = Holder(child);
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.trim() == "READY");
    assert!(ready, "the worker never took the job");
    holder
}

/// `medmig snapshot --out -` of a fresh Medplum-like database with the Redis at `url`.
fn snapshot_with(url: &str) -> (i32, Value, String) {
    let db = TestDb::build(
        &["schema"],
        r#"INSERT INTO "DatabaseMigration" VALUES (1, 120, 29, false)"#,
    );
    let run = medmig(&[
        "snapshot",
        "--database-url",
        &db.url(),
        "--redis-url",
        url,
        "--out",
        "-",
    ]);
    let value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    (run.code, value, run.stderr)
}

fn queue<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["redis"]["queues"]
        .as_array()
        .unwrap_or_else(|| panic!("no redis section: {snapshot:#}"))
        .iter()
        .find(|q| q["name"] == name)
        .unwrap()
}

fn job<'a>(queue: &'a Value, id: &Value) -> &'a Value {
    queue["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| &j["id"] == id)
        .unwrap_or_else(|| panic!("no job {id}: {queue:#}"))
}

#[test]
fn a_waiting_job_and_a_deduplicated_add_are_read_with_their_key() {
    // Medplum adds post-deploy jobs with deduplication id v{N}: a second add for v18 while
    // the first lives is dropped, and the key still names the first job.
    let made = scenario(1, &["dedup", "18", "aj-first", "aj-second", "--flush"]);
    let (code, snapshot, stderr) = snapshot_with(&redis_url(1));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(snapshot["format_version"], 2);
    let q = queue(&snapshot, "PostDeployMigrationQueue");
    assert_eq!(q["bullmq_version"], "bullmq:5.65.0");
    let waiting: Vec<&Value> = q["jobs"].as_array().unwrap().iter().collect();
    assert_eq!(waiting.len(), 1, "{q:#}");
    let first = waiting[0];
    assert_eq!(
        (
            &first["state"],
            &first["async_job_id"],
            &first["deduplication_id"],
            &first["kind"]
        ),
        (
            &"wait".into(),
            &"aj-first".into(),
            &"v18".into(),
            &"custom".into()
        )
    );
    assert_eq!(q["deduplication"][0]["id"], "v18");
    assert_eq!(q["deduplication"][0]["job_id"], first["id"]);
    assert_eq!(
        q["deduplication"][0]["ttl_ms"],
        Value::Null,
        "Medplum sets no TTL"
    );
    assert!(
        made.to_string().contains(first["id"].as_str().unwrap()),
        "{made}"
    );
}

#[test]
fn an_active_job_held_by_a_worker_is_active_with_its_lock() {
    let _worker = hold_active(2, &["active", "30", "aj-active", "--flush"]);
    let (code, snapshot, stderr) = snapshot_with(&redis_url(2));
    assert_eq!(code, 0, "{stderr}");
    let q = queue(&snapshot, "PostDeployMigrationQueue");
    let active = &q["jobs"][0];
    assert_eq!(
        (&active["state"], &active["async_job_id"]),
        (&"active".into(), &"aj-active".into())
    );
    assert!(active["lock_ttl_ms"].as_i64().unwrap() > 0, "{active:#}");
    assert!(active["processed_on"].is_i64());
}

#[test]
fn a_delayed_job_is_due_a_minute_later_and_a_failed_one_keeps_its_reason() {
    // Medplum's worker delays a job by 60 s (moveToDelayed) when the cluster is not compatible.
    let delayed = scenario(3, &["delayed", "51", "aj-delayed", "--flush"]);
    let (_, snapshot, _) = snapshot_with(&redis_url(3));
    let q = queue(&snapshot, "PostDeployMigrationQueue");
    let delayed_job = job(q, &delayed["jobId"]);
    assert_eq!(delayed_job["state"], "delayed");
    // BullMQ stores the delay as the due time less its own clock at the move: a minute, to the
    // millisecond or one short of it.
    let delay = delayed_job["delay"].as_i64().unwrap();
    assert!((59_000..=60_000).contains(&delay), "{delayed_job:#}");
    let due =
        delayed_job["due_at"].as_i64().unwrap() - delayed_job["processed_on"].as_i64().unwrap();
    assert!((59_000..=61_000).contains(&due), "{delayed_job:#}");
    assert_eq!(
        q["deduplication"][0]["id"], "v51",
        "the key lives while the job is delayed"
    );

    let failed = scenario(
        4,
        &[
            "failed",
            "45",
            "aj-failed",
            "canceling statement due to lock timeout",
            "--flush",
        ],
    );
    let (_, snapshot, _) = snapshot_with(&redis_url(4));
    let q = queue(&snapshot, "PostDeployMigrationQueue");
    let job = job(q, &failed["jobId"]);
    assert_eq!(
        (
            &job["state"],
            &job["attempts_made"],
            &job["attempts"],
            &job["failed_reason"]
        ),
        (
            &"failed".into(),
            &1.into(),
            &1.into(),
            &"canceling statement due to lock timeout".into()
        )
    );
    assert_eq!(
        q["deduplication"],
        Value::Array(vec![]),
        "a failed job's key is gone"
    );
}

#[test]
fn the_server_registry_and_a_paused_queue_are_read() {
    scenario(5, &["paused", "--flush"]);
    scenario(5, &["registry", "5.0.7", "4.5.2"]);
    let (_, snapshot, _) = snapshot_with(&redis_url(5));
    let q = queue(&snapshot, "PostDeployMigrationQueue");
    assert_eq!(q["paused"], true);
    assert_eq!(q["jobs"][0]["state"], "paused");
    let mut versions: Vec<&str> = snapshot["redis"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["version"].as_str().unwrap())
        .collect();
    versions.sort();
    assert_eq!(versions, ["4.5.2", "5.0.7"]);
    assert!(snapshot["redis"]["servers"][0]["ttl_ms"].as_i64().unwrap() <= 60_000);
    assert_eq!(snapshot["redis"]["registry_complete"], true);
    // A fixed number of round trips: the lists and keys in one flight, the hashes in another.
    assert_eq!(snapshot["redis"]["round_trips"], 2);
}

#[test]
fn a_user_allowed_only_reads_can_read_everything() {
    // The ACL user may run @read commands and nothing else: medmig reads all it needs, and
    // database 0 needs no SELECT (an @keyspace command).
    let admin = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-u", &redis_url(0)])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8(out.stdout).unwrap()
    };
    admin(&[
        "ACL",
        "SETUSER",
        "medmig_read_only",
        "reset",
        "on",
        ">read-only-pass",
        "~*",
        "+@read",
    ]);
    scenario(0, &["registry", "5.1.44"]);
    let url = redis_url(0).replace("redis://", "redis://medmig_read_only:read-only-pass@");
    let (code, snapshot, stderr) = snapshot_with(&url);
    let denied = admin(&[
        "--user",
        "medmig_read_only",
        "--pass",
        "read-only-pass",
        "SET",
        "medmig:probe",
        "1",
    ]);
    admin(&["ACL", "DELUSER", "medmig_read_only"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(snapshot["redis_gap"].is_null(), "{snapshot:#}");
    assert!(snapshot["redis"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["version"] == "5.1.44"));
    assert!(
        denied.contains("NOPERM"),
        "the user may not write: {denied}"
    );
}

#[test]
fn an_unreachable_redis_is_a_recorded_gap_and_a_bad_url_is_refused() {
    let (code, snapshot, stderr) = snapshot_with("redis://127.0.0.1:1/0");
    assert_eq!(code, 0, "{stderr}");
    assert!(snapshot["redis"].is_null());
    assert!(
        snapshot["redis_gap"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{snapshot:#}"
    );
    assert!(stderr.contains("was not read"), "{stderr}");

    let (code, snapshot, stderr) = snapshot_with("http://127.0.0.1:6379");
    assert_eq!((code, snapshot), (2, Value::Null));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("not a redis:// or rediss:// URL"),
        "{stderr}"
    );
}

/// A Medplum-like database at dataVersion 29 whose v30 job `aj` has `status`.
fn at_v29_with(aj: &str, status: &str) -> TestDb {
    TestDb::build(
        &["schema"],
        &format!(
            r#"INSERT INTO "DatabaseMigration" VALUES (1, 120, 29, false);
               SELECT fixture.completed_jobs(1, 29, interval '5 days', '4.5.2');
               SELECT fixture.job('{aj}', 30, ARRAY['accepted', '{status}'],
                 ARRAY[now() - interval '10 minutes', now() - interval '9 minutes'], NULL, '5.0.0');"#
        ),
    )
}

fn status_json_with_redis(db: &TestDb, redis: &str) -> Value {
    let run = medmig(&[
        "status",
        "--format",
        "json",
        "--database-url",
        &db.url(),
        "--redis-url",
        redis,
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap()
}

fn migration(status: &Value, version: u64) -> &Value {
    status["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["version"] == version)
        .unwrap()
}

fn finding_ids(status: &Value) -> Vec<&str> {
    status["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect()
}

const AJ: &str = "a3000000-0000-4000-8000-000000000030";

#[test]
fn an_accepted_job_a_worker_holds_is_running_and_cancelling_it_leaves_a_rollback_unsafe() {
    let _worker = hold_active(6, &["active", "30", AJ, "--flush"]);
    let db = at_v29_with(AJ, "accepted");
    let status = status_json_with_redis(&db, &redis_url(6));
    let v30 = migration(&status, 30);
    assert_eq!(v30["state"], "running", "{v30:#}");
    assert!(
        v30["detail"]
            .as_str()
            .unwrap()
            .contains("a worker holds it"),
        "{v30:#}"
    );

    // Cancelled in PostgreSQL, still held by a worker in Redis: the work runs.
    let db = at_v29_with(AJ, "cancelled");
    let run = medmig(&[
        "rollback-check",
        "--format",
        "json",
        "--to",
        "4.5.2",
        "--from",
        "5.0.0",
        "--database-url",
        &db.url(),
        "--redis-url",
        &redis_url(6),
    ]);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(run.code, 1, "{report:#}");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "queue-job-active")
        .unwrap();
    assert_eq!(check["outcome"], "fail");
    assert!(
        check["evidence"][0].as_str().unwrap().contains(AJ),
        "{check:#}"
    );
}

#[test]
fn a_waiting_job_is_queued_and_a_delayed_one_names_the_old_server_that_holds_it() {
    scenario(7, &["waiting", "30", AJ, "--flush"]);
    let db = at_v29_with(AJ, "accepted");
    let status = status_json_with_redis(&db, &redis_url(7));
    assert_eq!(migration(&status, 30)["state"], "queued");
    assert!(finding_ids(&status).contains(&"migration-queued"));

    // v30 needs 5.0.0; a 4.5.2 server still registered makes the worker delay it.
    scenario(8, &["delayed", "30", AJ, "--flush"]);
    scenario(8, &["registry", "5.0.0", "4.5.2"]);
    let status = status_json_with_redis(&db, &redis_url(8));
    let v30 = migration(&status, 30);
    assert_eq!(v30["state"], "queued");
    let detail = v30["detail"].as_str().unwrap();
    assert!(detail.contains("is delayed until"), "{detail}");
    assert!(
        detail.contains("(4.5.2)") && detail.contains("older than 5.0.0"),
        "{detail}"
    );
    let ids = finding_ids(&status);
    assert!(
        ids.contains(&"cluster-blocks-migration") && ids.contains(&"cluster"),
        "{ids:?}"
    );
}

#[test]
fn an_accepted_job_nothing_will_run_and_a_failed_queue_job_are_findings() {
    // Nothing in Redis for v30's accepted AsyncJob.
    scenario(
        9,
        &["failed", "31", "aj-other", "worker crashed", "--flush"],
    );
    // An admin's $reindex runs on ReindexQueue for an AsyncJob the snapshot does not hold: not
    // an orphan.
    scenario(9, &["reindex-waiting", "aj-admin-reindex"]);
    let db = at_v29_with(AJ, "accepted");
    let status = status_json_with_redis(&db, &redis_url(9));
    assert_eq!(migration(&status, 30)["state"], "accepted");
    let ids = finding_ids(&status);
    assert!(ids.contains(&"job-not-queued"), "{ids:?}");
    assert!(ids.contains(&"queue-job-failed"), "{ids:?}");
    assert!(!ids.contains(&"queue-job-orphaned"), "{ids:?}");
    let failed = status["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "queue-job-failed")
        .unwrap();
    assert!(failed["message"]
        .as_str()
        .unwrap()
        .contains("worker crashed"));

    // A Redis that cannot be read leaves the rollback verdict UNKNOWN, never SAFE.
    let run = medmig(&[
        "rollback-check",
        "--format",
        "json",
        "--to",
        "4.5.2",
        "--from",
        "5.0.0",
        "--database-url",
        &db.url(),
        "--redis-url",
        "redis://127.0.0.1:1/0",
    ]);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_ne!(report["verdict"], "SAFE");
    assert!(report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == "queue-job-active" && c["outcome"] == "unknown"));
}

#[test]
fn redis_comes_from_the_medplum_config_or_its_variables_like_the_server_s() {
    // backgroundJobsRedis holds the queues and cacheRedis the registry, each falling back to
    // redis (packages/server/src/config/types.ts); the env loader may leave db as text.
    scenario(13, &["waiting", "30", "aj-config", "--flush"]);
    scenario(14, &["registry", "5.2.4", "--flush"]);
    let db = TestDb::build(
        &["schema"],
        r#"INSERT INTO "DatabaseMigration" VALUES (1, 120, 29, false)"#,
    );
    let host = redis_url(0);
    let host = host
        .trim_start_matches("redis://")
        .split(['/', ':'])
        .next()
        .unwrap()
        .to_string();
    let config = std::env::temp_dir().join(crate::harness::unique_name("medmig_config.json"));
    std::fs::write(
        &config,
        serde_json::json!({
            "database": {"host": "ignored"},
            "backgroundJobsRedis": {"host": host, "db": 13},
            "cacheRedis": {"host": host, "db": "14"},
        })
        .to_string(),
    )
    .unwrap();
    let run = medmig(&[
        "snapshot",
        "--database-url",
        &db.url(),
        "--medplum-config",
        config.to_str().unwrap(),
        "--out",
        "-",
    ]);
    std::fs::remove_file(&config).unwrap();
    assert_eq!(run.code, 0, "{run:?}");
    let snapshot: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        queue(&snapshot, "PostDeployMigrationQueue")["jobs"][0]["async_job_id"],
        "aj-config"
    );
    assert_eq!(snapshot["redis"]["servers"][0]["version"], "5.2.4");

    let run = crate::harness::medmig_with_env(
        &["snapshot", "--database-url", &db.url(), "--out", "-"],
        &[("MEDPLUM_REDIS_HOST", &host), ("MEDPLUM_REDIS_DB", "14")],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let snapshot: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(snapshot["redis"]["servers"][0]["version"], "5.2.4");
}

#[test]
fn a_bundle_carries_the_redis_evidence_with_its_error_texts_redacted() {
    // A migration's error quotes row values (PostgreSQL's "Key (...)=(...)"): redacted in the
    // bundle as every error text is, while the answers stand.
    scenario(
        15,
        &[
            "failed", "31", AJ,
            "duplicate key value violates unique constraint; Key (family)=(Quackenbush) already exists",
            "--flush",
        ],
    );
    let db = at_v29_with(AJ, "accepted");
    let out = std::env::temp_dir().join(format!(
        "{}.tar.gz",
        crate::harness::unique_name("medmig_redis_bundle")
    ));
    let run = medmig(&[
        "bundle",
        "--database-url",
        &db.url(),
        "--redis-url",
        &redis_url(15),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let files = crate::bundle::unpack(&out);
    // Offline, from the bundle, the Redis evidence still answers.
    let offline = medmig(&[
        "status",
        "--format",
        "json",
        "--bundle",
        out.to_str().unwrap(),
    ]);
    std::fs::remove_file(&out).unwrap();
    assert_eq!(offline.code, 0, "{offline:?}");
    let status: Value = serde_json::from_str(&offline.stdout).unwrap();
    assert!(
        finding_ids(&status).contains(&"queue-job-failed"),
        "{status:#}"
    );
    let text = String::from_utf8_lossy(&files["snapshot.json"]).into_owned();
    assert!(
        !text.contains("Quackenbush"),
        "a row value reached the bundle"
    );
    let snapshot: Value = serde_json::from_str(&text).unwrap();
    let reason = queue(&snapshot, "PostDeployMigrationQueue")["jobs"][0]["failed_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.starts_with("duplicate key value violates unique constraint"),
        "{reason}"
    );
}
