//! Sources: the only code that talks to the outside world to gather evidence.
//!
//! This module owns reading what medmig audits: the PostgreSQL database (`postgres/`:
//! connection settings, TLS, the read-only session, and every query with the decoding of its
//! rows), and the Medplum server's config files and environment (`config.rs`). What it reads becomes a [`Snapshot`](crate::snapshot::Snapshot) or the plain types
//! the snapshot holds; what that evidence means is `analyze/`'s and `medplum/`'s business,
//! and nothing here imports `analyze/`, `commands/`, `render/` or `cli.rs`.

pub mod config;
pub mod postgres;
