//! The JSON format: one document with `"format_version": 1`, snake_case fields and RFC 3339
//! UTC timestamps.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::ReportSource;
use crate::analyze::migrations::StatusReport;

/// The JSON format version of every report.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct StatusDocument<'a> {
    format_version: u32,
    source: &'a ReportSource,
    #[serde(flatten)]
    report: &'a StatusReport,
}

/// Writes the status report as one JSON document followed by a newline.
pub fn status(out: &mut impl Write, source: &ReportSource, report: &StatusReport) -> Result<()> {
    let document = StatusDocument {
        format_version: FORMAT_VERSION,
        source,
        report,
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)?;
    Ok(())
}
