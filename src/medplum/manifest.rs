//! Medplum's data-version manifest: for each post-deploy migration, the release that
//! introduced it (`serverVersion`) and the release before which it must be complete
//! (`requiredBefore`).
//!
//! The default is embedded from `data-version-manifest.json` beside this file, in Medplum's own
//! format, so that `--manifest` can take the file straight from a newer Medplum release.
//!
//! It also owns what a migration number can be ([`MAX_DATA_VERSION`],
//! [`MAX_PRE_DEPLOY_VERSION`]): every number read from outside as a migration passes through
//! [`data_version_number`] before anything counts with it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use semver::Version;
use serde::Deserialize;

const EMBEDDED: &str = include_str!("data-version-manifest.json");

/// The highest post-deploy migration number medmig takes at its word. Medplum's run from v1
/// to v53 (5.2, 2026) and grow by a few a year, so a number above this is damage or a value
/// set by hand, not a migration: it is reported (`odd-data-version`, `odd-job-version`,
/// `odd-manifest-key`) and never counted up to, so that no number from outside sizes a loop
/// or an allocation.
pub const MAX_DATA_VERSION: u32 = 10_000;

/// The highest pre-deploy (schema) migration number medmig takes at its word: Medplum's are
/// some 120 (5.2) and grow by a few dozen a year; above this, `odd-pre-deploy-version`.
pub const MAX_PRE_DEPLOY_VERSION: i64 = 10_000;

/// `n` as a post-deploy migration number, when it can be one: 1 to [`MAX_DATA_VERSION`].
pub fn data_version_number(n: i64) -> Option<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_DATA_VERSION).contains(n))
}

/// The number a run of ASCII digits writes, saturated: digits too many to read make a number
/// past every bound all the same. `None` when `text` is not such a run.
pub fn digits_value(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<i64>().unwrap_or(i64::MAX))
}

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
    /// Keys of the form `vN` whose N cannot be a migration (0, or above [`MAX_DATA_VERSION`]),
    /// left out; the status analysis reports them (`odd-manifest-key`).
    pub odd_keys: Vec<String>,
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
                let bytes = crate::limits::read_file(
                    path,
                    crate::limits::VERSION_MANIFEST_MAX_BYTES,
                    "a data-version manifest",
                )
                .with_context(|| format!("cannot read the manifest {shown} (--manifest)"))?;
                let text = String::from_utf8(bytes).map_err(|err| {
                    anyhow!(
                        "{shown} is not a Medplum data-version-manifest.json (--manifest): {err}"
                    )
                })?;
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
        let mut odd_keys = Vec::new();
        for (key, entry) in raw {
            let written = key
                .strip_prefix('v')
                .and_then(digits_value)
                .ok_or_else(|| anyhow!("key \"{key}\" is not of the form v1, v2, …"))?;
            let Some(number) = data_version_number(written) else {
                odd_keys.push(key);
                continue;
            };
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
            match odd_keys.first() {
                Some(key) => bail!(
                    "it lists no migrations, only keys no migration can have, such as \"{}\" \
                     (medmig reads v1 to v{MAX_DATA_VERSION})",
                    crate::text::shorten(key, 40)
                ),
                None => bail!("it lists no migrations"),
            }
        }
        Ok(Manifest {
            entries,
            origin: origin.to_string(),
            odd_keys,
        })
    }

    /// The entry of migration `number`, if the manifest knows it.
    pub fn get(&self, number: u32) -> Option<&ManifestEntry> {
        self.entries.get(&number)
    }

    /// Every migration number the manifest knows, in order.
    pub fn numbers(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        self.entries.keys().copied()
    }

    /// The highest migration number the manifest knows.
    pub fn highest(&self) -> u32 {
        self.entries.keys().next_back().copied().unwrap_or(0)
    }

    /// The newest release the manifest describes (the highest `serverVersion`).
    pub fn newest_release(&self) -> Option<&Version> {
        self.entries.values().map(|e| &e.server_version).max()
    }

    /// Whether the manifest can say which migrations `release` knows: releases after its
    /// newest `serverVersion` may have introduced migrations it does not list.
    pub fn covers(&self, release: &Version) -> bool {
        self.newest_release()
            .is_some_and(|newest| release <= newest)
    }

    /// The highest migration `release` knows (its `serverVersion` is at or below it); 0 when
    /// it knows none.
    pub fn known_by(&self, release: &Version) -> u32 {
        self.entries
            .iter()
            .filter(|(_, e)| &e.server_version <= release)
            .map(|(n, _)| *n)
            .max()
            .unwrap_or(0)
    }

    /// Every release the manifest names, as introducing release or as `requiredBefore`.
    fn releases(&self) -> impl Iterator<Item = &Version> {
        self.entries
            .values()
            .flat_map(|e| std::iter::once(&e.server_version).chain(e.required_before.as_ref()))
    }

    /// The minor released before `release`'s: the minor below in the same major, or the last
    /// minor of the previous major that the manifest names (minors run in sequence across a
    /// major boundary too). `None` when the manifest cannot tell.
    pub fn previous_minor(&self, release: &Version) -> Option<(u64, u64)> {
        if release.minor > 0 {
            return Some((release.major, release.minor - 1));
        }
        let previous_major = release.major.checked_sub(1)?;
        self.releases()
            .filter(|v| v.major == previous_major)
            .map(|v| (v.major, v.minor))
            .max()
    }

    /// The minors the manifest names after `from`'s, up to `to`'s, in order: the releases an
    /// upgrade must pass through, since minors are never skipped.
    pub fn minors_between(&self, from: &Version, to: &Version) -> Vec<(u64, u64)> {
        let (low, high) = ((from.major, from.minor), (to.major, to.minor));
        let mut minors: Vec<(u64, u64)> = self
            .releases()
            .map(|v| (v.major, v.minor))
            .filter(|m| *m > low && *m <= high)
            .collect();
        minors.sort_unstable();
        minors.dedup();
        minors
    }

    /// The newest patch of minor `major.minor` the manifest names.
    pub fn newest_patch(&self, major: u64, minor: u64) -> Option<&Version> {
        self.releases()
            .filter(|v| v.major == major && v.minor == minor)
            .max()
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
    fn what_a_release_knows() {
        let m = Manifest::embedded();
        // No migration was introduced in 4.2.x: 4.2.6 knows v1–v12.
        assert_eq!(m.known_by(&Version::new(4, 2, 6)), 12);
        assert_eq!(m.known_by(&Version::new(4, 3, 2)), 17);
        assert_eq!(m.known_by(&Version::new(3, 0, 0)), 0);
        assert!(m.covers(&Version::new(4, 2, 6)));
        assert!(!m.covers(&Version::new(5, 3, 1)));
    }

    #[test]
    fn previous_minor_crosses_major_boundaries() {
        let m = Manifest::embedded();
        assert_eq!(m.previous_minor(&Version::new(4, 3, 15)), Some((4, 2)));
        assert_eq!(m.previous_minor(&Version::new(5, 0, 3)), Some((4, 5)));
        assert_eq!(m.previous_minor(&Version::new(1, 0, 0)), None);
        assert_eq!(m.newest_patch(4, 3), Some(&Version::new(4, 3, 14)));
        assert_eq!(m.newest_patch(4, 2), Some(&Version::new(4, 2, 0)));
    }

    #[test]
    fn an_upgrade_passes_every_minor_the_manifest_names() {
        let m = Manifest::embedded();
        let v = |s: &str| Version::parse(s).unwrap();
        assert_eq!(
            m.minors_between(&v("4.1.3"), &v("4.4.0")),
            [(4, 2), (4, 3), (4, 4)]
        );
        assert_eq!(
            m.minors_between(&v("4.5.2"), &v("5.2.4")),
            [(5, 0), (5, 1), (5, 2)]
        );
        assert!(m.minors_between(&v("5.2.2"), &v("5.2.4")).is_empty());
    }

    #[test]
    fn keys_no_migration_can_have_are_left_out_and_kept_for_a_finding() {
        let m = Manifest::parse(
            r#"{"v1": {"serverVersion": "4.0.0"}, "v10000": {"serverVersion": "4.1.0"},
                "v10001": {"serverVersion": "4.2.0"}, "v4294967295": {"serverVersion": "4.2.0"},
                "v99999999999999999999999999": {"serverVersion": "4.2.0"},
                "v0": {"serverVersion": "4.2.0"}}"#,
            "t",
        )
        .unwrap();
        assert_eq!(m.numbers().collect::<Vec<_>>(), [1, MAX_DATA_VERSION]);
        assert_eq!(m.highest(), MAX_DATA_VERSION);
        assert_eq!(m.odd_keys.len(), 4);
        // Only odd keys: nothing to go on, said with the key.
        let err = Manifest::parse(r#"{"v4294967295": {"serverVersion": "4.2.0"}}"#, "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"v4294967295\""), "{err}");
        // Not of the form vN at all: refused as before.
        for key in ["v-1", "v", "v1.5", "v+3", "v 3"] {
            let text = format!(r#"{{"{key}": {{"serverVersion": "4.2.0"}}}}"#);
            assert!(Manifest::parse(&text, "t").is_err(), "{key}");
        }
    }

    #[test]
    fn what_a_migration_number_can_be() {
        assert_eq!(data_version_number(1), Some(1));
        assert_eq!(
            data_version_number(i64::from(MAX_DATA_VERSION)),
            Some(MAX_DATA_VERSION)
        );
        for odd in [
            0,
            -1,
            i64::MIN,
            i64::from(MAX_DATA_VERSION) + 1,
            1 << 31,
            i64::MAX,
        ] {
            assert_eq!(data_version_number(odd), None, "{odd}");
        }
        assert_eq!(digits_value("53"), Some(53));
        assert_eq!(digits_value(&"9".repeat(100)), Some(i64::MAX));
        assert_eq!(digits_value(""), None);
        assert_eq!(digits_value("-1"), None);
        assert_eq!(digits_value("+1"), None);
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
