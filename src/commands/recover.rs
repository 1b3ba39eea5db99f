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
    let steps = recover(
        &analyzed.snapshot,
        &analyzed.status,
        &analyzed.manifest,
        &RecoverOptions {
            deploying: args.deploying.clone(),
            config: config.as_ref().map(MedplumConfig::defer_settings),
            gate: super::gate_settings(&args.gate, config.as_ref()),
        },
    );
    let source = &analyzed.source;
    let mut rendered = Vec::new();
    match args.output.format {
        PlanFormat::Table => render::table::recover(&mut rendered, source, &steps)?,
        PlanFormat::Json => render::json::recover(&mut rendered, source, &steps)?,
        PlanFormat::Markdown => render::markdown::recover(&mut rendered, source, &steps)?,
    }
    out.write_all(&rendered)?;
    out.flush()?;
    Ok(0)
}
