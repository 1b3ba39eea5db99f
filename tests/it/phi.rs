//! PHI-safe bundles, proven on data written by others: every Patient, Practitioner,
//! RelatedPerson, Observation, Encounter and Bundle of the npm package `@medplum/mock`
//! (installed and extracted by `scripts/test-fixtures`), embedded in server log lines in every
//! shape a resource reaches a log, plus the constraint violations a real PostgreSQL raises for
//! rows of their values, in the logs and in a job's error output. No identifying value of any
//! of them may survive in any byte of the bundle; the migration story must.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use regex::Regex;
use serde_json::Value;

use crate::bundle::{unpack, LOGGED};
use crate::harness::{connect, medmig, runtime, unique_name, TestDb};

/// The mock resources, from `scripts/test-fixtures`. Panics (the test fails, never skips) when
/// they cannot be had.
fn mock_resources() -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-fixtures");
    let run = Command::new(&script)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    assert!(
        run.status.success(),
        "scripts/test-fixtures failed (it needs node, npm and the npm registry): {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let path = String::from_utf8_lossy(&run.stdout).trim().to_string();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read the mock resources {path}: {err}"));
    let document: Value = serde_json::from_str(&text).expect("the mock resources are JSON");
    let resources: Vec<Value> = document["resources"]
        .as_array()
        .expect("a list of resources")
        .iter()
        .map(|r| r["resource"].clone())
        .collect();
    for ty in [
        "Patient",
        "Practitioner",
        "RelatedPerson",
        "Observation",
        "Encounter",
        "Bundle",
    ] {
        assert!(
            resources.iter().any(|r| r["resourceType"] == ty),
            "@medplum/mock gave no {ty}"
        );
    }
    resources
}

/// The values of `value` that identify a person: the parts of names, birth dates, address
/// lines, cities and postal codes, identifiers' and telecoms' values (phone numbers, e-mail
/// addresses), and the display names of references.
fn identifying_values(value: &Value, parent: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let wanted = match key.as_str() {
                    "family" | "given" | "birthDate" | "line" | "city" | "postalCode" => true,
                    "value" => matches!(parent, "identifier" | "telecom"),
                    "display" => parent != "coding",
                    _ => false,
                };
                if wanted {
                    let strings: Vec<&Value> = match item {
                        Value::Array(items) => items.iter().collect(),
                        other => vec![other],
                    };
                    out.extend(strings.iter().filter_map(|s| s.as_str()).map(String::from));
                }
                identifying_values(item, key, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                identifying_values(item, parent, out);
            }
        }
        _ => {}
    }
}

/// The ids of every resource in `value`.
fn collect_ids(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let (Some(_), Some(Value::String(id))) = (map.get("resourceType"), map.get("id")) {
                out.insert(id.clone());
            }
            map.values().for_each(|v| collect_ids(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_ids(v, out)),
        _ => {}
    }
}

/// A resource as Medplum writes it: `resourceType` first (then the rest, in key order).
fn medplum_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| *k != "resourceType");
            let fields: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String(k.to_string()),
                        medplum_json(&map[*k])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(medplum_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// `text` as the content of a JSON string.
fn escaped(text: &str) -> String {
    let quoted = Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// A PostgreSQL error as the server sent it: its message, detail and context.
struct PgError {
    code: String,
    message: String,
    detail: String,
    context: String,
}

/// Makes a real PostgreSQL raise, for rows of each person's values, a unique violation, a
/// check violation (the failing row, the resource itself in a `jsonb` column), a foreign-key
/// violation, an invalid input error, and a check violation inside a function (whose context
/// quotes the statement with the values); returns them.
fn violations(people: &[(String, String, String, String, Value)]) -> Vec<PgError> {
    let db = TestDb::with(&[]);
    let rt = runtime();
    rt.block_on(async {
        let client = connect(&db.url()).await;
        client
            .batch_execute(
                "CREATE TABLE person (mrn text PRIMARY KEY, family text, given text, birth text,
                     status text CHECK (status IN ('active', 'inactive')), content jsonb);
                 CREATE TABLE visit (person text REFERENCES person (mrn));
                 CREATE FUNCTION admit(mrn text, family text) RETURNS void LANGUAGE plpgsql AS $$
                 BEGIN
                   EXECUTE format('INSERT INTO person (mrn, family, status) VALUES (%L, %L, %L)',
                                  mrn || '-2', family, 'admitted');
                 END $$;",
            )
            .await
            .unwrap();
        let mut errors = Vec::new();
        for (mrn, family, given, birth, resource) in people {
            let row = "INSERT INTO person VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)";
            let content = resource.to_string();
            let insert = |status: &'static str| {
                let client = &client;
                let content = content.clone();
                async move {
                    client
                        .execute(row, &[mrn, family, given, birth, &status, &content])
                        .await
                }
            };
            insert("active").await.unwrap();
            let mut failures = vec![
                insert("active").await.unwrap_err(),
                insert("deceased").await.unwrap_err(),
            ];
            let missing = format!("{mrn}/{family}");
            failures.push(
                client
                    .execute("INSERT INTO visit VALUES ($1)", &[&missing])
                    .await
                    .unwrap_err(),
            );
            failures.push(
                client
                    .execute("SELECT admit($1, $2)", &[mrn, family])
                    .await
                    .unwrap_err(),
            );
            let name = format!("{given} {family}");
            failures.push(
                client
                    .execute("SELECT $1::text::date", &[&name])
                    .await
                    .unwrap_err(),
            );
            for failure in failures {
                let db = failure.as_db_error().expect("an error of the server");
                errors.push(PgError {
                    code: db.code().code().to_string(),
                    message: db.message().to_string(),
                    detail: db.detail().unwrap_or_default().to_string(),
                    context: db.where_().unwrap_or_default().to_string(),
                });
            }
        }
        errors
    })
}

#[test]
fn no_identifying_value_of_medplums_mock_patients_survives_anywhere_in_a_bundle() {
    let resources = mock_resources();
    let mut secrets = BTreeSet::new();
    for resource in &resources {
        identifying_values(resource, "", &mut secrets);
    }
    // Not looked for: values that are also what the bundle keeps on purpose — a resource's id
    // (Blinky the fish is `Patient/Shorty`), the words of Medplum's own migration messages
    // (Dr. `Medplum` Admin), and values of three characters or fewer (`123`, `IL`), which are
    // also ids, versions and codes. Every other one is.
    let mut ids = BTreeSet::new();
    collect_ids(&Value::Array(resources.clone()), &mut ids);
    let story: String = LOGGED
        .iter()
        .map(|l| format!("{} {}\n", l.msg, l.fields))
        .collect();
    let kept_on_purpose =
        |s: &String| s.chars().count() < 4 || ids.contains(s) || story.contains(s.as_str());
    let (short, secrets): (Vec<String>, Vec<String>) =
        secrets.into_iter().partition(kept_on_purpose);
    assert!(
        secrets.len() >= 20,
        "too few values to look for: {secrets:?}"
    );

    // Each person of the mock data as a row, violating every constraint PostgreSQL checks.
    let people: Vec<(String, String, String, String, Value)> = resources
        .iter()
        .filter(|r| r.get("name").is_some())
        .map(|r| {
            let name = &r["name"][0];
            (
                r["identifier"][0]["value"].as_str().map_or_else(
                    || format!("MRN-{}", r["id"].as_str().unwrap_or("x")),
                    str::to_string,
                ),
                name["family"].as_str().unwrap_or("Fish").to_string(),
                name["given"][0].as_str().unwrap_or("Blinky").to_string(),
                r["birthDate"].as_str().unwrap_or("1989-12-17").to_string(),
                r.clone(),
            )
        })
        .collect();
    // One row per record number (a resource's earlier versions share it).
    let mut people = people;
    let mut seen = BTreeSet::new();
    people.retain(|person| seen.insert(person.0.clone()));
    assert!(people.len() >= 6, "{}", people.len());
    let errors = violations(&people);
    let mut secrets = secrets;
    for (mrn, family, given, birth, _) in &people {
        for value in [mrn, family, given, birth] {
            if !kept_on_purpose(value) && !secrets.contains(value) {
                secrets.push(value.clone());
            }
        }
    }
    for code in ["23505", "23514", "23503", "22007"] {
        assert!(errors.iter().any(|e| e.code == code), "no {code}");
    }

    // The server log: the whole migration story, and each resource in every shape.
    let mut log = String::new();
    let mut second = 0;
    let mut time = || {
        second += 1;
        format!(
            "2026-03-01T{:02}:{:02}:{:02}.000Z",
            9 + second / 3600,
            second / 60 % 60,
            second % 60
        )
    };
    for line in LOGGED {
        let fields = if line.fields.is_empty() {
            String::new()
        } else {
            format!(",{}", line.fields)
        };
        log.push_str(&format!(
            r#"{{"level":"{}","timestamp":"{}","msg":{}{fields}}}"#,
            line.level,
            time(),
            Value::String(line.msg.to_string())
        ));
        log.push('\n');
    }
    for resource in &resources {
        let ty = resource["resourceType"].as_str().unwrap();
        let medplum = medplum_json(resource);
        let sorted = resource.to_string();
        let pretty = serde_json::to_string_pretty(resource).unwrap();
        for line in [
            // A JSON field of the line.
            format!(r#"{{"level":"ERROR","timestamp":"{}","msg":"Post-deploy migration threw an error","dataVersion":45,"asyncJob":"AsyncJob/5f1c","resource":{medplum}}}"#, time()),
            // Nested deeper, `resourceType` last (as a serializer that sorts keys writes it).
            format!(r#"{{"level":"WARN","timestamp":"{}","msg":"Reindex iteration failed, retrying","resourceType":"{ty}","attempt":1,"error":{{"cause":{{"batch":[{{"offset":10}},{sorted}]}}}}}}"#, time()),
            // Escaped inside the error message, compact and pretty-printed.
            format!(r#"{{"level":"ERROR","timestamp":"{}","msg":"Post-deploy migration threw an error","err":"Error: cannot reindex {}: canceling statement due to statement timeout"}}"#, time(), escaped(&medplum)),
            format!(r#"{{"level":"ERROR","timestamp":"{}","msg":"AsyncJob execution failed","name":"callback","error":"{}"}}"#, time(), escaped(&pretty)),
            // Escaped twice: an error whose message is JSON holding the resource as text.
            format!(r#"{{"level":"ERROR","timestamp":"{}","msg":"Post-deploy migration threw an error","err":"{}"}}"#, time(), escaped(&format!(r#"{{"message":"bad resource {}"}}"#, escaped(&medplum)))),
            // Plain lines: raw, and escaped.
            format!("2026-03-01 10:07:00 ERROR Post-deploy migration threw an error: {medplum} (batch 3)"),
            format!("2026-03-01 10:07:01 WARN Reindex iteration failed, retrying \"{}\"", escaped(&sorted)),
        ] {
            log.push_str(&line);
            log.push('\n');
        }
    }
    for error in &errors {
        log.push_str(&format!(
            r#"{{"level":"ERROR","timestamp":"{}","msg":"Post-deploy migration threw an error","err":{},"detail":{},"where":{},"code":"{}"}}"#,
            time(),
            Value::String(error.message.clone()),
            Value::String(error.detail.clone()),
            Value::String(error.context.clone()),
            error.code
        ));
        log.push('\n');
        log.push_str(&format!(
            "2026-03-01 10:08:00 ERROR:  {}\nDETAIL:  {}\n2026-03-01 10:08:00 ERROR {} DETAIL: {} CONTEXT: {}\n",
            error.message,
            error.detail,
            error.message,
            error.detail,
            error.context.replace('\n', " ")
        ));
    }
    let logs = std::env::temp_dir().join(unique_name("medmig_phi_logs"));
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("server.log"), &log).unwrap();

    // A job of v45 failed on a unique violation; its error output quotes the row, and a
    // resource, as Medplum's error texts do.
    let unique = errors.iter().find(|e| e.code == "23505").unwrap();
    let check = errors.iter().find(|e| e.code == "23514").unwrap();
    let in_function = errors
        .iter()
        .find(|e| e.context.contains("SQL statement"))
        .unwrap();
    let homer = resources
        .iter()
        .find(|r| r["resourceType"] == "Patient" && r["birthDate"].is_string())
        .unwrap();
    let output = serde_json::json!({"resourceType": "Parameters", "parameter": [
        {"name": "error", "valueString": format!("{}\n{}\nresource: {}", unique.message, unique.detail, medplum_json(homer))},
        {"name": "outcome", "resource": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "processing", "diagnostics": format!("{} {}", check.message, check.detail)},
            {"severity": "error", "code": "processing", "diagnostics": format!("{}\n{}\n{}", in_function.message, in_function.detail, in_function.context)}]}}]});
    let db = TestDb::build(
        &["schema", "failed-with-retry"],
        &format!(
            "SELECT fixture.job('e4500000-0000-4000-8000-000000000003', 45, ARRAY['accepted','error'],
                ARRAY[now() - interval '1 hour', now() - interval '50 minutes'], $phi${output}$phi$, '5.1.37')"
        ),
    );
    let out = std::env::temp_dir().join(format!("{}.tar.gz", unique_name("medmig_phi")));
    let url = db.url();
    let run = medmig(&[
        "bundle",
        "--out",
        out.to_str().unwrap(),
        "--database-url",
        &url,
        "--logs",
        logs.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let files = unpack(&out);

    // Not one byte of any identifying value, raw or escaped, in any file.
    let mut leaks = Vec::new();
    for (name, bytes) in &files {
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        if name == "manifest.json" {
            // Checksums and sizes are hex and digits that may spell a postal code by chance.
            let mut manifest: Value = serde_json::from_str(&text).unwrap();
            for file in manifest["files"].as_array_mut().unwrap() {
                file.as_object_mut().unwrap().retain(|key, _| key == "path");
            }
            text = manifest.to_string();
        }
        for secret in &secrets {
            let once = escaped(secret);
            if text.contains(secret.as_str())
                || text.contains(&once)
                || text.contains(&escaped(&once))
            {
                leaks.push(format!("{secret:?} in {name}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks of the {} values looked for: {leaks:#?}",
        leaks.len(),
        secrets.len()
    );

    // The story is still there, word for word, with its kinds.
    let bundled = String::from_utf8_lossy(&files["logs/01-server.log"]).into_owned();
    let timeline: Value = serde_json::from_slice(&files["timeline.json"]).unwrap();
    let events = timeline.as_array().unwrap();
    for line in LOGGED {
        let msg = Value::String(line.msg.to_string()).to_string();
        assert!(
            bundled.contains(&format!(r#""msg":{msg}"#)),
            "{msg} is not in the bundled log"
        );
        assert!(
            events.iter().any(|e| e["source"] == "log"
                && e["message"].as_str().unwrap().starts_with(line.msg)
                && e["kind"] == line.kind),
            "{msg} ({}) is not in the timeline",
            line.kind
        );
    }
    for line in bundled.lines().filter(|l| l.starts_with('{')) {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("a bundled JSON line is no longer JSON ({err}): {line}"));
        assert!(parsed["msg"].is_string(), "{line}");
    }
    assert!(
        bundled.contains(r#""resourceType":"Patient""#),
        "resources keep their type"
    );
    assert!(bundled.contains(r#""gender":"male""#), "and their codes");
    assert!(bundled.contains("duplicate key value violates unique constraint"));
    assert!(bundled.contains("Key (mrn)=([row-value-"), "columns stay");
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    for rule in [
        "name",
        "date",
        "address",
        "telecom",
        "identifier",
        "row-value",
    ] {
        assert!(
            manifest["redactions"][rule].as_u64().unwrap_or(0) > 0,
            "rule {rule} never fired: {}",
            manifest["redactions"]
        );
    }

    // Every command answers from the bundle as from the database, but for what was replaced.
    let bundle_arg = out.to_str().unwrap();
    let placeholder = Regex::new(r"\[[a-z]+(?:-[a-z]+)*-\d+\]").unwrap();
    for command in [
        &["status"][..],
        &["recover"],
        &["rollback-check", "--to", "5.1.44", "--from", "5.2.2"],
    ] {
        let answer = |source: &[&str]| {
            let mut args = command.to_vec();
            args.extend(["--format", "json"]);
            args.extend(source);
            let run = medmig(&args);
            let mut answer: Value = serde_json::from_str(&run.stdout)
                .unwrap_or_else(|err| panic!("{command:?} {source:?}: {err}: {run:?}"));
            answer.as_object_mut().unwrap().remove("source");
            (run.code, answer)
        };
        let (live_code, mut live) = answer(&["--database-url", &url]);
        let (bundle_code, mut bundle) = answer(&["--bundle", bundle_arg]);
        assert_eq!(live_code, bundle_code, "{command:?}");
        // Running jobs' elapsed times are measured to the moment of reading.
        for answer in [&mut live, &mut bundle] {
            strip_clock(answer);
        }
        crate::harness::assert_same_but_redacted(&live, &bundle, command[0], &|_, b| {
            placeholder.is_match(b)
        });
    }
    let (_, status) = {
        let run = medmig(&["status", "--format", "json", "--bundle", bundle_arg]);
        (
            run.code,
            serde_json::from_str::<Value>(&run.stdout).unwrap(),
        )
    };
    let v45 = status["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["version"] == 45)
        .unwrap();
    let error = v45["error"].as_str().unwrap();
    assert!(
        error.starts_with("duplicate key value violates unique constraint \"person_pkey\"\nKey (mrn)=([row-value-"),
        "{error}"
    );
    println!(
        "{} resources, {} values looked for in {} files ({} also kept on purpose, not: {short:?})",
        resources.len(),
        secrets.len(),
        files.len(),
        short.len()
    );
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_dir_all(&logs).unwrap();
}

/// Removes the durations measured to the moment of reading from an answer.
fn strip_clock(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| {
                !matches!(
                    key.as_str(),
                    "duration_seconds" | "elapsed_seconds" | "age_seconds"
                )
            });
            map.values_mut().for_each(strip_clock);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_clock),
        _ => {}
    }
}
