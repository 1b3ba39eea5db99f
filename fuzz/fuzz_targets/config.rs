//! The Medplum server config (`--medplum-config`): the input is the file's bytes, then after a
//! NUL byte the `MEDPLUM_*` environment (`NAME=value` lines) of the `env` source, then after
//! another NUL a config name as `--medplum-config` takes it. The file and the environment are
//! loaded as `file:PATH,env`; then everything medmig reads from a config: the database
//! section, the deferral settings and their evidence, the redacted copy a bundle carries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmig::bundle::redact::{RedactOptions, Redactor};
use medmig::medplum::config::{ConfigName, DeferKey};
use medmig::sources::config::load;
use medmig_fuzz::scratch_file;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let file = parts.next().unwrap_or_default();
    let env_text = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let name_text = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();

    // A config name on its own (never loaded: it could name any file).
    if let Ok(name) = ConfigName::parse(&name_text) {
        for source in name.sources() {
            let _ = (source.to_string(), source.why_not_read());
        }
        let _ = (name.is_plain_path(), name.as_str());
    }

    let path = scratch_file("medplum.config.json", file);
    let env: Vec<(String, String)> = env_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let name = ConfigName::parse(&format!("file:{},env", path.display())).expect("a config name");
    let Ok(config) = load(&name, &env) else {
        return;
    };
    let _ = config.database();
    let _ = (config.notes(), config.is_complete(), config.sources_read());
    for path in [
        &["database"][..],
        &["database", "port"],
        &["database", "ssl", "ca"],
        &["baseUrl"],
    ] {
        let _ = (config.get(path), config.origin(path));
    }
    let defer = config.defer_settings();
    let _ = (
        defer.defers(),
        defer.run_migrations_off(),
        defer.key_read_defers(),
        defer.relies_on_documented_key(),
        defer.all_sources_read(),
        defer.gap(),
        defer.values(),
        defer.notes(),
        defer.sources(),
        defer.evidence(),
        defer.evidence_about(&DeferKey::ALL),
    );
    for key in DeferKey::ALL {
        let _ = (defer.value(key), defer.value_line(key), defer.note(key));
    }
    let mut value = config.value().clone();
    Redactor::new(&RedactOptions::default())
        .expect("the redaction rules")
        .json(&mut value);
    let _ = serde_json::to_vec_pretty(&value);
});
