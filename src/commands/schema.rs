//! `medmig schema capture` and `medmig schema diff`: the schema contract on its own.

use std::io::Write;

use anyhow::{anyhow, Result};

use crate::analyze::compat::diff as compare;
use crate::analyze::Impact;
use crate::catalog::SchemaCapture;
use crate::catalog::CAPTURE_FORMAT_VERSION;
use crate::cli::{Format, SchemaCaptureArgs, SchemaDiffArgs};
use crate::outfile::Destination;
use crate::render;
use crate::text::count;

/// Writes the schema contract of the input (live or a snapshot) to `--out`, checked before
/// the input is read.
pub fn capture(args: &SchemaCaptureArgs) -> Result<u8> {
    let destination = Destination::open(&args.out.path, args.out.force)?;
    let capture = current_schema(&args.input)?;
    let shown = destination.to_string();
    destination.write_with(|out| capture.write(out))?;
    super::note(format_args!(
        "wrote {shown} ({}, {}, {})",
        count(capture.schema.tables.len(), "table", "tables"),
        count(capture.schema.functions.len(), "function", "functions"),
        count(capture.schema.extensions.len(), "extension", "extensions")
    ));
    super::end_with(capture);
    Ok(0)
}

/// Compares the input's schema with `--baseline`; exit 1 when a difference is a blocker.
pub fn diff(args: &SchemaDiffArgs, out: &mut impl Write) -> Result<u8> {
    let baseline = SchemaCapture::read_baseline(&args.baseline)?;
    let current = current_schema(&args.input)?;
    let differences = compare(&baseline.schema, &current.schema);
    let mut rendered = Vec::new();
    match args.output.format {
        Format::Table => render::table::schema_diff(&mut rendered, &differences)?,
        Format::Json => {
            render::json::schema_diff(&mut rendered, &baseline, &current, &differences)?
        }
        Format::Csv => render::csv::schema_diff(&mut rendered, &differences)?,
    }
    out.write_all(&rendered)?;
    out.flush()?;
    Ok(u8::from(
        differences.iter().any(|d| d.impact == Impact::Blocker),
    ))
}

/// The schema of the input, as a capture.
fn current_schema(input: &crate::cli::InputArgs) -> Result<SchemaCapture> {
    let snapshot = super::load_schema_input(input)?;
    let schema = snapshot.schema.ok_or_else(|| {
        anyhow!("the snapshot carries no schema (taken by an older medmig): take it again")
    })?;
    Ok(SchemaCapture {
        format_version: CAPTURE_FORMAT_VERSION,
        medmig_version: env!("CARGO_PKG_VERSION").to_string(),
        captured_at: snapshot.taken_at,
        source: snapshot.source,
        schema: std::sync::Arc::unwrap_or_clone(schema),
    })
}
