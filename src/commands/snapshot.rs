//! `medmig snapshot`: collect once, write the Snapshot as JSON for offline analysis.

use anyhow::Result;

use crate::cli::SnapshotArgs;

/// Collects from the live database and writes the file atomically; prints one line to stderr.
/// The schema contract, most of the file, is rendered while collection finishes.
pub fn run(args: &SnapshotArgs) -> Result<u8> {
    let (mut snapshot, schema) = super::collect_live_for_file(&args.connect)?;
    snapshot.write_rendered(&schema, &args.out.path, args.out.force)?;
    eprintln!(
        "medmig: wrote {} ({} post-deploy jobs, {} invalid indexes)",
        args.out.path.display(),
        snapshot.jobs.len(),
        snapshot.invalid_indexes.len()
    );
    for unread in &snapshot.unread_tables {
        eprintln!(
            "medmig: {} could not be read, and the snapshot says so: {}",
            unread.table, unread.why
        );
    }
    super::end_with(snapshot);
    Ok(0)
}
