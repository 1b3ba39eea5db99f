//! `medmig wait`: reads the live database (and Redis) again and again until every post-deploy
//! migration up to a target has completed, one reaches a state of `--fail-on`, the timeout
//! passes or a signal comes; reports each change of state as it is seen.
//!
//! This module owns the loop: the target, the polls and their spacing, the reconnections
//! after a lost connection, the deadline, the signals, and the decision to stop. The reads
//! are `sources::postgres::collect::Poller`'s (one short read-only transaction a poll, the
//! catalog read once), the states `analyze/migrations.rs`'s, the text `render/wait.rs`'s.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use chrono::Utc;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

use crate::analyze::migrations::{analyze, MigrationState, MigrationStatus, StatusReport};
use crate::cli::{WaitArgs, WaitFormat};
use crate::medplum::catalogue::Catalogue;
use crate::medplum::manifest::Manifest;
use crate::render::wait::{self as render, Event, Followed, Outcome, PollLoad};
use crate::sources::postgres::collect::Poller;

/// After this long without a successful poll, `wait` gives up (exit 2).
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// The longest pause between two attempts to read again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How often, when nothing changes, the plain output says where the migrations stand (so a
/// CI log shows life, and a CI runner that stops silent jobs does not stop this one).
const HEARTBEAT: Duration = Duration::from_secs(600);

/// The exit code of a wait that timed out.
pub const EXIT_TIMED_OUT: u8 = 4;

/// Runs the command; the result is the exit code (0 completed, 1 a state of `--fail-on`, 4 the
/// timeout, 130 or 143 a signal).
pub fn run(args: &WaitArgs, out: &mut impl Write) -> Result<u8> {
    let (manifest, catalogue) = super::load_knowledge(&args.manifest)?;
    let (target, target_by) = target(args, &manifest)?;
    let settings = super::settings(&args.connect)?;
    // A sharded deployment: a poller for every database (or the one --shard names).
    let (only, shards) = super::shard_settings(&settings, &args.connect)?;
    let sharded = !shards.is_empty();
    let label = args
        .connect
        .shard
        .clone()
        .unwrap_or_else(|| crate::snapshot::GLOBAL_SHARD.to_string());
    let settings = match only {
        Some(mut only) => only.settings(settings),
        None => settings,
    };
    let mut pollers = vec![(label, Poller::new(settings))];
    for (id, shard) in shards {
        let shard = shard.with_context(|| format!("shard {id} of --medplum-config"))?;
        pollers.push((id, Poller::new(shard)));
    }
    let redis = super::redis_target(&args.connect)?;
    let live = args.format == WaitFormat::Table
        && std::io::stderr().is_terminal()
        && std::io::stdout().is_terminal();
    let rt = super::runtime()?;
    rt.block_on(async {
        let signals = Signals::new()?;
        let display = Display::new(args.format, live, out);
        let waiter = Waiter {
            args,
            catalogue: &catalogue,
            target,
            target_by,
            reader: Reader {
                args,
                manifest: &manifest,
                catalogue: &catalogue,
                pollers,
                sharded,
                redis,
            },
            signals,
            display,
        };
        waiter.run().await
    })
}

/// The migration waited for, and how it was chosen.
fn target(args: &WaitArgs, manifest: &Manifest) -> Result<(u32, String)> {
    if let Some(number) = args.until {
        if number > manifest.highest() {
            super::note(format_args!(
                "v{number} is past the newest migration the manifest ({}) knows, v{}: medmig \
                 waits for dataVersion to reach it, with no job to follow until the server \
                 creates one",
                manifest.origin,
                manifest.highest()
            ));
        }
        return Ok((number, "--until".to_string()));
    }
    if let Some(release) = &args.release {
        let known = manifest.known_by(release);
        if known == 0 {
            return Err(anyhow!(
                "release {release} has no post-deploy migration by the manifest ({}): pass \
                 --until vN, or --manifest with the release's data-version-manifest.json",
                manifest.origin
            ));
        }
        if !manifest.covers(release) {
            super::note(format_args!(
                "the manifest ({}) ends at {}: {release} may know migrations after v{known} \
                 that medmig cannot wait for; pass --manifest with its \
                 data-version-manifest.json or --until vN",
                manifest.origin,
                manifest
                    .newest_release()
                    .map_or("?".to_string(), ToString::to_string)
            ));
        }
        return Ok((known, format!("the newest migration {release} knows")));
    }
    let highest = manifest.highest();
    let newest = manifest
        .newest_release()
        .map_or("?".to_string(), ToString::to_string);
    Ok((
        highest,
        format!(
            "the newest migration the manifest knows, from {newest}; a server of an older \
             release never runs it: pass --release with the deployed release"
        ),
    ))
}

/// SIGINT and SIGTERM, caught for a clean end.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Ends when a signal comes, with the exit code a shell shows for it.
    async fn next(&mut self) -> u8 {
        tokio::select! {
            _ = self.interrupt.recv() => 130,
            _ = self.terminate.recv() => 143,
        }
    }
}

/// Ends at `deadline`, never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What interrupted a pause or a poll.
enum Interruption {
    Signal(u8),
    Deadline,
}

struct Waiter<'a, W: Write> {
    args: &'a WaitArgs,
    catalogue: &'a Catalogue,
    target: u32,
    target_by: String,
    reader: Reader<'a>,
    signals: Signals,
    display: Display<'a, W>,
}

/// A migration of a database: the shard (`None` in a deployment of one database) and its
/// number.
type Key = (Option<String>, u32);

/// What the loop keeps between polls.
#[derive(Default)]
struct Progress {
    polls: u32,
    first_load: PollLoad,
    later_min: Option<PollLoad>,
    later_max: Option<PollLoad>,
    /// The migrations followed (those up to the target not completed at the first poll) as
    /// last reported.
    followed: BTreeMap<Key, Followed>,
    data_version: Option<i64>,
    failed_polls: u32,
    failing_since: Option<Instant>,
    /// For each migration in a state of `--fail-on`, on how many polls in a row it was.
    failing_streak: BTreeMap<Key, u32>,
    redis_gap: Option<String>,
    last_output: Option<Instant>,
}

impl<W: Write> Waiter<'_, W> {
    async fn run(mut self) -> Result<u8> {
        // A timeout too far off to be told from none is none.
        let deadline = self
            .args
            .timeout
            .and_then(|t| Instant::now().checked_add(t));
        let mut progress = Progress::default();
        loop {
            let polled = tokio::select! {
                biased;
                code = self.signals.next() => Err(Interruption::Signal(code)),
                _ = until(deadline) => Err(Interruption::Deadline),
                polled = self.reader.poll_once() => Ok(polled),
            };
            let polled = match polled {
                Ok(polled) => polled,
                Err(interruption) => return self.interrupted(&progress, interruption),
            };
            let status = match polled {
                Ok(status) => status,
                Err(err) if progress.polls == 0 => return Err(err),
                Err(err) => {
                    progress.failed_polls += 1;
                    let since = *progress.failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= GIVE_UP_AFTER {
                        let why = format!(
                            "medmig could not read for {} and gave up waiting",
                            crate::text::elapsed(since.elapsed().as_secs_f64())
                        );
                        self.finish(&progress, Outcome::Unreadable, 2, format!("{why}: {err:#}"))?;
                        return Err(err.context(why));
                    }
                    let backoff = backoff(progress.failed_polls);
                    self.emit(
                        &mut progress,
                        &Event::Reconnecting {
                            at: Utc::now(),
                            error: format!("{err:#}"),
                            retry_in_seconds: backoff.as_secs(),
                        },
                    )?;
                    match self.pause(backoff, deadline).await {
                        None => continue,
                        Some(interruption) => return self.interrupted(&progress, interruption),
                    }
                }
            };
            if progress.failed_polls > 0 {
                let failed_polls = std::mem::take(&mut progress.failed_polls);
                progress.failing_since = None;
                self.emit(
                    &mut progress,
                    &Event::Reconnected {
                        at: Utc::now(),
                        failed_polls,
                    },
                )?;
            }
            if let Some(end) = self.observe(&mut progress, &status)? {
                return Ok(end);
            }
            if let Some(interruption) = self.pause(self.args.interval, deadline).await {
                return self.interrupted(&progress, interruption);
            }
        }
    }
}

/// What reads: a poller for each database (the global one first, then each shard of a
/// sharded deployment), Redis, and what the analysis needs.
struct Reader<'a> {
    args: &'a WaitArgs,
    manifest: &'a Manifest,
    catalogue: &'a Catalogue,
    pollers: Vec<(String, Poller)>,
    /// Whether the deployment is sharded: then every migration is named with its database.
    sharded: bool,
    redis: Option<crate::sources::redis::RedisTargets>,
}

impl Reader<'_> {
    /// One poll: each database in turn, Redis after the global one, then the analysis of
    /// each. A database that cannot be read fails the poll, naming it.
    async fn poll_once(&mut self) -> Result<PolledStatus> {
        let mut load = PollLoad::default();
        let mut full = true;
        let mut databases = Vec::new();
        let mut redis: Option<(Option<crate::snapshot::RedisEvidence>, Option<String>)> = None;
        let mut at = None;
        for (id, poller) in &mut self.pollers {
            let named = |err: anyhow::Error| match self.sharded {
                true => err.context(format!("shard {id}")),
                false => err,
            };
            let polled = poller.poll().await.map_err(named)?;
            load.statements += polled.load.statements;
            load.rows += polled.load.rows;
            full &= polled.full;
            let snapshot = polled.snapshot;
            snapshot.require_readable().map_err(named)?;
            // The queues are the deployment's: read once, with the global database.
            match &redis {
                None => {
                    if let Some(targets) = &self.redis {
                        let _ = super::read_redis_quietly(targets, snapshot).await;
                    }
                    redis = Some((snapshot.redis.clone(), snapshot.redis_gap.clone()));
                }
                Some((evidence, gap)) => {
                    snapshot.redis.clone_from(evidence);
                    snapshot.redis_gap.clone_from(gap);
                }
            }
            at.get_or_insert(snapshot.taken_at);
            let status = analyze(
                snapshot,
                self.manifest,
                self.catalogue,
                super::status_options(
                    snapshot.taken_at,
                    self.args.stale_after,
                    self.args.evidence.server_statement_timeout,
                ),
            );
            databases.push((self.sharded.then(|| id.clone()), status));
        }
        Ok(PolledStatus {
            at: at.unwrap_or_else(Utc::now),
            databases,
            load,
            redis_gap: redis
                .and_then(|(_, gap)| gap)
                .filter(|_| self.redis.is_some()),
            full,
        })
    }

    /// Makes the next poll of every database a full read.
    fn read_everything_next(&mut self) {
        for (_, poller) in &mut self.pollers {
            poller.read_everything_next();
        }
    }
}

impl<W: Write> Waiter<'_, W> {
    /// Takes in one poll's status: reports what changed, and says whether to stop (with the
    /// exit code).
    fn observe(&mut self, progress: &mut Progress, polled: &PolledStatus) -> Result<Option<u8>> {
        let first = progress.polls == 0;
        progress.polls += 1;
        if first {
            progress.first_load = polled.load;
        } else {
            let max = progress.later_max.get_or_insert(polled.load);
            max.statements = max.statements.max(polled.load.statements);
            max.rows = max.rows.max(polled.load.rows);
            let min = progress.later_min.get_or_insert(polled.load);
            min.statements = min.statements.min(polled.load.statements);
            min.rows = min.rows.min(polled.load.rows);
        }
        let global = &polled.databases[0].1;
        progress.data_version = global.post_deploy.data_version;
        if polled.redis_gap != progress.redis_gap && !(first && polled.redis_gap.is_none()) {
            progress.redis_gap = polled.redis_gap.clone();
            self.emit(
                progress,
                &Event::Redis {
                    at: polled.at,
                    gap: polled.redis_gap.clone(),
                },
            )?;
        }
        let now_followed = self.followed(&polled.databases);
        if first {
            progress.followed = now_followed.clone();
            self.display.start(&now_followed);
            self.emit(
                progress,
                &Event::Started {
                    at: polled.at,
                    target: self.target,
                    target_by: self.target_by.clone(),
                    data_version: global.post_deploy.data_version,
                    migrations: now_followed.values().cloned().collect(),
                },
            )?;
        } else {
            for (key, now) in &now_followed {
                let before = progress.followed.get(key);
                let changed = before.is_none_or(|b| b.state != now.state || b.job_id != now.job_id);
                if changed {
                    let previous = before.map_or(MigrationState::Waiting, |b| b.state);
                    self.emit(
                        progress,
                        &Event::Changed {
                            at: polled.at,
                            previous,
                            migration: now.clone(),
                        },
                    )?;
                }
            }
            progress.followed = now_followed;
        }
        self.display.update(&progress.followed);

        // A state of --fail-on, up to the target, in any database: stop, exit 1, once
        // confirmed (see `confirmed`); until then, the next poll reads everything again.
        let candidates: Vec<(Key, &MigrationStatus)> = polled
            .databases
            .iter()
            .flat_map(|(shard, status)| {
                status
                    .migrations
                    .iter()
                    .map(move |m| ((shard.clone(), m.version), m))
            })
            .filter(|(_, m)| m.version <= self.target)
            .filter(|(_, m)| {
                self.args
                    .fail_on
                    .contains(&super::status::fail_on_state(m.state))
            })
            .collect();
        let mut streak = BTreeMap::new();
        for (key, _) in &candidates {
            let seen = progress.failing_streak.get(key).copied().unwrap_or(0) + 1;
            streak.insert(key.clone(), seen);
        }
        progress.failing_streak = streak;
        let unconfirmed = candidates
            .iter()
            .any(|(key, m)| !confirmed(m.state, progress.failing_streak[key], polled.full));
        if unconfirmed {
            self.reader.read_everything_next();
        }
        let failing: Vec<String> = candidates
            .iter()
            .filter(|_| !unconfirmed)
            .map(|((shard, _), m)| {
                let named = match shard {
                    Some(shard) => format!("{shard} v{}", m.version),
                    None => format!("v{}", m.version),
                };
                match (&m.detail, &m.current.error) {
                    (Some(detail), _) => format!("{named} is {}: {detail}", m.state.as_str()),
                    (None, Some(error)) => format!("{named} is {}: {error}", m.state.as_str()),
                    (None, None) => format!("{named} is {}", m.state.as_str()),
                }
            })
            .collect();
        if !failing.is_empty() {
            let code = 1;
            return self
                .finish(progress, Outcome::Failed, code, failing.join("; "))
                .map(Some);
        }
        // Completed when every database's dataVersion has reached the target.
        let done = polled.databases.iter().all(|(_, status)| {
            status
                .post_deploy
                .data_version
                .is_some_and(|v| v >= i64::from(self.target))
        });
        if done {
            let reason = match polled.databases.len() {
                1 => format!(
                    "every post-deploy migration up to v{} has completed (dataVersion {})",
                    self.target,
                    global.post_deploy.data_version.unwrap_or_default()
                ),
                n => format!(
                    "every post-deploy migration up to v{} has completed on all {n} databases \
                     (the global one and every shard)",
                    self.target
                ),
            };
            return self
                .finish(progress, Outcome::Completed, 0, reason)
                .map(Some);
        }
        // Nothing changed for a while: say where things stand, in the plain formats.
        if !self.display.is_live()
            && progress
                .last_output
                .is_some_and(|last| last.elapsed() >= HEARTBEAT)
        {
            let in_progress: Vec<Followed> = progress
                .followed
                .values()
                .filter(|f| f.state != MigrationState::Completed)
                .cloned()
                .collect();
            self.emit(
                progress,
                &Event::StillWaiting {
                    at: polled.at,
                    migrations: in_progress,
                },
            )?;
        }
        Ok(None)
    }

    /// The migrations followed, in every database: each one up to the target that is not
    /// completed, and (after the first poll) each one followed before.
    fn followed(&self, databases: &[(Option<String>, StatusReport)]) -> BTreeMap<Key, Followed> {
        let mut followed = BTreeMap::new();
        for (shard, status) in databases {
            for m in status
                .migrations
                .iter()
                .filter(|m| m.version <= self.target)
            {
                let key = (shard.clone(), m.version);
                if m.state == MigrationState::Completed && !self.display.follows(&key) {
                    continue;
                }
                let types = self
                    .catalogue
                    .get(m.version)
                    .and_then(|entry| entry.reindex.as_ref())
                    .map(|reindex| reindex.resource_types.len());
                followed.insert(key, Followed::of(shard.as_deref(), m, types));
            }
        }
        followed
    }

    /// The end a signal or the deadline brings.
    fn interrupted(&mut self, progress: &Progress, interruption: Interruption) -> Result<u8> {
        match interruption {
            Interruption::Deadline => self.timed_out(progress),
            Interruption::Signal(code) => self.finish(
                progress,
                Outcome::Interrupted,
                code,
                "stopped by a signal".into(),
            ),
        }
    }

    fn timed_out(&mut self, progress: &Progress) -> Result<u8> {
        let timeout = self.args.timeout.unwrap_or_default();
        let waiting: Vec<String> = progress
            .followed
            .values()
            .filter(|f| f.state != MigrationState::Completed)
            .map(|f| format!("{} {}", f.label(), f.state.as_str()))
            .collect();
        let reason = format!(
            "--timeout {} passed; not completed: {}",
            crate::text::elapsed(timeout.as_secs_f64()),
            if waiting.is_empty() {
                "unknown (no poll succeeded)".to_string()
            } else {
                waiting.join(", ")
            }
        );
        self.finish(progress, Outcome::TimedOut, EXIT_TIMED_OUT, reason)
    }

    fn finish(
        &mut self,
        progress: &Progress,
        outcome: Outcome,
        code: u8,
        reason: String,
    ) -> Result<u8> {
        let event = Event::Finished {
            format_version: render::FORMAT_VERSION,
            at: Utc::now(),
            outcome,
            exit_code: code,
            reason,
            target: self.target,
            data_version: progress.data_version,
            polls: progress.polls,
            first_poll: progress.first_load,
            later_polls_min: progress.later_min,
            later_polls_max: progress.later_max,
            migrations: progress.followed.values().cloned().collect(),
        };
        self.display.finish(&event)?;
        Ok(code)
    }

    fn emit(&mut self, progress: &mut Progress, event: &Event) -> Result<()> {
        progress.last_output = Some(Instant::now());
        self.display.event(event)
    }

    /// Sleeps `pause`, unless a signal comes or the deadline passes first.
    async fn pause(&mut self, pause: Duration, deadline: Option<Instant>) -> Option<Interruption> {
        tokio::select! {
            biased;
            code = self.signals.next() => Some(Interruption::Signal(code)),
            _ = until(deadline) => Some(Interruption::Deadline),
            _ = tokio::time::sleep(pause) => None,
        }
    }
}

/// How many polls in a row must see a state of `--fail-on` before `wait` ends on it, the
/// last of them a full read (the catalog and every job, so that nothing a window of jobs could
/// miss decides the exit code): one for a state the jobs say (`failed`), three for `stale`,
/// which rests on the sessions seen at one moment (a custom migration between two batches
/// shows none), so that it is seen over two intervals before it counts.
fn confirmed(state: MigrationState, polls_in_a_row: u32, full: bool) -> bool {
    let needed = match state {
        MigrationState::Stale => 3,
        _ => 1,
    };
    full && polls_in_a_row >= needed
}

/// One poll's outcome.
struct PolledStatus {
    at: chrono::DateTime<Utc>,
    /// Each database's status: `None` names the one database of an unsharded deployment,
    /// else the shard (`global` first).
    databases: Vec<(Option<String>, StatusReport)>,
    load: PollLoad,
    redis_gap: Option<String>,
    /// Whether the poll read everything, not only the window of jobs written since.
    full: bool,
}

/// The pause before the `failed`-th attempt to read again: 1 s, 2 s, 4 s, … up to a minute.
fn backoff(failed: u32) -> Duration {
    let seconds = 1u64 << failed.saturating_sub(1).min(6);
    Duration::from_secs(seconds).min(MAX_BACKOFF)
}

/// Where the output goes: plain lines or JSON on stdout, or a live display on the terminal.
struct Display<'a, W: Write> {
    format: WaitFormat,
    out: &'a mut W,
    live: Option<Live>,
    /// The migrations followed since the first poll.
    followed: Vec<Key>,
}

/// The live display: one line per followed migration, redrawn on stderr.
struct Live {
    multi: MultiProgress,
    bars: BTreeMap<Key, ProgressBar>,
}

impl<'a, W: Write> Display<'a, W> {
    fn new(format: WaitFormat, live: bool, out: &'a mut W) -> Display<'a, W> {
        let live = live.then(|| Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: BTreeMap::new(),
        });
        Display {
            format,
            out,
            live,
            followed: Vec::new(),
        }
    }

    fn is_live(&self) -> bool {
        self.live.is_some()
    }

    fn follows(&self, key: &Key) -> bool {
        self.followed.contains(key)
    }

    fn start(&mut self, followed: &BTreeMap<Key, Followed>) {
        self.followed = followed.keys().cloned().collect();
        let Some(live) = &mut self.live else { return };
        for (key, f) in followed {
            let bar = live.multi.add(ProgressBar::new_spinner());
            bar.set_prefix(crate::text::escape_controls(&f.label()).into_owned());
            bar.enable_steady_tick(Duration::from_millis(250));
            live.bars.insert(key.clone(), bar);
        }
    }

    fn update(&mut self, followed: &BTreeMap<Key, Followed>) {
        let Some(live) = &mut self.live else { return };
        for (version, f) in followed {
            let Some(bar) = live.bars.get(version) else {
                continue;
            };
            let message = crate::text::escape_controls(&f.summary()).into_owned();
            match (f.reindex, f.reindex_types_total) {
                (Some(counts), Some(total)) if f.state != MigrationState::Completed => {
                    bar.set_style(bar_style("{prefix:>5} {spinner} [{bar:24}] {msg}"));
                    bar.set_length(total as u64);
                    bar.set_position(counts.types_done as u64);
                }
                _ => bar.set_style(bar_style("{prefix:>5} {spinner} {msg}")),
            }
            if f.state == MigrationState::Completed {
                bar.disable_steady_tick();
            }
            bar.set_message(message);
        }
    }

    fn event(&mut self, event: &Event) -> Result<()> {
        match (&self.live, self.format) {
            (Some(live), _) => {
                for line in render::lines(event) {
                    live.multi
                        .println(crate::text::escape_controls(&line))
                        .map_err(|err| anyhow!("cannot write to the terminal: {err}"))?;
                }
            }
            (None, WaitFormat::Json) => render::json_line(self.out, event)?,
            (None, WaitFormat::Table) => render::text_lines(self.out, event)?,
        }
        Ok(())
    }

    fn finish(&mut self, event: &Event) -> Result<()> {
        if let Some(live) = self.live.take() {
            for bar in live.bars.values() {
                bar.finish_and_clear();
            }
            let _ = live.multi.clear();
        }
        match self.format {
            WaitFormat::Json => render::json_line(self.out, event)?,
            WaitFormat::Table => render::text_lines(self.out, event)?,
        }
        Ok(())
    }
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the templates are valid")
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_counts_once_a_full_read_confirms_it_and_stale_after_three_polls() {
        assert!(confirmed(MigrationState::Failed, 1, true));
        assert!(!confirmed(MigrationState::Failed, 1, false));
        assert!(!confirmed(MigrationState::Failed, 4, false));
        assert!(!confirmed(MigrationState::Stale, 2, true));
        assert!(confirmed(MigrationState::Stale, 3, true));
        assert!(!confirmed(MigrationState::Stale, 3, false));
    }

    #[test]
    fn the_backoff_doubles_up_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
