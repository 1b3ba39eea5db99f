//! `medmig report` and the `report.html` of every bundle: a failed post-deploy migration with
//! Medplum log lines, bundled by the real binary, reported on, and opened in Debian's headless
//! Chromium (`fixtures/report/check.mjs`, driven by playwright-core from
//! `scripts/test-chromium`): no console error, no page error, no request, the bars drawn, the
//! detail shown on focus and hover, a screenshot that is not blank.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{Duration, Utc};
use serde_json::Value;

use crate::bundle::unpack;
use crate::harness::{medmig, unique_name, TestDb};

fn temp(name: &str, extension: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}.{extension}", unique_name(name)))
}

/// Medplum's log lines around the fixture's jobs (which are dated from now): a release
/// started, its pre-deploy migration, the failure of v45, a newer release refused by the
/// startup gate, the older one started again and v45 failing once more.
fn server_log(dir: &Path) {
    let at = |ago: Duration| {
        (Utc::now() - ago)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };
    let (h, m) = (Duration::hours(1), Duration::minutes(1));
    let lines = [
        format!(
            r#"{{"level":"INFO","timestamp":"{}","msg":"Starting Medplum Server...","configName":"file:medplum.config.json","version":"5.1.37-3c9e1f2"}}"#,
            at(h * 50)
        ),
        format!(
            r#"{{"level":"INFO","timestamp":"{}","msg":"Database pre-deploy migration","version":"v118","duration":"1800 ms"}}"#,
            at(h * 50 - m)
        ),
        format!(
            r#"{{"level":"INFO","timestamp":"{}","msg":"Auto-queueing pending post-deploy migration","version":"v45"}}"#,
            at(h * 48)
        ),
        format!(
            r#"{{"level":"ERROR","timestamp":"{}","msg":"Post-deploy migration threw an error","error":"canceling statement due to statement timeout","dataVersion":45}}"#,
            at(h * 48 - m * 30)
        ),
        format!(
            r#"{{"level":"INFO","timestamp":"{}","msg":"Starting Medplum Server...","configName":"file:medplum.config.json","version":"5.2.2-8f1e2a3"}}"#,
            at(h * 7)
        ),
        format!(
            r#"{{"level":"ERROR","timestamp":"{}","msg":"Database schema migration error","error":"Error: Unable to run this version of Medplum server. Pending post-deploy migration v45 requires server at version 5.1.37 <= version < 5.2.0, but current server version is 5.2.2"}}"#,
            at(h * 7 - m)
        ),
        format!(
            r#"{{"level":"INFO","timestamp":"{}","msg":"Starting Medplum Server...","configName":"file:medplum.config.json","version":"5.1.37-3c9e1f2"}}"#,
            at(h * 6 + m * 10)
        ),
        format!(
            r#"{{"level":"INFO","timestamp":"{}","msg":"Adding post-deploy migration job","version":"v45","asyncJobId":"e4500000-0000-4000-8000-000000000002"}}"#,
            at(h * 6)
        ),
        format!(
            r#"{{"level":"ERROR","timestamp":"{}","msg":"Post-deploy migration threw an error","error":"canceling statement due to lock timeout <script>alert(1)</script>","dataVersion":45}}"#,
            at(h * 6 - Duration::seconds(5))
        ),
    ];
    std::fs::write(dir.join("server.log"), lines.join("\n") + "\n").unwrap();
}

/// A bundle of the failed-with-retry fixture with the log above and a config that defers
/// post-deploy migrations; the bundle's path.
fn failed_migration_bundle(db: &TestDb) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name("medmig_report_logs"));
    std::fs::create_dir_all(&dir).unwrap();
    server_log(&dir);
    let config = dir.join("medplum.config.json");
    std::fs::write(
        &config,
        r#"{"port": 8103, "database": {"disableRunPostDeployMigrations": true}}"#,
    )
    .unwrap();
    let out = temp("medmig_report_bundle", "tar.gz");
    let run = medmig(&[
        "bundle",
        "--out",
        out.to_str().unwrap(),
        "--database-url",
        &db.url(),
        "--medplum-config",
        config.to_str().unwrap(),
        "--logs",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

/// The jobs of the failed-with-retry fixture: v40–v43 once, v44 and v45 twice.
const FIXTURE_JOBS: usize = 8;

#[test]
fn report_draws_a_failed_migration_from_the_bundle_alone() {
    let db = TestDb::with(&["schema", "failed-with-retry"]);
    let bundle = failed_migration_bundle(&db);
    // The database is gone before the report is made: the bundle is all it reads.
    drop(db);
    let html_path = temp("medmig_report", "html");
    let run = medmig(&[
        "report",
        "--bundle",
        bundle.to_str().unwrap(),
        "--out",
        html_path.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    let html = std::fs::read_to_string(&html_path).unwrap();

    // Self-contained: a strict policy, nothing loaded.
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(r#"<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; style-src &#39;sha256-"#));
    for loads in ["src=", "href=\"http", "@import", "url(http", "<link"] {
        assert!(!html.contains(loads), "{loads}");
    }
    for id in ["summary", "timeline", "findings", "recovery", "diagnostics"] {
        assert!(html.contains(&format!(r#"<section id="{id}""#)), "#{id}");
    }
    // The verdicts and versions at a glance.
    assert!(
        html.contains("Post-deploy migration v45 failed (2 attempts)"),
        "headline"
    );
    assert!(html.contains("rollback window to 5.0.11 closed"), "window");
    assert!(html.contains("<dd>118<small>"), "pre-deploy version");
    assert!(html.contains("<dd>v44<small>"), "dataVersion");
    assert!(
        html.contains("deferred: not started by the server"),
        "config"
    );
    assert!(
        html.contains("<dd>5.1.37<small>a server started with it at"),
        "deployed"
    );
    // The timeline: a bar per job, marks for the deployments, the gate and the errors.
    assert_eq!(html.matches(r#"<g class="job-bar "#).count(), FIXTURE_JOBS);
    assert_eq!(
        html.matches(r#"class="job-bar state-failed" data-version="45""#)
            .count(),
        2
    );
    assert_eq!(
        html.matches(r#"class="log-mark lane-deploy kind-server-start""#)
            .count(),
        3
    );
    assert!(html.contains(r#"text-anchor="end">5.2.2</text>"#) || html.contains(">5.2.2</text>"));
    assert!(html.contains(r#"class="log-mark lane-error kind-startup-gate""#));
    assert!(html.contains(r#"class="log-mark lane-pre-deploy kind-pre-deploy-migration""#));
    // Findings, recovery, diagnostics.
    assert!(html.contains("migration-failed"));
    assert!(html.contains("rerun-failed-migration"));
    assert!(html.contains("No session held the migration lock"));
    // What came from outside is text, never markup.
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("lock timeout &lt;script&gt;alert(1)&lt;/script&gt;"));

    // The bundle carries the same page, listed in its manifest like every file.
    let files = unpack(&bundle);
    assert_eq!(
        files["report.html"],
        html.as_bytes(),
        "bundle and report differ"
    );
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert!(manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "report.html" && f["size"] == html.len()));
    let verified = medmig(&["bundle", "verify", bundle.to_str().unwrap()]);
    assert_eq!(verified.code, 0, "{verified:?}");
    // --out - writes the page to standard output.
    let to_stdout = medmig(&["report", "--bundle", bundle.to_str().unwrap(), "--out", "-"]);
    assert_eq!(to_stdout.code, 0, "{to_stdout:?}");
    assert_eq!(to_stdout.stdout, html);

    // In a browser: no error, no request, every bar, the detail on focus and hover.
    let shot = temp("medmig_report_shot", "png");
    let checked = chromium_check(&html_path, &shot, &[]);
    assert_eq!(
        checked["console_errors"],
        Value::Array(vec![]),
        "{checked:#}"
    );
    assert_eq!(checked["page_errors"], Value::Array(vec![]), "{checked:#}");
    assert_eq!(checked["requests"], Value::Array(vec![]), "{checked:#}");
    assert_eq!(
        checked["csp_violations"],
        Value::Array(vec![]),
        "{checked:#}"
    );
    assert!(
        checked["bars"].as_u64().unwrap() >= FIXTURE_JOBS as u64,
        "{checked:#}"
    );
    let states: Vec<&str> = checked["bar_states"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(states.contains(&"v45:failed"), "{states:?}");
    let focus = checked["tooltip"]["focus"].as_str().unwrap_or_default();
    assert!(
        focus.contains("failed") && focus.contains("error:"),
        "{checked:#}"
    );
    assert!(checked["tooltip"]["hover"].is_string(), "{checked:#}");
    assert!(checked["tooltip"]["after_escape"].is_null(), "{checked:#}");
    assert_eq!(
        checked["tooltip"]["title_elements"], FIXTURE_JOBS,
        "{checked:#}"
    );
    assert!(checked["title"].as_str().unwrap().contains("v45 failed"));
    assert!(checked["body_text_length"].as_u64().unwrap() > 2000);
    assert_eq!(checked["screenshot_non_blank"], true, "{checked:#}");
    assert_eq!(checked["screenshot"]["width"], 1280, "{checked:#}");

    for path in [&bundle, &html_path, &shot] {
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn report_refuses_what_is_not_a_bundle_and_writes_nothing() {
    let not_bundle = temp("medmig_report_notbundle", "tar.gz");
    std::fs::write(&not_bundle, b"just some text").unwrap();
    let out = temp("medmig_report_nothing", "html");
    for input in [not_bundle.to_str().unwrap(), "/nonexistent/bundle.tar.gz"] {
        for target in [out.to_str().unwrap(), "-"] {
            let run = medmig(&["report", "--bundle", input, "--out", target]);
            assert_eq!(run.code, 2, "{run:?}");
            assert!(run.stdout.is_empty(), "{run:?}");
            let error = run.single_error();
            assert!(
                error.contains("is not a medmig bundle") || error.contains("cannot read bundle"),
                "{error}"
            );
            assert!(!out.exists());
        }
    }
    // Nor is a temporary file left beside the target.
    let dir = out.parent().unwrap();
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let leftovers = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(&name))
        .count();
    assert_eq!(leftovers, 0);
    std::fs::remove_file(&not_bundle).unwrap();
}

/// Runs `fixtures/report/check.mjs` on `html`; fails (never skips) when Chromium, node or
/// playwright-core is missing.
pub fn chromium_check(html: &Path, shot: &Path, extra: &[&str]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let installed = Command::new(root.join("scripts/test-chromium"))
        .arg("--check")
        .output()
        .expect("scripts/test-chromium runs");
    assert!(
        installed.status.success(),
        "the browser test needs Debian's chromium, node and playwright-core: run \
         scripts/test-chromium ({})",
        String::from_utf8_lossy(&installed.stderr).trim()
    );
    let dir = String::from_utf8_lossy(&installed.stdout)
        .trim()
        .to_string();
    let run = Command::new("node")
        .arg(root.join("fixtures/report/check.mjs"))
        .arg(html)
        .arg(shot)
        .args(extra)
        .env("MEDMIG_PLAYWRIGHT", &dir)
        .output()
        .unwrap_or_else(|err| panic!("cannot run node (run scripts/test-chromium): {err}"));
    assert!(
        run.status.success(),
        "check.mjs failed: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&run.stdout).unwrap_or_else(|err| {
        panic!(
            "check.mjs printed no JSON ({err}): {}",
            String::from_utf8_lossy(&run.stdout)
        )
    })
}
