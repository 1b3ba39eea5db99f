//! One module per command. Each turns its validated arguments into a snapshot (live or from
//! a file), runs the analysis and renders; none talks to PostgreSQL except through
//! `sources/postgres/`.

use std::sync::PoisonError;

use anyhow::Result;

use crate::analyze::migrations::{analyze, StatusOptions, StatusReport};
use crate::cli::ManifestArgs;
use crate::medplum::catalogue::Catalogue;
use crate::medplum::config::MedplumConfig;
use crate::medplum::manifest::Manifest;

use crate::cli::{ConnectArgs, InputArgs};
use crate::diagnostics::Diagnostics;
use crate::render::ReportSource;
use crate::snapshot::{RenderedSchema, Snapshot};
use crate::sources::config::{self, process_environment};
use crate::sources::postgres::collect::{
    collect, collect_for_file, collect_schema, collect_with_diagnostics,
};
use crate::sources::postgres::connect::{ConnectOptions, ConnectionSettings};
use crate::sources::redis::RedisTargets;
use std::time::Duration;

pub mod bundle;
pub mod completions;
pub mod man;
pub mod per_shard;
pub mod recover;
pub mod report;
pub mod rollback_check;
pub mod schema;
pub mod snapshot;
pub mod status;
pub mod upgrade_plan;
pub mod wait;

/// Reads the evidence from the snapshot file or the live database the arguments name, and
/// describes where it came from (`manifest` is filled in by the caller).
pub fn load_input(input: &InputArgs) -> Result<(Snapshot, ReportSource)> {
    let (snapshot, file, kind) = match (&input.snapshot, &input.bundle) {
        (Some(path), _) => (
            Snapshot::read(path)?,
            Some(path.display().to_string()),
            "snapshot",
        ),
        (None, Some(path)) => (
            crate::bundle::archive::read_snapshot(path)?,
            Some(path.display().to_string()),
            "bundle",
        ),
        (None, None) => (collect_live(&input.connect)?, None, "live"),
    };
    let snapshot = match &input.connect.shard {
        Some(id) if kind != "live" => snapshot.only_shard(id)?,
        _ => snapshot,
    };
    let source = ReportSource::of(&snapshot, kind, file, "");
    Ok((snapshot, source))
}

/// The evidence for the schema contract alone: [`load_input`]'s snapshot, except that a live
/// database is read for its catalog only (no table rows: a lock on one is no obstacle).
pub fn load_schema_input(input: &InputArgs) -> Result<Snapshot> {
    match (&input.snapshot, &input.bundle) {
        (None, None) => {
            // The global database's schema, or with --shard that shard's.
            let settings = settings(&input.connect)?;
            let (only, _) = shard_settings(&settings, &input.connect)?;
            let settings = match only {
                Some(mut only) => only.settings(settings),
                None => settings,
            };
            runtime()?.block_on(collect_schema(&settings))
        }
        _ => Ok(load_input(input)?.0),
    }
}

/// The evidence with its status analysis, as `status`, `upgrade-plan` and `recover` read it.
pub struct Analyzed {
    pub snapshot: Snapshot,
    pub source: ReportSource,
    pub manifest: Manifest,
    pub catalogue: Catalogue,
    pub status: StatusReport,
}

/// The manifest and the migration catalogue the arguments name (or the embedded ones).
pub fn load_knowledge(args: &ManifestArgs) -> Result<(Manifest, Catalogue)> {
    Ok((
        Manifest::load(args.manifest.as_deref())?,
        Catalogue::load(args.migration_catalogue.as_deref())?,
    ))
}

/// Loads the manifest and the catalogue (first: a bad file costs no database round trip), the
/// input, refuses unreadable Medplum tables with the GRANT to run, and analyzes.
pub fn load_and_analyze(
    input: &InputArgs,
    knowledge: &ManifestArgs,
    stale_after: std::time::Duration,
    statement_limit: std::time::Duration,
) -> Result<Analyzed> {
    let (manifest, catalogue) = load_knowledge(knowledge)?;
    let (snapshot, mut source) = load_input(input)?;
    snapshot.require_readable()?;
    source.manifest = manifest.origin.clone();
    let status = analyze(
        &snapshot,
        &manifest,
        &catalogue,
        status_options(snapshot.taken_at, stale_after, statement_limit),
    );
    Ok(Analyzed {
        snapshot,
        source,
        manifest,
        catalogue,
        status,
    })
}

/// The status options for a snapshot taken at `now`.
pub fn status_options(
    now: chrono::DateTime<chrono::Utc>,
    stale_after: std::time::Duration,
    statement_limit: std::time::Duration,
) -> StatusOptions {
    let duration = |d| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    StatusOptions {
        statement_limit: duration(statement_limit),
        ..StatusOptions::at(now, duration(stale_after))
    }
}

/// The Medplum config named by `--medplum-config`, if any, loaded as the server loads it
/// (its `env` source from the process environment).
pub fn medplum_config(args: &ConnectArgs) -> Result<Option<MedplumConfig>> {
    args.medplum_config
        .as_ref()
        .map(|name| config::load(name, &process_environment()))
        .transpose()
}

/// The gate settings from `--strict-version-checks` (assumed strict when absent) and the
/// config's `database.runMigrations`.
pub fn gate_settings(
    args: &crate::cli::GateArgs,
    config: Option<&MedplumConfig>,
) -> crate::medplum::gate::GateSettings {
    crate::medplum::gate::GateSettings {
        strict: args.strict_version_checks.unwrap_or(true),
        strict_assumed: args.strict_version_checks.is_none(),
        run_migrations: config.is_none_or(|c| !c.defer_settings().run_migrations_off()),
    }
}

/// Resolves the connection, notes ignored sources on stderr, and collects a snapshot: of the
/// one database, or of every database of a sharded deployment (see [`collect_deployment`]).
pub fn collect_live(args: &ConnectArgs) -> Result<Snapshot> {
    let settings = settings(args)?;
    let shards = shard_settings(&settings, args)?;
    let redis = redis_target(args)?;
    let rt = runtime()?;
    let mut snapshot = rt.block_on(collect_deployment(settings, shards, args.jobs))?;
    rt.block_on(read_redis(redis.as_ref(), &mut snapshot));
    Ok(snapshot)
}

/// The databases to read besides the global one: every shard of a sharded
/// `--medplum-config`, or, with `--shard`, the one named (which replaces the global one).
type ShardSettings = Vec<ShardSetting>;

/// One shard's id and connection settings (or why they could not be made).
type ShardSetting = (String, Result<ConnectionSettings>);

/// With `--shard`, the one database to read: its settings (`None` for the global one) and
/// what the snapshot records of the choice (`None` for a deployment without shards).
pub struct OnlyDatabase {
    settings: Option<ConnectionSettings>,
    record: Option<crate::snapshot::OnlyShard>,
}

impl OnlyDatabase {
    /// The settings to read, given the global database's.
    fn settings(&mut self, global: ConnectionSettings) -> ConnectionSettings {
        self.settings.take().unwrap_or(global)
    }

    /// The settings to read, `only` or the global database's, and what the snapshot records
    /// of the choice.
    fn choose(
        only: Option<OnlyDatabase>,
        global: ConnectionSettings,
    ) -> (ConnectionSettings, Option<crate::snapshot::OnlyShard>) {
        match only {
            Some(mut only) => (only.settings(global), only.record),
            None => (global, None),
        }
    }
}

/// The settings of the shards to read (see [`ShardSettings`]), and with `--shard ID` the one
/// database to read instead of the deployment.
fn shard_settings(
    global: &ConnectionSettings,
    args: &ConnectArgs,
) -> Result<(Option<OnlyDatabase>, ShardSettings)> {
    let shards = global.shards(&connect_options(args), &process_environment())?;
    let Some(id) = &args.shard else {
        return Ok((None, shards));
    };
    let shown = crate::text::escape_controls(id);
    if global.source != crate::snapshot::ConnectionSource::MedplumConfig {
        anyhow::bail!(
            "--shard {shown}: the shards are those of the --medplum-config medmig connects \
             with, and it connects with {}: drop the other connection settings, or pass the \
             shard's own database with --database-url and no --shard",
            global.source
        );
    }
    let ids: Vec<String> = std::iter::once(crate::snapshot::GLOBAL_SHARD.to_string())
        .chain(shards.iter().map(|(id, _)| id.clone()))
        .collect();
    let record = (ids.len() > 1).then(|| crate::snapshot::OnlyShard {
        id: id.clone(),
        others: ids.iter().filter(|other| *other != id).cloned().collect(),
    });
    if id == crate::snapshot::GLOBAL_SHARD {
        let only = OnlyDatabase {
            settings: None,
            record,
        };
        return Ok((Some(only), Vec::new()));
    }
    match shards.into_iter().find(|(shard, _)| shard == id) {
        Some((_, settings)) => {
            let only = OnlyDatabase {
                settings: Some(settings?),
                record,
            };
            Ok((Some(only), Vec::new()))
        }
        None => anyhow::bail!(
            "--shard {shown}: the deployment has no such shard; its databases are {}",
            ids.join(", ")
        ),
    }
}

/// Reads the global database and every shard, at most `jobs` at once, each with [`collect`]
/// (its own connection, its own read-only transaction, the same limits). The global database
/// must be read (its failure is the command's); a shard that cannot be read is recorded as
/// that shard's gap. With `--shard`, the one database named is read instead.
async fn collect_deployment(
    global: ConnectionSettings,
    (only, shards): (Option<OnlyDatabase>, ShardSettings),
    jobs: u16,
) -> Result<Snapshot> {
    let (global, record) = OnlyDatabase::choose(only, global);
    let (mut snapshot, shards, _) = with_shards(collect(&global), shards, jobs, false).await?;
    deployment(&mut snapshot, shards, record);
    Ok(snapshot)
}

/// Makes the global database's snapshot the deployment's: its shards, what `--shard` chose,
/// and the format that follows from them.
fn deployment(
    snapshot: &mut Snapshot,
    shards: Vec<crate::snapshot::ShardEvidence>,
    record: Option<crate::snapshot::OnlyShard>,
) {
    snapshot.shards = shards;
    snapshot.only_shard = record;
    snapshot.settle_format();
}

/// The diagnostics of each shard read with them, by shard id.
type ShardDiagnostics = Vec<(String, Diagnostics)>;

/// One shard's read: its place in the config, its evidence, its diagnostics when read.
type ShardRead = (
    usize,
    crate::snapshot::ShardEvidence,
    Option<(String, Diagnostics)>,
);

/// Runs `global` (the global database's read) and reads the shards with [`collect`] (with
/// [`collect_with_diagnostics`] when `diagnostics`), at most `jobs` reads at once in all (one
/// after another with `--jobs 1`); each shard's snapshot or why it could not be read, in the
/// config's order, and the diagnostics of those read.
///
/// The shards are read on threads of their own, `jobs - 1` of them beside the global read,
/// each with its own runtime: a read decodes its rows while the other servers keep sending,
/// rather than waiting for one thread that decodes them all. Once the global database is
/// read, its place takes shards from the same queue, so that `jobs` reads go on until the
/// queue is empty (with `--jobs 2`, two rather than one for all but the first database).
async fn with_shards<T>(
    global: impl std::future::Future<Output = Result<T>>,
    shards: ShardSettings,
    jobs: u16,
    diagnostics: bool,
) -> Result<(T, Vec<crate::snapshot::ShardEvidence>, ShardDiagnostics)> {
    if shards.is_empty() {
        return Ok((global.await?, Vec::new(), Vec::new()));
    }
    let queue = std::sync::Arc::new(ShardQueue::new(shards));
    let global = if jobs <= 1 {
        let global = global.await?;
        queue.drain(diagnostics).await;
        global
    } else {
        let workers = usize::from(jobs - 1);
        let pool = tokio::task::spawn_blocking({
            let queue = queue.clone();
            move || read_shards_on_threads(&queue, workers, diagnostics)
        });
        let global_then_shards = async {
            let global = global.await;
            if global.is_ok() {
                queue.drain(diagnostics).await;
            }
            global
        };
        let (global, pool) = futures_util::future::join(global_then_shards, pool).await;
        pool.map_err(|err| anyhow::anyhow!("reading the shards failed: {err}"))?;
        global?
    };
    let mut shards = Vec::new();
    let mut found = Vec::new();
    for (_, evidence, diagnostics) in queue.finish() {
        shards.push(evidence);
        found.extend(diagnostics);
    }
    Ok((global, shards, found))
}

/// The shards left to read, taken one at a time by every reader, and the reads done. A lock
/// poisoned by a panicking reader still gives what it holds: no shard is dropped unsaid.
struct ShardQueue {
    left: std::sync::Mutex<std::iter::Enumerate<std::vec::IntoIter<ShardSetting>>>,
    done: std::sync::Mutex<Vec<ShardRead>>,
}

impl ShardQueue {
    fn new(shards: ShardSettings) -> ShardQueue {
        ShardQueue {
            left: std::sync::Mutex::new(shards.into_iter().enumerate()),
            done: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn len(&self) -> usize {
        self.left
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The next shard to read, with its place in the config.
    fn take(&self) -> Option<(usize, ShardSetting)> {
        self.left
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next()
    }

    fn put(&self, read: ShardRead) {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(read);
    }

    /// Reads shards on the calling task until none is left.
    async fn drain(&self, diagnostics: bool) {
        while let Some((i, (id, settings))) = self.take() {
            self.put(read_shard(i, id, settings, diagnostics).await);
        }
    }

    /// The reads in the config's order; a shard nobody took (no thread could be started) is
    /// a gap, never dropped.
    fn finish(&self) -> Vec<ShardRead> {
        while let Some((i, (id, _))) = self.take() {
            let err = anyhow::anyhow!("no thread could be started to read it");
            self.put((i, shard_evidence(id, Err(err)), None));
        }
        let mut done =
            std::mem::take(&mut *self.done.lock().unwrap_or_else(PoisonError::into_inner));
        done.sort_by_key(|(i, _, _)| *i);
        done
    }
}

/// Reads shards from `queue` on `workers` threads, each taking the next shard when done with
/// one.
fn read_shards_on_threads(queue: &ShardQueue, workers: usize, diagnostics: bool) {
    let workers = workers.clamp(1, queue.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            // A read's future is large (the catalog's decoding states), as on the main thread,
            // whose stack is bigger than a spawned thread's default.
            let spawned = std::thread::Builder::new()
                .name("medmig-shard".into())
                .stack_size(32 << 20)
                .spawn_scoped(scope, || {
                    // Without a runtime this thread reads nothing; the others, and the global
                    // read's place, take the shards left.
                    if let Ok(rt) = runtime() {
                        rt.block_on(queue.drain(diagnostics));
                    }
                });
            // Without a thread, the ones started (and the global read's place) go on.
            if spawned.is_err() {
                break;
            }
        }
    });
}

/// Reads one shard (the `i`-th of the config): its evidence, or why not.
async fn read_shard(
    i: usize,
    id: String,
    settings: Result<ConnectionSettings>,
    diagnostics: bool,
) -> ShardRead {
    let read = match settings {
        Ok(settings) if diagnostics => collect_with_diagnostics(&settings)
            .await
            .map(|(snapshot, found)| (snapshot, Some(found))),
        Ok(settings) => collect(&settings).await.map(|snapshot| (snapshot, None)),
        Err(err) => Err(err),
    };
    let (read, found) = match read {
        Ok((snapshot, found)) => (Ok(snapshot), found.map(|d| (id.clone(), d))),
        Err(err) => (Err(err), None),
    };
    (i, shard_evidence(id, read), found)
}

/// A shard's snapshot, or why it could not be read.
fn shard_evidence(id: String, read: Result<Snapshot>) -> crate::snapshot::ShardEvidence {
    match read {
        Ok(shard) => crate::snapshot::ShardEvidence {
            id,
            snapshot: Some(Box::new(shard)),
            gap: None,
            schema_same_as: None,
        },
        Err(err) => crate::snapshot::ShardEvidence {
            id,
            snapshot: None,
            gap: Some(format!("{err:#}")),
            schema_same_as: None,
        },
    }
}

/// [`collect_live`] for a file: with the schema contract already rendered.
pub fn collect_live_for_file(args: &ConnectArgs) -> Result<(Snapshot, RenderedSchema)> {
    let settings = settings(args)?;
    let (only, shards) = shard_settings(&settings, args)?;
    let (settings, record) = OnlyDatabase::choose(only, settings);
    let redis = redis_target(args)?;
    let rt = runtime()?;
    let ((mut snapshot, rendered), shards, _) = rt.block_on(with_shards(
        collect_for_file(&settings),
        shards,
        args.jobs,
        false,
    ))?;
    deployment(&mut snapshot, shards, record);
    rt.block_on(read_redis(redis.as_ref(), &mut snapshot));
    Ok((snapshot, rendered))
}

/// [`collect_live`] with the diagnostics of a support bundle: the global database's, and each
/// shard's that was read (by shard id).
pub fn collect_live_with_diagnostics(
    args: &ConnectArgs,
) -> Result<(Snapshot, Diagnostics, ShardDiagnostics)> {
    let settings = settings(args)?;
    let (only, shards) = shard_settings(&settings, args)?;
    let (settings, record) = OnlyDatabase::choose(only, settings);
    let redis = redis_target(args)?;
    let rt = runtime()?;
    let ((mut snapshot, diagnostics), shards, shard_diagnostics) = rt.block_on(with_shards(
        collect_with_diagnostics(&settings),
        shards,
        args.jobs,
        true,
    ))?;
    deployment(&mut snapshot, shards, record);
    rt.block_on(read_redis(redis.as_ref(), &mut snapshot));
    Ok((snapshot, diagnostics, shard_diagnostics))
}

/// The Redis to read (see [`crate::sources::redis::resolve`]), sources set but not used noted.
fn redis_target(args: &ConnectArgs) -> Result<Option<RedisTargets>> {
    let env = process_environment();
    let config = medplum_config(args)?;
    let (targets, ignored) =
        crate::sources::redis::resolve(args.redis_url.as_deref(), &env, config.as_ref(), || {
            let name = crate::medplum::config::ConfigName::parse("env")
                .map_err(|why| anyhow::anyhow!("{why}"))?;
            config::load(&name, &env)
        })?;
    if let (Some(targets), false) = (&targets, ignored.is_empty()) {
        note(format_args!(
            "reading Redis from {}; also set but ignored: {}",
            targets.queues.origin,
            ignored.join(", ")
        ));
    }
    Ok(targets)
}

/// Reads Redis into the snapshot; a Redis that cannot be read is a recorded gap, noted on
/// stderr, never a failed command. The deduplication ids looked up are those of every
/// migration medmig knows of and a few past the database's.
async fn read_redis(targets: Option<&RedisTargets>, snapshot: &mut Snapshot) {
    let Some(targets) = targets else { return };
    if let Err(why) = read_redis_quietly(targets, snapshot).await {
        note(format_args!(
            "Redis at {} was not read: {why}",
            targets.queues
        ));
    }
}

/// [`read_redis`] without the note: the gap is recorded in the snapshot and returned.
async fn read_redis_quietly(
    targets: &RedisTargets,
    snapshot: &mut Snapshot,
) -> std::result::Result<(), String> {
    let target = &targets.queues;
    let highest = crate::medplum::manifest::Manifest::embedded().highest();
    let data_version = snapshot
        .database_migration
        .iter()
        .filter_map(|row| row.data_version)
        .filter_map(|v| u32::try_from(v).ok())
        .max()
        .unwrap_or(0)
        .min(crate::medplum::manifest::MAX_DATA_VERSION);
    let ids: Vec<String> = (1..=highest.max(data_version) + 5)
        .map(|n| format!("v{n}"))
        .collect();
    let read = async {
        let mut conn = target
            .open(Duration::from_secs(5), Duration::from_secs(10))
            .await?;
        let mut evidence =
            crate::sources::redis::read(&mut conn, &ids, targets.registry.is_none()).await?;
        if let Some(registry) = &targets.registry {
            let mut conn = registry
                .open(Duration::from_secs(5), Duration::from_secs(10))
                .await?;
            let (servers, complete) = crate::sources::redis::read_registry(&mut conn).await?;
            evidence.servers = servers;
            evidence.registry_complete = complete;
            evidence.round_trips += conn.round_trips;
        }
        anyhow::Ok(evidence)
    };
    match read.await {
        Ok(evidence) => {
            snapshot.redis = Some(evidence);
            snapshot.redis_gap = None;
            Ok(())
        }
        Err(err) => {
            let why = format!("{err:#}");
            snapshot.redis = None;
            snapshot.redis_gap = Some(why.clone());
            Err(why)
        }
    }
}

/// Lets `value` go without freeing it: a command calls this as its last step, when the
/// process is about to exit anyway. A snapshot of Medplum's 450 tables is some 100,000 small
/// allocations, and freeing them one by one took longer than writing the file's last third.
pub fn end_with<T>(value: T) {
    std::mem::forget(value);
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Resolves the connection settings and notes ignored sources and other warnings on stderr.
fn settings(args: &ConnectArgs) -> Result<ConnectionSettings> {
    let settings = ConnectionSettings::resolve(&connect_options(args), &process_environment())?;
    for warning in &settings.warnings {
        note(warning);
    }
    if !settings.ignored_sources.is_empty() {
        let ignored: Vec<String> = settings
            .ignored_sources
            .iter()
            .map(ToString::to_string)
            .collect();
        note(format_args!(
            "connecting with {}; also set but ignored: {}",
            settings.source,
            ignored.join(", ")
        ));
    }
    Ok(settings)
}

/// The connection flags as the source takes them.
fn connect_options(args: &ConnectArgs) -> ConnectOptions {
    ConnectOptions {
        database_url: args.database_url.clone(),
        medplum_config: args.medplum_config.clone(),
        ssl_mode: args.sslmode.map(Into::into),
        ssl_root_cert: args.ssl_root_cert.clone(),
        connect_timeout: args.connect_timeout,
        statement_timeout: args.statement_timeout,
        lock_timeout: args.lock_timeout,
    }
}

/// Prints one `medmig: …` line on stderr, its control characters escaped: a note names
/// files, hosts and config values that came from outside.
pub fn note(message: impl std::fmt::Display) {
    eprintln!(
        "medmig: {}",
        crate::text::escape_controls(&message.to_string())
    );
}
