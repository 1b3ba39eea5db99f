//! `medmig report`: the incident report of a bundle, one self-contained HTML file; and the
//! `report.html` that `bundle` packs into every bundle.
//!
//! The report is made from what the bundle holds and nothing else (`bundle/contents.rs`):
//! the status, rollback and recovery analyses run again on its redacted snapshot, exactly as
//! `status --bundle`, `rollback-check --bundle` and `recover --bundle` would, so the page
//! cannot say anything the bundle does not. This module assembles the page's
//! [`Incident`] from those answers; `render/html.rs` draws it.

use std::io::Write;

use anyhow::Result;
use chrono::Duration;
use semver::Version;
use serde_json::Value;

use crate::analyze::migrations::{
    analyze, infer_from, MigrationState, MigrationStatus, StatusOptions, StatusReport,
};
use crate::analyze::recover::{recover, RecoverOptions};
use crate::analyze::rollback::{rollback_check, RollbackOptions};
use crate::bundle::contents::{BundleContents, BundledEvent};
use crate::bundle::timeline::started_release;
use crate::cli::ReportArgs;
use crate::medplum::catalogue::Catalogue;
use crate::medplum::config::DeferSettings;
use crate::medplum::gate::GateSettings;
use crate::medplum::manifest::Manifest;
use crate::outfile::Destination;
use crate::render::html::{self, Deferral, Deployment, Incident, RollbackWindow, Tone};
use crate::render::svg_timeline::{BarState, JobSpan, Lane, Mark};
use crate::text::{count, elapsed, shorten};

/// Reads the bundle, writes the report; exit 0.
pub fn run(args: &ReportArgs) -> Result<u8> {
    // `--out` is judged before the bundle is read, and nothing is written unless it reads.
    let destination = Destination::open(&args.out, args.force)?;
    let contents = BundleContents::read(&args.bundle)?;
    let mut page = Vec::new();
    write(&mut page, &contents)?;
    let shown = destination.to_string();
    destination.write_with(|out| out.write_all(&page))?;
    let jobs: usize = contents.snapshot.as_ref().map_or(0, |s| s.jobs.len());
    super::note(format_args!(
        "wrote {shown} ({}, {}, {})",
        count(page.len(), "byte", "bytes"),
        count(jobs, "post-deploy job", "post-deploy jobs"),
        count(contents.timeline.len(), "timeline event", "timeline events")
    ));
    Ok(0)
}

/// The report of a bundle's contents.
pub fn write(out: &mut impl Write, contents: &BundleContents) -> Result<()> {
    let manifest = Manifest::embedded();
    let catalogue = Catalogue::embedded();
    // As `bundle` computed status.json: the snapshot's own time, the default limits.
    let status = contents.snapshot.as_ref().map(|snapshot| {
        analyze(
            snapshot,
            &manifest,
            &catalogue,
            StatusOptions::at(snapshot.taken_at, Duration::hours(1)),
        )
    });
    let defer = contents.post_deploy.as_ref().map(defer_settings);
    let deployments = deployments(&contents.timeline);
    let deployed_exactly = deployments
        .last()
        .and_then(|d| Version::parse(&d.release).ok());
    let deployed = match (&deployed_exactly, deployments.last(), &status) {
        (Some(_), Some(last), _) => Some((
            last.release.clone(),
            format!("a server started with it at {}", html_time(last.at)),
        )),
        (_, _, Some(status)) => match infer_from(status, &manifest) {
            (Some(version), how) => Some((format!("at least {version}"), how.unwrap_or_default())),
            (None, _) => None,
        },
        _ => None,
    };

    let rollback = match (&contents.snapshot, &status) {
        (Some(snapshot), Some(status)) => {
            let from = deployed_exactly
                .clone()
                .or_else(|| infer_from(status, &manifest).0);
            let to = from.as_ref().and_then(|from| {
                let (major, minor) = manifest.previous_minor(from)?;
                manifest.newest_patch(major, minor).cloned()
            });
            match (to, from) {
                (Some(to), _) => RollbackWindow::Checked(rollback_check(
                    snapshot,
                    &manifest,
                    &catalogue,
                    &RollbackOptions {
                        to,
                        from: deployed_exactly.clone(),
                        baseline: None,
                        config: defer.clone(),
                        ignore: &[],
                        config_shards: None,
                        status: StatusOptions::at(snapshot.taken_at, Duration::hours(1)),
                    },
                )),
                (None, Some(from)) => RollbackWindow::Undetermined(format!(
                    "the embedded manifest names no minor before {from}, so there is no \
                     release to roll back to"
                )),
                (None, None) => RollbackWindow::Undetermined(
                    "the deployed release is not known: no server start in the logs names one, \
                     and no job or applied migration shows one"
                        .into(),
                ),
            }
        }
        _ => RollbackWindow::Undetermined(
            "no database was read (--no-db): nothing shows which migrations ran".into(),
        ),
    };

    let recovery = match (&contents.snapshot, &status) {
        (Some(snapshot), Some(status)) => match snapshot.require_complete("recovery") {
            Ok(()) => Ok(recover(
                snapshot,
                status,
                &manifest,
                &RecoverOptions {
                    deploying: None,
                    config: defer.clone(),
                    gate: GateSettings {
                        strict: true,
                        strict_assumed: true,
                        run_migrations: defer.as_ref().is_none_or(|d| !d.run_migrations_off()),
                    },
                },
            )),
            Err(err) => Err(format!("{err:#}")),
        },
        _ => Err("No database was read (--no-db): no recovery steps.".into()),
    };

    let incident = Incident {
        manifest: &contents.manifest,
        snapshot: contents.snapshot.as_ref(),
        status: status.as_ref(),
        headline: headline(status.as_ref(), &rollback),
        rollback,
        deployed,
        deferral: deferral(contents.post_deploy.as_ref()),
        spans: status.as_ref().map(spans).unwrap_or_default(),
        marks: marks(&contents.timeline),
        deployments,
        recovery,
        events: &contents.timeline,
        diagnostics: &contents.diagnostics,
        log_totals: contents.log_totals.as_ref(),
    };
    html::report(out, &incident)?;
    Ok(())
}

fn html_time(at: chrono::DateTime<chrono::Utc>) -> String {
    crate::render::timestamp(&at)
}

/// The deferral switches as `config/post-deploy.json` records them (the raw values, which
/// source set each, the sources read and not), for the rollback and recovery rules.
fn defer_settings(post_deploy: &Value) -> DeferSettings {
    let switch = |key: &str| {
        post_deploy
            .get("switches")
            .and_then(|s| s.get(key))
            .filter(|v| !v.is_null())
            .cloned()
    };
    let strings = |key: &str| -> Vec<String> {
        post_deploy
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    DeferSettings {
        disable_run_post_deploy_migrations: switch("database.disableRunPostDeployMigrations"),
        run_migrations: switch("database.runMigrations"),
        disable_post_deploy_migrations: switch("disablePostDeployMigrations"),
        set_by: post_deploy
            .get("set_by")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        sources_read: strings("sources_read"),
        sources_not_read: strings("sources_not_read"),
    }
}

fn deferral(post_deploy: Option<&Value>) -> Deferral {
    let Some(post_deploy) = post_deploy else {
        return Deferral {
            defers: None,
            meaning: "the bundle was made without --medplum-config: how the server runs \
                      post-deploy migrations is not known"
                .into(),
            switches: Vec::new(),
        };
    };
    Deferral {
        defers: post_deploy
            .get("server_defers_post_deploy_migrations")
            .and_then(Value::as_bool),
        meaning: post_deploy
            .get("meaning")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        switches: post_deploy
            .get("switches")
            .and_then(Value::as_object)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
            .unwrap_or_default(),
    }
}

/// Every server start the timeline shows with its release, oldest first.
fn deployments(events: &[BundledEvent]) -> Vec<Deployment> {
    events
        .iter()
        .filter(|e| e.kind == "server-start")
        .filter_map(|e| {
            Some(Deployment {
                at: e.at?,
                release: started_release(&e.message)?.to_string(),
            })
        })
        .collect()
}

/// The headline: the worst post-deploy state, and the rollback window.
fn headline(status: Option<&StatusReport>, rollback: &RollbackWindow) -> (Tone, String) {
    let Some(status) = status else {
        return (
            Tone::Warn,
            "No database in this bundle: logs and config only".into(),
        );
    };
    let worst = |states: &[MigrationState]| {
        status
            .migrations
            .iter()
            .filter(|m| states.contains(&m.state))
            .collect::<Vec<&MigrationStatus>>()
    };
    let named = |ms: &[&MigrationStatus]| {
        ms.iter()
            .map(|m| format!("v{}", m.version))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let failed = worst(&[MigrationState::Failed]);
    let troubled = worst(&[
        MigrationState::Stale,
        MigrationState::Inconsistent,
        MigrationState::Unknown,
    ]);
    let working = worst(&[
        MigrationState::Running,
        MigrationState::Queued,
        MigrationState::Accepted,
    ]);
    let (tone, mut text) = if !failed.is_empty() {
        let attempts: usize = failed.iter().map(|m| m.attempts).sum();
        (
            Tone::Bad,
            format!(
                "Post-deploy migration {} failed ({})",
                named(&failed),
                count(attempts, "attempt", "attempts")
            ),
        )
    } else if !troubled.is_empty() {
        (
            Tone::Bad,
            format!(
                "Post-deploy migration {} is {}",
                named(&troubled),
                troubled[0].state.as_str()
            ),
        )
    } else if !working.is_empty() {
        (
            Tone::Warn,
            format!(
                "Post-deploy migration {} is {}",
                named(&working),
                working[0].state.as_str()
            ),
        )
    } else if let Some(next) = status.post_deploy.pending {
        (
            Tone::Warn,
            format!("Post-deploy migration v{next} is pending"),
        )
    } else {
        (
            Tone::Ok,
            "Every known post-deploy migration has completed".into(),
        )
    };
    if let RollbackWindow::Checked(report) = rollback {
        let window = match report.verdict {
            crate::analyze::rollback::Verdict::Safe => "open",
            crate::analyze::rollback::Verdict::Unsafe => "closed",
            crate::analyze::rollback::Verdict::Unknown => "unknown",
        };
        text.push_str(&format!("; rollback window to {} {window}", report.to));
    }
    (tone, text)
}

/// Each job of each migration as a bar.
fn spans(status: &StatusReport) -> Vec<JobSpan> {
    let mut spans = Vec::new();
    for migration in &status.migrations {
        let attempts = migration.runs.len();
        for (i, run) in migration.runs.iter().enumerate() {
            let facts = &run.facts;
            let state = match facts.job_status.as_deref() {
                Some("completed") => BarState::Completed,
                Some("error") => BarState::Failed,
                Some("cancelled") => BarState::Cancelled,
                Some("active") => BarState::Running,
                _ if facts.started_at.is_some() => BarState::Running,
                _ if run.current && migration.state == MigrationState::Running => BarState::Running,
                _ => BarState::Queued,
            };
            let mut detail = format!(
                "v{} job {} ({} of {attempts}): {}",
                migration.version,
                facts.job_id.as_deref().unwrap_or("?"),
                i + 1,
                state.as_str()
            );
            if run.current && state == BarState::Queued {
                detail.push_str(&format!(" (migration is {})", migration.state.as_str()));
            }
            for (what, at) in [
                ("requested", facts.requested_at),
                ("started", facts.started_at),
                ("ended", facts.finished_at),
            ] {
                if let Some(at) = at {
                    detail.push_str(&format!("\n{what} {}", html_time(at)));
                }
            }
            if let Some(seconds) = facts.duration_seconds {
                detail.push_str(&format!("\nduration {}", elapsed(seconds)));
            }
            if let Some(server) = &run.min_server_version {
                detail.push_str(&format!("\ncreated by server {server}"));
            }
            let mut outcome = Vec::new();
            if let Some(progress) = &facts.progress {
                outcome.push(format!("progress: {}", shorten(progress, 200)));
            }
            if let Some(error) = &facts.error {
                outcome.push(format!("error: {}", shorten(error, 300)));
            }
            for line in &outcome {
                detail.push_str(&format!("\n{line}"));
            }
            spans.push(JobSpan {
                version: migration.version,
                job_id: facts.job_id.clone().unwrap_or_default(),
                attempt: i + 1,
                attempts,
                state,
                requested: facts.requested_at,
                started: facts.started_at,
                finished: facts.finished_at,
                detail,
                outcome: outcome.join("; "),
            });
        }
    }
    spans
}

/// The lane of a log event's kind.
fn lane(kind: &str) -> Lane {
    match kind {
        "server-start" => Lane::Deploy,
        "pre-deploy-migration" | "migration-lock" => Lane::PreDeploy,
        "startup-gate" | "migration-error" | "post-deploy-error" | "error" | "warning" => {
            Lane::Error
        }
        _ => Lane::Queue,
    }
}

/// The log events as marks (the database's job transitions are the bars).
fn marks(events: &[BundledEvent]) -> Vec<Mark> {
    events
        .iter()
        .filter(|e| e.source == "log")
        .filter_map(|e| {
            let at = e.at?;
            let lane = lane(&e.kind);
            let label = if lane == Lane::Deploy {
                started_release(&e.message).map_or_else(String::new, |r| r.to_string())
            } else {
                String::new()
            };
            let mut detail = format!("{} {}", html_time(at), e.kind);
            if let Some(version) = e.version {
                detail.push_str(&format!(" v{version}"));
            }
            detail.push_str(&format!("\n{}", shorten(&e.message, 400)));
            Some(Mark {
                at,
                lane,
                kind: e.kind.clone(),
                label,
                detail,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deferral_switches_read_back_as_the_rules_take_them() {
        let post_deploy = serde_json::json!({
            "switches": {
                "database.disableRunPostDeployMigrations": true,
                "database.runMigrations": null,
                "disablePostDeployMigrations": null,
            },
            "set_by": {"database.disableRunPostDeployMigrations": "file:medplum.config.json"},
            "sources_read": ["file:medplum.config.json"],
            "sources_not_read": [],
            "server_defers_post_deploy_migrations": true,
            "meaning": "the server does not start post-deploy migrations by itself",
        });
        let settings = defer_settings(&post_deploy);
        assert!(settings.defers() && settings.key_read_defers());
        assert!(!settings.run_migrations_off() && settings.all_sources_read());
        assert_eq!(deferral(Some(&post_deploy)).defers, Some(true));
        assert_eq!(deferral(None).defers, None);
    }

    #[test]
    fn server_starts_are_deployments_and_marks() {
        let event = |kind: &str, message: &str| BundledEvent {
            at: Some("2026-03-01T10:00:00Z".parse().unwrap()),
            source: "log".into(),
            kind: kind.into(),
            version: None,
            message: message.into(),
        };
        let events = [
            event(
                "server-start",
                "Starting Medplum Server... version=5.2.2-8f1e2a3",
            ),
            event(
                "pre-deploy-migration",
                "Database pre-deploy migration version=v121",
            ),
            event("server-start", "Starting Medplum Server..."),
        ];
        let deployed = deployments(&events);
        assert_eq!(deployed.len(), 1);
        assert_eq!(deployed[0].release, "5.2.2");
        let marks = marks(&events);
        assert_eq!(marks[0].lane, Lane::Deploy);
        assert_eq!(marks[0].label, "5.2.2");
        assert_eq!(marks[1].lane, Lane::PreDeploy);
    }
}
