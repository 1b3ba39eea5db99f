//! `medmig snapshot`: collect once, write the Snapshot as JSON for offline analysis.

use anyhow::Result;

use crate::cli::SnapshotArgs;
use crate::outfile::Destination;
use crate::text::count;

/// Checks `--out` first, collects from the live database and writes the file atomically (or
/// to standard output for `--out -`); prints one line to stderr. The schema contract, most of
/// the file, is rendered while collection finishes.
pub fn run(args: &SnapshotArgs) -> Result<u8> {
    let destination = Destination::open(&args.out.path, args.out.force)?;
    let (mut snapshot, schema) = super::collect_live_for_file(&args.connect)?;
    let shown = destination.to_string();
    destination.write_with(|out| snapshot.write_rendered(&schema, out))?;
    super::note(format_args!(
        "wrote {shown} ({}, {})",
        count(snapshot.jobs.len(), "post-deploy job", "post-deploy jobs"),
        count(
            snapshot.invalid_indexes.len(),
            "invalid index",
            "invalid indexes"
        )
    ));
    for unread in &snapshot.unread_tables {
        super::note(format_args!(
            "{} could not be read, and the snapshot says so: {}",
            unread.table, unread.why
        ));
    }
    super::end_with(snapshot);
    Ok(0)
}
