//! Medplum's server config as the server loads and evaluates it: the config name it is
//! started with (`file:PATH`, `env`, `aws:…`, `gcp:…`, `azure:…`, comma-joined), how its
//! `MEDPLUM_*` variables become config, the deep merge of its sources, and the switches that
//! defer post-deploy migrations, evaluated exactly as the server's code does.
//!
//! This module owns every rule of Medplum's config loader that medmig reproduces
//! (`packages/server/src/config/loader.ts`, `packages/server/src/config/utils.ts`) and what the
//! deferral switches mean to the server (`packages/server/src/migrations/migration-utils.ts`,
//! `packages/server/src/database.ts`). It encodes those facts; it holds no copy of Medplum's
//! code. It does no I/O: reading the files and the environment is `sources/config.rs`'s, what
//! the switches mean for a rollback or a recovery plan is `analyze/`'s call, and how to
//! connect with the `database` section is `sources/postgres/connect.rs`'s.
//!
//! The documented top-level `disablePostDeployMigrations` is read by no server code; the key
//! the server reads is `database.disableRunPostDeployMigrations` (any JavaScript-truthy value
//! defers), and `database.runMigrations === false` defers too, at a cost.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};
use serde::Serialize;
use serde_json::{Map, Number, Value};

/// One source of a config name: what `loadSingleConfig` in
/// `packages/server/src/config/loader.ts` switches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `file:PATH`, or a plain path: the file's JSON, read as `JSON.parse` reads it (no
    /// coercion), relative to the working directory.
    File(PathBuf),
    /// `env`: the `MEDPLUM_*` variables, mapped as `loadEnvConfig` maps them. medmig reads its
    /// own environment.
    Env,
    /// `aws:PATH`: AWS Parameter Store and Secrets Manager; medmig cannot read it.
    Aws(String),
    /// `gcp:…`: Google Cloud; medmig cannot read it.
    Gcp(String),
    /// `azure:…`: Azure Key Vault; medmig cannot read it.
    Azure(String),
}

impl ConfigSource {
    /// Parses one segment of a config name as `loadSingleConfig` splits it (`splitN(name, ':',
    /// 2)`): the type is what precedes the first `:`. `None` when the type is not one the
    /// server knows.
    fn of_segment(segment: &str) -> Option<ConfigSource> {
        let (kind, rest) = segment.split_once(':').unwrap_or((segment, ""));
        match kind {
            "file" => Some(ConfigSource::File(PathBuf::from(rest))),
            "env" => Some(ConfigSource::Env),
            "aws" => Some(ConfigSource::Aws(rest.to_string())),
            "gcp" => Some(ConfigSource::Gcp(rest.to_string())),
            "azure" => Some(ConfigSource::Azure(rest.to_string())),
            _ => None,
        }
    }

    /// Why medmig cannot read it, for a source it cannot read.
    pub fn why_not_read(&self) -> Option<String> {
        let store = match self {
            ConfigSource::Aws(_) => "AWS Parameter Store and Secrets Manager",
            ConfigSource::Gcp(_) => "Google Cloud",
            ConfigSource::Azure(_) => "Azure Key Vault",
            ConfigSource::File(_) | ConfigSource::Env => return None,
        };
        Some(format!(
            "the server reads it from {store}, which medmig does not read"
        ))
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "file:{}", path.display()),
            ConfigSource::Env => f.write_str("env"),
            ConfigSource::Aws(path) => write!(f, "aws:{path}"),
            ConfigSource::Gcp(path) => write!(f, "gcp:{path}"),
            ConfigSource::Azure(path) => write!(f, "azure:{path}"),
        }
    }
}

/// What `--medplum-config` names: a plain file path (meaning `file:PATH`), or a config name as
/// the server takes it on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigName {
    text: String,
    sources: Vec<ConfigSource>,
    plain_path: bool,
}

impl ConfigName {
    /// Parses `--medplum-config`. A value is a config name when every non-empty comma
    /// segment has a type the server knows (`file:`, `env`, `aws:`, `gcp:`, `azure:`); when
    /// none has, it is a plain path. Like `loadConfig` (loader.ts), empty segments are skipped,
    /// no name at all is refused ("Empty config name"), and segments are not trimmed: a
    /// segment with an unknown type beside known ones is refused as the server refuses it
    /// ("Unrecognized config type: …").
    pub fn parse(text: &str) -> Result<ConfigName, String> {
        let segments: Vec<&str> = text.split(',').filter(|s| !s.is_empty()).collect();
        if segments.is_empty() {
            return Err(format!(
                "--medplum-config {text:?} names no source, which the server refuses (\"Empty \
                 config name\"): give a file path or a config name such as \
                 file:medplum.config.json,env"
            ));
        }
        let sources: Vec<Option<ConfigSource>> = segments
            .iter()
            .map(|s| ConfigSource::of_segment(s))
            .collect();
        if sources.iter().all(Option::is_none) {
            return Ok(ConfigName {
                text: text.to_string(),
                sources: vec![ConfigSource::File(PathBuf::from(text))],
                plain_path: true,
            });
        }
        if let Some(bad) = segments
            .iter()
            .zip(&sources)
            .find_map(|(segment, source)| source.is_none().then_some(*segment))
        {
            let kind = bad.split_once(':').map_or(bad, |(kind, _)| kind);
            let fix = if segments
                .iter()
                .all(|s| ConfigSource::of_segment(s.trim()).is_some())
            {
                let trimmed: Vec<&str> = segments.iter().map(|s| s.trim()).collect();
                format!(
                    "the server does not trim the sources: write {:?}",
                    trimmed.join(",")
                )
            } else {
                "each comma-separated source must be file:PATH, env, aws:…, gcp:… or azure:…"
                    .to_string()
            };
            return Err(format!(
                "the server would refuse the config name {text:?} with \"Unrecognized config \
                 type: {kind}\": {fix}"
            ));
        }
        Ok(ConfigName {
            text: text.to_string(),
            sources: sources.into_iter().flatten().collect(),
            plain_path: false,
        })
    }

    /// The sources, left to right (later ones win).
    pub fn sources(&self) -> &[ConfigSource] {
        &self.sources
    }

    /// Whether it was given as a plain file path rather than a config name.
    pub fn is_plain_path(&self) -> bool {
        self.plain_path
    }

    /// As given on the command line.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for ConfigName {
    type Err = String;

    fn from_str(text: &str) -> Result<ConfigName, String> {
        ConfigName::parse(text)
    }
}

impl fmt::Display for ConfigName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Medplum's server config as the server would load it from a config name (before its
/// defaults are added, which set nothing under `database`): every source medmig can read,
/// deep-merged left to right, and the sources it could not read.
#[derive(Clone)]
pub struct MedplumConfig {
    name: ConfigName,
    merged: Value,
    /// Each source read, with its own JSON, in order.
    layers: Vec<(ConfigSource, Value)>,
    not_read: Vec<ConfigSource>,
    notes: Vec<String>,
}

impl MedplumConfig {
    /// A config made of sources already read (for tests and offline use): `layers` are merged
    /// left to right.
    pub fn from_layers(
        name: ConfigName,
        layers: Vec<(ConfigSource, Value)>,
        not_read: Vec<ConfigSource>,
        mut notes: Vec<String>,
    ) -> MedplumConfig {
        let merged = layers
            .iter()
            .fold(Value::Object(Map::new()), |config, (_, overlay)| {
                deep_merge(config, overlay.clone())
            });
        if not_read.is_empty() {
            // loadConfig (loader.ts) refuses to start without a non-blank string baseUrl.
            let blank = merged
                .get("baseUrl")
                .and_then(Value::as_str)
                .is_none_or(|url| url.trim().is_empty());
            if blank {
                notes.push(
                    "baseUrl is missing or blank: the server would refuse to start with this \
                     config (\"Missing required config setting: baseUrl\")"
                        .to_string(),
                );
            }
        }
        MedplumConfig {
            name,
            merged,
            layers,
            not_read,
            notes,
        }
    }

    /// The config name it was loaded from.
    pub fn name(&self) -> &ConfigName {
        &self.name
    }

    /// The merged config of the sources read, as JSON (with its secrets: redact before
    /// writing it anywhere).
    pub fn value(&self) -> &Value {
        &self.merged
    }

    /// The sources read, in order.
    pub fn sources_read(&self) -> Vec<&ConfigSource> {
        self.layers.iter().map(|(source, _)| source).collect()
    }

    /// The sources medmig could not read (`aws:…`, `gcp:…`, `azure:…`).
    pub fn sources_not_read(&self) -> &[ConfigSource] {
        &self.not_read
    }

    /// Whether every source was read, so that the merged config is the server's.
    pub fn is_complete(&self) -> bool {
        self.not_read.is_empty()
    }

    /// What the loader noticed: variables that parse to NaN, a missing `baseUrl`.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The merged value at a dotted path, e.g. `["database", "port"]`.
    pub fn get(&self, path: &[&str]) -> Option<&Value> {
        lookup(&self.merged, path)
    }

    /// Which source the merged value at `path` comes from: the last one that sets it, unless a
    /// later one replaced a parent with something that is not an object.
    pub fn origin(&self, path: &[&str]) -> Option<&ConfigSource> {
        let mut origin = None;
        for (source, layer) in &self.layers {
            if lookup(layer, path).is_some() {
                origin = Some(source);
            } else if replaces_parent(layer, path) {
                origin = None;
            }
        }
        origin
    }

    /// The `database` section, typed for connecting. `None` when the merged config has none.
    pub fn database(&self) -> Result<Option<DatabaseSection>> {
        self.database_at(&["database"])
    }

    /// The shards of a sharded deployment: each id (its key in `shards`) with its `database`
    /// section, in the config's order by id. Empty when the config has no `shards`.
    ///
    /// As the server's config loader (`packages/server/src/config/loader.ts`, the sharding
    /// line): the top-level `database` is the global shard's, `global` may not be a key of
    /// `shards`, and every shard has a `database` of the same type as the top-level one.
    pub fn shards(&self) -> Result<Vec<(String, DatabaseSection)>> {
        let Some(shards) = self.get(&["shards"]) else {
            return Ok(Vec::new());
        };
        let Value::Object(shards) = shards else {
            bail!(
                "\"shards\" in the Medplum config {} is {}, not an object of shard ids",
                self.name,
                kind(shards)
            );
        };
        let mut sections = Vec::new();
        for id in shards.keys() {
            if id == crate::snapshot::GLOBAL_SHARD {
                bail!(
                    "the Medplum config {} has a shard \"global\": that id is reserved for \
                     the top-level database, and the server refuses such a config too",
                    self.name
                );
            }
            let Some(section) = self.database_at(&["shards", id, "database"])? else {
                bail!(
                    "shard \"{}\" in the Medplum config {} has no \"database\" section",
                    crate::text::escape_controls(id),
                    self.name
                );
            };
            sections.push((id.clone(), section));
        }
        Ok(sections)
    }

    /// The database section at `path` (`database`, or `shards.ID.database`), typed.
    fn database_at(&self, path: &[&str]) -> Result<Option<DatabaseSection>> {
        let Some(database) = self.get(path) else {
            return Ok(None);
        };
        let shown = crate::text::escape_controls(&path.join(".")).into_owned();
        let Value::Object(section) = database else {
            bail!(
                "\"{shown}\" in the Medplum config {} is not an object: give the server's \
                 database settings",
                self.name
            );
        };
        let text = |key: &str| -> Result<Option<String>> {
            match section.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                // The kind only: the value may be a password.
                Some(other) => Err(anyhow!(
                    "{shown}.{key} in the Medplum config {} is {}, not a string",
                    self.name,
                    kind(other)
                )),
            }
        };
        let ssl = match section.get("ssl") {
            Some(Value::Object(ssl)) => Some(SslSection {
                require: ssl.get("require").and_then(Value::as_bool),
                reject_unauthorized: ssl.get("rejectUnauthorized").and_then(Value::as_bool),
                ca: ssl.get("ca").and_then(Value::as_str).map(str::to_string),
            }),
            _ => None,
        };
        Ok(Some(DatabaseSection {
            host: text("host")?,
            port: section.get("port").cloned(),
            dbname: text("dbname")?,
            username: text("username")?,
            password: text("password")?,
            ssl,
        }))
    }

    /// The deferral switches as the merged config holds them, and which sources were read.
    pub fn defer_settings(&self) -> DeferSettings {
        let setting = |path: &[&str]| {
            (
                self.get(path).cloned(),
                self.origin(path).map(ToString::to_string),
            )
        };
        let (disable_run, disable_run_from) =
            setting(&["database", "disableRunPostDeployMigrations"]);
        let (run, run_from) = setting(&["database", "runMigrations"]);
        let (documented, documented_from) = setting(&["disablePostDeployMigrations"]);
        let mut set_by = BTreeMap::new();
        for (key, from) in [
            (DISABLE_RUN, disable_run_from),
            (RUN_MIGRATIONS, run_from),
            (DOCUMENTED, documented_from),
        ] {
            if let Some(from) = from {
                set_by.insert(key.to_string(), from);
            }
        }
        DeferSettings {
            disable_run_post_deploy_migrations: disable_run,
            run_migrations: run,
            disable_post_deploy_migrations: documented,
            set_by,
            sources_read: self.layers.iter().map(|(s, _)| s.to_string()).collect(),
            sources_not_read: self.not_read.iter().map(ToString::to_string).collect(),
        }
    }
}

impl fmt::Debug for MedplumConfig {
    // Hand-written so that a stray `{:?}` never prints the config's secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MedplumConfig")
            .field("name", &self.name.as_str())
            .field("sources_read", &self.sources_read())
            .field("sources_not_read", &self.not_read)
            .field("notes", &self.notes)
            .finish_non_exhaustive()
    }
}

/// `database` of the server config, typed for connecting (`MedplumDatabaseConfig` in
/// `packages/server/src/config/types.ts`).
#[derive(Clone, Default)]
pub struct DatabaseSection {
    pub host: Option<String>,
    /// A number in files; `null` when `MEDPLUM_DATABASE_PORT` is not an integer.
    pub port: Option<Value>,
    pub dbname: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ssl: Option<SslSection>,
}

impl fmt::Debug for DatabaseSection {
    // Hand-written so that a stray `{:?}` never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("ssl", &self.ssl)
            .finish()
    }
}

/// `database.ssl` (node-postgres options); a value that is not a JSON boolean counts as
/// absent, as in node-postgres's `=== false` / truthiness checks of the booleans it reads.
#[derive(Debug, Clone, Default)]
pub struct SslSection {
    pub require: Option<bool>,
    pub reject_unauthorized: Option<bool>,
    pub ca: Option<String>,
}

/// The key the server reads to defer post-deploy migrations.
const DISABLE_RUN: &str = "database.disableRunPostDeployMigrations";
/// The key that stops all migrations.
const RUN_MIGRATIONS: &str = "database.runMigrations";
/// The documented key that no server code reads.
const DOCUMENTED: &str = "disablePostDeployMigrations";

/// The switches that decide whether the server starts post-deploy migrations by itself, as
/// the merged config holds them (raw JSON: no coercion), and how complete that config is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeferSettings {
    /// `database.disableRunPostDeployMigrations`, the key the server reads; `None` when unset.
    pub disable_run_post_deploy_migrations: Option<Value>,
    /// `database.runMigrations`.
    pub run_migrations: Option<Value>,
    /// Top-level `disablePostDeployMigrations`: documented, read by no server code.
    pub disable_post_deploy_migrations: Option<Value>,
    /// Which source set each key present, by dotted key.
    pub set_by: BTreeMap<String, String>,
    /// The sources read, as the config name spells them.
    pub sources_read: Vec<String>,
    /// The sources medmig could not read: while any is left, the values above may not be the
    /// server's.
    pub sources_not_read: Vec<String>,
}

impl DeferSettings {
    /// Whether the server will not start post-deploy migrations by itself: `isDisabled` of
    /// `maybeAutoRunPendingPostDeployMigration` in
    /// `packages/server/src/migrations/migration-utils.ts` (and of the heartbeat listener in
    /// `server-registry.ts`): `runMigrations === false`, or a truthy
    /// `disableRunPostDeployMigrations`. Only as far as the sources read tell: see
    /// [`DeferSettings::all_sources_read`].
    pub fn defers(&self) -> bool {
        self.run_migrations_off()
            || self
                .disable_run_post_deploy_migrations
                .as_ref()
                .is_some_and(js_truthy)
    }

    /// Whether `database.runMigrations === false` (only a JSON `false`): `initDatabase`
    /// (`packages/server/src/database.ts`) then skips the pre-deploy migrations and the
    /// startup gate, and `maybeStartPostDeployMigration` (migration-utils.ts) refuses manual
    /// starts.
    pub fn run_migrations_off(&self) -> bool {
        self.run_migrations == Some(Value::Bool(false))
    }

    /// Whether `database.disableRunPostDeployMigrations` alone defers (JavaScript-truthy).
    pub fn key_read_defers(&self) -> bool {
        self.disable_run_post_deploy_migrations
            .as_ref()
            .is_some_and(js_truthy)
    }

    /// Whether the documented top-level `disablePostDeployMigrations` asks for deferral (`true`,
    /// or `"true"` as `MEDPLUM_DISABLE_POST_DEPLOY_MIGRATIONS=true` gives it) while the key the
    /// server reads does not defer.
    pub fn relies_on_documented_key(&self) -> bool {
        let asks = match &self.disable_post_deploy_migrations {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
            _ => false,
        };
        asks && !self.key_read_defers()
    }

    /// Whether every source of the config name was read.
    pub fn all_sources_read(&self) -> bool {
        self.sources_not_read.is_empty()
    }

    /// When a source could not be read: what is missing and what to give instead.
    pub fn gap(&self) -> Option<String> {
        if self.all_sources_read() {
            return None;
        }
        let not_read = self.sources_not_read.join(", ");
        Some(format!(
            "medmig cannot read {not_read} of the server's config, and a later source overrides \
             earlier ones: the answer may be incomplete. Give medmig the resolved values, e.g. \
             --medplum-config file:resolved.json with the server's database settings and \
             database.disableRunPostDeployMigrations / database.runMigrations"
        ))
    }

    /// The raw value of one switch.
    pub fn value(&self, key: DeferKey) -> Option<&Value> {
        match key {
            DeferKey::DisableRun => self.disable_run_post_deploy_migrations.as_ref(),
            DeferKey::RunMigrations => self.run_migrations.as_ref(),
            DeferKey::Documented => self.disable_post_deploy_migrations.as_ref(),
        }
    }

    /// One switch, its raw value and the source that set it, e.g.
    /// `database.runMigrations: false (from file:medplum.config.json)`.
    pub fn value_line(&self, key: DeferKey) -> String {
        let remark = match key {
            DeferKey::Documented => " (top level, read by no server code)",
            DeferKey::DisableRun | DeferKey::RunMigrations => "",
        };
        let name = key.as_str();
        let shown = self
            .value(key)
            .map_or("not set".to_string(), Value::to_string);
        match self.set_by.get(name) {
            Some(from) => format!("{name}{remark}: {shown} (from {from})"),
            None => format!("{name}{remark}: {shown}"),
        }
    }

    /// A short note when the server evaluates the switch differently than it reads (the
    /// string `"false"` is truthy, and is not `=== false`), or when it costs more than it
    /// seems (`runMigrations: false`), or when no server code reads it.
    pub fn note(&self, key: DeferKey) -> Option<String> {
        let name = key.as_str();
        let value = self.value(key)?;
        match (key, value) {
            (DeferKey::DisableRun, Value::Bool(_)) => None,
            (DeferKey::DisableRun, value) if js_truthy(value) => Some(format!(
                "{name} is {}, which the server treats as true: post-deploy migrations are \
                 deferred",
                describe(value)
            )),
            (DeferKey::DisableRun, value) => Some(format!(
                "{name} is {}, which the server treats as false: it defers nothing",
                describe(value)
            )),
            (DeferKey::RunMigrations, Value::Bool(true)) => None,
            (DeferKey::RunMigrations, Value::Bool(false)) => Some(format!(
                "{name} is false: the server also skips the pre-deploy migrations and the \
                 startup gate, and refuses to start post-deploy migrations by hand until it is \
                 flipped back"
            )),
            (DeferKey::RunMigrations, value) => Some(format!(
                "{name} is {}, which is not === false: migrations run",
                describe(value)
            )),
            (DeferKey::Documented, value) => Some(format!(
                "{name} (top level) is {}, but no server code reads it: it defers nothing",
                describe(value)
            )),
        }
    }

    /// The three switches, one line each ([`DeferSettings::value_line`]).
    pub fn values(&self) -> Vec<String> {
        DeferKey::ALL
            .into_iter()
            .map(|key| self.value_line(key))
            .collect()
    }

    /// Every note ([`DeferSettings::note`]).
    pub fn notes(&self) -> Vec<String> {
        DeferKey::ALL
            .into_iter()
            .filter_map(|key| self.note(key))
            .collect()
    }

    /// Which sources were read and which not, one line.
    pub fn sources(&self) -> String {
        let read = if self.sources_read.is_empty() {
            "none".to_string()
        } else {
            self.sources_read.join(", ")
        };
        if self.sources_not_read.is_empty() {
            format!("config sources read: {read}")
        } else {
            format!(
                "config sources read: {read}; not read: {}",
                self.sources_not_read.join(", ")
            )
        }
    }

    /// Evidence about some of the switches: their lines, their notes, then the sources.
    pub fn evidence_about(&self, keys: &[DeferKey]) -> Vec<String> {
        let mut evidence: Vec<String> = keys.iter().map(|key| self.value_line(*key)).collect();
        evidence.extend(keys.iter().filter_map(|key| self.note(*key)));
        evidence.push(self.sources());
        evidence
    }

    /// Evidence about all three switches.
    pub fn evidence(&self) -> Vec<String> {
        self.evidence_about(&DeferKey::ALL)
    }
}

/// The three config keys that bear on post-deploy deferral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferKey {
    /// `database.disableRunPostDeployMigrations`: the key the server reads (truthiness).
    DisableRun,
    /// `database.runMigrations`: `=== false` stops every migration.
    RunMigrations,
    /// Top-level `disablePostDeployMigrations`: documented, read by no server code.
    Documented,
}

impl DeferKey {
    /// All three, in the order evidence lists them.
    pub const ALL: [DeferKey; 3] = [
        DeferKey::DisableRun,
        DeferKey::RunMigrations,
        DeferKey::Documented,
    ];

    /// The dotted key.
    pub fn as_str(self) -> &'static str {
        match self {
            DeferKey::DisableRun => DISABLE_RUN,
            DeferKey::RunMigrations => RUN_MIGRATIONS,
            DeferKey::Documented => DOCUMENTED,
        }
    }
}

/// JavaScript truthiness of a JSON value: `false`, `null`, `0` and `""` are falsy; every
/// other string (`"false"`, `"0"`), number, object and array is truthy.
pub fn js_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A JSON value in words, for notes: `the string "false"`, `the number 0`, `an object`.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.is_empty() => "the empty string".to_string(),
        Value::String(s) => format!("the string {}", Value::String(s.clone())),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// The kind of a JSON value, without the value: `a number`, `an object`.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `deepMerge` of `packages/server/src/config/loader.ts`: a copy of `base` where each key of
/// `overlay` recurses when both values are objects (not arrays, not null), and otherwise
/// replaces the base value (arrays and scalars whole, `null` included). The overlay wins.
pub fn deep_merge(base: Value, overlay: Value) -> Value {
    match (base, overlay) {
        (Value::Object(mut base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                let merged = match (base.remove(&key), value) {
                    (Some(old @ Value::Object(_)), new @ Value::Object(_)) => deep_merge(old, new),
                    (_, new) => new,
                };
                base.insert(key, merged);
            }
            Value::Object(base)
        }
        (_, overlay) => overlay,
    }
}

/// The section prefixes of `loadEnvConfig` (loader.ts), in the order they are tried; the
/// first that matches wins, so `CACHE_REDIS_` is taken before `REDIS_`.
pub const ENV_SECTIONS: [(&str, &str); 10] = [
    ("DATABASE_", "database"),
    ("CACHE_REDIS_", "cacheRedis"),
    ("RATE_LIMIT_REDIS_", "rateLimitRedis"),
    ("PUBSUB_REDIS_", "pubSubRedis"),
    ("BACKGROUND_JOBS_REDIS_", "backgroundJobsRedis"),
    ("REDIS_", "redis"),
    ("SMTP_", "smtp"),
    ("BULLMQ_", "bullmq"),
    ("FISSION_", "fission"),
    ("WORKERS_", "workers"),
];

/// `integerKeys` of `packages/server/src/config/utils.ts`: read with `parseInt(value, 10)`.
pub const INTEGER_KEYS: &[&str] = &[
    "accurateCountThreshold",
    "bcryptHashSalt",
    "base64BinaryMaxBytes",
    "defaultAuthRateLimit",
    "defaultFhirQuota",
    "defaultRateLimit",
    "heartbeatMilliseconds",
    "keepAliveTimeout",
    "maxBotLogLengthForLogs",
    "maxBotLogLengthForResource",
    "maxSearchOffset",
    "inlineAttachmentsMaxTotalBytes",
    "mfaAuthenticatorWindow",
    "port",
    "shutdownTimeoutMilliseconds",
    "transactionAttempts",
    "transactionExpBackoffBaseDelayMs",
    "idleInTransactionLogThresholdMs",
    "fhirSearchMinLimit",
    "database.maxConnections",
    "database.port",
    "database.queryTimeout",
    "readonlyDatabase.maxConnections",
    "readonlyDatabase.port",
    "readonlyDatabase.queryTimeout",
    "redis.db",
    "redis.port",
    "cacheRedis.db",
    "cacheRedis.port",
    "rateLimitRedis.db",
    "rateLimitRedis.port",
    "pubSubRedis.db",
    "pubSubRedis.port",
    "backgroundJobsRedis.db",
    "backgroundJobsRedis.port",
    "smtp.port",
    "bullmq.concurrency",
    "fission.routerPort",
];

/// `booleanKeys` of `packages/server/src/config/utils.ts`: true only for exactly `"true"`.
/// Not in it: `disablePostDeployMigrations`, `readonlyDatabase.runMigrations`.
pub const BOOLEAN_KEYS: &[&str] = &[
    "allowUnsafeOutbound",
    "botCustomFunctionsEnabled",
    "rateLimitsEnabled",
    "logRequests",
    "logAuditEvents",
    "mcpEnabled",
    "registerEnabled",
    "serverScopedSubscriptionsEnabled",
    "fhirSearchDiscourageSeqScan",
    "redactAuditEvents",
    "database.ssl.rejectUnauthorized",
    "database.ssl.require",
    "database.disableConnectionConfiguration",
    "database.disableRunPostDeployMigrations",
    "database.runMigrations",
    "readonlyDatabase.ssl.rejectUnauthorized",
    "readonlyDatabase.ssl.require",
    "readonlyDatabase.disableConnectionConfiguration",
    "require",
    "rejectUnauthorized",
    "dataWarehouse.enabled",
];

/// `objectKeys` of `packages/server/src/config/utils.ts`: read with `JSON.parse`.
pub const OBJECT_KEYS: &[&str] = &[
    "tls",
    "ssl",
    "defaultProjectFeatures",
    "defaultProjectSystemSetting",
    "defaultOAuthClients",
    "externalAuthProviders",
    "smtp",
    "arrayColumnPadding",
    "subscriptionAutoDisable",
    "workers",
    "workers.enabled",
    "workers.bullmq",
    "dataWarehouse",
];

/// The config of the `env` source: `loadEnvConfig` of `packages/server/src/config/loader.ts`
/// (the newest stored version) applied to `env`, in its order. Every `MEDPLUM_*` variable
/// becomes a key: the prefix is dropped, a section prefix of [`ENV_SECTIONS`] puts it one
/// level down, the rest is camelCased ([`camel_case`]) and typed by [`type_env_value`].
/// Returns the config and notes on values the server reads as NaN. Fails, as the server
/// would, on an object-typed variable that is not JSON, or on a section that an earlier
/// variable set to a string.
pub fn env_config(env: &[(String, String)]) -> Result<(Value, Vec<String>)> {
    let mut config = Map::new();
    let mut notes = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("MEDPLUM_") else {
            continue;
        };
        let section = ENV_SECTIONS
            .iter()
            .find_map(|(prefix, section)| rest.strip_prefix(prefix).map(|key| (*section, key)));
        let (section, raw_key) = match section {
            Some((section, key)) => (Some(section), key),
            None => (None, rest),
        };
        let key = camel_case(raw_key);
        let lookup_key = match section {
            Some(section) => format!("{section}.{key}"),
            None => key.clone(),
        };
        let typed = type_env_value(name, &lookup_key, &key, value, &mut notes)?;
        match section {
            None => {
                config.insert(key, typed);
            }
            Some(section) => {
                let slot = config
                    .entry(section.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                match slot {
                    Value::Object(object) => {
                        object.insert(key, typed);
                    }
                    // `config[section] ??= {}` keeps the string, and setting a property on a
                    // string throws in strict mode: the server would not start.
                    _ => bail!(
                        "{name} cannot be read: an earlier MEDPLUM_ variable set \"{section}\" \
                         to a string, and the server would fail on it too: unset that variable"
                    ),
                }
            }
        }
    }
    Ok((Value::Object(config), notes))
}

/// `loadEnvConfig`'s camelCase conversion: lowercase everything, then `_` followed by a letter
/// `a`-`z` becomes that letter in upper case; `_` before a digit (or another `_`) stays.
pub fn camel_case(key: &str) -> String {
    let lower = key.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut chars = lower.chars().peekable();
    while let Some(c) = chars.next() {
        match chars.peek() {
            Some(next) if c == '_' && next.is_ascii_lowercase() => {
                out.push(next.to_ascii_uppercase());
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Types one variable's value as `loadEnvConfig` does, checking `lookup_key` (dotted, with the
/// section) or the bare `key` against the lists in order: integer (`parseInt`), boolean
/// (`=== "true"`), object (`JSON.parse`), else the string as is.
pub fn type_env_value(
    name: &str,
    lookup_key: &str,
    key: &str,
    value: &str,
    notes: &mut Vec<String>,
) -> Result<Value> {
    let listed = |list: &[&str]| list.contains(&lookup_key) || list.contains(&key);
    if listed(INTEGER_KEYS) {
        return Ok(match parse_int(value) {
            Some(number) => Value::Number(number),
            None => {
                notes.push(format!(
                    "{name} is {}, which the server's parseInt reads as NaN: it gets NaN for \
                     {lookup_key} (medmig records null)",
                    describe(&Value::String(value.to_string()))
                ));
                Value::Null
            }
        });
    }
    if listed(BOOLEAN_KEYS) {
        return Ok(Value::Bool(value == "true"));
    }
    if listed(OBJECT_KEYS) {
        return serde_json::from_str(value).map_err(|err| {
            anyhow!(
                "{name} is not valid JSON ({err}); the server parses it with JSON.parse and \
                 would fail to start too: fix or unset it"
            )
        });
    }
    Ok(Value::String(value.to_string()))
}

/// `Number.parseInt(value, 10)`: leading white space skipped, an optional sign, then the
/// longest run of decimal digits; `None` for NaN (no digit) and for a run too long for a
/// finite number. Integral values that fit are exact; longer ones are rounded to the nearest
/// double, as JavaScript's numbers are.
pub fn parse_int(value: &str) -> Option<Number> {
    let rest = value.trim_start_matches(is_js_whitespace);
    let (negative, rest) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let digits = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() {
        return None;
    }
    const EXACT: i64 = 1 << 53;
    if let Ok(n) = digits.parse::<i64>() {
        if n <= EXACT {
            // -0 is 0 once written as JSON.
            return Some(Number::from(if negative { -n } else { n }));
        }
    }
    let magnitude: f64 = digits.parse().ok()?;
    Number::from_f64(if negative { -magnitude } else { magnitude })
}

/// JavaScript's white space and line terminators, which `parseInt` skips: Rust's white space
/// without U+0085, plus U+FEFF.
fn is_js_whitespace(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{FEFF}'
}

fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| value.get(key))
}

/// Whether merging `layer` replaces a parent of `path` with something that is not an object
/// (and so removes whatever was at `path`).
fn replaces_parent(layer: &Value, path: &[&str]) -> bool {
    (1..path.len()).any(|depth| lookup(layer, &path[..depth]).is_some_and(|v| !v.is_object()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The `env` source of `pairs`.
    fn env(pairs: &[(&str, &str)]) -> Value {
        env_config(&vars(pairs)).unwrap().0
    }

    fn name(text: &str) -> ConfigName {
        ConfigName::parse(text).unwrap()
    }

    fn settings(json: Value) -> DeferSettings {
        MedplumConfig::from_layers(
            name("file:x.json"),
            vec![(ConfigSource::File("x.json".into()), json)],
            Vec::new(),
            Vec::new(),
        )
        .defer_settings()
    }

    // --- the config name (loader.ts, loadConfig / loadSingleConfig) ---

    #[test]
    fn a_plain_path_means_file_path() {
        let n = name("/etc/medplum/medplum.config.json");
        assert!(n.is_plain_path());
        assert_eq!(
            n.sources(),
            [ConfigSource::File(
                "/etc/medplum/medplum.config.json".into()
            )]
        );
        // A name whose type only begins like a known one is a path, not the env source.
        assert!(name("env.json").is_plain_path());
        // loader.test.ts "Unrecognized config" refuses 'unrecognized'; medmig reads a
        // value with no known type as a plain path (its meaning before config names).
        assert!(name("unrecognized").is_plain_path());
    }

    #[test]
    fn config_names_split_on_commas_and_skip_empty_segments() {
        // loader.test.ts "Multi-source: empty and trailing comma segments skipped".
        let n = name("file:medplum.config.json,,");
        assert!(!n.is_plain_path());
        assert_eq!(
            n.sources(),
            [ConfigSource::File("medplum.config.json".into())]
        );
        let n = name("file:base.json,env,aws:/medplum/prod/,gcp:p,azure:v");
        assert_eq!(
            n.sources(),
            [
                ConfigSource::File("base.json".into()),
                ConfigSource::Env,
                ConfigSource::Aws("/medplum/prod/".into()),
                ConfigSource::Gcp("p".into()),
                ConfigSource::Azure("v".into()),
            ]
        );
        // splitN(name, ':', 2): only the first colon separates the type.
        assert_eq!(
            name("file:C:/medplum.json").sources(),
            [ConfigSource::File("C:/medplum.json".into())]
        );
    }

    #[test]
    fn an_empty_config_name_is_refused() {
        // loader.test.ts "Multi-source: empty config name throws": 'Empty config name'.
        for text in ["", ",", ",,"] {
            let err = ConfigName::parse(text).unwrap_err();
            assert!(err.contains("Empty config name"), "{err}");
        }
    }

    #[test]
    fn segments_are_not_trimmed_and_unknown_types_are_refused() {
        // loadConfig does not trim: " env" has the type " env".
        let err = ConfigName::parse("file:a.json, env").unwrap_err();
        assert!(err.contains("Unrecognized config type:  env"), "{err}");
        assert!(err.contains("\"file:a.json,env\""), "{err}");
        assert!(!err.contains('\n'));
        // loader.test.ts "Unrecognized config", beside a known type.
        let err = ConfigName::parse("file:a.json,unrecognized").unwrap_err();
        assert!(
            err.contains("Unrecognized config type: unrecognized"),
            "{err}"
        );
        assert!(err.contains("file:PATH, env, aws:"), "{err}");
    }

    // --- the env source (loader.ts, loadEnvConfig; utils.ts key lists) ---

    #[test]
    fn env_config_types_values_by_key() {
        // loader.test.ts "Load env config".
        let config = env(&[
            ("MEDPLUM_BASE_URL", "http://localhost:3000/"),
            ("MEDPLUM_PORT", "3000"),
            ("MEDPLUM_DATABASE_PORT", "5432"),
            ("MEDPLUM_REDIS_TLS", "{}"),
            ("MEDPLUM_DATABASE_SSL", r#"{"require":true}"#),
            ("MEDPLUM_SMTP_HOST", "smtp.example.com"),
        ]);
        assert_eq!(
            config,
            json!({
                "baseUrl": "http://localhost:3000/",
                "port": 3000,
                "database": {"port": 5432, "ssl": {"require": true}},
                "redis": {"tls": {}},
                "smtp": {"host": "smtp.example.com"},
            })
        );
    }

    #[test]
    fn env_config_ignores_variables_without_the_medplum_prefix() {
        // loader.test.ts "Env config ignores non-MEDPLUM_ variables".
        let config = env(&[
            ("NOT_MEDPLUM_SOMETHING", "x"),
            ("BASE_URL", "http://wrong/"),
            ("MEDPLUM_BASE_URL", "http://right/"),
        ]);
        assert_eq!(config, json!({"baseUrl": "http://right/"}));
    }

    #[test]
    fn env_keys_are_camel_cased() {
        // loader.test.ts "Env config camelCase conversion".
        let config = env(&[
            ("MEDPLUM_LOG_LEVEL", "debug"),
            ("MEDPLUM_APP_BASE_URL", "http://app/"),
        ]);
        assert_eq!(
            config,
            json!({"logLevel": "debug", "appBaseUrl": "http://app/"})
        );
        assert_eq!(
            camel_case("DISABLE_RUN_POST_DEPLOY_MIGRATIONS"),
            "disableRunPostDeployMigrations"
        );
        // Only `_` before a letter is converted.
        assert_eq!(camel_case("SHARD_2_HOST"), "shard_2Host");
        assert_eq!(camel_case("A__B"), "a_B");
        assert_eq!(camel_case("TRAILING_"), "trailing_");
        // The docs' own example: no underscore, no capital, a key the server ignores.
        assert_eq!(camel_case("MAXCONNECTIONS"), "maxconnections");
    }

    #[test]
    fn env_booleans_are_true_only_for_exactly_true() {
        // loader.test.ts "Env config boolean values" and "database boolean keys".
        let config = env(&[
            ("MEDPLUM_REGISTER_ENABLED", "true"),
            ("MEDPLUM_LOG_REQUESTS", "false"),
            ("MEDPLUM_BOT_CUSTOM_FUNCTIONS_ENABLED", "true"),
            ("MEDPLUM_DATABASE_RUN_MIGRATIONS", "true"),
            ("MEDPLUM_DATABASE_DISABLE_CONNECTION_CONFIGURATION", "false"),
        ]);
        assert_eq!(config["registerEnabled"], json!(true));
        assert_eq!(config["logRequests"], json!(false));
        assert_eq!(config["botCustomFunctionsEnabled"], json!(true));
        assert_eq!(config["database"]["runMigrations"], json!(true));
        assert_eq!(
            config["database"]["disableConnectionConfiguration"],
            json!(false)
        );
        // `value === 'true'`: every other spelling is false.
        for value in ["TRUE", "True", "1", "yes", " true", ""] {
            let config = env(&[("MEDPLUM_DATABASE_DISABLE_RUN_POST_DEPLOY_MIGRATIONS", value)]);
            assert_eq!(
                config["database"]["disableRunPostDeployMigrations"],
                json!(false),
                "{value:?}"
            );
        }
        let config = env(&[(
            "MEDPLUM_DATABASE_DISABLE_RUN_POST_DEPLOY_MIGRATIONS",
            "true",
        )]);
        assert_eq!(
            config["database"]["disableRunPostDeployMigrations"],
            json!(true)
        );
    }

    #[test]
    fn the_documented_variable_stays_a_string() {
        // disablePostDeployMigrations is in no key list of utils.ts.
        let config = env(&[
            ("MEDPLUM_DISABLE_POST_DEPLOY_MIGRATIONS", "true"),
            ("MEDPLUM_ENABLE_STRICT_MIGRATION_VERSION_CHECKS", "false"),
        ]);
        assert_eq!(
            config,
            json!({
                "disablePostDeployMigrations": "true",
                "enableStrictMigrationVersionChecks": "false",
            })
        );
    }

    #[test]
    fn env_integers_follow_parse_int() {
        // loader.test.ts "Env config integer values" and "database integer keys".
        let config = env(&[
            ("MEDPLUM_PORT", "9000"),
            ("MEDPLUM_ACCURATE_COUNT_THRESHOLD", "500000"),
            ("MEDPLUM_SHUTDOWN_TIMEOUT_MILLISECONDS", "60000"),
            ("MEDPLUM_DEFAULT_RATE_LIMIT", "100"),
            ("MEDPLUM_BCRYPT_HASH_SALT", "12"),
            ("MEDPLUM_DATABASE_PORT", "5433"),
            ("MEDPLUM_DATABASE_MAX_CONNECTIONS", "50"),
        ]);
        assert_eq!(config["port"], json!(9000));
        assert_eq!(config["accurateCountThreshold"], json!(500_000));
        assert_eq!(config["shutdownTimeoutMilliseconds"], json!(60_000));
        assert_eq!(config["defaultRateLimit"], json!(100));
        assert_eq!(config["bcryptHashSalt"], json!(12));
        assert_eq!(config["database"]["port"], json!(5433));
        assert_eq!(config["database"]["maxConnections"], json!(50));
        // parseInt: leading white space, a sign, the leading digits only.
        let int = |text: &str| parse_int(text).map(|n| n.to_string());
        assert_eq!(int("  5432abc"), Some("5432".into()));
        assert_eq!(int("\u{FEFF}\t-12.9"), Some("-12".into()));
        assert_eq!(int("+7"), Some("7".into()));
        assert_eq!(int("-0"), Some("0".into()));
        assert_eq!(int("1e3"), Some("1".into()));
        assert_eq!(int("0x10"), Some("0".into()));
        assert_eq!(int("99999999999999999999"), Some("1e+20".into()));
        for nan in ["", "abc", "-", " ", "\u{85}1", "٣"] {
            assert_eq!(int(nan), None, "{nan:?}");
        }
    }

    #[test]
    fn an_integer_that_parses_to_nan_is_recorded_as_null_with_a_note() {
        let (config, notes) = env_config(&vars(&[
            ("MEDPLUM_DATABASE_PORT", "five"),
            ("MEDPLUM_PORT", ""),
        ]))
        .unwrap();
        assert_eq!(config["database"]["port"], Value::Null);
        assert_eq!(config["port"], Value::Null);
        assert_eq!(notes.len(), 2);
        assert!(notes[0].contains("MEDPLUM_DATABASE_PORT"), "{notes:?}");
        assert!(notes[0].contains("NaN"), "{notes:?}");
    }

    #[test]
    fn env_objects_are_json_and_invalid_json_is_an_error() {
        // loader.test.ts "externalAuthProviders as JSON array", "Env config object values",
        // "workers prefix", "workers bullmq prefix".
        let config = env(&[
            (
                "MEDPLUM_EXTERNAL_AUTH_PROVIDERS",
                r#"[{"issuer":"https://idp","userInfoUrl":"https://idp/userinfo"}]"#,
            ),
            (
                "MEDPLUM_DEFAULT_PROJECT_SYSTEM_SETTING",
                r#"[{"name":"foo","value":"bar"}]"#,
            ),
            ("MEDPLUM_WORKERS_ENABLED", r#"["subscription","cron"]"#),
            (
                "MEDPLUM_WORKERS_BULLMQ",
                r#"{"subscription":{"concurrency":50}}"#,
            ),
        ]);
        assert_eq!(config["externalAuthProviders"][0]["issuer"], "https://idp");
        assert_eq!(config["defaultProjectSystemSetting"][0]["name"], "foo");
        assert_eq!(
            config["workers"],
            json!({"enabled": ["subscription", "cron"],
                   "bullmq": {"subscription": {"concurrency": 50}}})
        );
        let err = env_config(&vars(&[("MEDPLUM_DATABASE_SSL", "{require: true}")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MEDPLUM_DATABASE_SSL is not valid JSON"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn every_section_prefix_and_the_order_they_are_tried_in() {
        // loader.test.ts: the cacheRedis, rateLimitRedis, pubSubRedis, backgroundJobsRedis,
        // bullmq, fission, redis and smtp prefix tests, and "redis prefix does not capture
        // cacheRedis".
        let config = env(&[
            ("MEDPLUM_CACHE_REDIS_HOST", "cache"),
            ("MEDPLUM_CACHE_REDIS_PORT", "6380"),
            ("MEDPLUM_CACHE_REDIS_DB", "2"),
            ("MEDPLUM_CACHE_REDIS_PASSWORD", "pw"),
            ("MEDPLUM_RATE_LIMIT_REDIS_HOST", "rate"),
            ("MEDPLUM_RATE_LIMIT_REDIS_PORT", "6381"),
            ("MEDPLUM_PUBSUB_REDIS_HOST", "pubsub"),
            ("MEDPLUM_PUBSUB_REDIS_PORT", "6382"),
            ("MEDPLUM_BACKGROUND_JOBS_REDIS_HOST", "jobs"),
            ("MEDPLUM_BACKGROUND_JOBS_REDIS_PORT", "6383"),
            ("MEDPLUM_BACKGROUND_JOBS_REDIS_DB", "3"),
            ("MEDPLUM_REDIS_HOST", "redis"),
            ("MEDPLUM_REDIS_PORT", "6379"),
            ("MEDPLUM_REDIS_PASSWORD", "rpw"),
            ("MEDPLUM_REDIS_DB", "5"),
            ("MEDPLUM_SMTP_HOST", "smtp"),
            ("MEDPLUM_SMTP_PORT", "587"),
            ("MEDPLUM_SMTP_USERNAME", "u"),
            ("MEDPLUM_BULLMQ_CONCURRENCY", "10"),
            ("MEDPLUM_FISSION_NAMESPACE", "ns"),
            ("MEDPLUM_FISSION_ROUTER_HOST", "router"),
            ("MEDPLUM_FISSION_ROUTER_PORT", "8888"),
        ]);
        assert_eq!(
            config,
            json!({
                "cacheRedis": {"host": "cache", "port": 6380, "db": 2, "password": "pw"},
                "rateLimitRedis": {"host": "rate", "port": 6381},
                "pubSubRedis": {"host": "pubsub", "port": 6382},
                "backgroundJobsRedis": {"host": "jobs", "port": 6383, "db": 3},
                "redis": {"host": "redis", "port": 6379, "password": "rpw", "db": 5},
                "smtp": {"host": "smtp", "port": 587, "username": "u"},
                "bullmq": {"concurrency": 10},
                "fission": {"namespace": "ns", "routerHost": "router", "routerPort": 8888},
            })
        );
    }

    #[test]
    fn prefixes_the_newest_stored_loader_lacks_stay_top_level_strings() {
        // loader.test.ts @05c6fd41 expects READONLY_DATABASE_, DATABASE_SSL_ and
        // DATA_WAREHOUSE_ mappings that no stored loader.ts implements; medmig follows the
        // loader source.
        let config = env(&[
            ("MEDPLUM_READONLY_DATABASE_HOST", "replica"),
            ("MEDPLUM_READONLY_DATABASE_PORT", "5432"),
            ("MEDPLUM_DATABASE_SSL_REQUIRE", "true"),
            ("MEDPLUM_DATA_WAREHOUSE_ENABLED", "true"),
        ]);
        assert_eq!(
            config,
            json!({
                "readonlyDatabaseHost": "replica",
                "readonlyDatabasePort": "5432",
                "database": {"sslRequire": "true"},
                "dataWarehouseEnabled": "true",
            })
        );
    }

    #[test]
    fn a_section_set_to_a_string_first_is_an_error() {
        let err = env_config(&vars(&[
            ("MEDPLUM_DATABASE", "x"),
            ("MEDPLUM_DATABASE_HOST", "db"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("MEDPLUM_DATABASE_HOST cannot be read"),
            "{err}"
        );
        // The other way round, the later string replaces the section.
        let config = env(&[("MEDPLUM_DATABASE_HOST", "db"), ("MEDPLUM_DATABASE", "x")]);
        assert_eq!(config, json!({"database": "x"}));
    }

    // --- loading and merging (loader.ts, loadConfig / deepMerge / loadFileConfig) ---

    #[test]
    fn deep_merge_recurses_into_objects_and_replaces_the_rest() {
        let merged = deep_merge(
            json!({"database": {"host": "a", "port": 1, "ssl": {"ca": "x"}}, "list": [1, 2], "n": 1}),
            json!({"database": {"port": 2, "ssl": {"require": true}}, "list": [3], "n": null}),
        );
        assert_eq!(
            merged,
            json!({"database": {"host": "a", "port": 2, "ssl": {"ca": "x", "require": true}},
                   "list": [3], "n": null})
        );
        // An object over a scalar (and a scalar over an object) replaces it whole.
        assert_eq!(
            deep_merge(json!({"a": 1}), json!({"a": {"b": 1}})),
            json!({"a": {"b": 1}})
        );
        assert_eq!(
            deep_merge(json!({"a": {"b": 1}}), json!({"a": "s"})),
            json!({"a": "s"})
        );
    }

    // --- evaluation (migration-utils.ts, maybeAutoRunPendingPostDeployMigration) ---

    #[test]
    fn disable_run_post_deploy_migrations_is_javascript_truthy() {
        for (value, defers) in [
            (json!(true), true),
            (json!(false), false),
            // Today's code had these backwards: "false" is a non-empty string.
            (json!("false"), true),
            (json!("0"), true),
            (json!("true"), true),
            (json!(""), false),
            (json!(0), false),
            (json!(1), true),
            (json!(-0.5), true),
            (json!(null), false),
            (json!({}), true),
            (json!([]), true),
        ] {
            let s = settings(json!({"database": {"disableRunPostDeployMigrations": value}}));
            assert_eq!(s.defers(), defers, "{value}");
            assert!(!s.run_migrations_off());
        }
        let s = settings(json!({"database": {"disableRunPostDeployMigrations": "false"}}));
        assert_eq!(
            s.notes(),
            [
                "database.disableRunPostDeployMigrations is the string \"false\", which the \
              server treats as true: post-deploy migrations are deferred"
            ]
        );
    }

    #[test]
    fn run_migrations_defers_only_when_exactly_false() {
        let s = settings(json!({"database": {"runMigrations": false}}));
        assert!(s.defers());
        assert!(s.run_migrations_off());
        for value in [
            json!("false"),
            json!(0),
            json!(null),
            json!(""),
            json!(true),
        ] {
            let s = settings(json!({"database": {"runMigrations": value}}));
            assert!(!s.defers(), "{value}");
            assert!(!s.run_migrations_off(), "{value}");
        }
        let s = settings(json!({"database": {"runMigrations": "false"}}));
        assert_eq!(
            s.notes(),
            [
                "database.runMigrations is the string \"false\", which is not === false: \
              migrations run"
            ]
        );
    }

    #[test]
    fn the_documented_key_alone_defers_nothing() {
        let s = settings(json!({"disablePostDeployMigrations": true, "database": {}}));
        assert!(!s.defers());
        assert!(s.relies_on_documented_key());
        assert!(s.notes()[0].contains("no server code reads it"));
        let s = settings(json!({"disablePostDeployMigrations": "true",
                                "database": {"disableRunPostDeployMigrations": true}}));
        assert!(s.defers());
        assert!(!s.relies_on_documented_key());
        assert!(!settings(json!({})).defers());
        assert!(!settings(json!({})).relies_on_documented_key());
    }

    #[test]
    fn evidence_names_each_value_and_its_source() {
        let s = settings(json!({"database": {"runMigrations": false}}));
        let evidence = s.evidence();
        assert_eq!(
            evidence[0],
            "database.disableRunPostDeployMigrations: not set"
        );
        assert_eq!(
            evidence[1],
            "database.runMigrations: false (from file:x.json)"
        );
        assert_eq!(evidence.last().unwrap(), "config sources read: file:x.json");
    }

    #[test]
    fn a_later_non_object_parent_removes_the_origin() {
        let config = MedplumConfig::from_layers(
            name("file:a.json,file:b.json"),
            vec![
                (
                    ConfigSource::File("a.json".into()),
                    json!({"database": {"runMigrations": false}}),
                ),
                (
                    ConfigSource::File("b.json".into()),
                    json!({"database": "none"}),
                ),
            ],
            Vec::new(),
            Vec::new(),
        );
        assert_eq!(config.get(&["database", "runMigrations"]), None);
        assert_eq!(config.origin(&["database", "runMigrations"]), None);
        assert!(config.database().is_err());
    }

    #[test]
    fn a_database_value_of_the_wrong_type_is_named_without_its_value() {
        let config = MedplumConfig::from_layers(
            name("file:a.json"),
            vec![(
                ConfigSource::File("a.json".into()),
                json!({"database": {"password": 987654321}}),
            )],
            Vec::new(),
            Vec::new(),
        );
        let err = config.database().unwrap_err().to_string();
        assert!(err.contains("database.password"), "{err}");
        assert!(
            err.contains("a number") && !err.contains("987654321"),
            "{err}"
        );
    }
}
