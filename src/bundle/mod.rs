//! Support bundles: one redacted `.tar.gz` with everything an escalation needs — versions,
//! the snapshot, status, database diagnostics, the relevant server log lines, the config and a
//! timeline — that every command can read back offline.
//!
//! This module owns the bundle's layout and integrity (write, read, verify) and the processing
//! of what goes in: redaction (`redact`; FHIR resources in `fhir`, PostgreSQL's row values in
//! `rowdata`), query text (`sqltext`), logs (`logs`) and the incident timeline (`timeline`);
//! and what a bundle holds once read back for a report (`contents`).
//! Database reads stay in `sources/postgres/collect.rs`.

pub mod archive;
pub mod contents;
pub mod fhir;
pub mod logs;
pub mod redact;
pub mod rowdata;
pub mod sqltext;
pub mod timeline;
