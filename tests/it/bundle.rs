//! `medmig bundle` and `medmig bundle verify`: contents, offline answers equal to live ones,
//! redaction of every seeded secret, integrity checks, and log ingestion.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use regex::Regex;
use serde_json::Value;

use crate::harness::{
    admin, connect, medmig, parse_status, runtime, server_user, status_json, unique_name, url_as,
    TestDb,
};

fn temp(name: &str, extension: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}.{extension}", unique_name(name)))
}

/// Every file of a bundle, by path.
pub fn unpack(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(GzDecoder::new(std::fs::File::open(path).unwrap()));
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(name, bytes);
    }
    files
}

/// Writes `files` as a bundle-shaped archive (manifest first), for tampering tests.
pub fn repack(path: &Path, files: &BTreeMap<String, Vec<u8>>) {
    let mut tar = tar::Builder::new(GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    ));
    let mut order: Vec<&String> = files.keys().collect();
    order.sort_by_key(|name| *name != "manifest.json");
    for name in order {
        let mut header = tar::Header::new_gnu();
        header.set_size(files[name].len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, &files[name][..])
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

fn bundle(args: &[&str]) -> (PathBuf, crate::harness::Run) {
    let out = temp("medmig_bundle", "tar.gz");
    let mut all = vec!["bundle", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = medmig(&all);
    (out, run)
}

/// The migrations of a report as JSON, without the elapsed time of runs still in progress:
/// that is measured to the moment of reading, which differs between two reads.
fn without_clock(report: &crate::harness::StatusJson) -> Vec<Value> {
    report
        .migrations
        .iter()
        .map(|m| {
            let mut value = serde_json::json!({
                "version": m.version, "state": m.state, "attempts": m.attempts,
                "detail": m.detail, "job_id": m.current.job_id, "error": m.current.error,
                "progress": m.current.progress, "started_at": m.current.started_at,
                "finished_at": m.current.finished_at, "runs": m.runs.len(),
            });
            if m.current.finished_at.is_some() {
                value["duration_seconds"] = serde_json::json!(m.current.duration_seconds);
            }
            value
        })
        .collect()
}

#[test]
fn offline_answers_from_a_bundle_equal_the_live_ones() {
    for scenario in ["failed-with-retry", "reindex-running", "stale-job"] {
        let db = TestDb::with(&["schema", scenario]);
        let (out, run) = bundle(&["--database-url", &db.url()]);
        assert_eq!(run.code, 0, "{run:?}");
        let out_arg = out.to_str().unwrap();
        let live = status_json(&db.url(), &[]);
        let offline = medmig(&["status", "--format", "json", "--bundle", out_arg]);
        assert_eq!(offline.code, 0, "{offline:?}");
        let offline = parse_status(&offline.stdout);
        assert_eq!(offline.source.kind, "bundle");
        assert!(
            without_clock(&offline) == without_clock(&live),
            "{scenario}: bundle and live differ"
        );
        assert_eq!(offline.finding_ids(), live.finding_ids(), "{scenario}");

        // status.json is the status at collection time, the same answer.
        let files = unpack(&out);
        let inside = parse_status(std::str::from_utf8(&files["status.json"]).unwrap());
        assert!(
            without_clock(&inside) == without_clock(&live),
            "{scenario}: status.json differs"
        );

        let args = ["--format", "json", "--to", "5.1.44", "--from", "5.2.2"];
        let mut live_args = vec!["rollback-check", "--database-url", db.url().leak()];
        live_args.extend(args);
        let mut bundle_args = vec!["rollback-check", "--bundle", out_arg];
        bundle_args.extend(args);
        let (a, b) = (medmig(&live_args), medmig(&bundle_args));
        assert_eq!(a.code, b.code, "{scenario}");
        let verdict = |text: &str| serde_json::from_str::<Value>(text).unwrap()["checks"].clone();
        assert_eq!(verdict(&a.stdout), verdict(&b.stdout), "{scenario}");
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn the_bundle_has_every_part_and_verify_says_it_is_intact() {
    let db = TestDb::with(&["schema", "invalid-index"]);
    let (out, run) = bundle(&["--database-url", &db.url()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.is_empty());
    let files = unpack(&out);
    for part in [
        "manifest.json",
        "snapshot.json",
        "status.json",
        "timeline.json",
        "summary.txt",
        "diagnostics/settings.json",
        "diagnostics/setting_overrides.json",
        "diagnostics/database_size.json",
        "diagnostics/largest_tables.json",
        "diagnostics/activity.json",
        "diagnostics/blocking.json",
        "diagnostics/migration_lock.json",
        "diagnostics/long_transactions.json",
        "diagnostics/replication.json",
        "diagnostics/invalid_objects.json",
        "diagnostics/extensions.json",
        "diagnostics/server.json",
        "logs/ingest.json",
    ] {
        assert!(
            files.contains_key(part),
            "{part} missing: {:?}",
            files.keys()
        );
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["source"]["database"], db.name);
    assert_eq!(manifest["files"].as_array().unwrap().len(), files.len() - 1);
    let settings: Value = serde_json::from_slice(&files["diagnostics/settings.json"]).unwrap();
    let timeout = settings
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "statement_timeout")
        .unwrap();
    assert!(timeout.get("source").is_some(), "{timeout}");
    let invalid: Value =
        serde_json::from_slice(&files["diagnostics/invalid_objects.json"]).unwrap();
    assert_eq!(
        invalid["invalid_indexes"][0]["index"],
        "Observation_subject_code_idx"
    );
    let timeline: Value = serde_json::from_slice(&files["timeline.json"]).unwrap();
    assert!(timeline
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "job-error" && e["version"] == 50));
    let summary = String::from_utf8_lossy(&files["summary.txt"]);
    assert!(summary.contains("migration-failed"), "{summary}");

    let verified = medmig(&["bundle", "verify", out.to_str().unwrap()]);
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(verified
        .stdout
        .lines()
        .last()
        .unwrap()
        .contains("is intact"));
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn verify_finds_tampering_and_truncation_and_refuses_what_is_not_a_bundle() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let (out, run) = bundle(&["--database-url", &db.url()]);
    assert_eq!(run.code, 0, "{run:?}");
    let mut files = unpack(&out);

    let tampered = temp("medmig_tampered", "tar.gz");
    files.insert("status.json".into(), b"{\"all\": \"fine\"}".to_vec());
    repack(&tampered, &files);
    let run = medmig(&["bundle", "verify", tampered.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("DAMAGED   status.json"),
        "{}",
        run.stdout
    );
    // A damaged snapshot is refused when read, not trusted.
    let listed = files["snapshot.json"].len();
    files.insert("snapshot.json".into(), b"{\"format_version\": 1}".to_vec());
    repack(&tampered, &files);
    let run = medmig(&["status", "--bundle", tampered.to_str().unwrap()]);
    assert!(
        run.single_error()
            .contains("is damaged (snapshot.json is 21 bytes, the manifest says"),
        "{run:?}"
    );
    // So is one of the listed size with other bytes.
    let mut same_size = b"{\"format_version\": 1}".to_vec();
    same_size.resize(listed, b' ');
    files.insert("snapshot.json".into(), same_size);
    repack(&tampered, &files);
    let run = medmig(&["status", "--bundle", tampered.to_str().unwrap()]);
    assert!(
        run.single_error().contains("does not match its checksum"),
        "{run:?}"
    );

    let truncated = temp("medmig_truncated", "tar.gz");
    let bytes = std::fs::read(&out).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let run = medmig(&["bundle", "verify", truncated.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("is damaged"), "{}", run.stdout);

    let not_bundle = temp("medmig_notbundle", "tar.gz");
    std::fs::write(&not_bundle, b"just some text").unwrap();
    let run = medmig(&["bundle", "verify", not_bundle.to_str().unwrap()]);
    assert!(
        run.single_error().contains("is not a medmig bundle"),
        "{run:?}"
    );
    let run = medmig(&["bundle", "verify", "/nonexistent/bundle.tar.gz"]);
    assert!(run.single_error().contains("cannot read bundle"), "{run:?}");

    // A newer format is refused clearly.
    let mut manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    manifest["format_version"] = 9.into();
    files.insert(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    );
    repack(&tampered, &files);
    let run = medmig(&["bundle", "verify", tampered.to_str().unwrap()]);
    assert!(run.single_error().contains("upgrade medmig"), "{run:?}");

    for path in [&out, &tampered, &truncated, &not_bundle] {
        std::fs::remove_file(path).unwrap();
    }
}

/// A log directory with every kind of file the ingestion must cope with.
fn log_directory() -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name("medmig_logs"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("server.log"),
        concat!(
            r#"{"level":"INFO","timestamp":"2026-03-01T10:00:00.000Z","msg":"Database pre-deploy migration","version":"v121","duration":"1800 ms"}"#, "\n",
            r#"{"level":"INFO","timestamp":"2026-03-01T10:00:01.000Z","msg":"GET /fhir/R4/Patient 200"}"#, "\n",
            r#"{"level":"ERROR","timestamp":"2026-03-01T10:05:00.000Z","msg":"Post-deploy migration threw an error","err":"canceling statement due to statement timeout"}"#, "\n",
            r#"{"level":"WARN","timestamp":"2020-01-01T00:00:00.000Z","msg":"a warning long before the window"}"#, "\n",
            "2026-03-01 10:06:00 ERROR Unable to run this version of Medplum server. Pending post-deploy migration v45 requires server at version 5.1.37 <= version < 5.2.0, but current server version is 5.2.2\n",
            "no time here [WARN] disk almost full\n",
        ),
    )
    .unwrap();
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(br#"{"level":"INFO","timestamp":"2026-03-01T11:00:00.000Z","msg":"PostDeployMigrationQueue worker: active","dataVersion":45}"#)
        .unwrap();
    gz.write_all(b"\n").unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(dir.join("server-1.log.gz"), &gz).unwrap();
    std::fs::write(dir.join("server-2.log.gz"), &gz[..gz.len() / 2]).unwrap();
    std::fs::write(dir.join("core.dump"), b"\x7fELF\0\0\0binary").unwrap();
    dir
}

#[test]
fn logs_of_every_kind_are_read_filtered_by_time_and_accounted_for() {
    let dir = log_directory();
    let (out, run) = bundle(&[
        "--no-db",
        "--logs",
        dir.to_str().unwrap(),
        "--since",
        "2026-02-01T00:00:00Z",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let files = unpack(&out);
    assert!(!files.contains_key("snapshot.json"));
    let ingest: Value = serde_json::from_slice(&files["logs/ingest.json"]).unwrap();
    let by_name = |suffix: &str| {
        ingest["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["source"].as_str().unwrap().ends_with(suffix))
            .cloned()
            .unwrap()
    };
    let plain = by_name("server.log");
    assert_eq!(plain["lines_read"], 6);
    assert_eq!(plain["lines_kept"], 4, "{plain}");
    assert_eq!(plain["lines_outside_window"], 1);
    assert_eq!(plain["lines_undated"], 1);
    assert_eq!(by_name("server-1.log.gz")["lines_kept"], 1);
    assert!(by_name("server-2.log.gz")["note"]
        .as_str()
        .unwrap()
        .contains("truncated"));
    assert!(by_name("core.dump")["note"]
        .as_str()
        .unwrap()
        .contains("binary"));
    let kept = String::from_utf8_lossy(&files[plain["bundled_as"].as_str().unwrap()]).into_owned();
    assert!(
        kept.contains("Unable to run this version") && !kept.contains("GET /fhir"),
        "{kept}"
    );
    assert!(!kept.contains("long before the window"));
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let gaps = manifest["not_collected"].to_string();
    assert!(
        gaps.contains("--no-db") && gaps.contains("truncated") && gaps.contains("binary"),
        "{gaps}"
    );
    let timeline: Value = serde_json::from_slice(&files["timeline.json"]).unwrap();
    let kinds: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in ["pre-deploy-migration", "post-deploy-worker", "startup-gate"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // A bundle without a database cannot answer status.
    let run = medmig(&["status", "--bundle", out.to_str().unwrap()]);
    assert!(run.single_error().contains("--no-db"), "{run:?}");
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One JSON line as Medplum's logger writes it (`level`, `timestamp`, `msg`, then the fields),
/// and the kind and post-deploy version the timeline must give it.
pub struct Logged {
    pub level: &'static str,
    pub msg: &'static str,
    pub fields: &'static str,
    pub kind: &'static str,
    pub version: Option<u32>,
}

const fn logged(
    level: &'static str,
    msg: &'static str,
    fields: &'static str,
    kind: &'static str,
    version: Option<u32>,
) -> Logged {
    Logged {
        level,
        msg,
        fields,
        kind,
        version,
    }
}

/// Every migration message at the level Medplum logs it, with the fields it logs beside it.
/// Paths are under Medplum's `packages/server/src/`. Messages that Medplum throws rather
/// than logs reach a log as the error of the line that reports the failure (the startup
/// gate, the lock), or as a line of their own at error level (here).
pub const LOGGED: &[Logged] = &[
    // database.ts: pre-deploy migrations, the lock, the startup gate in every wording
    logged("INFO", "Database pre-deploy migration", r#""shardId":"global","version":"v121","duration":"1800 ms""#, "pre-deploy-migration", None),
    logged("INFO", "Database schema migration", r#""version":"v98","duration":"20 ms""#, "pre-deploy-migration", None),
    logged("ERROR", "Database schema migration error", r#""error":"error: relation \"Foo\" does not exist","stack":["error: relation \"Foo\" does not exist"]"#, "migration-error", None),
    logged("ERROR", "Database schema migration error", r#""error":"Error: Failed to acquire migration lock","stack":["Error: Failed to acquire migration lock"]"#, "migration-lock", None),
    logged("ERROR", "Database schema migration error", r#""error":"Error: Unable to run this version of Medplum server. Pending post-deploy migration v45 requires server at version 5.1.37 <= version < 5.2.0, but current server version is 5.2.2""#, "startup-gate", Some(45)),
    logged("ERROR", "Database schema migration error", r#""error":"Error: Unable to run data migration against the current server version. Migration requires server at version 3.3.0 <= version < 4.0.0, but current server version is 4.0.0""#, "startup-gate", None),
    logged("ERROR", "Database schema migration error", r#""error":"Error: Unable to run post-deploy migration v12 on this server. v12 requires server at version 4.1.12 <= version < 4.2.0, but current server version is 4.2.0""#, "startup-gate", Some(12)),
    logged("ERROR", "Unable to run this version of Medplum server. Pending post-deploy migration v45 requires server at version 5.1.37 <= version < 5.2.0, but current server version is 5.2.2", "", "startup-gate", Some(45)),
    logged("ERROR", "Failed to acquire migration lock", "", "migration-lock", None),
    logged("INFO", "Pending post-deploy migration", r#""version":"v45""#, "post-deploy-pending", Some(45)),
    logged("INFO", "Data migration ready to run", r#""dataVersion":45"#, "post-deploy-pending", Some(45)),
    // database.ts, older releases: starting a post-deploy migration by hand (thrown)
    logged("ERROR", "Cannot run post-deploy migration since pre-deploy migrations did not run", "", "post-deploy-not-queued", None),
    logged("ERROR", "Cannot run data migration; schema migrations did not run", "", "post-deploy-not-queued", None),
    logged("ERROR", "Data migration unable to start due to more than one existing data-migration AsyncJob with accepted status", "", "post-deploy-not-queued", None),
    // migrations/migration-utils.ts: queueing the pending post-deploy migration
    logged("INFO", "Not auto-queueing pending post-deploy migration because auto-run is disabled", r#""version":"v46""#, "post-deploy-not-queued", Some(46)),
    logged("DEBUG", "Auto-queueing pending post-deploy migration", r#""version":"v46""#, "post-deploy-queued", Some(46)),
    logged("ERROR", "Unable to add post-deploy migration job", r#""version":46,"asyncJob":"AsyncJob/5f1c""#, "post-deploy-not-queued", Some(46)),
    logged("ERROR", "Unable to start post-deploy migration since there are more than one existing data-migration AsyncJob with accepted status", "", "post-deploy-not-queued", None),
    logged("ERROR", "Cannot run post-deploy migration since pre-deploy migrations are disabled", "", "post-deploy-not-queued", None),
    logged("ERROR", "Cannot run post-deploy migrations; next post-deploy migration version is unknown", "", "post-deploy-not-queued", None),
    logged("ERROR", "Requested post-deploy migration v47, but the pending post-deploy migration is v46.", "", "post-deploy-not-queued", Some(47)),
    logged("ERROR", "Migration definition not found for v54", "", "post-deploy-error", Some(54)),
    // server-registry.ts, an older release
    logged("INFO", "Not auto-queueing pending post-deploy migration because cluster is not homogeneous", r#""version":"v17","clusterStatus":{"totalServers":2}"#, "post-deploy-not-queued", Some(17)),
    // workers/post-deploy-migration.ts: the queue and its worker
    logged("DEBUG", "Adding post-deploy migration job", r#""version":"v46","asyncJobId":"5f1c""#, "post-deploy-queued", Some(46)),
    logged("DEBUG", "Added post-deploy migration job", r#""jobId":"1","asyncJob":"AsyncJob/5f1c","jobType":"custom""#, "post-deploy-queued", None),
    logged("INFO", "PostDeployMigrationQueue processor skipping job since AsyncJob is not active", r#""jobId":"1","asyncJobStatus":"cancelled""#, "post-deploy-worker", None),
    logged("INFO", "Post-deploy migration delayed since this worker is not compatible", r#""queueName":"PostDeployMigrationQueue","jobId":"1","delayMs":60000"#, "post-deploy-delayed", None),
    logged("INFO", "Post-deploy migration delayed since migration definition was not found on this worker", r#""queueName":"PostDeployMigrationQueue","jobId":"1","delayMs":60000"#, "post-deploy-delayed", None),
    logged("INFO", "Post-deploy migration v51 delayed since the server cluster is not compatible", r#""queueName":"PostDeployMigrationQueue","jobId":"1","delayMs":60000"#, "post-deploy-delayed", Some(51)),
    logged("INFO", "Post-deploy migration delayed since worker is not eligible to execute it", r#""queueName":"PostDeployMigrationQueue","jobId":"1","delayMs":60000"#, "post-deploy-delayed", None),
    logged("ERROR", "Post-deploy migration threw an error", r#""error":"canceling statement due to statement timeout","asyncJob":"AsyncJob/5f1c","type":"custom","dataVersion":45"#, "post-deploy-error", Some(45)),
    logged("ERROR", "Post-deploy migration 13 is not a reindex migration", "", "post-deploy-error", Some(13)),
    // workers/utils.ts: worker events (info level, failures included); delaying a job
    logged("INFO", "PostDeployMigrationQueue worker: active", r#""jobId":"1","asyncJob":"AsyncJob/5f1c","jobType":"custom""#, "post-deploy-worker", None),
    logged("INFO", "PostDeployMigrationQueue worker: failed", r#""jobId":"1","error":"Migration definition not found for v54""#, "post-deploy-worker", Some(54)),
    logged("INFO", "PostDeployMigrationQueue worker: stalled", r#""jobId":"1""#, "post-deploy-worker", None),
    logged("INFO", "PostDeployMigrationQueue worker: completed", r#""jobId":"1""#, "post-deploy-worker", None),
    logged("INFO", "ReindexQueue worker: failed", r#""jobId":"7","asyncJob":"AsyncJob/9a2e","jobType":"reindex","error":"canceling statement due to statement timeout""#, "reindex", None),
    logged("INFO", "ReindexQueue worker: stalled", r#""jobId":"7""#, "reindex", None),
    logged("ERROR", "Cannot delay job since job.token is not available", r#""queueName":"PostDeployMigrationQueue","jobId":"1","reason":"Post-deploy migration delayed since this worker is not compatible""#, "post-deploy-delayed", None),
    // workers/reindex.ts: reindex migrations
    logged("INFO", "Reindex in progress", r#""resourceType":"Patient","count":50000"#, "reindex", None),
    logged("WARN", "Reindex iteration failed, retrying", r#""resourceType":"Patient","attempt":1,"error":"canceling statement due to statement timeout""#, "reindex", None),
    logged("INFO", "Reindex completed for resourceType", r#""resourceType":"Patient","count":120000,"durationMs":5000"#, "reindex", None),
    logged("INFO", "Reindex completed", r#""resourceType":"Observation","count":5,"durationMs":6000"#, "reindex", None),
    logged("INFO", "Reindex job delayed since worker is not eligible to execute it", r#""queueName":"PostDeployMigrationQueue","jobId":"2","delayMs":60000"#, "post-deploy-delayed", None),
    logged("INFO", "Reindex job detected queue is closing", r#""queueName":"PostDeployMigrationQueue","asyncJob":"AsyncJob/9a2e""#, "post-deploy-delayed", None),
    logged("INFO", "ReindexJob delayed since queue is closing", r#""queueName":"PostDeployMigrationQueue","jobId":"2","delayMs":60000"#, "post-deploy-delayed", None),
    logged("INFO", "Skipping reindex post-deploy migration since server is in firstBoot mode", r#""asyncJob":"AsyncJob/9a2e","version":"v52""#, "reindex-skipped", Some(52)),
    // fhir/operations/utils/asyncjobexecutor.ts: completing a post-deploy job; admin jobs
    logged("INFO", "Marking post-deploy migration complete", r#""version":"v45""#, "post-deploy-completed", Some(45)),
    logged("INFO", "AsyncJob execution starting", r#""name":"callback","asyncJobId":"77""#, "async-job", None),
    logged("ERROR", "AsyncJob execution failed", r#""name":"callback","asyncJobId":"77","error":"boom""#, "async-job", None),
    logged("INFO", "Async job completed", r#""name":"callback","asyncJobId":"78","duration":"12 ms""#, "async-job", None),
    // index.ts: a server starting, with its release
    logged("INFO", "Starting Medplum Server...", r#""configName":"file:medplum.config.json","version":"5.2.2-8f1e2a3""#, "server-start", None),
];

#[test]
fn every_migration_message_reaches_the_timeline_with_its_kind_and_version() {
    let dir = std::env::temp_dir().join(unique_name("medmig_messages"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut log = String::new();
    for (i, line) in LOGGED.iter().enumerate() {
        let fields = if line.fields.is_empty() {
            String::new()
        } else {
            format!(",{}", line.fields)
        };
        log.push_str(&format!(
            r#"{{"level":"{}","timestamp":"2026-03-01T10:{:02}:{:02}.000Z","msg":{}{fields}}}"#,
            line.level,
            i / 60,
            i % 60,
            serde_json::to_string(line.msg).unwrap(),
        ));
        log.push('\n');
        // Info lines that are no migration message are left out.
        log.push_str(r#"{"level":"INFO","timestamp":"2026-03-01T10:00:00.500Z","msg":"Request served","path":"/fhir/R4/Patient"}"#);
        log.push('\n');
    }
    std::fs::write(dir.join("server.log"), &log).unwrap();
    let (out, run) = bundle(&["--no-db", "--logs", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    let files = unpack(&out);
    let ingest: Value = serde_json::from_slice(&files["logs/ingest.json"]).unwrap();
    assert_eq!(ingest["files"][0]["lines_read"], LOGGED.len() * 2);
    assert_eq!(ingest["files"][0]["lines_kept"], LOGGED.len());
    let timeline: Value = serde_json::from_slice(&files["timeline.json"]).unwrap();
    let events = timeline.as_array().unwrap();
    assert_eq!(events.len(), LOGGED.len(), "{timeline:#}");
    for (line, event) in LOGGED.iter().zip(events) {
        let message = event["message"].as_str().unwrap();
        assert!(
            message.starts_with(line.msg),
            "{message} is not {}",
            line.msg
        );
        assert_eq!(event["source"], "log");
        assert_eq!(event["kind"], line.kind, "{message}");
        assert_eq!(
            event["version"].as_u64(),
            line.version.map(u64::from),
            "{message}"
        );
    }
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

const SECRETS: [&str; 17] = [
    "Quackenbush",
    "Zebulon",
    "zebulon.q@example.org",
    "123-45-6789",
    "867-5309",
    "eyJhbGciOiJIUzI1NiJ9",
    "sk_live_abcdef123456",
    "AKIAIOSFODNN7EXAMPLE",
    "db-Pa55word",
    "client-s3cret",
    "redis-pw-99",
    "10.77.1.23",
    "1961-04-12",
    "literal-secret-42",
    "987-65-4321",
    "signing-key-material",
    "bWVkcGx1bTpsaXRlcmFsLXNlY3JldC00Mg",
];

#[test]
fn no_seeded_secret_survives_anywhere_in_a_bundle() {
    // In job output (an error message), in a Patient row (never read), in a running query's
    // literals, in the logs and in the config.
    let db = TestDb::build(
        &["schema", "steady-state"],
        "SELECT fixture.job('e0000000-0000-4000-8000-00000000beef', 54, ARRAY['accepted','error'],
            ARRAY[now() - interval '2 hours', now() - interval '1 hour'],
            '{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"error\",\"valueString\":\"duplicate key for zebulon.q@example.org ssn 123-45-6789 phone (555) 867-5309 token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ6ZWJ1bG9uIn0.c2lnbmF0dXJlc2lnbmF0dXJl\"}]}')",
    );
    let logs = std::env::temp_dir().join(unique_name("medmig_leaky_logs"));
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("server.log"),
        concat!(
            r#"{"level":"ERROR","timestamp":"2026-03-01T10:05:00.000Z","msg":"Post-deploy migration threw an error","err":"connect postgres://medplum:db-Pa55word@10.77.1.23:5432/medplum failed","patient":"Zebulon Quackenbush"}"#, "\n",
            r#"{"level":"WARN","timestamp":"2026-03-01T10:06:00.000Z","msg":"auth","headers":{"authorization":"Bearer sk_live_abcdef123456"},"key":"AKIAIOSFODNN7EXAMPLE"}"#, "\n",
            "2026-03-01 10:07:00 ERROR token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijkl for zebulon.q@example.org ssn 987-65-4321\n",
            "2026-03-01 10:08:00 WARN proxy sent Authorization: Basic bWVkcGx1bTpsaXRlcmFsLXNlY3JldC00Mg==\n",
        ),
    )
    .unwrap();
    let config = temp("medplum_leaky_config", "json");
    std::fs::write(
        &config,
        format!(
            r#"{{"baseUrl":"https://api.example.com/","database":{{{endpoint},
                "dbname":"{}","username":"{}","password":"db-Pa55word"}},
                "googleClientSecret":"client-s3cret","signingKey":"signing-key-material",
                "redis":{{"host":"10.77.1.23","password":"redis-pw-99"}},"adminEmail":"zebulon.q@example.org"}}"#,
            db.name,
            server_user(),
 endpoint = crate::harness::config_endpoint()
        ),
    )
    .unwrap();
    let rt = runtime();
    let out = rt.block_on(async {
        // A statement whose literals hold patient data runs while the bundle is made.
        let busy = connect(&db.url()).await;
        let running = tokio::spawn(async move {
            busy.batch_execute(
                "SELECT pg_sleep(60), 'Zebulon Quackenbush' AS who, 'literal-secret-42', '123-45-6789'",
            )
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let (out, run) = bundle(&[
            "--medplum-config", config.to_str().unwrap(),
            "--logs", logs.to_str().unwrap(),
            "--redact-ip", "--keyword", "Quackenbush", "--keyword", "Zebulon",
        ]);
        assert_eq!(run.code, 0, "{run:?}");
        // Still running; dropping the test database (WITH FORCE) ends it.
        running.abort();
        out
    });
    let files = unpack(&out);
    let activity = String::from_utf8_lossy(&files["diagnostics/activity.json"]).into_owned();
    assert!(
        activity.contains("pg_sleep(?)"),
        "the running statement is there, without literals: {activity}"
    );
    for (name, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} leaked into {name}");
        }
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    for rule in [
        "email",
        "us-ssn",
        "phone",
        "jwt",
        "auth-header",
        "aws-access-key",
        "url-password",
        "secret-value",
        "ipv4",
        "keyword",
    ] {
        assert!(
            manifest["redactions"][rule].as_u64().unwrap_or(0) > 0,
            "rule {rule} never fired: {}",
            manifest["redactions"]
        );
    }
    let deferral: Value = serde_json::from_slice(&files["config/post-deploy.json"]).unwrap();
    assert_eq!(deferral["server_defers_post_deploy_migrations"], false);
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&config).unwrap();
    std::fs::remove_dir_all(&logs).unwrap();
}

/// Keywords that are also words of medmig, PostgreSQL or Medplum: `Mary` is in the constraint
/// kind `primary-key`, `Tim` in `timeout`, the rest are states, kinds, keys, table names and
/// words of the errors medmig classifies.
const COLLIDING_KEYWORDS: [&str; 18] = [
    "Mary",
    "Tim",
    "lock",
    "failed",
    "status",
    "accepted",
    "error",
    "active",
    "completed",
    "migration",
    "timeout",
    "deadlock",
    "version",
    "level",
    "msg",
    "Observation",
    "Patient",
    "index",
];

/// Whether `redacted` is `plain` with a keyword replaced.
fn keyword_replaced(_plain: &str, redacted: &str) -> bool {
    redacted.contains("[keyword-")
}

#[test]
fn keywords_replace_whole_words_of_free_text_and_change_no_answer() {
    // v45 failed twice (failed-with-retry); its third attempt failed on a lock timeout whose
    // error names people.
    let db = TestDb::build(
        &["schema", "failed-with-retry"],
        "SELECT fixture.job('e4500000-0000-4000-8000-000000000003', 45, ARRAY['accepted','error'],
            ARRAY[now() - interval '1 hour', now() - interval '50 minutes'],
            '{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"error\",\"valueString\":\"canceling statement due to lock timeout: Mary asked Tim to hold the lock\"}]}',
            '5.1.37')",
    );
    let logs = std::env::temp_dir().join(unique_name("medmig_keyword_logs"));
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("server.log"),
        concat!(
            r#"{"level":"error","timestamp":"2026-03-01T10:05:00.000Z","msg":"Post-deploy migration threw an error","version":"v45","err":"canceling statement due to lock timeout: Mary asked Tim to hold the lock"}"#, "\n",
            "2026-03-01 10:07:00 ERROR lock timeout waiting for Mary (Rosemary's primary-key check by Tim)\n",
        ),
    )
    .unwrap();
    let common = [
        "--database-url",
        db.url().leak(),
        "--logs",
        logs.to_str().unwrap(),
    ];
    let (plain, run) = bundle(&common);
    assert_eq!(run.code, 0, "{run:?}");
    let mut args = common.to_vec();
    for keyword in COLLIDING_KEYWORDS {
        args.extend(["--keyword", keyword]);
    }
    let (redacted, run) = bundle(&args);
    assert_eq!(run.code, 0, "a bundle made with keywords: {run:?}");
    let (plain_arg, redacted_arg) = (plain.to_str().unwrap(), redacted.to_str().unwrap());

    let verify = medmig(&["bundle", "verify", redacted_arg]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(verify.stdout.contains("is intact"), "{}", verify.stdout);

    // Every command reads it back, with the same answers.
    let mut names = Regex::new(r"\b(Mary|Tim)\b").unwrap();
    let answers = |bundle: &str, command: &[&str]| {
        let mut all = command.to_vec();
        all.extend(["--format", "json", "--bundle", bundle]);
        let run = medmig(&all);
        assert_eq!(run.code, 0, "{command:?} --bundle: {run:?}");
        let mut answer: Value = serde_json::from_str(&run.stdout).unwrap();
        answer.as_object_mut().unwrap().remove("source");
        (answer, run.stdout)
    };
    for command in [
        &["status"][..],
        &["recover"],
        &["rollback-check", "--to", "5.1.44", "--from", "5.2.2"],
    ] {
        let (expected, _) = answers(plain_arg, command);
        let (answer, text) = answers(redacted_arg, command);
        crate::harness::assert_same_but_redacted(&expected, &answer, command[0], &keyword_replaced);
        assert!(!names.is_match(&text), "{command:?}: {text}");
    }
    let (status, _) = answers(redacted_arg, &["status"]);
    let v45 = status["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["version"] == 45)
        .unwrap();
    let error = Regex::new(
        r"^canceling statement due to lock timeout: \[keyword-\d+\] asked \[keyword-\d+\] to hold the \[keyword-\d+\]$",
    )
    .unwrap();
    assert!(error.is_match(v45["error"].as_str().unwrap()), "{v45}");
    let (recover, _) = answers(redacted_arg, &["recover"]);
    assert!(
        recover["steps"][0]["explanation"]
            .as_str()
            .unwrap()
            .starts_with("This looks like a lock timeout."),
        "{recover}"
    );

    let (before, after) = (unpack(&plain), unpack(&redacted));
    let json = |files: &BTreeMap<String, Vec<u8>>, name: &str| -> Value {
        serde_json::from_slice(&files[name]).unwrap()
    };
    // The snapshot's structure is untouched; job resources differ only in their free text.
    let (a, b) = (
        json(&before, "snapshot.json"),
        json(&after, "snapshot.json"),
    );
    for part in [
        "schema",
        "database_migration",
        "job_history",
        "invalid_indexes",
    ] {
        assert_eq!(a[part], b[part], "snapshot {part}");
    }
    for (x, y) in a["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["jobs"].as_array().unwrap())
    {
        assert_eq!(
            (&x["id"], &x["status_column"]),
            (&y["id"], &y["status_column"])
        );
        let content = |job: &Value| -> Value {
            serde_json::from_str(job["content"].as_str().unwrap()).unwrap()
        };
        crate::harness::assert_same_but_redacted(
            &content(x),
            &content(y),
            "job content",
            &keyword_replaced,
        );
    }
    // The timeline's kinds and versions are those of the lines as logged.
    let (a, b) = (
        json(&before, "timeline.json"),
        json(&after, "timeline.json"),
    );
    crate::harness::assert_same_but_redacted(&a, &b, "timeline", &keyword_replaced);
    assert!(
        b.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "post-deploy-error" && e["version"] == 45),
        "{b}"
    );
    // In the logs: the people are gone, `lock timeout` and `primary-key` stay, the JSON line
    // keeps its keys and level.
    let log = String::from_utf8(after["logs/01-server.log"].clone()).unwrap();
    assert!(!names.is_match(&log), "{log}");
    let mut lines = log.lines();
    let line: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "Post-deploy migration threw an error");
    assert_eq!(line["version"], "v45");
    assert!(
        line["err"]
            .as_str()
            .unwrap()
            .starts_with("canceling statement due to lock timeout: [keyword-"),
        "{line}"
    );
    let plain_line = lines.next().unwrap();
    assert!(
        plain_line.contains("lock timeout waiting for [keyword-"),
        "{plain_line}"
    );
    assert!(
        plain_line.contains("(Rosemary's primary-key check by [keyword-"),
        "{plain_line}"
    );
    // Nowhere else either.
    names = Regex::new(r"(?i)\b(Mary|Tim)\b").unwrap();
    for (name, bytes) in &after {
        let text = String::from_utf8_lossy(bytes);
        assert!(!names.is_match(&text), "a keyword left in {name}");
    }
    std::fs::remove_file(&plain).unwrap();
    std::fs::remove_file(&redacted).unwrap();
    std::fs::remove_dir_all(&logs).unwrap();
}

#[test]
fn a_role_without_pg_read_all_stats_still_gets_a_bundle_with_the_gap_noted() {
    let db = TestDb::with(&["schema", "stale-job"]);
    let role = unique_name("medmig_support");
    admin(&format!("CREATE ROLE \"{role}\" LOGIN"));
    db.execute(&format!(
        "GRANT CONNECT ON DATABASE \"{0}\" TO \"{role}\";
         GRANT SELECT ON \"DatabaseMigration\", \"AsyncJob\", \"AsyncJob_History\" TO \"{role}\";",
        db.name
    ));
    let rt = runtime();
    let (out, run) = rt.block_on(async {
        let other = connect(&db.url()).await;
        let running = tokio::spawn(async move { other.batch_execute("SELECT pg_sleep(60)").await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let result = bundle(&["--database-url", &url_as(&role, None, &db.name)]);
        running.abort();
        result
    });
    db.execute(&format!("DROP OWNED BY \"{role}\""));
    admin(&format!("DROP ROLE \"{role}\""));
    assert_eq!(run.code, 0, "{run:?}");
    let files = unpack(&out);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert!(
        manifest["not_collected"]
            .to_string()
            .contains("pg_read_all_stats"),
        "{}",
        manifest["not_collected"]
    );
    assert!(files.contains_key("status.json"));
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn a_failed_bundle_leaves_nothing_behind() {
    let dir = std::env::temp_dir().join(unique_name("medmig_nothing"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("case.tar.gz");
    let run = medmig(&[
        "bundle",
        "--out",
        out.to_str().unwrap(),
        "--database-url",
        "postgres://medmig@127.0.0.1:1/medplum",
    ]);
    assert!(run.single_error().contains("connection refused"), "{run:?}");
    let run = medmig(&[
        "bundle",
        "--out",
        out.to_str().unwrap(),
        "--no-db",
        "--logs",
        "/nonexistent/logs",
    ]);
    assert!(run.single_error().contains("/nonexistent/logs"), "{run:?}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "something was left in {}",
        dir.display()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn leftovers_of_an_interrupted_bundle_are_removed_by_the_next_run() {
    let dir = std::env::temp_dir().join(unique_name("medmig_leftovers"));
    std::fs::create_dir_all(&dir).unwrap();
    // What a run killed by Ctrl-C leaves: its process (an impossible pid here) is gone.
    let staging = dir.join(".case.tar.gz.medmig-4000000.staging");
    std::fs::create_dir_all(staging.join("logs")).unwrap();
    let temporary = dir.join(".case.tar.gz.medmig-4000001.tmp");
    std::fs::write(&temporary, b"half a bundle").unwrap();
    let other = dir.join(".other.tar.gz.medmig-4000002.tmp");
    std::fs::write(&other, b"not ours").unwrap();
    let out = dir.join("case.tar.gz");
    let run = medmig(&["bundle", "--no-db", "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(out.exists() && !staging.exists() && !temporary.exists());
    assert!(other.exists(), "another output's leftovers are not touched");
    std::fs::remove_dir_all(&dir).unwrap();
}
