//! A data-version manifest (`--manifest`): `Manifest::parse`, its queries, and the analysis of
//! a fixture snapshot under it (every command takes the manifest beside the snapshot).
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmig::medplum::gate::required_but_not_run;
use medmig::medplum::manifest::Manifest;
use medmig_fuzz::{exercise_snapshot, fixture_snapshot};
use semver::Version;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = Manifest::parse(text, "fuzz") else {
        return;
    };
    let _ = (manifest.highest(), manifest.get(1));
    let releases = [
        Version::new(3, 0, 0),
        Version::new(4, 5, 1),
        Version::new(5, 2, 2),
        manifest
            .newest_release()
            .cloned()
            .unwrap_or(Version::new(0, 0, 0)),
    ];
    for release in &releases {
        let _ = manifest.covers(release);
        let _ = manifest.known_by(release);
        let _ = manifest.previous_minor(release);
        let _ = manifest.newest_patch(release.major, release.minor);
        let _ = manifest.minors_between(&releases[0], release);
        let _ = required_but_not_run(&manifest, release, 10);
    }
    exercise_snapshot(fixture_snapshot(), &manifest);
});
