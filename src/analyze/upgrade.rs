//! The upgrade path: from the release deployed now to a target, one minor at a time, with
//! the post-deploy migrations that must complete before each hop, the server's startup gate
//! predicted word for word, and where rollback windows open and close (`medmig upgrade-plan`).
//!
//! Pure: the status analysis and the manifest in, a plan out. Releases that the manifest
//! does not name are planned as "the latest patch of that minor".

use std::collections::BTreeSet;

use semver::Version;
use serde::Serialize;

use super::migrations::{MigrationState, StatusReport};
use crate::medplum::manifest::Manifest;

/// One release to deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub step: usize,
    /// The release, e.g. `4.3.14`, or the target itself.
    pub release: String,
    /// `the latest 4.3.x patch`, or `the target` — what to actually pick.
    pub pick: String,
    /// Post-deploy migrations that must be completed before this release is deployed, or it
    /// refuses to start.
    pub complete_before: Vec<u32>,
    /// The startup gate's message if it were deployed now, from the current state.
    pub gate_if_deployed_now: Option<String>,
    /// Post-deploy migrations this release introduces (they run after it starts unless
    /// deferred).
    pub introduces: Vec<u32>,
    /// What this hop does to the rollback window.
    pub rollback_window: String,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpgradePlan {
    pub from: String,
    pub from_inferred_by: Option<String>,
    pub to: String,
    /// `dataVersion` now.
    pub data_version: i64,
    /// Deploying the target straight away: the startup gate's message, if it would refuse.
    pub direct_deploy_refused: Option<String>,
    pub hops: Vec<Hop>,
    /// What cannot be planned exactly (a target beyond the manifest, failed migrations, …).
    pub notes: Vec<String>,
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanRefusal {
    /// The target is older than the deployed release: that is a rollback.
    Rollback { from: Version, to: Version },
}

/// The startup gate's message for a pending migration, as Medplum prints it.
pub fn gate_message(
    version: u32,
    introduced: &Version,
    required_before: &Version,
    server: &Version,
) -> String {
    format!(
        "Unable to run this version of Medplum server. Pending post-deploy migration v{version} \
         requires server at version {introduced} <= version < {required_before}, but current \
         server version is {server}"
    )
}

/// Plans the upgrade from `from` (the deployed release, or a lower bound of it) to `to`.
pub fn plan(
    status: &StatusReport,
    manifest: &Manifest,
    from: &Version,
    from_inferred_by: Option<String>,
    to: &Version,
) -> Result<UpgradePlan, PlanRefusal> {
    if to < from {
        return Err(PlanRefusal::Rollback {
            from: from.clone(),
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
        if latest > from && latest < to {
            releases.push((
                latest.clone(),
                format!("the latest {}.{}.x patch", from.major, from.minor),
            ));
        }
    }
    for (major, minor) in manifest.minors_between(from, to) {
        if (major, minor) == (to.major, to.minor) {
            break;
        }
        let release = manifest
            .newest_patch(major, minor)
            .cloned()
            .unwrap_or_else(|| Version::new(major, minor, 0));
        releases.push((release, format!("the latest {major}.{minor}.x patch")));
    }
    releases.push((to.clone(), "the target".to_string()));

    let gate_now = |release: &Version| -> Option<String> {
        first_gate(manifest, &completed, release)
            .map(|(n, introduced, before)| gate_message(n, &introduced, &before, release))
    };
    let direct_deploy_refused = gate_now(to);

    let mut hops = Vec::new();
    let mut done = completed.clone();
    let mut deployed = from.clone();
    for (step, (release, pick)) in releases.into_iter().enumerate() {
        let complete_before = must_complete(manifest, &done, &release);
        let introduces: Vec<u32> = (1..=manifest.highest())
            .filter(|n| {
                manifest
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
        let gate_if_deployed_now =
            gate_now(&release).filter(|_| step == 0 || !complete_before.is_empty());
        done.extend(complete_before.iter().copied());
        hops.push(Hop {
            step: step + 1,
            release: release.to_string(),
            pick,
            complete_before,
            gate_if_deployed_now,
            introduces,
            rollback_window,
        });
        deployed = release;
    }
    Ok(UpgradePlan {
        from: from.to_string(),
        from_inferred_by,
        to: to.to_string(),
        data_version,
        direct_deploy_refused,
        hops,
        notes,
    })
}

/// The first migration not in `done` whose `requiredBefore` is at or below `release`: the one
/// the startup gate names. With its introducing and required-before release.
fn first_gate(
    manifest: &Manifest,
    done: &BTreeSet<u32>,
    release: &Version,
) -> Option<(u32, Version, Version)> {
    (1..=manifest.highest())
        .filter(|n| !done.contains(n))
        .find_map(|n| {
            let entry = manifest.get(n)?;
            let before = entry.required_before.as_ref()?;
            (before <= release).then(|| (n, entry.server_version.clone(), before.clone()))
        })
}

/// What must be completed before `release` starts: every migration not in `done` up to the
/// last one it requires, since post-deploy migrations run strictly in order.
pub fn must_complete(manifest: &Manifest, done: &BTreeSet<u32>, release: &Version) -> Vec<u32> {
    let last_required = (1..=manifest.highest()).rev().find(|n| {
        !done.contains(n)
            && manifest
                .get(*n)
                .and_then(|e| e.required_before.as_ref())
                .is_some_and(|before| before <= release)
    });
    match last_required {
        Some(last) => (1..=last).filter(|n| !done.contains(n)).collect(),
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
