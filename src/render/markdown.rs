//! Markdown for support tickets: the recovery steps and the upgrade plan, with commands in
//! fenced blocks so they paste cleanly.

use std::io::Write;

use anyhow::Result;

use super::{timestamp, ReportSource};
use crate::analyze::recover::Step;
use crate::analyze::upgrade::version_ranges as versions;
use crate::analyze::upgrade::UpgradePlan;

fn heading(out: &mut impl Write, title: &str, source: &ReportSource) -> Result<()> {
    writeln!(out, "## {title}\n")?;
    writeln!(
        out,
        "Database `{}` on `{}:{}`, PostgreSQL {}, read at {} by medmig {}.\n",
        source.database,
        source.host,
        source.port,
        source.server_version,
        timestamp(&source.taken_at),
        env!("CARGO_PKG_VERSION")
    )?;
    Ok(())
}

/// The recovery steps as a numbered Markdown list.
pub fn recover(out: &mut impl Write, source: &ReportSource, steps: &[Step]) -> Result<()> {
    heading(out, "Recovery plan", source)?;
    for step in steps {
        writeln!(
            out,
            "{}. **{}** (`{}`, risk: {})",
            step.step,
            step.title,
            step.id,
            step.risk.as_str()
        )?;
        for evidence in &step.evidence {
            writeln!(out, "   - Evidence: {evidence}")?;
        }
        writeln!(out, "   - Why: {}", step.explanation)?;
        if !step.commands.is_empty() {
            writeln!(out, "\n   ```sh")?;
            for command in &step.commands {
                writeln!(out, "   {command}")?;
            }
            writeln!(out, "   ```\n")?;
        }
        writeln!(out, "   - Check: {}\n", step.check)?;
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
        writeln!(out, "Deployed release inferred as {how}.\n")?;
    }
    match &plan.direct_deploy_refused {
        Some(message) => writeln!(
            out,
            "Deploying {} now would be refused:\n\n> {message}\n",
            plan.to
        )?,
        None => writeln!(out, "Deploying {} now would start.\n", plan.to)?,
    }
    writeln!(out, "The gate predictions assume: {}.\n", plan.gate_assumes)?;
    for finding in &plan.findings {
        writeln!(
            out,
            "> **{}** ({}): {}\n",
            finding.severity.as_str(),
            finding.id,
            finding.message
        )?;
    }
    for hop in &plan.hops {
        writeln!(
            out,
            "{}. **Deploy {}** ({})",
            hop.step, hop.release, hop.pick
        )?;
        writeln!(
            out,
            "   - Complete first: {}",
            versions(&hop.complete_before)
        )?;
        if let Some(gate) = &hop.gate_if_deployed_now {
            writeln!(out, "   - Deployed now it would refuse: `{gate}`")?;
        } else if let Some(first) = hop.restart_refused_on.first() {
            writeln!(
                out,
                "   - Deployed now it starts, but a restart is refused once v{first} is pending ({} not run)",
                versions(&hop.restart_refused_on)
            )?;
        }
        writeln!(out, "   - Then runs: {}", versions(&hop.introduces))?;
        writeln!(out, "   - Rollback window: {}", hop.rollback_window)?;
    }
    for note in &plan.notes {
        writeln!(out, "\n> Note: {note}")?;
    }
    Ok(())
}
