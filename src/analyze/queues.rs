//! What Redis tells about the post-deploy migrations: the BullMQ job that runs each one (or
//! none), the servers alive and whether the cluster lets a migration run, and the findings
//! about jobs that nothing will run or that run for nothing.
//!
//! Input is the snapshot's `redis` section (read by `sources/redis`), the jobs and the
//! manifest; `migrations.rs` asks [`QueueFacts::job_for`] when it decides a state, and adds
//! [`QueueFacts::findings`]. Medplum's rules: post-deploy jobs are added to
//! `PostDeployMigrationQueue` with deduplication id `v{N}` and `attempts: 1`, their data naming
//! the AsyncJob (`packages/server/src/workers/post-deploy-migration.ts`); in strict mode the
//! worker delays a job by 60 s while a registered server runs a release older than the
//! migration's `serverVersion` (`isClusterCompatible`, same file; the registry is
//! `packages/server/src/server-registry.ts`).

use semver::Version;

use super::{Finding, Severity};
use crate::medplum::manifest::Manifest;
use crate::snapshot::{BullJob, QueueEvidence, RedisEvidence};

/// The queue post-deploy migrations run on.
pub const POST_DEPLOY_QUEUE: &str = "PostDeployMigrationQueue";

/// The finding ids of this module.
pub const QUEUE_FINDINGS: [&str; 7] = [
    "cluster",
    "job-not-queued",
    "queue-job-orphaned",
    "queue-job-failed",
    "queue-paused",
    "cluster-blocks-migration",
    "redis-not-read",
];

/// A BullMQ job and its queue.
#[derive(Debug, Clone, Copy)]
pub struct QueuedJob<'a> {
    pub queue: &'a QueueEvidence,
    pub job: &'a BullJob,
}

impl QueuedJob<'_> {
    /// Whether it waits to run: waiting, prioritized, paused or delayed.
    pub fn waits(&self) -> bool {
        matches!(
            self.job.state.as_str(),
            "wait" | "prioritized" | "paused" | "delayed"
        )
    }

    /// Whether a worker runs it now: active, and its worker holds its lock.
    pub fn runs(&self) -> bool {
        self.job.state == "active" && self.job.lock_ttl_ms.is_some()
    }

    /// Active, but its worker's lock is gone: the worker died.
    pub fn stalled(&self) -> bool {
        self.job.state == "active" && self.job.lock_ttl_ms.is_none()
    }

    /// `BullMQ job 3 in PostDeployMigrationQueue`.
    pub fn name(&self) -> String {
        format!("BullMQ job {} in {}", self.job.id, self.queue.name)
    }
}

/// What Redis says, for the analysis.
#[derive(Debug, Clone, Copy)]
pub struct QueueFacts<'a> {
    pub redis: &'a RedisEvidence,
}

impl<'a> QueueFacts<'a> {
    /// The BullMQ job that runs AsyncJob `async_job_id` (migration `version`): the one whose
    /// data names it, else the one holding the deduplication key `v{version}`.
    pub fn job_for(&self, async_job_id: &str, version: u32) -> Option<QueuedJob<'a>> {
        let jobs = || {
            self.redis
                .queues
                .iter()
                .flat_map(|q| q.jobs.iter().map(move |job| QueuedJob { queue: q, job }))
        };
        let by_data = jobs()
            .filter(|j| j.job.async_job_id.as_deref() == Some(async_job_id))
            // The live one before the finished ones.
            .max_by_key(|j| (j.runs() || j.waits() || j.stalled(), j.job.timestamp));
        by_data.or_else(|| {
            let key = format!("v{version}");
            let held = self
                .redis
                .queues
                .iter()
                .find(|q| q.name == POST_DEPLOY_QUEUE)?
                .deduplication
                .iter()
                .find(|d| d.id == key)?;
            jobs().find(|j| j.queue.name == POST_DEPLOY_QUEUE && j.job.id == held.job_id)
        })
    }

    /// Whether the deduplication key of migration `version` is alive.
    pub fn deduplication_alive(&self, version: u32) -> bool {
        let key = format!("v{version}");
        self.redis
            .queues
            .iter()
            .filter(|q| q.name == POST_DEPLOY_QUEUE)
            .any(|q| q.deduplication.iter().any(|d| d.id == key))
    }

    /// The servers alive that run a release older than `release`, as `id (version)`.
    pub fn servers_older_than(&self, release: &Version) -> Vec<String> {
        self.redis
            .servers
            .iter()
            .filter(|s| {
                s.version
                    .as_deref()
                    .and_then(|v| Version::parse(v).ok())
                    .is_some_and(|v| &v < release)
            })
            .map(|s| format!("{} ({})", s.id, s.version.as_deref().unwrap_or("?")))
            .collect()
    }

    /// Why migration `version`'s job may be delayed, as the registry shows it.
    pub fn delay_reason(&self, manifest: &Manifest, version: u32) -> Option<String> {
        let needed = &manifest.get(version)?.server_version;
        let older = self.servers_older_than(needed);
        (!older.is_empty()).then(|| {
            format!(
                "the server registry shows {} older than {needed}, which v{version} needs: in \
                 strict mode (NODE_ENV=production) the worker delays it by 60 s at a time \
                 (\"server cluster is not compatible\") until {} stops",
                crate::text::count(older.len(), "server", "servers"),
                older.join(", ")
            )
        })
    }
}

/// A sentence for the state detail of a migration whose BullMQ job is `job`, or `None`.
pub fn describe(job: &QueuedJob<'_>, delay_reason: Option<&str>) -> String {
    let name = job.name();
    match job.job.state.as_str() {
        "active" if job.runs() => format!(
            "{name} is active: a worker holds it (its lock has {} left)",
            crate::text::elapsed(job.job.lock_ttl_ms.unwrap_or(0) as f64 / 1000.0)
        ),
        "active" => format!(
            "{name} is active but its worker's lock is gone: the worker died mid-run; BullMQ's \
             stalled check will move it back to wait, or fail it"
        ),
        "paused" => format!("{name} waits in a paused queue: nothing runs it until it is resumed"),
        "delayed" => format!(
            "{name} is delayed{}{}",
            job.job
                .due_at
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|at| format!(" until {}", at.format("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_default(),
            delay_reason
                .map(|why| format!(": {why}"))
                .unwrap_or_else(|| {
                    ": Medplum's worker delays a post-deploy job when this worker, the \
                     migration's definition or the cluster is not ready for it; the server's \
                     logs say which"
                        .to_string()
                })
        ),
        state => format!("{name} is {state}: waiting for a worker"),
    }
}

/// The findings about the queues as a whole and about jobs no migration's state shows.
/// `async_jobs` are the AsyncJobs the snapshot holds: (id, the migration of a system
/// data-migration job, or `None` for a maintenance job or one inside a project, status).
pub fn findings(
    redis: Option<&RedisEvidence>,
    gap: Option<&str>,
    async_jobs: &[(String, Option<u32>, String)],
    next: Option<u32>,
    manifest: &Manifest,
    findings: &mut Vec<Finding>,
) {
    if let Some(gap) = gap {
        findings.push(Finding::new(
            "redis-not-read",
            Severity::Warning,
            format!(
                "Redis was given but could not be read, so whether a migration is queued, \
                 delayed or running in BullMQ is unknown: {gap}"
            ),
        ));
    }
    let Some(redis) = redis else { return };
    let facts = QueueFacts { redis };
    for queue in &redis.queues {
        if queue.paused {
            findings.push(Finding::new(
                "queue-paused",
                Severity::Warning,
                format!(
                    "{} is paused: no job on it runs until it is resumed",
                    queue.name
                ),
            ));
        }
        for job in &queue.jobs {
            let queued = QueuedJob { queue, job };
            let owner = job
                .async_job_id
                .as_deref()
                .and_then(|id| async_jobs.iter().find(|(aj, _, _)| aj == id));
            let version = owner.and_then(|(_, v, _)| *v).or_else(|| {
                job.deduplication_id
                    .as_deref()
                    .and_then(|d| d.strip_prefix('v'))
                    .and_then(|n| n.parse().ok())
            });
            if job.state == "failed" {
                let mut finding = Finding::new(
                    "queue-job-failed",
                    Severity::Warning,
                    format!(
                        "{} failed after {}: {}",
                        queued.name(),
                        crate::text::count(
                            usize::try_from(job.attempts_made.unwrap_or(0)).unwrap_or(0),
                            "attempt",
                            "attempts"
                        ),
                        job.failed_reason.as_deref().unwrap_or("no reason recorded")
                    ),
                );
                finding.version = version;
                findings.push(finding);
            }
            let live = queued.runs() || queued.waits() || queued.stalled();
            // The snapshot holds data-migration and maintenance jobs only: an admin's $reindex
            // on ReindexQueue runs for an AsyncJob it does not hold.
            let ended = match owner {
                None if queue.name == POST_DEPLOY_QUEUE => {
                    Some("is not in the database".to_string())
                }
                None => None,
                Some((_, _, status)) if status == "cancelled" || status == "completed" => {
                    Some(format!("is {status}"))
                }
                _ => None,
            };
            if let (true, Some(why), Some(async_job)) = (live, ended, job.async_job_id.as_deref()) {
                let mut finding = Finding::new(
                    "queue-job-orphaned",
                    Severity::Warning,
                    format!(
                        "{} is {} for AsyncJob {async_job}, which {why}: {}",
                        queued.name(),
                        job.state,
                        if queued.runs() {
                            "its work runs regardless ($cancel does not stop a running custom \
                             migration)"
                        } else {
                            "when a worker takes it, it finds nothing to do, or does work \
                             nobody tracks"
                        }
                    ),
                );
                finding.version = version;
                findings.push(finding);
            }
        }
    }
    for (id, version, status) in async_jobs {
        let Some(version) = version else { continue };
        let in_progress = status == "accepted" || status == "active";
        if in_progress
            && facts.job_for(id, *version).is_none()
            && !facts.deduplication_alive(*version)
        {
            findings.push(Finding::about(
                *version,
                "job-not-queued",
                Severity::Warning,
                format!(
                    "AsyncJob {id} (v{version}) is {status}, but Redis holds no BullMQ job for \
                     it and no deduplication key v{version}: nothing will run it. Re-queue it \
                     by asking the server to run post-deploy migrations (POST \
                     $MEDPLUM_BASE_URL/admin/super/migrate, which reuses this job), or cancel \
                     it"
                ),
            ));
        }
    }
    if !redis.servers.is_empty() {
        let mut versions: Vec<&str> = redis
            .servers
            .iter()
            .map(|s| s.version.as_deref().unwrap_or("unknown"))
            .collect();
        versions.sort_unstable();
        let mut tally: Vec<(String, usize)> = Vec::new();
        for v in versions {
            match tally.last_mut() {
                Some((last, n)) if last == v => *n += 1,
                _ => tally.push((v.to_string(), 1)),
            }
        }
        findings.push(Finding::new(
            "cluster",
            Severity::Info,
            format!(
                "{} alive by the server registry: {}{}",
                crate::text::count(redis.servers.len(), "server", "servers"),
                tally
                    .iter()
                    .map(|(v, n)| format!("{v} ×{n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if tally.len() > 1 {
                    " (mixed releases)"
                } else {
                    ""
                }
            ),
        ));
    }
    if let Some(next) = next {
        if let Some(why) = facts.delay_reason(manifest, next) {
            findings.push(Finding::about(
                next,
                "cluster-blocks-migration",
                Severity::Warning,
                format!("v{next} cannot run on this cluster yet: {why}"),
            ));
        }
    }
}
