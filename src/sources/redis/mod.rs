//! What Medplum keeps in Redis, read read-only: the BullMQ queues that run post-deploy
//! migrations (`PostDeployMigrationQueue`, `ReindexQueue`) with every job and its
//! deduplication key, and the server registry (`medplum:server-registry:<id>`).
//!
//! The key layout is BullMQ 5's (the major Medplum pins: `packages/server/package.json`,
//! bullmq 5.65.0; keys from `src/classes/queue-keys.ts` of taskforcesh/bullmq, prefix `bull`
//! since no Medplum worker sets one); the registry's is Medplum's
//! (`packages/server/src/server-registry.ts`). Reading takes a fixed number of pipelined
//! round trips whatever the number of jobs: the queues' lists and sets and the deduplication
//! keys of every migration in one flight, the registry's SCAN (one call at Medplum's sizes,
//! bounded), then every job hash and registry entry in a second flight.

use crate::snapshot::{
    BullJob, DeduplicationKey, QueueEvidence, RedisEvidence, RegisteredServer, StateCount,
};

pub mod resp;

use resp::{cmd, Connection, Reply};
use tokio::io::{AsyncRead, AsyncWrite};

/// BullMQ's key prefix as Medplum leaves it.
pub const PREFIX: &str = "bull";

/// The queues that run post-deploy migrations.
pub const QUEUES: [&str; 2] = ["PostDeployMigrationQueue", "ReindexQueue"];

/// The server registry's keys.
pub const REGISTRY_PATTERN: &str = "medplum:server-registry:*";

/// The most jobs medmig lists per state of a queue (newest first for completed and failed).
pub const JOBS_PER_STATE: usize = 1_000;

/// SCAN calls for the registry before medmig gives up and records the gap.
const SCAN_CALLS: usize = 32;

/// The states as BullMQ 5 keeps them: the key suffix and whether it is a sorted set.
const STATES: [(&str, bool); 7] = [
    ("wait", false),
    ("active", false),
    ("paused", false),
    ("prioritized", true),
    ("delayed", true),
    ("failed", true),
    ("completed", true),
];

/// Reads the queues and, `with_registry`, the server registry (else it lives in another Redis:
/// [`read_registry`]). `deduplication_ids` are the ids to look up in each queue (`v1` … `vN`
/// for the migrations medmig knows of).
pub async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    deduplication_ids: &[String],
    with_registry: bool,
) -> anyhow::Result<RedisEvidence> {
    let start = conn.round_trips;
    let key = |queue: &str, suffix: &str| format!("{PREFIX}:{queue}:{suffix}");
    let last = (JOBS_PER_STATE - 1).to_string();

    // Flight 1: every state's members and size, the meta hash, the deduplication keys, and
    // the registry's first SCAN.
    let mut first = Vec::new();
    for queue in QUEUES {
        for (state, sorted) in STATES {
            let k = key(queue, state);
            match (state, sorted) {
                // Newest first: the ones that finished last.
                ("failed" | "completed", _) => {
                    first.push(cmd(&["ZREVRANGE", &k, "0", &last, "WITHSCORES"]));
                    first.push(cmd(&["ZCARD", &k]));
                }
                (_, true) => {
                    first.push(cmd(&["ZRANGE", &k, "0", &last, "WITHSCORES"]));
                    first.push(cmd(&["ZCARD", &k]));
                }
                (_, false) => {
                    first.push(cmd(&["LRANGE", &k, "0", &last]));
                    first.push(cmd(&["LLEN", &k]));
                }
            }
        }
        first.push(cmd(&["HGETALL", &key(queue, "meta")]));
        for id in deduplication_ids {
            let k = key(queue, &format!("de:{id}"));
            first.push(cmd(&["GET", &k]));
            first.push(cmd(&["PTTL", &k]));
        }
    }
    if with_registry {
        first.push(scan("0"));
    }
    let replies = conn.pipeline(&first).await?;
    let mut replies = replies.into_iter();
    let mut next = || replies.next().unwrap_or(Reply::Nil);

    let mut queues = Vec::new();
    for queue in QUEUES {
        let mut q = QueueEvidence {
            name: queue.to_string(),
            ..QueueEvidence::default()
        };
        for (state, sorted) in STATES {
            let members = checked(next())?;
            let total = integer(&checked(next())?).unwrap_or(0);
            let items = members.items();
            let listed: Vec<(String, Option<f64>)> = if sorted {
                items
                    .chunks(2)
                    .map(|pair| {
                        (
                            pair[0].text().unwrap_or_default(),
                            pair.get(1)
                                .and_then(Reply::text)
                                .and_then(|s| s.parse().ok()),
                        )
                    })
                    .collect()
            } else {
                items
                    .iter()
                    .map(|r| (r.text().unwrap_or_default(), None))
                    .collect()
            };
            q.counts.push(StateCount {
                state: state.to_string(),
                total: u64::try_from(total).unwrap_or(0),
                listed: listed.len(),
            });
            for (id, score) in listed {
                q.jobs.push(BullJob {
                    id,
                    state: state.to_string(),
                    // A delayed job's score is its due time in ms, times 4096, plus a sequence.
                    due_at: score
                        .filter(|_| state == "delayed")
                        .map(|s| (s / 4096.0).floor() as i64),
                    ..BullJob::default()
                });
            }
        }
        let meta = hash(&checked(next())?);
        q.paused = meta.iter().any(|(k, _)| k == "paused");
        q.bullmq_version = meta
            .iter()
            .find(|(k, _)| k == "version")
            .map(|(_, v)| v.clone());
        for id in deduplication_ids {
            let holder = checked(next())?.text();
            let ttl = integer(&checked(next())?);
            if let Some(job_id) = holder {
                q.deduplication.push(DeduplicationKey {
                    id: id.clone(),
                    job_id,
                    ttl_ms: ttl.filter(|t| *t >= 0),
                });
            }
        }
        queues.push(q);
    }
    let (registry_keys, registry_complete) = match with_registry {
        true => scan_registry(conn, checked(next())?).await?,
        false => (Vec::new(), true),
    };

    // A job a deduplication key names but no state lists: its hash may be gone.
    for q in &mut queues {
        let named: Vec<String> = q
            .deduplication
            .iter()
            .filter(|d| !q.jobs.iter().any(|j| j.id == d.job_id))
            .map(|d| d.job_id.clone())
            .collect();
        for id in named {
            q.jobs.push(BullJob {
                id,
                state: "missing".into(),
                ..BullJob::default()
            });
        }
    }

    // Flight 2: every job's hash, every registry entry and its lifetime.
    let mut second = Vec::new();
    for q in &queues {
        for job in &q.jobs {
            second.push(cmd(&["HGETALL", &key(&q.name, &job.id)]));
            second.push(cmd(&["PTTL", &key(&q.name, &format!("{}:lock", job.id))]));
        }
    }
    for k in &registry_keys {
        second.push(cmd(&["GET", k]));
        second.push(cmd(&["PTTL", k]));
    }
    let replies = conn.pipeline(&second).await?;
    let mut replies = replies.into_iter();
    let mut next = || replies.next().unwrap_or(Reply::Nil);
    for q in &mut queues {
        for job in &mut q.jobs {
            let fields = hash(&checked(next())?);
            let lock = integer(&checked(next())?).filter(|t| *t >= 0);
            if job.state == "active" {
                job.lock_ttl_ms = lock;
            }
            if fields.is_empty() {
                if job.state != "missing" {
                    // Listed but gone by the time its hash was read: it moved on or was removed.
                    job.state = format!("{} (hash gone)", job.state);
                }
                continue;
            }
            if job.state == "missing" {
                job.state = "unlisted".into();
            }
            fill_job(job, &fields);
        }
    }
    let mut servers = Vec::new();
    for k in &registry_keys {
        servers.push(registered_server(k, checked(next())?, checked(next())?));
    }
    Ok(RedisEvidence {
        queues,
        servers,
        registry_complete,
        round_trips: conn.round_trips - start,
    })
}

/// Reads the server registry alone (when it lives in another Redis than the queues: Medplum
/// keeps it on `cacheRedis` when that is configured).
pub async fn read_registry<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
) -> anyhow::Result<(Vec<RegisteredServer>, bool)> {
    let first = conn.pipeline(&[scan("0")]).await?;
    let (keys, complete) = scan_registry(
        conn,
        checked(first.into_iter().next().unwrap_or(Reply::Nil))?,
    )
    .await?;
    let mut flight = Vec::new();
    for k in &keys {
        flight.push(cmd(&["GET", k]));
        flight.push(cmd(&["PTTL", k]));
    }
    let replies = conn.pipeline(&flight).await?;
    let mut replies = replies.into_iter();
    let mut next = || replies.next().unwrap_or(Reply::Nil);
    let mut servers = Vec::new();
    for k in &keys {
        servers.push(registered_server(k, checked(next())?, checked(next())?));
    }
    Ok((servers, complete))
}

/// The registry's keys from a first SCAN reply and as many more calls as it takes, up to
/// [`SCAN_CALLS`]; and whether the scan ended.
async fn scan_registry<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    first: Reply,
) -> anyhow::Result<(Vec<String>, bool)> {
    let mut keys = Vec::new();
    let mut cursor = scan_reply(&first, &mut keys)?;
    let mut calls = 1;
    while cursor != "0" && calls < SCAN_CALLS {
        let reply = conn.pipeline(&[scan(&cursor)]).await?;
        cursor = scan_reply(
            &checked(reply.into_iter().next().unwrap_or(Reply::Nil))?,
            &mut keys,
        )?;
        calls += 1;
    }
    keys.sort();
    keys.dedup();
    Ok((keys, cursor == "0"))
}

/// A registry entry from its key and the replies of GET and PTTL.
fn registered_server(key: &str, value: Reply, ttl: Reply) -> RegisteredServer {
    let entry: Option<serde_json::Value> = value.text().and_then(|v| serde_json::from_str(&v).ok());
    let text = |field: &str| {
        entry
            .as_ref()
            .and_then(|e| e.get(field))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    RegisteredServer {
        id: key
            .trim_start_matches("medplum:server-registry:")
            .to_string(),
        version: text("version"),
        full_version: text("fullVersion"),
        first_seen: text("firstSeen"),
        last_seen: text("lastSeen"),
        ttl_ms: integer(&ttl).filter(|t| *t >= 0),
    }
}

fn scan(cursor: &str) -> Vec<Vec<u8>> {
    cmd(&["SCAN", cursor, "MATCH", REGISTRY_PATTERN, "COUNT", "100000"])
}

/// The next cursor of a SCAN reply; its keys are added to `keys`.
fn scan_reply(reply: &Reply, keys: &mut Vec<String>) -> anyhow::Result<String> {
    let [cursor, found] = reply.items() else {
        anyhow::bail!("Redis answered SCAN with something else than a cursor and keys");
    };
    keys.extend(found.items().iter().filter_map(Reply::text).take(10_000));
    cursor
        .text()
        .ok_or_else(|| anyhow::anyhow!("Redis answered SCAN without a cursor"))
}

/// An error reply as an error: NOPERM and kin end the read with Redis's own words.
fn checked(reply: Reply) -> anyhow::Result<Reply> {
    match reply {
        Reply::Error(message) => anyhow::bail!(
            "Redis refused a read: {}",
            crate::text::shorten(&message, 200)
        ),
        other => Ok(other),
    }
}

fn integer(reply: &Reply) -> Option<i64> {
    match reply {
        Reply::Integer(n) => Some(*n),
        other => other.text().and_then(|t| t.parse().ok()),
    }
}

/// An HGETALL reply as its field-value pairs.
fn hash(reply: &Reply) -> Vec<(String, String)> {
    reply
        .items()
        .chunks(2)
        .filter_map(|pair| Some((pair[0].text()?, pair.get(1)?.text()?)))
        .collect()
}

/// Fills `job` from its hash (BullMQ 5's fields; `atm` before the older `attemptsMade`).
fn fill_job(job: &mut BullJob, fields: &[(String, String)]) {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str| get(name).and_then(|v| v.parse::<i64>().ok());
    job.name = get("name").map(str::to_string);
    if let Some(data) = get("data").and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
    {
        job.kind = data
            .get("type")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        job.async_job_id = data
            .get("asyncJobId")
            .or_else(|| data.get("tracking").and_then(|t| t.get("asyncJobId")))
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    if let Some(opts) = get("opts").and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
    {
        job.attempts = opts.get("attempts").and_then(|v| v.as_i64());
    }
    job.deduplication_id = get("deid").map(str::to_string);
    job.timestamp = number("timestamp");
    job.processed_on = number("processedOn");
    job.finished_on = number("finishedOn");
    job.delay = number("delay");
    job.attempts_made = number("atm").or_else(|| number("attemptsMade"));
    job.failed_reason = get("failedReason")
        .filter(|r| !r.is_empty())
        .map(|r| crate::text::shorten(r, 2_000));
}

/// Where and how to reach a Redis: what `--redis-url`, `REDIS_URL` or a Medplum config section
/// says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: u32,
    /// TLS, when the connection uses it.
    pub tls: Option<RedisTls>,
    /// Where the settings came from, for messages: `--redis-url`, `REDIS_URL`, …
    pub origin: String,
}

impl std::fmt::Display for RedisTarget {
    /// `redis://host:port/db` without the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        write!(f, "{scheme}://{}:{}/{}", self.host, self.port, self.db)
    }
}

impl RedisTarget {
    /// `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS.
    pub fn from_url(url: &str, origin: &str) -> anyhow::Result<RedisTarget> {
        use anyhow::{anyhow, bail};
        let shown = crate::text::shorten(url.split('@').next_back().unwrap_or(""), 80);
        let (tls, rest) = if let Some(rest) = url.strip_prefix("rediss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("redis://") {
            (false, rest)
        } else {
            bail!("{origin} is not a redis:// or rediss:// URL (…{shown})");
        };
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((credentials, rest)) => (Some(credentials), rest),
            None => (None, rest),
        };
        let (address, db) = match rest.split_once('/') {
            Some((address, db)) => (address, db.split(['?', '#']).next().unwrap_or("")),
            None => (rest.split(['?', '#']).next().unwrap_or(""), ""),
        };
        let db = match db {
            "" => 0,
            db => db.parse().map_err(|_| {
                anyhow!(
                    "{origin}: \"{}\" is not a database number",
                    crate::text::shorten(db, 20)
                )
            })?,
        };
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || address.starts_with('[') => (
                host,
                port.parse::<u16>().map_err(|_| {
                    anyhow!(
                        "{origin}: \"{}\" is not a port",
                        crate::text::shorten(port, 20)
                    )
                })?,
            ),
            _ => (address, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("{origin} names no host (…{shown})");
        }
        let decode = |text: &str| {
            percent_decode(text).ok_or_else(|| anyhow!("{origin}: bad %-escape in the credentials"))
        };
        let (username, password) = match credentials {
            None => (None, None),
            Some(c) => match c.split_once(':') {
                Some((user, password)) => (
                    Some(decode(user)?).filter(|u| !u.is_empty()),
                    Some(decode(password)?),
                ),
                None => (Some(decode(c)?).filter(|u| !u.is_empty()), None),
            },
        };
        Ok(RedisTarget {
            host: host.to_string(),
            port,
            username,
            password,
            db,
            tls: tls.then(RedisTls::default),
            origin: origin.to_string(),
        })
    }

    /// A Redis section of Medplum's config (`redis`, `backgroundJobsRedis`, `cacheRedis`, …:
    /// `MedplumRedisConfig` in `packages/server/src/config/types.ts`): `host`, `port`,
    /// `password`, `db` (a number, or the text the env loader may leave), `tls` (ioredis's
    /// TLS options: an object turns TLS on, `ca` names the authorities, `rejectUnauthorized:
    /// false` encrypts without verifying), and `username`, which ioredis takes though the
    /// type does not list it.
    pub fn from_config_section(
        section: &serde_json::Value,
        origin: &str,
    ) -> anyhow::Result<RedisTarget> {
        use anyhow::{anyhow, bail};
        use serde_json::Value;
        let Value::Object(fields) = section else {
            bail!("{origin} is not an object: give the Redis host, port and password");
        };
        let text = |key: &str| -> anyhow::Result<Option<String>> {
            match fields.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                // The kind only: the value may be a password.
                Some(_) => bail!("{origin}.{key} is not text"),
            }
        };
        let number = |key: &str, default: u64| -> anyhow::Result<u64> {
            match fields.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Number(n)) => n
                    .as_u64()
                    .ok_or_else(|| anyhow!("{origin}.{key} is not a whole number")),
                Some(Value::String(s)) => s.trim().parse().map_err(|_| {
                    anyhow!(
                        "{origin}.{key} is not a whole number: \"{}\"",
                        crate::text::shorten(s, 20)
                    )
                }),
                Some(_) => bail!("{origin}.{key} is not a number"),
            }
        };
        let port = u16::try_from(number("port", 6379)?)
            .map_err(|_| anyhow!("{origin}.port is not a port"))?;
        let db =
            u32::try_from(number("db", 0)?).map_err(|_| anyhow!("{origin}.db is too large"))?;
        let tls = match fields.get("tls") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(Value::Bool(true)) => Some(RedisTls::default()),
            Some(Value::Object(options)) => Some(RedisTls {
                verify: options.get("rejectUnauthorized") != Some(&Value::Bool(false)),
                ca: match options.get("ca") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(pem)) => Some(pem.clone()),
                    Some(Value::Array(pems)) => Some(
                        pems.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ),
                    Some(_) => bail!("{origin}.tls.ca is not PEM text"),
                },
            }),
            Some(_) => bail!("{origin}.tls is neither an object of TLS options nor a boolean"),
        };
        Ok(RedisTarget {
            host: text("host")?.unwrap_or_else(|| "localhost".to_string()),
            port,
            username: text("username")?,
            password: text("password")?,
            db,
            tls,
            origin: origin.to_string(),
        })
    }
}

/// The Redis of the queues, and of the server registry when that is another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTargets {
    pub queues: RedisTarget,
    pub registry: Option<RedisTarget>,
}

/// The Redis to read, from the first source set: `--redis-url` (`flag`), `REDIS_URL`, the
/// `--medplum-config` (`config`), then the `MEDPLUM_*REDIS_*` variables (read as Medplum's env
/// config source reads them). From a config, the queues are on `backgroundJobsRedis` and the
/// registry on `cacheRedis`, each falling back to `redis` (`packages/server/src/config/
/// types.ts`). Returns also the sources set but not used, for a note.
pub fn resolve(
    flag: Option<&str>,
    env: &[(String, String)],
    config: Option<&crate::medplum::config::MedplumConfig>,
    env_config: impl FnOnce() -> anyhow::Result<crate::medplum::config::MedplumConfig>,
) -> anyhow::Result<(Option<RedisTargets>, Vec<String>)> {
    let var = |name: &str| {
        env.iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let medplum_vars = env.iter().any(|(name, value)| {
        !value.is_empty()
            && [
                "MEDPLUM_REDIS_",
                "MEDPLUM_BACKGROUND_JOBS_REDIS_",
                "MEDPLUM_CACHE_REDIS_",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
    });
    let from_config = |config: &crate::medplum::config::MedplumConfig,
                       origin: &str|
     -> anyhow::Result<Option<RedisTargets>> {
        let section = |names: &[&'static str]| {
            names.iter().find_map(|n: &&'static str| {
                config.get(&[n]).filter(|v| !v.is_null()).map(|v| (*n, v))
            })
        };
        let Some((name, queues)) = section(&["backgroundJobsRedis", "redis"]) else {
            return Ok(None);
        };
        let queues = RedisTarget::from_config_section(queues, &format!("{origin} {name}"))?;
        let registry = match section(&["cacheRedis", "redis"]) {
            Some((name, registry)) => {
                let registry =
                    RedisTarget::from_config_section(registry, &format!("{origin} {name}"))?;
                (registry.host != queues.host
                    || registry.port != queues.port
                    || registry.db != queues.db)
                    .then_some(registry)
            }
            None => None,
        };
        Ok(Some(RedisTargets { queues, registry }))
    };
    let mut present = Vec::new();
    if flag.is_some() {
        present.push("--redis-url");
    }
    if var("REDIS_URL").is_some() {
        present.push("REDIS_URL");
    }
    let config_targets = match config {
        Some(config) => from_config(config, "--medplum-config")?,
        None => None,
    };
    if config_targets.is_some() {
        present.push("--medplum-config");
    }
    if medplum_vars {
        present.push("MEDPLUM_*REDIS_*");
    }
    let ignored = present.iter().skip(1).map(|s| s.to_string()).collect();
    let single = |target: RedisTarget| RedisTargets {
        queues: target,
        registry: None,
    };
    let targets = match present.first().copied() {
        None => None,
        Some("--redis-url") => Some(single(RedisTarget::from_url(
            flag.unwrap_or_default(),
            "--redis-url",
        )?)),
        Some("REDIS_URL") => Some(single(RedisTarget::from_url(
            &var("REDIS_URL").unwrap_or_default(),
            "REDIS_URL",
        )?)),
        Some("--medplum-config") => config_targets,
        Some(_) => from_config(&env_config()?, "MEDPLUM_*REDIS_*")?,
    };
    Ok((targets, ignored))
}

/// TLS to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTls {
    /// Whether the server's certificate is checked (ioredis's `rejectUnauthorized`).
    pub verify: bool,
    /// The authorities to trust, as PEM; the system's when absent.
    pub ca: Option<String>,
}

impl Default for RedisTls {
    fn default() -> RedisTls {
        RedisTls {
            verify: true,
            ca: None,
        }
    }
}

/// A byte stream to Redis, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl RedisTarget {
    /// Connects (within `connect_timeout`), authenticates and selects the database. Only
    /// AUTH and SELECT are sent before the reads; SELECT only for a database other than 0, so
    /// that a user allowed nothing but reads can connect to database 0.
    pub async fn open(
        &self,
        connect_timeout: std::time::Duration,
        reply_timeout: std::time::Duration,
    ) -> anyhow::Result<Connection<Box<dyn Stream>>> {
        use anyhow::{anyhow, Context};
        let tcp = tokio::time::timeout(
            connect_timeout,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "Redis at {self} did not accept a connection within {connect_timeout:?} ({})",
                self.origin
            )
        })?
        .with_context(|| format!("cannot connect to Redis at {self} ({})", self.origin))?;
        let stream: Box<dyn Stream> = if let Some(tls) = &self.tls {
            let roots = match (tls.verify, &tls.ca) {
                (false, _) => None,
                (true, None) => Some(crate::sources::tls::native_roots()),
                (true, Some(pem)) => {
                    let mut roots = rustls::RootCertStore::empty();
                    crate::sources::tls::add_pem_roots(&mut roots, pem.as_bytes()).map_err(
                        |why| {
                            anyhow!(
                                "the tls.ca of {} {why}: give the authority as PEM text",
                                self.origin
                            )
                        },
                    )?;
                    Some(roots)
                }
            };
            let config = crate::sources::tls::client_config(roots)?;
            let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                .map_err(|_| anyhow!("{} is not a host name TLS can verify", self.host))?;
            let tls = tokio::time::timeout(
                connect_timeout,
                tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp),
            )
            .await
            .map_err(|_| {
                anyhow!(
                    "Redis at {self} did not finish the TLS handshake within {connect_timeout:?}"
                )
            })?
            .with_context(|| format!("TLS with Redis at {self} failed"))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut conn = Connection::new(stream, resp::ReplyLimits::default(), reply_timeout);
        let mut hello = Vec::new();
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => hello.push(cmd(&["AUTH", user, password])),
            (None, Some(password)) => hello.push(cmd(&["AUTH", password])),
            _ => {}
        }
        if self.db != 0 {
            hello.push(cmd(&["SELECT", &self.db.to_string()]));
        }
        for reply in conn.pipeline(&hello).await? {
            if let Reply::Error(message) = reply {
                anyhow::bail!(
                    "Redis at {self} refused the session ({}): {}",
                    self.origin,
                    crate::text::shorten(&message, 200)
                );
            }
        }
        Ok(conn)
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_redis_clients_write_them() {
        let t = RedisTarget::from_url("redis://127.0.0.1:6379/7", "--redis-url").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.db, t.tls.is_some()),
            ("127.0.0.1", 6379, 7, false)
        );
        let t = RedisTarget::from_url("rediss://medmig:p%40ss:w@cache.internal/2", "REDIS_URL")
            .unwrap();
        assert_eq!(
            (
                t.username.as_deref(),
                t.password.as_deref(),
                t.port,
                t.db,
                t.tls.is_some()
            ),
            (Some("medmig"), Some("p@ss:w"), 6379, 2, true)
        );
        assert_eq!(t.to_string(), "rediss://cache.internal:6379/2");
        let t = RedisTarget::from_url("redis://:secret@[::1]:6380", "x").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.username, t.password.as_deref()),
            ("::1", 6380, None, Some("secret"))
        );
        for bad in [
            "http://h",
            "redis://",
            "redis://h:port",
            "redis://h/x",
            "redis://u%zz@h",
        ] {
            assert!(RedisTarget::from_url(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn config_sections_as_medplum_s_server_reads_them() {
        // loader.test.ts: MEDPLUM_REDIS_TLS='{}' gives tls {}, MEDPLUM_REDIS_DB='5' stays text.
        let section = serde_json::json!({"host": "cache", "port": 6380, "db": "5", "password": "p", "tls": {}});
        let t = RedisTarget::from_config_section(&section, "redis").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.db), ("cache", 6380, 5));
        assert_eq!(t.tls, Some(RedisTls::default()));
        let section = serde_json::json!({"tls": {"rejectUnauthorized": false}});
        let t = RedisTarget::from_config_section(&section, "redis").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls.unwrap().verify),
            ("localhost", 6379, false)
        );
        for bad in [
            serde_json::json!({"port": "x"}),
            serde_json::json!({"password": 5}),
            serde_json::json!({"tls": "yes"}),
            serde_json::json!([]),
        ] {
            assert!(
                RedisTarget::from_config_section(&bad, "redis").is_err(),
                "{bad}"
            );
        }
    }
}
