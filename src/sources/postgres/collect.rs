//! Live database → [`Snapshot`], in one read-only `REPEATABLE READ` transaction.
//!
//! This module owns every statement medmig sends (each one a file under `queries/`) and the
//! order they run in. The number of statements is fixed — it does not grow with the number
//! of jobs, tables or indexes. It never writes, never takes more than the `ACCESS SHARE`
//! lock of a plain read, and gives up after `lock_timeout` rather than queue behind a
//! migration: a migration table it cannot read for a lock is recorded with why (a gap), and the
//! rest is still read. Every answer is held to the client's own deadline (`Watch`). It reads
//! no table content but `"DatabaseMigration"` and data-migration `"AsyncJob"` rows.
//! Interpretation belongs to `analyze/`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{Client, IsolationLevel, Row, RowStream, Transaction};

use super::connect::{ConnectionSettings, Session, Target, Watch};
use crate::catalog::{
    primary_key_definition, qualified, CatalogNames, ColumnContract, ColumnName,
    ConstraintContract, ConstraintKind, ExtensionContract, FunctionContract, IndexContract,
    IndexParts, SchemaContract, TableContract, TableNames,
};
use crate::diagnostics::{Diagnostics, Gap, SETTINGS};
use crate::nodetree::{boolean_equality, call_on_columns};
use crate::snapshot::{
    DatabaseMigrationRow, InvalidIndex, JobRecord, JobVersion, MigratingSession, MigrationActivity,
    RenderedSchema, Snapshot, SnapshotSource, UnreadTable, FORMAT_VERSION,
};

const SESSION_SETTINGS: &str = include_str!("../../../queries/session_settings.sql");
const PROBE: &str = include_str!("../../../queries/probe.sql");
const DATABASE_MIGRATION: &str = include_str!("../../../queries/database_migration.sql");
const DATA_MIGRATION_JOBS: &str = include_str!("../../../queries/data_migration_jobs.sql");
const DATA_MIGRATION_JOB_HISTORY: &str =
    include_str!("../../../queries/data_migration_job_history.sql");
const DATA_MIGRATION_JOBS_SINCE: &str =
    include_str!("../../../queries/data_migration_jobs_since.sql");
const DATA_MIGRATION_JOB_HISTORY_SINCE: &str =
    include_str!("../../../queries/data_migration_job_history_since.sql");
const SCHEMA_COLUMNS: &str = include_str!("../../../queries/schema_columns.sql");
const SCHEMA_INDEXES: &str = include_str!("../../../queries/schema_indexes.sql");
const SCHEMA_NAMES: &str = include_str!("../../../queries/schema_names.sql");
const SCHEMA_CONSTRAINTS: &str = include_str!("../../../queries/schema_constraints.sql");
const SCHEMA_FUNCTIONS: &str = include_str!("../../../queries/schema_functions.sql");
const SCHEMA_EXTENSIONS: &str = include_str!("../../../queries/schema_extensions.sql");
const MIGRATION_ACTIVITY: &str = include_str!("../../../queries/migration_activity.sql");

/// Diagnostics for bundles: kind, query. Each returns its rows as one JSON array.
const DIAGNOSTICS: [(&str, &str); 6] = [
    (
        "settings",
        include_str!("../../../queries/diagnostics_settings.sql"),
    ),
    (
        "setting_overrides",
        include_str!("../../../queries/diagnostics_setting_overrides.sql"),
    ),
    (
        "database_size",
        include_str!("../../../queries/diagnostics_database_size.sql"),
    ),
    (
        "largest_tables",
        include_str!("../../../queries/diagnostics_largest_tables.sql"),
    ),
    (
        "activity",
        include_str!("../../../queries/diagnostics_activity.sql"),
    ),
    (
        "replication",
        include_str!("../../../queries/diagnostics_replication.sql"),
    ),
];

/// Statements that only a migration runs (see `queries/migration_activity.sql`).
const MIGRATION_STATEMENTS: &str = r#"^\s*(CREATE\s+(UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX|ALTER\s+TABLE|DROP\s+TABLE|VACUUM\s+FULL|CLUSTER|UPDATE\s+"DatabaseMigration")"#;

/// Writes that a post-deploy migration runs (backfills, orphan deletes, statistics): kept
/// when they have run for a while, see `queries/migration_activity.sql`.
const LONG_WRITES: &str = r#"^\s*(UPDATE|DELETE|INSERT|WITH|ANALYZE|VACUUM|DO|CALL|TRUNCATE)\M"#;

/// The `"AsyncJob"."type"` of post-deploy migration jobs.
const DATA_MIGRATION_TYPE: &str = "data-migration";

/// Why collection stopped.
enum Failure {
    /// A statement failed; `reading` names what it read, for the message.
    Query(tokio_postgres::Error, &'static str),
    /// The database is not what medmig can read (not Medplum's, privileges missing).
    Refused(anyhow::Error),
    /// A row came back that medmig cannot decode; `reading` names what it read.
    Unreadable(Unreadable, &'static str),
}

impl From<(tokio_postgres::Error, &'static str)> for Failure {
    fn from((err, reading): (tokio_postgres::Error, &'static str)) -> Failure {
        Failure::Query(err, reading)
    }
}

/// Connects, reads everything in one read-only transaction, and disconnects.
pub async fn collect(settings: &ConnectionSettings) -> Result<Snapshot> {
    Ok(collect_all(settings, Wanted::default()).await?.snapshot)
}

/// [`collect`], plus the diagnostics a support bundle carries, in the same transaction.
pub async fn collect_with_diagnostics(
    settings: &ConnectionSettings,
) -> Result<(Snapshot, Diagnostics)> {
    let wanted = Wanted {
        diagnostics: true,
        ..Wanted::default()
    };
    let collected = collect_all(settings, wanted).await?;
    Ok((
        collected.snapshot,
        collected.diagnostics.unwrap_or_default(),
    ))
}

/// The schema contract alone, as `schema capture` and `schema diff` read it: the catalog
/// queries, and no table rows (so a lock a migration holds on `"AsyncJob"` is no obstacle). The
/// snapshot's rows are empty and none is recorded as missing: it is for its schema only.
pub async fn collect_schema(settings: &ConnectionSettings) -> Result<Snapshot> {
    let wanted = Wanted {
        catalog_only: true,
        ..Wanted::default()
    };
    Ok(collect_all(settings, wanted).await?.snapshot)
}

/// [`collect`] for a file: with the snapshot's schema contract already rendered (see
/// [`Snapshot::write_rendered`]), on another thread while the server answered the last
/// statements.
pub async fn collect_for_file(settings: &ConnectionSettings) -> Result<(Snapshot, RenderedSchema)> {
    let wanted = Wanted {
        rendered_schema: true,
        ..Wanted::default()
    };
    let collected = collect_all(settings, wanted).await?;
    let rendered = collected
        .rendered_schema
        .expect("the schema is rendered whenever it is wanted");
    Ok((collected.snapshot, rendered))
}

/// What a command wants besides the snapshot.
#[derive(Clone, Copy, Default)]
struct Wanted {
    diagnostics: bool,
    rendered_schema: bool,
    /// The catalog only: no table rows, no sessions.
    catalog_only: bool,
    /// A poll of `wait`: no catalog, and only the jobs (and their versions) written since this
    /// moment, deleted ones named.
    rows_since: Option<DateTime<Utc>>,
}

/// The snapshot, and what else was [`Wanted`].
struct Collected {
    snapshot: Snapshot,
    diagnostics: Option<Diagnostics>,
    rendered_schema: Option<RenderedSchema>,
    /// The ids of the jobs deleted since [`Wanted::rows_since`].
    deleted_jobs: Vec<String>,
    /// The statements sent and the rows they returned.
    load: Load,
}

/// What one read cost the server: statements sent, rows returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub statements: usize,
    pub rows: usize,
}

async fn collect_all(settings: &ConnectionSettings, wanted: Wanted) -> Result<Collected> {
    let mut session = settings.connect().await?;
    let (result, healthy) = read_on(&mut session, settings, wanted).await;
    match healthy {
        true => session.close().await,
        false => session.abandon(),
    }
    result
}

/// Reads what is [`Wanted`] on an open session, in one read-only transaction that ends
/// before this returns. The flag says whether the session is still fit for use: `false` when
/// the client's deadline ran out with a statement outstanding (drop it unclosed, see
/// [`Session::abandon`]).
async fn read_on(
    session: &mut Session,
    settings: &ConnectionSettings,
    wanted: Wanted,
) -> (Result<Collected>, bool) {
    let timeouts = session.timeout_settings();
    let source = |user: String, server_version: String, server_version_num: i32| {
        let target = settings.target();
        SnapshotSource {
            host: target.host,
            port: target.port,
            database: target.database,
            user,
            connected_via: settings.source.clone(),
            ssl_mode: settings.ssl_mode,
            server_version,
            server_version_num,
        }
    };
    let watch = session.watch();
    let target = session.target.clone();
    let reading = read_snapshot(
        &mut session.client,
        &watch,
        settings,
        &timeouts,
        &target,
        source,
        wanted,
    );
    let outcome = match watch.guard(reading).await {
        Ok(outcome) => outcome,
        Err(expired) => return (Err(session.expired(expired)), false),
    };
    let result = match outcome {
        Ok(collected) => Ok(collected),
        Err(Failure::Refused(err)) => Err(err),
        Err(Failure::Query(err, reading)) => Err(session.explain(err, reading).await),
        Err(Failure::Unreadable(unreadable, reading)) => Err(anyhow!(
            "reading {reading} from {} failed: {unreadable}; this server's catalog is not what \
             medmig knows (it reads PostgreSQL 13 to 18): report it with the server's version",
            session.target
        )),
    };
    (result, true)
}

/// `medmig wait`'s reader: one session kept open between polls (idle, outside any
/// transaction), each poll one short read-only transaction under the same limits as every
/// read. The first poll reads everything [`collect`] does; the later ones skip the catalog
/// and read only the jobs written since the last poll's window (see
/// `queries/data_migration_jobs_since.sql`), which [`Poller::poll`] merges into the evidence.
pub struct Poller {
    settings: ConnectionSettings,
    session: Option<Session>,
    /// The evidence so far; `None` until the first poll succeeds.
    evidence: Option<Snapshot>,
    /// Where the next poll's window of jobs starts.
    since: Option<DateTime<Utc>>,
}

/// How far back each later poll reads jobs, before the previous poll's start: the server
/// stamps `lastUpdated` with its own clock before its transaction commits, so a job written
/// just before the previous poll may become visible only after it, and the servers' clocks
/// may run behind the database's.
pub const POLL_OVERLAP: std::time::Duration = std::time::Duration::from_secs(300);

/// What one poll read.
pub struct Polled<'a> {
    /// Every job read so far, brought up to date, with the catalog of the first poll.
    pub snapshot: &'a mut Snapshot,
    pub load: Load,
    /// Whether this poll read everything (the catalog and every job), not only a window.
    pub full: bool,
}

impl Poller {
    pub fn new(settings: ConnectionSettings) -> Poller {
        Poller {
            settings,
            session: None,
            evidence: None,
            since: None,
        }
    }

    /// Reads once. A failure drops the session (the next poll connects again) and leaves the
    /// evidence of the last good poll as it was.
    pub async fn poll(&mut self) -> Result<Polled<'_>> {
        if self.session.is_none() {
            self.session = Some(self.settings.connect().await?);
        }
        let session = self.session.as_mut().expect("connected above");
        let full = self.since.is_none();
        let wanted = Wanted {
            rows_since: self.since,
            ..Wanted::default()
        };
        let (result, healthy) = read_on(session, &self.settings, wanted).await;
        if !healthy || result.is_err() {
            if let Some(session) = self.session.take() {
                match healthy {
                    true => session.close().await,
                    false => session.abandon(),
                }
            }
        }
        let collected = result?;
        let load = collected.load;
        // The next window starts a margin before this poll; where the jobs could not be read
        // (a lock), it stays where it was.
        if !jobs_unread(&collected.snapshot) {
            let overlap = chrono::Duration::from_std(POLL_OVERLAP).unwrap_or(chrono::Duration::MAX);
            self.since = Some(collected.snapshot.taken_at - overlap);
        }
        // A full read replaces everything: a job removed outright (expunged) is gone from it.
        let evidence = match self.evidence.take() {
            Some(previous) if !full => merge_poll(previous, collected),
            _ => collected.snapshot,
        };
        let snapshot = self.evidence.insert(evidence);
        Ok(Polled {
            snapshot,
            load,
            full,
        })
    }

    /// Makes the next poll a full read, as the first was: the catalog and every job. `wait`
    /// asks for one to confirm a failure before it reports it, so that nothing a window could
    /// miss (a job expunged, a server clock far behind) decides the exit code.
    pub fn read_everything_next(&mut self) {
        self.since = None;
    }
}

/// The evidence of `previous` brought up to date by a later poll: the migration row,
/// sessions and gaps of the poll; the jobs and versions of the poll's window replacing or
/// joining the earlier ones (a deleted job removed); the catalog of `previous`. Where the
/// poll could not read the jobs (a lock), the earlier jobs are kept beside the poll's gap
/// (which makes them unknown to the analysis), and the next poll reads the same window again.
fn merge_poll(previous: Snapshot, poll: Collected) -> Snapshot {
    let Collected {
        snapshot: mut now,
        deleted_jobs,
        ..
    } = poll;
    if jobs_unread(&now) {
        now.jobs = previous.jobs;
        now.job_history = previous.job_history;
    } else {
        let mut jobs: BTreeMap<String, crate::snapshot::JobRecord> = previous
            .jobs
            .into_iter()
            .map(|job| (job.id.clone(), job))
            .collect();
        for id in &deleted_jobs {
            jobs.remove(id);
        }
        for job in std::mem::take(&mut now.jobs) {
            jobs.insert(job.id.clone(), job);
        }
        let mut history: BTreeMap<(String, String), JobVersion> = previous
            .job_history
            .into_iter()
            .filter(|v| jobs.contains_key(&v.job_id))
            .map(|v| ((v.job_id.clone(), v.version_id.clone()), v))
            .collect();
        for version in std::mem::take(&mut now.job_history) {
            history.insert(
                (version.job_id.clone(), version.version_id.clone()),
                version,
            );
        }
        let mut jobs: Vec<_> = jobs.into_values().collect();
        jobs.sort_by(|a, b| (a.last_updated, &a.id).cmp(&(b.last_updated, &b.id)));
        let mut history: Vec<_> = history.into_values().collect();
        history.sort_by(|a, b| {
            (&a.job_id, a.last_updated, &a.version_id).cmp(&(
                &b.job_id,
                b.last_updated,
                &b.version_id,
            ))
        });
        now.jobs = jobs;
        now.job_history = history;
    }
    now.schema = previous.schema;
    now.invalid_indexes = previous.invalid_indexes;
    now.redis = None;
    now.redis_gap = None;
    now
}

/// Whether a read left the jobs or their history unread (locked, or not readable by the
/// role): then the window of the next poll stays where it was.
fn jobs_unread(snapshot: &Snapshot) -> bool {
    const TABLES: [&str; 2] = ["\"AsyncJob\"", "\"AsyncJob_History\""];
    snapshot
        .unread_tables
        .iter()
        .any(|t| TABLES.contains(&t.table.as_str()))
        || snapshot
            .unreadable_tables
            .iter()
            .any(|t| TABLES.contains(&t.as_str()))
}

/// Begins the transaction every read goes through: `REPEATABLE READ READ ONLY`, with
/// `statement_timeout`, `lock_timeout` and `idle_in_transaction_session_timeout` set for it
/// (`timeouts`, from [`Session::timeout_settings`](super::connect::Session::timeout_settings)).
pub async fn begin_read_only<'a>(
    client: &'a mut Client,
    timeouts: &[String; 3],
) -> Result<Transaction<'a>, tokio_postgres::Error> {
    let transaction = start_read_only(client).await?;
    set_limits(&transaction, timeouts).await?;
    Ok(transaction)
}

async fn start_read_only(client: &mut Client) -> Result<Transaction<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
}

/// The limits of [`begin_read_only`], for the transaction.
async fn set_limits(
    transaction: &Transaction<'_>,
    timeouts: &[String; 3],
) -> Result<(), tokio_postgres::Error> {
    let params: Params = &[
        (&timeouts[0], Type::TEXT),
        (&timeouts[1], Type::TEXT),
        (&timeouts[2], Type::TEXT),
    ];
    transaction
        .query_typed_one(SESSION_SETTINGS, params)
        .await?;
    Ok(())
}

/// Why a migration table the probe found locked is not read.
const LOCKED: &str = "another session holds or awaits an ACCESS EXCLUSIVE lock on it (a \
    migration altering it?), and medmig does not queue behind it: try again later, or see \
    pg_stat_activity for the holder";

async fn read_snapshot(
    client: &mut Client,
    watch: &Watch,
    settings: &ConnectionSettings,
    timeouts: &[String; 3],
    target: &Target,
    source: impl FnOnce(String, String, i32) -> SnapshotSource,
    wanted: Wanted,
) -> Result<Collected, Failure> {
    let at = |reading: &'static str| move |err| (err, reading);
    let starting = "the start of a read-only transaction";
    let start = at(starting);
    let transaction = watch
        .round_trip(starting, start_read_only(client))
        .await
        .map_err(start)?;
    // The limits and the probe go out together (`biased`: in that order): the probe takes no
    // lock and reads only the catalogs, so it cannot wait on anything.
    let (limited, probe) = watch
        .round_trip("the server version and the catalog", async {
            tokio::join!(
                biased;
                set_limits(&transaction, timeouts),
                transaction.query_typed_one(PROBE, &[]),
            )
        })
        .await;
    watch.also_sent(1);
    limited.map_err(start)?;
    let probe = probe.map_err(at("the server version and the catalog"))?;
    // The limits' row and the probe's.
    watch.row();
    watch.row();
    let get = |name: &str| -> Result<bool, Failure> {
        probe
            .try_get(name)
            .map_err(|err| (err, "the server version and the catalog").into())
    };
    if !get("migration_table")? {
        return Err(Failure::Refused(anyhow!(
            "{target} is not a Medplum database: it has no \"DatabaseMigration\" table; \
             point medmig at the database the Medplum server uses (see its medplum.config.json)"
        )));
    }
    let facts = at("the server version and the catalog");
    let taken_at = probe.try_get("taken_at").map_err(facts)?;
    let user: String = probe.try_get("user_name").map_err(facts)?;
    let server_version: String = probe.try_get("server_version").map_err(facts)?;
    let server_version_num: i32 = probe.try_get("server_version_num").map_err(facts)?;

    let async_job_table = get("job_table")?;
    let history_table = async_job_table && get("history_table")?;
    // A table the role may not read is recorded, not fatal: `status` refuses such a snapshot
    // with the GRANT to run, `rollback-check` answers UNKNOWN. One a migration holds locked
    // is not read, and recorded with why: its evidence is unknown. Neither matters for the
    // catalog alone.
    let mut unreadable_tables = Vec::new();
    let mut unread_tables = Vec::new();
    let rows = !wanted.catalog_only;
    let mut readable = |exists: bool, table: &str, prefix: &str| -> Result<bool, Failure> {
        let exists = rows && exists;
        let ok = exists && get(&format!("{prefix}_readable"))?;
        if exists && !ok {
            unreadable_tables.push(table.to_string());
        }
        let locked = ok && get(&format!("{prefix}_locked"))?;
        if locked {
            unread_tables.push(UnreadTable {
                table: table.to_string(),
                why: LOCKED.to_string(),
            });
        }
        Ok(ok && !locked)
    };
    let read_migration = readable(true, "\"DatabaseMigration\"", "migration")?;
    let read_jobs = readable(async_job_table, "\"AsyncJob\"", "job")?;
    let read_history = readable(history_table, "\"AsyncJob_History\"", "history")?;

    // Everything else goes out in one flight (see `Reads`).
    // Tables a migration holds or awaits ACCESS EXCLUSIVE on: the catalog queries leave them
    // closed rather than queue behind the lock.
    let locked: Vec<u32> = probe.try_get("locked_tables").map_err(facts)?;
    let since = wanted.rows_since.unwrap_or(DateTime::<Utc>::MIN_UTC);
    let since_params: [(&(dyn ToSql + Sync), Type); 2] = [
        (&DATA_MIGRATION_TYPE, Type::TEXT),
        (&since, Type::TIMESTAMPTZ),
    ];
    let reads = Reads::send(
        &transaction,
        watch,
        settings,
        &[(&locked, Type::OID_ARRAY)],
        RowReads {
            migration: read_migration,
            jobs: read_jobs,
            history: read_jobs && read_history,
            activity: rows,
        },
        Catalog {
            read: wanted.rows_since.is_none(),
            render: wanted.rendered_schema,
        },
        match wanted.rows_since {
            None => JobReads::all(&since_params[..1]),
            Some(_) => JobReads::since(&since_params),
        },
    )
    .await?;
    // A migration table that could not be read after all (locked after the probe looked) is
    // noted with why; the history is read through the jobs, and cannot be without them.
    let (migration_rows, migration_why) = reads.database_migration;
    let (JobsRead { jobs, deleted_jobs }, jobs_why) = reads.jobs;
    let (job_history, mut history_why) = reads.job_history;
    let jobs_locked = unread_tables.iter().any(|t| t.table == "\"AsyncJob\"");
    if read_history && (jobs_locked || jobs_why.is_some()) {
        history_why = Some(
            "its rows are chosen by the \"AsyncJob\" rows, which could not be read".to_string(),
        );
    }
    for (table, why) in [
        ("\"DatabaseMigration\"", migration_why),
        ("\"AsyncJob\"", jobs_why),
        ("\"AsyncJob_History\"", history_why),
    ] {
        if let Some(why) = why {
            unread_tables.push(UnreadTable {
                table: table.to_string(),
                why,
            });
        }
    }
    let database_migration = migration_rows
        .iter()
        .map(DatabaseMigrationRow::from_json)
        .collect::<Result<Vec<_>>>()
        .map_err(Failure::Refused)?;
    let mut transaction = transaction;
    let diagnostics = if wanted.diagnostics {
        Some(read_diagnostics(&mut transaction, watch).await?)
    } else {
        None
    };
    // Nothing was written; ending with ROLLBACK says so.
    let ending = "the end of the transaction";
    watch
        .round_trip(ending, transaction.rollback())
        .await
        .map_err(at(ending))?;
    // The schema may still be rendering: it is waited for only now, with the server done.
    let (schema, rendered_schema) = reads.schema.finish().await;
    let invalid_indexes = schema.as_ref().map(invalid_indexes).unwrap_or_default();
    let (statements, rows_read) = watch.load();

    Ok(Collected {
        snapshot: Snapshot {
            format_version: FORMAT_VERSION,
            medmig_version: env!("CARGO_PKG_VERSION").to_string(),
            taken_at,
            source: source(user, server_version, server_version_num),
            database_migration,
            async_job_table,
            jobs,
            job_history,
            invalid_indexes,
            schema: schema.map(std::sync::Arc::new),
            redis: None,
            redis_gap: None,
            shards: Vec::new(),
            only_shard: None,
            activity: rows.then_some(reads.activity),
            unreadable_tables,
            unread_tables,
        },
        diagnostics,
        rendered_schema,
        deleted_jobs,
        load: Load {
            statements,
            rows: rows_read,
        },
    })
}

/// Every diagnostic query, each under its own savepoint: one that fails (a privilege, an old
/// server, a timeout) becomes a gap and the others still run.
///
/// Each is an unnamed statement with its parameter types given, as every other statement:
/// named prepared statements would collide behind a transaction-mode pooler.
async fn read_diagnostics(
    transaction: &mut Transaction<'_>,
    watch: &Watch,
) -> Result<Diagnostics, Failure> {
    const READING: &str = "the database diagnostics";
    let mut diagnostics = Diagnostics::default();
    let names: Vec<&str> = SETTINGS.to_vec();
    let savepoint_failed = |err| (err, "a savepoint");
    for (kind, sql) in DIAGNOSTICS {
        let savepoint = watch
            .round_trip(READING, transaction.savepoint("medmig_diagnostic"))
            .await
            .map_err(savepoint_failed)?;
        let params: Params = match kind {
            "settings" => &[(&names, Type::TEXT_ARRAY)],
            _ => &[],
        };
        let result = watch
            .round_trip(READING, savepoint.query_typed_one(sql, params))
            .await;
        match result.and_then(|row| row.try_get::<_, serde_json::Value>("rows")) {
            Ok(rows) => {
                watch
                    .round_trip(READING, savepoint.commit())
                    .await
                    .map_err(savepoint_failed)?;
                diagnostics.sections.insert(kind.to_string(), rows);
            }
            Err(err) => {
                let why = match err.as_db_error() {
                    Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
                    None => err.to_string(),
                };
                watch
                    .round_trip(READING, savepoint.rollback())
                    .await
                    .map_err(savepoint_failed)?;
                diagnostics.gaps.push(Gap {
                    what: kind.replace('_', " "),
                    why,
                });
            }
        }
    }
    Ok(diagnostics)
}

/// The indexes left invalid (an interrupted `CREATE INDEX CONCURRENTLY`), from the contract.
fn invalid_indexes(schema: &SchemaContract) -> Vec<InvalidIndex> {
    let mut invalid = Vec::new();
    for (key, table) in &schema.tables {
        let (schema_name, table_name) = key.split_once('.').unwrap_or(("", key));
        for (name, index) in table.indexes.iter().filter(|(_, i)| !i.valid) {
            invalid.push(InvalidIndex {
                schema: schema_name.to_string(),
                table: table_name.to_string(),
                index: name.clone(),
                definition: index.shown().to_string(),
                ready: index.ready,
            });
        }
    }
    invalid
}

/// Everything read after the probe.
///
/// The statements go out in one flight: each is an unnamed statement with its parameter types
/// given (parse, bind and execute in one message batch: no round trip to prepare, nothing to
/// close, nothing left behind for a transaction-mode pooler), and all are written before the
/// first answer is read. The server runs them back to back while medmig decodes each answer
/// as it comes in. A statement that fails aborts the transaction and the ones after it fail
/// with it; the first failure, in sending order, is the one reported. Except for the
/// migration tables, which a migration may lock: they are read under a savepoint, each read
/// followed by a rollback to it, so that one that gives up on a lock (or is cancelled) aborts
/// nothing else and is noted with why instead (see [`Lenient`]).
struct Reads {
    database_migration: Lenient<Vec<serde_json::Value>>,
    jobs: Lenient<JobsRead>,
    job_history: Lenient<Vec<JobVersion>>,
    schema: Schema,
    activity: MigrationActivity,
}

/// The jobs a read gave, and (for a read of the jobs written since a moment) those deleted.
#[derive(Default)]
struct JobsRead {
    jobs: Vec<JobRecord>,
    deleted_jobs: Vec<String>,
}

/// The statements that read the jobs and their versions, and their parameters.
struct JobReads<'p> {
    jobs: &'static str,
    history: &'static str,
    params: Params<'p>,
}

impl<'p> JobReads<'p> {
    /// Every job: `params` is the job type.
    fn all(params: Params<'p>) -> JobReads<'p> {
        JobReads {
            jobs: DATA_MIGRATION_JOBS,
            history: DATA_MIGRATION_JOB_HISTORY,
            params,
        }
    }

    /// The jobs written since a moment: `params` is the job type and the moment.
    fn since(params: Params<'p>) -> JobReads<'p> {
        JobReads {
            jobs: DATA_MIGRATION_JOBS_SINCE,
            history: DATA_MIGRATION_JOB_HISTORY_SINCE,
            params,
        }
    }
}

/// Whether [`Reads::send`] reads the catalog (`wait`'s later polls do not), and renders it
/// for a file.
struct Catalog {
    read: bool,
    render: bool,
}

/// What a read of a migration table gave: its rows, or none and why it could not be read.
type Lenient<T> = (T, Option<String>);

/// A migration table's read (`read`): its failure for a lock or a cancellation is noted with
/// why, not fatal (the rollback to the savepoint after it clears the aborted transaction).
async fn lenient<T: Default>(
    settings: &ConnectionSettings,
    read: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<Lenient<T>, Failure> {
    match read.await {
        Err(Failure::Query(err, reading)) => match settings.not_read_because(&err) {
            Some(why) => Ok((T::default(), Some(why))),
            None => Err(Failure::Query(err, reading)),
        },
        read => read.map(|rows| (rows, None)),
    }
}

/// Which tables and views [`Reads::send`] reads rows of.
struct RowReads {
    migration: bool,
    jobs: bool,
    history: bool,
    activity: bool,
}

/// The savepoint the migration tables are read under, and the rollback to it after each.
const SAVEPOINT: &str = "SAVEPOINT medmig_rows";
const BACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT medmig_rows";

/// The number of catalog statements in [`Reads::send`]'s flight.
const CATALOG_STATEMENTS: usize = 6;

/// A statement's parameters with their types, as `query_typed` takes them.
type Params<'a> = &'a [(&'a (dyn ToSql + Sync), Type)];

impl Reads {
    /// Sends every statement, skipping the tables the probe found missing, unreadable or
    /// locked (`rows`); `unopened` is the catalog queries' parameter, the tables they must not
    /// open. With `render`, the schema contract is rendered for a file while the last
    /// statements run.
    async fn send<'p>(
        transaction: &Transaction<'_>,
        watch: &Watch,
        settings: &ConnectionSettings,
        unopened: Params<'p>,
        rows: RowReads,
        catalog: Catalog,
        job_reads: JobReads<'p>,
    ) -> Result<Reads, Failure> {
        let JobReads {
            jobs: jobs_sql,
            history: history_sql,
            params: job_params,
        } = job_reads;
        let render = catalog.render;
        let statements: Params = &[
            (&MIGRATION_STATEMENTS, Type::TEXT),
            (&LONG_WRITES, Type::TEXT),
        ];
        let guarded = rows.migration || rows.jobs || rows.history;
        let count = |wanted: bool| usize::from(wanted);
        watch.flight(
            "the catalog and the migration tables",
            CATALOG_STATEMENTS * count(catalog.read)
                + 4 * count(guarded)
                + count(rows.migration)
                + count(rows.jobs)
                + count(rows.history)
                + count(rows.activity),
        );
        let fetch = |sql: &'static str, params: Params<'p>, wanted: bool| async move {
            match wanted {
                true => transaction
                    .query_typed_raw(sql, params.iter().cloned())
                    .await
                    .map(Some),
                false => Ok(None),
            }
        };
        let savepoint = |sql: &'static str| {
            folded(
                watch,
                "a savepoint",
                fetch(sql, &[], guarded),
                (),
                |_, _| Ok(()),
            )
        };
        // The schema's statements go first, the small ones before the big ones: the big ones'
        // rows are decoded, and the index definitions assembled, as they arrive, while the
        // server is still producing them; with the last index the contract is complete, and
        // it is rendered on another thread while the server answers the rest. `biased` polls,
        // and so sends, in the order written, which is also the order failures are looked at
        // in.
        let (schema, saved, migration, back1, jobs, back2, history, back3, activity) = tokio::join!(
            biased;
            async {
                if !catalog.read {
                    return Ok::<_, Failure>(Schema::Skipped);
                }
                let (constraints, functions, extensions, tables) = tokio::join!(
                    biased;
                    decoded(
                        watch,
                        "the constraint catalog",
                        fetch(SCHEMA_CONSTRAINTS, unopened, true),
                        decode_constraints
                    ),
                    decoded(watch, "the function catalog", fetch(SCHEMA_FUNCTIONS, &[], true), decode_functions),
                    decoded(
                        watch,
                        "the extension catalog",
                        fetch(SCHEMA_EXTENSIONS, &[], true),
                        decode_extensions
                    ),
                    async {
                        let (columns, names, index_rows) = tokio::join!(
                            biased;
                            folded(
                                watch,
                                "the table catalog",
                                fetch(SCHEMA_COLUMNS, unopened, true),
                                ColumnsRead::default(),
                                ColumnsRead::add
                            ),
                            decoded(
                                watch,
                                "operator class and collation names",
                                fetch(SCHEMA_NAMES, &[], true),
                                decode_names
                            ),
                            fetch(SCHEMA_INDEXES, unopened, true),
                        );
                        let (columns, names) = (columns?, names?);
                        let indexes = IndexesRead::new(columns.finish(&names), names);
                        let indexes = folded(
                            watch,
                            "the index catalog",
                            std::future::ready(index_rows),
                            indexes,
                            IndexesRead::add,
                        )
                        .await?;
                        Ok::<_, Failure>((indexes.tables, indexes.primary_keys))
                    },
                );
                let (constraints, functions, extensions) = (constraints?, functions?, extensions?);
                let (tables, primary_keys) = tables?;
                let schema = finish_schema(tables, &primary_keys, constraints, functions, extensions);
                let schema = if render {
                    Schema::Rendering(tokio::task::spawn_blocking(move || {
                        let rendered = RenderedSchema::new(&schema);
                        (schema, rendered)
                    }))
                } else {
                    Schema::Read(schema)
                };
                Ok::<_, Failure>(schema)
            },
            savepoint(SAVEPOINT),
            lenient(
                settings,
                decoded(
                    watch,
                    "\"DatabaseMigration\"",
                    fetch(DATABASE_MIGRATION, &[], rows.migration),
                    decode_migration
                )
            ),
            savepoint(BACK_TO_SAVEPOINT),
            lenient(
                settings,
                decoded(
                    watch,
                    "\"AsyncJob\"",
                    fetch(jobs_sql, job_params, rows.jobs),
                    decode_jobs
                )
            ),
            savepoint(BACK_TO_SAVEPOINT),
            lenient(
                settings,
                decoded(
                    watch,
                    "\"AsyncJob_History\"",
                    fetch(history_sql, job_params, rows.history),
                    decode_job_history
                )
            ),
            savepoint(BACK_TO_SAVEPOINT),
            decoded(
                watch,
                "pg_stat_activity",
                fetch(MIGRATION_ACTIVITY, statements, rows.activity),
                decode_activity
            ),
        );
        watch.landed();
        let schema = schema?;
        saved?;
        let database_migration = migration?;
        back1?;
        let jobs = jobs?;
        back2?;
        let job_history = history?;
        back3?;
        Ok(Reads {
            database_migration,
            jobs,
            job_history,
            schema,
            activity: activity?,
        })
    }
}

/// The schema contract once read: as is, or on its way back from being rendered; or not read.
enum Schema {
    Skipped,
    Read(SchemaContract),
    Rendering(tokio::task::JoinHandle<(SchemaContract, RenderedSchema)>),
}

impl Schema {
    /// The contract, and its rendering when one was made.
    async fn finish(self) -> (Option<SchemaContract>, Option<RenderedSchema>) {
        match self {
            Schema::Skipped => (None, None),
            Schema::Read(schema) => (Some(schema), None),
            Schema::Rendering(rendering) => {
                let (schema, rendered) = rendering
                    .await
                    .unwrap_or_else(|panicked| std::panic::resume_unwind(panicked.into_panic()));
                (Some(schema), Some(rendered))
            }
        }
    }
}

/// A statement's rows as they arrive, or `None` when it was skipped.
type Rows = Result<Option<RowStream>, tokio_postgres::Error>;

/// Folds a statement's rows into `state` one by one as they arrive, while the server is still
/// producing the rest; `state` as it is when the statement was skipped. `reading` names what
/// the statement reads, for messages.
async fn folded<T>(
    watch: &Watch,
    reading: &'static str,
    rows: impl std::future::Future<Output = Rows>,
    mut state: T,
    add: fn(&mut T, Row) -> Result<(), Unreadable>,
) -> Result<T, Failure> {
    let at = |err| Failure::Query(err, reading);
    // The first answer and the last are the server's progress (see `Watch`).
    let rows = rows.await;
    watch.answered();
    if let Some(rows) = rows.map_err(at)? {
        pin_mut!(rows);
        let streamed = async {
            while let Some(row) = rows.try_next().await.map_err(at)? {
                watch.row();
                add(&mut state, row)
                    .map_err(|unreadable| Failure::Unreadable(unreadable, reading))?;
            }
            Ok::<_, Failure>(())
        }
        .await;
        watch.answered();
        streamed?;
    }
    Ok(state)
}

/// The rows of a small statement, decoded once they are all in (while the server runs the
/// next statements); decoded from no rows when the statement was skipped.
async fn decoded<T>(
    watch: &Watch,
    reading: &'static str,
    rows: impl std::future::Future<Output = Rows>,
    decode: fn(&[Row]) -> Result<T, Unreadable>,
) -> Result<T, Failure> {
    let push = |rows: &mut Vec<Row>, row| {
        rows.push(row);
        Ok(())
    };
    let rows = folded(watch, reading, rows, Vec::new(), push).await?;
    decode(&rows).map_err(|unreadable| Failure::Unreadable(unreadable, reading))
}

/// A catalog value medmig could not decode (a column missing, null or of another type on
/// this server): its column, the object its row describes, and why.
#[derive(Debug)]
struct Unreadable {
    column: &'static str,
    object: Option<String>,
    cause: tokio_postgres::Error,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column \"{}\"", self.column)?;
        if let Some(object) = &self.object {
            write!(f, " of {object}")?;
        }
        // The driver's own text names the column by number; its cause says what was wrong.
        match std::error::Error::source(&self.cause) {
            Some(cause) => write!(f, " cannot be read: {cause}"),
            None => write!(f, " cannot be read: {}", self.cause),
        }
    }
}

/// `column` of `row`, or what was wrong with it.
fn field<'r, T: FromSql<'r>>(row: &'r Row, column: &'static str) -> Result<T, Unreadable> {
    row.try_get(column).map_err(|cause| Unreadable {
        column,
        object: None,
        cause,
    })
}

/// A row whose failures name the object it describes (`object`, made only on failure).
///
/// Columns are found by name from where the last one was found: the catalog readers take
/// them mostly in the query's order, so a lookup is usually one comparison rather than a
/// scan of two dozen names (which, for every row of every catalog query, was a tenth of
/// medmig's CPU in a snapshot).
struct Fields<'r> {
    row: &'r Row,
    object: &'r dyn Fn() -> String,
    next: std::cell::Cell<usize>,
}

impl<'r> Fields<'r> {
    fn of(row: &'r Row, object: &'r dyn Fn() -> String) -> Fields<'r> {
        Fields {
            row,
            object,
            next: std::cell::Cell::new(0),
        }
    }

    fn get<T: FromSql<'r>>(&self, column: &'static str) -> Result<T, Unreadable> {
        let columns = self.row.columns();
        let start = self.next.get().min(columns.len());
        let found = (start..columns.len())
            .chain(0..start)
            .find(|&i| columns[i].name() == column);
        let read = match found {
            Some(i) => {
                self.next.set(i + 1);
                self.row.try_get(i).map_err(|cause| Unreadable {
                    column,
                    object: None,
                    cause,
                })
            }
            // The driver's own error for a column the query does not have.
            None => field(self.row, column),
        };
        read.map_err(|unreadable| Unreadable {
            object: Some((self.object)()),
            ..unreadable
        })
    }
}

fn decode_migration(rows: &[Row]) -> Result<Vec<serde_json::Value>, Unreadable> {
    rows.iter().map(|row| field(row, "row")).collect()
}

/// The jobs of `queries/data_migration_jobs.sql`, or of `data_migration_jobs_since.sql`,
/// whose `deleted` rows come without content and are only named.
fn decode_jobs(rows: &[Row]) -> Result<JobsRead, Unreadable> {
    let mut read = JobsRead::default();
    for row in rows {
        let deleted = match row.columns().iter().any(|c| c.name() == "deleted") {
            true => field::<bool>(row, "deleted")?,
            false => false,
        };
        if deleted {
            read.deleted_jobs.push(field(row, "id")?);
            continue;
        }
        read.jobs.push(JobRecord {
            id: field(row, "id")?,
            last_updated: field(row, "last_updated")?,
            status_column: field(row, "status")?,
            project_id: field(row, "project_id")?,
            content: field(row, "content")?,
        });
    }
    Ok(read)
}

fn decode_job_history(rows: &[Row]) -> Result<Vec<JobVersion>, Unreadable> {
    rows.iter()
        .map(|row| {
            Ok(JobVersion {
                job_id: field(row, "job_id")?,
                version_id: field(row, "version_id")?,
                last_updated: field(row, "last_updated")?,
                status: field(row, "status")?,
                has_output: field(row, "has_output")?,
            })
        })
        .collect()
}

/// Who holds the migration lock or runs migration DDL, from `queries/migration_activity.sql`.
fn decode_activity(rows: &[Row]) -> Result<MigrationActivity, Unreadable> {
    let mut activity = MigrationActivity::default();
    for row in rows {
        let holds_migration_lock: bool = field(row, "holds_migration_lock")?;
        let hidden: bool = field(row, "query_hidden")?;
        if hidden && !holds_migration_lock {
            activity.hidden_sessions += 1;
            continue;
        }
        activity.sessions.push(MigratingSession {
            pid: field(row, "pid")?,
            application_name: field(row, "application_name")?,
            state: field(row, "state")?,
            query_start: field(row, "query_start")?,
            query: if hidden { None } else { field(row, "query")? },
            holds_migration_lock,
            runs_ddl: Some(field(row, "runs_ddl")?),
        });
    }
    Ok(activity)
}

/// A table of the contract as the catalog queries meet it: its key, the names index and
/// constraint definitions print, and what is read of it so far.
struct TableRead {
    key: String,
    names: TableNames,
    contract: TableContract,
}

/// `queries/schema_columns.sql`, read row by row: the contract's tables by oid, and their
/// columns with their positions (the rows come in no order; a server-side sort costs more
/// than sorting here).
#[derive(Default)]
struct ColumnsRead {
    /// Each table's schema, name and kind (`materialized view`, or none for a table).
    tables: HashMap<u32, (String, String, Option<String>)>,
    /// Each column, with its table, position and collation.
    columns: Vec<(u32, i16, ColumnContract, u32)>,
}

impl ColumnsRead {
    fn add(&mut self, row: Row) -> Result<(), Unreadable> {
        let row = &row;
        let oid: u32 = field(row, "table_oid")?;
        if let Entry::Vacant(entry) = self.tables.entry(oid) {
            let object = || format!("the table with oid {oid}");
            let fields = Fields::of(row, &object);
            let kind = match fields.get::<&str>("relation_kind")? {
                "m" => Some("materialized view".to_string()),
                _ => None,
            };
            entry.insert((fields.get("schema_name")?, fields.get("table_name")?, kind));
        }
        let Some(name) = field::<Option<String>>(row, "column_name")? else {
            return Ok(());
        };
        let object = || format!("column {name:?} of the table with oid {oid}");
        let row = Fields::of(row, &object);
        let not_null = row.get("not_null")?;
        let contract = ColumnContract {
            data_type: row.get("data_type")?,
            not_null,
            // Only PostgreSQL 18 has NOT NULL constraints that are not valid; before, null.
            not_null_not_valid: not_null
                && row.get::<Option<bool>>("not_null_validated")? == Some(false),
            default: row.get("default_expr")?,
            identity: row
                .get::<Option<&str>>("identity")?
                .map(|code| if code == "a" { "always" } else { "by-default" }.to_string()),
            generated: row
                .get::<Option<&str>>("generated")?
                .map(|code| if code == "v" { "virtual" } else { "stored" }.to_string()),
            name: name.clone(),
        };
        let (position, collation) = (row.get("position")?, row.get("collation")?);
        self.columns.push((oid, position, contract, collation));
        Ok(())
    }

    /// The tables, with their columns in table order and their names quoted as the server
    /// quotes them (`names`).
    fn finish(mut self, names: &CatalogNames) -> HashMap<u32, TableRead> {
        let mut tables: HashMap<u32, TableRead> = self
            .tables
            .into_iter()
            .map(|(oid, (schema, table, kind))| {
                let read = TableRead {
                    key: qualified(&schema, &table),
                    names: TableNames {
                        quoted_schema: names.quote(&schema),
                        quoted_table: names.quote(&table),
                        columns: BTreeMap::new(),
                    },
                    contract: TableContract {
                        kind,
                        ..TableContract::default()
                    },
                };
                (oid, read)
            })
            .collect();
        self.columns
            .sort_unstable_by_key(|(_, position, _, _)| *position);
        for (oid, position, column, collation) in self.columns {
            if let Some(table) = tables.get_mut(&oid) {
                let quoted = names.quote(&column.name);
                table
                    .names
                    .columns
                    .insert(position, ColumnName { quoted, collation });
                table.contract.columns.push(column);
            }
        }
        tables
    }
}

/// `queries/schema_names.sql`.
fn decode_names(rows: &[Row]) -> Result<CatalogNames, Unreadable> {
    let mut names = CatalogNames::default();
    for row in rows {
        let name: String = field(row, "name")?;
        match field(row, "kind")? {
            "opclass" => {
                names.opclasses.insert(field(row, "oid")?, name);
            }
            "collation" => {
                names.collations.insert(field(row, "oid")?, name);
            }
            "keyword" => {
                names.keywords.insert(name);
            }
            _ => names.quote_all = name == "on",
        }
    }
    Ok(names)
}

/// `queries/schema_indexes.sql`, read row by row: each index's definition is assembled from
/// its parts, its table's names and the catalog's, as its row arrives, and the index put into
/// its table (one of a table `schema_columns.sql` did not list is dropped).
struct IndexesRead {
    tables: HashMap<u32, TableRead>,
    names: CatalogNames,
    /// The columns of each primary key's index, by index oid, for [`finish_schema`].
    primary_keys: HashMap<u32, (Vec<i16>, usize)>,
}

impl IndexesRead {
    fn new(tables: HashMap<u32, TableRead>, names: CatalogNames) -> IndexesRead {
        IndexesRead {
            tables,
            names,
            primary_keys: HashMap::new(),
        }
    }

    fn add(&mut self, row: Row) -> Result<(), Unreadable> {
        let row = &row;
        let Some(table) = self.tables.get_mut(&field(row, "table_oid")?) else {
            return Ok(());
        };
        let name: String = field(row, "index_name")?;
        let object = || format!("index {name:?} on {}", table.key);
        let row = Fields::of(row, &object);
        let collations: Vec<u32> = row.get("collations")?;
        // The rare collation other than the default comes named with its index.
        if let Some(named) = row.get::<Option<Vec<Option<String>>>>("collation_names")? {
            for (oid, name) in collations.iter().zip(named) {
                if let Some(name) = name {
                    self.names.collations.insert(*oid, name);
                }
            }
        }
        let parts = IndexParts {
            quoted_index: self.names.quote(&name),
            on_partitioned: row.get("on_partitioned")?,
            method: row.get("method")?,
            unique: row.get("is_unique")?,
            key_count: usize::try_from(row.get::<i32>("key_count")?).unwrap_or(0),
            keys: row.get("keys")?,
            opclasses: row.get("opclasses")?,
            options: row.get("options")?,
            collations,
            // Medplum's shapes come as node trees, printed here (see `nodetree`).
            expressions: match row.get::<Option<&str>>("call_name")? {
                Some(function) => {
                    let tree = row.get("call_tree")?;
                    call_on_columns(function, tree, &table.names.columns).map(|call| vec![call])
                }
                None => row.get("expressions")?,
            },
            partial: row.get("is_partial")?,
            predicate: match row.get::<Option<&str>>("predicate_tree")? {
                Some(tree) => boolean_equality(tree, &table.names.columns),
                None => row.get("predicate")?,
            },
            parameterized: row.get("parameterized")?,
            needs_full_definition: row.get("needs_full_definition")?,
            full_definition: row.get("full_definition")?,
        };
        let (definition, shape) = parts.assemble(&table.names, &self.names);
        let primary = row.get("is_primary")?;
        if primary {
            self.primary_keys
                .insert(row.get("index_oid")?, (parts.keys, parts.key_count));
        }
        let (valid, ready) = (row.get("is_valid")?, row.get("is_ready")?);
        table.contract.indexes.insert(
            name,
            IndexContract {
                definition,
                shape,
                unique: parts.unique,
                primary,
                valid,
                ready,
            },
        );
        Ok(())
    }
}

/// One row of `queries/schema_constraints.sql`.
struct ConstraintRow {
    table_oid: u32,
    name: String,
    kind: ConstraintKind,
    index_oid: u32,
    keys: Vec<i16>,
    definition: Option<String>,
    validated: bool,
}

fn decode_constraints(rows: &[Row]) -> Result<Vec<ConstraintRow>, Unreadable> {
    let mut constraints = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = field(row, "constraint_name")?;
        let table_oid = field(row, "table_oid")?;
        let object = || format!("constraint {name:?} of the table with oid {table_oid}");
        let row = Fields::of(row, &object);
        let Some(kind) = ConstraintKind::from_catalog(row.get("kind")?) else {
            continue;
        };
        constraints.push(ConstraintRow {
            kind,
            index_oid: row.get("index_oid")?,
            keys: row.get::<Option<Vec<i16>>>("keys")?.unwrap_or_default(),
            definition: row.get("definition")?,
            validated: row.get("validated")?,
            table_oid,
            name,
        });
    }
    Ok(constraints)
}

/// `queries/schema_functions.sql`, by `schema.signature`.
fn decode_functions(rows: &[Row]) -> Result<BTreeMap<String, FunctionContract>, Unreadable> {
    rows.iter()
        .map(|row| {
            let kind = match field(row, "kind")? {
                "p" => "procedure",
                "a" => "aggregate",
                "w" => "window",
                _ => "function",
            };
            Ok((
                qualified(field(row, "schema_name")?, field(row, "signature")?),
                FunctionContract {
                    result: field(row, "result")?,
                    kind: kind.to_string(),
                    definition_hash: field(row, "definition_hash")?,
                },
            ))
        })
        .collect()
}

/// `queries/schema_extensions.sql`, by name.
fn decode_extensions(rows: &[Row]) -> Result<BTreeMap<String, ExtensionContract>, Unreadable> {
    rows.iter()
        .map(|row| {
            Ok((
                field(row, "name")?,
                ExtensionContract {
                    version: field(row, "version")?,
                    schema: field(row, "schema_name")?,
                },
            ))
        })
        .collect()
}

/// The schema contract: the tables with their indexes, and their constraints (a plain primary
/// key's definition assembled from its columns and `primary_keys`, its index's columns).
fn finish_schema(
    mut tables: HashMap<u32, TableRead>,
    primary_keys: &HashMap<u32, (Vec<i16>, usize)>,
    constraints: Vec<ConstraintRow>,
    functions: BTreeMap<String, FunctionContract>,
    extensions: BTreeMap<String, ExtensionContract>,
) -> SchemaContract {
    for constraint in constraints {
        let Some(table) = tables.get_mut(&constraint.table_oid) else {
            continue;
        };
        // A plain primary key comes without text: it is assembled from its index.
        let definition = constraint.definition.or_else(|| {
            (constraint.kind == ConstraintKind::PrimaryKey)
                .then(|| primary_keys.get(&constraint.index_oid))
                .flatten()
                .and_then(|(keys, key_count)| {
                    primary_key_definition(&constraint.keys, keys, *key_count, &table.names.columns)
                })
        });
        table.contract.constraints.insert(
            constraint.name,
            ConstraintContract::new(constraint.kind, definition, constraint.validated),
        );
    }
    SchemaContract {
        tables: tables
            .into_values()
            .map(|table| (table.key, table.contract))
            .collect(),
        functions,
        extensions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row from the test server (MEDMIG_TEST_DATABASE_URL, as for the integration tests):
    /// real values of the types a catalog query returns, including the null that PostgreSQL
    /// 13 and 14 gave for NULLS NOT DISTINCT.
    fn real_row(sql: &str) -> Row {
        let url = std::env::var("MEDMIG_TEST_DATABASE_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|err| panic!("the test PostgreSQL at {url} must answer: {err}"));
            tokio::spawn(connection);
            client.query_one(sql, &[]).await.unwrap()
        })
    }

    #[test]
    fn an_unreadable_catalog_value_names_its_column_its_object_and_why() {
        let row = real_row(
            "SELECT 'Patient_name_idx'::text AS index_name, NULL::bool AS needs_full_definition,
                    1::int2 AS key_count",
        );
        let name: String = field(&row, "index_name").unwrap();
        let object = || format!("index {name:?} on public.Patient");
        let fields = Fields::of(&row, &object);
        let null = fields
            .get::<bool>("needs_full_definition")
            .err()
            .unwrap()
            .to_string();
        assert!(
            null.starts_with(
                "column \"needs_full_definition\" of index \"Patient_name_idx\" on public.Patient \
                 cannot be read: "
            ) && null.to_lowercase().contains("null"),
            "{null}"
        );
        let wrong_type = fields.get::<i32>("key_count").err().unwrap().to_string();
        assert!(
            wrong_type.contains("\"key_count\"") && wrong_type.contains("int2"),
            "{wrong_type}"
        );
        let missing = field::<bool>(&row, "is_valid").err().unwrap().to_string();
        assert!(
            missing.starts_with("column \"is_valid\" cannot be read"),
            "{missing}"
        );
        // Read as it may be null, the same value is fine.
        assert_eq!(
            fields.get::<Option<bool>>("needs_full_definition").unwrap(),
            None
        );
    }
}
