//! `medmig upgrade-plan`: the releases to deploy, in order, and what must finish at each.

use std::io::Write;

use anyhow::{anyhow, bail, Result};

use crate::analyze::migrations::infer_from;
use crate::analyze::upgrade::{plan, PlanRefusal};
use crate::cli::{PlanFormat, UpgradePlanArgs};
use crate::render;

/// Plans and prints; exit 0 (a plan that cannot be made is an error, exit 2).
pub fn run(args: &UpgradePlanArgs, out: &mut impl Write) -> Result<u8> {
    let config = super::medplum_config(&args.input.connect)?;
    let gate = super::gate_settings(&args.gate, config.as_ref());
    let analyzed = super::load_and_analyze(
        &args.input,
        &args.manifest,
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_secs(60),
    )?;
    analyzed.snapshot.require_complete("upgrade-plan")?;
    let (status, manifest, source) = (&analyzed.status, &analyzed.manifest, &analyzed.source);
    let catalogue = &analyzed.catalogue;
    let (from, inferred_by) = match &args.from {
        Some(from) => (from.clone(), None),
        None => match infer_from(status, manifest) {
            (Some(from), how) => (from, how),
            (None, _) => bail!(
                "the deployed release cannot be inferred (no job names its server and no \
                 migration is applied): pass --from with the release deployed now"
            ),
        },
    };
    // One release runs every database: each shard's plan starts from the same one.
    let make = |_: &crate::snapshot::Snapshot, status: &_| {
        plan(
            status,
            manifest,
            Some(catalogue),
            &from,
            inferred_by.clone(),
            &args.to,
            gate,
        )
        .map_err(|refusal| match refusal {
            PlanRefusal::Rollback { from, to } => anyhow!(
                "{to} is older than the deployed {from}: that is a rollback, not an upgrade; \
                 check it with `medmig rollback-check --to {to} --from {from}`"
            ),
        })
    };
    let global = make(&analyzed.snapshot, status)?;
    let shards = super::per_shard::plans(
        &analyzed,
        &global,
        super::status_options(
            analyzed.snapshot.taken_at,
            std::time::Duration::from_secs(3600),
            std::time::Duration::from_secs(60),
        ),
        "upgrade-plan",
        make,
    );
    let format = args.output.format;
    let mut rendered = Vec::new();
    super::per_shard::write(
        &mut rendered,
        format,
        source,
        &global,
        &shards,
        |out, source, plan| match format {
            PlanFormat::Table => render::table::upgrade_plan(out, source, plan),
            PlanFormat::Json => render::json::upgrade_plan(out, source, plan),
            PlanFormat::Markdown => render::markdown::upgrade_plan(out, source, plan),
        },
    )?;
    out.write_all(&rendered)?;
    out.flush()?;
    Ok(0)
}
