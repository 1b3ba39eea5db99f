//! `medmig schema capture` and `medmig schema diff` on a real database changed in known ways.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::harness::{medmig, take_snapshot, unique_name, TestDb};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffJson {
    format_version: u32,
    baseline: serde_json::Value,
    current: serde_json::Value,
    summary: Summary,
    differences: Vec<Difference>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Summary {
    blocker: usize,
    warning: usize,
    info: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Difference {
    id: String,
    severity: String,
    object: String,
    message: String,
}

/// Captures `db`'s schema into a temporary file and returns its path.
pub fn capture(db: &TestDb) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.schema.json", unique_name("medmig_schema")));
    let run = medmig(&[
        "schema",
        "capture",
        "--database-url",
        &db.url(),
        "--out",
        path.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("tables"), "{run:?}");
    path
}

fn diff(db: &TestDb, baseline: &std::path::Path) -> (i32, DiffJson) {
    diff_with(baseline, &["--database-url", &db.url()])
}

/// `schema diff --format json` of `baseline` against the input `current` names.
fn diff_with(baseline: &std::path::Path, current: &[&str]) -> (i32, DiffJson) {
    let mut args = vec![
        "schema",
        "diff",
        "--format",
        "json",
        "--baseline",
        baseline.to_str().unwrap(),
    ];
    args.extend_from_slice(current);
    let run = medmig(&args);
    let report: DiffJson =
        serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("{err}: {run:?}"));
    assert_eq!(report.format_version, 1);
    assert!(report.baseline.get("captured_at").is_some() && report.current.get("source").is_some());
    (run.code, report)
}

#[test]
fn an_unchanged_schema_matches_its_capture() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let baseline = capture(&db);
    let (code, report) = diff(&db, &baseline);
    assert_eq!(code, 0);
    assert!(report.differences.is_empty(), "{report:?}");
    let run = medmig(&[
        "schema",
        "diff",
        "--baseline",
        baseline.to_str().unwrap(),
        "--database-url",
        &db.url(),
    ]);
    assert!(
        run.stdout.starts_with("The schema matches the baseline."),
        "{run:?}"
    );
    std::fs::remove_file(baseline).unwrap();
}

#[test]
fn pre_deploy_style_changes_are_compatible() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let baseline = capture(&db);
    db.execute(
        "ALTER TABLE \"Patient\" ADD COLUMN IF NOT EXISTS \"__genderSort\" TEXT;
         CREATE TABLE IF NOT EXISTS \"Task\" (\"id\" UUID NOT NULL PRIMARY KEY, \"content\" TEXT NOT NULL);
         CREATE INDEX \"Patient___genderSort_idx\" ON \"Patient\" (\"__genderSort\");
         CREATE EXTENSION IF NOT EXISTS pg_stat_statements;",
    );
    let (code, report) = diff(&db, &baseline);
    assert_eq!(code, 0, "{report:?}");
    assert_eq!(
        (
            report.summary.blocker,
            report.summary.warning,
            report.summary.info
        ),
        (0, 0, 4)
    );
    let ids: BTreeSet<&str> = report.differences.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([
            "column-added",
            "table-added",
            "index-added",
            "extension-added"
        ])
    );
    std::fs::remove_file(baseline).unwrap();
}

/// The changes a post-deploy migration (or a careless hand) makes, each to be named.
pub const BREAKING_CHANGES: [(&str, &str, &str); 16] = [
    ("table-dropped", "DROP TABLE \"HumanName\"", "public.HumanName"),
    ("column-dropped", "ALTER TABLE \"Patient\" DROP COLUMN \"birthdate\"", "public.Patient.birthdate"),
    ("column-type-changed", "ALTER TABLE \"Observation\" ALTER COLUMN \"subject\" TYPE UUID USING NULL", "public.Observation.subject"),
    ("column-made-not-null", "ALTER TABLE \"Observation\" ALTER COLUMN \"__codeSort\" SET NOT NULL", "public.Observation.__codeSort"),
    ("required-column-added", "ALTER TABLE \"Observation\" ADD COLUMN \"__status\" TEXT NOT NULL", "public.Observation.__status"),
    ("default-dropped", "ALTER TABLE \"AsyncJob\" ALTER COLUMN \"deleted\" DROP DEFAULT", "public.AsyncJob.deleted"),
    ("unique-index-added", "CREATE UNIQUE INDEX \"Patient_identifierSort_uidx\" ON \"Patient\" (\"__identifierSort\")", "Patient_identifierSort_uidx"),
    ("unique-constraint-added", "ALTER TABLE \"Observation\" ADD CONSTRAINT \"Observation_subject_key\" UNIQUE (\"subject\")", "Observation_subject_key"),
    ("check-constraint-added", "ALTER TABLE \"Patient\" ADD CONSTRAINT \"Patient_version_check\" CHECK (\"__version\" > 0)", "Patient_version_check"),
    ("foreign-key-added", "ALTER TABLE \"Patient_References\" ADD CONSTRAINT \"Patient_References_fk\" FOREIGN KEY (\"resourceId\") REFERENCES \"Patient\" (\"id\")", "Patient_References_fk"),
    ("function-dropped", "DROP FUNCTION medplum_unaccent(text)", "public.medplum_unaccent(text)"),
    ("function-changed", "CREATE OR REPLACE FUNCTION token_array_to_text(text[]) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT array_to_string($1, ' ') $$", "public.token_array_to_text(text[])"),
    ("extension-dropped", "DROP EXTENSION btree_gist", "btree_gist"),
    ("index-dropped", "DROP INDEX \"Observation_subject_idx\"", "Observation_subject_idx"),
    ("index-invalid", "UPDATE pg_index SET indisvalid = false WHERE indexrelid = '\"Patient_lastUpdated_idx\"'::regclass", "Patient_lastUpdated_idx"),
    ("constraint-not-validated", "ALTER TABLE \"Observation\" ADD CONSTRAINT \"Observation_project_check\" CHECK (\"projectId\" IS NOT NULL) NOT VALID", "Observation_project_check"),
];

#[test]
fn every_breaking_change_is_named_with_its_object_and_severity() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let baseline = capture(&db);
    for (_, sql, _) in BREAKING_CHANGES {
        db.execute(sql);
    }
    let (code, report) = diff(&db, &baseline);
    std::fs::remove_file(&baseline).unwrap();
    assert_eq!(code, 1, "blockers must exit 1");
    for (id, _, object) in BREAKING_CHANGES {
        let found = report
            .differences
            .iter()
            .find(|d| d.id == id && d.object == object)
            .unwrap_or_else(|| panic!("{id} on {object} missing: {:#?}", report.differences));
        let expected =
            if ["index-dropped", "index-invalid", "constraint-not-validated"].contains(&id) {
                "warning"
            } else {
                "blocker"
            };
        assert_eq!(found.severity, expected, "{found:?}");
        assert!(!found.message.is_empty());
    }
    assert_eq!(report.summary.blocker, 13, "{:#?}", report.differences);
    assert_eq!(report.summary.warning, 3, "{:#?}", report.differences);
}

#[test]
fn a_snapshot_serves_as_baseline_and_as_current_side() {
    let db = TestDb::with(&["schema", "deferred-new-minor"]);
    let (snapshot, _) = take_snapshot(&db.url());
    db.execute("ALTER TABLE \"Patient\" DROP COLUMN \"birthdate\"");
    let (code, report) = diff(&db, &snapshot);
    assert_eq!((code, report.differences.len()), (1, 1), "{report:?}");
    let (code, report) = diff_with(&snapshot, &["--snapshot", snapshot.to_str().unwrap()]);
    std::fs::remove_file(&snapshot).unwrap();
    assert_eq!(code, 0, "{report:?}");
}

#[test]
fn a_bad_baseline_is_refused_in_one_line() {
    let path = std::env::temp_dir().join(format!("{}.json", unique_name("medmig_badbase")));
    std::fs::write(&path, "{\"format_version\": 1, \"captured_at\": 3}").unwrap();
    let run = medmig(&[
        "schema",
        "diff",
        "--baseline",
        path.to_str().unwrap(),
        "--snapshot",
        "fixtures/snapshots/steady-state.json",
    ]);
    std::fs::remove_file(&path).unwrap();
    assert!(
        run.single_error().contains("shape of a schema capture"),
        "{run:?}"
    );
}

#[test]
fn definitions_read_exactly_as_postgresql_prints_them() {
    let db = TestDb::with(&["schema", "steady-state", "index-zoo"]);
    assert_definitions_are_postgresqls(&db, 50, 8);
}

/// The same check on the regression zoo: every index and constraint syntax that PostgreSQL's
/// own create_index and index_including regression files exercise (at least 475 indexes and
/// 105 constraints on PostgreSQL 13, more on newer majors).
#[test]
fn definitions_of_the_regression_zoo_are_postgresqls() {
    let db = TestDb::with(&["schema", "steady-state", "index-zoo-regress"]);
    assert_definitions_are_postgresqls(&db, 475, 105);
}

/// Captures `db` and checks every index and constraint definition of its public schema against
/// `pg_get_indexdef` and `pg_get_constraintdef` (there are at least `indexes` and
/// `constraints` of them), listing every one that differs.
pub fn assert_definitions_are_postgresqls(db: &TestDb, indexes: usize, constraints: usize) {
    let path = capture(db);
    let captured: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let rt = crate::harness::runtime();
    let (expected_indexes, expected_constraints) = rt.block_on(async {
        let client = crate::harness::connect(&db.url()).await;
        let rows = |sql: &'static str| {
            let client = &client;
            async move { client.query(sql, &[]).await.unwrap() }
        };
        let indexes: Vec<(String, String, String)> = rows(
            "SELECT n.nspname || '.' || t.relname, i.relname::text, pg_get_indexdef(x.indexrelid)
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
             JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = 'public'",
        )
        .await
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
        let constraints: Vec<(String, String, String, bool)> = rows(
            "SELECT n.nspname || '.' || t.relname, k.conname::text, pg_get_constraintdef(k.oid),
                    k.convalidated
             FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = 'public' AND k.contype <> 'n'",
        )
        .await
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
        (indexes, constraints)
    });
    assert!(
        expected_indexes.len() >= indexes,
        "{}",
        expected_indexes.len()
    );
    assert!(
        expected_constraints.len() >= constraints,
        "{}",
        expected_constraints.len()
    );
    let tables = &captured["schema"]["tables"];
    let mut wrong: Vec<String> = expected_indexes
        .iter()
        .filter_map(|(table, index, definition)| {
            let ours = tables[table]["indexes"][index]["definition"].as_str();
            (ours != Some(definition.as_str())).then(|| {
                format!("{table} {index}:\n  ours:     {ours:?}\n  postgres: {definition}")
            })
        })
        .collect();
    wrong.extend(
        expected_constraints
            .iter()
            .filter_map(|(table, name, definition, validated)| {
                let ours = &tables[table]["constraints"][name];
                // Validation is its own field; the definition is what the constraint enforces.
                let enforced = definition.strip_suffix(" NOT VALID").unwrap_or(definition);
                let right = ours["definition"].as_str() == Some(enforced)
                    && ours["validated"].as_bool() == Some(*validated);
                (!right).then(|| {
                    format!("{table} {name}:\n  ours:     {ours}\n  postgres: {definition}")
                })
            }),
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_kind_of_index_change_is_detected() {
    let changes = [
        ("columns", "CREATE INDEX zoo_desc ON \"Zoo\" (a DESC, c)", "index-changed"),
        ("operator class", "CREATE INDEX zoo_pattern_ops ON \"Zoo\" (a varchar_pattern_ops)", "index-changed"),
        ("method", "CREATE INDEX zoo_hash ON \"Zoo\" USING btree (c)", "index-changed"),
        ("predicate", "CREATE UNIQUE INDEX zoo_unique_partial ON \"Zoo\" (c) WHERE c > 1 AND a IS NOT NULL", "unique-index-added"),
        ("expression", "CREATE INDEX zoo_function ON \"Zoo\" (upper(a))", "index-changed"),
        ("trigram expression", "CREATE INDEX zoo_trigram_expression ON \"Zoo\" USING gin (token_array_to_text(ARRAY[b]) gin_trgm_ops)", "index-changed"),
        ("uniqueness", "CREATE UNIQUE INDEX zoo_brin ON \"Zoo\" (d)", "unique-index-added"),
    ];
    for (what, sql, id) in changes {
        let db = TestDb::with(&["schema", "steady-state", "index-zoo"]);
        let baseline = capture(&db);
        let name = sql
            .split_whitespace()
            .find(|w| w.starts_with("zoo_"))
            .unwrap();
        db.execute(&format!("DROP INDEX {name}; {sql}"));
        let (code, report) = diff(&db, &baseline);
        std::fs::remove_file(&baseline).unwrap();
        let found: Vec<(&str, &str)> = report
            .differences
            .iter()
            .map(|d| (d.id.as_str(), d.object.as_str()))
            .collect();
        assert_eq!(found, [(id, name)], "{what}");
        assert_eq!(code, i32::from(id == "unique-index-added"), "{what}");
    }
}

#[test]
fn a_migration_queued_for_a_table_never_makes_the_capture_wait() {
    let db = TestDb::with(&["schema", "steady-state", "index-zoo"]);
    let rt = crate::harness::runtime();
    rt.block_on(async {
        // A reader holds ZooKeys, so a migration's ALTER TABLE queues for ACCESS EXCLUSIVE:
        // anything that opens the table now waits behind it.
        let reader = crate::harness::connect(&db.url()).await;
        reader
            .batch_execute("BEGIN; LOCK TABLE \"ZooKeys\", \"Zoo\" IN ACCESS SHARE MODE")
            .await
            .unwrap();
        let mut alters = Vec::new();
        for table in ["ZooKeys", "Zoo"] {
            let migrator = crate::harness::connect(&db.url()).await;
            let sql = format!("ALTER TABLE \"{table}\" ADD COLUMN late int");
            alters.push(tokio::spawn(
                async move { migrator.batch_execute(&sql).await },
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let path = std::env::temp_dir().join(format!("{}.json", unique_name("medmig_locked")));
        let started = std::time::Instant::now();
        let run = medmig(&[
            "schema",
            "capture",
            "--database-url",
            &db.url(),
            "--lock-timeout",
            "5s",
            "--out",
            path.to_str().unwrap(),
        ]);
        let waited = started.elapsed();
        reader.batch_execute("ROLLBACK").await.unwrap();
        for alter in alters {
            alter.await.unwrap().unwrap();
        }
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            waited < std::time::Duration::from_secs(4),
            "waited {waited:?}"
        );
        let captured: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let keys = &captured["schema"]["tables"]["public.ZooKeys"];
        // What needs the table open is not read; what the catalog holds still is.
        assert!(
            keys["constraints"]["zoo_keys_check"]["definition"].is_null(),
            "{keys}"
        );
        assert!(
            keys["constraints"]["zoo_keys_exclusion"]["definition"].is_null(),
            "{keys}"
        );
        assert_eq!(
            keys["constraints"]["zoo_keys_pkey"]["definition"],
            "PRIMARY KEY (id, \"Other Id\") INCLUDE (c)"
        );
        let zoo = &captured["schema"]["tables"]["public.Zoo"]["indexes"];
        // Medplum's shapes are printed from the catalog, with the table left closed.
        assert_eq!(
            zoo["zoo_trigram_expression"]["definition"],
            "CREATE INDEX zoo_trigram_expression ON public.\"Zoo\" \
             USING gin (token_array_to_text(arr) gin_trgm_ops)"
        );
        assert_eq!(
            zoo["zoo_live"]["definition"],
            "CREATE INDEX zoo_live ON public.\"Zoo\" USING btree (c) WHERE (deleted = false)"
        );
        assert!(zoo["zoo_function"]["definition"].is_null(), "{zoo}");
        assert!(zoo["zoo_unique_partial"]["definition"].is_null(), "{zoo}");
        assert!(
            zoo["zoo_storage_parameters"]["definition"].is_null(),
            "{zoo}"
        );
        assert_eq!(
            zoo["zoo_function"]["shape"],
            "CREATE INDEX zoo_function ON public.\"Zoo\" USING btree ((expression))"
        );
        assert_eq!(
            zoo["zoo_desc"]["definition"],
            "CREATE INDEX zoo_desc ON public.\"Zoo\" USING btree (a DESC)"
        );
    });
}

#[test]
fn validating_a_not_valid_constraint_is_no_difference() {
    // Medplum sets NOT NULL through a CHECK added NOT VALID and validated later.
    let db = TestDb::with(&["schema", "steady-state", "index-zoo"]);
    let baseline = capture(&db);
    db.execute("ALTER TABLE \"ZooKeys\" VALIDATE CONSTRAINT zoo_keys_check");
    let (code, report) = diff(&db, &baseline);
    std::fs::remove_file(&baseline).unwrap();
    assert_eq!(code, 0);
    assert!(report.differences.is_empty(), "{:?}", report.differences);
}

/// The major version of the test server (`server_version_num` / 10000).
fn server_major(db: &TestDb) -> i32 {
    crate::harness::runtime().block_on(async {
        let client = crate::harness::connect(&db.url()).await;
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int / 10000",
                &[],
            )
            .await
            .unwrap();
        row.get(0)
    })
}

#[test]
fn generated_columns_and_not_valid_not_null_are_captured_as_the_server_has_them() {
    // PostgreSQL 18 added virtual generated columns (attgenerated 'v') and NOT NULL
    // constraints in pg_constraint that may be NOT VALID (attnotnull is true all the same).
    // The matrix (scripts/test-matrix) runs this on 13 to 18; each major asserts its own.
    let db = TestDb::with(&["schema", "steady-state"]);
    let major = server_major(&db);
    db.execute(
        "CREATE TABLE \"Generated\" (a int, stored int GENERATED ALWAYS AS (a * 2) STORED, n int);",
    );
    if major >= 18 {
        db.execute(
            "ALTER TABLE \"Generated\" ADD COLUMN virtual int GENERATED ALWAYS AS (a * 3) VIRTUAL;",
        );
    }
    let baseline = capture(&db);
    let column = |path: &std::path::Path, name: &str| -> serde_json::Value {
        let captured: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let columns = captured["schema"]["tables"]["public.Generated"]["columns"]
            .as_array()
            .unwrap()
            .clone();
        columns
            .into_iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no column {name} captured"))
    };
    assert_eq!(column(&baseline, "stored")["generated"], "stored");
    assert_eq!(column(&baseline, "n")["not_null"], false);
    if major >= 18 {
        assert_eq!(column(&baseline, "virtual")["generated"], "virtual");
        assert_eq!(column(&baseline, "virtual")["default"], "(a * 3)");
    }
    if major < 18 {
        // NOT VALID is for CHECK constraints only before 18; plain NOT NULL is validated.
        db.execute("ALTER TABLE \"Generated\" ALTER COLUMN n SET NOT NULL");
        let (code, report) = diff(&db, &baseline);
        assert_eq!(code, 1);
        assert_eq!(report.differences.len(), 1, "{report:?}");
        assert_eq!(report.differences[0].id, "column-made-not-null");
        assert!(!report.differences[0].message.contains("NOT VALID"));
        std::fs::remove_file(&baseline).unwrap();
        return;
    }
    db.execute(
        "INSERT INTO \"Generated\" (a, n) VALUES (1, NULL);
         ALTER TABLE \"Generated\" ADD CONSTRAINT generated_n_not_null NOT NULL n NOT VALID;",
    );
    let not_valid = capture(&db);
    assert_eq!(column(&not_valid, "n")["not_null"], true);
    assert_eq!(column(&not_valid, "n")["not_null_not_valid"], true);
    let (code, report) = diff(&db, &baseline);
    assert_eq!(code, 1, "{report:?}");
    assert_eq!(report.differences.len(), 1, "{report:?}");
    assert_eq!(report.differences[0].id, "column-made-not-null");
    assert!(
        report.differences[0].message.contains("NOT VALID"),
        "{report:?}"
    );
    // Validating it is no difference, as for a CHECK constraint.
    db.execute(
        "DELETE FROM \"Generated\";
         ALTER TABLE \"Generated\" VALIDATE CONSTRAINT generated_n_not_null;",
    );
    let validated = capture(&db);
    assert_eq!(column(&validated, "n")["not_null"], true);
    assert!(column(&validated, "n").get("not_null_not_valid").is_none());
    let (code, report) = diff(&db, &not_valid);
    assert_eq!((code, report.differences.len()), (0, 0), "{report:?}");
    for path in [baseline, not_valid, validated] {
        std::fs::remove_file(path).unwrap();
    }
}
