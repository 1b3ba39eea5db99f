//! `medmig bundle`: collect, redact and pack everything an escalation needs; and
//! `medmig bundle verify`.
//!
//! Inputs and `--out` are checked before the database is touched; everything is staged beside
//! the output and packed at the end, so a failed or interrupted run leaves no bundle behind.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::analyze::migrations::{analyze, StatusOptions, StatusReport};
use crate::bundle::archive::BUNDLE_FORMAT_VERSION;
use crate::bundle::archive::{self, BundleManifest, Staging, BUNDLE_KIND};
use crate::bundle::contents::{is_report_input, BundleContents, REPORT};
use crate::bundle::logs::{self, LogIngest, LogWindow};
use crate::bundle::redact::{Document, RedactOptions, Redactor};
use crate::bundle::sqltext::strip_literals;
use crate::bundle::timeline::timeline;
use crate::cli::{BundleArgs, BundleCommand, BundleCreateArgs};
use crate::diagnostics::{Diagnostics, Gap};
use crate::medplum::config::MedplumConfig;
use crate::medplum::manifest::Manifest;
use crate::outfile::{self, Destination};
use crate::render::{self, ReportSource};
use crate::snapshot::Snapshot;
use crate::text::{count, escape_controls};

/// A transaction open longer than this is listed in `diagnostics/long_transactions.json`.
const LONG_TRANSACTION_SECONDS: f64 = 300.0;

/// Runs `bundle` or `bundle verify`.
pub fn run(args: &BundleArgs, out: &mut impl Write) -> Result<u8> {
    match &args.command {
        Some(BundleCommand::Verify { file }) => verify(file, out),
        None => create(&args.create),
    }
}

/// Prints progress on stderr when it is a terminal.
struct Progress(bool);

impl Progress {
    fn step(&self, what: &str) {
        if self.0 {
            eprintln!("medmig: {what}…");
        }
    }

    fn bytes(&self, read: u64) {
        if self.0 {
            eprint!("\rmedmig: reading logs: {} MB", read >> 20);
        }
    }
}

fn create(args: &BundleCreateArgs) -> Result<u8> {
    let out = args.out.as_deref().context("--out is required")?;
    let now = Utc::now();
    let window = LogWindow {
        since: args.since.map(|w| w.resolve(now)),
        until: args.until.map(|w| w.resolve(now)),
    };
    // Everything that can be wrong with the request fails before the database is touched.
    crate::sources::logs::check_paths(&args.logs)?;
    let config = super::medplum_config(&args.connect)?;
    if outfile::is_stdout(out) && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "--out -: standard output is a terminal and a bundle is a binary tar.gz: redirect \
             it (--out - > case.tar.gz) or name a file"
        );
    }
    let destination = Destination::open(out, args.force)?;
    let mut staging = Staging::new(&destination)?;
    let progress = Progress(std::io::stderr().is_terminal());
    let mut redactor = Redactor::new(&RedactOptions {
        redact_ip: args.redact_ip,
        keywords: args.keyword.clone(),
    })?;

    let collected = if args.no_db {
        None
    } else {
        progress.step("reading the database");
        Some(super::collect_live_with_diagnostics(&args.connect)?)
    };

    let mut gaps = Vec::new();
    let mut status = None;
    let mut source = None;
    if let Some((snapshot, diagnostics, shard_diagnostics)) = collected {
        // The shards in the config's order, by their ids before redaction.
        let order: Vec<String> = snapshot.shards.iter().map(|s| s.id.clone()).collect();
        let (redacted, report) = write_database(
            &mut staging,
            &mut redactor,
            snapshot,
            diagnostics,
            &mut gaps,
        )?;
        // Each shard's diagnostics beside the global database's, from its redacted snapshot.
        for (id, diagnostics) in shard_diagnostics {
            let Some(place) = order.iter().position(|shard| *shard == id) else {
                continue;
            };
            let Some(shard) = redacted
                .shards
                .get(place)
                .and_then(|s| s.snapshot.as_deref())
            else {
                continue;
            };
            let directory = format!("diagnostics/shards/{}", shard_directory(place));
            // What could not be collected of it, named by its place (its id may be redacted).
            let mut theirs = Vec::new();
            for missing in shard.missing_tables() {
                theirs.push(Gap {
                    what: format!("{} rows", missing.table),
                    why: missing.why,
                });
            }
            theirs.extend(diagnostics.gaps.iter().cloned());
            write_diagnostics_in(
                &mut staging,
                &mut redactor,
                shard,
                diagnostics,
                &mut theirs,
                &directory,
            )?;
            gaps.extend(theirs.into_iter().map(|gap| Gap {
                what: format!("shard {} ({directory}): {}", place + 1, gap.what),
                why: gap.why,
            }));
        }
        source = Some(redacted.source.clone());
        status = Some((redacted, report));
    } else {
        gaps.push(Gap {
            what: "database".into(),
            why: "--no-db: no snapshot, status or diagnostics".into(),
        });
    }

    progress.step("reading logs");
    let ingest = logs::ingest(
        &args.logs,
        window,
        &mut redactor,
        &staging.directory("logs")?,
        &mut |read| progress.bytes(read),
    )?;
    if progress.0 && !args.logs.is_empty() {
        eprintln!();
    }
    write_logs(&mut staging, &ingest, &mut gaps)?;

    if let Some(config) = &config {
        write_config(&mut staging, &mut redactor, config, &mut gaps)?;
    }

    // Everything that went in was redacted on its way: the snapshot (and so the status and
    // the job transitions of the timeline), the log events, the config. What medmig writes
    // from them here is not redacted again, lest a keyword replace medmig's own words (a
    // state, a kind); only the gaps, which quote paths and errors, are.
    let shards = status
        .as_ref()
        .map(|(snapshot, report)| shard_statuses(snapshot, report))
        .unwrap_or_default();
    let shard_reports: Vec<(&str, &StatusReport)> = shards
        .iter()
        .filter_map(|s| s.status.as_ref().map(|status| (s.id.as_str(), status)))
        .collect();
    let events = timeline(
        status.as_ref().map(|(_, report)| report),
        &shard_reports,
        &ingest.events,
    );
    staging.write_json("timeline.json", &events)?;

    let command_line = command_line(&mut redactor, std::env::args());
    for gap in &mut gaps {
        gap.what = redactor.text(&gap.what);
        gap.why = redactor.text(&gap.why);
    }

    let summary = summary(status.as_ref(), &ingest, &gaps, &events, now);
    staging.write("summary.txt", summary.as_bytes())?;

    let manifest = BundleManifest {
        format_version: BUNDLE_FORMAT_VERSION,
        kind: BUNDLE_KIND.to_string(),
        created_at: now,
        medmig_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line,
        source,
        since: window.since,
        until: window.until,
        files: Vec::new(),
        redactions: redactor
            .counts()
            .iter()
            .map(|(rule, count)| (rule.to_string(), *count))
            .collect(),
        not_collected: gaps,
    };
    // The incident report, made from the files just staged (redacted as they are packed) by
    // the code `medmig report` runs on the bundle later: the same page.
    progress.step("writing the incident report");
    let mut inputs = std::collections::BTreeMap::new();
    for file in staging.files().iter().filter(|f| is_report_input(f)) {
        inputs.insert(file.clone(), staging.read(file)?);
    }
    let contents = BundleContents::from_files(manifest.clone(), &inputs)?;
    let mut page = Vec::new();
    super::report::write(&mut page, &contents)?;
    staging.write(REPORT, &page)?;

    progress.step("packing");
    let shown = destination.to_string();
    let manifest = staging.finish(manifest, destination)?;
    let (kept, read) = (
        ingest.total(|f| f.lines_kept),
        ingest.total(|f| f.lines_read),
    );
    let redacted: u64 = manifest.redactions.values().sum();
    // The same count as `bundle verify`: the files manifest.json lists.
    super::note(format_args!(
        "wrote {shown} ({} listed in {}; {kept} of {} kept; {} redacted; {} noted)",
        count(manifest.files.len(), "file", "files"),
        archive::MANIFEST,
        count(read, "log line", "log lines"),
        count(redacted, "value", "values"),
        count(manifest.not_collected.len(), "gap", "gaps")
    ));
    Ok(0)
}

/// `snapshot.json`, `status.json` and `diagnostics/`, all redacted; returns the redacted
/// snapshot and its status.
fn write_database(
    staging: &mut Staging,
    redactor: &mut Redactor,
    mut snapshot: Snapshot,
    diagnostics: Diagnostics,
    gaps: &mut Vec<Gap>,
) -> Result<(Snapshot, StatusReport)> {
    // A shard's contract that is the global database's is written once, as `medmig snapshot`
    // writes it. A contract holds no free text, so redacting it once redacts every shard that
    // shares it; the reference is `global`, never a shard's id (which is redacted).
    let _ = snapshot.share_global_schema();
    let mut value = serde_json::to_value(&snapshot)?;
    drop(snapshot);
    redactor.document(&mut value, Document::Snapshot, &[]);
    let mut snapshot: Snapshot =
        serde_json::from_value(value.clone()).context("the redacted snapshot")?;
    snapshot
        .resolve_shared_schemas()
        .context("the redacted snapshot")?;
    staging.write_json("snapshot.json", &value)?;

    let manifest = Manifest::embedded();
    let report = analyze(
        &snapshot,
        &manifest,
        &crate::medplum::catalogue::Catalogue::embedded(),
        StatusOptions::at(snapshot.taken_at, Duration::hours(1)),
    );
    let source = ReportSource::of(&snapshot, "live", None, &manifest.origin);
    let mut status = Vec::new();
    let shards = shard_statuses(&snapshot, &report);
    match shards.is_empty() {
        true => render::json::status(&mut status, &source, &report)?,
        false => {
            let mut report = report.clone();
            report
                .findings
                .extend(crate::analyze::shards::findings(&shards));
            render::json::deployment_status(&mut status, &source, &report, &shards)?
        }
    }
    staging.write("status.json", &status)?;
    for shard in &shards {
        if let Some(gap) = &shard.gap {
            gaps.push(Gap {
                what: format!("shard {}", shard.id),
                why: gap.clone(),
            });
        }
    }

    for missing in snapshot.missing_tables() {
        gaps.push(Gap {
            what: format!("{} rows", missing.table),
            why: missing.why,
        });
    }
    gaps.extend(diagnostics.gaps.iter().cloned());
    write_diagnostics(staging, redactor, &snapshot, diagnostics, gaps)?;
    Ok((snapshot, report))
}

fn write_diagnostics(
    staging: &mut Staging,
    redactor: &mut Redactor,
    snapshot: &Snapshot,
    diagnostics: Diagnostics,
    gaps: &mut Vec<Gap>,
) -> Result<()> {
    write_diagnostics_in(
        staging,
        redactor,
        snapshot,
        diagnostics,
        gaps,
        "diagnostics",
    )
}

/// The directory of a shard's diagnostics in a bundle: its place in the config, `01`, `02`,
/// …; never its id, which comes from the config and may name a customer (`snapshot.json`
/// gives the id, redacted, at the same place of `shards`).
fn shard_directory(place: usize) -> String {
    format!("{:02}", place + 1)
}

/// [`write_diagnostics`] of one database into `directory`.
fn write_diagnostics_in(
    staging: &mut Staging,
    redactor: &mut Redactor,
    snapshot: &Snapshot,
    mut diagnostics: Diagnostics,
    gaps: &mut Vec<Gap>,
    directory: &str,
) -> Result<()> {
    // Statements lose their literals before anything else sees them.
    let mut hidden = 0;
    if let Some(Value::Array(sessions)) = diagnostics.sections.get_mut("activity") {
        for session in sessions.iter_mut() {
            let query = session
                .get("query")
                .and_then(Value::as_str)
                .map(str::to_string);
            let (query, is_hidden) = match query.as_deref() {
                Some("<insufficient privilege>") => (Value::Null, true),
                Some(text) => (Value::String(strip_literals(text)), false),
                None => (Value::Null, false),
            };
            hidden += u32::from(is_hidden);
            if let Some(object) = session.as_object_mut() {
                object.insert("query".into(), query);
                object.insert("query_hidden".into(), Value::Bool(is_hidden));
            }
        }
    }
    if hidden > 0 {
        gaps.push(Gap {
            what: format!("the statements of {}", count(hidden, "session", "sessions")),
            why: "the role lacks pg_read_all_stats: their query text is hidden".into(),
        });
    }
    let sessions = diagnostics
        .sections
        .get("activity")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let blocking: Vec<&Value> = sessions
        .iter()
        .filter(|s| {
            s.get("blocked_by")
                .and_then(Value::as_array)
                .is_some_and(|b| !b.is_empty())
        })
        .collect();
    let long: Vec<&Value> = sessions
        .iter()
        .filter(|s| {
            s.get("transaction_age_s")
                .and_then(Value::as_f64)
                .is_some_and(|age| age > LONG_TRANSACTION_SECONDS)
        })
        .collect();
    diagnostics
        .sections
        .insert("blocking".into(), json!(blocking));
    diagnostics
        .sections
        .insert("long_transactions".into(), json!(long));
    diagnostics.sections.insert(
        "server".into(),
        json!({
            "server_version": snapshot.source.server_version,
            "server_version_num": snapshot.source.server_version_num,
            "database": snapshot.source.database,
            "user": snapshot.source.user,
        }),
    );
    diagnostics.sections.insert(
        "migration_lock".into(),
        json!(snapshot.activity.as_ref().map(|a| &a.sessions)),
    );
    if let Some(schema) = &snapshot.schema {
        diagnostics
            .sections
            .insert("extensions".into(), json!(schema.extensions));
        let mut not_validated = Vec::new();
        for (table, contract) in &schema.tables {
            for (name, constraint) in contract.constraints.iter().filter(|(_, c)| !c.validated) {
                not_validated.push(json!({"table": table, "constraint": name, "definition": constraint.definition}));
            }
        }
        diagnostics.sections.insert(
            "invalid_objects".into(),
            json!({"invalid_indexes": snapshot.invalid_indexes, "constraints_not_validated": not_validated}),
        );
    }
    for (kind, mut rows) in diagnostics.sections {
        redactor.document(&mut rows, Document::Diagnostics, &[&kind]);
        staging.write_json(&format!("{directory}/{kind}.json"), &rows)?;
    }
    Ok(())
}

/// `logs/ingest.json` (what was read, kept, dropped) and the gaps of unreadable files.
fn write_logs(staging: &mut Staging, ingest: &LogIngest, gaps: &mut Vec<Gap>) -> Result<()> {
    for file in &ingest.files {
        if let Some(bundled) = &file.bundled_as {
            staging.adopt(bundled);
        }
        if let Some(note) = &file.note {
            gaps.push(Gap {
                what: format!("log {}", file.source),
                why: note.clone(),
            });
        }
    }
    staging.write_json(
        "logs/ingest.json",
        &json!({
            "files": ingest.files,
            "totals": {
                "bytes_read": ingest.total(|f| f.bytes_read),
                "lines_read": ingest.total(|f| f.lines_read),
                "lines_kept": ingest.total(|f| f.lines_kept),
                "lines_outside_window": ingest.total(|f| f.lines_outside_window),
                "lines_undated": ingest.total(|f| f.lines_undated),
                "lines_redacted": ingest.total(|f| f.lines_redacted),
                "lines_cut": ingest.total(|f| f.lines_cut),
            },
            "timeline_events_dropped": ingest.events_dropped,
        }),
    )
}

/// `config/medplum.config.json`: the merged config of the sources read, with every secret
/// replaced; `config/sources.json`: which sources were read and which not (each unread one is
/// also a gap); `config/post-deploy.json`: what the server will do about post-deploy
/// migrations, by the rules of `DeferSettings`.
fn write_config(
    staging: &mut Staging,
    redactor: &mut Redactor,
    config: &MedplumConfig,
    gaps: &mut Vec<Gap>,
) -> Result<()> {
    let mut value = config.value().clone();
    redactor.json(&mut value);
    staging.write_json("config/medplum.config.json", &value)?;

    let not_read: Vec<Value> = config
        .sources_not_read()
        .iter()
        .map(|source| json!({"source": source.to_string(), "why": source.why_not_read()}))
        .collect();
    for source in config.sources_not_read() {
        gaps.push(Gap {
            what: format!("config source {source}"),
            why: source.why_not_read().unwrap_or_default(),
        });
    }
    let read: Vec<String> = config
        .sources_read()
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut sources = json!({
        "config_name": config.name().as_str(),
        "read": read,
        "not_read": not_read,
        "complete": config.is_complete(),
        "loader_notes": config.notes(),
    });
    redactor.document(&mut sources, Document::ConfigReport, &[]);
    staging.write_json("config/sources.json", &sources)?;

    let defer = config.defer_settings();
    let meaning = if !defer.all_sources_read() {
        defer.gap().unwrap_or_default()
    } else if defer.run_migrations_off() {
        "database.runMigrations is false: the server does not start post-deploy migrations by itself, but it also skips the pre-deploy migrations and the startup gate, and refuses to start post-deploy migrations by hand (POST /admin/super/migrate answers 400) until it is flipped back".to_string()
    } else if defer.defers() {
        "the server does not start post-deploy migrations by itself: the rollback window stays open until someone does".to_string()
    } else if defer.relies_on_documented_key() {
        "only the documented disablePostDeployMigrations asks for deferral, and no server code reads it: post-deploy migrations start by themselves".to_string()
    } else {
        "post-deploy migrations start by themselves after each deployment".to_string()
    };
    let mut post_deploy = json!({
        "config_name": config.name().as_str(),
        "switches": {
            "database.disableRunPostDeployMigrations": defer.disable_run_post_deploy_migrations,
            "database.runMigrations": defer.run_migrations,
            "disablePostDeployMigrations": defer.disable_post_deploy_migrations,
        },
        "set_by": defer.set_by,
        "sources_read": defer.sources_read,
        "sources_not_read": defer.sources_not_read,
        "complete": defer.all_sources_read(),
        // null when a source could not be read: the read ones alone do not decide it.
        "server_defers_post_deploy_migrations": defer.all_sources_read().then(|| defer.defers()),
        "run_migrations_false": defer.all_sources_read().then(|| defer.run_migrations_off()),
        "defers_by_the_sources_read": defer.defers(),
        "notes": defer.notes(),
        "meaning": meaning,
    });
    redactor.document(&mut post_deploy, Document::ConfigReport, &[]);
    staging.write_json("config/post-deploy.json", &post_deploy)
}

/// The command line for the manifest: each argument redacted as free text, but the name of an
/// option (`--keyword`, the `--out` of `--out=FILE`) is medmig's own word and kept.
fn command_line(redactor: &mut Redactor, args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|arg| match arg.split_once('=') {
        Some((option, value)) if option.starts_with("--") => {
            format!("{option}={}", redactor.text(value))
        }
        None if arg.starts_with("--") => arg,
        _ => redactor.text(&arg),
    })
    .collect()
}

/// `summary.txt`: what a person reads first.
fn summary(
    status: Option<&(Snapshot, StatusReport)>,
    ingest: &LogIngest,
    gaps: &[Gap],
    events: &[crate::bundle::timeline::TimelineEvent],
    now: chrono::DateTime<Utc>,
) -> String {
    let mut text = format!(
        "medmig support bundle, made {} by medmig {}\n\n",
        render::timestamp(&now),
        env!("CARGO_PKG_VERSION")
    );
    if let Some((snapshot, report)) = status {
        let source = ReportSource::of(snapshot, "live", None, "embedded");
        let mut table = Vec::new();
        if render::table::status(&mut table, &source, report, false).is_ok() {
            text.push_str(&String::from_utf8_lossy(&table));
        }
    } else {
        text.push_str("No database was read (--no-db).\n");
    }
    text.push_str(&format!(
        "\nLogs: {}, {} read, {} kept, {} outside the time window\n",
        count(ingest.files.len(), "file", "files"),
        count(ingest.total(|f| f.lines_read), "line", "lines"),
        ingest.total(|f| f.lines_kept),
        ingest.total(|f| f.lines_outside_window)
    ));
    if let (Some(first), Some(last)) = (
        events.iter().find_map(|e| e.at),
        events.iter().rev().find_map(|e| e.at),
    ) {
        text.push_str(&format!(
            "Timeline: {} from {} to {} (timeline.json)\n",
            count(events.len(), "event", "events"),
            render::timestamp(&first),
            render::timestamp(&last)
        ));
    }
    if !gaps.is_empty() {
        text.push_str("\nNot collected\n");
        for gap in gaps {
            let gap = format!("{}: {}", gap.what, gap.why);
            text.push_str(&format!("  {}\n", escape_controls(&gap)));
        }
    }
    text
}

/// `bundle verify`: every checksum and every entry, one line per problem, a verdict line.
fn verify(file: &Path, out: &mut impl Write) -> Result<u8> {
    let verification = archive::verify(file)?;
    let mut text = String::new();
    // Entry names and the file name come from outside: shown, never obeyed.
    if let Some(how) = &verification.manifest_stored {
        let how = escape_controls(how);
        text.push_str(&format!("CHANGED   {}: {how}\n", archive::MANIFEST));
    }
    for (path, outcome) in &verification.files {
        let path = escape_controls(path);
        match outcome {
            Ok(size) => text.push_str(&format!(
                "ok        {path} ({})\n",
                count(*size, "byte", "bytes")
            )),
            Err(problem) => {
                text.push_str(&format!("DAMAGED   {path}: {}\n", escape_controls(problem)))
            }
        }
    }
    for path in &verification.unexpected {
        let path = escape_controls(path);
        text.push_str(&format!("UNLISTED  {path}: not in the manifest\n"));
    }
    for (name, why) in &verification.refused {
        let (name, why) = (escape_controls(name), escape_controls(why));
        text.push_str(&format!("UNSAFE    {name}: {why}\n"));
    }
    let shown = file.display().to_string();
    let shown = escape_controls(&shown);
    // The same count as `bundle` reports when it writes one: the files manifest.json lists.
    let listed = verification.files.len();
    if verification.is_intact() {
        text.push_str(&format!(
            "bundle {shown} is intact: all {listed} files listed in {} (of {}) match\n",
            archive::MANIFEST,
            render::timestamp(&verification.manifest.created_at)
        ));
    } else {
        let matching = verification.files.iter().filter(|(_, r)| r.is_ok()).count();
        let problems = verification.problems();
        text.push_str(&format!(
            "bundle {shown} is damaged or changed: {problems} problem{} above; {matching} of the {listed} files listed in {} match{}\n",
            if problems == 1 { "" } else { "s" },
            archive::MANIFEST,
            verification
                .stopped
                .as_ref()
                .map(|why| format!(" ({})", escape_controls(why)))
                .unwrap_or_default()
        ));
    }
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(if verification.is_intact() { 0 } else { 1 })
}

/// The status of every shard of a (redacted) snapshot, as `status` reports it.
fn shard_statuses(
    snapshot: &Snapshot,
    report: &StatusReport,
) -> Vec<crate::analyze::shards::ShardStatus> {
    crate::analyze::shards::analyze_shards(
        snapshot,
        report,
        &Manifest::embedded(),
        &crate::medplum::catalogue::Catalogue::embedded(),
        StatusOptions::at(snapshot.taken_at, Duration::hours(1)),
    )
}

#[cfg(test)]
mod shard_tests {
    use super::shard_directory;

    #[test]
    fn a_shards_directory_is_its_place_in_the_config() {
        assert_eq!(shard_directory(0), "01");
        assert_eq!(shard_directory(11), "12");
    }
}
