//! The upgrade path: from the release deployed now to a target, one minor at a time, with
//! the post-deploy migrations that must complete before each hop, the server's startup gate
//! predicted as the server decides it (`medplum::gate`), the restart it would refuse later,
//! and where rollback windows open and close (`medmig upgrade-plan`).
//!
//! Pure: the status analysis and the manifest in, a plan out. The manifest names the release
//! that introduced each migration, not every release: an intermediate hop is "the latest
//! patch of that minor", and the release printed is only the lowest one medmig can name.

use std::collections::BTreeSet;

use semver::Version;
use serde::Serialize;

use super::migrations::{infer_from, MigrationState, StatusReport, ODD_NUMBER_FINDINGS};
use super::{Finding, Severity};
use crate::medplum::catalogue::{Catalogue, MigrationType};
use crate::medplum::gate::{
    predict, required_but_not_run, GatePrediction, GateSettings, MigrationRow,
};
use crate::medplum::manifest::Manifest;

/// One release to deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub step: usize,
    /// The release: the target itself, or the lowest release of an intermediate minor that
    /// medmig can name (deploy that minor's latest patch, which is at least this).
    pub release: String,
    /// What to actually pick: `the latest 4.3.x patch (at least 4.3.14)`, or `the target`.
    pub pick: String,
    /// Post-deploy migrations that must be completed before this release is deployed: every
    /// one up to the last it requires, so that it starts and restarts.
    pub complete_before: Vec<u32>,
    /// The startup gate's refusal if this release were deployed now, from the current state.
    pub gate_if_deployed_now: Option<String>,
    /// If it would start now: the migrations its code requires that have not run, whose
    /// pending turn makes a later restart refuse (the gate checks only the next one).
    pub restart_refused_on: Vec<u32>,
    /// Post-deploy migrations this release introduces that have not completed (they run after
    /// it starts unless deferred).
    pub introduces: Vec<u32>,
    /// What this hop does to the rollback window.
    pub rollback_window: String,
    /// What each migration to complete before it, or that it introduces, does (by the
    /// catalogue), each told at the first hop that names it: what the window will look like.
    pub work: Vec<MigrationWork>,
}

/// What one post-deploy migration will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationWork {
    pub version: u32,
    /// `custom`, `reindex`, `unknown`; `null` where the catalogue lacks it.
    pub migration_type: Option<MigrationType>,
    /// Whether it rewrites data as it goes (a backfill or a reindex): the long part.
    pub rewrites_data: bool,
    pub summary: String,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpgradePlan {
    pub from: String,
    pub from_inferred_by: Option<String>,
    pub to: String,
    /// `dataVersion` now.
    pub data_version: i64,
    /// What the gate predictions assume (strict version checks, `runMigrations`).
    pub gate_assumes: String,
    /// Deploying the target straight away: the startup gate's message, if it would refuse.
    pub direct_deploy_refused: Option<String>,
    /// Deploying the target straight away, if it starts: migrations it requires that have not
    /// run, on whose turn a restart is refused.
    pub direct_deploy_restart_refused_on: Vec<u32>,
    pub hops: Vec<Hop>,
    /// What the plan found wrong with its input (`from-contradicts-evidence`,
    /// `latent-gate-refusal`, …).
    pub findings: Vec<Finding>,
    /// What cannot be planned exactly (a target beyond the manifest, failed migrations, …).
    pub notes: Vec<String>,
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanRefusal {
    /// The target is older than the deployed release: that is a rollback.
    Rollback { from: Version, to: Version },
}

/// The state of `"DatabaseMigration"` as the gate reads it, from the status analysis.
pub fn migration_row(status: &StatusReport) -> MigrationRow {
    MigrationRow {
        data_version: status.post_deploy.data_version,
        first_boot: status.post_deploy.first_boot,
    }
}

/// `the latest 4.3.x patch (at least 4.3.14)`.
pub fn latest_patch_of(release: &Version) -> String {
    format!(
        "the latest {}.{}.x patch (at least {release})",
        release.major, release.minor
    )
}

/// Plans the upgrade from `from` (the deployed release, or a lower bound of it) to `to`; with
/// the catalogue, each hop says what its migrations will do.
pub fn plan(
    status: &StatusReport,
    manifest: &Manifest,
    catalogue: Option<&Catalogue>,
    from: &Version,
    from_inferred_by: Option<String>,
    to: &Version,
    gate: GateSettings,
) -> Result<UpgradePlan, PlanRefusal> {
    // The plan stands on these numbers; it says so rather than vouch for them.
    let mut findings: Vec<Finding> = status
        .findings
        .iter()
        .filter(|f| ODD_NUMBER_FINDINGS.contains(&f.id) || f.id == "odd-manifest-key")
        .cloned()
        .collect();
    let from = from.clone();
    if from_inferred_by.is_none() {
        // --from that contradicts the evidence: plan from what the evidence proves.
        if let (Some(lower), Some(how)) = infer_from(status, manifest) {
            if lower > from {
                findings.push(Finding::new(
                    "from-contradicts-evidence",
                    Severity::Warning,
                    format!(
                        "--from {from} contradicts the database: the deployed release is {how}; \
                         check --from (the plan below starts from {from} and leaves out the \
                         migrations already completed)"
                    ),
                ));
            }
        }
    }
    if to < &from {
        return Err(PlanRefusal::Rollback {
            from,
            to: to.clone(),
        });
    }
    let completed: BTreeSet<u32> = status
        .migrations
        .iter()
        .filter(|m| m.state == MigrationState::Completed)
        .map(|m| m.version)
        .collect();
    let data_version = status.post_deploy.data_version.unwrap_or(0);
    let row = migration_row(status);
    let mut notes = Vec::new();
    if !manifest.covers(to) {
        notes.push(format!(
            "{to} is newer than the manifest ({}): migrations it introduces are unknown; pass \
             --manifest from {to}",
            manifest
                .newest_release()
                .map_or("?".to_string(), ToString::to_string)
        ));
    }
    for m in &status.migrations {
        if matches!(
            m.state,
            MigrationState::Failed | MigrationState::Stale | MigrationState::Inconsistent
        ) {
            notes.push(format!(
                "v{} is {}: it must complete before any release that requires it (see `medmig recover`)",
                m.version,
                m.state.as_str()
            ));
        }
    }

    // The latest patch of the deployed minor (so that its migrations can run), every minor in
    // between, then the target itself.
    let mut releases: Vec<(Version, String)> = Vec::new();
    if let Some(latest) = manifest.newest_patch(from.major, from.minor) {
        if latest > &from && latest < to {
            releases.push((latest.clone(), latest_patch_of(latest)));
        }
    }
    for (major, minor) in manifest.minors_between(&from, to) {
        if (major, minor) == (to.major, to.minor) {
            break;
        }
        let release = manifest
            .newest_patch(major, minor)
            .cloned()
            .unwrap_or_else(|| Version::new(major, minor, 0));
        let pick = latest_patch_of(&release);
        releases.push((release, pick));
    }
    releases.push((to.clone(), "the target".to_string()));

    let deploy_now = |release: &Version| -> (Option<String>, Vec<u32>) {
        match predict(manifest, release, row, gate) {
            GatePrediction::Refuses { message, .. } => (Some(message), Vec::new()),
            GatePrediction::Starts { .. } => {
                (None, required_but_not_run(manifest, release, data_version))
            }
            GatePrediction::NotChecked { .. } => (None, Vec::new()),
        }
    };
    let (direct_deploy_refused, direct_deploy_restart_refused_on) = deploy_now(to);
    if let Some(first) = direct_deploy_restart_refused_on.first() {
        findings.push(Finding::about(
            *first,
            "latent-gate-refusal",
            Severity::Warning,
            latent_refusal(to, data_version, &direct_deploy_restart_refused_on),
        ));
    }

    let mut hops = Vec::new();
    let mut done = completed.clone();
    let mut deployed = from.clone();
    let mut described = BTreeSet::new();
    for (step, (release, pick)) in releases.into_iter().enumerate() {
        let complete_before = must_complete(manifest, &done, &release);
        // Whoever runs them is the release deployed before this hop: it must know them.
        let unknown_to_runner: Vec<u32> = complete_before
            .iter()
            .copied()
            .filter(|n| *n > manifest.known_by(&deployed))
            .collect();
        if !unknown_to_runner.is_empty() {
            notes.push(format!(
                "{} must complete before {release}, but {deployed} does not know {}: deploy a \
                 release that introduced {} first",
                version_ranges(&complete_before),
                version_ranges(&unknown_to_runner),
                if unknown_to_runner.len() == 1 {
                    "it"
                } else {
                    "them"
                },
            ));
        }
        let introduces: Vec<u32> = manifest
            .numbers()
            .filter(|n| {
                !completed.contains(n)
                    && manifest
                        .get(*n)
                        .is_some_and(|e| e.server_version > deployed && e.server_version <= release)
            })
            .collect();
        let minor_changes = (release.major, release.minor) != (deployed.major, deployed.minor);
        let rollback_window = match (minor_changes, introduces.first()) {
            (true, Some(first)) => format!(
                "opens: {release} can go back to the latest {}.{}.x patch until v{first} starts; \
                 deferring post-deploy migrations (database.disableRunPostDeployMigrations: true) \
                 keeps it open while you validate; running v{first}–v{} closes it",
                deployed.major,
                deployed.minor,
                introduces.last().copied().unwrap_or(*first)
            ),
            (true, None) => format!(
                "{release} introduces no post-deploy migration: going back to {}.{}.x stays possible",
                deployed.major, deployed.minor
            ),
            (false, _) => "a patch within the same minor: no new rollback window".to_string(),
        };
        let (gate_if_deployed_now, restart_refused_on) = deploy_now(&release);
        // Each migration is described once, at the first hop that names it.
        let work = complete_before
            .iter()
            .chain(&introduces)
            .filter(|v| described.insert(**v))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|&version| Some((version, catalogue?)))
            .map(|(version, catalogue)| match catalogue.get(version) {
                Some(entry) => MigrationWork {
                    version,
                    migration_type: Some(entry.kind),
                    rewrites_data: entry.rewrites_data(),
                    summary: entry.summary(),
                },
                None => MigrationWork {
                    version,
                    migration_type: None,
                    rewrites_data: false,
                    summary: format!(
                        "not in the {} migration catalogue: what it does is not known",
                        catalogue.origin
                    ),
                },
            })
            .collect();
        done.extend(complete_before.iter().copied());
        hops.push(Hop {
            step: step + 1,
            release: release.to_string(),
            pick,
            complete_before,
            gate_if_deployed_now,
            restart_refused_on,
            introduces,
            rollback_window,
            work,
        });
        deployed = release;
    }
    Ok(UpgradePlan {
        from: from.to_string(),
        from_inferred_by,
        to: to.to_string(),
        data_version,
        gate_assumes: gate.describe(),
        direct_deploy_refused,
        direct_deploy_restart_refused_on,
        hops,
        findings,
        notes,
    })
}

/// The latent refusal in a sentence: `release` starts at `data_version`, but a restart is
/// refused once the first of `latent` (migrations its code requires that have not run, from
/// `gate::required_but_not_run`, not empty) is pending.
pub fn latent_refusal(release: &Version, data_version: i64, latent: &[u32]) -> String {
    let first = latent.first().copied().unwrap_or_default();
    format!(
        "{release} would start (the gate checks only v{}), but its code requires {} which {} \
         not run: once the migrations before v{first} complete, a restart of {release} is \
         refused on v{first}",
        data_version.saturating_add(1),
        version_ranges(latent),
        if latent.len() == 1 { "has" } else { "have" }
    )
}

/// What must be completed before `release` starts: every migration of the manifest not in
/// `done` up to the last one it requires, since post-deploy migrations run strictly in order.
pub fn must_complete(manifest: &Manifest, done: &BTreeSet<u32>, release: &Version) -> Vec<u32> {
    let last_required = manifest.numbers().rev().find(|n| {
        !done.contains(n)
            && manifest
                .get(*n)
                .and_then(|e| e.required_before.as_ref())
                .is_some_and(|before| before <= release)
    });
    match last_required {
        Some(last) => manifest
            .numbers()
            .take_while(|n| *n <= last)
            .filter(|n| !done.contains(n))
            .collect(),
        None => Vec::new(),
    }
}

/// `v13–v28`, `v45`, or `v13, v15` for the migrations in `list`.
pub fn version_ranges(list: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let mut j = i;
        while j + 1 < list.len() && list[j + 1] == list[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            format!("v{}", list[i])
        } else {
            format!("v{}–v{}", list[i], list[j])
        });
        i = j + 1;
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_naturally() {
        assert_eq!(
            version_ranges(&[13, 14, 15, 17, 20, 21]),
            "v13–v15, v17, v20–v21"
        );
        assert_eq!(version_ranges(&[45]), "v45");
        assert_eq!(version_ranges(&[]), "none");
    }

    #[test]
    fn everything_before_the_last_required_migration_must_complete() {
        let m = Manifest::embedded();
        let done: BTreeSet<u32> = (1..=32).collect();
        // 5.2.0 requires v49 and v50; v33–v48 come before them.
        assert_eq!(
            must_complete(&m, &done, &Version::new(5, 2, 4)),
            (33..=50).collect::<Vec<_>>()
        );
        assert!(must_complete(&m, &done, &Version::new(5, 1, 44)).is_empty());
    }
}
