//! A running statement's text (`pg_stat_activity.query`, bundled): `strip_literals`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmig::bundle::sqltext::strip_literals;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let _ = strip_literals(sql);
});
