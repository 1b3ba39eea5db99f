//! What a newcomer reads first: the help of bare `medmig`, argument errors that keep clap's
//! message readable and point to the subcommand's help, option help that says what it means
//! (CSV rows, `--ignore` ids, the connection variables), and counts in the singular for one.

use serde_json::Value;

use crate::harness::{medmig, Run, TestDb};

#[test]
fn bare_medmig_prints_the_help_laid_out_on_stderr_and_exits_2() {
    let run = medmig(&[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(lines.contains(&"Usage: medmig <COMMAND>"), "{}", run.stderr);
    assert!(lines.contains(&"Commands:"), "{}", run.stderr);
    for command in ["status", "snapshot", "rollback-check", "bundle", "schema"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("  {command} "))),
            "{command}: {}",
            run.stderr
        );
    }
}

/// Asserts an argument error ([`Run::argument_error`]) whose hint names `help`; returns its
/// `error:` line.
fn argument_error<'a>(run: &'a Run, help: &str) -> &'a str {
    let line = run.argument_error();
    assert_eq!(
        run.stderr.lines().last(),
        Some(format!("For more information, try '{help}'.").as_str()),
        "{run:?}"
    );
    line
}

#[test]
fn argument_errors_keep_the_problem_on_one_line_and_name_the_subcommands_help() {
    let run = medmig(&["status", "--bogus"]);
    let line = argument_error(&run, "medmig status --help");
    assert_eq!(line, "error: unexpected argument '--bogus' found");
    assert!(
        run.stderr
            .lines()
            .any(|l| l == "Usage: medmig status [OPTIONS]"),
        "{run:?}"
    );

    // clap lists what is missing on lines of their own: they join the error line.
    let run = medmig(&["bundle"]);
    let line = argument_error(&run, "medmig bundle --help");
    assert_eq!(
        line,
        "error: the following required arguments were not provided: --out <FILE>"
    );

    let run = medmig(&["schema", "diff", "--baseline", "b.json", "--format", "xml"]);
    let line = argument_error(&run, "medmig schema diff --help");
    assert_eq!(
        line,
        "error: invalid value 'xml' for '--format <FORMAT>' [possible values: table, json, csv]"
    );

    // A similar name is suggested, as clap does.
    let run = medmig(&["bundle", "verify", "--bogus", "b.tar.gz"]);
    argument_error(&run, "medmig bundle verify --help");
    let run = medmig(&["statsu"]);
    argument_error(&run, "medmig --help");
    assert!(
        run.stderr
            .contains("tip: a similar subcommand exists: 'status'"),
        "{run:?}"
    );

    // An option's value that happens to be a subcommand's name is not taken for one.
    let run = medmig(&["bundle", "--out", "verify", "--bogus"]);
    argument_error(&run, "medmig bundle --help");
}

#[test]
fn format_help_says_what_a_csv_row_is_for_each_command() {
    for (command, row) in [
        (&["status"][..], "one row per post-deploy migration"),
        (&["rollback-check"][..], "one row per check"),
        (&["schema", "diff"][..], "one row per difference"),
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let run = medmig(&args);
        assert_eq!(run.code, 0, "{run:?}");
        let help = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains(row), "{command:?}: {help}");
        if command != ["status"] {
            assert!(!help.contains("per migration"), "{command:?}: {help}");
            assert!(!help.contains("per post-deploy migration"), "{command:?}");
        }
    }
}

#[test]
fn ignore_help_lists_every_id_it_takes() {
    let run = medmig(&["rollback-check", "--help"]);
    assert_eq!(run.code, 0, "{run:?}");
    let help = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    let listed = help
        .split("Ids: ")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .unwrap_or_else(|| panic!("no ids in: {help}"));
    let ids: Vec<&str> = listed.split(", ").collect();
    assert!(ids.contains(&"table-dropped") && ids.contains(&"index-compared-by-shape"));

    // Every check the command reports is listed, and every listed id is accepted.
    let snapshot = "fixtures/snapshots/deferred-new-minor.json";
    let all = ids.join(",");
    let run = medmig(&[
        "rollback-check",
        "--snapshot",
        snapshot,
        "--to",
        "5.1.44",
        "--format",
        "json",
        "--ignore",
        &all,
    ]);
    assert_ne!(run.code, 2, "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    for check in report["checks"].as_array().unwrap() {
        let id = check["id"].as_str().unwrap();
        assert!(ids.contains(&id), "{id} is not listed: {listed}");
        assert_eq!(check["outcome"], "ignored", "{check}");
    }
    // -h says where they are.
    let run = medmig(&["rollback-check", "-h"]);
    let short = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(short.contains("(--help lists the ids)"), "{short}");
}

#[test]
fn connection_help_names_every_variable_medmig_reads() {
    for command in [&["status"][..], &["snapshot"][..], &["bundle"][..]] {
        let mut args = command.to_vec();
        args.push("--help");
        let run = medmig(&args);
        assert_eq!(run.code, 0, "{run:?}");
        for variable in [
            "DATABASE_URL",
            "MEDPLUM_DATABASE_HOST",
            "MEDPLUM_DATABASE_PORT",
            "_DBNAME",
            "_USERNAME",
            "_PASSWORD",
            "PGHOST",
            "PGPORT",
            "PGDATABASE",
            "PGUSER",
            "PGPASSWORD",
            "PGSSLMODE",
            "PGSSLROOTCERT",
        ] {
            assert!(run.stdout.contains(variable), "{command:?} {variable}");
        }
    }
}

#[test]
fn a_count_of_one_is_singular() {
    // One function (the other is dropped with the index that uses it), one job, one invalid
    // index.
    let db = TestDb::build(
        &["schema"],
        r#"
DROP FUNCTION medplum_unaccent(text);
INSERT INTO "DatabaseMigration" VALUES (1, 120, 0, false);
SELECT fixture.job('e0100000-0000-4000-8000-000000000001', 1,
  ARRAY['accepted', 'error'],
  ARRAY[now() - interval '3 hours', now() - interval '2 hours'],
  '{"resourceType":"Parameters","parameter":[{"name":"error","valueString":"deadlock detected"}]}',
  '5.1.44');
CREATE INDEX "Observation_subject_code_idx" ON "Observation" ("subject", "__codeSort");
UPDATE pg_index SET indisvalid = false
WHERE indexrelid = '"Observation_subject_code_idx"'::regclass;
"#,
    );
    let dir = std::env::temp_dir().join(crate::harness::unique_name("medmig_counts"));
    std::fs::create_dir(&dir).unwrap();
    let capture = dir.join("schema.json");
    let run = medmig(&[
        "schema",
        "capture",
        "--database-url",
        &db.url(),
        "--out",
        capture.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains(", 1 function, "), "{run:?}");
    let snapshot = dir.join("snapshot.json");
    let run = medmig(&[
        "snapshot",
        "--database-url",
        &db.url(),
        "--out",
        snapshot.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("(1 post-deploy job, 1 invalid index)"),
        "{run:?}"
    );

    // One difference of each impact.
    db.execute(
        r#"DROP INDEX "Observation_subject_code_idx";
           ALTER TABLE "Observation" ADD COLUMN "extra" text;
           CREATE UNIQUE INDEX "Observation_extra_idx" ON "Observation" ("extra");"#,
    );
    let run = medmig(&[
        "schema",
        "diff",
        "--baseline",
        capture.to_str().unwrap(),
        "--database-url",
        &db.url(),
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .starts_with("BREAKING: 1 difference would break code written against the baseline"),
        "{}",
        run.stdout
    );
    let counts = run.stdout.lines().nth(1).unwrap();
    assert!(counts.starts_with("1 blocker, "), "{}", run.stdout);
    assert!(!run.stdout.contains("1 blockers"), "{}", run.stdout);
    for every in [&run.stdout, &run.stderr] {
        for plural in [
            "1 functions",
            "1 tables",
            "1 jobs",
            "1 indexes",
            "1 warnings",
        ] {
            assert!(!every.contains(plural), "{every}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
