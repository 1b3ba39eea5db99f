//! Medplum knowledge kept as data: the data-version manifest of post-deploy migrations, the
//! catalogue of what each does to the schema, and the server config file.
//!
//! This module owns what medmig knows about Medplum releases that cannot be read from the
//! database. It holds no logic about a particular database: `analyze/` combines the two.

pub mod catalogue;
pub mod config;
pub mod gate;
pub mod manifest;
