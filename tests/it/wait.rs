//! `medmig wait`: the real binary polling a real database while the test changes it, as a
//! Medplum server's post-deploy worker would (the job's status written, then `dataVersion`),
//! drops its connection, or interrupts it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{medmig, medmig_command, medmig_within, TestDb};

/// v48 (custom) accepted a minute ago, nothing else written: `accepted`, not stale.
const V48_ACCEPTED: &str = "
    INSERT INTO \"DatabaseMigration\" VALUES (1, 119, 47, false);
    SELECT fixture.completed_jobs(44, 47, interval '3 days');
    SELECT fixture.job('e4800000-0000-4000-8000-000000000048', 48,
      ARRAY['accepted'], ARRAY[now() - interval '1 minute'], NULL, '5.1.42');";

/// What the post-deploy worker writes when v48 ends with `status`: the job (a new version
/// in the history too), and for `completed` the new dataVersion.
fn finish_v48(db: &TestDb, status: &str) {
    let data_version = if status == "completed" {
        "UPDATE \"DatabaseMigration\" SET \"dataVersion\" = 48;"
    } else {
        ""
    };
    db.execute(&format!(
        "BEGIN;
         UPDATE \"AsyncJob\" SET \"status\" = '{status}', \"lastUpdated\" = now(),
           \"content\" = jsonb_set(\"content\"::jsonb, '{{status}}', '\"{status}\"')::text
         WHERE \"id\" = 'e4800000-0000-4000-8000-000000000048';
         INSERT INTO \"AsyncJob_History\" (\"versionId\", \"id\", \"content\", \"lastUpdated\")
         SELECT gen_random_uuid(), \"id\", \"content\", \"lastUpdated\" FROM \"AsyncJob\"
         WHERE \"id\" = 'e4800000-0000-4000-8000-000000000048';
         {data_version}
         COMMIT;"
    ));
}

/// A running `medmig wait --format json`, its events read line by line.
struct Waiting {
    child: Child,
    events: Receiver<Value>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Waiting {
    fn start(url: &str, extra: &[&str]) -> Waiting {
        let mut args = vec![
            "wait",
            "--database-url",
            url,
            "--format",
            "json",
            "--interval",
            "1s",
        ];
        args.extend_from_slice(extra);
        let mut child = medmig_command(&args, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the medmig binary runs");
        let stdout = child.stdout.take().unwrap();
        let (send, events) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.expect("stdout is text");
                let event: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("not one JSON object a line ({err}): {line}"));
                if send.send(event).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        Waiting {
            child,
            events,
            stderr: Some(stderr),
        }
    }

    /// The next event of kind `kind`, skipping others (returned too), within `limit`.
    fn until(&self, kind: &str, limit: Duration) -> (Value, Vec<Value>) {
        let deadline = Instant::now() + limit;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if event["event"] == kind => return (event, skipped),
                Ok(event) => skipped.push(event),
                Err(err) => panic!("no {kind} event within {limit:?} ({err}); saw {skipped:?}"),
            }
        }
    }

    /// Waits for the process to end; its exit code and stderr.
    fn end(mut self, limit: Duration) -> (i32, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let stderr = self.stderr.take().unwrap().join().unwrap();
                return (status.code().unwrap_or(-1), stderr);
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("medmig wait still ran after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_migration_that_completes_while_waiting_ends_the_wait_with_0() {
    let db = TestDb::build(&["schema"], V48_ACCEPTED);
    let waiting = Waiting::start(&db.url(), &["--until", "v48", "--timeout", "60s"]);
    let (started, _) = waiting.until("started", LIMIT);
    assert_eq!(started["target"], 48);
    assert_eq!(started["data_version"], 47);
    let v48 = &started["migrations"][0];
    assert_eq!(v48["version"], 48);
    assert_eq!(v48["state"], "accepted", "{started}");
    // Let a later poll (no catalog, only the jobs written since) run before the change.
    std::thread::sleep(Duration::from_millis(1500));
    finish_v48(&db, "completed");
    let (changed, _) = waiting.until("changed", LIMIT);
    assert_eq!(changed["version"], 48);
    assert_eq!(changed["previous"], "accepted");
    assert_eq!(changed["state"], "completed");
    let (finished, _) = waiting.until("finished", LIMIT);
    assert_eq!(finished["outcome"], "completed");
    assert_eq!(finished["exit_code"], 0);
    assert_eq!(finished["data_version"], 48);
    assert_eq!(finished["format_version"], 1);
    let (code, stderr) = waiting.end(LIMIT);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_migration_that_fails_while_waiting_ends_the_wait_with_1_by_default() {
    let db = TestDb::build(&["schema"], V48_ACCEPTED);
    let waiting = Waiting::start(&db.url(), &["--until", "v48"]);
    waiting.until("started", LIMIT);
    std::thread::sleep(Duration::from_millis(1500));
    finish_v48(&db, "error");
    let (changed, _) = waiting.until("changed", LIMIT);
    assert_eq!(changed["state"], "failed");
    let (finished, _) = waiting.until("finished", LIMIT);
    assert_eq!(finished["outcome"], "failed");
    assert!(
        finished["reason"]
            .as_str()
            .unwrap()
            .starts_with("v48 is failed"),
        "{finished}"
    );
    assert_eq!(waiting.end(LIMIT).0, 1);
}

#[test]
fn a_dead_run_seen_on_three_polls_fails_the_wait_and_fail_on_chooses_the_states() {
    // v48 accepted five hours ago, no session working: stale, the evidence of a dead run. It
    // rests on the sessions seen at one moment, so it counts once three polls saw it.
    let db = TestDb::with(&["schema", "stale-job"]);
    let url = db.url();
    let (run, _) = medmig_within(
        &[
            "wait",
            "--database-url",
            &url,
            "--until",
            "v48",
            "--interval",
            "1s",
        ],
        LIMIT,
    );
    assert_eq!(run.code, 1, "{run:?}");
    let last = run.stdout.lines().last().unwrap();
    assert!(last.contains(" failed: v48 is stale: "), "{run:?}");
    assert!(last.ends_with("(3 polls, exit 1)"), "{run:?}");

    // Not failing on stale: it waits, and the timeout ends it with 4.
    let (run, took) = medmig_within(
        &[
            "wait",
            "--database-url",
            &url,
            "--until",
            "v48",
            "--fail-on",
            "failed",
            "--timeout",
            "2s",
            "--interval",
            "1s",
        ],
        LIMIT,
    );
    assert_eq!(run.code, 4, "{run:?}");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let last = run.stdout.lines().last().unwrap();
    assert!(
        last.contains(" timed out: --timeout 2s passed; not completed: v48 stale"),
        "{run:?}"
    );
}

#[test]
fn an_applied_target_ends_the_wait_at_once() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let (run, _) = medmig_within(
        &["wait", "--database-url", &db.url(), "--release", "5.2.4"],
        LIMIT,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].contains("waiting for v53 (the newest migration 5.2.4 knows); dataVersion is 53"),
        "{run:?}"
    );
    assert!(
        lines[lines.len() - 1].contains(" completed: every post-deploy migration up to v53"),
        "{run:?}"
    );
}

#[test]
fn a_lost_connection_is_reported_and_reopened() {
    let db = TestDb::build(&["schema"], V48_ACCEPTED);
    let waiting = Waiting::start(&db.url(), &["--until", "v48", "--timeout", "60s"]);
    waiting.until("started", LIMIT);
    // The server ends medmig's session between two polls (a restart, a failover, an admin).
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'medmig' AND datname = current_database()",
    );
    let (reconnecting, _) = waiting.until("reconnecting", LIMIT);
    assert!(
        reconnecting["error"]
            .as_str()
            .unwrap()
            .contains("connection"),
        "{reconnecting}"
    );
    assert_eq!(reconnecting["retry_in_seconds"], 1);
    let (reconnected, _) = waiting.until("reconnected", LIMIT);
    assert_eq!(reconnected["failed_polls"], 1);
    finish_v48(&db, "completed");
    let (finished, _) = waiting.until("finished", LIMIT);
    assert_eq!(finished["outcome"], "completed");
    assert_eq!(waiting.end(LIMIT).0, 0);
}

#[test]
fn sigint_ends_the_wait_with_130_and_a_final_status() {
    let db = TestDb::build(&["schema"], V48_ACCEPTED);
    let waiting = Waiting::start(&db.url(), &["--until", "v48"]);
    waiting.until("started", LIMIT);
    // SAFETY: kill(2) on our own child's pid.
    let sent = unsafe { libc::kill(waiting.child.id() as i32, libc::SIGINT) };
    assert_eq!(sent, 0);
    let (finished, _) = waiting.until("finished", LIMIT);
    assert_eq!(finished["outcome"], "interrupted");
    assert_eq!(finished["exit_code"], 130);
    assert_eq!(waiting.end(LIMIT).0, 130);
}

#[test]
fn later_polls_read_only_the_jobs_written_since_and_no_catalog() {
    // 3,000 data-migration jobs inside projects (read by every full read, ignored by the
    // server), written two days ago, beside v48's.
    let db = TestDb::build(
        &["schema"],
        &format!(
            "{V48_ACCEPTED};
             INSERT INTO \"AsyncJob\" (\"id\", \"content\", \"lastUpdated\", \"compartments\",
               \"type\", \"status\", \"projectId\")
             SELECT gen_random_uuid(),
                    json_build_object('resourceType', 'AsyncJob', 'type', 'data-migration',
                      'status', 'completed', 'dataVersion', 12,
                      'requestTime', '2026-01-01T00:00:00.000Z')::text,
                    now() - interval '2 days', '{{}}', 'data-migration', 'completed',
                    '0b0e6e2f-6a36-4c55-9f1d-8f1b0a3c2d4e'
             FROM generate_series(1, 3000);"
        ),
    );
    let (run, _) = medmig_within(
        &[
            "wait",
            "--database-url",
            &db.url(),
            "--until",
            "v48",
            "--format",
            "json",
            "--interval",
            "1s",
            "--timeout",
            "5s",
        ],
        LIMIT,
    );
    assert_eq!(run.code, 4, "{run:?}");
    let finished: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert!(finished["polls"].as_u64().unwrap() >= 2, "{finished}");
    let first = &finished["first_poll"];
    let later = &finished["later_polls_max"];
    assert!(first["rows"].as_u64().unwrap() > 3000, "{finished}");
    // The settings, the probe, the migration row, and v48's job and its one version (written
    // a minute ago, inside the window); none of the 3,000 older jobs.
    assert!(later["rows"].as_u64().unwrap() <= 8, "{finished}");
    assert!(
        later["statements"].as_u64().unwrap() + 6 <= first["statements"].as_u64().unwrap(),
        "the catalog's six statements are not sent again: {finished}"
    );
}

#[test]
fn bad_arguments_and_an_unreachable_database_exit_2_with_one_line() {
    let run = medmig(&["wait", "--interval", "500ms"]);
    assert!(
        run.argument_error().contains("shorter than a second"),
        "{run:?}"
    );
    let run = medmig(&["wait", "--until", "v0"]);
    assert!(
        run.argument_error()
            .contains("is not a post-deploy migration such as v51"),
        "{run:?}"
    );
    let run = medmig(&["wait", "--until", "v3", "--until-latest"]);
    run.argument_error();
    let run = medmig(&[
        "wait",
        "--release",
        "1.0.0",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
    ]);
    assert!(
        run.single_error().contains("has no post-deploy migration"),
        "{run:?}"
    );
    let run = medmig(&[
        "wait",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
        "--connect-timeout",
        "2s",
    ]);
    run.single_error();
}

#[test]
fn on_a_terminal_a_live_display_shows_a_reindex_progress_and_the_time_left() {
    // v26 re-indexes Patient, Person, Practitioner and RelatedPerson (the catalogue, from
    // packages/server/src/migrations/data/v26.ts); it was requested 20 minutes ago and
    // recorded its first progress, Patient done, a minute ago: its work began then, by the
    // history, and at that pace the three types left take about three minutes.
    let db = TestDb::build(
        &["schema"],
        r#"INSERT INTO "DatabaseMigration" VALUES (1, 100, 25, false);
        SELECT fixture.completed_jobs(20, 25, interval '2 days');
        SELECT fixture.job('a2600000-0000-4000-8000-000000000026', 26,
          ARRAY['accepted', 'accepted'],
          ARRAY[now() - interval '20 minutes', now() - interval '1 minute'],
          '{"resourceType":"Parameters","parameter":[
             {"name":"result","part":[{"name":"resourceType","valueCode":"Patient"},{"name":"count","valueInteger":1000}]},
             {"name":"result","part":[{"name":"resourceType","valueCode":"Person"},{"name":"nextTimestamp","valueDateTime":"2024-01-01T00:00:00.000Z"}]}]}',
          '4.4.0');"#,
    );
    // `script` gives medmig a terminal on both stdout and stderr.
    let inner = format!(
        "{} wait --database-url '{}' --until v26 --interval 1s --timeout 4s",
        env!("CARGO_BIN_EXE_medmig"),
        db.url()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("TERM", "xterm")
        .env("COLUMNS", "200")
        .output()
        .expect("script(1), from util-linux, runs");
    let text = String::from_utf8_lossy(&output.stdout).replace('\r', "\n");
    assert_eq!(output.status.code(), Some(4), "{text}");
    for expected in [
        "v26",
        "running for 1m 0",
        "reindex: 1 type done (1,000 rows), in progress: Person",
        "(1 of 4 types)",
        "about 3m",
        "[",
        "timed out: --timeout 4s passed; not completed: v26 running",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    // The display redraws in place: cursor movements, not one line per redraw.
    assert!(text.contains("\u{1b}["), "{text}");
}

#[test]
fn a_job_deleted_while_waiting_is_gone_from_the_next_poll() {
    let db = TestDb::build(&["schema"], V48_ACCEPTED);
    let waiting = Waiting::start(&db.url(), &["--until", "v48", "--timeout", "60s"]);
    let (started, _) = waiting.until("started", LIMIT);
    assert_eq!(started["migrations"][0]["state"], "accepted");
    std::thread::sleep(Duration::from_millis(1500));
    // As the server deletes a resource (`deleteResource`, packages/server/src/fhir/repo.ts
    // @000c589c): the row stays, marked deleted, `lastUpdated` now, its content emptied and
    // its search columns, "type" and "status" included, set to null.
    db.execute(
        "UPDATE \"AsyncJob\" SET \"deleted\" = true, \"content\" = '', \"type\" = NULL,
           \"status\" = NULL, \"lastUpdated\" = now()
         WHERE \"id\" = 'e4800000-0000-4000-8000-000000000048'",
    );
    let (changed, _) = waiting.until("changed", LIMIT);
    assert_eq!(changed["version"], 48);
    assert_eq!(changed["previous"], "accepted");
    assert_eq!(changed["state"], "pending", "{changed}");
    assert!(changed.get("job_id").is_none(), "{changed}");
}
