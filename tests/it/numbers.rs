//! Numbers no migration can have (issue 13): a `dataVersion`, a pre-deploy version, a job's
//! migration number or a `--manifest` key past medmig's bounds, in a live row, a snapshot, a
//! bundle or a manifest file. Each is a finding, every answer still comes, and it comes at
//! once in bounded memory: every run here is capped, so counting up to the number fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{medmig_capped, parse_status, take_snapshot, unique_name, Run, TestDb};

/// Address space for one run: some ten times what medmig needs, below the 271 MB that
/// counting to 10^6 took (and far below the 24 GB of 2^31).
const CAP_KB: u64 = 256 * 1024;

/// Longer than any of these runs takes on a busy machine, shorter than counting to 2^31.
const QUICK: Duration = Duration::from_secs(30);

/// Runs medmig capped and in time; it must not crash (exit 0 to 3).
fn run(args: &[&str]) -> Run {
    let start = Instant::now();
    let run = medmig_capped(CAP_KB, args);
    assert!(
        start.elapsed() < QUICK,
        "{args:?} took {:?}",
        start.elapsed()
    );
    assert!((0..=3).contains(&run.code), "{args:?}: {run:?}");
    run
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("{err}: {run:?}"))
}

fn ids(findings: &Value) -> Vec<&str> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect()
}

fn temp(name: &str, extension: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}.{extension}", unique_name(name)))
}

/// The `--snapshot FILE`, `--bundle FILE` or `--database-url URL` arguments.
type Input<'a> = [&'a str; 2];

/// Every answer from `input`: status (with `expected` among its findings, 53 migrations
/// listed), rollback-check (never SAFE), upgrade-plan (the odd findings repeated) and
/// recover (escalate, naming the number).
fn every_answer(input: Input<'_>, expected: &[&str], number: &str) {
    let status = run(&["status", "--format", "json", input[0], input[1]]);
    assert_eq!(status.code, 0, "{status:?}");
    let report = parse_status(&status.stdout);
    for id in expected {
        assert!(
            report.finding_ids().contains(id),
            "{id}: {:#?}",
            report.findings
        );
    }
    assert_eq!(report.migrations.len(), 53, "{input:?}");
    assert!(report.migrations.iter().all(|m| m.version <= 53));
    let table = run(&["status", "--all", input[0], input[1]]);
    assert!(table.stdout.contains(number), "{table:?}");

    let rollback = run(&[
        "rollback-check",
        "--format",
        "json",
        "--to",
        "5.1.44",
        "--from",
        "5.2.2",
        input[0],
        input[1],
    ]);
    let verdict = json(&rollback);
    assert_ne!(verdict["verdict"], "SAFE", "{rollback:?}");
    assert_ne!(rollback.code, 0);

    let plan = run(&[
        "upgrade-plan",
        "--format",
        "json",
        "--from",
        "5.2.2",
        "--to",
        "5.2.4",
        input[0],
        input[1],
    ]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let plan = json(&plan);
    for id in expected.iter().filter(|id| id.starts_with("odd-")) {
        assert!(ids(&plan["findings"]).contains(id), "{id}: {plan:#}");
    }

    let recover = run(&["recover", "--format", "json", input[0], input[1]]);
    assert_eq!(recover.code, 0, "{recover:?}");
    let steps = json(&recover);
    let first = &steps["steps"][0];
    assert_eq!(first["id"], "collect-and-escalate", "{steps:#}");
    assert!(first["evidence"].to_string().contains(number), "{steps:#}");
}

#[test]
fn a_live_row_and_job_with_numbers_past_the_bound_answer_everything_at_once() {
    for number in ["1000000", "2147483647"] {
        // 5.2.2 with post-deploy migrations deferred at v50; the row and a job set by hand.
        let db = TestDb::build(
            &["schema", "deferred-new-minor"],
            &format!(
                "UPDATE \"DatabaseMigration\" SET \"dataVersion\" = {number}, \"version\" = {number};
                 SELECT fixture.job(gen_random_uuid(), {number}, ARRAY['accepted', 'error'],
                                    ARRAY[now() - interval '2 hours', now() - interval '1 hour'])"
            ),
        );
        let url = db.url();
        let expected = [
            "odd-data-version",
            "odd-pre-deploy-version",
            "odd-job-version",
        ];
        every_answer(["--database-url", &url], &expected, number);

        // The same from a snapshot and from a bundle, each made under the cap.
        let snapshot = temp("medmig_numbers", "json");
        let made = run(&["snapshot", "--database-url", &url, "--out", path(&snapshot)]);
        assert_eq!(made.code, 0, "{made:?}");
        every_answer(["--snapshot", path(&snapshot)], &expected, number);
        std::fs::remove_file(&snapshot).unwrap();

        let bundle = temp("medmig_numbers", "tar.gz");
        let made = run(&["bundle", "--database-url", &url, "--out", path(&bundle)]);
        assert_eq!(made.code, 0, "{made:?}");
        every_answer(["--bundle", path(&bundle)], &expected, number);
        let verified = run(&["bundle", "verify", path(&bundle)]);
        assert_eq!(verified.code, 0, "{verified:?}");
        std::fs::remove_file(&bundle).unwrap();
    }
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_snapshot_with_numbers_no_integer_column_holds_answers_everything_at_once() {
    let db = TestDb::with(&["schema", "deferred-new-minor"]);
    let (file, _) = take_snapshot(&db.url());
    let mut snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).expect("a snapshot is JSON");
    for number in [4_294_967_295_i64, i64::MAX] {
        snapshot["database_migration"][0]["data_version"] = number.into();
        snapshot["database_migration"][0]["version"] = number.into();
        // The newest job names the number as its migration.
        let job = &mut snapshot["jobs"][0];
        let mut content: Value = serde_json::from_str(job["content"].as_str().unwrap()).unwrap();
        content["dataVersion"] = number.into();
        job["content"] = content.to_string().into();
        std::fs::write(&file, snapshot.to_string()).unwrap();
        every_answer(
            ["--snapshot", path(&file)],
            &[
                "odd-data-version",
                "odd-pre-deploy-version",
                "odd-job-version",
            ],
            &number.to_string(),
        );
    }
    std::fs::remove_file(&file).unwrap();
}

/// The embedded manifest with `extra` keys added, written to a new file.
fn manifest_with(extra: &[&str]) -> PathBuf {
    let mut text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/medplum/data-version-manifest.json"),
    )
    .unwrap();
    text = text.trim_end().trim_end_matches('}').to_string();
    for key in extra {
        text.push_str(&format!(",\n  \"{key}\": {{\"serverVersion\": \"5.2.4\"}}"));
    }
    text.push_str("\n}\n");
    let file = temp("medmig_manifest", "json");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn manifest_keys_past_the_bound_are_a_finding_and_the_verdict_is_not_safe() {
    let db = TestDb::with(&["schema", "deferred-new-minor"]);
    let (snapshot, _) = take_snapshot(&db.url());
    let input = ["--snapshot", path(&snapshot)];
    let back = ["--to", "5.1.44", "--from", "5.2.2"];
    let verdict = |extra: &[&str]| {
        let mut args = vec!["rollback-check", "--format", "json"];
        args.extend_from_slice(&input);
        args.extend_from_slice(&back);
        args.extend_from_slice(extra);
        json(&run(&args))
    };
    // The window is open: SAFE with Medplum's own manifest.
    assert_eq!(verdict(&[])["verdict"], "SAFE");

    for key in ["v1000000", "v2147483647", "v4294967295", "v0"] {
        let manifest = manifest_with(&[key]);
        let with = ["--manifest", path(&manifest)];
        let status = run(&[
            "status", "--format", "json", input[0], input[1], with[0], with[1],
        ]);
        assert_eq!(status.code, 0, "{status:?}");
        let report = parse_status(&status.stdout);
        assert!(report.finding_ids().contains(&"odd-manifest-key"), "{key}");
        assert_eq!(report.migrations.len(), 53, "{key}");
        assert_eq!(report.post_deploy.pending, Some(51), "{key}");

        let report = verdict(&with);
        assert_eq!(report["verdict"], "UNKNOWN", "{key}: {report:#}");
        let target = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "target-in-manifest")
            .unwrap();
        assert_eq!(target["outcome"], "unknown");
        assert!(
            target["message"].as_str().unwrap().contains(key),
            "{target}"
        );

        let plan = run(&[
            "upgrade-plan",
            "--format",
            "json",
            "--from",
            "5.2.2",
            "--to",
            "5.2.4",
            input[0],
            input[1],
            with[0],
            with[1],
        ]);
        assert_eq!(plan.code, 0, "{plan:?}");
        assert!(ids(&json(&plan)["findings"]).contains(&"odd-manifest-key"));
        std::fs::remove_file(&manifest).unwrap();
    }
    std::fs::remove_file(&snapshot).unwrap();
}

#[test]
fn a_negative_data_version_or_an_odd_job_is_not_safe_to_roll_back_on() {
    // The open window of `deferred-new-minor`, then the row or a job damaged.
    for (damage, finding, check) in [
        (
            "UPDATE \"DatabaseMigration\" SET \"dataVersion\" = -1",
            "odd-data-version",
            "post-deploy-applied",
        ),
        (
            "SELECT fixture.job(gen_random_uuid(), 0, ARRAY['error'], ARRAY[now()])",
            "odd-job-version",
            "post-deploy-started",
        ),
        (
            "SELECT fixture.job(gen_random_uuid(), 2147483647, ARRAY['accepted'], ARRAY[now()])",
            "odd-job-version",
            "post-deploy-started",
        ),
    ] {
        let db = TestDb::build(&["schema", "deferred-new-minor"], damage);
        let url = db.url();
        let rollback = run(&[
            "rollback-check",
            "--format",
            "json",
            "--database-url",
            &url,
            "--to",
            "5.1.44",
            "--from",
            "5.2.2",
        ]);
        let report = json(&rollback);
        assert_eq!(report["verdict"], "UNKNOWN", "{damage}: {report:#}");
        assert_eq!(rollback.code, 3);
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == check)
            .unwrap();
        assert_eq!(check["outcome"], "unknown", "{damage}: {check}");
        let status = run(&["status", "--format", "json", "--database-url", &url]);
        assert!(parse_status(&status.stdout)
            .finding_ids()
            .contains(&finding));
    }
}

#[test]
fn only_migrations_something_names_are_listed_and_folds_do_not_span_a_gap() {
    // dataVersion 60 on a 5.2 manifest that ends at v53: v54–v59 are named by nothing.
    let mut snapshot: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::harness::fixture_path("snapshots/steady-state.json"))
            .unwrap(),
    )
    .unwrap();
    snapshot["database_migration"][0]["data_version"] = 60.into();
    let file = temp("medmig_numbers", "json");
    std::fs::write(&file, snapshot.to_string()).unwrap();
    let report =
        parse_status(&run(&["status", "--format", "json", "--snapshot", path(&file)]).stdout);
    let versions: Vec<u32> = report.migrations.iter().map(|m| m.version).collect();
    assert_eq!(versions, [(1..=53).collect(), vec![60]].concat());
    let table = run(&["status", "--snapshot", path(&file)]).stdout;
    std::fs::remove_file(&file).unwrap();
    assert!(table.contains("v1–v53 "), "{table}");
    assert!(table.contains("53 migrations folded"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with("v60 ") && l.contains("completed")),
        "{table}"
    );
}

#[test]
fn the_manifest_the_fuzzer_found_is_refused_in_bounded_memory() {
    // Found by scripts/fuzz (target manifest): one key, v2222253, made status count to it
    // and abort after 3.4 GB. Only keys no migration can have: nothing to go on, one line.
    let manifest = temp("medmig_fuzz_manifest", "json");
    std::fs::write(&manifest, r#"{"v2222253": {"serverVersion": "5.2.4"}}"#).unwrap();
    let snapshot = crate::harness::fixture_path("snapshots/steady-state.json");
    let run = medmig_capped(
        256 * 1024,
        &[
            "status",
            "--snapshot",
            snapshot.to_str().unwrap(),
            "--manifest",
            path(&manifest),
        ],
    );
    std::fs::remove_file(&manifest).unwrap();
    assert!(run.single_error().contains("\"v2222253\""), "{run:?}");
}
