//! The JSON format: one document with `"format_version": 1`, snake_case fields and RFC 3339
//! UTC timestamps. No control character is written raw: serde_json escapes the C0 controls,
//! [`write_pretty`] the rest of [`needs_escape`].

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

use super::ReportSource;
use crate::analyze::compat::SchemaDifference;
use crate::analyze::migrations::StatusReport;
use crate::analyze::recover::Step;
use crate::analyze::rollback::RollbackReport;
use crate::analyze::upgrade::UpgradePlan;
use crate::analyze::Impact;
use crate::catalog::SchemaCapture;
use crate::snapshot::SnapshotSource;
use crate::text::needs_escape;

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
    write_pretty(out, &document)?;
    writeln!(out)?;
    Ok(())
}

/// `serde_json::to_writer_pretty`, with DEL, the C1 controls and the bidirectional overrides
/// escaped as `\uXXXX` too (serde_json writes them raw): a report piped to a terminal is as
/// inert as the table, and parses to the same values.
pub fn write_pretty(out: &mut impl Write, value: &impl Serialize) -> Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(out, Inert(PrettyFormatter::new()));
    value.serialize(&mut serializer)?;
    Ok(())
}

/// serde_json's pretty layout; strings with every character of [`needs_escape`] escaped.
struct Inert(PrettyFormatter<'static>);

impl Formatter for Inert {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if needs_escape(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(writer)
    }
}

/// Writes the status report.
pub fn status(out: &mut impl Write, source: &ReportSource, report: &StatusReport) -> Result<()> {
    document(out, source, report)
}

/// Writes the status of a sharded deployment: the global database's report, with every
/// shard's beside it under `shards`, and `shard_summary`.
pub fn deployment_status(
    out: &mut impl Write,
    source: &ReportSource,
    report: &StatusReport,
    shards: &[crate::analyze::shards::ShardStatus],
) -> Result<()> {
    #[derive(Serialize)]
    struct Deployment<'a> {
        #[serde(flatten)]
        report: &'a StatusReport,
        shards: &'a [crate::analyze::shards::ShardStatus],
        shard_summary: String,
    }
    document(
        out,
        source,
        &Deployment {
            report,
            shards,
            shard_summary: crate::analyze::shards::summary(shards),
        },
    )
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
    write_pretty(out, &document)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_control_character_is_written_raw_and_values_survive() {
        let hostile = "a\u{1b}[2J\r\nerror: all good\u{7f}\u{9b}31m\u{202e}gpj.exe\u{2066}";
        let value =
            serde_json::json!({ hostile: [hostile, 1, {"nested": hostile}], "plain": "ok" });
        let mut written = Vec::new();
        write_pretty(&mut written, &value).unwrap();
        let text = String::from_utf8(written).unwrap();
        assert!(
            !text.chars().any(|c| needs_escape(c) && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains(r"\u001b[2J\r\nerror: all good\u007f\u009b31m\u202egpj.exe\u2066"));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, value);
        // Without such characters, the layout is serde_json's own.
        let plain = serde_json::json!({"a": [1, {"b": "c"}], "d": {}});
        let mut written = Vec::new();
        write_pretty(&mut written, &plain).unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            serde_json::to_string_pretty(&plain).unwrap()
        );
    }
}
