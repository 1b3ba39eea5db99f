//! A snapshot file (`--snapshot`): JSON → `Snapshot::parse`, then everything the commands do
//! with a snapshot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmig::snapshot::Snapshot;
use medmig_fuzz::{embedded_manifest, exercise_snapshot};

fuzz_target!(|data: &[u8]| {
    // `Snapshot::read` refuses text that is not UTF-8 before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(snapshot) = Snapshot::parse(text) {
        exercise_snapshot(&snapshot, embedded_manifest());
    }
});
