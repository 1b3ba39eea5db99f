//! Medplum's server config file, `medplum.config.json`: the parts medmig uses — where the
//! database is (`database`) and whether post-deploy migrations run by themselves.
//!
//! The docs name a top-level `disablePostDeployMigrations`; the server code reads
//! `database.disableRunPostDeployMigrations`, and `database.runMigrations: false` stops them
//! too. This module reports which of them a file sets; what that means is `analyze/`'s call.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The parts of `medplum.config.json` medmig reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedplumConfig {
    pub database: Option<DatabaseSection>,
    /// The documented switch (which the server code does not read).
    #[serde(default, deserialize_with = "flag")]
    pub disable_post_deploy_migrations: Option<bool>,
}

/// `database` of `medplum.config.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSection {
    pub host: Option<String>,
    pub port: Option<Value>,
    pub dbname: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ssl: Option<SslSection>,
    /// The switch the server code reads.
    #[serde(default, deserialize_with = "flag")]
    pub disable_run_post_deploy_migrations: Option<bool>,
    /// `false` stops all migrations, post-deploy included.
    #[serde(default, deserialize_with = "flag")]
    pub run_migrations: Option<bool>,
}

/// `database.ssl` (node-postgres options).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SslSection {
    pub require: Option<bool>,
    pub reject_unauthorized: Option<bool>,
    pub ca: Option<String>,
}

/// Which deferral switches a config sets, and to what.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeferSettings {
    /// Top-level `disablePostDeployMigrations` (documented, not read by the server).
    pub disable_post_deploy_migrations: Option<bool>,
    /// `database.disableRunPostDeployMigrations` (read by the server).
    pub disable_run_post_deploy_migrations: Option<bool>,
    /// `database.runMigrations`.
    pub run_migrations: Option<bool>,
}

impl DeferSettings {
    /// Whether the server, as its code reads this config, will not start post-deploy
    /// migrations by itself.
    pub fn defers(&self) -> bool {
        self.disable_run_post_deploy_migrations == Some(true) || self.run_migrations == Some(false)
    }
}

impl MedplumConfig {
    /// Reads and parses the file; messages name the file and never its content.
    pub fn read(path: &Path) -> Result<MedplumConfig> {
        Ok(MedplumConfig::read_with_json(path)?.0)
    }

    /// [`MedplumConfig::read`], also returning the whole file as JSON (for a bundle).
    pub fn read_with_json(path: &Path) -> Result<(MedplumConfig, Value)> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("cannot read the Medplum config {shown} (--medplum-config)")
        })?;
        let invalid = |err: serde_json::Error| {
            anyhow!(
                "the Medplum config {shown} is not valid JSON ({err}): pass medplum.config.json"
            )
        };
        let value: Value = serde_json::from_str(&text).map_err(invalid)?;
        let config = serde_json::from_value(value.clone()).map_err(invalid)?;
        Ok((config, value))
    }

    /// The deferral switches it sets.
    pub fn defer_settings(&self) -> DeferSettings {
        let database = self.database.as_ref();
        DeferSettings {
            disable_post_deploy_migrations: self.disable_post_deploy_migrations,
            disable_run_post_deploy_migrations: database
                .and_then(|d| d.disable_run_post_deploy_migrations),
            run_migrations: database.and_then(|d| d.run_migrations),
        }
    }
}

/// A boolean that config files also write as `"true"` / `"false"`.
fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        Some(Value::Bool(b)) => Some(b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> DeferSettings {
        serde_json::from_str::<MedplumConfig>(json)
            .unwrap()
            .defer_settings()
    }

    #[test]
    fn the_key_the_server_reads_defers() {
        let s = settings(r#"{"database": {"disableRunPostDeployMigrations": true}}"#);
        assert!(s.defers());
        let s = settings(r#"{"database": {"runMigrations": "false"}}"#);
        assert!(s.defers());
    }

    #[test]
    fn the_documented_key_alone_does_not() {
        let s = settings(r#"{"disablePostDeployMigrations": true, "database": {}}"#);
        assert_eq!(s.disable_post_deploy_migrations, Some(true));
        assert!(!s.defers());
        assert!(!settings("{}").defers());
    }
}
