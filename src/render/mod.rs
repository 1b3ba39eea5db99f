//! Report writers: one function per format, each writing into any `Write`, so that tests
//! render into a `Vec<u8>`.
//!
//! This module owns presentation only — column choice, folding, time formatting. It computes
//! no state: everything it prints comes from `analyze/`.
//!
//! Names and messages in a report come from outside (a database, a snapshot, a bundle, a
//! config): every line of the table and Markdown formats is written with
//! [`writeln_escaped!`], every CSV field escaped, and JSON strings are escaped by
//! [`json`]; see [`crate::text::escape_controls`]. The HTML incident report (`html`, with its
//! timeline picture in `svg_timeline`) passes every text through [`html::escape`].

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::snapshot::Snapshot;

/// `writeln!` for one line of a report for people: the formatted line with every control
/// character escaped ([`crate::text::escape_controls`]), then a newline. The line must not
/// contain a newline of its own: medmig writes blank lines with `writeln!(out)`, and a newline
/// from outside is shown as `\n`, so that no value can start a line of its own.
macro_rules! writeln_escaped {
    ($out:expr, $($arg:tt)*) => {
        $crate::render::write_escaped_line($out, &format!($($arg)*))
    };
}

/// What [`writeln_escaped!`] does with the formatted line.
pub(crate) fn write_escaped_line(out: &mut impl std::io::Write, line: &str) -> std::io::Result<()> {
    out.write_all(crate::text::escape_controls(line).as_bytes())?;
    out.write_all(b"\n")
}

pub mod csv;
pub mod html;
pub mod json;
pub mod markdown;
pub mod svg_timeline;
pub mod table;
pub mod wait;

/// Where a report's evidence came from, printed in every format (never a password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportSource {
    /// `live`, `snapshot` or `bundle`.
    pub kind: &'static str,
    /// The snapshot or bundle file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub server_version: String,
    /// When the evidence was read (the database's clock).
    pub taken_at: DateTime<Utc>,
    /// Which data-version manifest was used: `embedded` or a path.
    pub manifest: String,
}

impl ReportSource {
    /// The source of a report on `snapshot`, read as `kind` (from `file`, if any).
    pub fn of(
        snapshot: &Snapshot,
        kind: &'static str,
        file: Option<String>,
        manifest: &str,
    ) -> ReportSource {
        ReportSource {
            kind,
            file,
            host: snapshot.source.host.clone(),
            port: snapshot.source.port,
            database: snapshot.source.database.clone(),
            user: snapshot.source.user.clone(),
            server_version: snapshot.source.server_version.clone(),
            taken_at: snapshot.taken_at,
            manifest: manifest.to_string(),
        }
    }
}

/// RFC 3339 in UTC with second precision, as every format prints times.
pub fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
