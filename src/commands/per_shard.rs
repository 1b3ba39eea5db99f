//! The plans of a sharded deployment (`upgrade-plan`, `recover`): the global database's, and
//! each shard's where it differs from it (the common case is that none does), since every
//! shard has its own `"DatabaseMigration"` row, jobs and startup gate.
//!
//! This module owns the comparison and how the shards follow the global plan in each format;
//! the plans themselves come from `analyze/`, their text from `render/`.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::Analyzed;
use crate::analyze::migrations::{analyze, StatusReport};
use crate::cli::PlanFormat;
use crate::render::ReportSource;
use crate::snapshot::Snapshot;

/// One shard's plan, as it compares with the global database's.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "comparison")]
pub enum ShardPlan<T> {
    /// The same plan as the global database's.
    Same,
    /// Another plan.
    Different {
        #[serde(skip)]
        source: ReportSource,
        plan: T,
    },
    /// The shard's plan is not known: it was not read, or not completely.
    NotKnown { why: String },
}

/// Every shard's plan: `make` builds one from a shard's snapshot and status, as it built
/// `global` from the global database's.
pub fn plans<T: Serialize>(
    analyzed: &Analyzed,
    global: &T,
    options: crate::analyze::migrations::StatusOptions,
    command: &str,
    make: impl Fn(&Snapshot, &StatusReport) -> Result<T>,
) -> Vec<(String, ShardPlan<T>)> {
    let global_json = serde_json::to_value(global).ok();
    analyzed
        .snapshot
        .databases()
        .into_iter()
        .skip(1)
        .map(|(id, read)| {
            let plan = match read {
                Err(why) => ShardPlan::NotKnown {
                    why: format!("the shard was not read: {why}"),
                },
                Ok(shard) => match shard
                    .require_readable()
                    .and_then(|()| shard.require_complete(command))
                {
                    Err(err) => ShardPlan::NotKnown {
                        why: format!("{err:#}"),
                    },
                    Ok(()) => {
                        let status = analyze(
                            shard,
                            &analyzed.manifest,
                            &analyzed.catalogue,
                            crate::analyze::migrations::StatusOptions {
                                now: shard.taken_at,
                                ..options
                            },
                        );
                        match make(shard, &status) {
                            Err(err) => ShardPlan::NotKnown {
                                why: format!("{err:#}"),
                            },
                            Ok(plan) if serde_json::to_value(&plan).ok() == global_json => {
                                ShardPlan::Same
                            }
                            Ok(plan) => ShardPlan::Different {
                                source: ReportSource::of(
                                    shard,
                                    analyzed.source.kind,
                                    analyzed.source.file.clone(),
                                    &analyzed.source.manifest,
                                ),
                                plan,
                            },
                        }
                    }
                },
            };
            (id.to_string(), plan)
        })
        .collect()
}

/// Writes the global plan (`write_one`) and after it each shard's, in `format`: a line for a
/// shard with the same plan or none known, the whole plan for one that differs. JSON: the
/// global document with `shards` added, each `{"id", "comparison": "same" | "different"
/// (with `plan`) | "not_known" (with `why`)}`.
pub fn write<T: Serialize>(
    out: &mut impl Write,
    format: PlanFormat,
    source: &ReportSource,
    global: &T,
    shards: &[(String, ShardPlan<T>)],
    write_one: impl Fn(&mut Vec<u8>, &ReportSource, &T) -> Result<()>,
) -> Result<()> {
    let mut rendered = Vec::new();
    write_one(&mut rendered, source, global)?;
    if shards.is_empty() {
        out.write_all(&rendered)?;
        return Ok(());
    }
    if format == PlanFormat::Json {
        let mut document: serde_json::Value = serde_json::from_slice(&rendered)?;
        let listed: Vec<serde_json::Value> = shards
            .iter()
            .map(|(id, plan)| {
                let mut value = serde_json::to_value(plan).unwrap_or_default();
                value["id"] = serde_json::Value::from(id.as_str());
                value
            })
            .collect();
        document["shards"] = serde_json::Value::from(listed);
        crate::render::json::write_pretty(out, &document)?;
        writeln!(out)?;
        return Ok(());
    }
    out.write_all(&rendered)?;
    let heading = match format {
        PlanFormat::Markdown => "## ",
        _ => "",
    };
    for (id, plan) in shards {
        writeln!(out)?;
        let line = match plan {
            ShardPlan::Same => format!("{heading}Shard {id}: the same as the global database"),
            ShardPlan::NotKnown { why } => format!("{heading}Shard {id}: not known: {why}"),
            ShardPlan::Different { .. } => {
                format!("{heading}Shard {id}: differs from the global database")
            }
        };
        out.write_all(crate::text::escape_controls(&line).as_bytes())?;
        writeln!(out)?;
        if let ShardPlan::Different { source, plan } = plan {
            writeln!(out)?;
            let mut theirs = Vec::new();
            write_one(&mut theirs, source, plan)?;
            out.write_all(&theirs)?;
        }
    }
    Ok(())
}
