//! `medmig recover`: ordered steps for what `status` finds.

use std::io::Write;

use anyhow::Result;

use crate::analyze::recover::{recover, RecoverOptions};
use crate::cli::{PlanFormat, RecoverArgs};
use crate::medplum::config::MedplumConfig;
use crate::render;

/// Prints the steps; exit 0 whatever they are (they are advice, not a verdict).
pub fn run(args: &RecoverArgs, out: &mut impl Write) -> Result<u8> {
    let config = super::medplum_config(&args.input.connect)?;
    let analyzed = super::load_and_analyze(
        &args.input,
        &args.manifest,
        args.stale_after,
        args.evidence.server_statement_timeout,
    )?;
    analyzed.snapshot.require_complete("recover")?;
    let options = RecoverOptions {
        deploying: args.deploying.clone(),
        config: config.as_ref().map(MedplumConfig::defer_settings),
        gate: super::gate_settings(&args.gate, config.as_ref()),
    };
    let make = |snapshot: &crate::snapshot::Snapshot, status: &_| {
        Ok(Steps {
            steps: recover(snapshot, status, &analyzed.manifest, &options),
        })
    };
    let steps = make(&analyzed.snapshot, &analyzed.status)?;
    let shards = super::per_shard::plans(
        &analyzed,
        &steps,
        super::status_options(
            analyzed.snapshot.taken_at,
            args.stale_after,
            args.evidence.server_statement_timeout,
        ),
        "recover",
        make,
    );
    let format = args.output.format;
    let mut rendered = Vec::new();
    super::per_shard::write(
        &mut rendered,
        format,
        &analyzed.source,
        &steps,
        &shards,
        |out, source, steps| match format {
            PlanFormat::Table => render::table::recover(out, source, &steps.steps),
            PlanFormat::Json => render::json::recover(out, source, &steps.steps),
            PlanFormat::Markdown => render::markdown::recover(out, source, &steps.steps),
        },
    )?;
    out.write_all(&rendered)?;
    out.flush()?;
    Ok(0)
}

/// One database's recovery steps.
#[derive(serde::Serialize)]
struct Steps {
    steps: Vec<crate::analyze::recover::Step>,
}
