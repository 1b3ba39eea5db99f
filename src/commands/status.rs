//! `medmig status`: where every migration stands.

use std::io::Write;

use anyhow::Result;

use crate::cli::{Format, StatusArgs};
use crate::render;

/// Runs the command; the result is the exit code (1 when `--fail-on` matched).
pub fn run(args: &StatusArgs, out: &mut impl Write) -> Result<u8> {
    let analyzed = super::load_and_analyze(
        &args.input,
        &args.manifest,
        args.stale_after,
        args.evidence.server_statement_timeout,
    )?;
    let (source, report) = (&analyzed.source, &analyzed.status);
    let mut rendered = Vec::new();
    match args.output.format {
        Format::Table => render::table::status(&mut rendered, source, report, args.all)?,
        Format::Json => render::json::status(&mut rendered, source, report)?,
        Format::Csv => render::csv::status(&mut rendered, report)?,
    }
    out.write_all(&rendered)?;
    out.flush()?;

    let failing = report
        .migrations
        .iter()
        .any(|m| args.fail_on.contains(&m.state));
    Ok(u8::from(failing))
}
