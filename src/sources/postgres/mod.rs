//! The Medplum database: where to connect and how (`connect.rs`: settings from the flags and
//! the environment, TLS, the session and its limits, one-line connection errors), and what is
//! read once connected (`collect.rs`: every statement under `queries/`, run in one read-only
//! transaction, and the decoding of its rows into snapshot types).

pub mod collect;
pub mod connect;
