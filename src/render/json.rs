//! The JSON format: one document with `"format_version": 1`, snake_case fields and RFC 3339
//! UTC timestamps.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::ReportSource;
use crate::analyze::compat::SchemaDifference;
use crate::analyze::migrations::StatusReport;
use crate::analyze::recover::Step;
use crate::analyze::rollback::RollbackReport;
use crate::analyze::upgrade::UpgradePlan;
use crate::analyze::Impact;
use crate::catalog::SchemaCapture;
use crate::snapshot::SnapshotSource;

/// The JSON format version of every report.
pub const FORMAT_VERSION: u32 = 1;

/// A report with `format_version` and its source first.
#[derive(Serialize)]
struct Document<'a, T: Serialize> {
    format_version: u32,
    source: &'a ReportSource,
    #[serde(flatten)]
    report: &'a T,
}

/// Writes `report` as one JSON document followed by a newline.
fn document(out: &mut impl Write, source: &ReportSource, report: &impl Serialize) -> Result<()> {
    let document = Document {
        format_version: FORMAT_VERSION,
        source,
        report,
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)?;
    Ok(())
}

/// Writes the status report.
pub fn status(out: &mut impl Write, source: &ReportSource, report: &StatusReport) -> Result<()> {
    document(out, source, report)
}

/// Writes the upgrade plan.
pub fn upgrade_plan(out: &mut impl Write, source: &ReportSource, plan: &UpgradePlan) -> Result<()> {
    document(out, source, plan)
}

/// Writes the recovery steps as `{"steps": […]}`.
pub fn recover(out: &mut impl Write, source: &ReportSource, steps: &[Step]) -> Result<()> {
    #[derive(Serialize)]
    struct Steps<'a> {
        steps: &'a [Step],
    }
    document(out, source, &Steps { steps })
}

/// Writes the rollback verdict and its checks.
pub fn rollback(
    out: &mut impl Write,
    source: &ReportSource,
    report: &RollbackReport,
) -> Result<()> {
    document(out, source, report)
}

#[derive(Serialize)]
struct SchemaSide<'a> {
    captured_at: &'a chrono::DateTime<chrono::Utc>,
    source: &'a SnapshotSource,
}

#[derive(Serialize)]
struct ImpactCounts {
    blocker: usize,
    warning: usize,
    info: usize,
}

impl ImpactCounts {
    fn of(impacts: impl Iterator<Item = Impact>) -> ImpactCounts {
        let mut counts = ImpactCounts {
            blocker: 0,
            warning: 0,
            info: 0,
        };
        for impact in impacts {
            match impact {
                Impact::Blocker => counts.blocker += 1,
                Impact::Warning => counts.warning += 1,
                Impact::Info => counts.info += 1,
            }
        }
        counts
    }
}

#[derive(Serialize)]
struct SchemaDiffDocument<'a> {
    format_version: u32,
    baseline: SchemaSide<'a>,
    current: SchemaSide<'a>,
    summary: ImpactCounts,
    differences: &'a [SchemaDifference],
}

/// Writes the schema differences as one JSON document.
pub fn schema_diff(
    out: &mut impl Write,
    baseline: &SchemaCapture,
    current: &SchemaCapture,
    differences: &[SchemaDifference],
) -> Result<()> {
    let document = SchemaDiffDocument {
        format_version: FORMAT_VERSION,
        baseline: SchemaSide {
            captured_at: &baseline.captured_at,
            source: &baseline.source,
        },
        current: SchemaSide {
            captured_at: &current.captured_at,
            source: &current.source,
        },
        summary: ImpactCounts::of(differences.iter().map(|d| d.impact)),
        differences,
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)?;
    Ok(())
}
