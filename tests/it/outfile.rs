//! The files medmig writes (`--out` of `snapshot`, `schema capture` and `bundle`): only ever a
//! regular file, checked before anything is read; `-` for standard output; nothing left
//! behind after an error, SIGINT or SIGTERM.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;

use crate::harness::{fixture_path, medmig, medmig_command, parse_status, unique_name, TestDb};

/// A server that refuses connections: a command that gets this far has read nothing yet.
const UNREACHABLE: &str = "postgres://medmig@127.0.0.1:1/medplum";

/// A fresh empty directory of the test's own.
fn directory(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every command that writes `--out`, given an input it cannot read before the target is
/// checked (a refused connection).
fn writers(out: &str) -> [Vec<&str>; 3] {
    [
        vec!["snapshot", "--database-url", UNREACHABLE, "--out", out],
        vec![
            "schema",
            "capture",
            "--database-url",
            UNREACHABLE,
            "--out",
            out,
        ],
        vec!["bundle", "--database-url", UNREACHABLE, "--out", out],
    ]
}

/// Runs every writer at `target`, with and without `--force`; each must refuse in one line
/// containing `expected`.
fn every_writer_refuses(target: &Path, expected: &str) {
    for mut args in writers(target.to_str().unwrap()) {
        for force in [false, true] {
            if force {
                args.push("--force");
            }
            let run = medmig(&args);
            let line = run.single_error();
            assert!(line.contains(expected), "{args:?}: {line}");
        }
    }
}

#[test]
fn out_refuses_whatever_is_not_a_regular_file_even_with_force() {
    let dir = directory("medmig_out_special");
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let victim = dir.join("victim.json");
    std::fs::write(&victim, "keep").unwrap();
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let dangling = dir.join("dangling.json");
    std::os::unix::fs::symlink(dir.join("made-through-a-link.json"), &dangling).unwrap();
    let subdirectory = dir.join("subdirectory");
    std::fs::create_dir(&subdirectory).unwrap();

    every_writer_refuses(&fifo, "is a FIFO, not a regular file");
    every_writer_refuses(&link, "is a symbolic link, not a regular file");
    every_writer_refuses(&dangling, "is a symbolic link, not a regular file");
    every_writer_refuses(&subdirectory, "is a directory, not a regular file");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert_eq!(
        entries(&dir),
        [
            "dangling.json",
            "fifo",
            "link.json",
            "subdirectory",
            "victim.json"
        ],
        "nothing made through the dangling link, nothing left beside the targets"
    );
    assert!(entries(&subdirectory).is_empty());

    // A real device, only once the harmless targets above proved the refusal: a medmig that
    // replaced it would take the machine's /dev/null with it.
    let null = Path::new("/dev/null");
    every_writer_refuses(null, "/dev/null is a character device, not a regular file");
    assert!(std::fs::symlink_metadata(null)
        .unwrap()
        .file_type()
        .is_char_device());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn out_is_checked_before_anything_is_read() {
    let dir = directory("medmig_out_first");
    let existing = dir.join("existing.json");
    std::fs::write(&existing, "keep").unwrap();
    for args in writers(existing.to_str().unwrap()) {
        let run = medmig(&args);
        let line = run.single_error();
        assert!(
            line.contains("already exists") && line.contains("--force"),
            "{args:?}: {line}"
        );
    }
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep");

    // A missing directory is refused alike by every command; none creates it.
    let missing = dir.join("missing").join("out.json");
    for args in writers(missing.to_str().unwrap()) {
        let line = medmig(&args).single_error().to_string();
        assert!(
            line.contains(&format!(
                "the directory {} does not exist",
                dir.join("missing").display()
            )),
            "{args:?}: {line}"
        );
    }
    let offline = medmig(&["bundle", "--no-db", "--out", missing.to_str().unwrap()]);
    assert!(offline.single_error().contains("does not exist"));
    assert_eq!(entries(&dir), ["existing.json"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn out_dash_writes_the_json_to_standard_output() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let run = medmig(&["snapshot", "--database-url", &db.url(), "--out", "-"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.starts_with("medmig: wrote standard output (")
            && run.stderr.lines().count() == 1,
        "{run:?}"
    );
    assert!(
        !Path::new("-").exists(),
        "a file named - was written in {}",
        std::env::current_dir().unwrap().display()
    );
    // What came out is the snapshot itself: it reads back offline.
    let dir = directory("medmig_out_dash");
    let saved = dir.join("from-stdout.json");
    std::fs::write(&saved, &run.stdout).unwrap();
    let offline = medmig(&[
        "status",
        "--format",
        "json",
        "--snapshot",
        saved.to_str().unwrap(),
    ]);
    assert_eq!(offline.code, 0, "{offline:?}");
    assert_eq!(parse_status(&offline.stdout).source.database, db.name);

    let snapshot = fixture_path("snapshots/steady-state.json");
    let capture = medmig(&[
        "schema",
        "capture",
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--out",
        "-",
        "--force",
    ]);
    assert_eq!(capture.code, 0, "{capture:?}");
    let value: serde_json::Value = serde_json::from_str(&capture.stdout).unwrap();
    assert_eq!(value["format_version"], 1);
    assert!(
        value["schema"]["tables"]["public.AsyncJob"].is_object(),
        "{value}"
    );
    assert!(capture
        .stderr
        .starts_with("medmig: wrote standard output ("));
    assert!(!Path::new("-").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bundle_goes_to_standard_output_only_when_that_is_not_a_terminal() {
    let dir = directory("medmig_out_bundle_dash");
    let piped = medmig_command(&["bundle", "--no-db", "--out", "-"], &[])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(piped.status.code(), Some(0), "{piped:?}");
    let saved = dir.join("from-stdout.tar.gz");
    std::fs::write(&saved, &piped.stdout).unwrap();
    let verified = medmig(&["bundle", "verify", saved.to_str().unwrap()]);
    assert_eq!(verified.code, 0, "{verified:?}");

    // On a terminal (a pseudo-terminal made by script(1)) a binary stream is refused.
    let line = format!("{} bundle --no-db --out -", env!("CARGO_BIN_EXE_medmig"));
    let terminal = Command::new("script")
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux runs");
    let shown = String::from_utf8_lossy(&terminal.stdout);
    assert_eq!(terminal.status.code(), Some(2), "{terminal:?}");
    assert!(
        shown.contains("error: --out -: standard output is a terminal"),
        "{shown}"
    );
    assert_eq!(entries(&dir), ["from-stdout.tar.gz"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The medmig command of a signal test, with SIGINT and SIGTERM at their defaults whatever
/// this test process inherited: a test run in the background of a non-interactive shell (a
/// CI script's `cmd &`) starts with SIGINT ignored, which medmig keeps ignored, as it should.
fn signalled_medmig(args: &[&str], env: &[(&str, &str)]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = medmig_command(args, env);
    // SAFETY: between fork and exec only async-signal-safe calls (signal) are made.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    command
}

/// Polls `ready` until it holds; panics with what the child said if it ends first or the
/// wait exceeds a minute.
fn wait_until(child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
            }
            panic!("medmig ended ({status}) before {what}: {stderr}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no {what} within a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (`INT`, `TERM`) to the child and checks that it ended by that signal,
/// silently.
fn interrupt(mut child: Child, signal: &str, number: i32) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.signal(), Some(number), "{status}: {stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

/// Whether `dir` holds a `.medmig-` work file or directory ending in `suffix`.
fn work_entry(dir: &Path, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.contains(".medmig-") && name.ends_with(suffix)
        })
}

#[test]
fn sigint_while_a_snapshot_waits_for_the_server_leaves_nothing() {
    // A backend that stops answering in the middle of the read (after the startup, BEGIN, the
    // limits and the probe): the snapshot waits, with its temporary file made, up to its
    // statement timeout (a lock on a migration table no longer makes it wait: it is a gap).
    let db = TestDb::with(&["schema", "steady-state"]);
    let dir = directory("medmig_out_sigint");
    let out = dir.join("before-upgrade.json");
    let relay = crate::relay::Relay::start(
        &db,
        crate::relay::Plan {
            stall_after: Some(4),
            ..crate::relay::Plan::default()
        },
    );
    let mut child = signalled_medmig(
        &[
            "snapshot",
            "--database-url",
            &relay.url,
            "--statement-timeout",
            "2min",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_until(&mut child, "the snapshot waits for the server", || {
        work_entry(&dir, ".tmp").is_some()
    });
    // Well into the wait for the stalled answer.
    std::thread::sleep(Duration::from_millis(500));
    interrupt(child, "INT", 2);
    assert!(entries(&dir).is_empty(), "left behind: {:?}", entries(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigint_while_a_schema_capture_waits_for_the_server_leaves_nothing() {
    // A server that accepts and then says nothing, like a wedged proxy.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, connected) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            let _ = accepted.send(());
        }
    });
    let dir = directory("medmig_out_capture_sigint");
    let out = dir.join("contract.json");
    let url = format!("postgres://medmig@127.0.0.1:{port}/medplum");
    let mut child = signalled_medmig(
        &[
            "schema",
            "capture",
            "--database-url",
            &url,
            "--connect-timeout",
            "2min",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_until(&mut child, "the capture connects", || {
        connected.try_recv().is_ok() && work_entry(&dir, ".tmp").is_some()
    });
    interrupt(child, "INT", 2);
    assert!(entries(&dir).is_empty(), "left behind: {:?}", entries(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_while_a_bundle_reads_logs_leaves_nothing() {
    // Millions of log lines as a few hundred identical gzip members: small on disk, seconds
    // to read. The first line is kept, so the bundled copy appears as soon as reading starts.
    let logs = directory("medmig_out_sigterm_logs");
    let log = logs.join("medplum.log.gz");
    let mut lines = String::from(
        "{\"level\":\"ERROR\",\"timestamp\":\"2025-06-02T10:00:00.000Z\",\
         \"msg\":\"Post-deploy migration threw an error\"}\n",
    );
    let member = |text: &str| {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    let mut bytes = member(&lines);
    lines.clear();
    for _ in 0..10_000 {
        lines.push_str(
            "{\"level\":\"INFO\",\"timestamp\":\"2025-06-02T10:00:01.000Z\",\
             \"msg\":\"Request served\",\"path\":\"/fhir/R4/Patient\",\"durationMs\":12}\n",
        );
    }
    let busy = member(&lines);
    for _ in 0..500 {
        bytes.extend_from_slice(&busy);
    }
    std::fs::write(&log, bytes).unwrap();

    let dir = directory("medmig_out_sigterm");
    let out = dir.join("case.tar.gz");
    let mut child = signalled_medmig(
        &[
            "bundle",
            "--no-db",
            "--logs",
            log.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_until(&mut child, "the bundle reads the logs", || {
        work_entry(&dir, ".staging").is_some_and(|staging| {
            std::fs::read_dir(staging.join("logs"))
                .is_ok_and(|mut bundled| bundled.any(|e| e.is_ok_and(|e| e.path().is_file())))
        })
    });
    interrupt(child, "TERM", 15);
    assert!(entries(&dir).is_empty(), "left behind: {:?}", entries(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&logs).unwrap();
}
