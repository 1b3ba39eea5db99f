//! medmig: audit and recover the migration state of a Medplum server's PostgreSQL database.
//!
//! Data flows one way: a source (`sources/`: the live database, or a snapshot file) →
//! [`snapshot::Snapshot`] → `analyze` → `render`. This file only dispatches commands; `main.rs`
//! turns the result into an exit code.

pub mod analyze;
pub mod bundle;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod diagnostics;
pub mod limits;
pub mod medplum;
pub mod nodetree;
pub mod outfile;
pub mod render;
pub mod snapshot;
pub mod sources;
pub mod text;

use std::sync::LazyLock;

use anyhow::Result;

use cli::{Cli, Command};

/// The command line as medmig parses it ([`cli::command`] with the ids of the checks, and the
/// long version).
pub fn command() -> clap::Command {
    let ids: Vec<&str> = analyze::rollback::ignorable_ids().collect();
    cli::command(&ids).long_version(LONG_VERSION.as_str())
}

/// What `medmig --version` prints after the name: the version, the commit medmig was built
/// from (see `build.rs`) and the newest release the embedded manifest describes, the three
/// things a bug report needs. `-V` prints the version alone, for scripts.
static LONG_VERSION: LazyLock<String> = LazyLock::new(|| {
    let manifest = medplum::manifest::Manifest::embedded();
    let newest = manifest
        .newest_release()
        .map_or_else(|| "unknown".to_string(), ToString::to_string);
    format!(
        "{} (commit {}, Medplum releases up to {newest})",
        env!("CARGO_PKG_VERSION"),
        env!("MEDMIG_BUILD_COMMIT"),
    )
});

/// Runs one command; returns the exit code for a command that ran (0, 1 or 3). An error means
/// the command could not run (exit code 2).
pub fn run(cli: &Cli) -> Result<u8> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match &cli.command {
        Command::Status(args) => commands::status::run(args, &mut out),
        Command::Snapshot(args) => commands::snapshot::run(args),
        Command::RollbackCheck(args) => commands::rollback_check::run(args, &mut out),
        Command::Bundle(args) => commands::bundle::run(args, &mut out),
        Command::UpgradePlan(args) => commands::upgrade_plan::run(args, &mut out),
        Command::Recover(args) => commands::recover::run(args, &mut out),
        Command::Report(args) => commands::report::run(args),
        Command::Schema(cli::SchemaCommand::Capture(args)) => commands::schema::capture(args),
        Command::Schema(cli::SchemaCommand::Diff(args)) => commands::schema::diff(args, &mut out),
        Command::Wait(args) => commands::wait::run(args, &mut out),
        Command::Completions(args) => commands::completions::run(args, &mut out),
        Command::Man(args) => commands::man::run(args, &mut out),
    }
}
