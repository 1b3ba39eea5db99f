//! A migration's lock and a server that stops answering: medmig gives up in time, with a line
//! that names the limit, and what a lock kept it from reading is a recorded gap that answers
//! degrade to UNKNOWN on, not a failure.

use std::time::Duration;

use serde_json::Value;

use crate::bundle::unpack;
use crate::harness::{connect, medmig, medmig_within, parse_status, runtime, unique_name, TestDb};
use crate::relay::{Plan, Relay};

/// A database where v51 is the next post-deploy migration (dataVersion 50) and rolling back to
/// 5.1.44 is SAFE while every table can be read.
const DEFERRED: [&str; 2] = ["schema", "deferred-new-minor"];
const BACK: [&str; 4] = ["--to", "5.1.44", "--from", "5.2.2"];

/// What a migration's `ALTER TABLE "AsyncJob"` holds, from another session, for as long as
/// `during` runs.
fn with_async_job_locked<T>(db: &TestDb, during: impl FnOnce() -> T) -> T {
    let rt = runtime();
    let holder = rt.block_on(async {
        let holder = connect(&db.url()).await;
        holder
            .batch_execute("BEGIN; LOCK TABLE \"AsyncJob\" IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        holder
    });
    let result = during();
    rt.block_on(holder.batch_execute("ROLLBACK")).unwrap();
    result
}

fn temp(name: &str, extension: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}.{extension}", unique_name(name)))
}

#[test]
fn a_server_that_stops_answering_is_given_up_on_at_the_statement_timeout_plus_the_margin() {
    let db = TestDb::with(&DEFERRED);
    // Answers counted: 1 ends the startup, 2 is BEGIN's, 3 and 4 the limits' and the probe's;
    // the next is the first of the pipelined flight.
    for (answers, reading) in [
        (1, "the start of a read-only transaction"),
        (4, "the catalog and the migration tables"),
    ] {
        let relay = Relay::start(
            &db,
            Plan {
                stall_after: Some(answers),
                ..Plan::default()
            },
        );
        let (run, took) = medmig_within(
            &[
                "status",
                "--database-url",
                &relay.url,
                "--statement-timeout",
                "1s",
            ],
            Duration::from_secs(40),
        );
        let line = run.single_error();
        assert!(
            line.contains(&format!("while reading {reading} for 6s"))
                && line.contains("--statement-timeout 1s plus 5s for the network"),
            "{line}"
        );
        // The deadline, and not much more: the session is abandoned, not waited for.
        assert!(
            took >= Duration::from_secs(6) && took < Duration::from_secs(12),
            "took {took:?}"
        );
        let (_, ended) = relay.finish();
        assert_eq!(ended, Ok(()), "medmig closed its side");
    }
}

#[test]
fn schema_capture_reads_the_catalog_alone_so_a_lock_on_async_job_does_not_stop_it() {
    let db = TestDb::with(&DEFERRED);
    let out = temp("medmig_locked_schema", "json");
    let (run, took) = with_async_job_locked(&db, || {
        medmig_within(
            &[
                "schema",
                "capture",
                "--database-url",
                &db.url(),
                "--out",
                out.to_str().unwrap(),
                "--lock-timeout",
                "1s",
            ],
            Duration::from_secs(30),
        )
    });
    assert_eq!(run.code, 0, "{run:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let capture: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(
        capture["schema"]["tables"]["public.AsyncJob"]["columns"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "the locked table's contract is there"
    );
    std::fs::remove_file(&out).unwrap();

    // Not a single row of "AsyncJob" is read: one that fails every read is no obstacle,
    // though `status`, which reads the jobs, trips on it.
    let trap = TestDb::build(
        &DEFERRED,
        "ALTER TABLE \"AsyncJob\" RENAME TO \"AsyncJobRows\";
         CREATE FUNCTION public.trap() RETURNS boolean LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'AsyncJob was read'; END $$;
         CREATE VIEW \"AsyncJob\" AS SELECT * FROM \"AsyncJobRows\" WHERE public.trap()",
    );
    let run = medmig(&["status", "--database-url", &trap.url()]);
    assert!(run.single_error().contains("AsyncJob was read"), "{run:?}");
    let run = medmig(&[
        "schema",
        "capture",
        "--database-url",
        &trap.url(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    std::fs::remove_file(&out).unwrap();
}

/// The states of a status report, by version.
fn state(report: &crate::harness::StatusJson, version: u32) -> &str {
    &report.migration(version).state
}

#[test]
fn under_a_lock_on_async_job_status_rollback_check_and_bundle_answer_with_the_gap() {
    let db = TestDb::with(&DEFERRED);
    let url = db.url();
    let out = temp("medmig_locked_bundle", "tar.gz");
    let snapshot = temp("medmig_locked_snapshot", "json");
    let lock = ["--lock-timeout", "1s"];
    let (status, rollback, bundle, taken) = with_async_job_locked(&db, || {
        let live = |args: &[&str]| {
            let mut all = args.to_vec();
            all.extend(["--database-url", url.as_str()]);
            all.extend(lock);
            // The probe sees the lock: nothing waits for it.
            let (run, took) = medmig_within(&all, Duration::from_secs(30));
            assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
            run
        };
        let mut rollback = vec!["rollback-check", "--format", "json"];
        rollback.extend(BACK);
        (
            live(&["status", "--format", "json"]),
            live(&rollback),
            live(&["bundle", "--out", out.to_str().unwrap()]),
            live(&["snapshot", "--out", snapshot.to_str().unwrap()]),
        )
    });

    // A snapshot is taken, says what it lacks, and answers as the live database did.
    assert_eq!(taken.code, 0, "{taken:?}");
    assert!(
        taken.stderr.contains("\"AsyncJob\" could not be read"),
        "{taken:?}"
    );
    let run = medmig(&[
        "status",
        "--format",
        "json",
        "--snapshot",
        snapshot.to_str().unwrap(),
    ]);
    assert_eq!(state(&parse_status(&run.stdout), 51), "unknown", "{run:?}");
    std::fs::remove_file(&snapshot).unwrap();

    assert_eq!(status.code, 0, "{status:?}");
    let report = parse_status(&status.stdout);
    assert_eq!(state(&report, 50), "completed", "dataVersion was read");
    let v51 = report.migration(51);
    assert_eq!(v51.state, "unknown", "{v51:?}");
    assert!(
        v51.detail
            .as_deref()
            .is_some_and(|d| d.contains("ACCESS EXCLUSIVE")),
        "{v51:?}"
    );
    assert_eq!(report.post_deploy.pending, Some(51));
    let finding = report
        .findings
        .iter()
        .find(|f| f.id == "evidence-unreadable")
        .unwrap_or_else(|| panic!("{:#?}", report.findings));
    assert!(
        finding.message.contains("\"AsyncJob\" could not be read"),
        "{finding:?}"
    );

    assert_eq!(rollback.code, 3, "UNKNOWN: {rollback:?}");
    let verdict: Value = serde_json::from_str(&rollback.stdout).unwrap();
    assert_eq!(verdict["verdict"], "UNKNOWN");
    let checks = verdict["checks"].as_array().unwrap();
    let unreadable = checks
        .iter()
        .find(|c| c["id"] == "evidence-unreadable")
        .unwrap_or_else(|| panic!("{checks:#?}"));
    assert_eq!(unreadable["outcome"], "unknown");
    assert!(
        unreadable["message"]
            .as_str()
            .unwrap()
            .contains("\"AsyncJob\" could not be read"),
        "{unreadable}"
    );

    // The bundle is made, the gap noted, and every analysis of it answers as live.
    assert_eq!(bundle.code, 0, "{bundle:?}");
    let files = unpack(&out);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let gaps = manifest["not_collected"].to_string();
    assert!(
        gaps.contains("\\\"AsyncJob\\\" rows") && gaps.contains("\\\"AsyncJob_History\\\" rows"),
        "{gaps}"
    );
    let inside = parse_status(std::str::from_utf8(&files["status.json"]).unwrap());
    assert_eq!(state(&inside, 51), "unknown");
    assert!(
        String::from_utf8_lossy(&files["summary.txt"]).contains("\"AsyncJob\" could not be read"),
        "the summary says so"
    );
    let bundled = out.to_str().unwrap();
    let run = medmig(&["status", "--format", "json", "--bundle", bundled]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(state(&parse_status(&run.stdout), 51), "unknown");
    let mut args = vec!["rollback-check", "--bundle", bundled];
    args.extend(BACK);
    let run = medmig(&args);
    assert_eq!(run.code, 3, "UNKNOWN: {run:?}");
    assert!(run.stdout.starts_with("UNKNOWN: "), "{run:?}");
    // A plan cannot be made without the jobs: one line that says why.
    let run = medmig(&["recover", "--bundle", bundled]);
    let line = run.single_error();
    assert!(
        line.contains("recover needs \"AsyncJob\"") && line.contains("ACCESS EXCLUSIVE"),
        "{line}"
    );
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn a_lock_taken_after_the_probe_looked_is_a_gap_too() {
    // The race the probe cannot close: the lock comes between the probe and the reads. The
    // relay holds medmig's flight until another session has the lock.
    let db = TestDb::with(&DEFERRED);
    let relay = Relay::start(
        &db,
        Plan {
            hold_after: Some(4),
            ..Plan::default()
        },
    );
    let out = temp("medmig_raced_bundle", "tar.gz");
    let args: Vec<String> = [
        "bundle",
        "--out",
        out.to_str().unwrap(),
        "--database-url",
        &relay.url,
        "--lock-timeout",
        "1s",
    ]
    .map(String::from)
    .to_vec();
    let running = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        medmig_within(&args, Duration::from_secs(60))
    });
    relay.wait_until_held();
    let run = with_async_job_locked(&db, || {
        relay.release();
        running.join().unwrap()
    })
    .0;
    assert_eq!(run.code, 0, "{run:?}");
    let files = unpack(&out);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let gaps = manifest["not_collected"].to_string();
    assert!(
        gaps.contains("\\\"AsyncJob\\\" rows") && gaps.contains("--lock-timeout 1s"),
        "{gaps}"
    );
    // The rest of the transaction went on: the sessions and the diagnostics are there.
    let snapshot: Value = serde_json::from_slice(&files["snapshot.json"]).unwrap();
    assert!(snapshot["activity"].is_object(), "{}", snapshot["activity"]);
    assert_eq!(snapshot["database_migration"][0]["data_version"], 50);
    assert!(files.contains_key("diagnostics/activity.json"));
    assert_eq!(
        state(
            &parse_status(std::str::from_utf8(&files["status.json"]).unwrap()),
            51
        ),
        "unknown"
    );
    std::fs::remove_file(&out).unwrap();
}
