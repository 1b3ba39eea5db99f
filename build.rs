//! Records the commit medmig is built from, for `medmig --version`, as the compile-time
//! variable `MEDMIG_BUILD_COMMIT`: `MEDMIG_COMMIT` when set (a packager building from a
//! tarball knows it), else `git rev-parse --short=12 HEAD` when the package is the top of a git
//! work tree, else `unknown` (no git, or a source tree that is not a repository of its own:
//! the commit of a repository it happens to sit in would be a lie).
//!
//! Cargo runs this again when HEAD moves: when `.git/HEAD` changes (a checkout) and when the
//! branch it points to does (a commit, a reset), wherever git keeps them (a linked work tree
//! has its own HEAD and shares its refs).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MEDMIG_COMMIT");
    let commit = match std::env::var("MEDMIG_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => {
            let commit = commit.trim();
            // It becomes a line of cargo's instructions, and a word of --version.
            assert!(
                commit.chars().all(|c| c.is_ascii_graphic()),
                "MEDMIG_COMMIT must be one word of printable ASCII (a commit id), not {commit:?}"
            );
            commit.to_string()
        }
        _ => git_commit().unwrap_or_else(|| "unknown".to_string()),
    };
    println!("cargo:rustc-env=MEDMIG_BUILD_COMMIT={commit}");
}

/// The commit of HEAD, watching what moves it; `None` without git or a work tree of our own.
fn git_commit() -> Option<String> {
    let package = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let top = PathBuf::from(git(&package, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != package.canonicalize().ok()? {
        return None;
    }
    watch(&package, "HEAD");
    if let Some(branch) = git(&package, &["symbolic-ref", "-q", "HEAD"]) {
        // A branch kept in packed-refs has no file of its own until it next moves: then its
        // file appears in the directory, which is watched instead.
        let loose = git_path(&package, &branch)?;
        if loose.exists() {
            watch_path(&loose);
        } else {
            let mut directory = loose.parent().map(Path::to_path_buf);
            while let Some(dir) = directory.take() {
                if dir.is_dir() {
                    watch_path(&dir);
                } else {
                    directory = dir.parent().map(Path::to_path_buf);
                }
            }
        }
        watch(&package, "packed-refs");
    }
    let commit = git(&package, &["rev-parse", "--short=12", "HEAD"])?;
    commit
        .chars()
        .all(|c| c.is_ascii_hexdigit())
        .then_some(commit)
}

/// Tells cargo to run this again when git's file `name` (as `git rev-parse --git-path` places
/// it) changes, if it exists.
fn watch(package: &Path, name: &str) {
    if let Some(path) = git_path(package, name).filter(|path| path.exists()) {
        watch_path(&path);
    }
}

fn watch_path(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}

/// Where git keeps `name`, as an absolute path.
fn git_path(package: &Path, name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(git(package, &["rev-parse", "--git-path", name])?);
    Some(if path.is_absolute() {
        path
    } else {
        package.join(path)
    })
}

/// What `git ARGS` prints in `package`, trimmed; `None` when git is missing or fails.
fn git(package: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(package)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}
