//! The traces post-deploy migrations leave in the schema, as evidence that does not depend on
//! the job records: for each catalogued migration, which of its effects the schema shows
//! (an index it creates exists, a table it drops is gone) and, for those `dataVersion` counts
//! as applied, which are missing.
//!
//! Input is the catalogue, the snapshot's schema contract and `dataVersion`; output is a
//! [`TraceReport`]. The rules for when an effect counts (and when its absence proves nothing)
//! are in [`effect_state`]; `migrations.rs`, `rollback.rs` and `upgrade.rs` read the report.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::{SchemaContract, TableContract};
use crate::medplum::catalogue::{Catalogue, Effect, EffectKind, MigrationType, Strength};

/// The table every Medplum database has (`packages/server/src/migrations/schema/schema.sql`
/// creates it; `fixtures/sql/catalogue-tables.sql` transcribes it): without it the schema is
/// not Medplum's, and absent objects say nothing about what a migration did.
const MEDPLUM_TABLE: &str = "public.Project";

/// One effect of a migration as the schema shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trace {
    pub effect: EffectKind,
    /// The object, quoted: `"HumanName"."HumanName_nameTrgm_idx"`.
    pub object: String,
    pub strength: Strength,
    /// An object the migration creates and removes again: present, a run stopped part-way.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
    /// Whether code that does not know the migration breaks on it (a dropped table or column,
    /// a new NOT NULL), with strong evidence.
    pub breaking: bool,
    /// An index the migration creates, left invalid: a concurrent build of it was interrupted
    /// (or still runs).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub invalid: bool,
    /// What the schema shows, e.g. `index "…" on "HumanName" exists, invalid`.
    pub seen: String,
}

impl Trace {
    /// Whether it shows that its migration ran, at least in part: strong evidence, or an index
    /// left invalid by an interrupted concurrent build of it.
    pub fn shows_a_run(&self) -> bool {
        self.strength == Strength::Strong || self.invalid
    }
}

/// What the schema shows of one migration's effects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationTraces {
    #[serde(rename = "type")]
    pub kind: MigrationType,
    /// The schema effects the catalogue lists for it.
    pub effects: usize,
    /// Its effects the schema shows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub present: Vec<Trace>,
    /// For a migration `dataVersion` counts as applied: its effects the schema does not show
    /// (and objects it removes again that are still there).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<Trace>,
}

impl MigrationTraces {
    /// Whether the schema shows this migration ran, at least in part.
    pub fn shows_a_run(&self) -> bool {
        self.present.iter().any(Trace::shows_a_run)
    }

    /// The present traces that break older code.
    pub fn breaking(&self) -> impl Iterator<Item = &Trace> {
        self.present.iter().filter(|t| t.breaking)
    }
}

/// The schema compared with the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceReport {
    /// Why the schema was not compared, when it was not.
    pub gap: Option<String>,
    /// Where the catalogue came from.
    pub origin: String,
    /// Every catalogued migration, by number.
    pub migrations: BTreeMap<u32, MigrationTraces>,
}

impl TraceReport {
    /// The traces of migration `version`, when the schema was compared and it is catalogued.
    pub fn get(&self, version: u32) -> Option<&MigrationTraces> {
        self.migrations.get(&version)
    }
}

/// How an effect stands in the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// The schema shows it; the text says how.
    Done(String),
    /// The schema does not; the text says what is there instead.
    NotDone(String),
    /// Neither its presence nor its absence says anything: its table is gone, or the object it
    /// removes may never have existed.
    Silent,
}

const INVALID: &str = ", invalid (an interrupted CREATE INDEX CONCURRENTLY)";

/// Compares `schema` with every migration of `catalogue`; `done` is `dataVersion`.
pub fn traces(catalogue: &Catalogue, schema: Option<&SchemaContract>, done: u32) -> TraceReport {
    let origin = catalogue.origin.clone();
    let gap = match schema {
        None => Some(
            "this snapshot carries no schema (taken by an older medmig): take it again".to_string(),
        ),
        Some(schema) if !schema.tables.contains_key(MEDPLUM_TABLE) => Some(
            "the schema has no \"Project\" table, which every Medplum database has, so what is \
             absent from it says nothing about what a migration did"
                .to_string(),
        ),
        Some(_) => None,
    };
    let (Some(schema), None) = (schema, &gap) else {
        return TraceReport {
            gap,
            origin,
            migrations: BTreeMap::new(),
        };
    };
    let migrations = catalogue
        .entries()
        .map(|(number, entry)| {
            let applied = number <= done;
            let mut present = Vec::new();
            let mut missing = Vec::new();
            for effect in &entry.effects {
                let trace = |seen: String| Trace {
                    effect: effect.kind,
                    object: effect.object(),
                    strength: effect.strength,
                    transient: effect.transient,
                    breaking: effect.strength == Strength::Strong
                        && effect.kind.breaks_older_code(),
                    invalid: left_invalid(schema, effect),
                    seen,
                };
                // Undone by a later migration that is applied: its absence is expected.
                let undone = effect.superseded_by.is_some_and(|by| by <= done);
                let state = match effect_state(catalogue, schema, number, effect, done) {
                    // What a later migration undoes is gone once that one's work shows,
                    // applied or not (v13 drops the columns v4 indexed).
                    State::NotDone(_) if undone_in(catalogue, schema, effect, done) => {
                        State::Silent
                    }
                    state => state,
                };
                match state {
                    State::Done(seen) if applied && effect.transient => {
                        missing.push(trace(format!("{seen}: left behind")));
                    }
                    State::Done(seen) => present.push(trace(seen)),
                    State::NotDone(seen) if applied && !effect.transient && !undone => {
                        missing.push(trace(seen));
                    }
                    State::NotDone(_) | State::Silent => {}
                }
            }
            (
                number,
                MigrationTraces {
                    kind: entry.kind,
                    effects: entry.effects.len(),
                    present,
                    missing,
                },
            )
        })
        .collect();
    TraceReport {
        gap: None,
        origin,
        migrations,
    }
}

/// Whether `effect` creates an index that the schema has, invalid.
fn left_invalid(schema: &SchemaContract, effect: &Effect) -> bool {
    let (Some(table), Some(index)) = (&effect.table, &effect.index) else {
        return false;
    };
    effect.kind == EffectKind::IndexCreated
        && schema
            .tables
            .get(&format!("public.{table}"))
            .and_then(|t| t.indexes.get(index))
            .is_some_and(|i| !i.valid)
}

/// Whether the schema shows the later migration's work that undoes `effect`.
fn undone_in(catalogue: &Catalogue, schema: &SchemaContract, effect: &Effect, done: u32) -> bool {
    catalogue.undoing(effect).is_some_and(|(by, drop)| {
        matches!(
            effect_state(catalogue, schema, by, drop, done),
            State::Done(_)
        )
    })
}

/// Where `effect` of migration `number` stands in `schema`, `done` being `dataVersion`.
fn effect_state(
    catalogue: &Catalogue,
    schema: &SchemaContract,
    number: u32,
    effect: &Effect,
    done: u32,
) -> State {
    let table_name = effect.table.as_deref().unwrap_or_default();
    let table: Option<&TableContract> = schema.tables.get(&format!("public.{table_name}"));
    let shown = effect.object();
    match effect.kind {
        EffectKind::TableDropped => match table {
            None => State::Done(format!("table {shown} is gone")),
            Some(_) => State::NotDone(format!("table {shown} still exists")),
        },
        EffectKind::ExtensionChanged => {
            let name = effect.extension.as_deref().unwrap_or_default();
            match schema.extensions.get(name) {
                Some(ext) => State::Done(format!("{shown} {} is installed", ext.version)),
                None => State::NotDone(format!("{shown} is not installed")),
            }
        }
        EffectKind::FunctionChanged => State::Silent,
        // Every other effect is on a table: without it, it says nothing.
        _ if table.is_none() => State::Silent,
        EffectKind::IndexCreated => {
            let name = effect.index.as_deref().unwrap_or_default();
            match table.and_then(|t| t.indexes.get(name)) {
                Some(index) => {
                    let mut seen = format!("index {shown} exists");
                    if let (Some(want), Some(have)) = (&effect.definition, &index.definition) {
                        if want != have {
                            seen.push_str(&format!(" with another definition: {have}"));
                        }
                    }
                    if !index.valid {
                        seen.push_str(INVALID);
                    }
                    State::Done(seen)
                }
                None => match table.and_then(|t| same_index_named_otherwise(t, effect)) {
                    // Medplum's generated schema names some indexes otherwise than the
                    // migration that creates them: v20.ts's "Coding_Property_full_idx" is
                    // "Coding_Property_property_value_coding_target_full_idx" in
                    // packages/server/src/migrations/schema/schema.sql@c9302a15.
                    Some(other) => State::Done(format!(
                        "index {shown} exists as \"{other}\", with the same definition"
                    )),
                    None => State::NotDone(format!("index {shown} does not exist")),
                },
            }
        }
        EffectKind::IndexDropped => {
            let name = effect.index.as_deref().unwrap_or_default();
            if table.is_some_and(|t| t.indexes.contains_key(name)) {
                return State::NotDone(format!("index {shown} still exists"));
            }
            // An index a migration not yet applied would have created may never have existed.
            match catalogue.creator_of_index(table_name, name) {
                Some(creator) if creator > done || creator >= number => State::Silent,
                _ => State::Done(format!("index {shown} is gone")),
            }
        }
        EffectKind::ColumnDropped => {
            let column = effect.column.as_deref().unwrap_or_default();
            match table.and_then(|t| t.column(column)) {
                Some(_) => State::NotDone(format!("column {shown} still exists")),
                None => State::Done(format!("column {shown} is gone")),
            }
        }
        EffectKind::NotNullSet => {
            let column = effect.column.as_deref().unwrap_or_default();
            match table.and_then(|t| t.column(column)) {
                None => State::Silent,
                Some(c) if c.not_null => State::Done(format!("{shown} is NOT NULL")),
                Some(c) if c.not_null_not_valid => State::Done(format!(
                    "{shown} is NOT NULL NOT VALID (enforced on new rows)"
                )),
                Some(_) => State::NotDone(format!("{shown} is nullable")),
            }
        }
        EffectKind::ConstraintAdded | EffectKind::ConstraintValidated => {
            let name = effect.constraint.as_deref().unwrap_or_default();
            let validate = effect.kind == EffectKind::ConstraintValidated;
            match table.and_then(|t| t.constraints.get(name)) {
                Some(c) if c.validated || !validate => State::Done(format!(
                    "constraint {shown} exists{}",
                    if c.validated {
                        ", validated"
                    } else {
                        ", NOT VALID"
                    }
                )),
                Some(_) => State::NotDone(format!("constraint {shown} is NOT VALID")),
                // Validating what is not there: the constraint-added effect says it.
                None if validate => State::Silent,
                None => State::NotDone(format!("constraint {shown} does not exist")),
            }
        }
        EffectKind::ConstraintDropped => {
            let name = effect.constraint.as_deref().unwrap_or_default();
            if table.is_some_and(|t| t.constraints.contains_key(name)) {
                return State::NotDone(format!("constraint {shown} still exists"));
            }
            // Dropping what a migration added itself (or an earlier one not applied) leaves
            // nothing that was not there before.
            match catalogue.adder_of_constraint(table_name, name, number) {
                Some(_) => State::Silent,
                None => State::Done(format!("constraint {shown} is gone")),
            }
        }
    }
}

/// An index of `table` under another name whose definition is the one `effect` creates.
fn same_index_named_otherwise<'a>(table: &'a TableContract, effect: &Effect) -> Option<&'a str> {
    // `CREATE [UNIQUE] INDEX "name" ON …`: everything from ` ON ` is the index itself.
    let body = |definition: &'a str| definition.find(" ON ").map(|at| &definition[at..]);
    let want = effect.definition.as_deref().and_then(|d| {
        let at = d.find(" ON ")?;
        Some((d.starts_with("CREATE UNIQUE "), &d[at..]))
    })?;
    table.indexes.iter().find_map(|(name, index)| {
        let have = index.definition.as_deref()?;
        (have.starts_with("CREATE UNIQUE ") == want.0 && body(have) == Some(want.1))
            .then_some(name.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnContract, IndexContract};

    fn table(columns: &[(&str, bool)], indexes: &[(&str, bool)]) -> TableContract {
        TableContract {
            kind: None,
            columns: columns
                .iter()
                .map(|(name, not_null)| ColumnContract {
                    name: name.to_string(),
                    data_type: "text".into(),
                    not_null: *not_null,
                    not_null_not_valid: false,
                    default: None,
                    identity: None,
                    generated: None,
                })
                .collect(),
            indexes: indexes
                .iter()
                .map(|(name, valid)| {
                    (
                        name.to_string(),
                        IndexContract {
                            definition: None,
                            shape: String::new(),
                            unique: false,
                            primary: false,
                            valid: *valid,
                            ready: true,
                        },
                    )
                })
                .collect(),
            constraints: BTreeMap::new(),
        }
    }

    fn schema(tables: Vec<(&str, TableContract)>) -> SchemaContract {
        let mut schema = SchemaContract::default();
        schema
            .tables
            .insert(MEDPLUM_TABLE.into(), table(&[("id", true)], &[]));
        for (name, t) in tables {
            schema.tables.insert(format!("public.{name}"), t);
        }
        schema
    }

    #[test]
    fn no_project_table_no_comparison() {
        let mut s = schema(vec![]);
        s.tables.remove(MEDPLUM_TABLE);
        let report = traces(&Catalogue::embedded(), Some(&s), 0);
        assert!(report.gap.unwrap().contains("\"Project\""));
        assert!(report.migrations.is_empty());
        assert!(traces(&Catalogue::embedded(), None, 0).gap.is_some());
    }

    #[test]
    fn dropped_tables_of_an_unapplied_migration_are_strong_breaking_traces() {
        // v30.ts drops the three PasswordChangeRequest tables; here they are gone at
        // dataVersion 29.
        let report = traces(&Catalogue::embedded(), Some(&schema(vec![])), 29);
        let v30 = report.get(30).unwrap();
        assert_eq!(v30.present.len(), 3);
        assert!(v30.shows_a_run());
        assert_eq!(v30.breaking().count(), 3);
        // With the tables there, nothing.
        let t = || table(&[("id", true)], &[]);
        let s = schema(vec![
            ("PasswordChangeRequest", t()),
            ("PasswordChangeRequest_History", t()),
            ("PasswordChangeRequest_References", t()),
        ]);
        let report = traces(&Catalogue::embedded(), Some(&s), 29);
        assert!(report.get(30).unwrap().present.is_empty());
        // Applied, yet the tables are there: missing.
        let report = traces(&Catalogue::embedded(), Some(&s), 30);
        assert_eq!(report.get(30).unwrap().missing.len(), 3);
    }

    #[test]
    fn an_index_created_is_weak_unless_left_invalid() {
        let columns = [("name", false), ("given", false), ("family", false)];
        let names = [
            ("HumanName_nameTrgm_idx", false),
            ("HumanName_givenTrgm_idx", true),
            ("HumanName_familyTrgm_idx", true),
        ];
        let s = schema(vec![("HumanName", table(&columns, &names))]);
        let report = traces(&Catalogue::embedded(), Some(&s), 16);
        let v17 = report.get(17).unwrap();
        assert_eq!(v17.present.len(), 3);
        assert!(v17.present.iter().all(|t| t.strength == Strength::Weak));
        assert_eq!(v17.breaking().count(), 0);
        assert!(v17.shows_a_run(), "the invalid index shows a run");
        let valid = schema(vec![(
            "HumanName",
            table(&columns, &names.map(|(n, _)| (n, true))),
        )]);
        assert!(!traces(&Catalogue::embedded(), Some(&valid), 16)
            .get(17)
            .unwrap()
            .shows_a_run());
        assert_eq!(
            Catalogue::embedded().creator_of_index("HumanName", "HumanName_givenTrgm_idx"),
            Some(17)
        );
    }

    #[test]
    fn an_index_the_generated_schema_names_otherwise_counts_by_its_definition() {
        // packages/server/src/migrations/schema/schema.sql@c9302a15 has v20.ts's unique index
        // under another name, with the same definition.
        let mut t = table(&[("property", true), ("value", true)], &[]);
        let index = |definition: &str, unique| IndexContract {
            definition: Some(definition.to_string()),
            shape: String::new(),
            unique,
            primary: false,
            valid: true,
            ready: true,
        };
        t.indexes.insert(
            "Coding_Property_property_value_coding_target_full_idx".into(),
            index(
                "CREATE UNIQUE INDEX \"Coding_Property_property_value_coding_target_full_idx\" \
                 ON public.\"Coding_Property\" USING btree (property, value, coding, target)",
                true,
            ),
        );
        // The same columns, not unique: not the index v20 creates.
        t.indexes.insert(
            "Coding_Property_coding_property__idx".into(),
            index(
                "CREATE UNIQUE INDEX \"Coding_Property_coding_property__idx\" ON \
                 public.\"Coding_Property\" USING btree (property, coding)",
                true,
            ),
        );
        let report = traces(
            &Catalogue::embedded(),
            Some(&schema(vec![("Coding_Property", t)])),
            20,
        );
        let missing: Vec<&str> = report
            .get(20)
            .unwrap()
            .missing
            .iter()
            .map(|t| t.object.as_str())
            .collect();
        assert_eq!(missing, ["\"Coding_Property\".\"Coding_Property_idx\""]);
    }

    #[test]
    fn the_absence_of_what_may_never_have_existed_is_no_trace() {
        // v18 drops the index v16 creates: at dataVersion 15 its absence proves nothing.
        let s = schema(vec![(
            "Coding",
            table(&[("isSynonym", false), ("synonymOf", false)], &[]),
        )]);
        let report = traces(&Catalogue::embedded(), Some(&s), 15);
        assert!(report
            .get(18)
            .unwrap()
            .present
            .iter()
            .all(|t| t.effect != EffectKind::IndexDropped));
        // v16's index, undone by v18, is not missing once v18 is applied.
        let report = traces(&Catalogue::embedded(), Some(&s), 18);
        let v16 = report.get(16).unwrap();
        assert!(v16
            .missing
            .iter()
            .all(|t| !t.object.contains("Coding_system_code_preferred_idx")));
        assert!(v16
            .missing
            .iter()
            .any(|t| t.object == "\"Coding\".\"isSynonym\""));
    }
}
