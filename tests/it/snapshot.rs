//! Snapshots: taken live, read back offline with the same answer; shipped examples readable;
//! damaged files refused clearly and nothing half-written.

use crate::harness::{fixture_path, medmig, parse_status, unique_name, TestDb};

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}.json", unique_name(name)))
}

#[test]
fn a_snapshot_gives_the_same_answer_offline() {
    let db = TestDb::with(&["schema", "failed-with-retry"]);
    let out = temp_path("medmig_snapshot");
    let out_arg = out.to_str().unwrap();
    let run = medmig(&["snapshot", "--database-url", &db.url(), "--out", out_arg]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.is_empty());
    let offline = medmig(&["status", "--format", "json", "--snapshot", out_arg]);
    assert_eq!(offline.code, 0, "{offline:?}");
    let offline = parse_status(&offline.stdout);
    assert_eq!(offline.source.kind, "snapshot");
    assert_eq!(offline.source.file.as_deref(), Some(out_arg));
    assert_eq!(offline.source.database, db.name);

    // Live again, now: the same states, runs and findings.
    let live = crate::harness::status_json(&db.url(), &[]);
    assert_eq!(live.migrations.len(), offline.migrations.len());
    for (a, b) in live.migrations.iter().zip(&offline.migrations) {
        assert_eq!(
            (a.version, &a.state, &a.runs),
            (b.version, &b.state, &b.runs)
        );
    }
    assert_eq!(live.finding_ids(), offline.finding_ids());

    // --out never replaces a file silently.
    let again = medmig(&["snapshot", "--database-url", &db.url(), "--out", out_arg]);
    assert!(again.single_error().contains("--force"));
    let forced = medmig(&[
        "snapshot",
        "--database-url",
        &db.url(),
        "--out",
        out_arg,
        "--force",
    ]);
    assert_eq!(forced.code, 0, "{forced:?}");
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn a_failed_snapshot_leaves_no_file() {
    let db = TestDb::with(&["not-medplum"]);
    let out = temp_path("medmig_nothing");
    let run = medmig(&[
        "snapshot",
        "--database-url",
        &db.url(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.single_error().contains("not a Medplum database"));
    assert!(!out.exists());
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".medmig-"))
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .contains(out.file_name().unwrap().to_str().unwrap())
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn shipped_example_snapshots_read_offline() {
    let dir = fixture_path("snapshots");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        let run = medmig(&[
            "status",
            "--format",
            "json",
            "--snapshot",
            path.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 0, "{}: {run:?}", path.display());
        let report = parse_status(&run.stdout);
        assert_eq!(report.migrations.len(), 53, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 2, "expected example snapshots in {}", dir.display());
    // The README's quick start.
    let readme_example = fixture_path("snapshots/failed-with-retry.json");
    let run = medmig(&["status", "--snapshot", readme_example.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("failed"), "{}", run.stdout);
}

#[test]
fn damaged_snapshot_files_are_refused_in_one_line() {
    let missing = medmig(&["status", "--snapshot", "/nonexistent/medmig.json"]);
    assert!(missing
        .single_error()
        .contains("cannot read snapshot /nonexistent/medmig.json"));

    let example = std::fs::read_to_string(fixture_path("snapshots/steady-state.json")).unwrap();
    let cases = [
        (
            "truncated",
            example[..example.len() / 2].to_string(),
            "truncated",
        ),
        ("garbage", "\u{1f}\u{8b}\u{8}binary".to_string(), "not JSON"),
        (
            "newer",
            example.replacen("\"format_version\": 1", "\"format_version\": 7", 1),
            "upgrade medmig",
        ),
        (
            "shape",
            "{\"format_version\": 1, \"jobs\": 3}".to_string(),
            "shape",
        ),
    ];
    for (name, content, expected) in cases {
        let path = temp_path(&format!("medmig_{name}"));
        std::fs::write(&path, content).unwrap();
        let run = medmig(&["status", "--snapshot", path.to_str().unwrap()]);
        std::fs::remove_file(&path).unwrap();
        let line = run.single_error();
        assert!(line.contains(expected), "{name}: {line}");
    }
}

#[test]
fn manifest_can_be_replaced_and_a_bad_one_is_refused() {
    let example = fixture_path("snapshots/steady-state.json");
    let manifest = temp_path("medmig_manifest");
    // A newer release's manifest that knows v54.
    let mut text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/medplum/data-version-manifest.json"),
    )
    .unwrap();
    text = text.trim_end().trim_end_matches('}').to_string()
        + ",\n  \"v54\": {\"serverVersion\": \"5.3.1\"}\n}\n";
    std::fs::write(&manifest, &text).unwrap();
    let run = medmig(&[
        "status",
        "--format",
        "json",
        "--snapshot",
        example.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = parse_status(&run.stdout);
    assert_eq!(report.migrations.len(), 54);
    assert_eq!(report.migration(54).state, "pending");
    assert_eq!(report.post_deploy.pending, Some(54));
    assert_eq!(report.source.manifest, manifest.to_str().unwrap());

    std::fs::write(&manifest, "{\"13\": {}}").unwrap();
    let run = medmig(&[
        "status",
        "--snapshot",
        example.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    std::fs::remove_file(&manifest).unwrap();
    assert!(
        run.single_error().contains("data-version-manifest"),
        "{run:?}"
    );
}
