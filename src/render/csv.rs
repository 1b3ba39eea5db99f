//! The CSV format: a header row, then one row per post-deploy migration with the same fields
//! as the JSON `migrations` entries (run history and findings are JSON-only).
//!
//! Fields are quoted by the `csv` crate where RFC 4180 needs it (a comma, a quote, a line
//! break); control characters from outside are escaped first ([`escape_controls`]), so that
//! every record is one line and no field can steer the terminal that shows it.

use std::io::Write;

use anyhow::Result;

use super::timestamp;
use crate::analyze::compat::SchemaDifference;
use crate::analyze::migrations::StatusReport;
use crate::analyze::rollback::RollbackReport;
use crate::text::escape_controls;

const HEADER: [&str; 15] = [
    "version",
    "state",
    "server_version",
    "required_before",
    "job_id",
    "job_status",
    "attempts",
    "requested_at",
    "started_at",
    "finished_at",
    "last_updated",
    "duration_seconds",
    "progress",
    "error",
    "detail",
];

/// Writes one row per migration; for a sharded deployment (`shards` not empty) a first
/// column `shard` names the database (`global` or the shard's id) and every shard read has
/// its rows after the global database's.
pub fn status(
    out: &mut impl Write,
    report: &StatusReport,
    shards: &[crate::analyze::shards::ShardStatus],
) -> Result<()> {
    let mut writer = ::csv::Writer::from_writer(out);
    let sharded = !shards.is_empty();
    let databases = std::iter::once((crate::snapshot::GLOBAL_SHARD, report)).chain(
        shards
            .iter()
            .filter_map(|s| s.status.as_ref().map(|status| (s.id.as_str(), status))),
    );
    let header = sharded.then_some("shard").into_iter().chain(HEADER);
    writer.write_record(header)?;
    for (shard, report) in databases {
        rows(&mut writer, sharded.then_some(shard), report)?;
    }
    // A shard not read: one row, its state unknown, its gap as the detail.
    for shard in shards.iter().filter(|s| s.status.is_none()) {
        let mut fields = vec![shard.id.as_str(), "", "unknown"];
        fields.extend(std::iter::repeat_n("", HEADER.len() - 3));
        fields.push(shard.gap.as_deref().unwrap_or("not read"));
        writer.write_record(record(fields))?;
    }
    writer.flush()?;
    Ok(())
}

fn rows(
    writer: &mut ::csv::Writer<&mut impl Write>,
    shard: Option<&str>,
    report: &StatusReport,
) -> Result<()> {
    for m in &report.migrations {
        let c = &m.current;
        let time = |t: &Option<chrono::DateTime<chrono::Utc>>| t.as_ref().map(timestamp);
        let fields: [Option<String>; 15] = [
            Some(m.version.to_string()),
            Some(m.state.as_str().to_string()),
            m.server_version.clone(),
            m.required_before.clone(),
            c.job_id.clone(),
            c.job_status.clone(),
            Some(m.attempts.to_string()),
            time(&c.requested_at),
            time(&c.started_at),
            time(&c.finished_at),
            time(&c.last_updated),
            c.duration_seconds.map(|d| format!("{d:.3}")),
            c.progress.clone(),
            c.error.clone(),
            m.detail.clone(),
        ];
        let fields = shard
            .into_iter()
            .chain(fields.iter().map(|f| f.as_deref().unwrap_or("")));
        writer.write_record(record(fields))?;
    }
    Ok(())
}

/// Writes one row per schema difference: `severity, id, object, message`.
pub fn schema_diff(out: &mut impl Write, differences: &[SchemaDifference]) -> Result<()> {
    let mut writer = ::csv::Writer::from_writer(out);
    writer.write_record(["severity", "id", "object", "message"])?;
    for d in differences {
        writer.write_record(record([d.impact.as_str(), d.id, &d.object, &d.message]))?;
    }
    writer.flush()?;
    Ok(())
}

/// Writes one row per check: `id, severity, outcome, message, evidence` (evidence joined
/// with ` | `).
pub fn rollback(out: &mut impl Write, report: &RollbackReport) -> Result<()> {
    let mut writer = ::csv::Writer::from_writer(out);
    writer.write_record(["id", "severity", "outcome", "message", "evidence"])?;
    for check in &report.checks {
        let outcome = serde_json::to_value(check.outcome)?;
        writer.write_record(record([
            check.id,
            check.severity.as_str(),
            outcome.as_str().unwrap_or_default(),
            &check.message,
            &check.evidence.join(" | "),
        ]))?;
    }
    writer.flush()?;
    Ok(())
}

/// The fields of one record with their control characters escaped.
fn record<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    fields
        .into_iter()
        .map(|field| escape_controls(field).into_owned())
        .collect()
}
