//! Medplum's server config as the server reads it, from the sources medmig can read: the
//! files of `file:PATH` (read under a size cap, as `JSON.parse` reads them) and the `env`
//! source's variables, handed to [`MedplumConfig::from_layers`] to merge; `aws:`, `gcp:` and
//! `azure:` are recorded as not read. Also the process environment, which the `env` source
//! and the connection's libpq variables are read from.
//!
//! This module owns the reading only: the config name, the `env` source's mapping, the merge
//! and what the merged config means are `medplum/config.rs`'s.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::medplum::config::{describe, env_config, ConfigName, ConfigSource, MedplumConfig};

/// The process environment as (name, value) pairs, in its order: what the commands pass to
/// [`ConnectionSettings::resolve`](super::postgres::connect::ConnectionSettings::resolve) and
/// to the Medplum config's `env` source. A name or value that is not UTF-8 is converted
/// lossily rather than refused (Node decodes it the same way).
pub fn process_environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// Loads the config `name` names as the server loads it, with `env` as the environment of the
/// `env` source (commands pass the process environment). Sources medmig cannot read are
/// recorded, not refused. Fails with one line on what the server would fail on too: a file that cannot
/// be read or is not a JSON object, an object-typed variable that is not JSON.
pub fn load(name: &ConfigName, env: &[(String, String)]) -> Result<MedplumConfig> {
    let mut layers = Vec::new();
    let mut not_read = Vec::new();
    let mut notes = Vec::new();
    for source in name.sources() {
        let value = match source {
            ConfigSource::File(path) => read_file(path)?,
            ConfigSource::Env => {
                let (value, env_notes) = env_config(env)?;
                notes.extend(env_notes);
                value
            }
            ConfigSource::Aws(_) | ConfigSource::Gcp(_) | ConfigSource::Azure(_) => {
                not_read.push(source.clone());
                continue;
            }
        };
        layers.push((source.clone(), value));
    }
    Ok(MedplumConfig::from_layers(
        name.clone(),
        layers,
        not_read,
        notes,
    ))
}

/// `loadFileConfig`: the file's JSON as `JSON.parse` gives it. Messages name the file and never
/// its content.
fn read_file(path: &Path) -> Result<Value> {
    let shown = path.display();
    let bytes = crate::limits::read_file(
        path,
        crate::limits::MEDPLUM_CONFIG_MAX_BYTES,
        "a Medplum config",
    )
    .with_context(|| format!("cannot read the Medplum config {shown} (--medplum-config)"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|err| {
        anyhow!("the Medplum config {shown} is not valid JSON ({err}): pass medplum.config.json")
    })?;
    if !value.is_object() {
        bail!(
            "the Medplum config {shown} is {}, not a JSON object: pass medplum.config.json",
            describe(&value)
        );
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::medplum::config::DeferKey;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn name(text: &str) -> ConfigName {
        ConfigName::parse(text).unwrap()
    }

    /// A file in the temporary directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(text: &str) -> TempFile {
            use std::sync::atomic::{AtomicU32, Ordering};
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "medmig-config-test-{}-{}.json",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn file_then_env_deep_merges_with_env_winning() {
        // loader.test.ts "Multi-source: file then env overlay" and "deep merge preserves
        // unrelated nested fields".
        let file = TempFile::new(
            r#"{"baseUrl":"http://file/","port":8103,
                "database":{"host":"file-db","port":5432,"disableRunPostDeployMigrations":false}}"#,
        );
        let config = load(
            &name(&format!("file:{},env", file.path())),
            &vars(&[
                ("MEDPLUM_PORT", "9999"),
                ("MEDPLUM_DATABASE_PORT", "5433"),
                (
                    "MEDPLUM_DATABASE_DISABLE_RUN_POST_DEPLOY_MIGRATIONS",
                    "true",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(config.get(&["baseUrl"]), Some(&json!("http://file/")));
        assert_eq!(config.get(&["port"]), Some(&json!(9999)));
        assert_eq!(config.get(&["database", "port"]), Some(&json!(5433)));
        assert_eq!(config.get(&["database", "host"]), Some(&json!("file-db")));
        assert!(config.is_complete());
        assert!(config.notes().is_empty(), "{:?}", config.notes());
        let database = config.database().unwrap().unwrap();
        assert_eq!(database.host.as_deref(), Some("file-db"));
        assert_eq!(database.port, Some(json!(5433)));
        let defer = config.defer_settings();
        assert!(defer.defers());
        assert_eq!(defer.set_by[DeferKey::DisableRun.as_str()], "env");
        assert_eq!(
            config.origin(&["database", "host"]),
            Some(&ConfigSource::File(file.0.clone()))
        );
        // The other order: the file wins.
        let config = load(
            &name(&format!("env,file:{}", file.path())),
            &vars(&[(
                "MEDPLUM_DATABASE_DISABLE_RUN_POST_DEPLOY_MIGRATIONS",
                "true",
            )]),
        )
        .unwrap();
        assert!(!config.defer_settings().defers());
    }

    #[test]
    fn a_single_file_and_a_plain_path_load_the_same() {
        // loader.test.ts "Multi-source: single source backwards compatibility".
        let file = TempFile::new(r#"{"baseUrl":"http://x/","database":{"host":"db"}}"#);
        let plain = load(&name(file.path()), &[]).unwrap();
        let named = load(&name(&format!("file:{}", file.path())), &[]).unwrap();
        assert_eq!(plain.value(), named.value());
        assert_eq!(
            plain.value(),
            &json!({"baseUrl":"http://x/","database":{"host":"db"}})
        );
    }

    #[test]
    fn files_are_json_parse_with_no_coercion() {
        let file = TempFile::new(r#"{"database":{"runMigrations":"false"}}"#);
        let config = load(&name(file.path()), &[]).unwrap();
        assert_eq!(
            config.get(&["database", "runMigrations"]),
            Some(&json!("false"))
        );
        // loader.test.ts "Missing baseUrl throws": medmig notes it rather than refusing.
        assert!(
            config.notes()[0].contains("baseUrl"),
            "{:?}",
            config.notes()
        );
        let bad = TempFile::new("[1, 2]");
        let err = load(&name(bad.path()), &[]).unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
        let bad = TempFile::new("{\"database\": ");
        let err = load(&name(bad.path()), &[]).unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[test]
    fn cloud_sources_are_recorded_as_not_read() {
        let file = TempFile::new(
            r#"{"baseUrl":"http://x/","database":{"disableRunPostDeployMigrations":true}}"#,
        );
        let config = load(
            &name(&format!("file:{},aws:/medplum/prod/", file.path())),
            &[],
        )
        .unwrap();
        assert!(!config.is_complete());
        assert_eq!(
            config.sources_not_read(),
            [ConfigSource::Aws("/medplum/prod/".into())]
        );
        let defer = config.defer_settings();
        assert!(!defer.all_sources_read());
        let gap = defer.gap().unwrap();
        assert!(gap.contains("aws:/medplum/prod/"), "{gap}");
        assert!(gap.contains("file:"), "{gap}");
        assert!(defer.sources().contains("not read: aws:/medplum/prod/"));
        assert!(ConfigSource::Gcp("p".into())
            .why_not_read()
            .is_some_and(|why| why.contains("Google")));
    }
}
