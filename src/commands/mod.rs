//! One module per command. Each turns its validated arguments into a snapshot (live or from
//! a file), runs the analysis and renders; none talks to PostgreSQL except through
//! `collect.rs`.

use anyhow::Result;

use crate::cli::{ConnectArgs, InputArgs};
use crate::collect::collect;
use crate::connect::{process_env, ConnectionSettings};
use crate::render::ReportSource;
use crate::snapshot::Snapshot;

pub mod rollback_check;
pub mod schema;
pub mod snapshot;
pub mod status;

/// Reads the evidence from the snapshot file or the live database the arguments name, and
/// describes where it came from (`manifest` is filled in by the caller).
pub fn load_input(input: &InputArgs) -> Result<(Snapshot, ReportSource)> {
    let (snapshot, file) = match &input.snapshot {
        Some(path) => (Snapshot::read(path)?, Some(path.display().to_string())),
        None => (collect_live(&input.connect)?, None),
    };
    let source = ReportSource {
        kind: if file.is_some() { "snapshot" } else { "live" },
        file,
        host: snapshot.source.host.clone(),
        port: snapshot.source.port,
        database: snapshot.source.database.clone(),
        user: snapshot.source.user.clone(),
        server_version: snapshot.source.server_version.clone(),
        taken_at: snapshot.taken_at,
        manifest: String::new(),
    };
    Ok((snapshot, source))
}

/// Resolves the connection, notes ignored sources on stderr, and collects a snapshot.
pub fn collect_live(args: &ConnectArgs) -> Result<Snapshot> {
    let settings = ConnectionSettings::resolve(args, &process_env)?;
    if !settings.ignored_sources.is_empty() {
        let ignored: Vec<String> = settings
            .ignored_sources
            .iter()
            .map(ToString::to_string)
            .collect();
        eprintln!(
            "medmig: connecting with {}; also set but ignored: {}",
            settings.source,
            ignored.join(", ")
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(collect(&settings))
}
