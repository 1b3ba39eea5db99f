//! `medmig status`: where every migration stands.

use std::io::Write;

use anyhow::Result;

use crate::analyze::migrations::MigrationState;
use crate::analyze::shards::{self, analyze_shards};
use crate::cli::{FailOnState, Format, StatusArgs};
use crate::render;

/// Runs the command; the result is the exit code (1 when `--fail-on` matched).
pub fn run(args: &StatusArgs, out: &mut impl Write) -> Result<u8> {
    let analyzed = super::load_and_analyze(
        &args.input,
        &args.manifest,
        args.stale_after,
        args.evidence.server_statement_timeout,
    )?;
    let shards = analyze_shards(
        &analyzed.snapshot,
        &analyzed.status,
        &analyzed.manifest,
        &analyzed.catalogue,
        super::status_options(
            analyzed.snapshot.taken_at,
            args.stale_after,
            args.evidence.server_statement_timeout,
        ),
    );
    let mut report = analyzed.status.clone();
    report.findings.extend(shards::findings(&shards));
    let source = &analyzed.source;
    let mut rendered = Vec::new();
    match args.output.format {
        Format::Table => {
            render::table::status(&mut rendered, source, &report, args.all)?;
            render::table::shards(&mut rendered, source, &shards, args.all)?;
        }
        Format::Json if shards.is_empty() => render::json::status(&mut rendered, source, &report)?,
        Format::Json => render::json::deployment_status(&mut rendered, source, &report, &shards)?,
        Format::Csv => render::csv::status(&mut rendered, &report, &shards)?,
    }
    out.write_all(&rendered)?;
    out.flush()?;

    // Any database of the deployment in a state of --fail-on.
    let failing = report
        .migrations
        .iter()
        .chain(
            shards
                .iter()
                .filter_map(|s| s.status.as_ref())
                .flat_map(|s| s.migrations.iter()),
        )
        .any(|m| args.fail_on.contains(&fail_on_state(m.state)));
    // A shard not read is unknown, all of it.
    let unread =
        shards.iter().any(|s| s.gap.is_some()) && args.fail_on.contains(&FailOnState::Unknown);
    Ok(u8::from(failing || unread))
}

/// The `--fail-on` value that names `state`; exhaustive, so a new state cannot be left out of
/// the flag.
pub fn fail_on_state(state: MigrationState) -> FailOnState {
    match state {
        MigrationState::Completed => FailOnState::Completed,
        MigrationState::Running => FailOnState::Running,
        MigrationState::Queued => FailOnState::Queued,
        MigrationState::Accepted => FailOnState::Accepted,
        MigrationState::Stale => FailOnState::Stale,
        MigrationState::Failed => FailOnState::Failed,
        MigrationState::Cancelled => FailOnState::Cancelled,
        MigrationState::Pending => FailOnState::Pending,
        MigrationState::Waiting => FailOnState::Waiting,
        MigrationState::Inconsistent => FailOnState::Inconsistent,
        MigrationState::Unknown => FailOnState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn every_state_is_a_fail_on_value_of_the_same_name() {
        let states = [
            MigrationState::Completed,
            MigrationState::Running,
            MigrationState::Queued,
            MigrationState::Accepted,
            MigrationState::Stale,
            MigrationState::Failed,
            MigrationState::Cancelled,
            MigrationState::Pending,
            MigrationState::Waiting,
            MigrationState::Inconsistent,
            MigrationState::Unknown,
        ];
        assert_eq!(states.len(), FailOnState::value_variants().len());
        for state in states {
            let value = fail_on_state(state).to_possible_value().unwrap();
            assert_eq!(value.get_name(), state.as_str());
        }
    }
}
