//! The Medplum server's startup gate, as a pure predicate: given a release, the database's
//! `"DatabaseMigration"` row and how the server runs, will it start or refuse, and with which
//! words?
//!
//! This module owns the gate's rule and its wording per release line, and nothing else:
//! which hops to deploy is `analyze/upgrade.rs`'s business, what to do about a refusal
//! `analyze/recover.rs`'s. Every place in medmig that predicts the gate calls [`predict`].
//!
//! The rule, read from Medplum's server source (`packages/server/src/database.ts`, `migrate()`;
//! `packages/server/src/migrations/migration-utils.ts`, `getPendingPostDeployMigration`,
//! `enforceStrictMigrationVersionChecks`; `packages/server/src/migration-sql.ts`,
//! `getPostDeployVersion`):
//! - the gate runs only when `database.runMigrations !== false` (`initDatabase`), per database;
//! - it is skipped in first-boot mode (`getPostDeployVersion` answers FIRST_BOOT while
//!   `"firstBoot"` is true), and on a database without a `"DatabaseMigration"` row, which the
//!   server then creates in first-boot mode;
//! - it looks at one migration only, the pending `dataVersion + 1`, and only if the starting
//!   release's code has it (the manifest's keys are the code's migrations: Medplum's
//!   `data-version-manifest.test.ts` holds them equal);
//! - it refuses when the release is at or past that entry's `serverVersion`, strict checks are
//!   on (`NODE_ENV === 'production'`, or `MEDPLUM_ENABLE_STRICT_MIGRATION_VERSION_CHECKS` set
//!   to any non-empty value, `"false"` included), the entry has `requiredBefore`, and the
//!   release is at or past it (`semver.gte`). Otherwise it logs `Pending post-deploy migration`
//!   (when the release is at or past `serverVersion`) and starts.
//!
//! Older release lines differ (the same file's history): 4.0.x worded the refusal "Unable to run
//! data migration against the current server version…" and checked before running pre-deploy
//! migrations; then "Unable to run post-deploy migration vN on this server…"; then the current
//! wording, at first without the strict-mode condition (which 4.3.0 has). 4.0.x's wording is
//! confirmed by a 4.0.0 server's log (medplum/medplum issue 6064); where the 4.1 and 4.2 lines
//! fall is inferred from the order of the changes, and [`RELEASE_LINES`] says so.

use semver::Version;
use serde::Serialize;

use super::manifest::Manifest;

/// Every wording of the gate's refusal, for recognising it in logs (oldest first).
pub const REFUSAL_PREFIXES: [&str; 3] = [
    "Unable to run data migration against the current server version",
    "Unable to run post-deploy migration v",
    "Unable to run this version of Medplum server",
];

/// How one line of releases words and decides the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseLine {
    /// The first release of the line.
    pub from: (u64, u64, u64),
    /// Which of the wordings it prints.
    pub wording: Wording,
    /// Whether it refuses only in strict mode.
    pub strict_only: bool,
    /// Whether the gate runs before the pre-deploy migrations (so a refused boot changed
    /// nothing) or after them (a refused boot has applied them).
    pub before_pre_deploy: bool,
    /// How sure medmig is of where the line starts.
    pub certainty: &'static str,
}

/// The wordings of the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wording {
    /// "Unable to run data migration against the current server version. Migration requires
    /// server at version A <= version < B, but current server version is C".
    DataMigration,
    /// "Unable to run post-deploy migration vN on this server. vN requires server at version A
    /// <= version < B, but current server version is C".
    PostDeployOnThisServer,
    /// "Unable to run this version of Medplum server. Pending post-deploy migration vN
    /// requires server at version A <= version < B, but current server version is C".
    ThisVersion,
}

/// The release lines, oldest first; a release belongs to the last line whose `from` it reaches.
pub const RELEASE_LINES: [ReleaseLine; 4] = [
    ReleaseLine {
        from: (0, 0, 0),
        wording: Wording::DataMigration,
        strict_only: false,
        before_pre_deploy: true,
        certainty: "confirmed for 4.0.0 by its own log",
    },
    ReleaseLine {
        from: (4, 1, 0),
        wording: Wording::PostDeployOnThisServer,
        strict_only: false,
        before_pre_deploy: true,
        certainty: "inferred: the wording that followed 4.0's in the server's history",
    },
    ReleaseLine {
        from: (4, 2, 0),
        wording: Wording::ThisVersion,
        strict_only: false,
        before_pre_deploy: false,
        certainty: "inferred: the current wording before strict mode was added",
    },
    ReleaseLine {
        from: (4, 3, 0),
        wording: Wording::ThisVersion,
        strict_only: true,
        before_pre_deploy: false,
        certainty: "confirmed: strict mode is in 4.3.0's server",
    },
];

/// The release line of `release`.
pub fn release_line(release: &Version) -> ReleaseLine {
    let key = (release.major, release.minor, release.patch);
    RELEASE_LINES
        .iter()
        .rev()
        .find(|line| key >= line.from)
        .copied()
        .unwrap_or(RELEASE_LINES[0])
}

/// How the server that would start is configured, as far as the gate cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GateSettings {
    /// Strict version checks (`NODE_ENV=production` or
    /// `MEDPLUM_ENABLE_STRICT_MIGRATION_VERSION_CHECKS`).
    pub strict: bool,
    /// Whether `strict` was assumed (no `--strict-version-checks`) rather than told.
    pub strict_assumed: bool,
    /// `database.runMigrations !== false`.
    pub run_migrations: bool,
}

impl Default for GateSettings {
    /// A production server: strict (assumed), migrations on.
    fn default() -> GateSettings {
        GateSettings {
            strict: true,
            strict_assumed: true,
            run_migrations: true,
        }
    }
}

impl GateSettings {
    /// One sentence on what was assumed, for every output that predicts the gate.
    pub fn describe(&self) -> String {
        let strict = match (self.strict, self.strict_assumed) {
            (true, true) => "strict version checks assumed (NODE_ENV=production, which Medplum's Docker image sets); pass --strict-version-checks false for a server that runs without them",
            (true, false) => "strict version checks on (--strict-version-checks true)",
            (false, _) => "strict version checks off (--strict-version-checks false): releases from 4.3.0 never refuse to start",
        };
        if self.run_migrations {
            strict.to_string()
        } else {
            format!("{strict}; database.runMigrations is false, so the gate does not run")
        }
    }
}

/// What `"DatabaseMigration"` holds, as the gate reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationRow {
    /// `"dataVersion"`; `None` when there is no row (the server creates one in first-boot
    /// mode) or no column.
    pub data_version: Option<i64>,
    /// `"firstBoot"`; `None` when the column is missing (false to the server).
    pub first_boot: Option<bool>,
}

/// What the gate will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum GatePrediction {
    /// The gate does not run: `database.runMigrations` is false, or first-boot mode.
    NotChecked { reason: String },
    /// It checks the pending migration (if any) and lets the release start.
    Starts {
        /// The migration it looks at, if the release knows one pending.
        pending: Option<u32>,
        /// Why it starts, in a sentence.
        reason: String,
    },
    /// It refuses to start, with this message.
    Refuses { pending: u32, message: String },
}

impl GatePrediction {
    /// The refusal message, if it refuses.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            GatePrediction::Refuses { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// The server's refusal, worded as `release`'s line words it.
pub fn refusal_message(
    release: &Version,
    pending: u32,
    introduced: &Version,
    required_before: &Version,
) -> String {
    match release_line(release).wording {
        Wording::DataMigration => format!(
            "Unable to run data migration against the current server version. Migration \
             requires server at version {introduced} <= version < {required_before}, but current \
             server version is {release}"
        ),
        Wording::PostDeployOnThisServer => format!(
            "Unable to run post-deploy migration v{pending} on this server. v{pending} requires \
             server at version {introduced} <= version < {required_before}, but current server \
             version is {release}"
        ),
        Wording::ThisVersion => format!(
            "Unable to run this version of Medplum server. Pending post-deploy migration \
             v{pending} requires server at version {introduced} <= version < {required_before}, \
             but current server version is {release}"
        ),
    }
}

/// The startup gate of `release` on a database in `row`'s state: the server's predicate.
pub fn predict(
    manifest: &Manifest,
    release: &Version,
    row: MigrationRow,
    settings: GateSettings,
) -> GatePrediction {
    if !settings.run_migrations {
        return GatePrediction::NotChecked {
            reason: "database.runMigrations is false: the server runs no migration and no gate"
                .into(),
        };
    }
    let Some(stored) = row.data_version else {
        return GatePrediction::NotChecked {
            reason: "no \"DatabaseMigration\" row: the server creates one in first-boot mode, \
                     which skips the gate"
                .into(),
        };
    };
    if row.first_boot == Some(true) {
        return GatePrediction::NotChecked {
            reason: "the database is in first-boot mode, which skips the gate".into(),
        };
    }
    let line = release_line(release);
    // A stored negative value is odd; the server would add one to it all the same, and a
    // number past every migration leaves nothing pending.
    let pending = stored
        .checked_add(1)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0 && *n <= manifest.known_by(release));
    let Some(pending) = pending else {
        return GatePrediction::Starts {
            pending: None,
            reason: format!(
                "{release} knows no post-deploy migration after dataVersion {stored}: nothing is \
                 pending for it to check"
            ),
        };
    };
    let Some(entry) = manifest.get(pending) else {
        return GatePrediction::Starts {
            pending: Some(pending),
            reason: format!("the manifest has no entry for v{pending}"),
        };
    };
    let reached_introduction = release >= &entry.server_version;
    match &entry.required_before {
        Some(before) if reached_introduction && release >= before => {
            if line.strict_only && !settings.strict {
                GatePrediction::Starts {
                    pending: Some(pending),
                    reason: format!(
                        "v{pending} is pending and {release} is past its requiredBefore \
                         {before}, but strict version checks are off, so the server only logs \
                         \"Pending post-deploy migration\""
                    ),
                }
            } else {
                GatePrediction::Refuses {
                    pending,
                    message: refusal_message(release, pending, &entry.server_version, before),
                }
            }
        }
        Some(before) => GatePrediction::Starts {
            pending: Some(pending),
            reason: format!(
                "the gate checks v{pending} only; {release} is below its requiredBefore {before}"
            ),
        },
        None => GatePrediction::Starts {
            pending: Some(pending),
            reason: format!(
                "the gate checks v{pending} only, and v{pending} has no requiredBefore yet"
            ),
        },
    }
}

/// The latent hazard the gate does not catch: `release` starts, but migrations its code
/// requires (`requiredBefore` at or below it) after the pending one have not run. Once the
/// pending one completes, the next restart checks the next: the first such migration is the
/// one that restart refuses on (in strict mode). Returns them in order, empty when none.
pub fn required_but_not_run(manifest: &Manifest, release: &Version, data_version: i64) -> Vec<u32> {
    let after = u32::try_from(data_version.max(0)).unwrap_or(u32::MAX);
    let known = manifest.known_by(release);
    manifest
        .numbers()
        .filter(|n| *n > after && *n <= known)
        .filter(|n| {
            manifest
                .get(*n)
                .and_then(|e| e.required_before.as_ref())
                .is_some_and(|before| before <= release)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn row(data_version: i64) -> MigrationRow {
        MigrationRow {
            data_version: Some(data_version),
            first_boot: Some(false),
        }
    }

    fn strict() -> GateSettings {
        GateSettings {
            strict: true,
            strict_assumed: false,
            run_migrations: true,
        }
    }

    fn lenient() -> GateSettings {
        GateSettings {
            strict: false,
            ..strict()
        }
    }

    /// A manifest with v1 only, as Medplum's "Database migrations" suite mocks it
    /// (`packages/server/src/database.test.ts`: v1 = {serverVersion 3.3.0, requiredBefore 4.0.0}).
    fn suite_manifest() -> Manifest {
        Manifest::parse(
            r#"{"v1": {"serverVersion": "3.3.0", "requiredBefore": "4.0.0"}}"#,
            "test",
        )
        .unwrap()
    }

    // database.test.ts, "Current version is greater than `requiredBefore`": server 4.0.0,
    // dataVersion 0, strict (MEDPLUM_ENABLE_STRICT_MIGRATION_VERSION_CHECKS=true) → refuses,
    // with exactly this message (the suite tests the current wording).
    #[test]
    fn medplum_suite_current_version_past_required_before_refuses() {
        let m = suite_manifest();
        let mut release = v("4.0.0");
        let prediction = predict(&m, &release, row(0), strict());
        assert_eq!(prediction.refusal().map(|_| ()), Some(()));
        // The suite's server runs the current code with a mocked version of 4.0.0; the
        // current wording is that of the 4.3+ line.
        release = v("4.3.0");
        let expected = "Unable to run this version of Medplum server. Pending post-deploy \
                        migration v1 requires server at version 3.3.0 <= version < 4.0.0, but \
                        current server version is 4.3.0";
        assert_eq!(
            predict(&m, &release, row(0), strict()).refusal(),
            Some(expected)
        );
    }

    // database.test.ts, "Current version greater than or equal to required version and less
    // than `requiredBefore`" for 3.2.0, 3.3.0, 3.3.1 and 3.4.0: it starts.
    #[test]
    fn medplum_suite_versions_below_required_before_start() {
        let m = suite_manifest();
        for release in ["3.2.0", "3.3.0", "3.3.1", "3.4.0"] {
            let prediction = predict(&m, &v(release), row(0), strict());
            assert!(
                matches!(prediction, GatePrediction::Starts { .. }),
                "{release}: {prediction:?}"
            );
        }
    }

    // database.ts, migrate(): refusal only in strict mode from 4.3.0 on.
    #[test]
    fn without_strict_checks_a_current_release_starts() {
        let m = Manifest::embedded();
        // dataVersion 48: v49 pending, requiredBefore 5.2.0.
        let strictly = predict(&m, &v("5.2.4"), row(48), strict());
        assert_eq!(
            strictly.refusal(),
            Some(
                "Unable to run this version of Medplum server. Pending post-deploy migration \
                 v49 requires server at version 5.1.43 <= version < 5.2.0, but current server \
                 version is 5.2.4"
            )
        );
        let leniently = predict(&m, &v("5.2.4"), row(48), lenient());
        assert!(matches!(
            leniently,
            GatePrediction::Starts {
                pending: Some(49),
                ..
            }
        ));
    }

    // The case the issue names: dataVersion 38 → 5.2.4 checks v39 (no requiredBefore) and
    // starts; v49 and v50 (requiredBefore 5.2.0) are the latent hazard.
    #[test]
    fn only_the_pending_migration_is_checked() {
        let m = Manifest::embedded();
        let prediction = predict(&m, &v("5.2.4"), row(38), strict());
        assert!(
            matches!(
                prediction,
                GatePrediction::Starts {
                    pending: Some(39),
                    ..
                }
            ),
            "{prediction:?}"
        );
        assert_eq!(required_but_not_run(&m, &v("5.2.4"), 38), vec![49, 50]);
        assert!(required_but_not_run(&m, &v("5.2.4"), 50).is_empty());
    }

    // migrate(): first-boot mode, a missing row and runMigrations false skip the gate.
    #[test]
    fn first_boot_and_disabled_migrations_skip_the_gate() {
        let m = Manifest::embedded();
        let first_boot = MigrationRow {
            data_version: Some(0),
            first_boot: Some(true),
        };
        assert!(matches!(
            predict(&m, &v("5.2.4"), first_boot, strict()),
            GatePrediction::NotChecked { .. }
        ));
        let no_row = MigrationRow {
            data_version: None,
            first_boot: None,
        };
        assert!(matches!(
            predict(&m, &v("5.2.4"), no_row, strict()),
            GatePrediction::NotChecked { .. }
        ));
        let off = GateSettings {
            run_migrations: false,
            ..strict()
        };
        assert!(matches!(
            predict(&m, &v("5.2.4"), row(0), off),
            GatePrediction::NotChecked { .. }
        ));
        // Without a firstBoot column the server reads false: the gate runs.
        let old = MigrationRow {
            data_version: Some(48),
            first_boot: None,
        };
        assert!(predict(&m, &v("5.2.4"), old, strict()).refusal().is_some());
    }

    // getPendingPostDeployMigration: a pending number the release's code lacks is none.
    #[test]
    fn a_release_that_does_not_know_the_pending_migration_starts() {
        let m = Manifest::embedded();
        // 4.2.6 knows v1–v12; at dataVersion 12, v13 is unknown to it.
        let prediction = predict(&m, &v("4.2.6"), row(12), strict());
        assert!(matches!(
            prediction,
            GatePrediction::Starts { pending: None, .. }
        ));
        let prediction = predict(&m, &v("5.2.4"), row(53), strict());
        assert!(matches!(
            prediction,
            GatePrediction::Starts { pending: None, .. }
        ));
        let prediction = predict(&m, &v("5.2.4"), row(i64::MAX), strict());
        assert!(matches!(
            prediction,
            GatePrediction::Starts { pending: None, .. }
        ));
    }

    // The 4.0.0 wording, confirmed by a 4.0.0 server's log (medplum/medplum issue 6064), and
    // older lines refuse without strict mode.
    #[test]
    fn older_release_lines_word_it_their_way() {
        let m = Manifest::embedded();
        assert_eq!(
            predict(&m, &v("4.0.0"), row(0), lenient()).refusal(),
            Some(
                "Unable to run data migration against the current server version. Migration \
                 requires server at version 3.3.0 <= version < 4.0.0, but current server version \
                 is 4.0.0"
            )
        );
        // dataVersion 1 at 4.2.0: v2 (4.1.0, requiredBefore 4.2.0).
        assert!(predict(&m, &v("4.2.0"), row(1), lenient())
            .refusal()
            .is_some_and(|m| m.starts_with("Unable to run this version of Medplum server")));
        assert_eq!(
            refusal_message(&v("4.1.9"), 2, &v("4.1.0"), &v("4.2.0")),
            "Unable to run post-deploy migration v2 on this server. v2 requires server at \
             version 4.1.0 <= version < 4.2.0, but current server version is 4.1.9"
        );
        for wording in REFUSAL_PREFIXES {
            assert!(RELEASE_LINES.iter().any(|line| {
                let release = Version::new(line.from.0, line.from.1, line.from.2);
                refusal_message(&release, 1, &v("1.0.0"), &v("2.0.0")).starts_with(wording)
            }));
        }
    }
}
