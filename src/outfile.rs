//! The files medmig writes: where `--out` points, whether medmig may write there, and writing
//! so that nothing half-made is ever left behind.
//!
//! This module owns, for every command that takes `--out`: the rules on the target (`-` is
//! standard output; an existing target must be a regular file, and is replaced only with
//! `--force`; a symbolic link, device, FIFO, socket or directory is refused whatever `--force`
//! says, and never followed; the directory must exist), the atomic write (a temporary sibling,
//! synced, then renamed over the target), the work directories beside a target, and their
//! removal on every way out: an error, SIGINT or SIGTERM (after which the process still ends
//! by that signal, so a shell sees 130 or 143), and, for a run killed outright, the next run
//! with the same `--out`. What goes into the files is the commands' business.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::{anyhow, bail, Context, Result};

/// Where a command's file goes: `--out FILE`, or standard output for `--out -`.
pub enum Destination {
    Stdout,
    File(PendingFile),
}

impl Destination {
    /// Checks `--out` before anything is collected (see [`check_target`]) and reserves the
    /// file: creates its temporary sibling, so that an unwritable directory fails now rather
    /// than after a long collection. `-` is standard output; `./-` is a file named `-`.
    pub fn open(path: &Path, overwrite: bool) -> Result<Destination> {
        if is_stdout(path) {
            return Ok(Destination::Stdout);
        }
        PendingFile::create(path, overwrite).map(Destination::File)
    }

    /// Lets `fill` write the whole content, then completes it: the file is synced and
    /// renamed over the target; standard output is flushed.
    pub fn write_with(self, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
        match self {
            Destination::Stdout => {
                let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
                fill(&mut out)
                    .and_then(|()| out.flush())
                    .context("cannot write to standard output")
            }
            Destination::File(mut pending) => {
                let written = {
                    let mut out = BufWriter::with_capacity(1 << 16, &mut pending.file);
                    fill(&mut out).and_then(|()| out.flush())
                };
                written.map_err(|err| anyhow!("cannot write {}: {err}", pending.shown()))?;
                pending.commit()
            }
        }
    }

    /// A new work directory for files that go into this destination: beside the target, or
    /// in the system's temporary directory for standard output. Removed when dropped.
    pub fn work_directory(&self) -> Result<Scratch> {
        let (parent, name) = match self {
            Destination::Stdout => (std::env::temp_dir(), "stdout".to_string()),
            Destination::File(pending) => (parent_of(&pending.target), file_name(&pending.target)?),
        };
        remove_leftovers(&parent, &name);
        let path = parent.join(scratch_name(&name, "staging"));
        let scratch = Scratch::register(path.clone())?;
        // A directory of the same name can only be left by an earlier process with our pid.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).with_context(|| {
            format!("cannot create a working directory in {}", parent.display())
        })?;
        Ok(scratch)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Stdout => f.write_str("standard output"),
            Destination::File(pending) => f.write_str(&pending.shown()),
        }
    }
}

/// Whether `--out` names standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// A file being written: its temporary sibling, open, renamed over the target by
/// [`PendingFile::commit`] and removed if that never happens.
pub struct PendingFile {
    target: PathBuf,
    overwrite: bool,
    file: File,
    temporary: Scratch,
}

impl PendingFile {
    /// Checks the target and creates the temporary file beside it.
    fn create(target: &Path, overwrite: bool) -> Result<PendingFile> {
        check_target(target, overwrite)?;
        let (parent, name) = (parent_of(target), file_name(target)?);
        remove_leftovers(&parent, &name);
        let path = parent.join(scratch_name(&name, "tmp"));
        let temporary = Scratch::register(path.clone())?;
        // Never through a link or into a file that is already there: a name with our pid can
        // only be left by an earlier process that had it.
        let _ = fs::remove_file(&path);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot write {}: cannot create a file in {}",
                    target.display(),
                    parent.display()
                )
            })?;
        Ok(PendingFile {
            target: target.to_path_buf(),
            overwrite,
            file,
            temporary,
        })
    }

    fn shown(&self) -> String {
        self.target.display().to_string()
    }

    /// Syncs the temporary file and puts it in place of the target, checking the target
    /// again first: something may have appeared there during the collection. Without
    /// `overwrite` the file is linked in, which fails rather than replace a file that
    /// appeared after that check.
    fn commit(self) -> Result<()> {
        let shown = self.shown();
        self.file
            .sync_all()
            .map_err(|err| anyhow!("cannot write {shown}: {err}"))?;
        check_target(&self.target, self.overwrite)?;
        let temporary = self.temporary.path();
        let placed = if self.overwrite {
            fs::rename(temporary, &self.target)
        } else {
            match fs::hard_link(temporary, &self.target) {
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(already_exists(&self.target))
                }
                // A file system without hard links; the target was checked just above.
                Err(_) => fs::rename(temporary, &self.target),
                Ok(()) => Ok(()),
            }
        };
        placed.map_err(|err| anyhow!("cannot write {shown}: {err}"))
        // Dropping `temporary` removes the name left after a link.
    }
}

/// Refuses a `--out` that medmig must not write: a target whose directory does not exist,
/// an existing target that is not a regular file (a symbolic link is not followed, and is
/// refused like a device, a FIFO, a socket or a directory, whatever `overwrite` says), and an
/// existing regular file unless `overwrite`.
pub fn check_target(target: &Path, overwrite: bool) -> Result<()> {
    let shown = target.display();
    file_name(target)?;
    let parent = parent_of(target);
    match fs::metadata(&parent) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!(
            "--out {shown}: {} is not a directory: choose another --out",
            parent.display()
        ),
        Err(err) if err.kind() == io::ErrorKind::NotFound => bail!(
            "--out {shown}: the directory {} does not exist: create it or choose another --out",
            parent.display()
        ),
        Err(err) => bail!(
            "--out {shown}: cannot read the directory {}: {err}",
            parent.display()
        ),
    }
    let meta = match fs::symlink_metadata(target) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => bail!("--out {shown}: cannot check what is there: {err}"),
    };
    if let Some(kind) = not_regular(&meta.file_type()) {
        bail!(
            "--out {shown} is {kind}, not a regular file: medmig replaces only regular files, \
             --force or not; choose another --out (- for standard output)"
        );
    }
    if !overwrite {
        return Err(already_exists(target));
    }
    Ok(())
}

fn already_exists(target: &Path) -> anyhow::Error {
    anyhow!(
        "{} already exists: choose another --out or pass --force to replace it",
        target.display()
    )
}

/// What a file that is not a regular file is, for the refusal; `None` for a regular file.
fn not_regular(kind: &fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_file() {
        None
    } else if kind.is_symlink() {
        Some("a symbolic link")
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("a special file")
    }
}

/// The directory `target` is in (`.` for a bare name).
fn parent_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(target: &Path) -> Result<String> {
    target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("--out {} is not a file name", target.display()))
}

/// `.NAME.medmig-PID.KIND`: hidden, named after the output, and telling which process made it.
fn scratch_name(name: &str, kind: &str) -> String {
    format!(".{name}.medmig-{}.{kind}", std::process::id())
}

/// Removes what a run for the same output killed outright (SIGKILL, a crash) left beside it:
/// work directories and temporary files named after `name` whose process no longer runs.
fn remove_leftovers(parent: &Path, name: &str) {
    let prefix = format!(".{name}.medmig-");
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let Some(pid) = rest
            .strip_suffix(".staging")
            .or_else(|| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if pid != std::process::id() && !alive {
            remove(&entry.path());
        }
    }
}

/// A file or directory of unfinished work: removed when dropped, and on SIGINT or SIGTERM.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Puts `path` on the list the signal handler removes, before it exists (a signal
    /// between its creation and the listing would leave it).
    fn register(path: PathBuf) -> Result<Scratch> {
        watch_signals().context("cannot watch for SIGINT and SIGTERM")?;
        lock_registry().push(path.clone());
        Ok(Scratch { path })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut registry = lock_registry();
        remove(&self.path);
        if let Some(at) = registry.iter().position(|p| *p == self.path) {
            registry.swap_remove(at);
        }
    }
}

/// Removes a file, a link or a whole directory, whichever `path` is; gone already is fine.
fn remove(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Every [`Scratch`] alive, for the signal handler.
static REGISTRY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Set when SIGINT or SIGTERM arrived, before the handler starts removing.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn lock_registry() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts, once, the thread that answers SIGINT and SIGTERM: it removes every registered
/// scratch path and ends the process by the same signal, as if medmig did not catch it.
/// Commands that write nothing never start it and keep the default behaviour.
fn watch_signals() -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    static WATCHING: OnceLock<Result<(), String>> = OnceLock::new();
    let started = WATCHING.get_or_init(|| {
        // A signal ignored when medmig started (SIGINT for `medmig … &` in a script) stays
        // ignored, as the shell meant.
        let caught: Vec<i32> = [SIGINT, SIGTERM]
            .into_iter()
            .filter(|&signal| !ignored(signal))
            .collect();
        let mut signals =
            signal_hook::iterator::Signals::new(caught).map_err(|err| err.to_string())?;
        std::thread::Builder::new()
            .name("medmig-signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    INTERRUPTED.store(true, Ordering::SeqCst);
                    // Held until the end: nothing is registered or released meanwhile.
                    let registry = lock_registry();
                    for path in registry.iter() {
                        remove(path);
                    }
                    let _ = signal_hook::low_level::emulate_default_handler(signal);
                    std::process::exit(128 + signal);
                }
            })
            .map(drop)
            .map_err(|err| err.to_string())
    });
    started.clone().map_err(io::Error::other)
}

/// Whether `signal` is ignored (`SIG_IGN`) at this moment.
fn ignored(signal: i32) -> bool {
    // SAFETY: a query only (no new action), into a zeroed `sigaction` owned here.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

/// Called before an error is reported: when SIGINT or SIGTERM arrived, the error may only
/// be the handler removing files under the command's feet, and the process is about to end
/// by that signal; waits for that instead of reporting it.
pub fn wait_if_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("medmig-outfile-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_appears_whole_and_only_at_the_end() {
        let dir = directory("whole");
        let target = dir.join("out.json");
        let destination = Destination::open(&target, false).unwrap();
        assert!(!target.exists());
        assert_eq!(entries(&dir).len(), 1, "only the temporary file");
        destination.write_with(|out| out.write_all(b"{}")).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"{}");
        assert_eq!(entries(&dir), ["out.json"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_fill_leaves_nothing() {
        let dir = directory("failed");
        let target = dir.join("out.json");
        let destination = Destination::open(&target, false).unwrap();
        let err = destination
            .write_with(|_| Err(io::Error::other("disk on fire")))
            .unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
        assert!(entries(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_appears_meanwhile_is_not_replaced_without_overwrite() {
        let dir = directory("meanwhile");
        let target = dir.join("out.json");
        let destination = Destination::open(&target, false).unwrap();
        fs::write(&target, b"theirs").unwrap();
        let err = destination
            .write_with(|out| out.write_all(b"ours"))
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"theirs");
        assert_eq!(entries(&dir), ["out.json"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_work_directory_goes_with_its_scratch() {
        let dir = directory("work");
        let destination = Destination::open(&dir.join("b.tar.gz"), false).unwrap();
        let work = destination.work_directory().unwrap();
        assert!(work.path().is_dir());
        fs::write(work.path().join("x"), b"x").unwrap();
        drop(work);
        drop(destination);
        assert!(entries(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
