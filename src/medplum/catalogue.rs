//! The catalogue of Medplum's post-deploy migrations: for each, its type (custom or reindex)
//! and every schema effect it has (index created or dropped, table or column dropped, NOT NULL
//! set, constraint added, validated or dropped, extension changed), with how strong a trace
//! each leaves, and the data it changes without a schema trace (backfills).
//!
//! The default is embedded from `migration-catalogue.json` beside this file, built by reading
//! every `packages/server/src/migrations/data/vN.ts` of medplum/medplum (each entry names the
//! files and commits it was read from); `--migration-catalogue FILE` replaces it. This module
//! owns the file format, its validation and what follows from the effects alone (which later
//! migration undoes an effect); `analyze/traces.rs` compares them with a schema.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::manifest::{data_version_number, digits_value};

const EMBEDDED: &str = include_str!("migration-catalogue.json");

/// The `format` every catalogue file carries.
pub const FORMAT: &str = "medmig-migration-catalogue";

/// What a post-deploy migration is, as Medplum's `vN.ts` declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationType {
    /// Its own statements: schema changes and backfills, in one run that writes nothing to its
    /// job until it ends.
    Custom,
    /// Re-indexes resources through the reindex job, which records progress as it goes and
    /// never changes the schema.
    Reindex,
    /// Its content could not be read from Medplum's source: nothing is known of its effects.
    Unknown,
}

impl Strength {
    /// `strong` or `weak`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strength::Strong => "strong",
            Strength::Weak => "weak",
        }
    }
}

impl MigrationType {
    /// `custom`, `reindex` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationType::Custom => "custom",
            MigrationType::Reindex => "reindex",
            MigrationType::Unknown => "unknown",
        }
    }
}

/// How much the presence of an effect says about whether its migration ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// A drop or a new NOT NULL: nothing but this migration (or a release the older code does
    /// not know) explains it.
    Strong,
    /// An object created `IF NOT EXISTS` that a pre-deploy migration, a fresh install or
    /// another release may also have made: alone it proves nothing.
    Weak,
}

/// The kinds of schema effect, with the ids used in every output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EffectKind {
    IndexCreated,
    IndexDropped,
    TableDropped,
    ColumnDropped,
    NotNullSet,
    ConstraintAdded,
    ConstraintValidated,
    ConstraintDropped,
    ExtensionChanged,
    FunctionChanged,
}

impl EffectKind {
    /// The kebab-case id, e.g. `table-dropped`.
    pub fn as_str(self) -> &'static str {
        match self {
            EffectKind::IndexCreated => "index-created",
            EffectKind::IndexDropped => "index-dropped",
            EffectKind::TableDropped => "table-dropped",
            EffectKind::ColumnDropped => "column-dropped",
            EffectKind::NotNullSet => "not-null-set",
            EffectKind::ConstraintAdded => "constraint-added",
            EffectKind::ConstraintValidated => "constraint-validated",
            EffectKind::ConstraintDropped => "constraint-dropped",
            EffectKind::ExtensionChanged => "extension-changed",
            EffectKind::FunctionChanged => "function-changed",
        }
    }

    /// Whether code that does not know the migration breaks when it meets the effect: a table
    /// or column it reads is gone, or a column it may leave empty must now be filled. Indexes
    /// and extensions only change speed.
    pub fn breaks_older_code(self) -> bool {
        matches!(
            self,
            EffectKind::TableDropped
                | EffectKind::ColumnDropped
                | EffectKind::NotNullSet
                | EffectKind::ConstraintValidated
        )
    }

    /// Whether it removes an object.
    fn is_drop(self) -> bool {
        matches!(
            self,
            EffectKind::IndexDropped
                | EffectKind::TableDropped
                | EffectKind::ColumnDropped
                | EffectKind::ConstraintDropped
        )
    }

    /// The fields an effect of this kind must name, beside `kind` and `strength`.
    fn required(self) -> &'static [&'static str] {
        match self {
            EffectKind::IndexCreated => &["table", "index", "definition"],
            EffectKind::IndexDropped => &["table", "index"],
            EffectKind::TableDropped => &["table"],
            EffectKind::ColumnDropped | EffectKind::NotNullSet => &["table", "column"],
            EffectKind::ConstraintAdded
            | EffectKind::ConstraintValidated
            | EffectKind::ConstraintDropped => &["table", "constraint"],
            EffectKind::ExtensionChanged => &["extension"],
            EffectKind::FunctionChanged => &["function"],
        }
    }
}

/// One thing a migration does to the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Effect {
    pub kind: EffectKind,
    /// The table, in schema `public` (Medplum's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// An index as `pg_get_indexdef` prints it, a constraint as `pg_get_constraintdef` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    pub strength: Strength,
    /// Created and removed again by the same migration: present, it shows a run that stopped
    /// part-way; on success it is gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
    /// The later migration that undoes this effect (drops the index, its table or a column it
    /// covers), worked out from the catalogue itself.
    #[serde(skip)]
    pub superseded_by: Option<u32>,
}

impl Effect {
    /// The object, quoted as PostgreSQL would: `"HumanName"."HumanName_nameTrgm_idx"`,
    /// `"Coding"."isSynonym"`, `extension btree_gist`.
    pub fn object(&self) -> String {
        let quoted = |name: &str| format!("\"{name}\"");
        let table = self.table.as_deref().map(quoted).unwrap_or_default();
        let inner = self
            .index
            .as_deref()
            .or(self.column.as_deref())
            .or(self.constraint.as_deref());
        match (self.kind, inner) {
            (EffectKind::ExtensionChanged, _) => {
                format!("extension {}", self.extension.as_deref().unwrap_or("?"))
            }
            (EffectKind::FunctionChanged, _) => {
                format!("function {}", self.function.as_deref().unwrap_or("?"))
            }
            (EffectKind::TableDropped, _) | (_, None) => table,
            (_, Some(inner)) => format!("{table}.{}", quoted(inner)),
        }
    }

    /// What the migration does, in a few words: `drops table "PasswordChangeRequest"`.
    pub fn describe(&self) -> String {
        let object = self.object();
        match self.kind {
            EffectKind::IndexCreated => format!("creates index {object}"),
            EffectKind::IndexDropped => format!("drops index {object}"),
            EffectKind::TableDropped => format!("drops table {object}"),
            EffectKind::ColumnDropped => format!("drops column {object}"),
            EffectKind::NotNullSet => format!("sets NOT NULL on {object}"),
            EffectKind::ConstraintAdded => format!("adds constraint {object}"),
            EffectKind::ConstraintValidated => format!("validates constraint {object}"),
            EffectKind::ConstraintDropped => format!("drops constraint {object}"),
            EffectKind::ExtensionChanged => format!("installs {object}"),
            EffectKind::FunctionChanged => format!("changes {object}"),
        }
    }

    /// Whether this effect's index definition names `column` as an identifier (after `USING`,
    /// so that the index and table names do not count).
    fn covers_column(&self, column: &str) -> bool {
        let Some(definition) = &self.definition else {
            return false;
        };
        let keys = definition
            .find(" USING ")
            .map_or(definition.as_str(), |at| &definition[at..]);
        let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
        keys.match_indices(column).any(|(at, _)| {
            let before = keys[..at].chars().next_back();
            let after = keys[at + column.len()..].chars().next();
            !before.is_some_and(ident) && !after.is_some_and(ident)
        })
    }
}

/// Data a migration changes without a schema trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataChange {
    /// `backfill` or `delete`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub what: String,
}

/// What a reindex migration re-indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reindex {
    pub resource_types: Vec<String>,
    /// Resources stored at or below this index layout version are re-indexed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resource_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// One post-deploy migration as the catalogue describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueEntry {
    #[serde(rename = "type")]
    pub kind: MigrationType,
    /// How sure the reading was: `high`, `medium` or `low`.
    pub confidence: String,
    /// The files (`path@commit` in medplum/medplum) the entry was read from.
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reindex: Option<Reindex>,
    #[serde(default)]
    pub data_changes: Vec<DataChange>,
    #[serde(default)]
    pub effects: Vec<Effect>,
}

impl CatalogueEntry {
    /// What it will do, in one line: its type, its schema effects counted by kind with the
    /// first objects named, and the data it rewrites.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(reindex) = &self.reindex {
            let types = &reindex.resource_types;
            let named = if types.len() <= 5 {
                types.join(", ")
            } else {
                format!("{} resource types", types.len())
            };
            parts.push(format!(
                "re-indexes {named}{} (a long run through the resources, progress recorded as it \
                 goes)",
                reindex
                    .max_resource_version
                    .map(|v| format!(" stored at index layout {v} or below"))
                    .unwrap_or_default()
            ));
        }
        let mut kinds: BTreeMap<EffectKind, Vec<&Effect>> = BTreeMap::new();
        for effect in self.effects.iter().filter(|e| !e.transient) {
            kinds.entry(effect.kind).or_default().push(effect);
        }
        for (kind, effects) in kinds {
            let objects: Vec<String> = effects.iter().take(3).map(|e| e.object()).collect();
            let more = match effects.len() {
                n if n > 3 => format!(" and {} more", n - 3),
                _ => String::new(),
            };
            let verb = match kind {
                EffectKind::IndexCreated => "creates",
                EffectKind::IndexDropped
                | EffectKind::TableDropped
                | EffectKind::ColumnDropped
                | EffectKind::ConstraintDropped => "drops",
                EffectKind::NotNullSet => "sets NOT NULL on",
                EffectKind::ConstraintAdded => "adds",
                EffectKind::ConstraintValidated => "validates",
                EffectKind::ExtensionChanged => "installs",
                EffectKind::FunctionChanged => "changes",
            };
            let noun = match kind {
                EffectKind::IndexCreated | EffectKind::IndexDropped => ("index", "indexes"),
                EffectKind::TableDropped => ("table", "tables"),
                EffectKind::ColumnDropped | EffectKind::NotNullSet => ("column", "columns"),
                EffectKind::ConstraintAdded
                | EffectKind::ConstraintValidated
                | EffectKind::ConstraintDropped => ("constraint", "constraints"),
                EffectKind::ExtensionChanged => ("extension", "extensions"),
                EffectKind::FunctionChanged => ("function", "functions"),
            };
            parts.push(format!(
                "{verb} {} ({}{more})",
                crate::text::count(effects.len(), noun.0, noun.1),
                objects.join(", ")
            ));
        }
        for change in &self.data_changes {
            parts.push(format!("{}: {}", change.kind, change.what));
        }
        let what = match (self.kind, parts.is_empty()) {
            (MigrationType::Unknown, _) => {
                "what it does could not be read from Medplum's source".to_string()
            }
            (_, true) => "no schema change and no recorded data change".to_string(),
            (_, false) => parts.join("; "),
        };
        format!("{}: {what}", self.kind.as_str())
    }

    /// Whether it rewrites data as it goes (a backfill, or a reindex): the long part of a
    /// deployment window.
    pub fn rewrites_data(&self) -> bool {
        self.kind == MigrationType::Reindex || !self.data_changes.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    format: String,
    format_version: u32,
    #[serde(default)]
    #[allow(dead_code)]
    about: Option<String>,
    migrations: BTreeMap<String, CatalogueEntry>,
}

/// What every post-deploy migration does to the schema, by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    entries: BTreeMap<u32, CatalogueEntry>,
    /// Where it came from: `embedded` or the file's path.
    pub origin: String,
}

impl Catalogue {
    /// The catalogue shipped inside medmig.
    pub fn embedded() -> Catalogue {
        // The embedded file is checked by unit tests; failing here is a build defect.
        Catalogue::parse(EMBEDDED, "embedded").expect("the embedded catalogue is valid")
    }

    /// The embedded catalogue, or the one at `path` when given.
    pub fn load(path: Option<&Path>) -> Result<Catalogue> {
        let Some(path) = path else {
            return Ok(Catalogue::embedded());
        };
        let shown = path.display().to_string();
        let bytes = crate::limits::read_file(
            path,
            crate::limits::CATALOGUE_MAX_BYTES,
            "a migration catalogue",
        )
        .with_context(|| format!("cannot read the catalogue {shown} (--migration-catalogue)"))?;
        let text = String::from_utf8(bytes)
            .map_err(|err| anyhow!("{shown} is not a medmig migration catalogue: {err}"))?;
        Catalogue::parse(&text, &shown).with_context(|| {
            format!("{shown} is not a valid medmig migration catalogue (--migration-catalogue)")
        })
    }

    /// Parses and checks the format: every entry names its sources, every effect the objects
    /// its kind needs.
    pub fn parse(text: &str, origin: &str) -> Result<Catalogue> {
        let raw: RawCatalogue = serde_json::from_str(text).map_err(|err| anyhow!("{err}"))?;
        if raw.format != FORMAT || raw.format_version != 1 {
            bail!(
                "its format is \"{}\" version {}, not \"{FORMAT}\" version 1",
                crate::text::shorten(&raw.format, 40),
                raw.format_version
            );
        }
        let mut entries = BTreeMap::new();
        for (key, entry) in raw.migrations {
            let shown = crate::text::shorten(&key, 40);
            let number = key
                .strip_prefix('v')
                .and_then(digits_value)
                .and_then(data_version_number)
                .ok_or_else(|| anyhow!("key \"{shown}\" is not a migration (v1, v2, …)"))?;
            if entry.source.iter().all(|s| s.trim().is_empty()) {
                bail!("{key} names no source file it was read from");
            }
            for (i, effect) in entry.effects.iter().enumerate() {
                let given = [
                    ("table", &effect.table),
                    ("index", &effect.index),
                    ("column", &effect.column),
                    ("constraint", &effect.constraint),
                    ("extension", &effect.extension),
                    ("function", &effect.function),
                    ("definition", &effect.definition),
                ];
                for field in effect.kind.required() {
                    let present = given
                        .iter()
                        .any(|(name, value)| name == field && value.is_some());
                    if !present {
                        bail!(
                            "{key}: effect {} ({}) has no \"{field}\"",
                            i + 1,
                            effect.kind.as_str()
                        );
                    }
                }
            }
            entries.insert(number, entry);
        }
        let mut catalogue = Catalogue {
            entries,
            origin: origin.to_string(),
        };
        catalogue.link_supersessions();
        Ok(catalogue)
    }

    /// Marks each effect a later migration undoes: an index dropped by name, or with its
    /// table or a column it covers; a NOT NULL or constraint whose table or column goes.
    fn link_supersessions(&mut self) {
        // The drops of each table, in migration order: a few hundred, looked up by table.
        let mut drops: BTreeMap<&str, Vec<(u32, &Effect)>> = BTreeMap::new();
        for (&number, entry) in &self.entries {
            for effect in &entry.effects {
                if let (true, Some(table)) = (effect.kind.is_drop(), effect.table.as_deref()) {
                    drops.entry(table).or_default().push((number, effect));
                }
            }
        }
        let mut undone: Vec<(u32, usize, u32)> = Vec::new();
        for (&number, entry) in &self.entries {
            for (i, effect) in entry.effects.iter().enumerate() {
                let Some(on_table) = effect.table.as_deref().and_then(|t| drops.get(t)) else {
                    continue;
                };
                if let Some((by, _)) = on_table
                    .iter()
                    .find(|(by, drop)| *by > number && undoes(drop, effect))
                {
                    undone.push((number, i, *by));
                }
            }
        }
        for (number, i, by) in undone {
            if let Some(effect) = self
                .entries
                .get_mut(&number)
                .and_then(|e| e.effects.get_mut(i))
            {
                effect.superseded_by = Some(by);
            }
        }
    }

    /// The later migration's effect that undoes `effect` (see [`Effect::superseded_by`]).
    pub fn undoing(&self, effect: &Effect) -> Option<(u32, &Effect)> {
        let by = effect.superseded_by?;
        let drop = self.get(by)?.effects.iter().find(|d| undoes(d, effect))?;
        Some((by, drop))
    }

    /// The entry of migration `number`, if the catalogue has it.
    pub fn get(&self, number: u32) -> Option<&CatalogueEntry> {
        self.entries.get(&number)
    }

    /// Every migration in the catalogue, in order.
    pub fn entries(&self) -> impl Iterator<Item = (u32, &CatalogueEntry)> {
        self.entries.iter().map(|(n, e)| (*n, e))
    }

    /// The migration that creates index `index` on `table`, if one does.
    pub fn creator_of_index(&self, table: &str, index: &str) -> Option<u32> {
        self.entries().find_map(|(number, entry)| {
            entry
                .effects
                .iter()
                .any(|e| {
                    e.kind == EffectKind::IndexCreated
                        && e.table.as_deref() == Some(table)
                        && e.index.as_deref() == Some(index)
                })
                .then_some(number)
        })
    }

    /// The migration at or before `number` that adds constraint `constraint` on `table`.
    pub fn adder_of_constraint(&self, table: &str, constraint: &str, number: u32) -> Option<u32> {
        self.entries.range(..=number).find_map(|(n, entry)| {
            entry
                .effects
                .iter()
                .any(|e| {
                    e.kind == EffectKind::ConstraintAdded
                        && e.table.as_deref() == Some(table)
                        && e.constraint.as_deref() == Some(constraint)
                })
                .then_some(*n)
        })
    }
}

/// Whether `drop` (an effect of a later migration) undoes `effect`.
fn undoes(drop: &Effect, effect: &Effect) -> bool {
    let same_table = drop.table.is_some() && drop.table == effect.table;
    match drop.kind {
        EffectKind::TableDropped => same_table && effect.kind != EffectKind::TableDropped,
        EffectKind::IndexDropped => {
            same_table && effect.kind == EffectKind::IndexCreated && drop.index == effect.index
        }
        EffectKind::ConstraintDropped => {
            same_table
                && matches!(
                    effect.kind,
                    EffectKind::ConstraintAdded | EffectKind::ConstraintValidated
                )
                && drop.constraint == effect.constraint
        }
        EffectKind::ColumnDropped => {
            let column = drop.column.as_deref().unwrap_or_default();
            same_table
                && match effect.kind {
                    EffectKind::IndexCreated => effect.covers_column(column),
                    EffectKind::NotNullSet => effect.column == drop.column,
                    _ => false,
                }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::medplum::manifest::Manifest;

    #[test]
    fn the_embedded_catalogue_and_manifest_name_the_same_migrations() {
        let catalogue = Catalogue::embedded();
        let manifest = Manifest::embedded();
        let catalogued: Vec<u32> = catalogue.entries().map(|(n, _)| n).collect();
        let listed: Vec<u32> = manifest.numbers().collect();
        assert_eq!(catalogued, listed);
    }

    #[test]
    fn every_embedded_entry_names_its_medplum_source() {
        for (number, entry) in Catalogue::embedded().entries() {
            assert!(!entry.source.is_empty(), "v{number} has no source");
            for source in &entry.source {
                let (path, commit) = source.split_once('@').expect("path@commit");
                assert!(
                    path.starts_with("packages/server/src/"),
                    "v{number}: {source}"
                );
                assert!(
                    commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
                    "v{number}: {source}"
                );
            }
            let own = format!("packages/server/src/migrations/data/v{number}.ts@");
            assert!(
                entry.source.iter().any(|s| s.starts_with(&own)),
                "v{number} was not read from its own vN.ts"
            );
        }
    }

    #[test]
    fn an_entry_without_a_source_or_an_effect_without_its_object_is_refused() {
        let with = |entry: &str| {
            format!(
                r#"{{"format": "{FORMAT}", "format_version": 1, "migrations": {{"v1": {entry}}}}}"#
            )
        };
        let no_source = with(r#"{"type": "custom", "confidence": "high", "source": []}"#);
        let err = Catalogue::parse(&no_source, "t").unwrap_err().to_string();
        assert!(err.contains("names no source"), "{err}");
        let no_table = with(
            r#"{"type": "custom", "confidence": "high", "source": ["x"],
                "effects": [{"kind": "table-dropped", "strength": "strong"}]}"#,
        );
        let err = Catalogue::parse(&no_table, "t").unwrap_err().to_string();
        assert!(err.contains("has no \"table\""), "{err}");
        let odd_key = r#"{"format": "medmig-migration-catalogue", "format_version": 1,
            "migrations": {"v0": {"type": "custom", "confidence": "high", "source": ["x"]}}}"#;
        assert!(Catalogue::parse(odd_key, "t").is_err());
        assert!(Catalogue::parse(r#"{"v1": {}}"#, "t").is_err());
    }

    #[test]
    fn facts_read_from_medplum_source() {
        let c = Catalogue::embedded();
        // v17.ts: three trigram indexes on "HumanName", CREATE INDEX CONCURRENTLY IF NOT EXISTS.
        let v17 = c.get(17).unwrap();
        assert_eq!(v17.kind, MigrationType::Custom);
        let names: Vec<_> = v17
            .effects
            .iter()
            .filter_map(|e| e.index.as_deref())
            .collect();
        assert_eq!(
            names,
            [
                "HumanName_nameTrgm_idx",
                "HumanName_givenTrgm_idx",
                "HumanName_familyTrgm_idx"
            ]
        );
        assert!(v17.effects.iter().all(|e| e.strength == Strength::Weak));
        // v30.ts drops the PasswordChangeRequest tables (v29.ts is a ConceptMap reindex).
        let v30: Vec<_> = c
            .get(30)
            .unwrap()
            .effects
            .iter()
            .map(Effect::object)
            .collect();
        assert_eq!(v30.len(), 3);
        assert!(v30.contains(&"\"PasswordChangeRequest\"".to_string()));
        assert_eq!(c.get(29).unwrap().kind, MigrationType::Reindex);
        assert!(c.get(29).unwrap().effects.is_empty());
        // v16.ts backfills "Coding"."isSynonym", then sets it NOT NULL.
        let v16 = c.get(16).unwrap();
        assert!(v16.rewrites_data());
        assert!(v16
            .effects
            .iter()
            .any(|e| e.kind == EffectKind::NotNullSet && e.object() == "\"Coding\".\"isSynonym\""));
    }

    #[test]
    fn later_drops_supersede_earlier_creations() {
        let c = Catalogue::embedded();
        let index = |v: u32, name: &str| {
            c.get(v)
                .unwrap()
                .effects
                .iter()
                .find(|e| e.index.as_deref() == Some(name))
                .unwrap()
                .superseded_by
        };
        // v18 drops the index v16 creates; v13 drops the "__tokens" columns v4 indexed.
        assert_eq!(index(16, "Coding_system_code_preferred_idx"), Some(18));
        assert_eq!(index(4, "Account___tokens_idx"), Some(13));
        assert_eq!(index(17, "HumanName_nameTrgm_idx"), None);
        // A transient constraint is dropped again by its own migration, not a later one; on a
        // table a later migration drops (v30), it goes with the table.
        let v24 = c.get(24).unwrap();
        let on = |table: &str| {
            v24.effects
                .iter()
                .filter(move |e| e.transient && e.table.as_deref() == Some(table))
                .map(|e| e.superseded_by)
                .collect::<Vec<_>>()
        };
        assert_eq!(on("Account"), [None, None]);
        assert_eq!(on("PasswordChangeRequest"), [Some(30), Some(30)]);
    }
}
