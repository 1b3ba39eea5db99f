//! Test harness: a throwaway database per test on a real PostgreSQL, built from
//! `fixtures/sql/*.sql`, and the real `medmig` binary run against it.
//!
//! The server comes from `MEDMIG_TEST_DATABASE_URL` (a superuser URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it does not answer, every test that
//! needs it fails with a message saying so; none is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio_postgres::{Client, NoTls};

/// The variable that names the test server.
pub const SERVER_VARIABLE: &str = "MEDMIG_TEST_DATABASE_URL";
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The role that `scripts/test-postgres` gives a password and password-only access, for the
/// wrong-password test.
pub const PASSWORD_ROLE: &str = "medmig_password_probe";

/// The superuser URL of the test server.
pub fn server_url() -> String {
    std::env::var(SERVER_VARIABLE)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_SERVER.to_string())
}

/// The superuser name in the test server's URL.
pub fn server_user() -> String {
    let server = server_url();
    let rest = &server[server.find("://").map_or(0, |i| i + 3)..];
    match rest.find('@') {
        Some(at) => rest[..at].split(':').next().unwrap_or_default().to_string(),
        None => "postgres".to_string(),
    }
}

/// The test server's host and port, from its URL (port 5432 when the URL names none).
pub fn server_host_port() -> (String, u16) {
    let server = server_url();
    let rest = &server[server.find("://").map_or(0, |i| i + 3)..];
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    match host_port.rsplit_once(':') {
        Some((host, port)) => (
            host.to_string(),
            port.parse()
                .expect("a port number in the test server's URL"),
        ),
        None => (host_port.to_string(), 5432),
    }
}

/// The test server's endpoint as the members of a Medplum config's `database` section:
/// `"host":"…","port":…`.
pub fn config_endpoint() -> String {
    let (host, port) = server_host_port();
    format!(r#""host":"{host}","port":{port}"#)
}

/// The test server's URL as `user` (with `password`, if any) on `database`.
pub fn url_as(user: &str, password: Option<&str>, database: &str) -> String {
    let server = server_url();
    let scheme_end = server.find("://").map_or(0, |i| i + 3);
    let rest = &server[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let host = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let credentials = match password {
        Some(password) => format!("{user}:{password}"),
        None => user.to_string(),
    };
    url_for(&format!("postgres://{credentials}@{host}"), database)
}

/// `url` with its database replaced by `database`.
pub fn url_for(url: &str, database: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (head, tail) = url.split_at(scheme_end);
    let (authority, rest) = match tail.find('/') {
        Some(i) => (&tail[..i], &tail[i..]),
        None => (tail, ""),
    };
    let query = rest.find('?').map_or("", |i| &rest[i..]);
    format!("{head}{authority}/{database}{query}")
}

/// A single-threaded runtime for the async parts of a test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Opens a connection and keeps its driver running on `rt`.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|err| {
            panic!(
            "the test PostgreSQL server does not answer at {url} ({err}). Start one (scripts/test \
             does) or point {SERVER_VARIABLE} at a superuser URL"
        )
        });
    tokio::spawn(connection);
    client
}

/// Runs SQL on the server's maintenance database.
pub fn admin(sql: &str) {
    admin_on(&server_url(), sql)
}

/// Runs SQL on the maintenance database of the server at `server`.
pub fn admin_on(server: &str, sql: &str) {
    let rt = runtime();
    rt.block_on(async {
        let client = connect(server).await;
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|err| panic!("admin SQL failed: {err}\n{sql}"));
    });
}

/// A unique name for a throwaway object.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database created for one test and dropped when the test ends.
pub struct TestDb {
    pub name: String,
    /// The server it is on (a URL of its maintenance database).
    pub server: String,
}

impl TestDb {
    /// Creates an empty database and loads the named fixtures (`fixtures/sql/NAME.sql`) in
    /// order; the fixture helpers (schema `fixture`) are dropped afterwards.
    pub fn with(fixtures: &[&str]) -> TestDb {
        TestDb::build(fixtures, "")
    }

    /// Like [`TestDb::with`], then `extra` SQL while the fixture helpers still exist (e.g.
    /// `SELECT fixture.job(…)`).
    pub fn build(fixtures: &[&str], extra: &str) -> TestDb {
        TestDb::build_on(&server_url(), fixtures, extra)
    }

    /// [`TestDb::build`] on the server at `server` (a URL of its maintenance database).
    pub fn build_on(server: &str, fixtures: &[&str], extra: &str) -> TestDb {
        let name = unique_name("medmig_test");
        admin_on(server, &format!("CREATE DATABASE \"{name}\""));
        let db = TestDb {
            name,
            server: server.to_string(),
        };
        let mut sql = String::new();
        for fixture in fixtures {
            let path = fixture_path(&format!("sql/{fixture}.sql"));
            sql.push_str(
                &std::fs::read_to_string(&path)
                    .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display())),
            );
            sql.push('\n');
        }
        sql.push_str(extra);
        sql.push_str(";\nDROP SCHEMA IF EXISTS fixture CASCADE;");
        db.execute(&sql);
        db
    }

    /// The superuser URL of this database.
    pub fn url(&self) -> String {
        url_for(&self.server, &self.name)
    }

    /// Runs SQL in this database as the superuser.
    pub fn execute(&self, sql: &str) {
        let rt = runtime();
        rt.block_on(async {
            let client = connect(&self.url()).await;
            client
                .batch_execute(sql)
                .await
                .unwrap_or_else(|err| panic!("SQL in {} failed: {err:?}", self.name));
        });
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // FORCE ends sessions a failed test left behind (PostgreSQL 13+).
        admin_on(
            &self.server,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// A file under `fixtures/`.
pub fn fixture_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(relative)
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts exit code 2 with exactly one `error: …` line on stderr and nothing on stdout;
    /// returns that line.
    pub fn single_error(&self) -> &str {
        assert_eq!(self.code, 2, "expected exit 2: {self:?}");
        assert!(self.stdout.is_empty(), "stdout should be empty: {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one stderr line: {self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        lines[0]
    }

    /// Asserts a bad argument as clap finds it: exit 2, nothing on stdout, the problem on one
    /// `error: …` line first (returned), clap's tips and usage, and last the hint to the
    /// subcommand's `--help`.
    pub fn argument_error(&self) -> &str {
        assert_eq!(self.code, 2, "expected exit 2: {self:?}");
        assert!(self.stdout.is_empty(), "stdout should be empty: {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(lines[0].starts_with("error: "), "{self:?}");
        let errors = lines.iter().filter(|l| l.starts_with("error:")).count();
        assert_eq!(errors, 1, "expected one error line: {self:?}");
        let hint = lines[lines.len() - 1];
        assert!(
            hint.starts_with("For more information, try 'medmig") && hint.ends_with(" --help'."),
            "{self:?}"
        );
        lines[0]
    }
}

/// Runs `medmig` with `args` and no connection variables from the caller's environment.
pub fn medmig(args: &[&str]) -> Run {
    medmig_with_env(args, &[])
}

/// Runs `medmig` with `args` and only `env` as connection variables.
pub fn medmig_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = medmig_command(args, env);
    Run::from(command.output().expect("the medmig binary runs"))
}

/// The command [`medmig_with_env`] runs, for a test that starts it and acts while it runs.
pub fn medmig_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_medmig"));
    command.args(args);
    without_connection_variables(&mut command);
    command.envs(env.iter().copied());
    command
}

/// Runs `medmig` as [`medmig`] does, with at most `kilobytes` of address space (`ulimit -v`):
/// a run that would allocate without bound fails at once instead of swapping.
pub fn medmig_capped(kilobytes: u64, args: &[&str]) -> Run {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -v {kilobytes} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_medmig"))
        .args(args);
    without_connection_variables(&mut command);
    Run::from(command.output().expect("sh runs the medmig binary"))
}

/// Removes the caller's connection variables from `command`'s environment.
fn without_connection_variables(command: &mut Command) {
    for (name, _) in std::env::vars() {
        if name == "DATABASE_URL"
            || name == "REDIS_URL"
            || name.starts_with("PG")
            || name.starts_with("MEDPLUM_")
        {
            command.env_remove(name);
        }
    }
}

/// Runs `medmig` with `args` like [`medmig`], killing it if it has not ended after `limit`
/// (and failing the test then); returns what it did and how long it took.
pub fn medmig_within(args: &[&str], limit: std::time::Duration) -> (Run, std::time::Duration) {
    use std::io::Read;
    let started = std::time::Instant::now();
    let mut child = medmig_command(args, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the medmig binary runs");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().expect("medmig can be waited for") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let took = started.elapsed();
    let run = Run {
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(
        status.is_some(),
        "medmig {args:?} still ran after {limit:?}: {run:?}"
    );
    (run, took)
}

/// `medmig snapshot` of the database at `url` into a new temporary file; returns its path and
/// what medmig said on stderr.
pub fn take_snapshot(url: &str) -> (PathBuf, String) {
    let out = std::env::temp_dir().join(format!("{}.json", unique_name("medmig_snapshot")));
    let run = medmig(&[
        "snapshot",
        "--database-url",
        url,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    (out, run.stderr)
}

/// Everything medmig writes about the database at `url`: a snapshot file, and `status --all`
/// in every format, stdout and stderr alike, concatenated (for leak checks).
pub fn every_output(url: &str) -> String {
    let (out, stderr) = take_snapshot(url);
    let mut everything = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    everything.push_str(&stderr);
    for format in ["table", "json", "csv"] {
        let run = medmig(&["status", "--all", "--format", format, "--database-url", url]);
        assert_eq!(run.code, 0, "{run:?}");
        everything.push_str(&run.stdout);
        everything.push_str(&run.stderr);
    }
    everything
}

/// `medmig status --format json` against `url`, parsed; panics unless it exits 0.
pub fn status_json(url: &str, extra: &[&str]) -> StatusJson {
    let mut args = vec!["status", "--format", "json", "--database-url", url];
    args.extend_from_slice(extra);
    let run = medmig(&args);
    assert_eq!(run.code, 0, "{run:?}");
    parse_status(&run.stdout)
}

/// Parses status JSON into the test's view of it.
pub fn parse_status(text: &str) -> StatusJson {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("status JSON: {err}\n{text}"))
}

/// The JSON document of `medmig status`, as a consumer would read it.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatusJson {
    pub format_version: u32,
    pub source: SourceJson,
    pub pre_deploy: PreDeployJson,
    pub post_deploy: PostDeployJson,
    pub migrations: Vec<MigrationJson>,
    pub maintenance_jobs: Vec<MaintenanceJobJson>,
    pub ignored_jobs: Vec<IgnoredJobJson>,
    pub invalid_indexes: Vec<InvalidIndexJson>,
    pub schema_traces: SchemaTracesJson,
    pub findings: Vec<FindingJson>,
}

/// Whether the schema was compared with the migration catalogue.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SchemaTracesJson {
    pub catalogue: String,
    pub compared: bool,
    pub gap: Option<String>,
}

/// What the schema shows of one migration's effects.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracesJson {
    #[serde(rename = "type")]
    pub kind: String,
    pub effects: usize,
    #[serde(default)]
    pub present: Vec<TraceJson>,
    #[serde(default)]
    pub missing: Vec<TraceJson>,
}

/// One effect as the schema shows it.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TraceJson {
    pub effect: String,
    pub object: String,
    pub strength: String,
    #[serde(default)]
    pub transient: bool,
    pub breaking: bool,
    #[serde(default)]
    pub invalid: bool,
    pub seen: String,
}

/// A schema maintenance job (schema-drift repair and kin), shown apart from migrations.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceJobJson {
    pub job_id: String,
    pub request: String,
    pub status: String,
    pub requested_at: Option<String>,
    pub finished_at: Option<String>,
    pub last_updated: String,
    pub statements: Vec<String>,
    pub dropped_indexes: Vec<String>,
    pub error: Option<String>,
}

/// A data-migration job the server ignores (inside a project).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IgnoredJobJson {
    pub job_id: String,
    pub data_version: u32,
    pub status: String,
    pub reason: String,
}

impl StatusJson {
    /// Migration `version`.
    pub fn migration(&self, version: u32) -> &MigrationJson {
        self.migrations
            .iter()
            .find(|m| m.version == version)
            .unwrap_or_else(|| panic!("no v{version} in the report"))
    }

    /// The ids of the findings.
    pub fn finding_ids(&self) -> Vec<&str> {
        self.findings.iter().map(|f| f.id.as_str()).collect()
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceJson {
    pub kind: String,
    pub file: Option<String>,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub server_version: String,
    pub taken_at: String,
    pub manifest: String,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PreDeployJson {
    pub version: Option<i64>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PostDeployJson {
    pub data_version: Option<i64>,
    pub first_boot: Option<bool>,
    pub pending: Option<u32>,
}

// serde cannot deny unknown fields next to `flatten`.
#[derive(Debug, Deserialize, PartialEq)]
pub struct MigrationJson {
    pub version: u32,
    pub state: String,
    pub server_version: Option<String>,
    pub required_before: Option<String>,
    #[serde(flatten)]
    pub current: RunFactsJson,
    pub attempts: usize,
    pub detail: Option<String>,
    #[serde(default)]
    pub work_evidence: Vec<String>,
    pub migration_type: Option<String>,
    pub traces: Option<TracesJson>,
    pub runs: Vec<RunJson>,
}

/// The facts of one run; the newest run's stand on the migration itself.
#[derive(Debug, Deserialize, PartialEq)]
pub struct RunFactsJson {
    pub job_id: Option<String>,
    pub job_status: Option<String>,
    pub requested_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub last_updated: Option<String>,
    pub duration_seconds: Option<f64>,
    pub progress: Option<String>,
    pub error: Option<String>,
}

// serde cannot deny unknown fields next to `flatten`; the field-by-field golden JSON test
// catches additions instead.
#[derive(Debug, Deserialize, PartialEq)]
pub struct RunJson {
    pub current: bool,
    pub min_server_version: Option<String>,
    #[serde(flatten)]
    pub facts: RunFactsJson,
    pub timeline: Vec<TransitionJson>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransitionJson {
    pub at: String,
    pub status: String,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InvalidIndexJson {
    pub schema: String,
    pub table: String,
    pub index: String,
    pub definition: String,
    pub ready: bool,
    pub created_by: Option<u32>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FindingJson {
    pub id: String,
    pub severity: String,
    pub message: String,
    pub version: Option<u32>,
}

/// Asserts that `redacted` has `plain`'s shape and values but for strings that `replaced`
/// accepts (plain, redacted) as a redaction; `at` names the place in failure messages.
pub fn assert_same_but_redacted(
    plain: &serde_json::Value,
    redacted: &serde_json::Value,
    at: &str,
    replaced: &dyn Fn(&str, &str) -> bool,
) {
    use serde_json::Value;
    match (plain, redacted) {
        (Value::String(a), Value::String(b)) => {
            assert!(a == b || replaced(a, b), "{at}: {a:?} became {b:?}");
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{at}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_same_but_redacted(x, y, &format!("{at}[{i}]"), replaced);
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (key, x) in a {
                assert_same_but_redacted(x, &b[key], &format!("{at}.{key}"), replaced);
            }
        }
        _ => assert_eq!(plain, redacted, "{at}"),
    }
}
