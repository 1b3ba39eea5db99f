//! Text from outside reaches the terminal inert: names and messages carrying escape
//! sequences, carriage returns, newlines and bidirectional overrides (from a database, a
//! snapshot, a bundle's entries, a file name) are shown escaped in every format for people,
//! CSV records stay one line each, JSON escapes them, and an error stays one line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::bundle::{repack, unpack};
use crate::harness::{medmig, unique_name, Run, TestDb};

/// The line a hostile value tries to forge.
const FORGED: &str = "error: all good";

/// `name` followed by what a hostile value carries: a screen clear and a cursor move, a
/// carriage return and a newline that start the forged line, a window-title OSC, a CSI as a
/// C1 control, and a right-to-left override.
fn hostile(name: &str) -> String {
    format!("{name}\u{1b}[2J\u{1b}[H\r\n{FORGED}\u{1b}]0;pwned\u{7}\u{9b}31m\u{202e}")
}

/// How medmig shows [`hostile`]`(name)`.
fn shown(name: &str) -> String {
    format!("{name}\\x1b[2J\\x1b[H\\r\\n{FORGED}\\x1b]0;pwned\\x07\\u{{9b}}31m\\u{{202e}}")
}

/// A control character a terminal would obey (a newline ends a line medmig wrote).
fn obeyed(c: char) -> bool {
    (c.is_control() && c != '\n')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Asserts that `text` holds no control character a terminal would obey and no line that
/// starts with the forged text.
fn assert_inert(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|&c| obeyed(c)) {
        panic!("{what}: a raw {c:?} reaches the terminal:\n{text}");
    }
    assert!(
        !text
            .lines()
            .any(|line| line.trim_start().starts_with(FORGED)),
        "{what}: a forged line:\n{text}"
    );
}

/// Asserts a run ended as expected with stdout and stderr inert; returns stdout.
fn inert_run(what: &str, run: &Run, code: i32) -> String {
    assert_eq!(run.code, code, "{what}: {run:?}");
    assert_inert(&format!("{what} (stdout)"), &run.stdout);
    assert_inert(&format!("{what} (stderr)"), &run.stderr);
    run.stdout.clone()
}

/// `text` as a PostgreSQL identifier (`U&"…"`, every character that needs it as `\XXXX`).
fn identifier(text: &str) -> String {
    let mut quoted = String::from("U&\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\"\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_ascii_graphic() || c == ' ' => quoted.push(c),
            c => quoted.push_str(&format!("\\{:04X}", u32::from(c))),
        }
    }
    quoted.push('"');
    quoted
}

/// A Medplum-shaped database whose failed job's error text, invalid index and table carry
/// hostile names (the shape of `failed-with-retry` and `invalid-index`).
fn hostile_database() -> TestDb {
    let error = serde_json::to_string(&hostile("canceling statement due to lock timeout")).unwrap();
    let table = identifier(&hostile("tbl"));
    let index = identifier(&hostile("idx"));
    TestDb::build(
        &["schema"],
        &format!(
            r#"
INSERT INTO "DatabaseMigration" VALUES (1, 120, 49, false);
SELECT fixture.completed_jobs(46, 49, interval '2 days');
SELECT fixture.job('e5000000-0000-4000-8000-000000000001', 50,
  ARRAY['accepted', 'error'],
  ARRAY[now() - interval '3 hours', now() - interval '2 hours'],
  '{{"resourceType":"Parameters","parameter":[{{"name":"error","valueString":{error}}}]}}',
  '5.1.44');
CREATE TABLE {table} ("id" uuid, "name" text);
CREATE INDEX {index} ON {table} ("name");
UPDATE pg_index SET indisvalid = false
WHERE indexrelid = (SELECT oid FROM pg_class WHERE relkind = 'i' AND relname LIKE 'idx' || chr(27) || '%');
"#
        ),
    )
}

fn temp(name: &str, extension: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}.{extension}", unique_name(name)))
}

/// Parses CSV output: every record has the header's width.
fn csv_records(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            assert_eq!(record.len(), header.len(), "{text}");
            header
                .iter()
                .zip(record.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn hostile_names_from_a_database_are_shown_not_obeyed_in_every_format() {
    let db = TestDb::with(&["schema"]);
    let baseline = crate::schema::capture(&db);
    drop(db);
    let db = hostile_database();
    let url = db.url();

    let table = inert_run(
        "status",
        &medmig(&["status", "--all", "--database-url", &url]),
        0,
    );
    // The error (its first line, as the table shows errors), the index, table and definition.
    assert!(
        table.contains("error: canceling statement due to lock timeout\\x1b[2J\\x1b[H"),
        "{table}"
    );
    assert!(table.contains(&shown("idx")), "{table}");
    assert!(table.contains(&shown("tbl")), "{table}");
    // A finding quotes the whole error: one line still.
    let failed = table
        .lines()
        .find(|l| l.contains("migration-failed"))
        .unwrap();
    assert!(
        failed.contains(&shown("canceling statement due to lock timeout")),
        "{failed}"
    );

    let csv = inert_run(
        "status csv",
        &medmig(&["status", "--format", "csv", "--database-url", &url]),
        0,
    );
    let rows = csv_records(&csv);
    assert_eq!(rows.len(), csv.lines().count() - 1, "one line per record");
    let v50 = rows.iter().find(|r| r["version"] == "50").unwrap();
    assert_eq!(
        v50["error"],
        shown("canceling statement due to lock timeout")
    );

    // JSON escapes them and keeps the value exact.
    let json = inert_run(
        "status json",
        &medmig(&["status", "--format", "json", "--database-url", &url]),
        0,
    );
    let report: Value = serde_json::from_str(&json).unwrap();
    let v50 = report["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["version"] == 50)
        .unwrap();
    assert_eq!(
        v50["error"],
        hostile("canceling statement due to lock timeout")
    );
    assert_eq!(report["invalid_indexes"][0]["index"], hostile("idx"));

    for format in ["table", "csv", "json"] {
        let run = medmig(&[
            "rollback-check",
            "--to",
            "5.1.44",
            "--from",
            "5.2.4",
            "--format",
            format,
            "--database-url",
            &url,
        ]);
        let out = inert_run(&format!("rollback-check {format}"), &run, 0);
        if format != "json" {
            assert!(out.contains(&shown("idx")), "{out}");
        }
    }
    for format in ["table", "markdown", "json"] {
        let run = medmig(&["recover", "--format", format, "--database-url", &url]);
        let out = inert_run(&format!("recover {format}"), &run, 0);
        if format != "json" {
            assert!(out.contains("\\x1b[2J"), "{out}");
        }
    }
    for format in ["table", "csv", "json"] {
        let run = medmig(&[
            "schema",
            "diff",
            "--baseline",
            baseline.to_str().unwrap(),
            "--format",
            format,
            "--database-url",
            &url,
        ]);
        let out = inert_run(&format!("schema diff {format}"), &run, 0);
        if format != "json" {
            assert!(out.contains(&shown("tbl")), "{out}");
        }
        if format == "csv" {
            let rows = csv_records(&out);
            assert_eq!(rows.len(), out.lines().count() - 1, "{out}");
        }
    }
    std::fs::remove_file(&baseline).unwrap();
}

#[test]
fn a_hostile_snapshot_is_shown_inert_and_its_errors_stay_one_line() {
    let db = hostile_database();
    let directory = temp("medmig_hostile_dir", "d");
    std::fs::create_dir(&directory).unwrap();
    // The note about the file written names it: inert too.
    let out = directory.join(hostile("snapshot"));
    let run = medmig(&[
        "snapshot",
        "--database-url",
        &db.url(),
        "--out",
        out.to_str().unwrap(),
    ]);
    inert_run("snapshot", &run, 0);
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains(&shown("snapshot")), "{run:?}");

    let mut snapshot: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    snapshot["source"]["database"] = hostile("medplum").into();
    snapshot["source"]["host"] = hostile("db.internal").into();
    snapshot["source"]["server_version"] = hostile("16.2").into();
    let edited = directory.join("edited.json");
    std::fs::write(&edited, serde_json::to_vec(&snapshot).unwrap()).unwrap();
    let path = edited.to_str().unwrap();
    for (command, format) in [
        ("status", "table"),
        ("status", "csv"),
        ("recover", "markdown"),
        ("upgrade-plan", "table"),
        ("upgrade-plan", "markdown"),
    ] {
        let mut args = vec![command, "--snapshot", path, "--format", format];
        if command == "upgrade-plan" {
            args.extend(["--from", "5.1.44", "--to", "5.2.4"]);
        }
        let run = medmig(&args);
        let stdout = inert_run(&format!("{command} {format}"), &run, 0);
        if format != "csv" {
            assert!(stdout.contains(&shown("medplum")), "{stdout}");
        }
    }

    // An error quoting a hostile value from the file, and one naming a hostile path: one
    // line each, shown.
    snapshot["source"]["ssl_mode"] = hostile("require").into();
    std::fs::write(&edited, serde_json::to_vec(&snapshot).unwrap()).unwrap();
    let run = medmig(&["status", "--snapshot", path]);
    let line = run.single_error();
    assert_inert("a bad enum value", &run.stderr);
    assert!(line.contains(&shown("require")), "{line}");
    let missing = directory.join(hostile("missing"));
    let run = medmig(&["status", "--snapshot", missing.to_str().unwrap()]);
    let line = run.single_error();
    assert_inert("a missing file", &run.stderr);
    assert!(line.contains(&shown("missing")), "{line}");

    std::fs::remove_dir_all(&directory).unwrap();
}

/// A gzip file cut short: the bundle notes it as a gap naming the file.
fn truncated_gzip(path: &Path) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..2000 {
        writeln!(gz, "2025-06-02T10:00:{:02}.000Z INFO line {i}", i % 60).unwrap();
    }
    let bytes = gz.finish().unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

/// An archive of a bundle's `manifest` and a symbolic link `name` to `target`.
fn manifest_and_symlink(path: &Path, manifest: &[u8], name: &str, target: &str) {
    use std::io::Write;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "manifest.json", manifest)
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    tar.append_link(&mut header, name, target).unwrap();
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

#[test]
fn hostile_names_in_and_around_a_bundle_are_shown_inert() {
    let logs = temp("medmig_hostile_logs", "d");
    std::fs::create_dir(&logs).unwrap();
    truncated_gzip(&logs.join(format!("{}.log.gz", hostile("server"))));
    let out = temp("medmig_hostile_bundle", "tar.gz");
    let run = medmig(&[
        "bundle",
        "--no-db",
        "--logs",
        logs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    inert_run("bundle", &run, 0);

    let mut files = unpack(&out);
    let summary = String::from_utf8(files["summary.txt"].clone()).unwrap();
    assert_inert("summary.txt", &summary);
    assert!(summary.contains(&shown("server")), "{summary}");

    // An entry the manifest does not list, with a hostile name.
    files.insert(
        format!("logs/{}.log", hostile("extra")),
        b"hello\n".to_vec(),
    );
    let tampered = temp("medmig_hostile_tampered", "tar.gz");
    repack(&tampered, &files);
    let run = medmig(&["bundle", "verify", tampered.to_str().unwrap()]);
    let stdout = inert_run("bundle verify", &run, 1);
    assert!(stdout.contains(&shown("extra")), "{stdout}");

    // An unsafe entry, a symbolic link whose name and target are hostile: named, shown.
    let linked = temp("medmig_hostile_link", "tar.gz");
    manifest_and_symlink(
        &linked,
        &files["manifest.json"],
        &hostile("link"),
        &hostile("/etc/passwd"),
    );
    let run = medmig(&["bundle", "verify", linked.to_str().unwrap()]);
    let stdout = inert_run("bundle verify (symlink)", &run, 1);
    assert!(stdout.contains(&shown("link")), "{stdout}");
    assert!(stdout.contains(&shown("/etc/passwd")), "{stdout}");
    let run = medmig(&["status", "--bundle", linked.to_str().unwrap()]);
    run.single_error();
    assert_inert("status --bundle (symlink)", &run.stderr);

    // A bundle whose own name is hostile: the verdict names it, shown.
    let named = logs.join(format!("{}.tar.gz", hostile("case")));
    std::fs::copy(&out, &named).unwrap();
    let run = medmig(&["bundle", "verify", named.to_str().unwrap()]);
    let stdout = inert_run("bundle verify (name)", &run, 0);
    assert!(stdout.contains(&shown("case")), "{stdout}");

    for path in [&out, &tampered, &linked] {
        std::fs::remove_file(path).unwrap();
    }
    std::fs::remove_dir_all(&logs).unwrap();
}

#[test]
fn a_hostile_command_line_is_quoted_back_inert() {
    let value = hostile("xml");
    let run = medmig(&["status", "--format", &value]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_inert("an argument error", &run.stderr);
    let first = run.stderr.lines().next().unwrap();
    assert!(
        first.starts_with("error: ") && first.contains(&shown("xml")),
        "{run:?}"
    );
}
