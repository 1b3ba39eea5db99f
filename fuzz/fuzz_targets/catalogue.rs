//! A migration catalogue (`--migration-catalogue`): `Catalogue::parse` (with the links between
//! effects it works out), each entry's summary, and every analysis of a fixture snapshot under
//! it, the snapshot given Medplum's `"Project"` table and the tables the catalogue names so
//! that its effects are compared with the schema.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmig::catalog::TableContract;
use medmig::medplum::catalogue::Catalogue;
use medmig_fuzz::{embedded_manifest, exercise_snapshot_with, fixture_snapshot};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(catalogue) = Catalogue::parse(text, "fuzz") else {
        return;
    };
    let mut snapshot = fixture_snapshot().clone();
    let schema = std::sync::Arc::make_mut(snapshot.schema.get_or_insert_with(Default::default));
    schema
        .tables
        .insert("public.Project".into(), TableContract::default());
    for (_, entry) in catalogue.entries() {
        let _ = (entry.summary(), entry.rewrites_data());
        for effect in entry.effects.iter().take(8) {
            let _ = (effect.describe(), catalogue.undoing(effect));
            if let Some(table) = &effect.table {
                schema
                    .tables
                    .entry(format!("public.{table}"))
                    .or_default();
            }
        }
    }
    exercise_snapshot_with(&snapshot, embedded_manifest(), &catalogue);
});
