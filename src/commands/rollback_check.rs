//! `medmig rollback-check`: SAFE / UNSAFE / UNKNOWN for going back to `--to`.

use std::io::Write;

use anyhow::{bail, Result};

use crate::analyze::rollback::{is_check_id, rollback_check_deployment, RollbackOptions};
use crate::catalog::SchemaCapture;
use crate::cli::{Format, RollbackCheckArgs};
use crate::medplum::config::MedplumConfig;
use crate::render;

/// Runs the checks; the exit code is the verdict's (0 SAFE, 1 UNSAFE, 3 UNKNOWN).
pub fn run(args: &RollbackCheckArgs, out: &mut impl Write) -> Result<u8> {
    if let Some(unknown) = args.ignore.iter().find(|id| !is_check_id(id)) {
        bail!(
            "--ignore {unknown}: no check has that id (`medmig rollback-check --help` lists them)"
        );
    }
    // Every file is read before the database is touched: a typo costs no round trip.
    let (manifest, catalogue) = super::load_knowledge(&args.manifest)?;
    let baseline = args
        .baseline
        .as_deref()
        .map(SchemaCapture::read_baseline)
        .transpose()?;
    let config = super::medplum_config(&args.input.connect)?;
    let (snapshot, mut source) = super::load_input(&args.input)?;
    source.manifest = manifest.origin.clone();

    let options = RollbackOptions {
        to: args.to.clone(),
        from: args.from.clone(),
        baseline: baseline.as_ref().map(|b| &b.schema),
        config: config.as_ref().map(MedplumConfig::defer_settings),
        ignore: &args.ignore,
        config_shards: config
            .as_ref()
            .map(|config| config.shards())
            .transpose()?
            .map(|shards| shards.into_iter().map(|(id, _)| id).collect()),
        status: super::status_options(
            snapshot.taken_at,
            std::time::Duration::from_secs(3600),
            args.evidence.server_statement_timeout,
        ),
    };
    let report = rollback_check_deployment(&snapshot, &manifest, &catalogue, &options);

    let mut rendered = Vec::new();
    match args.output.format {
        Format::Table => render::table::rollback(&mut rendered, &source, &report)?,
        Format::Json => render::json::rollback(&mut rendered, &source, &report)?,
        Format::Csv => render::csv::rollback(&mut rendered, &report)?,
    }
    out.write_all(&rendered)?;
    out.flush()?;
    Ok(report.verdict.exit_code())
}
