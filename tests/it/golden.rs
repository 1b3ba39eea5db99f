//! Golden output of the renderers: the shipped example snapshots rendered in every format and
//! compared byte for byte with `tests/golden/`. After an intended change of presentation,
//! regenerate with `MEDMIG_UPDATE_GOLDEN=1 cargo test golden` and review the diff.

use crate::harness::medmig;

fn check(snapshot: &str, format: &str, extra: &[&str]) {
    let path = format!("fixtures/snapshots/{snapshot}.json");
    let mut args = vec!["status", "--snapshot", &path, "--format", format];
    args.extend_from_slice(extra);
    let suffix = if extra.is_empty() { "" } else { "-all" };
    check_command(&format!("{snapshot}{suffix}.{format}"), &args);
}

/// Runs `args`, exit code 0, 1 or 3, and compares stdout with `tests/golden/{name}`.
fn check_command(name: &str, args: &[&str]) {
    let run = medmig(args);
    assert!([0, 1, 3].contains(&run.code), "{run:?}");
    let golden = format!("tests/golden/{name}");
    if std::env::var_os("MEDMIG_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &run.stdout).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&golden)
        .unwrap_or_else(|err| panic!("{golden}: {err} (MEDMIG_UPDATE_GOLDEN=1 writes it)"));
    assert!(
        run.stdout == expected,
        "{golden} differs from the output:\n{}",
        run.stdout
    );
}

#[test]
fn rollback_output() {
    for format in ["table", "json", "csv"] {
        check_command(
            &format!("rollback-deferred-new-minor.{format}"),
            &[
                "rollback-check",
                "--snapshot",
                "fixtures/snapshots/deferred-new-minor.json",
                "--to",
                "5.1.44",
                "--from",
                "5.2.2",
                "--format",
                format,
            ],
        );
    }
    check_command(
        "rollback-reindex-running.table",
        &[
            "rollback-check",
            "--snapshot",
            "fixtures/snapshots/reindex-running.json",
            "--to",
            "5.2.2",
            "--from",
            "5.3.0",
        ],
    );
}

#[test]
fn table_output() {
    for snapshot in [
        "steady-state",
        "deferred-new-minor",
        "failed-with-retry",
        "reindex-running",
        "stale-job",
    ] {
        check(snapshot, "table", &[]);
    }
    check("failed-with-retry", "table", &["--all"]);
}

#[test]
fn json_output() {
    check("failed-with-retry", "json", &[]);
}

#[test]
fn csv_output() {
    check("reindex-running", "csv", &[]);
}
