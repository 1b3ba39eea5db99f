//! A schema baseline (`--baseline`: a `schema capture` file or a snapshot):
//! `SchemaCapture::read_baseline`, then `schema diff` against a fixture's schema both ways, in
//! every format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmig::catalog::SchemaCapture;
use medmig_fuzz::{exercise_schema_diff, fixture_snapshot, scratch_file};

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("baseline.json", data);
    let Ok(baseline) = SchemaCapture::read_baseline(&path) else {
        return;
    };
    let fixture = fixture_snapshot();
    let current = SchemaCapture {
        format_version: 1,
        medmig_version: "fuzz".into(),
        captured_at: fixture.taken_at,
        source: fixture.source.clone(),
        schema: (*fixture.schema.clone().expect("the fixture has a schema")).clone(),
    };
    exercise_schema_diff(&baseline, &current);
});
