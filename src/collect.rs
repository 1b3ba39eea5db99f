//! Live database → [`Snapshot`], in one read-only `REPEATABLE READ` transaction.
//!
//! This module owns every statement medmig sends (each one a file under `queries/`) and the
//! order they run in. The number of statements is fixed — it does not grow with the number
//! of jobs, tables or indexes. It never writes, never takes more than the `ACCESS SHARE`
//! lock of a plain read, and gives up after `lock_timeout` rather than queue behind a
//! migration. It reads no table content but `"DatabaseMigration"` and data-migration
//! `"AsyncJob"` rows. Interpretation belongs to `analyze/`.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, Result};
use tokio_postgres::{Client, IsolationLevel, Transaction};

use crate::catalog::{
    qualified, CatalogNames, ColumnContract, ColumnName, ConstraintContract, ConstraintKind,
    ExtensionContract, FunctionContract, IndexContract, IndexParts, SchemaContract,
};
use crate::connect::{ConnectionSettings, Target};
use crate::diagnostics::{Diagnostics, Gap, SETTINGS};
use crate::snapshot::{
    DatabaseMigrationRow, InvalidIndex, JobRecord, JobVersion, MigratingSession, MigrationActivity,
    Snapshot, SnapshotSource, FORMAT_VERSION,
};

const SESSION_SETTINGS: &str = include_str!("../queries/session_settings.sql");
const PROBE: &str = include_str!("../queries/probe.sql");
const DATABASE_MIGRATION: &str = include_str!("../queries/database_migration.sql");
const DATA_MIGRATION_JOBS: &str = include_str!("../queries/data_migration_jobs.sql");
const DATA_MIGRATION_JOB_HISTORY: &str = include_str!("../queries/data_migration_job_history.sql");
const SCHEMA_COLUMNS: &str = include_str!("../queries/schema_columns.sql");
const SCHEMA_INDEXES: &str = include_str!("../queries/schema_indexes.sql");
const SCHEMA_NAMES: &str = include_str!("../queries/schema_names.sql");
const SCHEMA_CONSTRAINTS: &str = include_str!("../queries/schema_constraints.sql");
const SCHEMA_FUNCTIONS: &str = include_str!("../queries/schema_functions.sql");
const SCHEMA_EXTENSIONS: &str = include_str!("../queries/schema_extensions.sql");
const MIGRATION_ACTIVITY: &str = include_str!("../queries/migration_activity.sql");

/// Diagnostics for bundles: kind, query. Each returns its rows as one JSON array.
const DIAGNOSTICS: [(&str, &str); 6] = [
    (
        "settings",
        include_str!("../queries/diagnostics_settings.sql"),
    ),
    (
        "setting_overrides",
        include_str!("../queries/diagnostics_setting_overrides.sql"),
    ),
    (
        "database_size",
        include_str!("../queries/diagnostics_database_size.sql"),
    ),
    (
        "largest_tables",
        include_str!("../queries/diagnostics_largest_tables.sql"),
    ),
    (
        "activity",
        include_str!("../queries/diagnostics_activity.sql"),
    ),
    (
        "replication",
        include_str!("../queries/diagnostics_replication.sql"),
    ),
];

/// Statements that only a migration runs (see `queries/migration_activity.sql`).
const MIGRATION_STATEMENTS: &str = r#"^\s*(CREATE\s+(UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX|ALTER\s+TABLE|DROP\s+TABLE|VACUUM\s+FULL|CLUSTER|UPDATE\s+"DatabaseMigration")"#;

/// The `"AsyncJob"."type"` of post-deploy migration jobs.
const DATA_MIGRATION_TYPE: &str = "data-migration";

/// Why collection stopped.
enum Failure {
    /// A statement failed; `reading` names what it read, for the message.
    Query(tokio_postgres::Error, &'static str),
    /// The database is not what medmig can read (not Medplum's, privileges missing).
    Refused(anyhow::Error),
}

impl From<(tokio_postgres::Error, &'static str)> for Failure {
    fn from((err, reading): (tokio_postgres::Error, &'static str)) -> Failure {
        Failure::Query(err, reading)
    }
}

/// Connects, reads everything in one read-only transaction, and disconnects.
pub async fn collect(settings: &ConnectionSettings) -> Result<Snapshot> {
    Ok(collect_all(settings, false).await?.0)
}

/// [`collect`], plus the diagnostics a support bundle carries, in the same transaction.
pub async fn collect_with_diagnostics(
    settings: &ConnectionSettings,
) -> Result<(Snapshot, Diagnostics)> {
    let (snapshot, diagnostics) = collect_all(settings, true).await?;
    Ok((snapshot, diagnostics.unwrap_or_default()))
}

async fn collect_all(
    settings: &ConnectionSettings,
    with_diagnostics: bool,
) -> Result<(Snapshot, Option<Diagnostics>)> {
    let mut session = settings.connect().await?;
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
    let outcome = read_snapshot(
        &mut session.client,
        &timeouts,
        &session.target,
        source,
        with_diagnostics,
    )
    .await;
    match outcome {
        Ok(collected) => Ok(collected),
        Err(Failure::Refused(err)) => Err(err),
        Err(Failure::Query(err, reading)) => Err(session.explain(err, reading).await),
    }
}

/// Begins the transaction every read goes through: `REPEATABLE READ READ ONLY`, with
/// `statement_timeout`, `lock_timeout` and `idle_in_transaction_session_timeout` set for it
/// (`timeouts`, from [`Session::timeout_settings`](crate::connect::Session::timeout_settings)).
pub async fn begin_read_only<'a>(
    client: &'a mut Client,
    timeouts: &[String; 3],
) -> Result<Transaction<'a>, tokio_postgres::Error> {
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    transaction
        .query_one(
            SESSION_SETTINGS,
            &[&timeouts[0], &timeouts[1], &timeouts[2]],
        )
        .await?;
    Ok(transaction)
}

async fn read_snapshot(
    client: &mut Client,
    timeouts: &[String; 3],
    target: &Target,
    source: impl FnOnce(String, String, i32) -> SnapshotSource,
    with_diagnostics: bool,
) -> Result<(Snapshot, Option<Diagnostics>), Failure> {
    let transaction = begin_read_only(client, timeouts)
        .await
        .map_err(|err| (err, "the start of a read-only transaction"))?;
    let at = |reading: &'static str| move |err| (err, reading);

    let probe = transaction
        .query_one(PROBE, &[])
        .await
        .map_err(at("the server version and the catalog"))?;
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
    // with the GRANT to run, `rollback-check` answers UNKNOWN.
    let mut unreadable_tables = Vec::new();
    let mut readable = |exists: bool, column: &str, table: &str| -> Result<bool, Failure> {
        let ok = exists && get(column)?;
        if exists && !ok {
            unreadable_tables.push(table.to_string());
        }
        Ok(ok)
    };
    let read_migration = readable(true, "migration_readable", "\"DatabaseMigration\"")?;
    let read_jobs = readable(async_job_table, "job_readable", "\"AsyncJob\"")?;
    let read_history = readable(history_table, "history_readable", "\"AsyncJob_History\"")?;

    let mut database_migration = Vec::new();
    let rows = if read_migration {
        transaction
            .query(DATABASE_MIGRATION, &[])
            .await
            .map_err(at("\"DatabaseMigration\""))?
    } else {
        Vec::new()
    };
    for row in rows {
        let json: serde_json::Value = row.try_get("row").map_err(at("\"DatabaseMigration\""))?;
        database_migration.push(DatabaseMigrationRow::from_json(&json).map_err(Failure::Refused)?);
    }

    let (mut jobs, mut job_history) = (Vec::new(), Vec::new());
    if read_jobs {
        for row in transaction
            .query(DATA_MIGRATION_JOBS, &[&DATA_MIGRATION_TYPE])
            .await
            .map_err(at("\"AsyncJob\""))?
        {
            jobs.push(JobRecord {
                id: row.try_get("id").map_err(at("\"AsyncJob\""))?,
                last_updated: row.try_get("last_updated").map_err(at("\"AsyncJob\""))?,
                status_column: row.try_get("status").map_err(at("\"AsyncJob\""))?,
                content: row.try_get("content").map_err(at("\"AsyncJob\""))?,
            });
        }
    }
    if read_jobs && read_history {
        for row in transaction
            .query(DATA_MIGRATION_JOB_HISTORY, &[&DATA_MIGRATION_TYPE])
            .await
            .map_err(at("\"AsyncJob_History\""))?
        {
            let field = at("\"AsyncJob_History\"");
            job_history.push(JobVersion {
                job_id: row.try_get("job_id").map_err(field)?,
                version_id: row.try_get("version_id").map_err(field)?,
                last_updated: row.try_get("last_updated").map_err(field)?,
                status: row.try_get("status").map_err(field)?,
                has_output: row.try_get("has_output").map_err(field)?,
            });
        }
    }

    let schema = read_schema(&transaction).await?;
    let invalid_indexes = invalid_indexes(&schema);
    let activity = read_activity(&transaction).await?;
    let mut transaction = transaction;
    let diagnostics = if with_diagnostics {
        Some(read_diagnostics(&mut transaction).await?)
    } else {
        None
    };
    // Nothing was written; ending with ROLLBACK says so.
    transaction
        .rollback()
        .await
        .map_err(at("the end of the transaction"))?;

    Ok((
        Snapshot {
            format_version: FORMAT_VERSION,
            medmig_version: env!("CARGO_PKG_VERSION").to_string(),
            taken_at,
            source: source(user, server_version, server_version_num),
            database_migration,
            async_job_table,
            jobs,
            job_history,
            invalid_indexes,
            schema: Some(schema),
            activity: Some(activity),
            unreadable_tables,
        },
        diagnostics,
    ))
}

/// Every diagnostic query, each under its own savepoint: one that fails (a privilege, an old
/// server, a timeout) becomes a gap and the others still run.
async fn read_diagnostics(transaction: &mut Transaction<'_>) -> Result<Diagnostics, Failure> {
    let mut diagnostics = Diagnostics::default();
    let names: Vec<&str> = SETTINGS.to_vec();
    for (kind, sql) in DIAGNOSTICS {
        let savepoint = transaction
            .savepoint("medmig_diagnostic")
            .await
            .map_err(|err| (err, "a savepoint"))?;
        let result = if kind == "settings" {
            savepoint.query_one(sql, &[&names]).await
        } else {
            savepoint.query_one(sql, &[]).await
        };
        match result.and_then(|row| row.try_get::<_, serde_json::Value>("rows")) {
            Ok(rows) => {
                savepoint
                    .commit()
                    .await
                    .map_err(|err| (err, "a savepoint"))?;
                diagnostics.sections.insert(kind.to_string(), rows);
            }
            Err(err) => {
                let why = match err.as_db_error() {
                    Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
                    None => err.to_string(),
                };
                savepoint
                    .rollback()
                    .await
                    .map_err(|err| (err, "a savepoint"))?;
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

/// Who holds the migration lock or runs migration DDL, in one query.
async fn read_activity(transaction: &Transaction<'_>) -> Result<MigrationActivity, Failure> {
    let reading = "pg_stat_activity";
    let get = |err| (err, reading);
    let mut activity = MigrationActivity::default();
    for row in transaction
        .query(MIGRATION_ACTIVITY, &[&MIGRATION_STATEMENTS])
        .await
        .map_err(get)?
    {
        let holds_migration_lock: bool = row.try_get("holds_migration_lock").map_err(get)?;
        let hidden: bool = row.try_get("query_hidden").map_err(get)?;
        if hidden && !holds_migration_lock {
            activity.hidden_sessions += 1;
            continue;
        }
        activity.sessions.push(MigratingSession {
            pid: row.try_get("pid").map_err(get)?,
            application_name: row.try_get("application_name").map_err(get)?,
            state: row.try_get("state").map_err(get)?,
            query_start: row.try_get("query_start").map_err(get)?,
            query: if hidden {
                None
            } else {
                row.try_get("query").map_err(get)?
            },
            holds_migration_lock,
        });
    }
    Ok(activity)
}

/// The schema contract, in six catalog queries whatever the number of objects.
async fn read_schema(transaction: &Transaction<'_>) -> Result<SchemaContract, Failure> {
    let mut schema = SchemaContract::default();
    // Column names and collations by table and number, for assembling index definitions.
    let mut column_names: HashMap<String, BTreeMap<i16, ColumnName>> = HashMap::new();
    let reading = "the table catalog";
    for row in transaction
        .query(SCHEMA_COLUMNS, &[])
        .await
        .map_err(|err| (err, reading))?
    {
        let get = |err| (err, reading);
        let schema_name: String = row.try_get("schema_name").map_err(get)?;
        let table_name: String = row.try_get("table_name").map_err(get)?;
        let key = qualified(&schema_name, &table_name);
        let table = schema.tables.entry(key.clone()).or_default();
        let Some(name) = row
            .try_get::<_, Option<String>>("column_name")
            .map_err(get)?
        else {
            continue;
        };
        let position: i32 = row.try_get("position").map_err(get)?;
        column_names.entry(key).or_default().insert(
            i16::try_from(position).unwrap_or(i16::MAX),
            ColumnName {
                quoted: row.try_get("quoted_name").map_err(get)?,
                collation: row.try_get("collation").map_err(get)?,
            },
        );
        table.columns.push(ColumnContract {
            name,
            data_type: row.try_get("data_type").map_err(get)?,
            not_null: row.try_get("not_null").map_err(get)?,
            default: row.try_get("default_expr").map_err(get)?,
            identity: row
                .try_get::<_, Option<String>>("identity")
                .map_err(get)?
                .map(|code| if code == "a" { "always" } else { "by-default" }.to_string()),
            generated: row
                .try_get::<_, Option<String>>("generated")
                .map_err(get)?
                .map(|_| "stored".to_string()),
        });
    }

    let reading = "operator class and collation names";
    let mut names = CatalogNames::default();
    for row in transaction
        .query(SCHEMA_NAMES, &[])
        .await
        .map_err(|err| (err, reading))?
    {
        let get = |err| (err, reading);
        let kind: String = row.try_get("kind").map_err(get)?;
        let target = if kind == "opclass" {
            &mut names.opclasses
        } else {
            &mut names.collations
        };
        target.insert(
            row.try_get("oid").map_err(get)?,
            row.try_get("name").map_err(get)?,
        );
    }

    let reading = "the index catalog";
    let no_columns = BTreeMap::new();
    for row in transaction
        .query(SCHEMA_INDEXES, &[])
        .await
        .map_err(|err| (err, reading))?
    {
        let get = |err| (err, reading);
        let key = qualified(
            &row.try_get::<_, String>("schema_name").map_err(get)?,
            &row.try_get::<_, String>("table_name").map_err(get)?,
        );
        let parts = IndexParts {
            quoted_schema: row.try_get("quoted_schema").map_err(get)?,
            quoted_table: row.try_get("quoted_table").map_err(get)?,
            quoted_index: row.try_get("quoted_index").map_err(get)?,
            method: row.try_get("method").map_err(get)?,
            unique: row.try_get("is_unique").map_err(get)?,
            key_count: usize::try_from(row.try_get::<_, i32>("key_count").map_err(get)?)
                .unwrap_or(0),
            keys: row.try_get("keys").map_err(get)?,
            opclasses: row.try_get("opclasses").map_err(get)?,
            options: row.try_get("options").map_err(get)?,
            collations: row.try_get("collations").map_err(get)?,
            expressions: row.try_get("expressions").map_err(get)?,
            partial: row.try_get("is_partial").map_err(get)?,
            predicate: row.try_get("predicate").map_err(get)?,
            full_definition: row.try_get("full_definition").map_err(get)?,
        };
        let (definition, shape) =
            parts.assemble(column_names.get(&key).unwrap_or(&no_columns), &names);
        let index = IndexContract {
            definition,
            shape,
            unique: parts.unique,
            primary: row.try_get("is_primary").map_err(get)?,
            valid: row.try_get("is_valid").map_err(get)?,
            ready: row.try_get("is_ready").map_err(get)?,
        };
        let name: String = row.try_get("index_name").map_err(get)?;
        schema
            .tables
            .entry(key)
            .or_default()
            .indexes
            .insert(name, index);
    }

    let reading = "the constraint catalog";
    for row in transaction
        .query(SCHEMA_CONSTRAINTS, &[])
        .await
        .map_err(|err| (err, reading))?
    {
        let get = |err| (err, reading);
        let code: String = row.try_get("kind").map_err(get)?;
        let Some(kind) = ConstraintKind::from_catalog(&code) else {
            continue;
        };
        let key = qualified(
            &row.try_get::<_, String>("schema_name").map_err(get)?,
            &row.try_get::<_, String>("table_name").map_err(get)?,
        );
        let constraint = ConstraintContract {
            kind,
            definition: row.try_get("definition").map_err(get)?,
            validated: row.try_get("validated").map_err(get)?,
        };
        let name: String = row.try_get("constraint_name").map_err(get)?;
        schema
            .tables
            .entry(key)
            .or_default()
            .constraints
            .insert(name, constraint);
    }

    let reading = "the function catalog";
    for row in transaction
        .query(SCHEMA_FUNCTIONS, &[])
        .await
        .map_err(|err| (err, reading))?
    {
        let get = |err| (err, reading);
        let key = qualified(
            &row.try_get::<_, String>("schema_name").map_err(get)?,
            &row.try_get::<_, String>("signature").map_err(get)?,
        );
        let kind = match row.try_get::<_, String>("kind").map_err(get)?.as_str() {
            "p" => "procedure",
            "a" => "aggregate",
            "w" => "window",
            _ => "function",
        };
        schema.functions.insert(
            key,
            FunctionContract {
                result: row.try_get("result").map_err(get)?,
                kind: kind.to_string(),
                definition_hash: row.try_get("definition_hash").map_err(get)?,
            },
        );
    }

    let reading = "the extension catalog";
    for row in transaction
        .query(SCHEMA_EXTENSIONS, &[])
        .await
        .map_err(|err| (err, reading))?
    {
        let get = |err| (err, reading);
        schema.extensions.insert(
            row.try_get("name").map_err(get)?,
            ExtensionContract {
                version: row.try_get("version").map_err(get)?,
                schema: row.try_get("schema_name").map_err(get)?,
            },
        );
    }
    Ok(schema)
}
