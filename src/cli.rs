//! Command-line types: every flag medmig accepts, with the doc comments that become `--help`.
//!
//! This module owns parsing and the first validation of raw arguments (durations, formats,
//! state lists). It does not resolve connection sources or read files: `commands/` turns
//! [`ConnectArgs`] into the plain options `sources/postgres/connect.rs` resolves into settings,
//! and each command module consumes the rest.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::medplum::config::ConfigName;
use crate::snapshot::SslMode;
use crate::text::escape_controls;

/// Audit and recover the migration state of a Medplum server's PostgreSQL database.
///
/// medmig connects read-only to the database (or reads a snapshot taken earlier) and reports
/// where every pre-deploy and post-deploy migration stands.
#[derive(Debug, Parser)]
#[command(
    name = "medmig",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show every pre-deploy and post-deploy migration, its state and its run history.
    ///
    /// For example: medmig status --database-url postgres://medmig@db/medplum
    Status(StatusArgs),
    /// Capture what the analyses need as one JSON snapshot file, to read later with --snapshot.
    ///
    /// For example: medmig snapshot --out before-upgrade.json
    Snapshot(SnapshotArgs),
    /// Say whether this deployment may still be rolled back to an older release: SAFE (exit
    /// 0), UNSAFE (exit 1) or UNKNOWN (exit 3), with every check and its evidence.
    ///
    /// For example: medmig rollback-check --to 5.1.44 --from 5.2.2 --baseline 5.1.schema.json
    RollbackCheck(RollbackCheckArgs),
    /// Make a redacted support bundle (versions, migration state, job timelines, database
    /// diagnostics, server log lines, config) for an escalation, or check one.
    ///
    /// For example: medmig bundle --out case-1234.tar.gz --logs /var/log/medplum --since 48h
    Bundle(BundleArgs),
    /// Plan an upgrade to a release: every minor in between, the post-deploy migrations that
    /// must complete before each hop, the startup gate, and the rollback windows.
    ///
    /// For example: medmig upgrade-plan --to 5.2.4 --from 4.5.2
    UpgradePlan(UpgradePlanArgs),
    /// Ordered recovery steps, with evidence, risk, commands and checks, for everything
    /// abnormal that status finds.
    ///
    /// For example: medmig recover --format markdown > ticket.md
    Recover(RecoverArgs),
    /// Write a bundle's incident report: one self-contained HTML page with the verdicts, a
    /// timeline of jobs and log events, findings, recovery steps and diagnostics.
    ///
    /// For example: medmig report --bundle case-1234.tar.gz --out case-1234.html
    Report(ReportArgs),
    /// Capture a database's schema contract, or compare one with a baseline.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Wait until every post-deploy migration up to a target has completed (exit 0), one
    /// failed or shows a dead run (exit 1), or --timeout passed (exit 4), showing progress:
    /// for a deploy pipeline, after the post-deploy migrations were started.
    ///
    /// For example: medmig wait --release 5.2.4 --timeout 6h --redis-url "$REDIS_URL"
    Wait(WaitArgs),
    /// Print a shell's completion script for medmig, generated from the definitions --help
    /// shows.
    ///
    /// For example: medmig completions bash > /etc/bash_completion.d/medmig
    Completions(CompletionsArgs),
    /// Print the man page (roff) of medmig or of one of its commands, or write every page to
    /// a directory; generated from the definitions --help shows.
    ///
    /// For example: medmig man rollback-check | man -l -
    Man(ManArgs),
}

/// Arguments of `medmig wait`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").args(["until", "until_latest", "release"])))]
pub struct WaitArgs {
    /// Wait until migration N (and every one before it) has completed: vN or N.
    #[arg(long, value_name = "vN", value_parser = parse_migration)]
    pub until: Option<u32>,

    /// Wait for every post-deploy migration medmig's manifest knows (the default). A server
    /// of an older release never runs the newer ones: then give --release or --until.
    #[arg(long)]
    pub until_latest: bool,

    /// Wait for every post-deploy migration this release knows (by the manifest), e.g. the
    /// release just deployed.
    #[arg(long, value_name = "VERSION", value_parser = parse_release)]
    pub release: Option<semver::Version>,

    /// Give up after this long (exit 4); by default wait as long as it takes.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// How often to read: one short read-only transaction each time. At least 1s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Exit with code 1 as soon as a migration up to the target is in one of these states
    /// (comma-separated). `stale` is the evidence of a dead run.
    #[arg(
        long,
        value_name = "STATES",
        value_delimiter = ',',
        default_value = "failed,stale"
    )]
    pub fail_on: Vec<FailOnState>,

    /// How long a queued or running job may go without an update before it counts as stale.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub stale_after: Duration,

    /// table: on a terminal a live display, otherwise one line per change of state; json: one
    /// JSON object per line for each change, then the final status.
    #[arg(long, value_enum, default_value_t = WaitFormat::Table, value_name = "FORMAT")]
    pub format: WaitFormat,

    #[command(flatten)]
    pub evidence: EvidenceArgs,

    #[command(flatten)]
    pub connect: ConnectArgs,

    #[command(flatten)]
    pub manifest: ManifestArgs,
}

/// Formats of `wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitFormat {
    Table,
    Json,
}

/// Parses a post-deploy migration: `v51` or `51`.
pub fn parse_migration(text: &str) -> Result<u32, String> {
    let digits = text.trim().trim_start_matches('v');
    digits
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=crate::medplum::manifest::MAX_DATA_VERSION).contains(n))
        .ok_or_else(|| {
            format!(
                "'{text}' is not a post-deploy migration such as v51 (v1 to v{})",
                crate::medplum::manifest::MAX_DATA_VERSION
            )
        })
}

/// Parses `wait`'s interval: a duration of at least a second.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    match interval >= Duration::from_secs(1) {
        true => Ok(interval),
        false => Err(format!(
            "'{text}' is shorter than a second; poll at most once a second"
        )),
    }
}

/// Arguments of `medmig completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete medmig's commands, options and values in.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Arguments of `medmig man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print, as typed after medmig (status, schema diff); without
    /// it, the page of medmig itself, which lists the commands.
    #[arg(value_name = "COMMAND", conflicts_with = "out_dir")]
    pub command: Vec<String>,

    /// Write every page into this existing directory instead (medmig.1, medmig-status.1,
    /// medmig-schema-diff.1, …), each written to a temporary file first, then renamed.
    ///
    /// For example: medmig man --out-dir /usr/share/man/man1
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Replace pages already in --out-dir (regular files only).
    #[arg(long, requires = "out_dir")]
    pub force: bool,
}

/// `medmig schema …`.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Write the schema contract (tables, columns, indexes, constraints, functions,
    /// extensions) as JSON.
    ///
    /// For example: medmig schema capture --out before-upgrade.schema.json
    Capture(SchemaCaptureArgs),
    /// Compare the schema with a baseline and classify every difference by what it means for
    /// the baseline's code; exit 1 when a difference would break it.
    ///
    /// For example: medmig schema diff --baseline before-upgrade.schema.json
    Diff(SchemaDiffArgs),
}

/// Arguments of `medmig schema capture`.
#[derive(Debug, Args)]
pub struct SchemaCaptureArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub out: OutFileArgs,
}

/// Where a command writes its file.
#[derive(Debug, Args)]
pub struct OutFileArgs {
    /// Where to write (JSON), or - for standard output. Written to a temporary file first,
    /// then renamed, so that an interrupted run leaves nothing that looks complete. Only a
    /// regular file is ever replaced: a link, device, FIFO or directory is refused.
    #[arg(long = "out", value_name = "FILE")]
    pub path: PathBuf,

    /// Replace an existing regular file at --out.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `medmig schema diff`.
#[derive(Debug, Args)]
#[command(mut_arg("format", |a| a.help(
    "Output format; csv: a header row, then one row per difference (severity, id, object, message)"
)))]
pub struct SchemaDiffArgs {
    /// The schema to compare with: a `medmig schema capture` file or a snapshot.
    #[arg(long, value_name = "FILE")]
    pub baseline: PathBuf,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `medmig status`.
#[derive(Debug, Args)]
#[command(mut_arg("format", |a| a.help(
    "Output format; csv: a header row, then one row per post-deploy migration (the fields of \
     json's migrations; run history and findings are json only)"
)))]
pub struct StatusArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub manifest: ManifestArgs,

    #[command(flatten)]
    pub evidence: EvidenceArgs,

    /// How long a queued or running job may go without an update before it counts as stale.
    ///
    /// Accepts a number of seconds or a duration such as 90s, 45m, 2h, 1h30m.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub stale_after: Duration,

    /// Show every migration; by default long runs of completed ones are folded into one line.
    #[arg(long)]
    pub all: bool,

    /// Exit with code 1 when any migration is in one of these states (comma-separated).
    ///
    /// For example: --fail-on failed,stale,inconsistent
    #[arg(long, value_name = "STATES", value_delimiter = ',')]
    pub fail_on: Vec<FailOnState>,
}

/// `--fail-on`: the states of a post-deploy migration (`MigrationState` in
/// `analyze/migrations.rs`; `commands/status.rs` maps one to the other). The doc comments are
/// the help of each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOnState {
    /// Its number is at or below `dataVersion`.
    Completed,
    /// Its work is evidenced: a session runs it, its newest job recorded progress (a reindex)
    /// or is `active` (written by servers before 4.x only).
    Running,
    /// Its BullMQ job waits in Redis (waiting, delayed, paused or prioritized): queued, not
    /// running. Only with Redis read.
    Queued,
    /// Its newest job is `accepted` and nothing shows work: queued or running, PostgreSQL
    /// cannot tell (a custom migration writes nothing to its job until it ends); Redis, when
    /// read, tells (then `queued` or `running`).
    Accepted,
    /// Its newest job is `accepted` or `active`, was not updated for longer than the stale
    /// limit, and no session ran migration work while every session was visible.
    Stale,
    /// Its newest job is `error`.
    Failed,
    /// Its newest job is `cancelled`.
    Cancelled,
    /// It is the next to run (`dataVersion` + 1) and has no job yet.
    Pending,
    /// It comes after the next one and has no job yet.
    Waiting,
    /// The evidence contradicts itself; the report says what contradicts what.
    Inconsistent,
    /// The evidence was not read: `"DatabaseMigration"`, or its jobs in `"AsyncJob"` (a
    /// migration held them locked); the detail says which and why.
    Unknown,
}

/// `medmig bundle` makes a bundle; `medmig bundle verify FILE` checks one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BundleArgs {
    #[command(subcommand)]
    pub command: Option<BundleCommand>,

    #[command(flatten)]
    pub create: BundleCreateArgs,
}

/// `medmig bundle …`.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Recompute every checksum of a bundle: exit 1 on a mismatch or a missing file, 2 when
    /// the file is not a bundle.
    Verify {
        /// The bundle (.tar.gz).
        file: PathBuf,
    },
}

/// Arguments of `medmig bundle`.
#[derive(Debug, Args)]
pub struct BundleCreateArgs {
    /// Where to write the bundle (.tar.gz), or - for standard output when it is not a
    /// terminal. Written to a temporary file first, then renamed. Only a regular file is ever
    /// replaced: a link, device, FIFO or directory is refused.
    #[arg(long, value_name = "FILE", required = true)]
    pub out: Option<PathBuf>,

    /// Replace an existing regular file at --out.
    #[arg(long)]
    pub force: bool,

    /// Server logs to include: files, directories, .gz; Medplum's JSON lines or plain text.
    /// Repeat for several.
    #[arg(long, value_name = "PATH")]
    pub logs: Vec<PathBuf>,

    /// Keep log lines from this moment on: RFC 3339 time or a duration back from now (48h).
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub since: Option<When>,

    /// Keep log lines up to this moment: RFC 3339 time or a duration back from now.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub until: Option<When>,

    /// Also redact IPv4 and IPv6 addresses.
    #[arg(long)]
    pub redact_ip: bool,

    /// Also redact this word, e.g. a customer's name: whole words, any case, in free text only
    /// (log messages, error texts, names; never ids, states or kinds). Repeat for several.
    #[arg(long, value_name = "WORD")]
    pub keyword: Vec<String>,

    /// Bundle logs and config only; connect to no database.
    #[arg(long, conflicts_with_all = ["database_url", "sslmode", "ssl_root_cert"])]
    pub no_db: bool,

    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `medmig report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The bundle to report on, written by `medmig bundle`; nothing else is read (no
    /// database), so the report holds only what the redacted bundle holds.
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,

    /// Where to write the HTML page, or - for standard output. Written to a temporary file
    /// first, then renamed. Only a regular file is ever replaced: a link, device, FIFO or
    /// directory is refused.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Replace an existing regular file at --out.
    #[arg(long)]
    pub force: bool,
}

/// A moment given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// An RFC 3339 time.
    At(chrono::DateTime<chrono::Utc>),
    /// This long before now.
    Ago(Duration),
}

impl When {
    /// The moment, given the current time.
    pub fn resolve(self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        match self {
            When::At(at) => at,
            When::Ago(ago) => {
                now - chrono::Duration::from_std(ago).unwrap_or(chrono::Duration::MAX)
            }
        }
    }
}

/// Parses `2025-06-02T10:00:00Z` or `48h`.
pub fn parse_when(text: &str) -> Result<When, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(When::At(at.with_timezone(&chrono::Utc)));
    }
    parse_duration(text).map(When::Ago).map_err(|_| {
        format!("'{text}' is neither an RFC 3339 time (2025-06-02T10:00:00Z) nor a duration (48h)")
    })
}

/// Arguments of `medmig upgrade-plan`.
#[derive(Debug, Args)]
pub struct UpgradePlanArgs {
    /// The release to upgrade to, e.g. 5.2.4.
    #[arg(long, value_name = "VERSION", value_parser = parse_release)]
    pub to: semver::Version,

    /// The release deployed now; without it medmig infers a lower bound from the jobs.
    #[arg(long, value_name = "VERSION", value_parser = parse_release)]
    pub from: Option<semver::Version>,

    #[command(flatten)]
    pub gate: GateArgs,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: PlanOutputArgs,

    #[command(flatten)]
    pub manifest: ManifestArgs,
}

/// How medmig reads the sessions it sees.
#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// The statement_timeout of the Medplum server's ordinary connections (its
    /// database.queryTimeout; 60s unless changed). A session running a write for longer has
    /// raised it, as the post-deploy migration client does (it sets 0): medmig counts that
    /// as evidence that a migration runs.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub server_statement_timeout: Duration,
}

/// How the server whose startup gate is predicted runs.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Whether that server runs with strict version checks (NODE_ENV=production, or
    /// MEDPLUM_ENABLE_STRICT_MIGRATION_VERSION_CHECKS set to anything non-empty): from 4.3.0
    /// only then does its startup gate refuse. Assumed true (production) when not given; the
    /// output says so.
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub strict_version_checks: Option<bool>,
}

/// Arguments of `medmig recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The release being deployed when the server refuses to start (the startup gate): the
    /// steps then say which release to deploy first.
    #[arg(long, value_name = "VERSION", value_parser = parse_release)]
    pub deploying: Option<semver::Version>,

    /// How long a queued or running job may go without an update before it counts as stale.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub stale_after: Duration,

    #[command(flatten)]
    pub gate: GateArgs,

    #[command(flatten)]
    pub evidence: EvidenceArgs,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: PlanOutputArgs,

    #[command(flatten)]
    pub manifest: ManifestArgs,
}

/// Output of the plans (`upgrade-plan`, `recover`).
#[derive(Debug, Args)]
pub struct PlanOutputArgs {
    /// Output format; markdown is ready to paste into a support ticket.
    #[arg(long, value_enum, default_value_t = PlanFormat::Table, value_name = "FORMAT")]
    pub format: PlanFormat,
}

/// Formats of the plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
    Markdown,
}

/// Arguments of `medmig rollback-check`.
#[derive(Debug, Args)]
#[command(mut_arg("format", |a| a.help(
    "Output format; csv: a header row, then one row per check (id, severity, outcome, message, \
     evidence)"
)))]
pub struct RollbackCheckArgs {
    /// The release to go back to, e.g. 4.2.6.
    #[arg(long, value_name = "VERSION", value_parser = parse_release)]
    pub to: semver::Version,

    /// The release deployed now; without it medmig infers a lower bound from the jobs and
    /// says how, which cannot prove that the rollback skips no minor.
    #[arg(long, value_name = "VERSION", value_parser = parse_release)]
    pub from: Option<semver::Version>,

    /// The schema the older release expects: a `medmig schema capture` file or a snapshot
    /// taken before the upgrade (or from a database running --to).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Turn checks off by id (comma-separated or repeated); the output says they were ignored.
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    pub ignore: Vec<String>,

    #[command(flatten)]
    pub evidence: EvidenceArgs,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub manifest: ManifestArgs,
}

/// The command line as medmig parses it: the definitions of [`Cli`], with the ids that
/// `rollback-check --ignore` takes listed in its `--help`. The ids belong to the checks, which
/// this module does not import: the caller passes them (see `medmig::command`).
pub fn command(ignorable_ids: &[&str]) -> clap::Command {
    let ids = ignorable_ids.join(", ");
    Cli::command().mut_subcommand("rollback-check", |rollback| {
        rollback.mut_arg("ignore", |ignore| {
            let help = ignore
                .get_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            ignore
                .help(format!("{help} (--help lists the ids)"))
                .long_help(format!("{help}.\n\nIds: {ids}."))
        })
    })
}

/// What medmig prints for `err`, a bad argument in `args` (the program name first) as
/// `command` parses them: clap's message with the problem on one `error:` line (clap spreads a
/// list of missing arguments or possible values over indented lines), then clap's tips and
/// usage, then the `--help` of the subcommand that `args` invoked.
pub fn argument_error(command: &clap::Command, err: &clap::Error, args: &[OsString]) -> String {
    // clap quotes arguments back, and its plain text drops their escape sequences but keeps
    // their line breaks. Rendered from the arguments as medmig shows them, the message quotes
    // them escaped, and each line of it stays one line.
    let shown: Vec<OsString> = args
        .iter()
        .map(|arg| OsString::from(escape_controls(&arg.to_string_lossy()).into_owned()))
        .collect();
    let again = (shown != args)
        .then(|| command.clone().try_get_matches_from(&shown).err())
        .flatten()
        .filter(|again| again.kind() == err.kind());
    let rendered = again.as_ref().unwrap_or(err).render().to_string();
    let mut text = String::new();
    let blocks = rendered
        .split("\n\n")
        .filter(|block| !block.trim().is_empty());
    for (i, block) in blocks.enumerate() {
        let mut lines = block.lines();
        let first = lines.next().unwrap_or_default().trim_end();
        if first.starts_with("For more information") {
            continue;
        }
        if i == 0 {
            let rest: Vec<&str> = lines.map(str::trim).collect();
            let mut problem = first.to_string();
            if !rest.is_empty() {
                problem = format!("{problem} {}", rest.join(", "));
            }
            text.push_str(&escape_controls(&problem));
            text.push('\n');
        } else {
            for line in std::iter::once(first).chain(lines) {
                text.push_str(&escape_controls(line));
                text.push('\n');
            }
        }
        text.push('\n');
    }
    text.push_str(&format!(
        "For more information, try '{} --help'.\n",
        invoked_command(args.get(1..).unwrap_or_default())
    ));
    text
}

/// The (sub)command that `args` invoke, as `medmig schema diff`: option values and positional
/// arguments are skipped as clap would, by the definitions.
pub fn invoked_command(args: &[OsString]) -> String {
    let mut command = Cli::command();
    let mut path = vec![command.get_name().to_string()];
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else { break };
        if arg == "--" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let takes_value = command
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .is_some_and(|a| a.get_action().takes_values());
            if takes_value {
                args.next();
            }
            continue;
        }
        if arg.starts_with('-') {
            continue;
        }
        let Some(sub) = command.find_subcommand(arg).cloned() else {
            break;
        };
        path.push(sub.get_name().to_string());
        command = sub;
    }
    path.join(" ")
}

/// Parses a Medplum release: `4.2.6` or `v4.2.6`.
pub fn parse_release(text: &str) -> Result<semver::Version, String> {
    semver::Version::parse(text.trim().trim_start_matches('v'))
        .map_err(|err| format!("'{text}' is not a release such as 4.2.6 ({err})"))
}

/// Arguments of `medmig snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    #[command(flatten)]
    pub out: OutFileArgs,
}

/// Where an analysis reads its evidence: a live database or a snapshot file.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Read a snapshot written by `medmig snapshot` instead of connecting to a database.
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "database_url", "sslmode", "ssl_root_cert", "bundle",
    ])]
    pub snapshot: Option<PathBuf>,

    /// Read the snapshot inside a bundle written by `medmig bundle`.
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "database_url", "sslmode", "ssl_root_cert",
    ])]
    pub bundle: Option<PathBuf>,

    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// How to reach the Medplum database. Sources are tried in this order, first match wins:
/// --database-url, DATABASE_URL, --medplum-config, MEDPLUM_DATABASE_*, then the libpq
/// variables PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE.
#[derive(Debug, Args, Clone, Default)]
pub struct ConnectArgs {
    /// PostgreSQL URL or key=value connection string. Without it, the first source set wins:
    /// DATABASE_URL, --medplum-config, MEDPLUM_DATABASE_*, then the libpq variables PGHOST,
    /// PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE.
    ///
    /// MEDPLUM_DATABASE_HOST selects the Medplum variables, with MEDPLUM_DATABASE_PORT, _DBNAME,
    /// _USERNAME and _PASSWORD. Any of PGHOST, PGPORT, PGDATABASE, PGUSER selects the libpq
    /// ones (PGSSLMODE sets their TLS mode). Whichever source wins, what it leaves out is
    /// filled in as libpq does: the host from PGHOST (else localhost), the user from PGUSER
    /// (else USER, else postgres), the password from PGPASSWORD; and PGSSLROOTCERT names the
    /// certificate authorities when --ssl-root-cert is not given.
    ///
    /// For example: postgres://medmig@db.internal:5432/medplum?sslmode=require
    #[arg(long, value_name = "URL", help_heading = "Connection")]
    pub database_url: Option<String>,
    /// Medplum's Redis, read read-only: BullMQ's post-deploy and reindex queues and the server
    /// registry, recorded in the snapshot. Without it, REDIS_URL; without either, Redis is not
    /// read. redis://[user[:password]@]host[:port][/db], or rediss:// for TLS.
    #[arg(long, value_name = "URL", help_heading = "Connection")]
    pub redis_url: Option<String>,

    /// Medplum's own server config, as the server is started with it: a file path
    /// (medplum.config.json), or a config name such as file:base.json,env (sources file:PATH,
    /// env, aws:…, gcp:…, azure:…, deep-merged left to right, later ones winning; medmig
    /// cannot read aws, gcp and azure and says so). The merged "database" section is used to
    /// connect (unless --snapshot is given), and rollback-check, recover and bundle read how
    /// it defers post-deploy migrations.
    #[arg(long, value_name = "CONFIG", help_heading = "Connection",
          value_parser = ConfigName::parse)]
    pub medplum_config: Option<ConfigName>,

    /// TLS mode. Overrides the URL's sslmode, the config's ssl section and PGSSLMODE.
    ///
    /// prefer (the default) tries TLS and falls back to plain; require encrypts without
    /// checking the certificate; verify-full checks the chain and the host name.
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Connection")]
    pub sslmode: Option<SslModeArg>,

    /// PEM file of the certificate authorities to trust with verify-full (e.g. the RDS bundle);
    /// without it the system's roots are used [env: PGSSLROOTCERT].
    #[arg(long, value_name = "FILE", help_heading = "Connection")]
    pub ssl_root_cert: Option<PathBuf>,

    /// Give up connecting after this long [default: the URL's connect_timeout, else 10s]; 0
    /// means no limit.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          help_heading = "Connection")]
    pub connect_timeout: Option<Duration>,

    /// Cancel any single statement that runs longer than this; 0 means no limit, as in
    /// PostgreSQL. medmig also gives up on a server that sends no answer for this long plus 5s.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration,
          help_heading = "Connection")]
    pub statement_timeout: Duration,

    /// Give up rather than wait longer than this for a lock held by another session, such as
    /// a running migration; 0 means no limit but --statement-timeout, as in PostgreSQL.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration,
          help_heading = "Connection")]
    pub lock_timeout: Duration,

    /// With a sharded --medplum-config (one with "shards"), how many of the deployment's
    /// databases (the global one and each shard) to read at once, each on its own connection
    /// in its own read-only transaction.
    #[arg(long, value_name = "N", default_value_t = 4, help_heading = "Connection",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Only this database of a sharded deployment: `global` (the top-level database) or a
    /// shard's id. From a live deployment, only that database is read; from a snapshot or a
    /// bundle, only its evidence is used.
    #[arg(long, value_name = "ID", help_heading = "Connection")]
    pub shard: Option<String>,
}

/// `--sslmode`: the TLS modes, named as libpq names them (the snapshot records the one in
/// force as [`SslMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SslModeArg {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl From<SslModeArg> for SslMode {
    fn from(mode: SslModeArg) -> SslMode {
        match mode {
            SslModeArg::Disable => SslMode::Disable,
            SslModeArg::Prefer => SslMode::Prefer,
            SslModeArg::Require => SslMode::Require,
            SslModeArg::VerifyFull => SslMode::VerifyFull,
        }
    }
}

/// Output format and destination options shared by the report commands.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
    pub format: Format,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable table.
    Table,
    /// One JSON document with "format_version": 1.
    Json,
    /// Comma-separated values with a header row.
    Csv,
}

/// Which data-version manifest describes the post-deploy migrations.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// Medplum's data-version-manifest.json from the release you run, to replace the embedded
    /// one (which describes migrations up to server 5.2.4).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// A medmig migration catalogue (what each post-deploy migration does to the schema), to
    /// replace the embedded one (v1 to v53, read from Medplum's source).
    #[arg(long, value_name = "FILE")]
    pub migration_catalogue: Option<PathBuf>,
}

/// Parses `90`, `90s`, `500ms`, `45m`, `2h`, `1h30m`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. 30s, 5m or 1h".into());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "'{text}' is not a duration; write e.g. 30s, 5m or 1h"
            ));
        }
        let amount: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("'{text}' is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            other => {
                return Err(format!(
                    "unknown unit '{other}' in '{text}'; use ms, s, m, h or d"
                ))
            }
        };
        total += unit
            .checked_mul(u32::try_from(amount).map_err(|_| format!("'{text}' is too large"))?)
            .ok_or_else(|| format!("'{text}' is too large"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("45m"), Ok(Duration::from_secs(2700)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        assert!(parse_duration("").unwrap_err().contains("30s"));
        assert!(parse_duration("h").unwrap_err().contains("not a duration"));
        assert!(parse_duration("5w")
            .unwrap_err()
            .contains("unknown unit 'w'"));
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
        command(&["some-check"]).debug_assert();
    }

    #[test]
    fn the_invoked_command_skips_option_values() {
        let args = |line: &str| -> Vec<OsString> { line.split(' ').map(OsString::from).collect() };
        assert_eq!(
            invoked_command(&args("schema diff --bundel x")),
            "medmig schema diff"
        );
        assert_eq!(
            invoked_command(&args("bundle --out verify --bogus")),
            "medmig bundle"
        );
        assert_eq!(
            invoked_command(&args("bundle --out=x verify b")),
            "medmig bundle verify"
        );
        assert_eq!(invoked_command(&args("statsu status")), "medmig");
        assert_eq!(invoked_command(&[]), "medmig");
    }
}
