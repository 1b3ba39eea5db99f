//! `medmig recover`: ordered steps for what `status` finds.

use std::io::Write;

use anyhow::Result;
use chrono::Duration;

use crate::analyze::migrations::{analyze, StatusOptions};
use crate::analyze::recover::{recover, RecoverOptions};
use crate::cli::{PlanFormat, RecoverArgs};
use crate::medplum::config::MedplumConfig;
use crate::medplum::manifest::Manifest;
use crate::render;

/// Prints the steps; exit 0 whatever they are (they are advice, not a verdict).
pub fn run(args: &RecoverArgs, out: &mut impl Write) -> Result<u8> {
    let manifest = Manifest::load(args.manifest.manifest.as_deref())?;
    let config = args
        .input
        .connect
        .medplum_config
        .as_deref()
        .map(MedplumConfig::read)
        .transpose()?;
    let (snapshot, mut source) = super::load_input(&args.input)?;
    snapshot.require_readable()?;
    source.manifest = manifest.origin.clone();
    let status = analyze(
        &snapshot,
        &manifest,
        StatusOptions {
            now: snapshot.taken_at,
            stale_after: Duration::from_std(args.stale_after).unwrap_or(Duration::MAX),
        },
    );
    let steps = recover(
        &snapshot,
        &status,
        &manifest,
        &RecoverOptions {
            deploying: args.deploying.clone(),
            config: config.as_ref().map(MedplumConfig::defer_settings),
        },
    );
    let mut rendered = Vec::new();
    match args.output.format {
        PlanFormat::Table => render::table::recover(&mut rendered, &source, &steps)?,
        PlanFormat::Json => render::json::recover(&mut rendered, &source, &steps)?,
        PlanFormat::Markdown => render::markdown::recover(&mut rendered, &source, &steps)?,
    }
    out.write_all(&rendered)?;
    out.flush()?;
    Ok(0)
}
