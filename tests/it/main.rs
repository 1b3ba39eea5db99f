//! Integration tests: a real PostgreSQL (see `harness.rs` for how it is found) and the real
//! `medmig` binary. One test binary, shared helpers.

mod bundle;
mod completions;
mod config;
mod connection;
mod golden;
mod harness;
mod help;
mod hostile_files;
mod locks;
mod numbers;
mod outfile;
mod phi;
mod plans;
mod redis;
mod relay;
mod report;
mod rollback;
mod scale;
mod schema;
mod shards;
mod snapshot;
mod status;
mod terminal;
mod traces;
mod wait;
