//! Connection settings and the live session.
//!
//! This module owns turning [`ConnectOptions`] plus the environment into one validated
//! [`ConnectionSettings`] (which source wins, TLS mode, trusted roots, timeouts), opening the
//! connection, the client's own deadline on the session's answers ([`Watch`]), and translating
//! connection and query failures into one-line messages that say what to do. It never logs or
//! returns a password. It does not run queries of its own beyond the session settings: what is
//! read lives in `collect.rs`.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls::RootCertStore;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::medplum::config::ConfigName;
use crate::snapshot::{ConnectionSource, SslMode};
use crate::text::flag_duration;

/// Reads one environment variable, ignoring variables that are set but empty (as libpq
/// does).
type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The connection flags as plain values, before the environment is consulted (`commands/`
/// fills it from `--database-url` … `--lock-timeout`). No `Debug`: the URL may carry a
/// password.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// `--database-url`: a URL or `key=value` string, first of all sources.
    pub database_url: Option<String>,
    /// `--medplum-config`: the server config whose `database` section is a source.
    pub medplum_config: Option<ConfigName>,
    /// `--sslmode`, over the source's TLS mode.
    pub ssl_mode: Option<SslMode>,
    /// `--ssl-root-cert`, over the source's roots and PGSSLROOTCERT.
    pub ssl_root_cert: Option<PathBuf>,
    /// `--connect-timeout`, over the URL's `connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// `--statement-timeout`; zero for none.
    pub statement_timeout: Duration,
    /// `--lock-timeout`; zero for none but the statement's.
    pub lock_timeout: Duration,
}

/// Certificate authorities to trust with `verify-full`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file on disk.
    File(PathBuf),
    /// PEM text, as Medplum's config carries it in `database.ssl.ca`.
    Pem(String),
}

/// Everything needed to open the read-only session, validated once.
#[derive(Clone)]
pub struct ConnectionSettings {
    config: Config,
    /// The TLS mode in force.
    pub ssl_mode: SslMode,
    /// Trusted roots for `verify-full`; the system's when `None`.
    pub root_cert: Option<RootCert>,
    /// Which source won.
    pub source: ConnectionSource,
    /// Lower-precedence sources that were also present and are ignored (for a warning).
    pub ignored_sources: Vec<ConnectionSource>,
    /// What the user should know about the settings (for stderr), e.g. Medplum config sources
    /// medmig could not read.
    pub warnings: Vec<String>,
    /// Limit on connecting, TLS and authentication together; zero for none.
    pub connect_timeout: Duration,
    /// Where the connect timeout came from, for messages: `--connect-timeout`, or the
    /// `connect_timeout` of the URL.
    pub connect_timeout_from: &'static str,
    /// Per-statement limit in the session; zero for none.
    pub statement_timeout: Duration,
    /// Limit on waiting for any lock in the session; zero for none but the statement's.
    pub lock_timeout: Duration,
}

/// The connect timeout when neither `--connect-timeout` nor the URL gives one.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the session goes, without secrets: fit for output, errors and files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "database \"{}\" on {}:{} as user \"{}\"",
            self.database, self.host, self.port, self.user
        )
    }
}

impl fmt::Debug for ConnectionSettings {
    // Hand-written so that a stray `{:?}` can never print the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("target", &self.target())
            .field("ssl_mode", &self.ssl_mode)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ConnectionSettings {
    /// Resolves the settings from the arguments and the environment (injected as (name,
    /// value) pairs so that resolution can be tested without touching the process
    /// environment); first source wins.
    pub fn resolve(args: &ConnectOptions, vars: &[(String, String)]) -> Result<ConnectionSettings> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(key, value)| key == name && !value.is_empty())
                .map(|(_, value)| value.clone())
        };
        let env: EnvLookup<'_> = &lookup;
        let present = present_sources(args, env);
        let Some(source) = present.first().cloned() else {
            bail!(
                "no database given: pass --database-url URL (or set DATABASE_URL), \
                 --medplum-config FILE, MEDPLUM_DATABASE_HOST, or PGHOST; \
                 or read a snapshot with --snapshot FILE"
            );
        };
        let mut warnings = Vec::new();
        let (mut config, source_tls) = match source {
            ConnectionSource::DatabaseUrlFlag => {
                let url = args.database_url.as_deref().unwrap_or_default();
                if url.trim().is_empty() {
                    bail!(
                        "--database-url is empty: give a PostgreSQL URL such as \
                         postgres://medmig@db.internal:5432/medplum, or leave the flag out to \
                         connect with DATABASE_URL, --medplum-config or the PG* variables"
                    );
                }
                from_url(url).context("--database-url is not a valid PostgreSQL URL")?
            }
            ConnectionSource::DatabaseUrlEnv => from_url(&env("DATABASE_URL").unwrap_or_default())
                .context("DATABASE_URL is not a valid PostgreSQL URL")?,
            ConnectionSource::MedplumConfig => match &args.medplum_config {
                Some(name) => from_medplum_config(name, vars, &mut warnings)?,
                None => bail!("--medplum-config is missing"),
            },
            ConnectionSource::MedplumEnv => from_medplum_env(env)?,
            ConnectionSource::Libpq => from_libpq_env(env)?,
        };
        fill_libpq_defaults(&mut config, env);

        let ssl_mode = args.ssl_mode.or(source_tls.mode).unwrap_or(SslMode::Prefer);
        let root_cert = args
            .ssl_root_cert
            .clone()
            .map(RootCert::File)
            .or(source_tls.root_cert)
            .or_else(|| env("PGSSLROOTCERT").map(|path| RootCert::File(path.into())));
        // The flag, when given, over the URL's connect_timeout, over medmig's default.
        let (connect_timeout, connect_timeout_from) =
            match (args.connect_timeout, source_tls.connect_timeout) {
                (Some(flag), _) => (flag, "--connect-timeout"),
                (None, Some(url)) => (url, "connect_timeout in the URL"),
                (None, None) => (DEFAULT_CONNECT_TIMEOUT, "--connect-timeout"),
            };
        Ok(ConnectionSettings {
            config,
            ssl_mode,
            root_cert,
            source,
            ignored_sources: present[1..].to_vec(),
            warnings,
            connect_timeout,
            connect_timeout_from,
            statement_timeout: args.statement_timeout,
            lock_timeout: args.lock_timeout,
        })
    }

    /// The settings of every shard of the Medplum config these settings came from (none when
    /// they came from another source, or the config has no `shards`): each shard's own
    /// `database` section (host, port, dbname, username, password, ssl), completed as the
    /// global one is, under the same flags and limits. A shard whose section cannot be used
    /// (a port that is not one) is that shard's error, not the whole config's; a config
    /// whose `shards` are malformed is an error.
    pub fn shards(
        &self,
        args: &ConnectOptions,
        vars: &[(String, String)],
    ) -> Result<Vec<(String, Result<ConnectionSettings>)>> {
        let (ConnectionSource::MedplumConfig, Some(name)) = (&self.source, &args.medplum_config)
        else {
            return Ok(Vec::new());
        };
        let lookup = |name: &str| {
            vars.iter()
                .find(|(key, value)| key == name && !value.is_empty())
                .map(|(_, value)| value.clone())
        };
        let env: EnvLookup<'_> = &lookup;
        let loaded = crate::sources::config::load(name, vars)?;
        let mut shards = Vec::new();
        for (id, section) in loaded.shards()? {
            let settings = section_config(&loaded, &["shards", &id, "database"], section).map(
                |(mut config, tls)| {
                    fill_libpq_defaults(&mut config, env);
                    ConnectionSettings {
                        config,
                        ssl_mode: args.ssl_mode.or(tls.mode).unwrap_or(SslMode::Prefer),
                        root_cert: args
                            .ssl_root_cert
                            .clone()
                            .map(RootCert::File)
                            .or(tls.root_cert)
                            .or_else(|| {
                                env("PGSSLROOTCERT").map(|path| RootCert::File(path.into()))
                            }),
                        source: self.source.clone(),
                        ignored_sources: Vec::new(),
                        warnings: Vec::new(),
                        connect_timeout: self.connect_timeout,
                        connect_timeout_from: self.connect_timeout_from,
                        statement_timeout: self.statement_timeout,
                        lock_timeout: self.lock_timeout,
                    }
                },
            );
            shards.push((id, settings));
        }
        Ok(shards)
    }

    /// Why a table could not be read, when that is to be noted rather than stopped for (a
    /// lock, a cancelled statement); `None` for any other failure.
    pub fn not_read_because(&self, err: &tokio_postgres::Error) -> Option<String> {
        not_read_because(err, self.statement_timeout, self.lock_timeout)
    }

    /// Where the session goes, for output and messages.
    pub fn target(&self) -> Target {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            #[cfg(unix)]
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_string(),
        };
        Target {
            host,
            port: self.config.get_ports().first().copied().unwrap_or(5432),
            database: self
                .config
                .get_dbname()
                .or(self.config.get_user())
                .unwrap_or_default()
                .to_string(),
            user: self.config.get_user().unwrap_or_default().to_string(),
        }
    }

    /// Opens the session: TLS as configured, `application_name = 'medmig'`, the whole
    /// handshake bounded by the connect timeout. The connection task runs in the background;
    /// its error, if it dies, is folded into the failure of the query that noticed.
    pub async fn connect(&self) -> Result<Session> {
        let target = self.target();
        let mut config = self.config.clone();
        config
            .application_name("medmig")
            .ssl_mode(match self.ssl_mode {
                SslMode::Disable => PgSslMode::Disable,
                SslMode::Prefer => PgSslMode::Prefer,
                SslMode::Require | SslMode::VerifyFull => PgSslMode::Require,
            });
        if !self.connect_timeout.is_zero() {
            config.connect_timeout(self.connect_timeout);
        }
        let tls = self.tls_connector()?;
        let connecting = within(self.connect_timeout, config.connect(tls));
        let (client, connection) = match connecting.await {
            Some(Ok(pair)) => pair,
            Some(Err(err)) => return Err(explain_connect_error(&err, &target, self)),
            None => bail!(
                "cannot connect to {target}: no answer within {} ({}); check the host and \
                 port, and that a firewall lets you through",
                flag_duration(self.connect_timeout),
                self.connect_timeout_from
            ),
        };
        // The server says its version in the handshake: one older than medmig reads is refused
        // before any query that would fail on it obscurely.
        if let Some(version) = connection.parameter("server_version") {
            check_server_version(version, &target)?;
        }
        let connection = tokio::spawn(connection);
        Ok(Session {
            client,
            connection,
            target,
            statement_timeout: self.statement_timeout,
            lock_timeout: self.lock_timeout,
        })
    }

    fn tls_connector(&self) -> Result<MakeRustlsConnect> {
        // libpq's prefer and require encrypt without checking who answers.
        let roots = match self.ssl_mode {
            SslMode::VerifyFull => Some(self.trusted_roots()?),
            _ => None,
        };
        Ok(MakeRustlsConnect::new(crate::sources::tls::client_config(
            roots,
        )?))
    }

    fn trusted_roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            Some(RootCert::File(path)) => {
                let shown = path.display();
                let pem = read_root_cert_file(path)?;
                crate::sources::tls::add_pem_roots(&mut roots, &pem).map_err(|why| {
                    anyhow!(
                        "the root certificate file {shown} {why}: give a PEM file of the \
                         certificate authorities to trust (-----BEGIN CERTIFICATE-----; for RDS, \
                         its CA bundle)"
                    )
                })?;
            }
            Some(RootCert::Pem(text)) => {
                crate::sources::tls::add_pem_roots(&mut roots, text.as_bytes()).map_err(|why| {
                    anyhow!(
                        "the database.ssl.ca certificate in the Medplum config {why}: give the \
                         certificate authority as PEM text"
                    )
                })?;
            }
            None => {
                roots = crate::sources::tls::native_roots();
            }
        }
        if roots.is_empty() {
            bail!(
                "sslmode verify-full needs trusted root certificates and none were found: \
                 pass --ssl-root-cert FILE (for RDS, its CA bundle)"
            );
        }
        Ok(roots)
    }
}

/// The bytes of a root certificate file, up to [`crate::limits::ROOT_CERT_FILE_MAX_BYTES`].
fn read_root_cert_file(path: &std::path::Path) -> Result<Vec<u8>> {
    use crate::limits;
    limits::read_file(
        path,
        limits::ROOT_CERT_FILE_MAX_BYTES,
        "a root certificate file",
    )
    .with_context(|| {
        format!(
            "cannot read the root certificate file {}: give a readable PEM file of the \
                 certificate authorities to trust",
            path.display()
        )
    })
}

/// Every source that is present, in precedence order.
fn present_sources(args: &ConnectOptions, env: EnvLookup<'_>) -> Vec<ConnectionSource> {
    let mut present = Vec::new();
    if args.database_url.is_some() {
        present.push(ConnectionSource::DatabaseUrlFlag);
    }
    if env("DATABASE_URL").is_some() {
        present.push(ConnectionSource::DatabaseUrlEnv);
    }
    if args.medplum_config.is_some() {
        present.push(ConnectionSource::MedplumConfig);
    }
    if env("MEDPLUM_DATABASE_HOST").is_some() {
        present.push(ConnectionSource::MedplumEnv);
    }
    if ["PGHOST", "PGPORT", "PGDATABASE", "PGUSER"]
        .iter()
        .any(|name| env(name).is_some())
    {
        present.push(ConnectionSource::Libpq);
    }
    present
}

/// Parses the spelling of an SSL mode used in URLs, PGSSLMODE and libpq (`verify-ca` is
/// refused: medmig always checks the host name when it checks the chain).
fn ssl_mode_from_libpq(value: &str) -> Option<SslMode> {
    match value {
        "disable" => Some(SslMode::Disable),
        "allow" | "prefer" => Some(SslMode::Prefer),
        "require" => Some(SslMode::Require),
        "verify-full" => Some(SslMode::VerifyFull),
        _ => None,
    }
}

/// TLS wishes a source expressed, before the `--sslmode` / `--ssl-root-cert` flags override;
/// and a URL's `connect_timeout`, before `--connect-timeout` overrides it.
#[derive(Default)]
struct SourceTls {
    mode: Option<SslMode>,
    root_cert: Option<RootCert>,
    connect_timeout: Option<Duration>,
}

/// A URL's `connect_timeout` as libpq reads it: whole seconds, 0 or less for no limit, 1 taken
/// as 2 (libpq's minimum).
fn url_connect_timeout(value: &str) -> Result<Duration> {
    let seconds: i64 = value.trim().parse().map_err(|_| {
        anyhow!("connect_timeout '{value}' is not a whole number of seconds (0 for no limit)")
    })?;
    Ok(Duration::from_secs(match seconds {
        i64::MIN..=0 => 0,
        1 => 2,
        n => n.unsigned_abs(),
    }))
}

/// Parses a `postgres://` URL or a `key=value` string. `sslmode`, `sslrootcert` and
/// `connect_timeout` are taken out first: the driver knows neither `verify-full` nor root
/// files, and reads `connect_timeout` otherwise than libpq (0 is no limit).
fn from_url(url: &str) -> Result<(Config, SourceTls)> {
    let mut tls = SourceTls::default();
    let mut take = |key: &str, value: &str| -> Result<bool> {
        match key {
            "sslmode" => {
                tls.mode = Some(ssl_mode_from_libpq(value).ok_or_else(|| {
                    anyhow!("sslmode '{value}' is not one of disable, prefer, require, verify-full")
                })?);
                Ok(true)
            }
            "sslrootcert" => {
                tls.root_cert = Some(RootCert::File(value.into()));
                Ok(true)
            }
            "connect_timeout" => {
                tls.connect_timeout = Some(url_connect_timeout(value)?);
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let cleaned = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|pair| !pair.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, value)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_string(),
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            if !take(key.trim(), value.trim_matches('\''))? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    // The driver's own message never repeats the URL, so it cannot leak the password.
    let config: Config = cleaned.parse().map_err(|err| anyhow!("{err}"))?;
    Ok((config, tls))
}

/// The merged `database` section of the Medplum config `name` (every source medmig can read,
/// `env` with `vars`), so that `file:base.json,env` connects with the environment's
/// overrides. Sources medmig cannot read are named in `warnings`.
fn from_medplum_config(
    name: &ConfigName,
    vars: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Result<(Config, SourceTls)> {
    let loaded = crate::sources::config::load(name, vars)?;
    let not_read: Vec<String> = loaded
        .sources_not_read()
        .iter()
        .map(ToString::to_string)
        .collect();
    let Some(database) = loaded.database()? else {
        if not_read.is_empty() {
            bail!(
                "the Medplum config {name} has no \"database\" section: pass the server's \
                 medplum.config.json"
            );
        }
        bail!(
            "the Medplum config {name} has no \"database\" section in the sources medmig can \
             read, and medmig cannot read {}: pass the database with --database-url, or the \
             resolved settings with --medplum-config file:resolved.json",
            not_read.join(", ")
        );
    };
    if !not_read.is_empty() {
        warnings.push(format!(
            "--medplum-config: medmig cannot read {} and connects with the \"database\" \
             section of the sources it read, which a later source may override; if the \
             connection is wrong, pass --database-url or the resolved settings as a file:",
            not_read.join(", ")
        ));
    }
    section_config(&loaded, &["database"], database)
}

/// The connection settings of one `database` section of the Medplum config `loaded` (the
/// top-level one, or a shard's at `path`).
fn section_config(
    loaded: &crate::medplum::config::MedplumConfig,
    path: &[&str],
    database: crate::medplum::config::DatabaseSection,
) -> Result<(Config, SourceTls)> {
    let name = loaded.name();
    let mut config = Config::new();
    config.host(database.host.as_deref().unwrap_or("localhost"));
    if let Some(port) = &database.port {
        let port_path: Vec<&str> = path.iter().copied().chain(["port"]).collect();
        let origin = loaded
            .origin(&port_path)
            .map(|source| format!(" (from {source})"))
            .unwrap_or_default();
        let shown = crate::text::escape_controls(&port_path.join(".")).into_owned();
        config.port(parse_port(port).ok_or_else(|| {
            anyhow!(
                "{shown}{origin} of the Medplum config {name} is not a port number: found {port}"
            )
        })?);
    }
    if let Some(dbname) = &database.dbname {
        config.dbname(dbname);
    }
    if let Some(user) = &database.username {
        config.user(user);
    }
    if let Some(password) = &database.password {
        config.password(password);
    }
    // node-postgres: an ssl object means TLS, checked unless rejectUnauthorized is false.
    let tls = match database.ssl {
        Some(ssl) if ssl.require != Some(false) || ssl.reject_unauthorized.is_some() => SourceTls {
            mode: Some(if ssl.reject_unauthorized == Some(false) {
                SslMode::Require
            } else {
                SslMode::VerifyFull
            }),
            root_cert: ssl.ca.map(RootCert::Pem),
            ..SourceTls::default()
        },
        _ => SourceTls::default(),
    };
    Ok((config, tls))
}

fn parse_port(value: &serde_json::Value) -> Option<u16> {
    match value {
        serde_json::Value::Number(number) => number.as_u64().and_then(|n| u16::try_from(n).ok()),
        serde_json::Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn from_medplum_env(env: EnvLookup<'_>) -> Result<(Config, SourceTls)> {
    let mut config = Config::new();
    config.host(env("MEDPLUM_DATABASE_HOST").unwrap_or_default());
    if let Some(port) = env("MEDPLUM_DATABASE_PORT") {
        config.port(
            port.trim().parse().map_err(|_| {
                anyhow!("MEDPLUM_DATABASE_PORT is not a port number: found '{port}'")
            })?,
        );
    }
    if let Some(dbname) = env("MEDPLUM_DATABASE_DBNAME") {
        config.dbname(&dbname);
    }
    if let Some(user) = env("MEDPLUM_DATABASE_USERNAME") {
        config.user(&user);
    }
    if let Some(password) = env("MEDPLUM_DATABASE_PASSWORD") {
        config.password(password);
    }
    Ok((config, SourceTls::default()))
}

fn from_libpq_env(env: EnvLookup<'_>) -> Result<(Config, SourceTls)> {
    let mut config = Config::new();
    if let Some(host) = env("PGHOST") {
        for host in host.split(',') {
            config.host(host.trim());
        }
    }
    if let Some(port) = env("PGPORT") {
        config.port(
            port.trim()
                .parse()
                .map_err(|_| anyhow!("PGPORT is not a port number: found '{port}'"))?,
        );
    }
    if let Some(dbname) = env("PGDATABASE") {
        config.dbname(&dbname);
    }
    if let Some(user) = env("PGUSER") {
        config.user(&user);
    }
    let mode = match env("PGSSLMODE") {
        Some(mode) => Some(ssl_mode_from_libpq(&mode).ok_or_else(|| {
            anyhow!("PGSSLMODE '{mode}' is not one of disable, prefer, require, verify-full")
        })?),
        None => None,
    };
    Ok((
        config,
        SourceTls {
            mode,
            ..SourceTls::default()
        },
    ))
}

/// What libpq would fill in: host localhost, port 5432, user from PGUSER or the login name,
/// password from PGPASSWORD.
fn fill_libpq_defaults(config: &mut Config, env: EnvLookup<'_>) {
    if config.get_hosts().is_empty() {
        config.host(env("PGHOST").as_deref().unwrap_or("localhost"));
    }
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        config.user(&user);
    }
    if config.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD") {
            config.password(password);
        }
    }
}

/// The oldest PostgreSQL major medmig reads: the oldest Medplum supports (4.x: 13 to 17; 5.x:
/// 14 and later). Every catalog query says the oldest major it needs, none newer than this.
pub const OLDEST_POSTGRESQL: u32 = 13;

/// Refuses a server older than [`OLDEST_POSTGRESQL`], from the version it reports
/// (`server_version`: `12.22`, `9.6.24`, `18.4 (Debian 18.4-1)`, `19beta1`).
fn check_server_version(version: &str, target: &Target) -> Result<()> {
    let major: Option<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|major| major.parse().ok());
    match major {
        Some(major) if major < OLDEST_POSTGRESQL => bail!(
            "{target} runs PostgreSQL {}, older than medmig reads (PostgreSQL {OLDEST_POSTGRESQL} \
             and later, as Medplum requires): run medmig against a server of a supported version",
            crate::text::escape_controls(version)
        ),
        _ => Ok(()),
    }
}

/// How long beyond `--statement-timeout` medmig waits for an answer before it takes the server
/// or the network for stuck: time for the answer to travel, and for a busy server to send it.
pub const NETWORK_MARGIN: Duration = Duration::from_secs(5);

/// `idle_in_transaction_session_timeout` when statements have no limit.
const IDLE_WITHOUT_STATEMENT_LIMIT: Duration = Duration::from_secs(60);

/// `work` to its end, or `None` once `limit` has passed; zero is no limit.
async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    match limit.is_zero() {
        true => Some(work.await),
        false => tokio::time::timeout(limit, work).await.ok(),
    }
}

/// The client's own deadline on a session's answers, for a server that stops answering
/// without closing the connection (a stopped backend, a wedged proxy): PostgreSQL enforces
/// `statement_timeout` only on a server that runs.
///
/// Every answer must come within `--statement-timeout` plus [`NETWORK_MARGIN`] of the one
/// before it (or of the request, when nothing was outstanding): the server runs one statement
/// at a time, each within its `statement_timeout`, lock waits included. A pipelined flight of
/// statements must also end within their number times `--statement-timeout`, plus the
/// margin. With `--statement-timeout 0` a statement may run as long as it takes, and so the
/// client waits as long too. Single-threaded: the reads and the watch run in one task. On
/// tokio's clock, so that tests can let its time pass.
pub struct Watch {
    statement_timeout: Duration,
    /// When the last answer came, or the last request went to an idle server.
    last: Cell<Instant>,
    /// When the flight under way began, and how many statements it has.
    flight: Cell<Option<(Instant, usize)>>,
    /// What is being read, for the message.
    reading: Cell<&'static str>,
    /// Statements sent and rows received so far, for `wait`'s account of its load.
    statements: Cell<usize>,
    rows: Cell<usize>,
}

/// Which of [`Watch`]'s limits ran out, and while reading what.
#[derive(Debug)]
pub struct Expired {
    pub reading: &'static str,
    pub limit: Limit,
}

/// A limit of [`Watch`].
#[derive(Debug)]
pub enum Limit {
    /// No answer came for this long.
    Answer(Duration),
    /// A flight of `statements` took longer than `bound`.
    Flight { statements: usize, bound: Duration },
}

impl Watch {
    /// How long the server may take over one answer; `None` when statements have no limit.
    fn per_answer(&self) -> Option<Duration> {
        (!self.statement_timeout.is_zero())
            .then(|| self.statement_timeout.saturating_add(NETWORK_MARGIN))
    }

    /// How long a flight of `statements` may take.
    fn flight_bound(&self, statements: usize) -> Duration {
        self.statement_timeout
            .saturating_mul(u32::try_from(statements).unwrap_or(u32::MAX))
            .saturating_add(NETWORK_MARGIN)
    }

    /// A request goes to a server that has nothing else to do: its answer is due a round
    /// trip from now. `reading` names what it reads, for the message.
    pub fn request(&self, reading: &'static str) {
        self.reading.set(reading);
        self.last.set(Instant::now());
    }

    /// An answer came (the first of a statement's, or its end).
    pub fn answered(&self) {
        self.last.set(Instant::now());
    }

    /// `work`, one round trip (one statement) reading `reading`, under the watch.
    pub async fn round_trip<T>(&self, reading: &'static str, work: impl Future<Output = T>) -> T {
        self.statements.set(self.statements.get() + 1);
        self.request(reading);
        let out = work.await;
        self.answered();
        out
    }

    /// A flight of `statements` pipelined statements goes out now, reading `reading`.
    pub fn flight(&self, reading: &'static str, statements: usize) {
        self.statements.set(self.statements.get() + statements);
        self.request(reading);
        self.flight.set(Some((Instant::now(), statements)));
    }

    /// `statements` more went out together with the last round trip's.
    pub fn also_sent(&self, statements: usize) {
        self.statements.set(self.statements.get() + statements);
    }

    /// A row came.
    pub fn row(&self) {
        self.rows.set(self.rows.get() + 1);
    }

    /// The statements sent and the rows received so far.
    pub fn load(&self) -> (usize, usize) {
        (self.statements.get(), self.rows.get())
    }

    /// The flight is over: its bound no longer holds.
    pub fn landed(&self) {
        self.flight.set(None);
    }

    /// Runs `work` (everything the session reads) until it ends or a limit runs out.
    pub async fn guard<T>(&self, work: impl Future<Output = T>) -> Result<T, Expired> {
        let Some(per_answer) = self.per_answer() else {
            return Ok(work.await);
        };
        tokio::select! {
            biased;
            out = work => Ok(out),
            expired = self.expiry(per_answer) => Err(expired),
        }
    }

    /// Ends when a limit has run out (never, for limits too far off to be told from none).
    async fn expiry(&self, per_answer: Duration) -> Expired {
        let flight_end = |(start, statements): (Instant, usize)| {
            start.checked_add(self.flight_bound(statements))
        };
        loop {
            let answer_due = self.last.get().checked_add(per_answer);
            let flight_due = self.flight.get().and_then(flight_end);
            let Some(due) = answer_due.into_iter().chain(flight_due).min() else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(due).await;
            // An answer may have come, or the flight landed, while the watch slept.
            let (now, reading) = (Instant::now(), self.reading.get());
            if let Some((start, statements)) = self.flight.get() {
                if flight_end((start, statements)).is_some_and(|end| now >= end) {
                    let bound = self.flight_bound(statements);
                    return Expired {
                        reading,
                        limit: Limit::Flight { statements, bound },
                    };
                }
            }
            if self
                .last
                .get()
                .checked_add(per_answer)
                .is_some_and(|due| now >= due)
            {
                return Expired {
                    reading,
                    limit: Limit::Answer(per_answer),
                };
            }
        }
    }
}

/// An open session. Queries go through [`Session::client`]; failures go through
/// [`Session::explain`] so that a dead connection reports its real cause.
pub struct Session {
    pub client: Client,
    connection: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    /// Where the session goes.
    pub target: Target,
    statement_timeout: Duration,
    lock_timeout: Duration,
}

impl Session {
    /// The values of `statement_timeout`, `lock_timeout` and
    /// `idle_in_transaction_session_timeout` for the session, as PostgreSQL settings text. A
    /// zero limit is `0`, no limit, as PostgreSQL reads it.
    pub fn timeout_settings(&self) -> [String; 3] {
        let ms = |d: Duration| match d.is_zero() {
            true => "0".to_string(),
            false => format!("{}ms", d.as_millis().max(1)),
        };
        // Long enough for the client to read results, short enough not to linger; kept when
        // statements have no limit, since medmig itself never pauses in its transaction.
        let idle = match self.statement_timeout.is_zero() {
            true => IDLE_WITHOUT_STATEMENT_LIMIT,
            false => self.statement_timeout.saturating_mul(2),
        };
        [ms(self.statement_timeout), ms(self.lock_timeout), ms(idle)]
    }

    /// The client-side deadline on this session's answers (see [`Watch`]).
    pub fn watch(&self) -> Watch {
        Watch {
            statement_timeout: self.statement_timeout,
            last: Cell::new(Instant::now()),
            flight: Cell::new(None),
            reading: Cell::new("the start of a read-only transaction"),
            statements: Cell::new(0),
            rows: Cell::new(0),
        }
    }

    /// Ends the session cleanly: the client's Terminate message goes out and the connection
    /// closes before medmig goes on, so that the server sees a goodbye, not a reset. Bounded:
    /// a server that does not answer is not waited for.
    pub async fn close(self) {
        drop(self.client);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.connection).await;
    }

    /// Leaves a session whose server stopped answering without waiting for anything: the
    /// connection is dropped where it stands (the server, when it runs again, finds it
    /// closed and rolls the transaction back).
    pub fn abandon(self) {
        self.connection.abort();
    }

    /// The message for a [`Watch`] that ran out: which limit, and what to do.
    pub fn expired(&self, expired: Expired) -> anyhow::Error {
        let statement = flag_duration(self.statement_timeout);
        let margin = flag_duration(NETWORK_MARGIN);
        let gave_up = "medmig gave up on the session without waiting further";
        match expired.limit {
            Limit::Answer(limit) => anyhow!(
                "no answer from {} while reading {} for {} (--statement-timeout {statement} \
                 plus {margin} for the network, medmig's own deadline): the server or the \
                 network to it stopped answering, and {gave_up}; check the server (a stopped or \
                 overloaded backend, a wedged proxy or pooler) and the network, then run \
                 medmig again, or raise --statement-timeout if the server is only slow",
                self.target,
                expired.reading,
                flag_duration(limit)
            ),
            Limit::Flight { statements, bound } => anyhow!(
                "the answers from {} to {statements} pipelined statements took longer than {} \
                 in all ({statements} times --statement-timeout {statement}, plus {margin} for \
                 the network, medmig's own deadline; it was reading {}), and {gave_up}: the \
                 server or the network is too slow; check them, then run medmig again, or \
                 raise --statement-timeout",
                self.target,
                flag_duration(bound),
                expired.reading
            ),
        }
    }

    /// Turns a failed query into a one-line message that names what was being read
    /// (`reading`) and what to do.
    pub async fn explain(&self, err: tokio_postgres::Error, reading: &str) -> anyhow::Error {
        if err.is_closed() {
            self.connection.abort();
            return anyhow!(
                "the connection to {} was lost while reading {reading}: run medmig again",
                self.target
            );
        }
        let Some(db) = err.as_db_error() else {
            return anyhow!("reading {reading} from {} failed: {err}", self.target);
        };
        let code = db.code();
        if let Some(why) = not_read_because(&err, self.statement_timeout, self.lock_timeout) {
            anyhow!("gave up reading {reading}: {why}")
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            anyhow!(
                "user \"{}\" may not read {reading}: {}; see the README for the GRANTs medmig needs",
                self.target.user,
                db.message()
            )
        } else {
            anyhow!(
                "reading {reading} from {} failed: {} (SQLSTATE {})",
                self.target,
                db.message(),
                code.code()
            )
        }
    }
}

/// Why a table could not be read, when it is a reason to note rather than to stop for: a lock
/// held past the lock timeout, or a statement cancelled at the statement timeout (the wait for
/// a lock counts in it). `None` for any other failure.
fn not_read_because(
    err: &tokio_postgres::Error,
    statement_timeout: Duration,
    lock_timeout: Duration,
) -> Option<String> {
    let code = err.as_db_error()?.code();
    if *code == SqlState::LOCK_NOT_AVAILABLE {
        Some(format!(
            "another session held a lock on it for longer than --lock-timeout {} (a running \
             migration or maintenance?); medmig does not queue behind it: try again later, or \
             see pg_stat_activity for the holder",
            flag_duration(lock_timeout)
        ))
    } else if *code == SqlState::QUERY_CANCELED {
        Some(format!(
            "reading it took longer than --statement-timeout {} and was cancelled; the database \
             may be busy, or another session held a lock on it: try again later or raise \
             --statement-timeout",
            flag_duration(statement_timeout)
        ))
    } else {
        None
    }
}

/// Translates a failed connection attempt into a message that says what to check.
fn explain_connect_error(
    err: &tokio_postgres::Error,
    target: &Target,
    settings: &ConnectionSettings,
) -> anyhow::Error {
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        let advice = if *code == SqlState::INVALID_PASSWORD {
            format!(
                "password authentication failed for user \"{}\": check the password given by {}",
                target.user, settings.source
            )
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            format!(
                "database \"{}\" does not exist on {}:{}: name the Medplum database (usually \"medplum\")",
                target.database, target.host, target.port
            )
        } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            format!(
                "the server refused user \"{}\": {} (check pg_hba.conf, the user name and --sslmode)",
                target.user,
                db.message()
            )
        } else if *code == SqlState::TOO_MANY_CONNECTIONS {
            "the server has no free connection slots: try again later".to_string()
        } else if *code == SqlState::CANNOT_CONNECT_NOW {
            "the server is starting up or shutting down: try again in a moment".to_string()
        } else {
            format!("{} (SQLSTATE {})", db.message(), code.code())
        };
        return anyhow!("cannot connect to {target}: {advice}");
    }
    let cause = root_cause_text(err);
    let lower = cause.to_lowercase();
    let advice = if lower.contains("refused") {
        "connection refused: is PostgreSQL running and listening on that host and port?".to_string()
    } else if lower.contains("timed out") || lower.contains("timeout") {
        format!(
            "no answer within {} ({}): check the host, the port and the firewall",
            flag_duration(settings.connect_timeout),
            settings.connect_timeout_from
        )
    } else if lower.contains("failed to lookup")
        || lower.contains("name or service not known")
        || lower.contains("no such host")
        || lower.contains("temporary failure in name resolution")
    {
        format!(
            "the host name \"{}\" cannot be resolved: check it",
            target.host
        )
    } else if lower.contains("server does not support tls") {
        "the server does not accept TLS: use --sslmode prefer or disable".to_string()
    } else if lower.contains("certificate") || lower.contains("unknownissuer") {
        format!(
            "the server's TLS certificate was not accepted ({cause}): pass the right CA with \
             --ssl-root-cert, or use --sslmode require to encrypt without verifying"
        )
    } else if lower.contains("password missing") {
        format!(
            "the server asks for a password for user \"{}\" and none was given: add it to the \
             URL, PGPASSWORD or the Medplum config",
            target.user
        )
    } else {
        cause
    };
    anyhow!("cannot connect to {target}: {advice}")
}

/// The innermost message of an error chain (the driver's outer text is generic).
fn root_cause_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = vec![err.to_string()];
    let mut source = err.source();
    while let Some(inner) = source {
        messages.push(inner.to_string());
        source = inner.source();
    }
    messages.join(": ")
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn resolve(args: ConnectOptions, vars: &[(&str, &str)]) -> Result<ConnectionSettings> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConnectionSettings::resolve(&args, &vars)
    }

    #[test]
    fn servers_older_than_13_are_refused_by_the_version_they_report() {
        let target = Target {
            host: "db".into(),
            port: 5432,
            database: "medplum".into(),
            user: "medmig".into(),
        };
        for old in [
            "12.22",
            "9.6.24",
            "12.1 (Debian 12.1-1.pgdg110+1)",
            "11beta2",
        ] {
            let err = check_server_version(old, &target).unwrap_err().to_string();
            assert!(err.contains(&format!("runs PostgreSQL {old}")), "{err}");
            assert!(err.contains("PostgreSQL 13 and later"), "{err}");
        }
        for supported in [
            "13.0",
            "14.23",
            "18.4 (Debian 18.4-1)",
            "19beta1",
            "19devel",
        ] {
            assert!(
                check_server_version(supported, &target).is_ok(),
                "{supported}"
            );
        }
        // A version that cannot be read is left to the probe, not refused.
        assert!(check_server_version("EnterpriseDB", &target).is_ok());
        let err = check_server_version("12.0\x1b[2J", &target)
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\x1b'), "{err}");
    }

    fn watch(statement_timeout: Duration) -> Watch {
        Watch {
            statement_timeout,
            last: Cell::new(Instant::now()),
            flight: Cell::new(None),
            reading: Cell::new("the probe"),
            statements: Cell::new(0),
            rows: Cell::new(0),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_runs_out_the_answer_deadline() {
        let watch = watch(Duration::from_secs(30));
        let started = Instant::now();
        let work = watch.round_trip("the probe", std::future::pending::<()>());
        let expired = watch.guard(work).await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(35));
        assert!(matches!(expired.limit, Limit::Answer(d) if d == Duration::from_secs(35)));
        assert_eq!(expired.reading, "the probe");
        // An answer within the deadline is waited for.
        let slow = watch.round_trip("the jobs", tokio::time::sleep(Duration::from_secs(34)));
        assert!(watch.guard(slow).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flight_whose_answers_trickle_runs_out_its_bound_in_all() {
        let watch = watch(Duration::from_secs(1));
        let started = Instant::now();
        watch.flight("the flight", 3);
        // An answer every 4s: each within 1s + 5s of the last, never the end.
        let trickle = async {
            loop {
                tokio::time::sleep(Duration::from_secs(4)).await;
                watch.answered();
            }
        };
        let expired = watch.guard(trickle).await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(8));
        assert!(matches!(
            expired.limit,
            Limit::Flight { statements: 3, bound } if bound == Duration::from_secs(8)
        ));
        // Landed, the flight's bound is gone; with no limit at all, nothing is.
        watch.landed();
        let steady = watch.round_trip("the end", tokio::time::sleep(Duration::from_secs(5)));
        assert!(watch.guard(steady).await.is_ok());
        let unlimited = self::watch(Duration::ZERO);
        let slow = tokio::time::sleep(Duration::from_secs(86_400));
        assert!(unlimited.guard(slow).await.is_ok());
    }

    fn args() -> ConnectOptions {
        ConnectOptions {
            connect_timeout: Some(Duration::from_secs(10)),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(2),
            ..ConnectOptions::default()
        }
    }

    #[test]
    fn nothing_given_names_every_source() {
        let err = resolve(args(), &[]).unwrap_err().to_string();
        for name in [
            "--database-url",
            "DATABASE_URL",
            "--medplum-config",
            "PGHOST",
            "--snapshot",
        ] {
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn flag_beats_environment_and_the_rest_are_reported_ignored() {
        let mut a = args();
        a.database_url = Some("postgres://flag@db1:5433/medplum".into());
        let s = resolve(
            a,
            &[
                ("DATABASE_URL", "postgres://env@db2/medplum"),
                ("PGHOST", "db3"),
            ],
        )
        .unwrap();
        assert_eq!(s.source, ConnectionSource::DatabaseUrlFlag);
        assert_eq!(
            s.target(),
            Target {
                host: "db1".into(),
                port: 5433,
                database: "medplum".into(),
                user: "flag".into()
            }
        );
        assert_eq!(
            s.ignored_sources,
            vec![ConnectionSource::DatabaseUrlEnv, ConnectionSource::Libpq]
        );
    }

    #[test]
    fn url_sslmode_and_root_cert_are_understood_and_flags_override_them() {
        let mut a = args();
        a.database_url =
            Some("postgres://u:p@db/medplum?sslmode=verify-full&sslrootcert=/ca.pem".into());
        let s = resolve(a.clone(), &[]).unwrap();
        assert_eq!(s.ssl_mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(RootCert::File("/ca.pem".into())));
        a.ssl_mode = Some(SslMode::Disable);
        assert_eq!(resolve(a, &[]).unwrap().ssl_mode, SslMode::Disable);
    }

    #[test]
    fn connect_timeout_comes_from_the_flag_then_the_url_then_the_default() {
        let mut a = args();
        a.connect_timeout = None;
        let s = resolve(a.clone(), &[]);
        assert!(s.is_err(), "no source");
        a.database_url = Some("postgres://u@db/medplum?connect_timeout=7&sslmode=require".into());
        let s = resolve(a.clone(), &[]).unwrap();
        assert_eq!(
            (s.connect_timeout, s.connect_timeout_from),
            (Duration::from_secs(7), "connect_timeout in the URL")
        );
        assert_eq!(s.ssl_mode, SslMode::Require);
        a.database_url = Some("host=db dbname=medplum connect_timeout=0".into());
        assert_eq!(
            resolve(a.clone(), &[]).unwrap().connect_timeout,
            Duration::ZERO
        );
        a.connect_timeout = Some(Duration::from_secs(3));
        let s = resolve(a.clone(), &[]).unwrap();
        assert_eq!(
            (s.connect_timeout, s.connect_timeout_from),
            (Duration::from_secs(3), "--connect-timeout")
        );
        a.connect_timeout = None;
        a.database_url = Some("postgres://u@db/medplum".into());
        assert_eq!(
            resolve(a, &[]).unwrap().connect_timeout,
            DEFAULT_CONNECT_TIMEOUT
        );
        // As libpq reads it: whole seconds, none below 2, 0 or less for no limit.
        for (text, seconds) in [("10", 10), (" 4 ", 4), ("1", 2), ("0", 0), ("-3", 0)] {
            assert_eq!(
                url_connect_timeout(text).unwrap(),
                Duration::from_secs(seconds),
                "{text}"
            );
        }
        for bad in ["", "1.5", "10s", "ten"] {
            let err = url_connect_timeout(bad).unwrap_err().to_string();
            assert!(err.contains("whole number of seconds"), "{err}");
        }
    }

    #[test]
    fn an_empty_database_url_is_refused() {
        for empty in ["", "  "] {
            let mut a = args();
            a.database_url = Some(empty.into());
            let err = resolve(a, &[("PGHOST", "db")]).unwrap_err().to_string();
            assert!(err.contains("--database-url is empty"), "{err}");
        }
    }

    #[test]
    fn root_certificates_that_cannot_be_used_are_named_for_what_they_are() {
        let mut roots = RootCertStore::empty();
        assert_eq!(
            crate::sources::tls::add_pem_roots(&mut roots, b"not a certificate\n"),
            Err("holds no PEM certificates".to_string())
        );
        // A private key is PEM, but not a certificate.
        let key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            crate::sources::tls::add_pem_roots(&mut roots, key),
            Err("holds no PEM certificates".to_string())
        );
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            crate::sources::tls::add_pem_roots(&mut roots, broken),
            Err("holds 1 PEM certificate and none can be read".to_string())
        );
        assert!(roots.is_empty());
    }

    #[test]
    fn bad_url_message_never_contains_the_password() {
        let mut a = args();
        a.database_url = Some("postgres://u:hunter2@db:notaport/medplum".into());
        let err = format!("{:#}", resolve(a, &[]).unwrap_err());
        assert!(err.contains("--database-url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let mut a = args();
        a.database_url = Some("postgres://u:hunter2@db/medplum?sslmode=sometimes".into());
        let err = format!("{:#}", resolve(a, &[]).unwrap_err());
        assert!(
            err.contains("sometimes") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn medplum_config_database_section_and_ssl() {
        let mut file = tempfile();
        write!(
            file.1,
            r#"{{"baseUrl":"https://x","database":{{"host":"pg.internal","port":"6432",
               "dbname":"medplum","username":"medplum","password":"s3cret",
               "ssl":{{"require":true,"rejectUnauthorized":false}}}}}}"#
        )
        .unwrap();
        let mut a = args();
        a.medplum_config = Some(ConfigName::parse(file.0.to_str().unwrap()).unwrap());
        let s = resolve(a, &[("PGHOST", "elsewhere")]).unwrap();
        assert_eq!(s.source, ConnectionSource::MedplumConfig);
        assert_eq!(s.target().host, "pg.internal");
        assert_eq!(s.target().port, 6432);
        assert_eq!(s.ssl_mode, SslMode::Require);
        assert!(!format!("{s:?}").contains("s3cret"));
        std::fs::remove_file(file.0).unwrap();
    }

    #[test]
    fn medplum_config_name_connects_with_the_merged_database_section() {
        let mut file = tempfile();
        write!(
            file.1,
            r#"{{"baseUrl":"https://x","database":{{"host":"pg.internal","port":5432,
               "dbname":"medplum","username":"medplum"}}}}"#
        )
        .unwrap();
        let path = file.0.to_str().unwrap().to_string();
        let mut a = args();
        // loader.ts loadConfig: later sources win, nested objects merge.
        a.medplum_config = Some(ConfigName::parse(&format!("file:{path},env")).unwrap());
        let s = resolve(
            a.clone(),
            &[
                ("MEDPLUM_DATABASE_HOST", "override.internal"),
                ("MEDPLUM_DATABASE_PORT", "6543"),
            ],
        )
        .unwrap();
        assert_eq!(s.source, ConnectionSource::MedplumConfig);
        assert_eq!(s.ignored_sources, vec![ConnectionSource::MedplumEnv]);
        assert_eq!(
            s.target(),
            Target {
                host: "override.internal".into(),
                port: 6543,
                database: "medplum".into(),
                user: "medplum".into()
            }
        );
        assert!(s.warnings.is_empty());
        // parseInt gives NaN: medmig says where the value came from.
        let err = resolve(a, &[("MEDPLUM_DATABASE_PORT", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.port (from env)"), "{err}");

        let mut a = args();
        a.medplum_config = Some(ConfigName::parse(&format!("file:{path},aws:/mp/")).unwrap());
        let s = resolve(a, &[]).unwrap();
        assert_eq!(s.target().host, "pg.internal");
        assert!(
            s.warnings[0].contains("cannot read aws:/mp/"),
            "{:?}",
            s.warnings
        );
        std::fs::remove_file(file.0).unwrap();

        let mut a = args();
        a.medplum_config = Some(ConfigName::parse("aws:/mp/").unwrap());
        let err = resolve(a, &[]).unwrap_err().to_string();
        assert!(err.contains("cannot read aws:/mp/"), "{err}");
        assert!(err.contains("--database-url"), "{err}");
    }

    #[test]
    fn medplum_env_then_libpq_env() {
        let s = resolve(
            args(),
            &[
                ("MEDPLUM_DATABASE_HOST", "mp"),
                ("MEDPLUM_DATABASE_PORT", "5544"),
                ("MEDPLUM_DATABASE_DBNAME", "medplum"),
                ("MEDPLUM_DATABASE_USERNAME", "mpuser"),
                ("PGHOST", "pg"),
            ],
        )
        .unwrap();
        assert_eq!(s.source, ConnectionSource::MedplumEnv);
        assert_eq!(s.target().port, 5544);
        let s = resolve(
            args(),
            &[("PGHOST", "pg"), ("PGUSER", "ro"), ("PGSSLMODE", "require")],
        )
        .unwrap();
        assert_eq!(s.source, ConnectionSource::Libpq);
        assert_eq!(s.target().user, "ro");
        assert_eq!(s.target().database, "ro");
        assert_eq!(s.ssl_mode, SslMode::Require);
    }

    fn tempfile() -> (PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!(
            "medmig-connect-test-{}-{:?}.json",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }
}
