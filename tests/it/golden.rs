//! Golden output of the renderers: the shipped example snapshots rendered in every format and
//! compared byte for byte with `tests/golden/`. After an intended change of presentation,
//! regenerate with `MEDMIG_UPDATE_GOLDEN=1 cargo test golden` and review the diff.

use crate::harness::medmig;

fn check(snapshot: &str, format: &str, extra: &[&str]) {
    let path = format!("fixtures/snapshots/{snapshot}.json");
    let mut args = vec!["status", "--snapshot", &path, "--format", format];
    args.extend_from_slice(extra);
    let run = medmig(&args);
    assert!(run.code == 0 || run.code == 1, "{run:?}");
    let suffix = if extra.is_empty() {
        String::new()
    } else {
        "-all".to_string()
    };
    let golden = format!("tests/golden/{snapshot}{suffix}.{format}");
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
