//! The Snapshot: everything medmig collected from one database at one moment.
//!
//! This is the only boundary between collection (`sources/`) and analysis (`analyze/`):
//! every finding must be reproducible from a snapshot alone, months later. It owns the
//! serialized form (`format_version`, field names), reading a snapshot file with clear errors,
//! and writing one as JSON (where it goes, and how safely, is `outfile.rs`'s business). It
//! holds no patient data: the only table rows in it are `"DatabaseMigration"` and
//! data-migration `"AsyncJob"` resources.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::SchemaContract;
use crate::limits;

/// The snapshot format this medmig writes and the newest it reads.
///
/// Format 2 added `redis` and `redis_gap`; format 1 files read as having no Redis evidence.
/// Format 3 added `shards`; older files read as a deployment of one database.
/// Format 4 writes a shard's schema contract that equals an earlier database's as
/// `schema_same_as` (see [`Snapshot::share_schemas`]); format 3 files have none.
pub const FORMAT_VERSION: u32 = 4;

/// One database's migration evidence at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format_version: u32,
    /// The medmig release that collected it.
    pub medmig_version: String,
    /// The database server's clock at collection (`now()` of the transaction): the "now" of
    /// every age computed from this snapshot.
    pub taken_at: DateTime<Utc>,
    pub source: SnapshotSource,
    /// The rows of `"DatabaseMigration"`: normally exactly one, with id 1.
    pub database_migration: Vec<DatabaseMigrationRow>,
    /// Whether `"AsyncJob"` exists (very old databases predate it).
    pub async_job_table: bool,
    /// Every data-migration `AsyncJob` that is not deleted, and the jobs of the server's
    /// schema maintenance endpoints (no type, run on the post-deploy queue).
    pub jobs: Vec<JobRecord>,
    /// Every stored version of those jobs, oldest first per job.
    pub job_history: Vec<JobVersion>,
    /// Indexes with `pg_index.indisvalid = false`.
    pub invalid_indexes: Vec<InvalidIndex>,
    /// Who is migrating at the moment of the snapshot (absent from older snapshots).
    #[serde(default)]
    pub activity: Option<MigrationActivity>,
    /// Medplum tables the role may not read (`"AsyncJob"`, …): their evidence is missing.
    #[serde(default)]
    pub unreadable_tables: Vec<String>,
    /// Medplum tables the role may read but that were not read, and why (another session held
    /// a lock on them, e.g. a migration altering them): their evidence is missing too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread_tables: Vec<UnreadTable>,
    /// What Medplum's Redis held: BullMQ's queues and the server registry (format 2; absent
    /// when no Redis was given, or it could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisEvidence>,
    /// Why the Redis that was given could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_gap: Option<String>,
    /// The shards of a sharded deployment (the server config's `shards`), each its own
    /// database with its own `"DatabaseMigration"` row and post-deploy jobs, read beside this
    /// one, the global database (format 3; empty for a deployment of one database).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardEvidence>,
    /// When this snapshot holds one database of a sharded deployment only (`--shard`): which,
    /// and the others, which were not read (format 3). Analyses of the deployment say so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_shard: Option<OnlyShard>,
    /// The schema contract (absent from snapshots taken before medmig captured it). Last in
    /// the file, where [`Snapshot::write_rendered`] puts it already rendered. Shared between
    /// the databases of a file that have the same one (`schema_same_as`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Arc<SchemaContract>>,
}

/// The one database a snapshot holds of a sharded deployment, and the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlyShard {
    /// `global` or the shard's id.
    pub id: String,
    /// The deployment's other databases, not read.
    pub others: Vec<String>,
}

/// One shard's evidence: its own snapshot (without Redis, which the deployment shares), or
/// why it could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEvidence {
    /// The shard's id: its key in the config's `shards`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Box<Snapshot>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<String>,
    /// In a file only (format 4): the shard's schema contract is the same as that of the
    /// database this names, `global` or an earlier shard, and is not written twice. Reading
    /// the file puts the contract back and clears this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_same_as: Option<String>,
}

/// The schema contracts [`Snapshot::share_schemas`] took out of shards, by shard position, to
/// be put back by [`Snapshot::restore_schemas`].
#[must_use]
pub struct SharedSchemas {
    taken: Vec<(usize, Arc<SchemaContract>)>,
    format_version: u32,
}

/// The id Medplum gives the global database among its shards (`GLOBAL_SHARD_ID`,
/// `packages/server/src/fhir/sharding.ts`); no entry of `shards` may have it.
pub const GLOBAL_SHARD: &str = "global";

impl Snapshot {
    /// The databases of the deployment as (shard id, snapshot or why not read): the global
    /// one (this snapshot, without its shards) first, then each shard.
    pub fn databases(&self) -> Vec<(&str, Result<&Snapshot, &str>)> {
        std::iter::once((GLOBAL_SHARD, Ok(self)))
            .chain(self.shards.iter().map(|shard| {
                let read = match (&shard.snapshot, &shard.gap) {
                    (Some(snapshot), _) => Ok(&**snapshot),
                    (None, Some(gap)) => Err(gap.as_str()),
                    (None, None) => Err("it was not read"),
                };
                (shard.id.as_str(), read)
            }))
            .collect()
    }

    /// The evidence of one database only: `global` is this snapshot without its shards, any
    /// other id that shard's snapshot (with the deployment's Redis evidence). An unknown id,
    /// or a shard that could not be read, is an error naming the ids there are.
    pub fn only_shard(mut self, id: &str) -> Result<Snapshot> {
        let shards = std::mem::take(&mut self.shards);
        let ids: Vec<String> = std::iter::once(GLOBAL_SHARD.to_string())
            .chain(shards.iter().map(|s| s.id.clone()))
            .collect();
        let only = |id: &str| OnlyShard {
            id: id.to_string(),
            others: ids.iter().filter(|other| *other != id).cloned().collect(),
        };
        if id == GLOBAL_SHARD {
            if self.only_shard.is_none() && !ids[1..].is_empty() {
                self.only_shard = Some(only(id));
            }
            return Ok(self);
        }
        let Some(shard) = shards.into_iter().find(|s| s.id == id) else {
            bail!(
                "--shard {id}: the deployment has no such shard; its databases are {}",
                ids.join(", ")
            );
        };
        match shard.snapshot {
            Some(snapshot) => {
                let mut snapshot = *snapshot;
                snapshot.redis = self.redis;
                snapshot.redis_gap = self.redis_gap;
                snapshot.only_shard = Some(only(id));
                Ok(snapshot)
            }
            None => bail!(
                "--shard {id}: the shard was not read: {}",
                shard.gap.unwrap_or_else(|| "no reason recorded".into())
            ),
        }
    }
}

/// A Medplum table that was not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadTable {
    /// Its name as SQL writes it: `"AsyncJob"`.
    pub table: String,
    pub why: String,
}

/// Sessions that were migrating when the snapshot was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationActivity {
    /// Sessions holding Medplum's migration advisory lock (key 1) or running migration DDL.
    pub sessions: Vec<MigratingSession>,
    /// Sessions of this database whose query medmig's role may not see.
    pub hidden_sessions: u32,
}

/// A session that holds the migration lock or runs migration DDL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigratingSession {
    pub pid: i32,
    pub application_name: Option<String>,
    pub state: Option<String>,
    pub query_start: Option<DateTime<Utc>>,
    /// The first 200 characters of its statement.
    pub query: Option<String>,
    pub holds_migration_lock: bool,
    /// Whether its statement is migration DDL (`CREATE INDEX`, `ALTER TABLE`, …); `None` in
    /// snapshots of medmig 0.1 before this field, which kept only lock holders and DDL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_ddl: Option<bool>,
}

impl MigratingSession {
    /// Whether it runs migration DDL (for older snapshots: whether it was kept without
    /// holding the lock, the only other reason they kept a session).
    pub fn ddl(&self) -> bool {
        self.runs_ddl.unwrap_or(!self.holds_migration_lock)
    }
}

/// Where the snapshot came from, without secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSource {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    /// Which connection source was used.
    pub connected_via: ConnectionSource,
    pub ssl_mode: SslMode,
    /// `server_version`, e.g. `15.4 (Debian 15.4-1)`.
    pub server_version: String,
    /// `server_version_num`, e.g. `150004`.
    pub server_version_num: i32,
}

/// Which source supplied the connection settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionSource {
    /// `--database-url`.
    DatabaseUrlFlag,
    /// The `DATABASE_URL` variable.
    DatabaseUrlEnv,
    /// `--medplum-config FILE`.
    MedplumConfig,
    /// The `MEDPLUM_DATABASE_*` variables.
    MedplumEnv,
    /// The libpq `PG*` variables.
    Libpq,
}

impl fmt::Display for ConnectionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionSource::DatabaseUrlFlag => "--database-url",
            ConnectionSource::DatabaseUrlEnv => "DATABASE_URL",
            ConnectionSource::MedplumConfig => "--medplum-config",
            ConnectionSource::MedplumEnv => "MEDPLUM_DATABASE_* variables",
            ConnectionSource::Libpq => "PG* variables",
        })
    }
}

/// TLS modes, named as libpq names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

/// One row of `"DatabaseMigration"`; a column the database lacks is `None` and absent
/// from `columns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseMigrationRow {
    pub id: Option<i64>,
    /// Last pre-deploy migration applied.
    pub version: Option<i64>,
    /// Last post-deploy migration completed.
    pub data_version: Option<i64>,
    pub first_boot: Option<bool>,
    /// The columns the table has, as PostgreSQL names them.
    pub columns: Vec<String>,
}

impl DatabaseMigrationRow {
    /// Reads a row from its `to_jsonb` form, tolerating missing columns and odd types.
    pub fn from_json(row: &serde_json::Value) -> Result<DatabaseMigrationRow> {
        let object = row
            .as_object()
            .ok_or_else(|| anyhow!("a \"DatabaseMigration\" row is not an object"))?;
        let int = |name: &str| -> Result<Option<i64>> {
            match object.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(value) => value.as_i64().map(Some).ok_or_else(|| {
                    anyhow!("\"DatabaseMigration\".\"{name}\" is not an integer: {value}")
                }),
            }
        };
        Ok(DatabaseMigrationRow {
            id: int("id")?,
            version: int("version")?,
            data_version: int("dataVersion")?,
            first_boot: object.get("firstBoot").and_then(serde_json::Value::as_bool),
            columns: object.keys().cloned().collect(),
        })
    }

    /// Whether the table has this column.
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|column| column == name)
    }
}

/// One data-migration `AsyncJob` row. `content` is kept as the database holds it: it may be
/// malformed, and analysis decides what to make of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub last_updated: DateTime<Utc>,
    /// The `"status"` search column (the server keeps it in step with `content`).
    pub status_column: Option<String>,
    /// The `"projectId"` column: null or the system id for a system job, a project's id for a
    /// job inside a project (absent from older snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// The whole resource as JSON text.
    pub content: String,
}

/// One stored version of a job, from `"AsyncJob_History"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobVersion {
    pub job_id: String,
    pub version_id: String,
    pub last_updated: DateTime<Utc>,
    /// The job's status in that version; `None` when it could not be read.
    pub status: Option<String>,
    /// Whether that version carried an `output` (progress or results).
    pub has_output: bool,
}

/// An index left invalid, typically by an interrupted `CREATE INDEX CONCURRENTLY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidIndex {
    pub schema: String,
    pub table: String,
    pub index: String,
    pub definition: String,
    /// `pg_index.indisready`: false when the build stopped in its first phase.
    pub ready: bool,
}

impl Snapshot {
    /// Every Medplum table whose evidence is missing, and why: the unreadable ones, then the
    /// unread ones.
    pub fn missing_tables(&self) -> Vec<UnreadTable> {
        let unreadable = self.unreadable_tables.iter().map(|table| UnreadTable {
            table: table.clone(),
            why: format!("user \"{}\" may not read it", self.source.user),
        });
        unreadable
            .chain(self.unread_tables.iter().cloned())
            .collect()
    }

    /// Why `table` (as SQL writes it: `"AsyncJob"`) is missing, if it is.
    pub fn missing(&self, table: &str) -> Option<String> {
        self.missing_tables()
            .into_iter()
            .find(|missing| missing.table == table)
            .map(|missing| missing.why)
    }

    /// Fails, saying why, when a Medplum table could not be read: for commands whose answer
    /// cannot be given without it (a plan), where [`Snapshot::require_readable`] has let the
    /// snapshot through.
    pub fn require_complete(&self, command: &str) -> Result<()> {
        let Some(missing) = self.unread_tables.first() else {
            return Ok(());
        };
        bail!(
            "{command} needs {} and it could not be read when the evidence was taken: {}",
            missing.table,
            missing.why
        )
    }

    /// Fails, naming the GRANT that is missing, when a Medplum table could not be read.
    pub fn require_readable(&self) -> Result<()> {
        if self.unreadable_tables.is_empty() {
            return Ok(());
        }
        let tables = self.unreadable_tables.join(", ");
        bail!(
            "user \"{user}\" may not read {tables}: as an administrator, in database \"{database}\" \
             run GRANT SELECT ON {tables} TO \"{user}\";",
            user = self.source.user,
            database = self.source.database,
        )
    }

    /// Reads a snapshot file, refusing a newer format and saying clearly what is wrong with a
    /// damaged one.
    /// Reads no more than [`limits::SNAPSHOT_MAX_BYTES`].
    pub fn read(path: &Path) -> Result<Snapshot> {
        let shown = path.display();
        let bytes = limits::read_file(path, limits::SNAPSHOT_MAX_BYTES, "a snapshot")
            .with_context(|| format!("cannot read snapshot {shown}"))?;
        Snapshot::parse_bytes(&bytes).with_context(|| format!("snapshot {shown} is unusable"))
    }

    /// Parses the bytes of a snapshot file (see [`Snapshot::parse`]).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Snapshot> {
        let text = std::str::from_utf8(bytes).map_err(|err| {
            anyhow!("it is not JSON ({err}): pass a file written by `medmig snapshot`")
        })?;
        Snapshot::parse(text)
    }

    /// Parses snapshot JSON text (see [`Snapshot::read`]).
    pub fn parse(text: &str) -> Result<Snapshot> {
        #[derive(Deserialize)]
        struct Header {
            format_version: Option<serde_json::Value>,
        }
        match JsonShape::of(text) {
            JsonShape::Object => {}
            JsonShape::Empty => bail!("it is empty: pass a file written by `medmig snapshot`"),
            JsonShape::Truncated(err) => bail!("it is truncated ({err}): take the snapshot again"),
            JsonShape::NotJson(err) => {
                bail!("it is not JSON ({err}): pass a file written by `medmig snapshot`")
            }
            JsonShape::Other(kind) => bail!(
                "it is JSON but not a medmig snapshot: it is {kind}, not an object with a \
                 format_version: pass a file written by `medmig snapshot`"
            ),
        }
        let header: Header = serde_json::from_str(text)
            .map_err(|err| anyhow!("it does not have the shape of a medmig snapshot ({err})"))?;
        let version = match header.format_version {
            None => bail!("it has no format_version: pass a file written by `medmig snapshot`"),
            Some(value) => value
                .as_u64()
                .ok_or_else(|| anyhow!("its format_version is not a number: {value}"))?,
        };
        if version > u64::from(FORMAT_VERSION) {
            bail!(
                "it has format_version {version} and this medmig reads up to {FORMAT_VERSION}: \
                 upgrade medmig"
            );
        }
        let mut snapshot: Snapshot = serde_json::from_str(text)
            .map_err(|err| anyhow!("it does not have the shape of a medmig snapshot ({err})"))?;
        snapshot.check_shards()?;
        snapshot.resolve_shared_schemas()?;
        Ok(snapshot)
    }

    /// Refuses shards medmig never writes: a shard inside a shard, a shard named `global`,
    /// two shards of one id. Each would hide a database from the analyses.
    fn check_shards(&self) -> Result<()> {
        if self.shards.len() > limits::SNAPSHOT_MAX_SHARDS {
            bail!(
                "it has {} shards, more than the {} medmig reads",
                self.shards.len(),
                limits::SNAPSHOT_MAX_SHARDS
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for shard in &self.shards {
            let shown = crate::text::escape_controls(&shard.id).into_owned();
            if shard.id == GLOBAL_SHARD {
                bail!("it has a shard named \"global\", the id of the top-level database");
            }
            if !seen.insert(shard.id.as_str()) {
                bail!("it has two shards named \"{shown}\"");
            }
            if let Some(inner) = &shard.snapshot {
                if !inner.shards.is_empty() || inner.only_shard.is_some() {
                    bail!("shard \"{shown}\" has shards of its own");
                }
            }
        }
        Ok(())
    }

    /// For writing: takes out of each shard a schema contract equal to that of the global
    /// database or of an earlier shard still holding its own, and names that database in
    /// `schema_same_as` instead. The shards of a deployment run the same migrations, so their
    /// contracts (most of a snapshot: some 2 MB each at Medplum's 450 tables) are usually all
    /// the same; written once, a snapshot of many shards stays small enough to read back and
    /// costs no more to write than one database. [`Snapshot::restore_schemas`] undoes it.
    ///
    /// Contracts are compared whole only where their sizes (tables, columns, indexes,
    /// constraints, functions, extensions) agree.
    pub fn share_schemas(&mut self) -> SharedSchemas {
        self.share(true)
    }

    /// [`Snapshot::share_schemas`] with the global database's contract only: `schema_same_as`
    /// is then always `global`, never a shard's id, which a support bundle redacts as free
    /// text.
    pub fn share_global_schema(&mut self) -> SharedSchemas {
        self.share(false)
    }

    fn share(&mut self, among_shards: bool) -> SharedSchemas {
        fn fingerprint(schema: &SchemaContract) -> [usize; 6] {
            let mut print = [
                schema.tables.len(),
                0,
                0,
                0,
                schema.functions.len(),
                schema.extensions.len(),
            ];
            for table in schema.tables.values() {
                print[1] += table.columns.len();
                print[2] += table.indexes.len();
                print[3] += table.constraints.len();
            }
            print
        }
        let mut shared = SharedSchemas {
            taken: Vec::new(),
            format_version: self.format_version,
        };
        // The databases holding their contract in the file: (id, fingerprint, position), the
        // global one's position `None`.
        let mut holders: Vec<(String, [usize; 6], Option<usize>)> = Vec::new();
        if let Some(schema) = &self.schema {
            holders.push((GLOBAL_SHARD.to_string(), fingerprint(schema), None));
        }
        for i in 0..self.shards.len() {
            let Some(schema) = self.shards[i]
                .snapshot
                .as_ref()
                .and_then(|s| s.schema.as_ref())
            else {
                continue;
            };
            let print = fingerprint(schema);
            let same = holders.iter().find(|(_, held, position)| {
                *held == print
                    && match position {
                        None => self.schema.as_ref() == Some(schema),
                        Some(j) => {
                            self.shards[*j]
                                .snapshot
                                .as_ref()
                                .and_then(|s| s.schema.as_ref())
                                == Some(schema)
                        }
                    }
            });
            match same {
                Some((id, _, _)) => {
                    let id = id.clone();
                    let shard = &mut self.shards[i];
                    if let Some(schema) = shard.snapshot.as_mut().and_then(|s| s.schema.take()) {
                        shared.taken.push((i, schema));
                        shard.schema_same_as = Some(id);
                    }
                }
                None if among_shards => holders.push((self.shards[i].id.clone(), print, Some(i))),
                None => {}
            }
        }
        if !shared.taken.is_empty() {
            self.format_version = self.format_version.max(FORMAT_VERSION);
        }
        shared
    }

    /// Puts back what [`Snapshot::share_schemas`] took.
    pub fn restore_schemas(&mut self, shared: SharedSchemas) {
        for (i, schema) in shared.taken {
            let shard = &mut self.shards[i];
            shard.schema_same_as = None;
            if let Some(snapshot) = shard.snapshot.as_mut() {
                snapshot.schema = Some(schema);
            }
        }
        self.format_version = shared.format_version;
    }

    /// After reading a file: gives each shard written with `schema_same_as` the contract of
    /// the database it names, which must come before it in the file and hold its own. The
    /// contract is shared, not copied: a small file naming one contract from thousands of
    /// shards holds it in memory once.
    pub fn resolve_shared_schemas(&mut self) -> Result<()> {
        for i in 0..self.shards.len() {
            let Some(id) = self.shards[i].schema_same_as.take() else {
                continue;
            };
            let shown = crate::text::escape_controls(&self.shards[i].id).into_owned();
            let named = crate::text::escape_controls(&id).into_owned();
            let Some(snapshot) = self.shards[i].snapshot.as_deref() else {
                bail!("shard \"{shown}\" has a schema_same_as but no snapshot");
            };
            if snapshot.schema.is_some() {
                bail!("shard \"{shown}\" has both a schema and a schema_same_as");
            }
            let source = match id.as_str() {
                GLOBAL_SHARD => self.schema.as_ref(),
                _ => self.shards[..i]
                    .iter()
                    .find(|earlier| earlier.id == id && earlier.schema_same_as.is_none())
                    .and_then(|earlier| earlier.snapshot.as_ref())
                    .and_then(|earlier| earlier.schema.as_ref()),
            };
            let Some(schema) = source.cloned() else {
                bail!(
                    "shard \"{shown}\" has the schema of \"{named}\", which has none of its own \
                     before it in the file"
                );
            };
            if let Some(snapshot) = self.shards[i].snapshot.as_mut() {
                snapshot.schema = Some(schema);
            }
        }
        Ok(())
    }

    /// The format to write: 3 where the snapshot has what format 3 added (shards, or one
    /// database chosen from a sharded deployment), else 2, which older medmig releases read.
    /// Writing makes it 4 where a shard's contract is shared ([`Snapshot::share_schemas`]).
    pub fn settle_format(&mut self) {
        self.format_version = match self.shards.is_empty() && self.only_shard.is_none() {
            true => 2,
            false => 3,
        };
    }

    /// Writes the snapshot as indented JSON into `out` (see `outfile.rs` for where it goes),
    /// each shard's contract once (see [`Snapshot::share_schemas`]).
    pub fn write(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        let shared = self.share_schemas();
        let written = write_json(out, &*self);
        self.restore_schemas(shared);
        written
    }

    /// [`Snapshot::write`] with the schema contract already rendered (`schema`, rendered from
    /// this snapshot's own `schema`): the same bytes, written sooner.
    pub fn write_rendered(
        &mut self,
        schema: &RenderedSchema,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let shared = self.share_schemas();
        let contract = self.schema.take();
        let written = write_json_with_schema(out, &*self, schema);
        self.schema = contract;
        self.restore_schemas(shared);
        written
    }
}

/// What a text is as JSON, told without building anything from it: the first thing every
/// reader of a JSON file checks, so that each can say which of these is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonShape {
    /// A JSON object (what every medmig file is).
    Object,
    /// Nothing but white space.
    Empty,
    /// JSON of another kind: `an array`, `a string`, `a number`, `a boolean`, `null`.
    Other(&'static str),
    /// JSON cut off before its end; the parser's words.
    Truncated(String),
    /// Not JSON at all; the parser's words.
    NotJson(String),
}

impl JsonShape {
    pub fn of(text: &str) -> JsonShape {
        if text.trim().is_empty() {
            return JsonShape::Empty;
        }
        // `IgnoredAny` checks the syntax, nesting depth included, and allocates nothing.
        if let Err(err) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            return if err.is_eof() {
                JsonShape::Truncated(err.to_string())
            } else {
                JsonShape::NotJson(err.to_string())
            };
        }
        match text.trim_start().bytes().next() {
            Some(b'{') => JsonShape::Object,
            Some(b'[') => JsonShape::Other("an array"),
            Some(b'"') => JsonShape::Other("a string"),
            Some(b't' | b'f') => JsonShape::Other("a boolean"),
            Some(b'n') => JsonShape::Other("null"),
            _ => JsonShape::Other("a number"),
        }
    }
}

/// A schema contract rendered as the end of an indented JSON file whose last key is
/// `"schema"`. Rendering 450 tables takes several milliseconds, which collection spends while
/// the server still answers (see `sources/postgres/collect.rs`).
pub struct RenderedSchema(Vec<u8>);

impl RenderedSchema {
    pub fn new(schema: &SchemaContract) -> RenderedSchema {
        /// An object whose one key is the schema: rendered, it holds the schema one level
        /// down, as the file does, after `{` and before the closing `\n}`.
        #[derive(Serialize)]
        struct Last<'a> {
            schema: &'a SchemaContract,
        }
        // A 450-table contract renders to some 2 MB: room for it up front saves the copies of
        // a growing buffer (pages not written to are never touched).
        let mut text = Vec::with_capacity(4 << 20);
        serde_json::to_writer_pretty(&mut text, &Last { schema })
            .expect("a schema contract always serializes");
        RenderedSchema(text)
    }
}

/// Writes `head`, an object without a `"schema"` key, with the rendered `"schema"` added as
/// its last key: byte for byte what [`write_json`] of the whole object gives.
fn write_json_with_schema(
    out: &mut dyn Write,
    head: &impl Serialize,
    schema: &RenderedSchema,
) -> std::io::Result<()> {
    let head = serde_json::to_vec_pretty(head)?;
    let (Some(open), Some(last)) = (head.strip_suffix(b"\n}"), schema.0.strip_prefix(b"{")) else {
        return Err(std::io::Error::other(
            "an empty object has no place for a schema",
        ));
    };
    out.write_all(open)?;
    out.write_all(b",")?;
    out.write_all(last)
}

/// Writes `value` as indented JSON into `out`, streaming it rather than building the text in
/// memory first.
pub fn write_json(out: &mut dyn Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer_pretty(out, value).map_err(std::io::Error::other)
}

/// Everything read from Redis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RedisEvidence {
    /// The queues, in [`QUEUES`] order.
    pub queues: Vec<QueueEvidence>,
    /// The servers alive (registry entries, each refreshed every 10 s with a 60 s lifetime).
    pub servers: Vec<RegisteredServer>,
    /// Whether the registry's SCAN ended (else `servers` may miss some).
    pub registry_complete: bool,
    /// Round trips the read took.
    pub round_trips: usize,
}

/// One BullMQ queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueEvidence {
    pub name: String,
    /// Whether the queue is paused (BullMQ 5: the `paused` field of its meta hash).
    pub paused: bool,
    /// `bullmq:x.y.z` from the meta hash: the BullMQ that last wrote the queue.
    pub bullmq_version: Option<String>,
    /// How many jobs each state holds, and how many were listed (the reader lists at most 1,000 per state).
    pub counts: Vec<StateCount>,
    pub jobs: Vec<BullJob>,
    /// Deduplication keys alive (`bull:Q:de:<id>`): id → the job holding it.
    pub deduplication: Vec<DeduplicationKey>,
}

/// The jobs of one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCount {
    pub state: String,
    pub total: u64,
    pub listed: usize,
}

/// A deduplication key and the job it points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeduplicationKey {
    /// Medplum's deduplication id, `v{N}`.
    pub id: String,
    pub job_id: String,
    /// Milliseconds left, `None` when it has no expiry (Medplum sets none).
    pub ttl_ms: Option<i64>,
}

/// One BullMQ job: only the fields medmig needs (no payload beyond the AsyncJob's id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BullJob {
    pub id: String,
    /// `wait`, `active`, `delayed`, `prioritized`, `paused`, `failed`, `completed`, or
    /// `missing` for a job a deduplication key names whose hash is gone.
    pub state: String,
    pub name: Option<String>,
    /// `custom`, `reindex`, `dynamic` (the job data's `type`).
    pub kind: Option<String>,
    /// The AsyncJob it runs (`asyncJobId`, or `tracking.asyncJobId` in newer payloads).
    pub async_job_id: Option<String>,
    /// Its deduplication id (`deid`), `v{N}` for a post-deploy migration.
    pub deduplication_id: Option<String>,
    /// When it was added, started and finished (ms since the epoch).
    pub timestamp: Option<i64>,
    pub processed_on: Option<i64>,
    pub finished_on: Option<i64>,
    /// The delay last asked for (ms), and when a delayed job becomes due (ms since the epoch).
    pub delay: Option<i64>,
    pub due_at: Option<i64>,
    pub attempts_made: Option<i64>,
    /// The attempts allowed (its options' `attempts`).
    pub attempts: Option<i64>,
    pub failed_reason: Option<String>,
    /// For an active job: milliseconds left on its worker's lock (`bull:Q:<id>:lock`), `None`
    /// when the lock is gone: the worker died and the job is stalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_ttl_ms: Option<i64>,
}

/// One live server, as it registers itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredServer {
    pub id: String,
    pub version: Option<String>,
    pub full_version: Option<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Milliseconds before the entry expires unless refreshed.
    pub ttl_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The steady-state fixture as a deployment: shards `a` and `b` with the global
    /// database's contract, `c` with one index fewer, `d` the same as `c`, `e` not read.
    fn sharded() -> Snapshot {
        let text = std::fs::read_to_string("fixtures/snapshots/steady-state.json").unwrap();
        let global = Snapshot::parse(&text).unwrap();
        let mut other = global.clone();
        let schema = Arc::make_mut(other.schema.as_mut().unwrap());
        let table = schema
            .tables
            .values_mut()
            .find(|t| !t.indexes.is_empty())
            .unwrap();
        let first = table.indexes.keys().next().unwrap().clone();
        table.indexes.remove(&first);
        let shard = |id: &str, snapshot: &Snapshot| ShardEvidence {
            id: id.to_string(),
            snapshot: Some(Box::new(snapshot.clone())),
            gap: None,
            schema_same_as: None,
        };
        let mut deployment = global.clone();
        deployment.shards = vec![
            shard("a", &global),
            shard("b", &global),
            shard("c", &other),
            shard("d", &other),
            ShardEvidence {
                id: "e".to_string(),
                snapshot: None,
                gap: Some("connection refused".to_string()),
                schema_same_as: None,
            },
        ];
        deployment.settle_format();
        deployment
    }

    #[test]
    fn equal_shard_contracts_are_written_once_and_read_back_whole() {
        let mut deployment = sharded();
        let original = deployment.clone();
        let mut bytes = Vec::new();
        deployment.write(&mut bytes).unwrap();
        assert_eq!(
            deployment, original,
            "writing leaves the snapshot as it was"
        );
        let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(file["format_version"], 4);
        let shards = file["shards"].as_array().unwrap();
        let same: Vec<_> = shards.iter().map(|s| s["schema_same_as"].clone()).collect();
        assert_eq!(
            same,
            [
                serde_json::json!("global"),
                serde_json::json!("global"),
                serde_json::Value::Null,
                serde_json::json!("c"),
                serde_json::Value::Null
            ]
        );
        for (i, shard) in shards.iter().enumerate() {
            let has_schema = shard["snapshot"].get("schema").is_some();
            assert_eq!(has_schema, i == 2, "shard {i}");
        }
        let written = String::from_utf8(bytes).unwrap();
        let mut read = Snapshot::parse(&written).unwrap();
        assert_eq!(read.format_version, 4);
        read.format_version = original.format_version;
        assert!(read == original, "read back as written");
        // Read back, the shared contract is held once.
        let contract = |i: usize| read.shards[i].snapshot.as_ref().unwrap().schema.clone();
        assert!(Arc::ptr_eq(
            &contract(0).unwrap(),
            read.schema.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(&contract(3).unwrap(), &contract(2).unwrap()));
        // The global database's contract alone, as a bundle shares it.
        let shared = deployment.share_global_schema();
        let value = serde_json::to_value(&deployment).unwrap();
        deployment.restore_schemas(shared);
        assert!(deployment == original);
        assert_eq!(
            value["shards"][3]["schema_same_as"],
            serde_json::Value::Null
        );
        assert!(value["shards"][3]["snapshot"].get("schema").is_some());
        assert_eq!(value["shards"][1]["schema_same_as"], "global");
    }

    #[test]
    fn a_shared_contract_must_name_a_database_before_it_that_holds_one() {
        let mut deployment = sharded();
        let mut bytes = Vec::new();
        deployment.write(&mut bytes).unwrap();
        let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let refused = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut file = file.clone();
            change(&mut file);
            Snapshot::parse(&file.to_string()).unwrap_err().to_string()
        };
        // Itself, an unknown shard, and one not read.
        for (named, why) in [
            ("d", "has the schema of \"d\""),
            ("zz", "has the schema of \"zz\""),
            ("e", "has the schema of \"e\""),
        ] {
            let err = refused(&|f| f["shards"][3]["schema_same_as"] = serde_json::json!(named));
            assert!(err.contains(why), "{named}: {err}");
        }
        // More shards than medmig analyses.
        let err = refused(&|f| {
            let shard = f["shards"][0].clone();
            let many: Vec<_> = (0..=limits::SNAPSHOT_MAX_SHARDS)
                .map(|i| {
                    let mut shard = shard.clone();
                    shard["id"] = serde_json::json!(format!("s{i}"));
                    shard
                })
                .collect();
            f["shards"] = serde_json::Value::Array(many);
        });
        assert!(err.contains("1001 shards, more than the 1000"), "{err}");
        // A shard whose own contract was shared is resolved first, and holds it then.
        let mut chained = file.clone();
        chained["shards"][1]["schema_same_as"] = serde_json::json!("a");
        let chained = Snapshot::parse(&chained.to_string()).unwrap();
        assert_eq!(chained.shards[1].snapshot, sharded().shards[1].snapshot);
        let err = refused(&|f| {
            f["shards"][2]["schema_same_as"] = serde_json::json!("global");
        });
        assert!(err.contains("both a schema and a schema_same_as"), "{err}");
        let err = refused(&|f| f["shards"][4]["schema_same_as"] = serde_json::json!("global"));
        assert!(err.contains("no snapshot"), "{err}");
        // An older medmig refuses the file rather than read shards without their contract.
        assert!(file["format_version"].as_u64() > Some(3));
        // With nothing shared, format 3, which the release before it reads.
        let mut unshared = sharded();
        unshared
            .shards
            .retain(|shard| shard.id == "c" || shard.id == "e");
        let mut bytes = Vec::new();
        unshared.write(&mut bytes).unwrap();
        let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(file["format_version"], 3);
    }

    #[test]
    fn a_rendered_schema_writes_the_same_bytes() {
        let text = std::fs::read_to_string("fixtures/snapshots/steady-state.json").unwrap();
        let mut snapshot = Snapshot::parse(&text).unwrap();
        assert!(snapshot
            .schema
            .as_ref()
            .is_some_and(|s| !s.tables.is_empty()));
        let (mut whole_bytes, mut spliced_bytes) = (Vec::new(), Vec::new());
        snapshot.write(&mut whole_bytes).unwrap();
        let rendered = RenderedSchema::new(snapshot.schema.as_ref().unwrap());
        snapshot
            .write_rendered(&rendered, &mut spliced_bytes)
            .unwrap();
        assert!(
            whole_bytes == spliced_bytes,
            "{}",
            String::from_utf8_lossy(&spliced_bytes)
        );
        assert!(snapshot.schema.is_some(), "the snapshot keeps its schema");
    }

    #[test]
    fn database_migration_rows_tolerate_missing_columns() {
        let row =
            DatabaseMigrationRow::from_json(&serde_json::json!({"id": 1, "version": 40})).unwrap();
        assert_eq!(row.version, Some(40));
        assert_eq!(row.data_version, None);
        assert!(!row.has_column("firstBoot"));
        let err = DatabaseMigrationRow::from_json(&serde_json::json!({"id": 1, "version": "x"}))
            .unwrap_err();
        assert!(err.to_string().contains("not an integer"));
    }

    #[test]
    fn damaged_snapshots_are_explained() {
        assert!(Snapshot::parse("{\"format_version\": 1, \"jobs\": [")
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        assert!(Snapshot::parse("PK\u{3}\u{4}")
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
        assert!(Snapshot::parse("{\"format_version\": 9}")
            .unwrap_err()
            .to_string()
            .contains("upgrade medmig"));
        assert!(Snapshot::parse("{\"format_version\": 1}")
            .unwrap_err()
            .to_string()
            .contains("shape"));
        assert!(Snapshot::parse("{}")
            .unwrap_err()
            .to_string()
            .contains("no format_version"));
        for (text, kind) in [
            ("[1,2,3]", "an array"),
            ("\"snapshot\"", "a string"),
            (" 42 ", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
        ] {
            let err = Snapshot::parse(text).unwrap_err().to_string();
            assert!(
                err.contains("it is JSON but not a medmig snapshot") && err.contains(kind),
                "{text}: {err}"
            );
        }
        assert!(Snapshot::parse(" \n")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(Snapshot::parse_bytes(b"{\"format_version\": \"\xff\"}")
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
    }
}
