//! Medplum's data-version manifest: for each post-deploy migration, the release that
//! introduced it (`serverVersion`) and the release before which it must be complete
//! (`requiredBefore`).
//!
//! The default is embedded from `data-version-manifest.json` beside this file, in Medplum's own
//! format, so that `--manifest` can take the file straight from a newer Medplum release.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use semver::Version;
use serde::Deserialize;

const EMBEDDED: &str = include_str!("data-version-manifest.json");

/// One post-deploy migration as the manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The release that introduced the migration.
    pub server_version: Version,
    /// The first release that refuses to start while the migration is pending; filled in one
    /// release later, so recent entries lack it.
    pub required_before: Option<Version>,
}

/// The post-deploy migrations a Medplum release knows, by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    entries: BTreeMap<u32, ManifestEntry>,
    /// Where it came from: `embedded` or the file's path.
    pub origin: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    server_version: String,
    required_before: Option<String>,
}

impl Manifest {
    /// The manifest shipped inside medmig.
    pub fn embedded() -> Manifest {
        // The embedded file is checked by a unit test; failing here is a build defect.
        Manifest::parse(EMBEDDED, "embedded").expect("the embedded manifest is valid")
    }

    /// The embedded manifest, or the one at `path` when given.
    pub fn load(path: Option<&Path>) -> Result<Manifest> {
        match path {
            None => Ok(Manifest::embedded()),
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the manifest {shown} (--manifest)"))?;
                Manifest::parse(&text, &shown).with_context(|| {
                    format!("{shown} is not a Medplum data-version-manifest.json (--manifest)")
                })
            }
        }
    }

    /// Parses Medplum's format: `{"v13": {"serverVersion": "4.3.0", "requiredBefore": "4.4.0"}}`.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let raw: BTreeMap<String, RawEntry> =
            serde_json::from_str(text).map_err(|err| anyhow!("{err}"))?;
        let mut entries = BTreeMap::new();
        for (key, entry) in raw {
            let number = key
                .strip_prefix('v')
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| anyhow!("key \"{key}\" is not of the form v1, v2, …"))?;
            let version = |text: &str| {
                Version::parse(text.trim_start_matches('v'))
                    .map_err(|err| anyhow!("{key}: \"{text}\" is not a release version ({err})"))
            };
            entries.insert(
                number,
                ManifestEntry {
                    server_version: version(&entry.server_version)?,
                    required_before: entry.required_before.as_deref().map(version).transpose()?,
                },
            );
        }
        if entries.is_empty() {
            bail!("it lists no migrations");
        }
        Ok(Manifest {
            entries,
            origin: origin.to_string(),
        })
    }

    /// The entry of migration `number`, if the manifest knows it.
    pub fn get(&self, number: u32) -> Option<&ManifestEntry> {
        self.entries.get(&number)
    }

    /// The highest migration number the manifest knows.
    pub fn highest(&self) -> u32 {
        self.entries.keys().next_back().copied().unwrap_or(0)
    }

    /// The newest release the manifest describes (the highest `serverVersion`).
    pub fn newest_release(&self) -> Option<&Version> {
        self.entries.values().map(|e| &e.server_version).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_matches_medplum_5_2() {
        let m = Manifest::embedded();
        assert_eq!(m.highest(), 53);
        for n in 1..=53 {
            assert!(m.get(n).is_some(), "v{n} missing");
        }
        let v13 = m.get(13).unwrap();
        assert_eq!(v13.server_version, Version::new(4, 3, 0));
        assert_eq!(v13.required_before, Some(Version::new(4, 4, 0)));
        assert_eq!(m.get(40).unwrap().required_before, None);
        assert_eq!(
            m.get(53).unwrap().required_before,
            Some(Version::new(5, 3, 0))
        );
        assert_eq!(m.newest_release(), Some(&Version::new(5, 2, 4)));
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let err = Manifest::parse(r#"{"x1": {"serverVersion": "1.0.0"}}"#, "t").unwrap_err();
        assert!(err.to_string().contains("\"x1\""));
        let err = Manifest::parse(r#"{"v1": {"serverVersion": "one"}}"#, "t").unwrap_err();
        assert!(err.to_string().contains("not a release version"));
        assert!(Manifest::parse("{}", "t").is_err());
        assert!(Manifest::parse("[", "t").is_err());
    }
}
