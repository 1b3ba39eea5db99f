//! `medmig completions`, `medmig man` and `--version`: the scripts and pages are generated from
//! the clap definitions, so these tests check what a user's tools make of them. Bash, zsh and
//! fish load the scripts (bash and fish complete from them); groff renders every page without
//! a warning and man shows its name and options; `--version` names the commit and the newest
//! release of the embedded manifest.
//!
//! The programs are run, never assumed: `scripts/test-tools` installs groff, man, zsh and
//! fish, and a test whose program is missing fails saying so. PowerShell and Elvish are not in
//! Debian's packages: their scripts are only checked for the command names.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use medmig::medplum::manifest::Manifest;

use crate::harness::{medmig, unique_name};

/// `program` with `args`, to run with [`run`].
fn tool(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    command
}

/// Runs `command` with `stdin` on its standard input; fails the test, naming the script that
/// installs it, when the program is not there.
fn run(mut command: Command, stdin: &[u8]) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot run {program} ({err}): run scripts/test-tools, which installs it")
        });
    let mut input = child.stdin.take().expect("a pipe to the program");
    std::thread::scope(|scope| {
        // Written beside the reading: a program may answer before it has read everything.
        scope.spawn(move || input.write_all(stdin));
        child.wait_with_output().expect("the program ends")
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The script `medmig completions SHELL` prints, in a file of its own.
fn script(shell: &str) -> PathBuf {
    let run = medmig(&["completions", shell]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.is_empty(), "{run:?}");
    let path = std::env::temp_dir().join(unique_name(&format!("medmig_completion_{shell}")));
    std::fs::write(&path, &run.stdout).unwrap();
    path
}

/// What bash offers for the last word of `line` (a trailing space starts a new word), with the
/// script loaded in a bash that reads no startup file; the script must load in silence.
fn bash_completions(script: &Path, line: &str) -> Vec<String> {
    const COMPLETE: &str = r#"
        source "$1" || exit 1
        spec=$(complete -p medmig) || exit 1
        function=${spec##* -F }
        function=${function%% *}
        read -ra COMP_WORDS <<< "$2"
        [[ $2 == *' ' ]] && COMP_WORDS+=('')
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
        COMP_LINE=$2
        COMP_POINT=${#COMP_LINE}
        "$function" medmig "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let script = script.to_str().unwrap();
    let args = [
        "--norc",
        "--noprofile",
        "-c",
        COMPLETE,
        "bash",
        script,
        line,
    ];
    let output = run(tool("bash", &args), b"");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "bash completing {line:?}: {output:?}"
    );
    text(&output.stdout).lines().map(str::to_string).collect()
}

#[test]
fn bash_loads_the_script_and_completes_commands_and_options() {
    let script = script("bash");
    let offered = bash_completions(&script, "medmig st");
    assert!(offered.contains(&"status".to_string()), "{offered:?}");
    assert!(!offered.contains(&"snapshot".to_string()), "{offered:?}");
    let offered = bash_completions(&script, "medmig status --for");
    assert!(offered.contains(&"--format".to_string()), "{offered:?}");
    let offered = bash_completions(&script, "medmig status --format ");
    assert_eq!(offered, ["table", "json", "csv"]);
    let offered = bash_completions(&script, "medmig schema ");
    assert!(offered.contains(&"diff".to_string()), "{offered:?}");
    std::fs::remove_file(script).unwrap();
}

#[test]
fn zsh_loads_the_script_as_its_completion_for_medmig() {
    let script = script("zsh");
    let load = r#"autoload -Uz compinit && compinit -u -D && source "$1" && print -r -- "$_comps[medmig]""#;
    let args = ["-f", "-c", load, "zsh", script.to_str().unwrap()];
    let output = run(tool("zsh", &args), b"");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{output:?}"
    );
    assert_eq!(text(&output.stdout).trim(), "_medmig", "{output:?}");
    std::fs::remove_file(script).unwrap();
}

#[test]
fn fish_completes_commands_and_options_from_the_script() {
    let script = script("fish");
    let complete =
        r#"source $argv[1]; and complete -C "medmig st"; and complete -C "medmig status --for""#;
    let args = ["--no-config", "-c", complete, script.to_str().unwrap()];
    let output = run(tool("fish", &args), b"");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{output:?}"
    );
    // fish prints a candidate, a tab, and its description.
    let offered: Vec<String> = text(&output.stdout)
        .lines()
        .map(|line| line.split('\t').next().unwrap_or_default().to_string())
        .collect();
    assert!(offered.contains(&"status".to_string()), "{offered:?}");
    assert!(offered.contains(&"--format".to_string()), "{offered:?}");
    std::fs::remove_file(script).unwrap();
}

#[test]
fn every_shell_gets_a_script_that_names_every_command() {
    let commands: Vec<String> = medmig::command()
        .get_subcommands()
        .map(|command| command.get_name().to_string())
        .collect();
    assert!(commands.contains(&"rollback-check".to_string()));
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = medmig(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {run:?}");
        assert!(run.stderr.is_empty(), "{shell}: {run:?}");
        for command in &commands {
            assert!(run.stdout.contains(command.as_str()), "{shell}: {command}");
        }
    }
    let run = medmig(&["completions", "tcsh"]);
    assert!(run.argument_error().contains("tcsh"), "{run:?}");
}

/// A command that has a man page: the words after `medmig` that name it, its page's name and
/// what its page must show.
struct Page {
    path: Vec<String>,
    name: String,
    options: Vec<String>,
}

/// Every page medmig has, from the definitions: medmig's own and every command's, nested
/// ones included, so that a new command is covered without a word here.
fn every_page() -> Vec<Page> {
    fn visit(command: &clap::Command, path: Vec<String>, pages: &mut Vec<Page>) {
        let mut options = vec!["--help".to_string(), "--version".to_string()];
        for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
            if arg.is_positional() {
                let names = arg.get_value_names().unwrap_or_default();
                options.extend(names.iter().map(ToString::to_string));
            }
            options.extend(arg.get_long().map(|long| format!("--{long}")));
            options.extend(arg.get_short().map(|short| format!("-{short}")));
        }
        let name = std::iter::once("medmig")
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("-");
        pages.push(Page {
            path: path.clone(),
            name,
            options,
        });
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            let mut path = path.clone();
            path.push(sub.get_name().to_string());
            visit(sub, path, pages);
        }
    }
    let mut pages = Vec::new();
    visit(&medmig::command(), Vec::new(), &mut pages);
    pages
}

/// `medmig man` of `page`, which must succeed and print nothing on stderr.
fn man_page(page: &Page) -> String {
    let mut args = vec!["man"];
    args.extend(page.path.iter().map(String::as_str));
    let run = medmig(&args);
    assert_eq!(run.code, 0, "{}: {run:?}", page.name);
    assert!(run.stderr.is_empty(), "{}: {run:?}", page.name);
    run.stdout
}

/// The page as man shows it on an 80-column terminal, as plain text.
fn as_man_shows_it(name: &str, roff: &str) -> String {
    let mut man = tool("man", &["-l", "-"]);
    man.env("MANWIDTH", "80").env("MANPAGER", "cat");
    // Set, it would make man keep the bold and the underlining (as overstrikes) in a pipe.
    man.env_remove("MAN_KEEP_FORMATTING");
    let output = run(man, roff.as_bytes());
    assert!(output.status.success(), "man -l, {name}: {output:?}");
    text(&output.stdout)
}

#[test]
fn every_man_page_renders_without_a_warning_and_shows_its_options() {
    let pages = every_page();
    assert!(pages.iter().any(|page| page.name == "medmig-schema-diff"));
    assert!(pages.iter().any(|page| page.name == "medmig-bundle-verify"));
    for page in &pages {
        let roff = man_page(page);
        let groff = ["-man", "-Tutf8", "-ww", "-z"];
        let output = run(tool("groff", &groff), roff.as_bytes());
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "groff, {}: {}",
            page.name,
            text(&output.stderr)
        );
        let shown = as_man_shows_it(&page.name, &roff);
        assert!(
            shown.starts_with(&format!("{}(1)", page.name)),
            "{}: {shown}",
            page.name
        );
        for option in &page.options {
            assert!(
                shown.contains(option.as_str()),
                "{}: no {option} in\n{shown}",
                page.name
            );
        }
    }
}

#[test]
fn medmigs_own_man_page_lists_every_command_and_the_version() {
    let pages = every_page();
    let shown = as_man_shows_it("medmig", &man_page(&pages[0]));
    for page in pages.iter().filter(|page| page.path.len() == 1) {
        assert!(
            shown.contains(&format!("{}(1)", page.name)),
            "{}: {shown}",
            page.name
        );
    }
    assert!(shown.contains(&long_version()), "{shown}");
}

#[test]
fn a_command_that_does_not_exist_has_no_man_page() {
    let run = medmig(&["man", "bogus"]);
    let line = run.single_error();
    assert!(line.contains("'bogus'"), "{line}");
    for command in ["status", "rollback-check", "schema", "man"] {
        assert!(line.contains(command), "{command}: {line}");
    }

    let line = medmig(&["man", "schema", "bogus"])
        .single_error()
        .to_string();
    assert!(
        line.contains("medmig schema") && line.contains("capture, diff"),
        "{line}"
    );
    let line = medmig(&["man", "status", "extra"])
        .single_error()
        .to_string();
    assert!(line.contains("'extra'"), "{line}");
}

#[test]
fn man_out_dir_writes_every_page_and_replaces_them_only_with_force() {
    let dir = std::env::temp_dir().join(unique_name("medmig_man"));
    std::fs::create_dir(&dir).unwrap();
    let dir_arg = dir.to_str().unwrap();
    let pages = every_page();

    let run = medmig(&["man", "--out-dir", dir_arg]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    let mut expected: Vec<String> = pages.iter().map(|p| format!("{}.1", p.name)).collect();
    expected.sort();
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(entries(), expected);
    for page in &pages {
        let written = std::fs::read_to_string(dir.join(format!("{}.1", page.name))).unwrap();
        assert_eq!(written, man_page(page), "{}", page.name);
    }

    let line = medmig(&["man", "--out-dir", dir_arg])
        .single_error()
        .to_string();
    let held = format!("already holds {} of medmig's man pages", pages.len());
    assert!(line.contains(&held) && line.contains("--force"), "{line}");
    for name in expected.iter().filter(|name| *name != "medmig-status.1") {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    std::fs::write(dir.join("medmig-status.1"), "kept").unwrap();
    let line = medmig(&["man", "--out-dir", dir_arg])
        .single_error()
        .to_string();
    assert!(
        line.contains("medmig-status.1 already exists") && line.contains("--force"),
        "{line}"
    );
    assert_eq!(
        entries(),
        ["medmig-status.1"],
        "nothing written, nothing left behind"
    );
    let kept = std::fs::read_to_string(dir.join("medmig-status.1")).unwrap();
    assert_eq!(kept, "kept");

    let run = medmig(&["man", "--out-dir", dir_arg, "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(entries(), expected);
    let replaced = std::fs::read_to_string(dir.join("medmig-status.1")).unwrap();
    let status = pages
        .iter()
        .find(|page| page.name == "medmig-status")
        .unwrap();
    assert_eq!(replaced, man_page(status));

    let missing = dir.join("missing");
    let line = medmig(&["man", "--out-dir", missing.to_str().unwrap()])
        .single_error()
        .to_string();
    assert!(line.contains("does not exist"), "{line}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What `--version` must print after `medmig `: the version in Cargo.toml, the commit
/// (`MEDMIG_COMMIT` when the build was given one, else git's HEAD when the package is a work
/// tree of its own, else `unknown`) and the newest release of the embedded manifest.
fn long_version() -> String {
    let commit = match option_env!("MEDMIG_COMMIT").filter(|c| !c.trim().is_empty()) {
        Some(commit) => commit.trim().to_string(),
        None => head_commit().unwrap_or_else(|| "unknown".to_string()),
    };
    let manifest = Manifest::embedded();
    let newest = manifest
        .newest_release()
        .expect("the manifest names a release");
    format!(
        "{} (commit {commit}, Medplum releases up to {newest})",
        env!("CARGO_PKG_VERSION")
    )
}

/// `git rev-parse --short=12 HEAD` of this package, when it is the top of a git work tree.
fn head_commit() -> Option<String> {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args(args)
            .current_dir(package)
            .output()
            .ok()
            .filter(|output| output.status.success())?;
        Some(text(&output.stdout).trim().to_string())
    };
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != package.canonicalize().ok()? {
        return None;
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

#[test]
fn version_names_the_commit_and_the_manifests_newest_release() {
    let expected = long_version();
    let commit = expected
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap();
    let hex = commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit());
    assert!(
        hex || commit == "unknown" || option_env!("MEDMIG_COMMIT").is_some(),
        "{commit}"
    );

    let run = medmig(&["--version"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, format!("medmig {expected}\n"));
    // -V is the version alone, for scripts.
    let run = medmig(&["-V"]);
    assert_eq!(
        run.stdout,
        format!("medmig {}\n", env!("CARGO_PKG_VERSION"))
    );
    // Commands inherit it.
    let run = medmig(&["schema", "diff", "--version"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.ends_with(&format!(" {expected}\n")), "{run:?}");
}
