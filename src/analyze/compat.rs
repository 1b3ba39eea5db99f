//! Schema compatibility: every difference between a baseline schema contract (what older
//! code was written against) and the current one, classified by what it means for that code.
//!
//! The ids and their impact are the contract of `medmig schema diff` and of the schema checks
//! of `rollback-check`; the README lists them. Pure: two contracts in, differences out.

use serde::Serialize;

use super::Impact;
use crate::catalog::{ConstraintKind, SchemaContract, TableContract};

/// One difference between the baseline and the current schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaDifference {
    /// Stable id, e.g. `column-dropped`.
    pub id: &'static str,
    #[serde(rename = "severity")]
    pub impact: Impact,
    /// The object: `public.Patient`, `public.Patient.birthdate`, an index or function name.
    pub object: String,
    /// What changed, with both sides where there are two.
    pub message: String,
}

/// Every id `diff` can produce, with its impact, in README order.
pub const DIFFERENCE_IDS: [(&str, Impact); 25] = [
    ("table-dropped", Impact::Blocker),
    ("column-dropped", Impact::Blocker),
    ("column-type-changed", Impact::Blocker),
    ("column-made-not-null", Impact::Blocker),
    ("required-column-added", Impact::Blocker),
    ("default-dropped", Impact::Blocker),
    ("unique-index-added", Impact::Blocker),
    ("unique-constraint-added", Impact::Blocker),
    ("check-constraint-added", Impact::Blocker),
    ("foreign-key-added", Impact::Blocker),
    ("function-dropped", Impact::Blocker),
    ("function-changed", Impact::Blocker),
    ("extension-dropped", Impact::Blocker),
    ("index-dropped", Impact::Warning),
    ("index-changed", Impact::Warning),
    ("index-invalid", Impact::Warning),
    ("constraint-not-validated", Impact::Warning),
    ("index-compared-by-shape", Impact::Warning),
    ("table-added", Impact::Info),
    ("column-added", Impact::Info),
    ("index-added", Impact::Info),
    ("constraint-dropped", Impact::Info),
    ("function-added", Impact::Info),
    ("extension-added", Impact::Info),
    ("extension-updated", Impact::Info),
];

/// The impact of difference `id`.
pub fn impact_of(id: &str) -> Impact {
    DIFFERENCE_IDS
        .iter()
        .find(|(known, _)| *known == id)
        .map_or(Impact::Info, |(_, impact)| *impact)
}

struct Differences(Vec<SchemaDifference>);

impl Differences {
    fn push(&mut self, id: &'static str, object: impl Into<String>, message: impl Into<String>) {
        self.0.push(SchemaDifference {
            id,
            impact: impact_of(id),
            object: object.into(),
            message: message.into(),
        });
    }
}

/// Every difference from `baseline` to `current`, blockers first.
pub fn diff(baseline: &SchemaContract, current: &SchemaContract) -> Vec<SchemaDifference> {
    let mut found = Differences(Vec::new());
    for (name, old) in &baseline.tables {
        match current.tables.get(name) {
            None => found.push(
                "table-dropped",
                name,
                format!("{} {name} no longer exists", old.noun()),
            ),
            Some(new) => compare_table(name, old, new, &mut found),
        }
    }
    for (name, new) in &current.tables {
        if !baseline.tables.contains_key(name) {
            found.push("table-added", name, format!("{} {name} is new", new.noun()));
        }
    }
    for (name, old) in &baseline.functions {
        match current.functions.get(name) {
            None => found.push(
                "function-dropped",
                name,
                format!("function {name} no longer exists"),
            ),
            Some(new) if new != old => found.push(
                "function-changed",
                name,
                if new.result != old.result {
                    format!(
                        "function {name} now returns {} (was {})",
                        new.result, old.result
                    )
                } else {
                    format!("function {name} has a different definition")
                },
            ),
            Some(_) => {}
        }
    }
    for name in current.functions.keys() {
        if !baseline.functions.contains_key(name) {
            found.push("function-added", name, format!("function {name} is new"));
        }
    }
    for (name, old) in &baseline.extensions {
        match current.extensions.get(name) {
            None => found.push(
                "extension-dropped",
                name,
                format!("extension {name} is no longer installed"),
            ),
            Some(new) if new.version != old.version => found.push(
                "extension-updated",
                name,
                format!(
                    "extension {name} was updated from {} to {}",
                    old.version, new.version
                ),
            ),
            Some(_) => {}
        }
    }
    for (name, new) in &current.extensions {
        if !baseline.extensions.contains_key(name) {
            found.push(
                "extension-added",
                name,
                format!("extension {name} {} is new", new.version),
            );
        }
    }
    let mut differences = found.0;
    differences.sort_by(|a, b| (a.impact, a.id, &a.object).cmp(&(b.impact, b.id, &b.object)));
    differences
}

fn compare_table(table: &str, old: &TableContract, new: &TableContract, found: &mut Differences) {
    for column in &old.columns {
        let object = format!("{table}.{}", column.name);
        let Some(now) = new.column(&column.name) else {
            found.push(
                "column-dropped",
                object,
                format!("column {table}.{} no longer exists", column.name),
            );
            continue;
        };
        if now.data_type != column.data_type {
            found.push(
                "column-type-changed",
                &object,
                format!(
                    "column {object} is now {} (was {})",
                    now.data_type, column.data_type
                ),
            );
        }
        if now.not_null && !column.not_null {
            found.push(
                "column-made-not-null",
                &object,
                format!(
                    "column {object} is now NOT NULL{}: older code may write nulls",
                    if now.not_null_not_valid {
                        " (NOT VALID: checked on new rows only)"
                    } else {
                        ""
                    }
                ),
            );
        }
        if now.not_null
            && column.default.is_some()
            && now.default.is_none()
            && now.identity.is_none()
        {
            found.push(
                "default-dropped",
                &object,
                format!(
                    "column {object} is NOT NULL and lost its default {}: inserts that omit it fail",
                    column.default.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    for column in &new.columns {
        if old.column(&column.name).is_some() {
            continue;
        }
        let object = format!("{table}.{}", column.name);
        if column.fills_itself() {
            found.push(
                "column-added",
                &object,
                format!("column {object} ({}) is new", column.data_type),
            );
        } else {
            found.push(
                "required-column-added",
                &object,
                format!(
                    "column {object} ({}) is new, NOT NULL and without a default: older code does not fill it",
                    column.data_type
                ),
            );
        }
    }

    for (name, index) in &old.indexes {
        match new.indexes.get(name) {
            None => found.push(
                "index-dropped",
                name,
                format!("index {name} on {table} no longer exists"),
            ),
            Some(now) if now.differs_from(index) => {
                let id = if now.unique && !index.primary {
                    "unique-index-added"
                } else {
                    "index-changed"
                };
                found.push(
                    id,
                    name,
                    format!(
                        "index {name} on {table} is now `{}` (was `{}`)",
                        now.shown(),
                        index.shown()
                    ),
                );
            }
            Some(now) if now.definition.is_none() || index.definition.is_none() => found.push(
                "index-compared-by-shape",
                name,
                format!(
                    "index {name} on {table}: its definition was not read {} (a \
                     migration held the table locked, or it needs what only the server prints), \
                     so only its shape `{}` was compared, which is blind to expression, \
                     predicate and parameter text; capture again when the table is free",
                    if now.definition.is_none() && index.definition.is_none() {
                        "on either side"
                    } else if now.definition.is_none() {
                        "in the current schema"
                    } else {
                        "in the baseline"
                    },
                    now.shape
                ),
            ),
            Some(_) => {}
        }
    }
    for (name, index) in &new.indexes {
        if !index.valid && old.indexes.get(name).is_none_or(|o| o.valid) {
            found.push(
                "index-invalid",
                name,
                format!("index {name} on {table} is invalid (an interrupted CREATE INDEX CONCURRENTLY?)"),
            );
        }
        if old.indexes.contains_key(name) || is_constraint_index(new, name) {
            continue;
        }
        let id = if index.unique {
            "unique-index-added"
        } else {
            "index-added"
        };
        found.push(
            id,
            name,
            format!("index {name} on {table} is new: {}", index.shown()),
        );
    }

    for (name, constraint) in &new.constraints {
        let before = old.constraints.get(name);
        if before == Some(constraint) {
            continue;
        }
        if !constraint.validated {
            found.push(
                "constraint-not-validated",
                name,
                format!(
                    "constraint {name} on {table} exists but is NOT VALID: {}",
                    constraint.shown()
                ),
            );
            continue;
        }
        if before.is_some_and(|b| !b.enforces_other_than(constraint)) {
            // Only validation changed: what the NOT VALID constraint already enforced.
            continue;
        }
        let id = match constraint.kind {
            ConstraintKind::PrimaryKey | ConstraintKind::Unique | ConstraintKind::Exclusion => {
                "unique-constraint-added"
            }
            ConstraintKind::Check => "check-constraint-added",
            ConstraintKind::ForeignKey => "foreign-key-added",
        };
        let verb = if before.is_some() {
            "was changed to"
        } else {
            "is new"
        };
        found.push(
            id,
            name,
            format!(
                "constraint {name} on {table} {verb}: {}",
                constraint.shown()
            ),
        );
    }
    for name in old.constraints.keys() {
        if !new.constraints.contains_key(name) {
            found.push(
                "constraint-dropped",
                name,
                format!("constraint {name} on {table} no longer exists"),
            );
        }
    }
}

/// Whether `index` backs a constraint of the same name (reported as the constraint).
fn is_constraint_index(table: &TableContract, index: &str) -> bool {
    table.constraints.get(index).is_some_and(|c| {
        matches!(
            c.kind,
            ConstraintKind::PrimaryKey | ConstraintKind::Unique | ConstraintKind::Exclusion
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{
        ColumnContract, ConstraintContract, ExtensionContract, FunctionContract, IndexContract,
    };

    fn column(
        name: &str,
        data_type: &str,
        not_null: bool,
        default: Option<&str>,
    ) -> ColumnContract {
        ColumnContract {
            name: name.into(),
            data_type: data_type.into(),
            not_null,
            not_null_not_valid: false,
            default: default.map(Into::into),
            identity: None,
            generated: None,
        }
    }

    fn index(definition: &str, unique: bool) -> IndexContract {
        IndexContract {
            definition: Some(definition.into()),
            shape: definition.into(),
            unique,
            primary: false,
            valid: true,
            ready: true,
        }
    }

    fn baseline() -> SchemaContract {
        let mut schema = SchemaContract::default();
        let mut patient = TableContract {
            columns: vec![
                column("id", "uuid", true, None),
                column("content", "text", true, None),
                column("deleted", "boolean", true, Some("false")),
                column("birthdate", "date", false, None),
            ],
            ..TableContract::default()
        };
        patient.indexes.insert(
            "Patient_birthdate_idx".into(),
            index("CREATE INDEX \"Patient_birthdate_idx\" ON public.\"Patient\" USING btree (birthdate)", false),
        );
        schema.tables.insert("public.Patient".into(), patient);
        schema
            .tables
            .insert("public.Observation".into(), TableContract::default());
        schema.functions.insert(
            "public.token_array_to_text(text[])".into(),
            FunctionContract {
                result: "text".into(),
                kind: "function".into(),
                definition_hash: "aa".into(),
            },
        );
        schema.extensions.insert(
            "pg_trgm".into(),
            ExtensionContract {
                version: "1.6".into(),
                schema: "public".into(),
            },
        );
        schema
    }

    fn ids(current: &SchemaContract) -> Vec<&'static str> {
        diff(&baseline(), current).iter().map(|d| d.id).collect()
    }

    fn patient(schema: &mut SchemaContract) -> &mut TableContract {
        schema.tables.get_mut("public.Patient").unwrap()
    }

    #[test]
    fn identical_schemas_have_no_differences() {
        assert!(ids(&baseline()).is_empty());
    }

    #[test]
    fn additive_changes_are_info_only() {
        let mut now = baseline();
        patient(&mut now)
            .columns
            .push(column("__nameSort", "text", false, None));
        patient(&mut now)
            .columns
            .push(column("__version", "integer", true, Some("0")));
        patient(&mut now).indexes.insert(
            "Patient_nameSort_idx".into(),
            index("CREATE INDEX … (\"__nameSort\")", false),
        );
        now.tables
            .insert("public.Task".into(), TableContract::default());
        let differences = diff(&baseline(), &now);
        assert!(
            differences.iter().all(|d| d.impact == Impact::Info),
            "{differences:?}"
        );
        assert_eq!(
            differences.iter().map(|d| d.id).collect::<Vec<_>>(),
            ["column-added", "column-added", "index-added", "table-added"]
        );
    }

    #[test]
    fn breaking_column_changes_are_blockers() {
        let mut now = baseline();
        let table = patient(&mut now);
        table.columns.retain(|c| c.name != "content");
        table.columns[1] = column("deleted", "boolean", true, None);
        table.columns[2] = column("birthdate", "text", true, None);
        table.columns.push(column("projectId", "uuid", true, None));
        let found = ids(&now);
        for id in [
            "column-dropped",
            "default-dropped",
            "column-type-changed",
            "column-made-not-null",
            "required-column-added",
        ] {
            assert!(found.contains(&id), "{id} missing from {found:?}");
        }
    }

    #[test]
    fn dropped_table_function_and_extension_are_blockers() {
        let mut now = baseline();
        now.tables.remove("public.Observation");
        now.functions.clear();
        now.extensions.clear();
        assert_eq!(
            ids(&now),
            ["extension-dropped", "function-dropped", "table-dropped"]
        );
        let mut now = baseline();
        now.functions
            .get_mut("public.token_array_to_text(text[])")
            .unwrap()
            .definition_hash = "bb".into();
        assert_eq!(ids(&now), ["function-changed"]);
    }

    #[test]
    fn constraints_and_unique_indexes_by_validation() {
        let mut now = baseline();
        let constraint = |kind, definition: &str, validated| ConstraintContract {
            kind,
            definition: Some(definition.into()),
            validated,
        };
        let table = patient(&mut now);
        table.constraints.insert(
            "Patient_deleted_check".into(),
            constraint(ConstraintKind::Check, "CHECK (deleted IS NOT NULL)", true),
        );
        table.constraints.insert(
            "Patient_project_fk".into(),
            constraint(
                ConstraintKind::ForeignKey,
                "FOREIGN KEY (x) REFERENCES y(id)",
                false,
            ),
        );
        table.constraints.insert(
            "Patient_content_key".into(),
            constraint(ConstraintKind::Unique, "UNIQUE (content)", true),
        );
        table.indexes.insert(
            "Patient_content_key".into(),
            index("CREATE UNIQUE INDEX … (content)", true),
        );
        table.indexes.insert(
            "Patient_id_uidx".into(),
            index("CREATE UNIQUE INDEX … (id)", true),
        );
        assert_eq!(
            ids(&now),
            [
                "check-constraint-added",
                "unique-constraint-added",
                "unique-index-added",
                "constraint-not-validated"
            ]
        );
    }

    #[test]
    fn validating_a_constraint_or_not_reading_it_is_no_change() {
        let check = |definition: Option<&str>, validated| ConstraintContract {
            kind: ConstraintKind::Check,
            definition: definition.map(Into::into),
            validated,
        };
        let with = |constraint| {
            let mut schema = baseline();
            patient(&mut schema)
                .constraints
                .insert("Patient_deleted_not_null".into(), constraint);
            schema
        };
        let added = with(check(Some("CHECK ((deleted IS NOT NULL))"), false));
        let validated = with(check(Some("CHECK ((deleted IS NOT NULL))"), true));
        let locked = with(check(None, true));
        let changed = with(check(Some("CHECK ((deleted = false))"), true));
        assert!(diff(&added, &validated).is_empty());
        assert!(diff(&validated, &locked).is_empty());
        assert!(diff(&locked, &validated).is_empty());
        let ids: Vec<_> = diff(&validated, &changed).iter().map(|d| d.id).collect();
        assert_eq!(ids, ["check-constraint-added"]);
    }

    #[test]
    fn every_change_of_an_index_is_seen() {
        let base =
            "CREATE INDEX \"Patient_birthdate_idx\" ON public.\"Patient\" USING btree (birthdate)";
        for changed in [
            "CREATE INDEX \"Patient_birthdate_idx\" ON public.\"Patient\" USING btree (birthdate, id)",
            "CREATE INDEX \"Patient_birthdate_idx\" ON public.\"Patient\" USING hash (birthdate)",
            "CREATE INDEX \"Patient_birthdate_idx\" ON public.\"Patient\" USING btree (birthdate DESC)",
            "CREATE INDEX \"Patient_birthdate_idx\" ON public.\"Patient\" USING btree (birthdate) WHERE (deleted = false)",
            "CREATE INDEX \"Patient_birthdate_idx\" ON public.\"Patient\" USING btree (lower((birthdate)::text))",
            "CREATE INDEX \"Patient_birthdate_idx\" ON public.\"Patient\" USING btree (birthdate text_pattern_ops)",
        ] {
            assert_ne!(changed, base);
            let mut now = baseline();
            patient(&mut now).indexes.get_mut("Patient_birthdate_idx").unwrap().definition =
                Some(changed.into());
            assert_eq!(ids(&now), ["index-changed"], "{changed}");
        }
        let mut now = baseline();
        let idx = patient(&mut now)
            .indexes
            .get_mut("Patient_birthdate_idx")
            .unwrap();
        idx.unique = true;
        idx.definition = Some(base.replace("CREATE INDEX", "CREATE UNIQUE INDEX"));
        assert_eq!(ids(&now), ["unique-index-added"]);
        let mut now = baseline();
        patient(&mut now)
            .indexes
            .get_mut("Patient_birthdate_idx")
            .unwrap()
            .valid = false;
        assert_eq!(ids(&now), ["index-invalid"]);
        let mut now = baseline();
        patient(&mut now).indexes.clear();
        assert_eq!(ids(&now), ["index-dropped"]);
    }

    #[test]
    fn an_index_captured_while_its_table_was_locked_is_compared_by_shape() {
        let mut now = baseline();
        let idx = patient(&mut now)
            .indexes
            .get_mut("Patient_birthdate_idx")
            .unwrap();
        idx.definition = None;
        assert_eq!(
            ids(&now),
            ["index-compared-by-shape"],
            "same shape, no definition: said, never silently the same"
        );
        let idx = patient(&mut now)
            .indexes
            .get_mut("Patient_birthdate_idx")
            .unwrap();
        idx.shape = idx.shape.replace("(birthdate)", "(birthdate DESC)");
        assert_eq!(ids(&now), ["index-changed"]);
    }

    #[test]
    fn every_id_has_one_impact() {
        for (id, impact) in DIFFERENCE_IDS {
            assert_eq!(impact_of(id), impact);
        }
        let mut seen = std::collections::BTreeSet::new();
        assert!(DIFFERENCE_IDS.iter().all(|(id, _)| seen.insert(*id)));
    }
}
