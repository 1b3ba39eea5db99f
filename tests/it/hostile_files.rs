//! Hostile and broken files: log directories with special, unreadable and looping entries;
//! bundles with unsafe entries, or unpacked and packed again; gzip bombs, `/dev/zero` and
//! FIFOs as inputs. Archives are made by the real `tar` command or the tar crate, special
//! files by the kernel, and the binary runs under a memory cap (`prlimit`) and a deadline,
//! so that a hang or an unbounded read fails the test instead of the machine.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{fixture_path, unique_name, Run, TestDb};

/// The most address space medmig gets in these tests: every cap below is 64 MiB or less per
/// read, far under this; an unbounded read of the inputs here needs gigabytes.
const MEMORY_CAP: u64 = 512 << 20;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `command` (the binary, or a wrapper around it) with no connection variables from the
/// caller's environment, killing it after `deadline`: a run that hangs fails the test.
fn run_until(mut command: Command, deadline: Duration) -> Run {
    for (name, _) in std::env::vars() {
        if name == "DATABASE_URL" || name.starts_with("PG") || name.starts_with("MEDPLUM_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command runs");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} still ran after {deadline:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// `medmig args` under [`MEMORY_CAP`] of address space and a one-minute deadline.
fn medmig_bounded(args: &[&str]) -> Run {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--as={MEMORY_CAP}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_medmig"))
        .args(args);
    run_until(command, Duration::from_secs(60))
}

/// Runs a shell command (the real `tar`, `ln`, …), panicking when it fails.
fn sh(script: &str) {
    let output = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn special_unreadable_and_looping_log_entries_become_gaps_and_the_bundle_is_made() {
    let root = temp_dir("medmig_hostile_logs");
    let logs = root.join("logs");
    std::fs::create_dir_all(logs.join("nested")).unwrap();
    let line = r#"{"level":"ERROR","timestamp":"2026-03-01T10:05:00.000Z","msg":"Post-deploy migration threw an error"}"#;
    std::fs::write(logs.join("server.log"), format!("{line}\n")).unwrap();
    std::fs::write(logs.join("nested/worker.log"), format!("{line}\n")).unwrap();
    // A FIFO nobody writes to (opening it would wait forever), a socket, a link loop, a link
    // to the directory itself, a link that leads nowhere, and an unreadable file and directory
    // (medmig runs as nobody below, so that permissions hold).
    sh(&format!(
        "cd {} && mkfifo pipe.log && ln -s loop.log loop.log && ln -s . self && ln -s /nonexistent gone.log \
         && echo secret > locked.log && chmod 000 locked.log && mkdir closed && chmod 000 closed",
        path(&logs)
    ));
    let _socket = std::os::unix::net::UnixListener::bind(logs.join("socket.log")).unwrap();
    let out_dir = root.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = out_dir.join("case.tar.gz");

    let mut command = Command::new("runuser");
    command
        .args(["-u", "nobody", "--", env!("CARGO_BIN_EXE_medmig")])
        .args([
            "bundle",
            "--no-db",
            "--out",
            path(&out),
            "--logs",
            path(&logs),
        ]);
    let run = run_until(command, Duration::from_secs(60));
    assert_eq!(run.code, 0, "{run:?}");
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["case.tar.gz"], "no staging directory is left");

    let files = crate::bundle::unpack(&out);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let gaps: Vec<(String, String)> = manifest["not_collected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let what = g["what"].as_str().unwrap();
            (what.to_string(), g["why"].as_str().unwrap().to_string())
        })
        .collect();
    let gap = |name: &str| {
        let what = format!("log {}", path(&logs.join(name)));
        gaps.iter()
            .find(|(w, _)| *w == what)
            .map(|(_, why)| why.clone())
            .unwrap_or_else(|| panic!("no gap names {what}: {gaps:?}"))
    };
    assert!(gap("pipe.log").contains("FIFO"), "{gaps:?}");
    assert!(gap("socket.log").contains("socket"), "{gaps:?}");
    for link in ["loop.log", "self", "gone.log"] {
        assert!(gap(link).contains("not followed"), "{gaps:?}");
    }
    assert!(gap("locked.log").contains("Permission denied"), "{gaps:?}");
    assert!(gap("closed").contains("cannot be listed"), "{gaps:?}");
    // The readable files were read, the one below a directory included.
    let ingest: Value = serde_json::from_slice(&files["logs/ingest.json"]).unwrap();
    assert_eq!(ingest["totals"]["lines_kept"], 2, "{ingest}");
    assert!(!files
        .values()
        .any(|b| String::from_utf8_lossy(b).contains("secret\n")));
    sh(&format!("chmod 755 {}", path(&logs.join("closed"))));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_fifo_named_as_logs_is_read_and_one_without_a_writer_does_not_hang() {
    let root = temp_dir("medmig_fifo_logs");
    let silent = root.join("silent.log");
    sh(&format!("mkfifo {}", path(&silent)));
    let out = root.join("case.tar.gz");
    let script = format!(
        "exec {} bundle --no-db --out {} --logs {} --logs <(echo '{{\"level\":\"ERROR\",\"msg\":\"piped\"}}')",
        env!("CARGO_BIN_EXE_medmig"),
        path(&out),
        path(&silent)
    );
    let mut command = Command::new("bash");
    command.arg("-c").arg(script);
    let run = run_until(command, Duration::from_secs(60));
    assert_eq!(run.code, 0, "{run:?}");
    let files = crate::bundle::unpack(&out);
    let ingest: Value = serde_json::from_slice(&files["logs/ingest.json"]).unwrap();
    assert_eq!(ingest["totals"]["lines_kept"], 1, "{ingest}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// A real bundle of a real database, unpacked by the real `tar` into `dir`; returns the
/// names its manifest lists, in archive order.
fn unpacked_bundle(db: &TestDb, dir: &Path) -> Vec<String> {
    let bundle = dir.with_extension("tar.gz");
    let run = crate::harness::medmig(&[
        "bundle",
        "--out",
        path(&bundle),
        "--database-url",
        &db.url(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    std::fs::create_dir_all(dir).unwrap();
    sh(&format!("tar -xzf {} -C {}", path(&bundle), path(dir)));
    std::fs::remove_file(&bundle).unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

/// Packs the unpacked bundle in `dir` with the real `tar` as medmig packs it (manifest first,
/// then the listed files), runs `then` (more `tar -rf` on `$T`) and gzips it to `out`.
fn pack(dir: &Path, listed: &[String], then: &str, out: &Path) {
    let plain = out.with_extension("");
    sh(&format!(
        "set -e; T={tar}; tar -cf \"$T\" -C {dir} manifest.json {files}; {then}; gzip -c \"$T\" > {out}; rm \"$T\"",
        tar = path(&plain),
        dir = path(dir),
        files = listed.join(" "),
        out = path(out),
    ));
}

#[test]
fn verify_names_every_unsafe_entry_and_every_reader_refuses_the_bundle() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let root = temp_dir("medmig_unsafe");
    let dir = root.join("unpacked");
    let listed = unpacked_bundle(&db, &dir);
    let bundle = root.join("b.tar.gz");

    // Packed again by the real tar exactly as medmig packs it: intact, and readable.
    pack(&dir, &listed, "true", &bundle);
    let run = crate::harness::medmig(&["bundle", "verify", path(&bundle)]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = crate::harness::medmig(&["status", "--bundle", path(&bundle)]);
    assert_eq!(run.code, 0, "{run:?}");

    // What a hostile archive can hold beside the real files.
    let outside = root.join("outside.txt");
    std::fs::write(&outside, "outside").unwrap();
    let links = root.join("links");
    std::fs::create_dir_all(&links).unwrap();
    sh(&format!(
        "cd {} && ln -s /etc/passwd passwd-link && echo data > original.json && ln original.json hard-link.json",
        path(&links)
    ));
    let other_snapshot = root.join("other");
    std::fs::create_dir_all(&other_snapshot).unwrap();
    std::fs::copy(
        fixture_path("snapshots/failed-with-retry.json"),
        other_snapshot.join("snapshot.json"),
    )
    .unwrap();
    let cases: [(&str, String, &str, &str); 5] = [
        (
            "climbing",
            format!("tar -rf \"$T\" -P -C {} ../outside.txt", path(&dir)),
            "../outside.txt",
            "a path that leads out of the bundle (..)",
        ),
        (
            "absolute",
            format!("tar -rf \"$T\" -P {}", path(&outside)),
            path(&outside),
            "an absolute path",
        ),
        (
            "symlink",
            format!("tar -rf \"$T\" -C {} passwd-link", path(&links)),
            "passwd-link",
            "a symbolic link to /etc/passwd",
        ),
        (
            "hard link",
            format!(
                "tar -rf \"$T\" -C {} original.json hard-link.json",
                path(&links)
            ),
            "hard-link.json",
            "a hard link to original.json",
        ),
        (
            "duplicate",
            format!("tar -rf \"$T\" -C {} snapshot.json", path(&other_snapshot)),
            "snapshot.json",
            "stored a second time",
        ),
    ];
    for (case, append, name, why) in cases {
        pack(&dir, &listed, &append, &bundle);
        let run = crate::harness::medmig(&["bundle", "verify", path(&bundle)]);
        assert_eq!(run.code, 1, "{case}: {run:?}");
        let line = format!("UNSAFE    {name}: {why}");
        assert!(
            run.stdout.contains(&line),
            "{case}: {line} in {}",
            run.stdout
        );
        assert!(
            run.stdout.contains("is damaged or changed"),
            "{case}: {run:?}"
        );
        for reader in [
            vec!["status", "--bundle", path(&bundle)],
            vec!["recover", "--bundle", path(&bundle)],
            vec![
                "rollback-check",
                "--bundle",
                path(&bundle),
                "--to",
                "5.1.44",
                "--from",
                "5.2.2",
            ],
        ] {
            let run = crate::harness::medmig(&reader);
            let error = run.single_error();
            assert!(
                error.contains(&format!("{name}: {why}")) && error.contains("bundle verify"),
                "{case}, {}: {error}",
                reader[0]
            );
        }
    }

    // The snapshot itself a link: never followed, named by both.
    let swapped = root.join("swapped");
    std::fs::create_dir_all(&swapped).unwrap();
    sh(&format!(
        "ln -s /etc/passwd {}",
        path(&swapped.join("snapshot.json"))
    ));
    let rest: Vec<String> = listed
        .iter()
        .filter(|f| *f != "snapshot.json")
        .cloned()
        .collect();
    pack(
        &dir,
        &rest,
        &format!("tar -rf \"$T\" -C {} snapshot.json", path(&swapped)),
        &bundle,
    );
    let run = crate::harness::medmig(&["bundle", "verify", path(&bundle)]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("DAMAGED   snapshot.json: not read: a symbolic link to /etc/passwd"),
        "{}",
        run.stdout
    );
    let run = crate::harness::medmig(&["status", "--bundle", path(&bundle)]);
    assert!(
        run.single_error()
            .contains("snapshot.json: a symbolic link to /etc/passwd, not a plain file"),
        "{run:?}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_bundle_unpacked_and_packed_again_is_a_changed_bundle_not_a_foreign_file() {
    let db = TestDb::with(&["schema", "steady-state"]);
    let root = temp_dir("medmig_repacked");
    let dir = root.join("unpacked");
    let listed = unpacked_bundle(&db, &dir);
    let repacked = root.join("repacked.tar.gz");
    // What a person does: `tar -czf b.tar.gz .` in the unpacked directory.
    sh(&format!(
        "cd {} && tar -czf {} .",
        path(&dir),
        path(&repacked)
    ));
    let run = crate::harness::medmig(&["bundle", "verify", path(&repacked)]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("CHANGED   manifest.json: stored as ./manifest.json"),
        "{}",
        run.stdout
    );
    for file in &listed {
        let line = format!("DAMAGED   {file}: stored as ./{file}; its content matches");
        assert!(run.stdout.contains(&line), "{line} in {}", run.stdout);
    }
    assert!(
        run.stdout
            .contains("UNSAFE    ./: a directory, not a plain file"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.lines().last().unwrap().contains(&format!(
            "0 of the {} files listed in manifest.json match",
            listed.len()
        )),
        "{}",
        run.stdout
    );
    // Readers refuse it, pointing at verify, and do not call it foreign.
    let run = crate::harness::medmig(&["status", "--bundle", path(&repacked)]);
    let error = run.single_error();
    assert!(
        error.contains("bundle verify") && !error.contains("not a medmig bundle"),
        "{error}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bundle_and_verify_count_the_same_files() {
    let root = temp_dir("medmig_count");
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("a.log"), "2026-03-01 10:00:00 ERROR one\n").unwrap();
    let out = root.join("case.tar.gz");
    let run = crate::harness::medmig(&[
        "bundle",
        "--no-db",
        "--out",
        path(&out),
        "--logs",
        path(&logs),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let files = crate::bundle::unpack(&out);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let listed = manifest["files"].as_array().unwrap().len();
    assert!(
        run.stderr
            .contains(&format!("({listed} files listed in manifest.json;")),
        "{run:?}"
    );
    let verified = crate::harness::medmig(&["bundle", "verify", path(&out)]);
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(
        verified.stdout.contains(&format!(
            "is intact: all {listed} files listed in manifest.json"
        )),
        "{verified:?}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// A bundle-shaped archive whose `snapshot.json` is `size` bytes of zeros, which its manifest
/// lists at that size: made by streaming the zeros through the tar crate into `gzip`, never
/// held in memory. A few hundred KB on disk.
fn gzip_bomb(out: &Path, size: u64) {
    let manifest = serde_json::json!({
        "format_version": 1, "kind": "medmig-support-bundle",
        "created_at": "2026-03-01T10:00:00Z", "medmig_version": "0.1.0", "command_line": [],
        "source": null, "since": null, "until": null,
        "files": [{"path": "snapshot.json", "size": size, "sha256": "0".repeat(64)}],
        "redactions": {}, "not_collected": [],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let mut gzip = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(out).unwrap())
        .spawn()
        .unwrap();
    let mut tar = tar::Builder::new(gzip.stdin.take().unwrap());
    for (name, size, data) in [
        (
            "manifest.json",
            manifest.len() as u64,
            Box::new(&manifest[..]) as Box<dyn Read>,
        ),
        (
            "snapshot.json",
            size,
            Box::new(std::io::repeat(0).take(size)) as Box<dyn Read>,
        ),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, data).unwrap();
    }
    tar.into_inner().unwrap().flush().unwrap();
    assert!(gzip.wait().unwrap().success());
}

#[test]
fn gzip_bombs_stop_at_the_caps_in_bounded_memory() {
    let root = temp_dir("medmig_bomb");
    // Over the cap of any bundle entry (256 MiB): refused by its size, nothing read.
    let large = root.join("large.tar.gz");
    gzip_bomb(&large, 300 << 20);
    assert!(std::fs::metadata(&large).unwrap().len() < 2 << 20);
    let run = medmig_bounded(&["status", "--bundle", path(&large)]);
    let error = run.single_error();
    assert!(
        error.contains("snapshot.json: 314572800 bytes, larger than 256 MiB"),
        "{error}"
    );
    let run = medmig_bounded(&["bundle", "verify", path(&large)]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("UNSAFE    snapshot.json: 314572800 bytes, larger than 256 MiB"),
        "{run:?}"
    );
    // Under it, but over the cap of a snapshot (64 MiB): verify hashes it as it streams by,
    // and status refuses to hold it.
    let snapshot = root.join("snapshot.tar.gz");
    gzip_bomb(&snapshot, (64 << 20) + 1);
    let run = medmig_bounded(&["status", "--bundle", path(&snapshot)]);
    assert!(
        run.single_error()
            .contains("snapshot.json is larger than 64 MiB, the most medmig reads of a snapshot"),
        "{run:?}"
    );
    let run = medmig_bounded(&["bundle", "verify", path(&snapshot)]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("DAMAGED   snapshot.json: checksum differs"),
        "{run:?}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn endless_inputs_stop_at_their_caps_in_bounded_memory() {
    let snapshot = fixture_path("snapshots/steady-state.json");
    for (args, cap) in [
        (vec!["status", "--snapshot", "/dev/zero"], "64 MiB"),
        (
            vec![
                "schema",
                "diff",
                "--baseline",
                "/dev/zero",
                "--snapshot",
                path(&snapshot),
            ],
            "64 MiB",
        ),
        (
            vec![
                "status",
                "--snapshot",
                path(&snapshot),
                "--manifest",
                "/dev/zero",
            ],
            "4 MiB",
        ),
        (
            vec![
                "bundle",
                "--no-db",
                "--out",
                "/nonexistent/b.tar.gz",
                "--medplum-config",
                "/dev/zero",
            ],
            "4 MiB",
        ),
    ] {
        let run = medmig_bounded(&args);
        let error = run.single_error();
        assert!(
            error.contains("/dev/zero") && error.contains(&format!("larger than {cap}")),
            "{args:?}: {error}"
        );
    }
}

#[test]
fn a_fifo_as_snapshot_is_read_to_its_cap_and_one_without_a_writer_does_not_hang() {
    let root = temp_dir("medmig_fifo_snapshot");
    let fifo = root.join("snapshot.json");
    sh(&format!("mkfifo {}", path(&fifo)));
    // Nobody writes: empty, at once.
    let run = medmig_bounded(&["status", "--snapshot", path(&fifo)]);
    assert!(run.single_error().contains("is empty"), "{run:?}");
    // A writer that never stops: JSON-ish text up to the cap, then a clear error. Opened for
    // reading and writing here first, so that the writer is there before medmig opens it,
    // and closed once medmig is done, so that the writer's next write fails and it stops.
    let keeper = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let _ = pipe.write_all(b"{\"jobs\": [");
            let chunk = b"{\"id\": 1}, ".repeat(1 << 16);
            while pipe.write_all(&chunk).is_ok() {}
        })
    };
    let run = medmig_bounded(&["status", "--snapshot", path(&fifo)]);
    drop(keeper);
    writer.join().unwrap();
    assert!(
        run.single_error()
            .contains("larger than 64 MiB, the most medmig reads of a snapshot"),
        "{run:?}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn json_of_another_shape_is_called_json_but_not_a_snapshot() {
    let root = temp_dir("medmig_shape");
    let file = root.join("numbers.json");
    std::fs::write(&file, "[1,2,3]\n").unwrap();
    let run = crate::harness::medmig(&["status", "--snapshot", path(&file)]);
    let error = run.single_error();
    assert!(
        error.contains("is JSON but not a medmig snapshot: it is an array"),
        "{error}"
    );
    let run = crate::harness::medmig(&[
        "schema",
        "diff",
        "--baseline",
        path(&file),
        "--snapshot",
        path(&fixture_path("snapshots/steady-state.json")),
    ]);
    assert!(
        run.single_error()
            .contains("is JSON but not a schema capture or a snapshot: it is an array"),
        "{run:?}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
