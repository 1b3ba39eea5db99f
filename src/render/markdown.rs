//! Markdown for support tickets: the recovery steps and the upgrade plan, with commands in
//! fenced blocks so they paste cleanly.

use std::io::Write;

use anyhow::Result;

use super::{timestamp, ReportSource};
use crate::analyze::recover::Step;
use crate::analyze::upgrade::version_ranges as versions;
use crate::analyze::upgrade::UpgradePlan;

fn heading(out: &mut impl Write, title: &str, source: &ReportSource) -> Result<()> {
    writeln_escaped!(out, "## {title}")?;
    writeln!(out)?;
    writeln_escaped!(
        out,
        "Database `{}` on `{}:{}`, PostgreSQL {}, read at {} by medmig {}.",
        source.database,
        source.host,
        source.port,
        source.server_version,
        timestamp(&source.taken_at),
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(out)?;
    Ok(())
}

/// The recovery steps as a numbered Markdown list.
pub fn recover(out: &mut impl Write, source: &ReportSource, steps: &[Step]) -> Result<()> {
    heading(out, "Recovery plan", source)?;
    for step in steps {
        writeln_escaped!(
            out,
            "{}. **{}** (`{}`, risk: {})",
            step.step,
            step.title,
            step.id,
            step.risk.as_str()
        )?;
        for evidence in &step.evidence {
            writeln_escaped!(out, "   - Evidence: {evidence}")?;
        }
        writeln_escaped!(out, "   - Why: {}", step.explanation)?;
        if !step.commands.is_empty() {
            writeln!(out, "\n   ```sh")?;
            for command in &step.commands {
                writeln_escaped!(out, "   {command}")?;
            }
            writeln!(out, "   ```\n")?;
        }
        writeln_escaped!(out, "   - Check: {}", step.check)?;
        writeln!(out)?;
    }
    Ok(())
}

/// The upgrade plan as a Markdown list of hops.
pub fn upgrade_plan(out: &mut impl Write, source: &ReportSource, plan: &UpgradePlan) -> Result<()> {
    heading(
        out,
        &format!("Upgrade plan {} → {}", plan.from, plan.to),
        source,
    )?;
    if let Some(how) = &plan.from_inferred_by {
        writeln_escaped!(out, "Deployed release inferred as {how}.")?;
        writeln!(out)?;
    }
    match &plan.direct_deploy_refused {
        Some(message) => {
            writeln_escaped!(out, "Deploying {} now would be refused:", plan.to)?;
            writeln!(out)?;
            writeln_escaped!(out, "> {message}")?;
        }
        None => writeln_escaped!(out, "Deploying {} now would start.", plan.to)?,
    }
    writeln!(out)?;
    writeln_escaped!(out, "The gate predictions assume: {}.", plan.gate_assumes)?;
    writeln!(out)?;
    for finding in &plan.findings {
        writeln_escaped!(
            out,
            "> **{}** ({}): {}",
            finding.severity.as_str(),
            finding.id,
            finding.message
        )?;
        writeln!(out)?;
    }
    for hop in &plan.hops {
        writeln_escaped!(
            out,
            "{}. **Deploy {}** ({})",
            hop.step,
            hop.release,
            hop.pick
        )?;
        writeln_escaped!(
            out,
            "   - Complete first: {}",
            versions(&hop.complete_before)
        )?;
        if let Some(gate) = &hop.gate_if_deployed_now {
            writeln_escaped!(out, "   - Deployed now it would refuse: `{gate}`")?;
        } else if let Some(first) = hop.restart_refused_on.first() {
            writeln_escaped!(
                out,
                "   - Deployed now it starts, but a restart is refused once v{first} is pending ({} not run)",
                versions(&hop.restart_refused_on)
            )?;
        }
        writeln_escaped!(out, "   - Then runs: {}", versions(&hop.introduces))?;
        writeln_escaped!(out, "   - Rollback window: {}", hop.rollback_window)?;
        for work in &hop.work {
            writeln_escaped!(out, "   - v{}: {}", work.version, work.summary)?;
        }
    }
    for note in &plan.notes {
        writeln!(out)?;
        writeln_escaped!(out, "> Note: {note}")?;
    }
    Ok(())
}
