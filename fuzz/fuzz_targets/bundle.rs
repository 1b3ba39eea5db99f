//! A support bundle (`bundle verify`, `--bundle`, `report`): the file through
//! `archive::verify`, `archive::read_snapshot` and `BundleContents::read`, a snapshot found
//! inside through everything the commands do with one, and the contents through the incident
//! report. The input's first byte says how it makes the file (see `bundle_input`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmig::bundle::archive;
use medmig_fuzz::{bundle_input, embedded_manifest, exercise_snapshot, scratch_file};

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("bundle.tar.gz", &bundle_input::file_of(data));
    if let Ok(verification) = archive::verify(&path) {
        let _ = verification.is_intact();
        let _ = medmig::render::timestamp(&verification.manifest.created_at);
    }
    if let Ok(snapshot) = archive::read_snapshot(&path) {
        exercise_snapshot(&snapshot, embedded_manifest());
    }
    if let Ok(contents) = medmig::bundle::contents::BundleContents::read(&path) {
        let _ = medmig::commands::report::write(&mut Vec::new(), &contents);
    }
});
