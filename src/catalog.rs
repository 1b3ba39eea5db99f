//! The schema contract: what the code of a Medplum release can rely on in a database —
//! tables with their columns, indexes and constraints, functions and extensions.
//!
//! This module owns the model, its serialized form and the schema capture file format. It is
//! filled by `collect.rs` from the catalogs and compared by `analyze/compat.rs`; it reads no
//! database itself. Keys are ordered so that captures of the same schema are byte-identical.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::snapshot::{write_atomically, SnapshotSource, FORMAT_VERSION};

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
    /// Columns in table order.
    pub columns: Vec<ColumnContract>,
    /// Indexes by name.
    pub indexes: BTreeMap<String, IndexContract>,
    /// Constraints (not NOT NULL, which is a column property) by name.
    pub constraints: BTreeMap<String, ConstraintContract>,
}

impl TableContract {
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
    /// The default expression, if any.
    pub default: Option<String>,
    /// `always` or `by-default` for identity columns.
    pub identity: Option<String>,
    /// `stored` for generated columns.
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

/// One index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// One constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstraintContract {
    pub kind: ConstraintKind,
    /// `pg_get_constraintdef`.
    pub definition: String,
    /// False for a constraint added `NOT VALID` and not validated since.
    pub validated: bool,
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
    /// Writes the capture through a temporary file and a rename.
    pub fn write(&self, path: &Path, overwrite: bool) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("cannot encode the schema")?;
        write_atomically(path, text.as_bytes(), overwrite)
    }

    /// Reads a schema baseline: a `medmig schema capture` file, or a snapshot (which carries
    /// the same contract).
    pub fn read_baseline(path: &Path) -> Result<SchemaCapture> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the baseline {shown}"))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|err| {
            if err.is_eof() {
                anyhow!("the baseline {shown} is truncated ({err}): capture it again")
            } else {
                anyhow!("the baseline {shown} is not JSON ({err}): pass a file written by `medmig schema capture` or `medmig snapshot`")
            }
        })?;
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| {
                anyhow!("the baseline {shown} has no format_version: pass a file written by `medmig schema capture` or `medmig snapshot`")
            })?;
        if version > u64::from(FORMAT_VERSION) {
            bail!("the baseline {shown} has format_version {version} and this medmig reads up to {FORMAT_VERSION}: upgrade medmig");
        }
        if value.get("captured_at").is_some() {
            return serde_json::from_value(value).map_err(|err| {
                anyhow!("the baseline {shown} does not have the shape of a schema capture ({err})")
            });
        }
        let snapshot = crate::snapshot::Snapshot::parse(&text)
            .with_context(|| format!("the baseline {shown} is unusable"))?;
        let schema = snapshot.schema.ok_or_else(|| {
            anyhow!("the snapshot {shown} carries no schema (taken by an older medmig): capture the baseline again")
        })?;
        Ok(SchemaCapture {
            format_version: FORMAT_VERSION,
            medmig_version: snapshot.medmig_version,
            captured_at: snapshot.taken_at,
            source: snapshot.source,
            schema,
        })
    }
}
