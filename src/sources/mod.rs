//! Sources: the only code that talks to the outside world to gather evidence.
//!
//! This module owns reading what medmig audits: the PostgreSQL database (`postgres/`:
//! connection settings, TLS, the read-only session, and every query with the decoding of its
//! rows), the Medplum server's Redis (`redis/`: BullMQ's queues and the server registry,
//! read-only), the Medplum server's config files and environment (`config.rs`), and its log
//! files (`logs.rs`). What it reads becomes a [`Snapshot`](crate::snapshot::Snapshot), the plain
//! types the snapshot holds, or the input of `medplum/` and `bundle/`; what that evidence
//! means is theirs and `analyze/`'s business. Nothing here imports `analyze/`, `commands/`,
//! `render/` or `cli.rs`.

pub mod config;
pub mod logs;
pub mod postgres;
pub mod redis;
pub mod tls;
