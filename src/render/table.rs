//! The table format, for people: a header block, the migrations (long runs of plain
//! completed ones folded unless `--all`), invalid indexes, then the findings.

use std::io::Write;

use anyhow::Result;
use chrono::{DateTime, Utc};
use comfy_table::{ContentArrangement, Table};

use super::{timestamp, ReportSource};
use crate::analyze::compat::SchemaDifference;
use crate::analyze::migrations::{MigrationState, MigrationStatus, StatusReport};
use crate::analyze::recover::Step;
use crate::analyze::rollback::{Outcome, RollbackReport};
use crate::analyze::upgrade::{version_ranges as versions, UpgradePlan};
use crate::analyze::Impact;
use crate::text::{count, elapsed, escape_controls, shorten};

/// No borders and no column rules, a dashed line under the header (comfy-table's preset
/// alphabet): reads like `kubectl get` and survives any terminal or log viewer.
const PLAIN: &str = "     --            ";

/// Completed migrations with nothing to tell fold into one line from this many on.
const FOLD_FROM: usize = 3;

/// Writes the shards of a sharded deployment after the global database's status: one line
/// for a shard that stands where the global database does, its whole status for one that
/// differs, the reason for one not read, then one summary line. Nothing for a deployment of
/// one database.
pub fn shards(
    out: &mut impl Write,
    source: &ReportSource,
    shards: &[crate::analyze::shards::ShardStatus],
    all: bool,
) -> Result<()> {
    if shards.is_empty() {
        return Ok(());
    }
    for shard in shards {
        writeln!(out)?;
        match (&shard.status, &shard.gap) {
            (Some(report), _) if !shard.differences.is_empty() => {
                writeln_escaped!(
                    out,
                    "Shard {}: differs from the global database: {}",
                    shard.id,
                    shard.differences.join(", ")
                )?;
                writeln!(out)?;
                let mut theirs = source.clone();
                if let (Some(from), Some(at)) = (&shard.source, shard.taken_at) {
                    theirs.host.clone_from(&from.host);
                    theirs.port = from.port;
                    theirs.database.clone_from(&from.database);
                    theirs.user.clone_from(&from.user);
                    theirs.server_version.clone_from(&from.server_version);
                    theirs.taken_at = at;
                }
                status(out, &theirs, report, all)?;
            }
            (Some(report), _) => writeln_escaped!(
                out,
                "Shard {}: as the global database (dataVersion {})",
                shard.id,
                report
                    .post_deploy
                    .data_version
                    .map_or("unknown".to_string(), |v| v.to_string())
            )?,
            (None, gap) => writeln_escaped!(
                out,
                "Shard {}: not read: {}",
                shard.id,
                gap.as_deref().unwrap_or("no reason recorded")
            )?,
        }
    }
    writeln!(out)?;
    writeln_escaped!(
        out,
        "Deployment: {}",
        crate::analyze::shards::summary(shards)
    )?;
    Ok(())
}

/// Writes the status report as text tables.
pub fn status(
    out: &mut impl Write,
    source: &ReportSource,
    report: &StatusReport,
    all: bool,
) -> Result<()> {
    let origin = origin(source);
    let post = &report.post_deploy;
    let header = [
        (
            "Database",
            format!(
                "{} on {}:{} (user {})",
                source.database, source.host, source.port, source.user
            ),
        ),
        ("PostgreSQL", source.server_version.clone()),
        (
            "Read at",
            format!("{} ({origin})", timestamp(&source.taken_at)),
        ),
        (
            "Pre-deploy version",
            optional(report.pre_deploy.version.map(|v| format!("v{v}"))),
        ),
        (
            "Post-deploy version",
            optional(post.data_version.map(|v| format!("v{v} (dataVersion)"))),
        ),
        (
            "First boot",
            optional(
                post.first_boot
                    .map(|b| if b { "yes" } else { "no" }.to_string()),
            ),
        ),
        ("Next pending", next_pending(report)),
        ("Manifest", source.manifest.clone()),
    ];
    for (label, value) in header {
        writeln_escaped!(out, "{label:<20} {value}")?;
    }
    writeln!(out)?;

    let mut table = Table::new();
    table
        .load_preset(PLAIN)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header([
            "Migration",
            "State",
            "Introduced",
            "Required before",
            "Jobs",
            "Started",
            "Finished",
            "Duration",
            "Progress / error",
        ]);
    let migrations = &report.migrations;
    let mut i = 0;
    while i < migrations.len() {
        // A fold is a run of consecutive numbers: only migrations something names are listed.
        let first = migrations[i].version as usize;
        let run = migrations[i..]
            .iter()
            .enumerate()
            .take_while(|(k, m)| !all && plain_completed(m) && m.version as usize == first + k)
            .count();
        if run >= FOLD_FROM {
            let (first, last) = (migrations[i].version, migrations[i + run - 1].version);
            table.add_row([
                format!("v{first}–v{last}"),
                "completed".to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                format!("{run} migrations folded (--all lists them)"),
            ]);
            i += run;
            continue;
        }
        // Escaped before the layout, so that columns are measured as they are shown.
        table
            .add_row(migration_row(&migrations[i]).map(|cell| escape_controls(&cell).into_owned()));
        i += 1;
    }
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }

    if !report.invalid_indexes.is_empty() {
        writeln!(out, "\nInvalid indexes")?;
        for status in &report.invalid_indexes {
            let index = &status.found;
            writeln_escaped!(
                out,
                "  {}.{} on {}: {}{}",
                index.schema,
                index.index,
                index.table,
                index.definition,
                status
                    .created_by
                    .map(|v| format!(" (created by post-deploy migration v{v})"))
                    .unwrap_or_default()
            )?;
        }
    }
    if !report.findings.is_empty() {
        writeln!(out, "\nFindings")?;
        for finding in &report.findings {
            writeln_escaped!(
                out,
                "  {:<8} {:<26} {}",
                finding.severity.as_str(),
                finding.id,
                finding.message
            )?;
        }
    }
    Ok(())
}

/// `live`, `snapshot FILE` or `bundle FILE`.
fn origin(source: &ReportSource) -> String {
    match &source.file {
        Some(file) => format!("{} {file}", source.kind),
        None => source.kind.to_string(),
    }
}

fn optional(value: Option<String>) -> String {
    value.unwrap_or_else(|| "unknown".to_string())
}

fn next_pending(report: &StatusReport) -> String {
    let Some(pending) = report.post_deploy.pending else {
        return "none".to_string();
    };
    let Some(m) = report.migrations.iter().find(|m| m.version == pending) else {
        return format!("v{pending}");
    };
    let mut text = format!("v{pending} ({})", m.state.as_str());
    if let Some(introduced) = &m.server_version {
        text.push_str(&format!(", introduced in {introduced}"));
    }
    if let Some(before) = &m.required_before {
        text.push_str(&format!(", required before {before}"));
    }
    text
}

/// A completed migration whose row would say nothing more than "completed".
fn plain_completed(m: &MigrationStatus) -> bool {
    m.state == MigrationState::Completed
        && m.attempts <= 1
        && m.current.error.is_none()
        && m.detail.is_none()
}

fn migration_row(m: &MigrationStatus) -> [String; 9] {
    let c = &m.current;
    let jobs = match m.attempts {
        0 => String::new(),
        1 => "1".to_string(),
        n => format!("{n} ({} earlier)", n - 1),
    };
    let note = if let Some(detail) = &m.detail {
        shorten(detail, 90)
    } else if let Some(error) = &c.error {
        format!("error: {}", shorten(error, 80))
    } else {
        c.progress
            .as_deref()
            .map(|p| shorten(p, 80))
            .unwrap_or_default()
    };
    [
        format!("v{}", m.version),
        m.state.as_str().to_string(),
        m.server_version.clone().unwrap_or_default(),
        m.required_before.clone().unwrap_or_default(),
        jobs,
        short_time(c.started_at.or(c.requested_at)),
        short_time(c.finished_at),
        c.duration_seconds.map(elapsed).unwrap_or_default(),
        note,
    ]
}

fn short_time(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Writes the schema differences grouped by impact, with a one-line summary first.
pub fn schema_diff(out: &mut impl Write, differences: &[SchemaDifference]) -> Result<()> {
    let of = |impact| differences.iter().filter(|d| d.impact == impact).count();
    let blockers = of(Impact::Blocker);
    if blockers > 0 {
        writeln_escaped!(
            out,
            "BREAKING: {} would break code written against the baseline",
            count(blockers, "difference", "differences")
        )?;
    } else if differences.is_empty() {
        writeln!(out, "The schema matches the baseline.")?;
    } else {
        writeln!(
            out,
            "Compatible: nothing would break code written against the baseline."
        )?;
    }
    writeln_escaped!(
        out,
        "{}, {}, {} info",
        count(blockers, "blocker", "blockers"),
        count(of(Impact::Warning), "warning", "warnings"),
        of(Impact::Info)
    )?;
    for d in differences {
        writeln_escaped!(out, "  {:<8} {:<26} {}", d.impact.as_str(), d.id, d.message)?;
    }
    Ok(())
}

/// Writes the verdict on the first line, then where from and to, then every check with its
/// evidence.
pub fn rollback(
    out: &mut impl Write,
    source: &ReportSource,
    report: &RollbackReport,
) -> Result<()> {
    writeln_escaped!(out, "{}", report.headline)?;
    writeln!(out)?;
    let origin = origin(source);
    let from = match (&report.from, &report.from_inferred_by) {
        (Some(_), Some(how)) | (None, Some(how)) => how.clone(),
        (Some(from), None) => format!("{from} (--from)"),
        (None, None) => "unknown".to_string(),
    };
    for (label, value) in [
        (
            "Database",
            format!("{} on {}:{}", source.database, source.host, source.port),
        ),
        (
            "Read at",
            format!("{} ({origin})", timestamp(&source.taken_at)),
        ),
        ("Roll back to", report.to.clone()),
        ("Deployed", from),
        ("Manifest", source.manifest.clone()),
    ] {
        writeln_escaped!(out, "{label:<14} {value}")?;
    }
    writeln!(out)?;
    for check in &report.checks {
        let outcome = match check.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "skipped",
            Outcome::Ignored => "ignored",
            Outcome::Unknown => "UNKNOWN",
        };
        writeln_escaped!(
            out,
            "  {outcome:<8} {:<8} {:<26} {}",
            check.severity.as_str(),
            check.id,
            check.message
        )?;
        // A check over hundreds of objects (a migration that dropped a column of every
        // table) shows the first ones; JSON and CSV carry them all.
        for evidence in check.evidence.iter().take(EVIDENCE_SHOWN) {
            writeln_escaped!(out, "{:46}- {evidence}", "")?;
        }
        if check.evidence.len() > EVIDENCE_SHOWN {
            writeln!(
                out,
                "{:46}- … and {} more (--format json lists them all)",
                "",
                check.evidence.len() - EVIDENCE_SHOWN
            )?;
        }
    }
    Ok(())
}

/// Writes the upgrade plan: where from, the direct-deploy verdict, then each hop.
pub fn upgrade_plan(out: &mut impl Write, source: &ReportSource, plan: &UpgradePlan) -> Result<()> {
    let from = match &plan.from_inferred_by {
        Some(how) => format!("{} ({how})", plan.from),
        None => plan.from.clone(),
    };
    writeln_escaped!(
        out,
        "Upgrade {} → {} on {} ({})",
        plan.from,
        plan.to,
        source.database,
        origin(source)
    )?;
    writeln_escaped!(out, "{:<14} {from}", "Deployed")?;
    writeln_escaped!(out, "{:<14} v{}", "dataVersion", plan.data_version)?;
    match &plan.direct_deploy_refused {
        Some(message) => writeln_escaped!(
            out,
            "{:<14} refused: {message}",
            format!("Deploying {}", plan.to)
        )?,
        None => writeln_escaped!(out, "{:<14} would start", format!("Deploying {}", plan.to))?,
    }
    writeln_escaped!(out, "{:<14} {}", "Gate assumes", plan.gate_assumes)?;
    for finding in &plan.findings {
        writeln_escaped!(
            out,
            "{}: {} [{}]",
            finding.severity.as_str(),
            finding.message,
            finding.id
        )?;
    }
    for hop in &plan.hops {
        writeln!(out)?;
        writeln_escaped!(out, "{}. Deploy {} ({})", hop.step, hop.release, hop.pick)?;
        writeln_escaped!(
            out,
            "   complete first:  {}",
            versions(&hop.complete_before)
        )?;
        if let Some(gate) = &hop.gate_if_deployed_now {
            writeln_escaped!(out, "   deployed now:    refused: {gate}")?;
        } else if let Some(first) = hop.restart_refused_on.first() {
            writeln_escaped!(
                out,
                "   deployed now:    starts, but a restart is refused once v{first} is pending ({} not run)",
                versions(&hop.restart_refused_on)
            )?;
        }
        writeln_escaped!(out, "   then runs:       {}", versions(&hop.introduces))?;
        writeln_escaped!(out, "   rollback window: {}", hop.rollback_window)?;
        for work in &hop.work {
            writeln_escaped!(
                out,
                "   v{:<15} {}",
                format!("{}:", work.version),
                work.summary
            )?;
        }
    }
    for note in &plan.notes {
        writeln!(out)?;
        writeln_escaped!(out, "note: {note}")?;
    }
    Ok(())
}

/// The evidence lines the table shows under one check.
const EVIDENCE_SHOWN: usize = 20;

/// Writes the recovery steps, numbered, each with evidence, risk, commands and check.
pub fn recover(out: &mut impl Write, source: &ReportSource, steps: &[Step]) -> Result<()> {
    writeln_escaped!(
        out,
        "Recovery steps for {} on {}:{} ({})",
        source.database,
        source.host,
        source.port,
        origin(source)
    )?;
    for step in steps {
        writeln!(out)?;
        writeln_escaped!(
            out,
            "{}. {} [{}, risk {}]",
            step.step,
            step.title,
            step.id,
            step.risk.as_str()
        )?;
        for evidence in &step.evidence {
            writeln_escaped!(out, "   evidence: {evidence}")?;
        }
        writeln_escaped!(out, "   why:      {}", step.explanation)?;
        for command in &step.commands {
            writeln_escaped!(out, "   $ {command}")?;
        }
        writeln_escaped!(out, "   check:    {}", step.check)?;
    }
    Ok(())
}
