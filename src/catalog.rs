//! The schema contract: what the code of a Medplum release can rely on in a database —
//! tables with their columns, indexes and constraints, functions and extensions.
//!
//! This module owns the model, its serialized form and the schema capture file format. It is
//! filled by `sources/postgres/collect.rs` from the catalogs and compared by
//! `analyze/compat.rs`; it reads no database itself. Keys are ordered so that captures of the
//! same schema are byte-identical.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::limits;
use crate::snapshot::{write_json, JsonShape, SnapshotSource, FORMAT_VERSION};

/// The schema capture format this medmig writes (a baseline may also be a snapshot, read up
/// to the snapshot's [`FORMAT_VERSION`]).
pub const CAPTURE_FORMAT_VERSION: u32 = 1;

/// A database's schema, as far as application code can depend on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaContract {
    /// Tables by `schema.name`.
    pub tables: BTreeMap<String, TableContract>,
    /// Functions and procedures by `schema.name(argument types)`.
    pub functions: BTreeMap<String, FunctionContract>,
    /// Extensions by name.
    pub extensions: BTreeMap<String, ExtensionContract>,
}

/// One table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableContract {
    /// `materialized view` for one; left out for a table (ordinary or partitioned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Columns in table order.
    pub columns: Vec<ColumnContract>,
    /// Indexes by name.
    pub indexes: BTreeMap<String, IndexContract>,
    /// Constraints (not NOT NULL, which is a column property) by name.
    pub constraints: BTreeMap<String, ConstraintContract>,
}

impl TableContract {
    /// What the contract's "table" is, for messages: `table` or `materialized view`.
    pub fn noun(&self) -> &str {
        self.kind.as_deref().unwrap_or("table")
    }

    /// Column `name`, if the table has it.
    pub fn column(&self, name: &str) -> Option<&ColumnContract> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnContract {
    pub name: String,
    /// The type as `format_type` prints it, e.g. `timestamp with time zone`, `uuid[]`.
    pub data_type: String,
    pub not_null: bool,
    /// A NOT NULL constraint added `NOT VALID` (PostgreSQL 18): new rows are checked, existing
    /// ones may still be null. Left out of the file when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_null_not_valid: bool,
    /// The default expression, if any. (The three properties most columns lack are left out
    /// of the file rather than written as null: a tenth of a large snapshot.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// `always` or `by-default` for identity columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// `stored` or `virtual` (PostgreSQL 18) for generated columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
}

impl ColumnContract {
    /// Whether an INSERT that does not name this column still succeeds.
    pub fn fills_itself(&self) -> bool {
        !self.not_null
            || self.default.is_some()
            || self.identity.is_some()
            || self.generated.is_some()
    }
}

/// One index. In a file, `shape` is left out where it is the definition itself (an index of
/// plain columns without predicate: most of them).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "IndexFields<String>")]
pub struct IndexContract {
    /// `pg_get_indexdef`: method, columns or expressions, operator classes, predicate. `None`
    /// when the table was locked by a migration at capture (medmig does not wait for it).
    pub definition: Option<String>,
    /// The same built from the catalog without any lock: exact for plain columns, with
    /// placeholders for expressions and predicates.
    pub shape: String,
    pub unique: bool,
    pub primary: bool,
    pub valid: bool,
    /// `pg_index.indisready`: false when a concurrent build stopped in its first phase.
    pub ready: bool,
}

/// The fields of [`IndexContract`] as a file holds them.
#[derive(Serialize, Deserialize)]
struct IndexFields<S> {
    definition: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shape: Option<S>,
    unique: bool,
    primary: bool,
    valid: bool,
    ready: bool,
}

impl Serialize for IndexContract {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let definition = self.definition.as_deref();
        IndexFields {
            definition,
            shape: (definition != Some(self.shape.as_str())).then_some(self.shape.as_str()),
            unique: self.unique,
            primary: self.primary,
            valid: self.valid,
            ready: self.ready,
        }
        .serialize(serializer)
    }
}

impl TryFrom<IndexFields<String>> for IndexContract {
    type Error = &'static str;

    fn try_from(fields: IndexFields<String>) -> Result<IndexContract, &'static str> {
        let shape = match (fields.shape, &fields.definition) {
            (Some(shape), _) => shape,
            (None, Some(definition)) => definition.clone(),
            (None, None) => return Err("an index with neither definition nor shape"),
        };
        Ok(IndexContract {
            definition: fields.definition,
            shape,
            unique: fields.unique,
            primary: fields.primary,
            valid: fields.valid,
            ready: fields.ready,
        })
    }
}

impl IndexContract {
    /// The most exact definition captured.
    pub fn shown(&self) -> &str {
        self.definition.as_deref().unwrap_or(&self.shape)
    }

    /// Whether `other` defines a different index. Definitions are compared where both sides
    /// have one; otherwise the lock-free shapes (blind to expression and predicate text).
    pub fn differs_from(&self, other: &IndexContract) -> bool {
        let definitions_differ = match (&self.definition, &other.definition) {
            (Some(a), Some(b)) => a != b,
            _ => self.shape != other.shape,
        };
        definitions_differ || self.unique != other.unique
    }
}

/// One constraint. Built with [`ConstraintContract::new`], also when read from a file, so that
/// a definition is the same whichever medmig wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ConstraintFields")]
pub struct ConstraintContract {
    pub kind: ConstraintKind,
    /// What it enforces, as `pg_get_constraintdef` prints it but without `NOT VALID` (that is
    /// `validated`). `None` when a migration held its table locked at capture and the
    /// definition needed the table open (check and exclusion constraints).
    pub definition: Option<String>,
    /// False for a constraint added `NOT VALID` and not validated since.
    pub validated: bool,
}

/// The fields of [`ConstraintContract`] as a file holds them.
#[derive(Deserialize)]
struct ConstraintFields {
    kind: ConstraintKind,
    definition: Option<String>,
    validated: bool,
}

impl From<ConstraintFields> for ConstraintContract {
    fn from(fields: ConstraintFields) -> ConstraintContract {
        ConstraintContract::new(fields.kind, fields.definition, fields.validated)
    }
}

impl ConstraintContract {
    /// A constraint from `pg_get_constraintdef`'s text: the ` NOT VALID` it ends with on a
    /// constraint not validated yet is `validated`, not part of what it enforces, so that
    /// validating a constraint does not change its definition. (medmig before 0.1.0's last
    /// capture format kept it; such files read the same as new ones.)
    pub fn new(
        kind: ConstraintKind,
        definition: Option<String>,
        validated: bool,
    ) -> ConstraintContract {
        let definition = definition.map(|text| match text.strip_suffix(" NOT VALID") {
            Some(enforced) if !validated => enforced.to_string(),
            _ => text,
        });
        ConstraintContract {
            kind,
            definition,
            validated,
        }
    }

    /// The definition, or what stands in for it when it was not read.
    pub fn shown(&self) -> &str {
        self.definition
            .as_deref()
            .unwrap_or("(definition not read: a migration held the table locked)")
    }

    /// Whether `other` enforces something else. Where either definition was not read, only
    /// the kind can tell.
    pub fn enforces_other_than(&self, other: &ConstraintContract) -> bool {
        match (&self.definition, &other.definition) {
            (Some(a), Some(b)) => a != b,
            _ => self.kind != other.kind,
        }
    }
}

/// `PRIMARY KEY (…) INCLUDE (…)` exactly as `pg_get_constraintdef` prints a plain (btree, not
/// deferrable) primary key: `keys` are its columns (`pg_constraint.conkey`), `index_keys` and
/// `index_key_count` those of its index, whose columns past the key count are INCLUDE columns.
/// `None` when a column number is unknown.
pub fn primary_key_definition(
    keys: &[i16],
    index_keys: &[i16],
    index_key_count: usize,
    columns: &BTreeMap<i16, ColumnName>,
) -> Option<String> {
    let names = |numbers: &[i16]| -> Option<Vec<&str>> {
        numbers
            .iter()
            .map(|n| columns.get(n).map(|c| c.quoted.as_str()))
            .collect()
    };
    let mut definition = format!("PRIMARY KEY ({})", names(keys)?.join(", "));
    let include = index_keys.get(index_key_count..).unwrap_or_default();
    if !include.is_empty() {
        definition.push_str(&format!(" INCLUDE ({})", names(include)?.join(", ")));
    }
    Some(definition)
}

/// Constraint kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    ForeignKey,
    Check,
    Exclusion,
}

impl ConstraintKind {
    /// From `pg_constraint.contype`.
    pub fn from_catalog(code: &str) -> Option<ConstraintKind> {
        match code {
            "p" => Some(ConstraintKind::PrimaryKey),
            "u" => Some(ConstraintKind::Unique),
            "f" => Some(ConstraintKind::ForeignKey),
            "c" => Some(ConstraintKind::Check),
            "x" => Some(ConstraintKind::Exclusion),
            _ => None,
        }
    }
}

/// One function or procedure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionContract {
    /// What it returns, e.g. `text`.
    pub result: String,
    /// `function`, `procedure`, `aggregate` or `window`.
    pub kind: String,
    /// SHA-256 of body, result, language, volatility, strictness and security.
    pub definition_hash: String,
}

/// One extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionContract {
    pub version: String,
    pub schema: String,
}

/// The catalog parts of an index, from which its definition is assembled.
#[derive(Debug, Clone, Default)]
pub struct IndexParts {
    /// `quote_ident` of the index (its table's names are the table's: [`TableNames`]).
    pub quoted_index: String,
    /// A partitioned table's own index (`ON ONLY`).
    pub on_partitioned: bool,
    /// Access method: `btree`, `gin`, …
    pub method: String,
    pub unique: bool,
    /// Key columns (the rest of `keys` are INCLUDE columns).
    pub key_count: usize,
    /// `pg_index.indkey`: column numbers, 0 for an expression.
    pub keys: Vec<i16>,
    /// `pg_index.indclass` of the key columns.
    pub opclasses: Vec<u32>,
    /// `pg_index.indoption` of the key columns: bit 1 DESC, bit 2 NULLS FIRST.
    pub options: Vec<i16>,
    /// `pg_index.indcollation` of the key columns (0: none).
    pub collations: Vec<u32>,
    /// The deparsed expression columns, in order; `None` when not deparsed (table locked).
    pub expressions: Option<Vec<String>>,
    /// Whether the index has a predicate, and its deparsed text when available.
    pub partial: bool,
    pub predicate: Option<String>,
    /// The key columns (numbered from 1) whose operator class has parameters.
    pub parameterized: Vec<i16>,
    /// Whether the parts cannot describe the index exactly (storage parameters, NULLS NOT
    /// DISTINCT, operator class parameters, a collation other than the default in an
    /// expression), so that only `pg_get_indexdef` can; `full_definition` is that, when it
    /// could be read.
    pub needs_full_definition: bool,
    pub full_definition: Option<String>,
}

/// A table as index and constraint definitions print it: `quote_ident` of its schema and
/// name, and its columns' names by column number.
#[derive(Debug, Clone, Default)]
pub struct TableNames {
    pub quoted_schema: String,
    pub quoted_table: String,
    pub columns: BTreeMap<i16, ColumnName>,
}

/// A table column as index definitions print it: `quote_ident` name and collation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnName {
    pub quoted: String,
    pub collation: u32,
}

/// Names that index definitions print beside a column, and how the server quotes a name.
#[derive(Debug, Clone, Default)]
pub struct CatalogNames {
    /// Operator classes that are not their type's default, by oid.
    pub opclasses: std::collections::HashMap<u32, String>,
    /// Collations, qualified where pg_get_indexdef qualifies them, by oid.
    pub collations: std::collections::HashMap<u32, String>,
    /// The server's keywords that `quote_ident` quotes: all but the unreserved ones.
    pub keywords: std::collections::HashSet<String>,
    /// The server's `quote_all_identifiers`: every name quoted.
    pub quote_all: bool,
}

impl CatalogNames {
    /// `name` exactly as the server's `quote_ident` prints it (see [`quote_identifier`]).
    pub fn quote(&self, name: &str) -> String {
        quote_identifier(name, |bare| self.quote_all || self.keywords.contains(bare))
    }
}

/// `name` as PostgreSQL's `quote_identifier` prints it: bare when it is lower-case letters,
/// digits and underscores, starts with a letter or an underscore, and `quoted_anyway` does not
/// say otherwise (for a keyword the server quotes, or `quote_all_identifiers`); otherwise in
/// double quotes, with its double quotes doubled.
pub fn quote_identifier(name: &str, quoted_anyway: impl Fn(&str) -> bool) -> String {
    let bytes = name.as_bytes();
    let bare = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !quoted_anyway(name);
    if bare {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

impl IndexParts {
    /// The definition exactly as `pg_get_indexdef` prints it (`None` when an expression or
    /// the predicate could not be deparsed), and the lock-free shape with placeholders.
    pub fn assemble(&self, table: &TableNames, names: &CatalogNames) -> (Option<String>, String) {
        // Both texts are written straight into their strings: this runs for every index of
        // every database read (5,000 at Medplum's scale), so no part is built on its own.
        let columns = &table.columns;
        let mut expressions = self.expressions.as_ref().map(|e| e.iter());
        let mut exact = true;
        let mut shape = String::with_capacity(160);
        shape.push_str(if self.unique {
            "CREATE UNIQUE INDEX "
        } else {
            "CREATE INDEX "
        });
        shape.push_str(&self.quoted_index);
        shape.push_str(if self.on_partitioned {
            " ON ONLY "
        } else {
            " ON "
        });
        shape.push_str(&table.quoted_schema);
        shape.push('.');
        shape.push_str(&table.quoted_table);
        shape.push_str(" USING ");
        shape.push_str(&self.method);
        shape.push_str(" (");
        let mut definition = shape.clone();
        let mut include: Vec<std::borrow::Cow<'_, str>> = Vec::new();
        for (position, attnum) in self.keys.iter().enumerate() {
            let column = columns.get(attnum);
            if position >= self.key_count {
                include.push(match column {
                    Some(column) => column.quoted.as_str().into(),
                    None => format!("column{attnum}").into(),
                });
                continue;
            }
            if position > 0 {
                definition.push_str(", ");
                shape.push_str(", ");
            }
            if *attnum == 0 {
                match expressions.as_mut().and_then(Iterator::next) {
                    Some(expression) => definition.push_str(expression),
                    None => exact = false,
                }
                shape.push_str("(expression)");
            } else {
                let name = column.map_or_else(|| format!("column{attnum}"), |c| c.quoted.clone());
                definition.push_str(&name);
                shape.push_str(&name);
            }
            let collation = self.collations.get(position).copied().unwrap_or(0);
            if *attnum != 0 && collation != 0 && Some(collation) != column.map(|c| c.collation) {
                if let Some(shown) = names.collations.get(&collation) {
                    for text in [&mut definition, &mut shape] {
                        text.push_str(" COLLATE ");
                        text.push_str(shown);
                    }
                }
            }
            if let Some(opclass) = self
                .opclasses
                .get(position)
                .and_then(|o| names.opclasses.get(o))
            {
                for text in [&mut definition, &mut shape] {
                    text.push(' ');
                    text.push_str(opclass);
                }
            }
            // Operator class parameters are in the full definition only; the shape says they
            // are there, so that a shape comparison is not blind to them all.
            if self.parameterized.contains(&(position as i16 + 1)) {
                shape.push_str(" (parameters)");
            }
            let option = self.options.get(position).copied().unwrap_or(0);
            let order = match (option & 1 == 1, option & 2 == 2) {
                (false, false) => "",
                (false, true) => " NULLS FIRST",
                (true, false) => " DESC NULLS LAST",
                (true, true) => " DESC",
            };
            definition.push_str(order);
            shape.push_str(order);
        }
        for text in [&mut definition, &mut shape] {
            text.push(')');
        }
        if !include.is_empty() {
            let list = include.join(", ");
            for text in [&mut definition, &mut shape] {
                text.push_str(" INCLUDE (");
                text.push_str(&list);
                text.push(')');
            }
        }
        if self.partial {
            shape.push_str(" WHERE (predicate)");
        }
        if self.needs_full_definition {
            return (self.full_definition.clone(), shape);
        }
        match (&self.predicate, self.partial) {
            (Some(text), true) => {
                definition.push_str(" WHERE ");
                definition.push_str(text);
            }
            (None, true) => exact = false,
            _ => {}
        }
        (exact.then_some(definition), shape)
    }
}

/// `schema.name`, the key of tables and functions.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{schema}.{name}")
}

/// The file `medmig schema capture` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaCapture {
    pub format_version: u32,
    pub medmig_version: String,
    pub captured_at: DateTime<Utc>,
    pub source: SnapshotSource,
    pub schema: SchemaContract,
}

impl SchemaCapture {
    /// Writes the capture as indented JSON into `out`.
    pub fn write(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        write_json(out, self)
    }

    /// Reads a schema baseline: a `medmig schema capture` file, or a snapshot (which carries
    /// the same contract); no more than [`limits::SNAPSHOT_MAX_BYTES`].
    pub fn read_baseline(path: &Path) -> Result<SchemaCapture> {
        /// What tells the two kinds apart, read without building the rest.
        #[derive(Deserialize)]
        struct Header {
            format_version: Option<serde_json::Value>,
            captured_at: Option<serde::de::IgnoredAny>,
        }
        let shown = path.display();
        let advice = "pass a file written by `medmig schema capture` or `medmig snapshot`";
        let bytes = limits::read_file(path, limits::SNAPSHOT_MAX_BYTES, "a schema baseline")
            .with_context(|| format!("cannot read the baseline {shown}"))?;
        let text = String::from_utf8(bytes)
            .map_err(|err| anyhow!("the baseline {shown} is not JSON ({err}): {advice}"))?;
        match JsonShape::of(&text) {
            JsonShape::Object => {}
            JsonShape::Empty => bail!("the baseline {shown} is empty: {advice}"),
            JsonShape::Truncated(err) => {
                bail!("the baseline {shown} is truncated ({err}): capture it again")
            }
            JsonShape::NotJson(err) => bail!("the baseline {shown} is not JSON ({err}): {advice}"),
            JsonShape::Other(kind) => bail!(
                "the baseline {shown} is JSON but not a schema capture or a snapshot: it is \
                 {kind}, not an object with a format_version: {advice}"
            ),
        }
        let header: Header = serde_json::from_str(&text).map_err(|err| {
            anyhow!("the baseline {shown} does not have the shape of a schema capture ({err})")
        })?;
        let version = header
            .format_version
            .as_ref()
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| anyhow!("the baseline {shown} has no format_version: {advice}"))?;
        if version > u64::from(FORMAT_VERSION) {
            bail!("the baseline {shown} has format_version {version} and this medmig reads up to {FORMAT_VERSION}: upgrade medmig");
        }
        if header.captured_at.is_some() {
            return serde_json::from_str(&text).map_err(|err| {
                anyhow!("the baseline {shown} does not have the shape of a schema capture ({err})")
            });
        }
        let snapshot = crate::snapshot::Snapshot::parse(&text)
            .with_context(|| format!("the baseline {shown} is unusable"))?;
        let schema = snapshot.schema.ok_or_else(|| {
            anyhow!("the snapshot {shown} carries no schema (taken by an older medmig): capture the baseline again")
        })?;
        Ok(SchemaCapture {
            format_version: CAPTURE_FORMAT_VERSION,
            medmig_version: snapshot.medmig_version,
            captured_at: snapshot.taken_at,
            source: snapshot.source,
            schema: std::sync::Arc::unwrap_or_clone(schema),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> TableNames {
        TableNames {
            quoted_schema: "public".into(),
            quoted_table: "\"Patient\"".into(),
            columns: columns(),
        }
    }

    fn columns() -> BTreeMap<i16, ColumnName> {
        let column = |quoted: &str, collation| ColumnName {
            quoted: quoted.into(),
            collation,
        };
        BTreeMap::from([
            (1, column("id", 0)),
            (2, column("\"lastUpdated\"", 0)),
            (3, column("a", 100)),
            (4, column("\"__codeText\"", 100)),
        ])
    }

    fn names() -> CatalogNames {
        CatalogNames {
            opclasses: [
                (10, "gin_trgm_ops".to_string()),
                (11, "text_pattern_ops".to_string()),
            ]
            .into(),
            collations: [(950, "\"C\"".to_string()), (100, "\"default\"".to_string())].into(),
            ..CatalogNames::default()
        }
    }

    fn parts(keys: Vec<i16>, key_count: usize) -> IndexParts {
        IndexParts {
            quoted_index: "\"Patient_idx\"".into(),
            method: "btree".into(),
            options: vec![0; keys.len()],
            opclasses: vec![1; keys.len()],
            collations: vec![0; keys.len()],
            key_count,
            keys,
            ..IndexParts::default()
        }
    }

    #[test]
    fn definitions_read_as_pg_get_indexdef_prints_them() {
        let (t, n) = (patient(), names());
        let mut p = parts(vec![2, 1, 3], 2);
        p.unique = true;
        p.options = vec![3, 1, 0];
        assert_eq!(
            p.assemble(&t, &n).0.unwrap(),
            "CREATE UNIQUE INDEX \"Patient_idx\" ON public.\"Patient\" USING btree (\"lastUpdated\" DESC, id DESC NULLS LAST) INCLUDE (a)"
        );
        let mut p = parts(vec![0, 3], 2);
        p.method = "gin".into();
        p.opclasses = vec![10, 11];
        p.collations = vec![100, 950];
        p.expressions = Some(vec!["token_array_to_text(\"__codeText\")".into()]);
        p.partial = true;
        p.predicate = Some("(deleted = false)".into());
        let (definition, shape) = p.assemble(&t, &n);
        assert_eq!(
            definition.unwrap(),
            "CREATE INDEX \"Patient_idx\" ON public.\"Patient\" USING gin (token_array_to_text(\"__codeText\") gin_trgm_ops, a COLLATE \"C\" text_pattern_ops) WHERE (deleted = false)"
        );
        assert_eq!(
            shape,
            "CREATE INDEX \"Patient_idx\" ON public.\"Patient\" USING gin ((expression) gin_trgm_ops, a COLLATE \"C\" text_pattern_ops) WHERE (predicate)"
        );
    }

    #[test]
    fn a_constraint_read_from_a_file_holds_not_valid_only_in_validated() {
        let read = |json: &str| serde_json::from_str::<ConstraintContract>(json).unwrap();
        let older = read(
            r#"{"kind": "check", "definition": "CHECK ((c > 0)) NOT VALID", "validated": false}"#,
        );
        let newer =
            read(r#"{"kind": "check", "definition": "CHECK ((c > 0))", "validated": false}"#);
        assert_eq!(older, newer);
        assert_eq!(older.definition.as_deref(), Some("CHECK ((c > 0))"));
        let validated =
            read(r#"{"kind": "check", "definition": "CHECK ((c > 0))", "validated": true}"#);
        assert!(!older.enforces_other_than(&validated));
    }

    #[test]
    fn an_index_of_a_locked_table_has_only_its_shape() {
        let mut p = parts(vec![0], 1);
        p.partial = true;
        let (definition, shape) = p.assemble(&patient(), &names());
        assert_eq!(definition, None);
        assert_eq!(
            shape,
            "CREATE INDEX \"Patient_idx\" ON public.\"Patient\" USING btree ((expression)) WHERE (predicate)"
        );
        let plain = parts(vec![1], 1);
        assert!(plain.assemble(&patient(), &names()).0.is_some());
    }

    #[test]
    fn a_file_leaves_out_a_shape_that_is_the_definition() {
        let plain = "CREATE INDEX i ON public.t USING btree (a)".to_string();
        let index = |definition: Option<&str>, shape: &str| IndexContract {
            definition: definition.map(str::to_string),
            shape: shape.to_string(),
            unique: false,
            primary: false,
            valid: true,
            ready: true,
        };
        let partial = "CREATE INDEX i ON public.t USING btree (a) WHERE (predicate)";
        for index in [
            index(Some(&plain), &plain),
            index(
                Some("CREATE INDEX i ON public.t USING btree (a) WHERE (b = 1)"),
                partial,
            ),
            index(None, partial),
        ] {
            let text = serde_json::to_string(&index).unwrap();
            assert_eq!(
                text.contains("shape"),
                index.definition.as_ref() != Some(&index.shape)
            );
            let read: IndexContract = serde_json::from_str(&text).unwrap();
            assert_eq!(read, index, "{text}");
        }
        let neither =
            r#"{"definition":null,"unique":false,"primary":false,"valid":true,"ready":true}"#;
        assert!(serde_json::from_str::<IndexContract>(neither).is_err());
    }

    #[test]
    fn names_are_quoted_as_quote_ident_quotes_them() {
        let mut names = CatalogNames {
            keywords: ["select", "user"].map(String::from).into(),
            ..CatalogNames::default()
        };
        for (name, quoted) in [
            ("deleted", "deleted"),
            ("_source", "_source"),
            ("__version2", "__version2"),
            ("Patient", "\"Patient\""),
            ("__codeText", "\"__codeText\""),
            ("select", "\"select\""),
            ("selected", "selected"),
            ("2fa", "\"2fa\""),
            ("a$b", "\"a$b\""),
            ("café", "\"café\""),
            ("Zoo \"quoted\" index", "\"Zoo \"\"quoted\"\" index\""),
        ] {
            assert_eq!(names.quote(name), quoted, "{name}");
        }
        names.quote_all = true;
        assert_eq!(names.quote("deleted"), "\"deleted\"");
    }
}
