//! Database diagnostics for support bundles: settings and their sources, sizes, sessions,
//! blocking, replication. Collected by `sources/postgres/collect.rs` (one query per kind,
//! each allowed to fail on its own), written by `bundle/`. Unlike the Snapshot, no analysis
//! reads them: they are evidence for a person.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The settings worth seeing when a migration misbehaves.
pub const SETTINGS: [&str; 32] = [
    "server_version",
    "max_connections",
    "superuser_reserved_connections",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "deadlock_timeout",
    "max_locks_per_transaction",
    "autovacuum",
    "autovacuum_max_workers",
    "autovacuum_naptime",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_analyze_scale_factor",
    "autovacuum_vacuum_cost_limit",
    "max_parallel_maintenance_workers",
    "max_parallel_workers",
    "max_worker_processes",
    "wal_level",
    "max_wal_size",
    "checkpoint_timeout",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "log_min_duration_statement",
    "track_activity_query_size",
    "shared_preload_libraries",
    "ssl",
    "TimeZone",
];

/// Diagnostics as collected: one JSON array of rows per kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Rows by kind: `settings`, `setting_overrides`, `database_size`, `largest_tables`,
    /// `activity`, `replication`.
    pub sections: BTreeMap<String, Value>,
    /// What could not be collected, and why.
    pub gaps: Vec<Gap>,
}

/// Something medmig could not collect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub what: String,
    pub why: String,
}
