//! `medmig status`: where every migration stands.

use std::io::Write;

use anyhow::Result;
use chrono::Duration;

use crate::analyze::migrations::{analyze, StatusOptions};
use crate::cli::{Format, StatusArgs};
use crate::medplum::manifest::Manifest;
use crate::render;

/// Runs the command; the result is the exit code (1 when `--fail-on` matched).
pub fn run(args: &StatusArgs, out: &mut impl Write) -> Result<u8> {
    // The manifest is read first: a bad --manifest should not cost a database round trip.
    let manifest = Manifest::load(args.manifest.manifest.as_deref())?;
    let (snapshot, mut source) = super::load_input(&args.input)?;
    snapshot.require_readable()?;
    source.manifest = manifest.origin.clone();
    let options = StatusOptions {
        now: snapshot.taken_at,
        stale_after: Duration::from_std(args.stale_after).unwrap_or(Duration::MAX),
    };
    let report = analyze(&snapshot, &manifest, options);

    let mut rendered = Vec::new();
    match args.output.format {
        Format::Table => render::table::status(&mut rendered, &source, &report, args.all)?,
        Format::Json => render::json::status(&mut rendered, &source, &report)?,
        Format::Csv => render::csv::status(&mut rendered, &report)?,
    }
    out.write_all(&rendered)?;
    out.flush()?;

    let failing = report
        .migrations
        .iter()
        .any(|m| args.fail_on.contains(&m.state));
    Ok(u8::from(failing))
}
