//! Writes the seed corpus of every fuzz target from the project's own files, into the
//! directory given (one sub-directory per target): the fixture snapshots, the embedded
//! manifest, bundles made by `archive::Staging` as `medmig bundle` makes them, the log lines
//! and config files of the tests, the statements of `queries/`, node trees as PostgreSQL
//! stores them. `scripts/fuzz` runs it before fuzzing; libFuzzer keeps what it finds beside.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use medmig::bundle::archive::{BundleManifest, Staging, BUNDLE_KIND};
use medmig::catalog::SchemaCapture;
use medmig::outfile::Destination;
use medmig::bundle::archive::BUNDLE_FORMAT_VERSION;
use medmig::catalog::CAPTURE_FORMAT_VERSION;
use medmig::snapshot::Snapshot;
use medmig_fuzz::bundle_input::{self, encode_entry, Entry};

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: seeds CORPUS_DIR"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |relative: &str| fs::read(root.join(relative)).expect(relative);
    let mut corpus = Corpus { root: out };

    let mut snapshots = Vec::new();
    for entry in fs::read_dir(root.join("fixtures/snapshots")).expect("fixtures/snapshots") {
        let path = entry.expect("a fixture").path();
        let bytes = fs::read(&path).expect("a fixture snapshot");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        corpus.add("snapshot", &name, &bytes);
        corpus.add("schema_baseline", &name, &bytes);
        snapshots.push((name, bytes));
    }
    snapshots.sort();

    // A sharded deployment (format 3): the first fixture as the global database, a shard
    // that stands elsewhere, and one that could not be read.
    let mut sharded: serde_json::Value = serde_json::from_slice(&snapshots[0].1).unwrap();
    let mut shard = sharded.clone();
    if let Some(row) = shard["database_migration"].get_mut(0) {
        row["dataVersion"] = serde_json::Value::from(12);
    }
    sharded["format_version"] = serde_json::Value::from(3);
    sharded["shards"] = serde_json::json!([
        {"id": "shard-a", "snapshot": shard},
        {"id": "shard-b", "gap": "cannot connect to database \"b\" on 10.0.0.2:5432"},
    ]);
    corpus.add("snapshot", "sharded.json", &serde_json::to_vec(&sharded).unwrap());

    // The same as format 4 writes it: a shard's contract that is the global database's named
    // (`schema_same_as`), not repeated; a third shard shares the second's.
    let mut shared = sharded.clone();
    shared["format_version"] = serde_json::Value::from(4);
    if let Some(inner) = shared["shards"][0]["snapshot"].as_object_mut() {
        inner.remove("schema");
    }
    shared["shards"][0]["schema_same_as"] = serde_json::json!("global");
    let third = serde_json::json!({
        "id": "shard-c",
        "snapshot": shared["shards"][0]["snapshot"].clone(),
        "schema_same_as": "shard-a",
    });
    shared["shards"].as_array_mut().unwrap().push(third);
    corpus.add("snapshot", "sharded-shared.json", &serde_json::to_vec(&shared).unwrap());

    // A `schema capture` file, as `commands::schema::capture` makes it from a snapshot.
    let snapshot =
        Snapshot::parse(std::str::from_utf8(&snapshots[0].1).unwrap()).expect("a fixture");
    let capture = SchemaCapture {
        format_version: CAPTURE_FORMAT_VERSION,
        medmig_version: env!("CARGO_PKG_VERSION").into(),
        captured_at: snapshot.taken_at,
        source: snapshot.source.clone(),
        schema: (*snapshot.schema.clone().expect("the fixture has a schema")).clone(),
    };
    let capture = serde_json::to_vec_pretty(&capture).unwrap();
    corpus.add("schema_baseline", "capture.json", &capture);

    // A few entries of the embedded catalogue (all of it is 1 MB, past libFuzzer's inputs).
    let embedded: serde_json::Value =
        serde_json::from_slice(&read("src/medplum/migration-catalogue.json")).unwrap();
    let mut small = embedded.clone();
    small["migrations"] = serde_json::Value::Object(
        ["v16", "v17", "v18", "v29", "v30", "v41"]
            .iter()
            .map(|v| (v.to_string(), embedded["migrations"][v].clone()))
            .collect(),
    );
    corpus.add(
        "catalogue",
        "some-entries.json",
        &serde_json::to_vec(&small).unwrap(),
    );

    corpus.add(
        "manifest",
        "embedded.json",
        &read("src/medplum/data-version-manifest.json"),
    );

    // Log lines: every one-line JSON log line written out in the tests.
    let mut lines = Vec::new();
    for file in [
        "tests/it/bundle.rs",
        "src/bundle/logs.rs",
        "src/bundle/timeline.rs",
    ] {
        lines.extend(raw_json_strings(&String::from_utf8(read(file)).unwrap()));
    }
    lines.push("2026-03-01 10:04:05.123 ERROR Post-deploy migration threw an error".into());
    lines.push("[2026-03-01T10:04:05Z] WARN lock timeout on \"AsyncJob\"".into());
    for (i, line) in lines.iter().enumerate() {
        corpus.add("logs", &format!("line-{i:03}.log"), line.as_bytes());
    }
    let log = lines.join("\n") + "\n";
    corpus.add("logs", "all.log", log.as_bytes());
    corpus.add("logs", "all.log.gz", &gzip(log.as_bytes()));

    // Config files: the one-line JSON configs of the config tests, with an environment and
    // a config name after NUL bytes (see fuzz_targets/config.rs).
    let configs = raw_json_strings(&String::from_utf8(read("tests/it/config.rs")).unwrap());
    let env = "MEDPLUM_DATABASE_SSL={\"require\": true}\nMEDPLUM_DATABASE_RUN_MIGRATIONS=false\n\
               MEDPLUM_DATABASE_PORT=0x1F90\nMEDPLUM_BASE_URL=http://localhost:8103/\n";
    for (i, config) in configs.iter().enumerate() {
        corpus.add("config", &format!("config-{i:02}.json"), config.as_bytes());
        let with_env = format!("{config}\0{env}\0file:a.json,env,aws:us-east-1");
        corpus.add("config", &format!("config-env-{i:02}"), with_env.as_bytes());
    }

    // Statements: every query medmig runs, and the statements of the sqltext tests.
    for entry in fs::read_dir(root.join("queries")).expect("queries") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        corpus.add("sqltext", &name, &fs::read(&path).unwrap());
    }
    for (i, sql) in [
        r#"SELECT * FROM "Patient" WHERE "name" = 'Zebulon O''Hara' AND "__version" < 7"#,
        "UPDATE x SET a = E'line\\'s end', b = $body$ secret $body$ WHERE id = $1",
        "SELECT 1.5e3, col2 FROM t -- patient Zebulon\n/* ssn 123-45-6789 */",
    ]
    .iter()
    .enumerate()
    {
        corpus.add("sqltext", &format!("statement-{i}.sql"), sql.as_bytes());
    }

    // Node trees as PostgreSQL 15 and 16 store Medplum's index expressions (nodetree.rs tests).
    corpus.add(
        "nodetree",
        "call",
        b"({FUNCEXPR :funcid 17589 :funcresulttype 25 :funcretset false :funcvariadic false \
          :funcformat 0 :funccollid 100 :inputcollid 100 :args ({VAR :varno 1 :varattno 2 \
          :vartype 1009 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 \
          :varattnosyn 2 :location 94}) :location 74})",
    );
    corpus.add(
        "nodetree",
        "predicate",
        b"{OPEXPR :opno 91 :opfuncid 60 :opresulttype 16 :opretset false :opcollid 0 \
          :inputcollid 0 :args ({VAR :varno 1 :varattno 3 :vartype 16 :vartypmod -1 \
          :varcollid 0 :varnullingrels (b) :varlevelsup 0 :varnosyn 1 :varattnosyn 3 \
          :location 70} {CONST :consttype 16 :consttypmod -1 :constcollid 0 :constlen 1 \
          :constbyval true :constisnull false :location 80 :constvalue 1 [ 0 0 0 0 0 0 0 0 ]}) \
          :location 78}",
    );

    // Bundles as `medmig bundle` writes them: with a snapshot and logs, and with logs only
    // (`--no-db`); each as the file, as its tar stream and as a list of entries.
    let work = std::env::temp_dir().join(format!("medmig-fuzz-seeds-{}", std::process::id()));
    fs::create_dir_all(&work).unwrap();
    for (name, with_snapshot) in [("bundle", true), ("no-db-bundle", false)] {
        let path = work.join(format!("{name}.tar.gz"));
        let destination = Destination::open(&path, true).expect("a writable --out");
        let mut staging = Staging::new(&destination).expect("a staging directory");
        if with_snapshot {
            staging
                .write("snapshot.json", &snapshots[0].1)
                .expect("staging");
        }
        staging
            .write("logs/01-server.log", log.as_bytes())
            .expect("staging");
        staging
            .write("summary.txt", b"medmig support bundle\n")
            .expect("staging");
        let manifest = BundleManifest {
            format_version: BUNDLE_FORMAT_VERSION,
            kind: BUNDLE_KIND.into(),
            created_at: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
            medmig_version: env!("CARGO_PKG_VERSION").into(),
            command_line: vec!["medmig".into(), "bundle".into()],
            source: with_snapshot.then(|| snapshot.source.clone()),
            since: None,
            until: None,
            files: Vec::new(),
            redactions: BTreeMap::from([("email".to_string(), 2)]),
            not_collected: Vec::new(),
        };
        staging.finish(manifest, destination).expect("a bundle");
        let file = fs::read(&path).unwrap();
        let mut tar = Vec::new();
        GzDecoder::new(&file[..]).read_to_end(&mut tar).unwrap();
        let mut entries = Vec::new();
        let mut archive = tar::Archive::new(&tar[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path_bytes().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            encode_entry(
                &Entry {
                    kind: entry.header().entry_type().as_byte(),
                    name: &path,
                    link: b"",
                    data: &data,
                },
                &mut entries,
            );
        }
        for (mode, suffix, bytes) in [
            (bundle_input::RAW, "tar.gz", file),
            (bundle_input::TAR, "tar", tar),
            (bundle_input::ENTRIES, "entries", entries),
        ] {
            let mut input = vec![mode];
            input.extend_from_slice(&bytes);
            corpus.add("bundle", &format!("{name}.{suffix}"), &input);
        }
    }
    let _ = fs::remove_dir_all(&work);
}

struct Corpus {
    root: PathBuf,
}

impl Corpus {
    fn add(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}

/// The one-line JSON objects written as raw strings (`r#"{…}"#`) in Rust source, leaving out
/// format strings (`{{`).
fn raw_json_strings(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("r#\"{") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("\"#") else {
            break;
        };
        let text = &after[..end];
        if !text.contains("{{") && !text.contains('\n') {
            found.push(text.to_string());
        }
        rest = &after[end..];
    }
    found
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}
