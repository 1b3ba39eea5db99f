//! `medmig snapshot`: collect once, write the Snapshot as JSON for offline analysis.

use anyhow::Result;

use crate::cli::SnapshotArgs;
use crate::text::count;

/// Collects from the live database and writes the file atomically; prints one line to stderr.
/// The schema contract, most of the file, is rendered while collection finishes.
pub fn run(args: &SnapshotArgs) -> Result<u8> {
    let (mut snapshot, schema) = super::collect_live_for_file(&args.connect)?;
    snapshot.write_rendered(&schema, &args.out.path, args.out.force)?;
    super::note(format_args!(
        "wrote {} ({}, {})",
        args.out.path.display(),
        count(snapshot.jobs.len(), "post-deploy job", "post-deploy jobs"),
        count(
            snapshot.invalid_indexes.len(),
            "invalid index",
            "invalid indexes"
        )
    ));
    super::end_with(snapshot);
    Ok(0)
}
