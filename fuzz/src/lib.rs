//! What the fuzz targets share: a scratch directory for readers that take a path, the input
//! format of the `bundle` target, the project's own fixtures, and [`exercise_snapshot`], which
//! runs everything medmig does with a snapshot once it has parsed one, so that a panic or an
//! overflow deeper in the analysis is found from any reader that yields a snapshot.

use std::path::PathBuf;
use std::sync::OnceLock;

use medmig::analyze::compat::diff;
use medmig::analyze::migrations::{analyze, infer_from, StatusReport};
use medmig::analyze::recover::{recover, RecoverOptions};
use medmig::analyze::rollback::RollbackOptions;
use medmig::analyze::upgrade::plan;
use medmig::bundle::timeline::timeline;
use medmig::catalog::SchemaCapture;
use medmig::commands::status_options;
use medmig::medplum::catalogue::Catalogue;
use medmig::medplum::gate::GateSettings;
use medmig::medplum::manifest::Manifest;
use medmig::render::{self, ReportSource};
use medmig::snapshot::Snapshot;
use semver::Version;

/// A snapshot from the project's fixtures, for targets whose input is not a snapshot.
pub const FIXTURE_SNAPSHOT: &str = include_str!("../../fixtures/snapshots/failed-with-retry.json");

/// The embedded manifest, parsed once.
pub fn embedded_manifest() -> &'static Manifest {
    static MANIFEST: OnceLock<Manifest> = OnceLock::new();
    MANIFEST.get_or_init(Manifest::embedded)
}

/// The embedded migration catalogue, parsed once.
pub fn embedded_catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(Catalogue::embedded)
}

/// [`FIXTURE_SNAPSHOT`], parsed once.
pub fn fixture_snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| Snapshot::parse(FIXTURE_SNAPSHOT).expect("the fixture snapshot"))
}

/// The status report of [`fixture_snapshot`] under the embedded manifest, computed once.
pub fn fixture_status() -> &'static StatusReport {
    static STATUS: OnceLock<StatusReport> = OnceLock::new();
    STATUS.get_or_init(|| {
        let snapshot = fixture_snapshot();
        analyze(
            snapshot,
            embedded_manifest(),
            embedded_catalogue(),
            options(snapshot),
        )
    })
}

/// A directory of this process's own (libFuzzer's fork mode runs several processes).
pub fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("medmig-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    })
}

/// Writes `bytes` to the scratch file `name` and returns its path.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    std::fs::write(&path, bytes).expect("a scratch file");
    path
}

fn options(snapshot: &Snapshot) -> medmig::analyze::migrations::StatusOptions {
    status_options(
        snapshot.taken_at,
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_secs(60),
    )
}

/// Everything the commands do with a parsed snapshot: the status analysis in every format,
/// `recover`, `rollback-check` and `upgrade-plan` (each rendered), the timeline, and the
/// schema diff of its contract against itself and the fixture's. Results are discarded:
/// only panics, overflows and runaway allocations matter here.
pub fn exercise_snapshot(snapshot: &Snapshot, manifest: &Manifest) {
    exercise_snapshot_with(snapshot, manifest, embedded_catalogue());
}

/// [`exercise_snapshot`] under `catalogue`.
pub fn exercise_snapshot_with(snapshot: &Snapshot, manifest: &Manifest, catalogue: &Catalogue) {
    let _ = snapshot.require_readable();
    let status = analyze(snapshot, manifest, catalogue, options(snapshot));
    let source = ReportSource::of(snapshot, "snapshot", Some("fuzz".into()), &manifest.origin);
    let mut out = Vec::new();
    let _ = render::table::status(&mut out, &source, &status, true);
    let _ = render::json::status(&mut out, &source, &status);
    // A sharded snapshot: every shard analysed and compared, as status does.
    let shards = medmig::analyze::shards::analyze_shards(
        snapshot,
        &status,
        manifest,
        catalogue,
        options(snapshot),
    );
    let _ = medmig::analyze::shards::findings(&shards);
    let _ = render::table::shards(&mut out, &source, &shards, true);
    let _ = render::json::deployment_status(&mut out, &source, &status, &shards);
    let _ = render::csv::status(&mut out, &status, &shards);
    let shard_reports: Vec<(&str, &medmig::analyze::migrations::StatusReport)> = shards
        .iter()
        .filter_map(|s| s.status.as_ref().map(|status| (s.id.as_str(), status)))
        .collect();
    let _ = timeline(Some(&status), &shard_reports, &[]);

    let newest = manifest
        .newest_release()
        .cloned()
        .unwrap_or(Version::new(5, 2, 2));
    let steps = recover(
        snapshot,
        &status,
        manifest,
        &RecoverOptions {
            deploying: Some(newest.clone()),
            config: None,
            gate: GateSettings::default(),
        },
    );
    let _ = render::table::recover(&mut out, &source, &steps);
    let _ = render::json::recover(&mut out, &source, &steps);
    let _ = render::markdown::recover(&mut out, &source, &steps);

    let (inferred, how) = infer_from(&status, manifest);
    let from = inferred.clone().unwrap_or(Version::new(4, 0, 0));
    if let Ok(plan) = plan(
        &status,
        manifest,
        Some(catalogue),
        &from,
        how,
        &newest,
        GateSettings::default(),
    ) {
        let _ = render::table::upgrade_plan(&mut out, &source, &plan);
        let _ = render::json::upgrade_plan(&mut out, &source, &plan);
        let _ = render::markdown::upgrade_plan(&mut out, &source, &plan);
    }

    let to = manifest
        .previous_minor(&from)
        .map_or(Version::new(3, 0, 0), |(major, minor)| {
            Version::new(major, minor, 0)
        });
    let baseline = fixture_snapshot().schema.as_deref();
    let report = medmig::analyze::rollback::rollback_check_deployment(
        snapshot,
        manifest,
        catalogue,
        &RollbackOptions {
            to,
            from: inferred,
            baseline,
            config: None,
            ignore: &[],
            config_shards: None,
            status: options(snapshot),
        },
    );
    let _ = render::table::rollback(&mut out, &source, &report);
    let _ = render::json::rollback(&mut out, &source, &report);
    let _ = render::csv::rollback(&mut out, &report);

    if let Some(schema) = &snapshot.schema {
        let _ = diff(schema, schema);
        if let Some(fixture) = baseline {
            let capture = |schema: &medmig::catalog::SchemaContract| SchemaCapture {
                format_version: 1,
                medmig_version: "fuzz".into(),
                captured_at: snapshot.taken_at,
                source: snapshot.source.clone(),
                schema: schema.clone(),
            };
            exercise_schema_diff(&capture(fixture), &capture(schema));
        }
    }
}

/// `schema diff` of `current` against `baseline`, both ways, in every format.
pub fn exercise_schema_diff(baseline: &SchemaCapture, current: &SchemaCapture) {
    let mut out = Vec::new();
    for (old, new) in [(baseline, current), (current, baseline)] {
        let differences = diff(&old.schema, &new.schema);
        let _ = render::table::schema_diff(&mut out, &differences);
        let _ = render::json::schema_diff(&mut out, old, new, &differences);
        let _ = render::csv::schema_diff(&mut out, &differences);
    }
}

/// The input of the `bundle` target: a first byte that says how the rest makes a bundle file,
/// so that mutations reach the manifest and the entries past gzip's and tar's checksums.
pub mod bundle_input {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    /// The rest is the file as it is (gzip).
    pub const RAW: u8 = 0;
    /// The rest is a tar stream, which the target compresses.
    pub const TAR: u8 = 1;
    /// The rest is a list of entries (see [`encode_entry`]), which the target packs into a
    /// tar stream with correct header checksums and compresses.
    pub const ENTRIES: u8 = 2;

    /// One entry of an [`ENTRIES`] input: `kind` is the tar entry type byte (`b'0'` a regular
    /// file, `b'2'` a symlink, …); `name` and `link` are written raw (up to 100 bytes each), so
    /// `..`, absolute paths and control characters reach the reader.
    pub struct Entry<'a> {
        pub kind: u8,
        pub name: &'a [u8],
        pub link: &'a [u8],
        pub data: &'a [u8],
    }

    /// `kind`, name length (1 byte), name, link length (1 byte), link, data length (2 bytes,
    /// little-endian), data.
    pub fn encode_entry(entry: &Entry<'_>, out: &mut Vec<u8>) {
        let name = &entry.name[..entry.name.len().min(100)];
        let link = &entry.link[..entry.link.len().min(100)];
        let data = &entry.data[..entry.data.len().min(usize::from(u16::MAX))];
        out.push(entry.kind);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.push(link.len() as u8);
        out.extend_from_slice(link);
        out.extend_from_slice(&(data.len() as u16).to_le_bytes());
        out.extend_from_slice(data);
    }

    /// The first `n` bytes of `rest` (fewer at its end), taken off it.
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (head, tail) = rest.split_at(n.min(rest.len()));
        *rest = tail;
        head
    }

    fn decode_entries(mut rest: &[u8]) -> Vec<Entry<'_>> {
        let mut entries = Vec::new();
        while !rest.is_empty() {
            let kind = take(&mut rest, 1)[0];
            let n = take(&mut rest, 1).first().copied().unwrap_or(0);
            let name = take(&mut rest, usize::from(n).min(100));
            let n = take(&mut rest, 1).first().copied().unwrap_or(0);
            let link = take(&mut rest, usize::from(n).min(100));
            let len = take(&mut rest, 2);
            let len = match len {
                [a, b] => u16::from_le_bytes([*a, *b]),
                [a] => u16::from(*a),
                _ => 0,
            };
            let data = take(&mut rest, usize::from(len));
            entries.push(Entry {
                kind,
                name,
                link,
                data,
            });
        }
        entries
    }

    fn tar_of(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::new(entry.kind));
            header.set_size(entry.data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(1_700_000_000);
            let old = header.as_old_mut();
            old.name[..entry.name.len()].copy_from_slice(entry.name);
            old.linkname[..entry.link.len()].copy_from_slice(entry.link);
            header.set_cksum();
            builder
                .append(&header, entry.data)
                .expect("appending to memory");
        }
        builder.into_inner().expect("finishing in memory")
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(bytes).expect("compressing in memory");
        encoder.finish().expect("compressing in memory")
    }

    /// The bundle file an input stands for.
    pub fn file_of(data: &[u8]) -> Vec<u8> {
        let Some((mode, rest)) = data.split_first() else {
            return Vec::new();
        };
        match mode % 3 {
            RAW => rest.to_vec(),
            TAR => gzip(rest),
            _ => gzip(&tar_of(&decode_entries(rest))),
        }
    }
}
